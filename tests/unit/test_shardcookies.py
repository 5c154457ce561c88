"""The cookies a shard is given: every cookie http.cookiejar would send to its hosts."""

from __future__ import annotations

import random
import time
from email.message import Message
from http.cookiejar import Cookie, CookieJar
from urllib.request import Request

from requests.cookies import create_cookie

from urlfleet.distributed.shardcookies import ShardCookies
from urlfleet.politeness import host_key

NAMES = ["a.example.com", "b.example.com", "x.a.example.com", "example.com", "other.test",
         "localhost", "127.0.0.1", "127.0.0.2", "[::1]", "EXAMPLE.com"]  # fmt: skip


class _Answer:
    def __init__(self, set_cookies: list[str]) -> None:
        self._headers = Message()
        for value in set_cookies:
            self._headers["Set-Cookie"] = value

    def info(self) -> Message:
        return self._headers


def _url(name: str, port: int | None) -> str:
    return f"http://{name}{'' if port is None else f':{port}'}/"


def _set_by_servers(rng: random.Random) -> tuple[CookieJar, list[str]]:
    # Cookies as http.cookiejar takes them from answers: host-only and Domain= ones.
    jar, urls = CookieJar(), []
    for n in range(60):
        name, port = rng.choice(NAMES), rng.choice([None, 8001, 8002])
        url = _url(name, port)
        urls.append(url)
        domain = rng.choice(["", "; Domain=example.com", "; Domain=.example.com",
                             "; Domain=a.example.com", f"; Domain={name}"])  # fmt: skip
        jar.extract_cookies(_Answer([f"c{n}=v{n}; Path=/{domain}"]), Request(url))  # type: ignore[arg-type]
    return jar, urls


def _sent(jar: CookieJar, url: str) -> set[str]:
    request = Request(url)
    jar.add_cookie_header(request)
    header = request.get_header("Cookie") or ""
    return {part.split("=")[0] for part in header.split("; ") if part}


def test_a_shard_gets_every_cookie_the_jar_would_send_its_hosts() -> None:
    rng = random.Random(7)
    for _ in range(30):
        jar, urls = _set_by_servers(rng)
        kept = ShardCookies(jar)
        for url in set(urls):
            given = CookieJar()
            for cookie in kept.for_hosts([host_key(url)]):
                given.set_cookie(cookie)
            assert _sent(given, url) == _sent(jar, url), url


def test_a_cookie_goes_to_no_other_host() -> None:
    kept = ShardCookies([create_cookie("sid", "1", domain="a.example.com"),
                         create_cookie("site", "2", domain=".example.com"),
                         create_cookie("ip", "3", domain="127.0.0.1")])  # fmt: skip
    names = lambda hosts: sorted(c.name for c in kept.for_hosts(hosts))  # noqa: E731
    assert names(["a.example.com:8443"]) == ["sid", "site"]
    assert names(["b.example.com"]) == ["site"]
    assert names(["other.test", "127.0.0.2:80"]) == []
    assert names(["127.0.0.1:8001"]) == ["ip"]  # a cookie keeps to a name, not a port


def test_what_a_shard_ended_without_is_forgotten() -> None:
    sid, site = create_cookie("sid", "1", domain="a.test"), create_cookie("s", "2", domain="b.test")
    kept = ShardCookies([sid, site])
    given = kept.for_hosts(["a.test"])
    kept.update(given, [])  # the shard's answer deleted it (Max-Age=0)
    assert kept.for_hosts(["a.test"]) == [] and len(kept) == 1
    newer = create_cookie("sid", "new", domain="a.test")
    kept.update([], [newer, create_cookie("everywhere", "x")])  # no domain: config's own
    assert [c.value for c in kept.for_hosts(["a.test"])] == ["new"] and len(kept) == 2


def test_an_expired_cookie_is_not_given() -> None:
    gone = create_cookie("old", "1", domain="a.test", expires=int(time.time()) - 10)
    kept = ShardCookies([gone, create_cookie("new", "2", domain="a.test")])
    assert [c.name for c in kept.for_hosts(["a.test"])] == ["new"]
    assert all(isinstance(c, Cookie) for c in kept)
