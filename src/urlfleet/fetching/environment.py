"""Proxies and .netrc credentials from the environment, looked up once, not for every request."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import NamedTuple
from urllib.parse import urlsplit
from urllib.request import getproxies

from requests.utils import NETRC_FILES, get_environ_proxies, get_netrc_auth, select_proxy

from urlfleet.config import FetchConfig
from urlfleet.fetching.adapter import is_socks

ENVIRONMENTS_KEPT = 4096  # hosts whose proxy, CA bundle and .netrc settings are kept


def _same_for_every_host(config: FetchConfig) -> bool:
    """Whether the environment gives every host of a scheme the same proxies and no .netrc
    credentials: no proxy variables at all (NO_PROXY included), proxies in
    the config keyed by scheme only (``http``, not ``http://host``), and no .netrc file
    that requests would read (or auth given, which overrides it)."""
    if getproxies():
        return False
    if any("://" in key for key in config.proxies):
        return False
    return config.auth is not None or _netrc_file() is None


def _netrc_file() -> str | None:
    """The .netrc file requests would read: $NETRC, else ~/.netrc or ~/_netrc (None if
    there is none)."""
    named = os.environ.get("NETRC")
    for candidate in (named,) if named is not None else (f"~/{f}" for f in NETRC_FILES):
        path = os.path.expanduser(candidate)
        if os.path.exists(path):
            return path
    return None


class Settings(NamedTuple):
    """What the environment says about requests to one host."""

    proxies: dict[str, str]
    verify: bool | str
    auth: tuple[str, str] | None
    gated: bool = True  # its connections pass the gate at the write (all but SOCKS proxies)


class Environment:
    """Proxies (HTTP_PROXY, NO_PROXY...), CA bundle and .netrc credentials, per host.

    requests looks these up again for every request (``trust_env``), scanning os.environ and
    reading ~/.netrc: about a fifth of its CPU per request. The answers do not change during
    a run, so they are looked up once. With no proxy in the environment, no host-specific
    proxy in the config and no .netrc to read, the answer is the same for every host of a
    scheme: it is kept per scheme, so a list of a million hosts costs one look-up each. Else
    it is kept per scheme, host and port, for the ``ENVIRONMENTS_KEPT`` hosts used last, so
    memory stays flat (a host that comes back after that is looked up again, for the same
    answer).
    """

    def __init__(self, config: FetchConfig) -> None:
        self._config = config
        self._known: OrderedDict[tuple[str, str, int | None], Settings] = OrderedDict()
        self._per_scheme: dict[str, Settings] | None = {} if _same_for_every_host(config) else None
        self._lock = threading.Lock()

    def settings(self, url: str) -> Settings:
        if self._per_scheme is not None:
            scheme = url[: url.find(":")].lower()
            known = self._per_scheme.get(scheme)
            if known is None:  # two threads may both look it up, for one answer
                known = self._per_scheme[scheme] = self._look_up(url, True)
            return known
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "", parts.port)
        with self._lock:
            known = self._known.get(key)
            if known is not None:
                self._known.move_to_end(key)
                return known
        # Outside the lock (it reads ~/.netrc): two threads may both look it up, for one answer.
        known = self._look_up(url, parts.username is not None)
        with self._lock:
            self._known[key] = known
            if len(self._known) > ENVIRONMENTS_KEPT:
                self._known.popitem(last=False)
        return known

    def _look_up(self, url: str, has_userinfo: bool) -> Settings:
        config = self._config
        proxies = {**get_environ_proxies(url), **config.proxies}
        verify: bool | str = config.verify
        if verify is True:  # as curl and requests: the option first, then the environment
            verify = (
                config.ca_bundle
                or os.environ.get("REQUESTS_CA_BUNDLE")
                or os.environ.get("CURL_CA_BUNDLE")
                or True
            )
        netrc = None if config.auth or has_userinfo else get_netrc_auth(url)
        proxy = select_proxy(url, proxies)
        gated = proxy is None or not is_socks(proxy)
        return Settings(proxies=proxies, verify=verify, auth=netrc, gated=gated)
