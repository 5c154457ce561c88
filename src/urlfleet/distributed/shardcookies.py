"""Cookies across shards: what a host's next shard starts with.

On one machine every thread shares one jar, so a cookie a host set on one response goes
with its next request. A shard run has a jar per shard, and a host's URLs may be cut into
several shards, one after another: the client keeps the cookies each shard's jar ended
with and gives a shard those its hosts may be sent. A host is in one shard at a time, so
its own cookies carry exactly; a cookie set for a whole domain (``Domain=example.com``)
reaches a shard of the domain's other hosts from the next shard that starts after it came.

Which cookie a request gets is still http.cookiejar's rule, in the shard's jar: the
choice here only has to hold every cookie that rule could pick for the shard's hosts.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Iterator
from http.cookiejar import Cookie

CookieKey = tuple[str, str, str]  # (domain, path, name): what a jar holds one of

_PORT = re.compile(r":\d+$", re.ASCII)  # http.cookiejar's cut of a request host's port


class ShardCookies:
    """The latest cookies of a run's shards, by domain. Safe to read from a thread other
    than the one updating it (the cookie jar is written on a second Ctrl-C too).

    >>> given = cookies.for_hosts(shard.hosts()); ...; cookies.update(given, end.cookies)
    """

    def __init__(self, cookies: Iterable[Cookie] = ()) -> None:
        self._by_domain: dict[str, dict[CookieKey, Cookie]] = {}
        self._lock = threading.Lock()
        self.update((), cookies)

    def __iter__(self) -> Iterator[Cookie]:
        with self._lock:
            return iter([c for cookies in self._by_domain.values() for c in cookies.values()])

    def __len__(self) -> int:
        with self._lock:
            return sum(len(cookies) for cookies in self._by_domain.values())

    def for_hosts(self, hosts: Iterable[str]) -> list[Cookie]:
        """The cookies, not expired, that requests to ``hosts`` (``host_key``s) may carry."""
        now = int(time.time())
        chosen: dict[CookieKey, Cookie] = {}
        domains = {d for host in hosts for d in _domains_of(host)}
        with self._lock:
            for domain in domains:
                for key, cookie in self._by_domain.get(domain, {}).items():
                    if not cookie.is_expired(now):
                        chosen[key] = cookie
        return list(chosen.values())

    def update(self, given: Iterable[Cookie], ended_with: Iterable[Cookie]) -> None:
        """A shard that started with ``given`` ended with ``ended_with``: a cookie given
        and not there any more was deleted or ran out; those there are the latest."""
        ended = {_key(cookie): cookie for cookie in ended_with if cookie.domain}
        with self._lock:
            for cookie in given:
                if _key(cookie) not in ended:
                    self._forget(_key(cookie))
            for key, cookie in ended.items():
                self._by_domain.setdefault(key[0], {})[key] = cookie

    def _forget(self, key: CookieKey) -> None:
        cookies = self._by_domain.get(key[0])
        if cookies is not None:
            cookies.pop(key, None)
            if not cookies:
                del self._by_domain[key[0]]


def _key(cookie: Cookie) -> CookieKey:
    return (cookie.domain, cookie.path, cookie.name)


def _domains_of(host: str) -> list[str]:
    # Every domain a cookie sent to ``host`` may be stored under. http.cookiejar keeps a
    # host-only cookie under the request host (``.local`` added to a name without a dot)
    # and a domain cookie under ".domain"; it sends a cookie when "." + the host ends with
    # the domain, a leading dot added. So: each suffix of the name at a dot, with and
    # without its dot.
    name = _PORT.sub("", host).lower()
    if "." not in name:
        name += ".local"
    domains = [name, "." + name]
    at = name.find(".")
    while at != -1:
        suffix = name[at + 1 :]
        if suffix:
            domains += [suffix, "." + suffix]
        at = name.find(".", at + 1)
    return domains
