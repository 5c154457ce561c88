"""Shaping a job's request: its method, body and headers, and what changes at a redirect.

Headers come in three layers, the most particular winning: the session's (every URL's), a
host's own (``--host-header``), then a list item's own. A redirect to another host takes the
old host's headers off and puts the new host's on, and drops what must not follow it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import requests
from urllib3.util import SKIP_HEADER, SKIPPABLE_HEADERS

from urlfleet.config import FetchConfig
from urlfleet.fetching.kinds import kind_for
from urlfleet.politeness.identity import key_of
from urlfleet.read.items import UrlRequest
from urlfleet.schedule.job import Job

# Request headers that make a request conditional: a 304 to one means "what you have is current".
CONDITIONAL_HEADERS = frozenset({"if-none-match", "if-modified-since"})


class Shaper:
    """Builds each job's first request from the config and its list item."""

    def __init__(self, config: FetchConfig) -> None:
        self.config = config
        self._host_headers = {key_of(key): dict(h) for key, h in config.host_headers.items()}

    def request(self, job: Job, auth: Any = None) -> requests.Request:
        """The first request of a job, before the session merges its own headers in.

        What the list item asked for wins over the run's method and body. robots.txt and
        sitemaps are read as content: always a plain GET, whatever the run sends."""
        config, asked = self.config, job.asked
        if kind_for(job).read_as_content:
            return requests.Request(
                "GET", job.target, headers=self.headers_for(job.host), auth=auth
            )
        method = "HEAD" if config.head else config.method
        # The host's own headers win over the session's (every URL's); a list item's own
        # headers win over both, as the most particular.
        headers = {**self.headers_for(job.host), **(_with_validators(asked) if asked else {})}
        if asked is None:
            return requests.Request(
                method, job.target, headers=headers, data=config.data, auth=auth
            )
        return requests.Request(
            asked.method or method,
            job.target,
            headers=headers,
            data=asked.data if asked.data is not None else config.data,
            auth=auth,
        )

    def headers_for(self, host: str) -> dict[str, str | None]:
        """``host_headers`` of one host as a request carries them: None leaves a header out
        (urllib3's SKIP_HEADER where urllib3 would otherwise add its own)."""
        headers: dict[str, str | None] = {}
        for name, value in self._host_headers.get(host, {}).items():
            if name.lower() == "proxy-authorization":
                continue  # the proxy's alone, never the origin's: see new_session
            if value is None and name.lower() in SKIPPABLE_HEADERS:
                value = SKIP_HEADER
            headers[name] = value
        return headers

    def to_another_host(
        self,
        hop: requests.PreparedRequest,
        job: Job,
        new_host: str,
        every_url: Mapping[str, str | bytes],
    ) -> None:
        """A redirect's next request (``hop``), reshaped for ``new_host``: the old host's own
        headers go (the session's value of the same name, ``every_url``, comes back, unless
        it is one never sent to another host), the new host's come. A list item's own headers
        stay as requests carried them."""
        self._forget_secrets(hop)
        own = {name.lower() for name in (job.asked.headers if job.asked else ())}
        never_moved = {"authorization", "proxy-authorization", "cookie"}
        never_moved.update(name.lower() for name in self.config.secret_headers)
        for name in self.headers_for(job.host):
            if name.lower() in own:
                continue
            hop.headers.pop(name, None)
            value = every_url.get(name)
            if isinstance(value, str) and name.lower() not in never_moved:
                hop.headers[name] = value
        for name, new in self.headers_for(new_host).items():
            if name.lower() in own:
                continue
            if new is None:
                hop.headers.pop(name, None)
            else:
                hop.headers[name] = new

    def _forget_secrets(self, hop: requests.PreparedRequest) -> None:
        """What must not follow a redirect to another host, besides what requests drops:
        the cookies given for every URL (not set by a server for that host), and the
        headers the user marked as secret."""
        for name in self.config.secret_headers:
            hop.headers.pop(name, None)
        jar = getattr(hop, "_cookies", None)
        if self.config.cookies and isinstance(jar, requests.cookies.RequestsCookieJar):
            for name in self.config.cookies:
                with contextlib.suppress(KeyError):
                    jar.clear("", "/", name)  # as cookiejar_from_dict made them: no domain
            hop.headers.pop("Cookie", None)
            hop.prepare_cookies(jar)


def is_conditional(job: Job) -> bool:
    """Whether ``job``'s list item made its request conditional (validators, or headers)."""
    asked = job.asked
    if asked is None:
        return False
    given = {name.lower() for name, value in asked.headers.items() if value is not None}
    return asked.conditional or bool(given & CONDITIONAL_HEADERS)


def _with_validators(asked: UrlRequest) -> dict[str, str | None]:
    # The item's validators become its conditional headers; a header it gives itself wins.
    headers = dict(asked.headers)
    given = {name.lower() for name in headers}
    if asked.etag is not None and "if-none-match" not in given:
        headers["If-None-Match"] = asked.etag
    if asked.last_modified is not None and "if-modified-since" not in given:
        headers["If-Modified-Since"] = asked.last_modified
    return headers
