"""``sending.Preparer`` prepares what ``Session.prepare_request`` prepares, for urlfleet's own
sessions, and ``sending.send`` keeps cookies and finds the next hop as ``Session.send`` does."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests
import responses
from requests.auth import HTTPDigestAuth

from urlfleet.config import FetchConfig
from urlfleet.fetching.adapter import new_session, shared_adapter
from urlfleet.fetching.cookies import new_jar
from urlfleet.fetching.sending import Preparer, has_cookies, send
from urlfleet.urls import checked_url

URL = "http://a.test/p?q=1"


def session_for(**config: Any) -> requests.Session:
    made = FetchConfig(**config)
    return new_session(made, shared_adapter(made), new_jar(made.cookies))


def same(ours: requests.PreparedRequest, theirs: requests.PreparedRequest) -> None:
    assert ours.method == theirs.method
    assert ours.url == theirs.url
    assert list(ours.headers.items()) == list(theirs.headers.items())
    assert ours.body == theirs.body
    assert {k: len(v) for k, v in ours.hooks.items()} == {
        k: len(v) for k, v in theirs.hooks.items()
    }


REQUESTS = [
    requests.Request("GET", URL),
    requests.Request("HEAD", "http://A.test:80/a%20b/../c#frag"),
    requests.Request("post", URL, data={"k": "v", "x": "y"}),
    requests.Request("PUT", URL, data=b"raw"),
    requests.Request("DELETE", URL),  # no body: Content-Length 0, as requests sends it
    requests.Request("GET", URL, headers={"Accept": None, "X-One": "1", "user-agent": "mine"}),
    requests.Request("GET", "http://user:pw@a.test/"),  # credentials in the URL
    requests.Request("GET", URL, auth=("u", "p")),
    requests.Request("GET", URL, auth=HTTPDigestAuth("u", "p")),  # registers its own hook
    requests.Request("GET", URL, cookies={"item": "1"}),
    requests.Request("GET", "http://bücher.test/ä"),
]


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: f"{r.method} {r.url}")
@pytest.mark.parametrize(
    "config",
    [
        {},
        {"headers": {"X-Run": "r", "Accept-Encoding": None, "Connection": None}},
        {"cookies": {"c": "1"}, "auth": ("run", "secret")},
    ],
    ids=["plain", "headers", "cookies+auth"],
)
def test_prepares_as_the_session_does(request_: requests.Request, config: dict[str, Any]) -> None:
    session = session_for(**config)
    same(Preparer(session).prepare(request_), session.prepare_request(request_))


def test_the_url_from_its_check_is_the_url_requests_makes() -> None:
    session = session_for()
    for request_ in REQUESTS:
        problem, url = checked_url(request_.url)
        assert problem is None and url is not None
        same(Preparer(session).prepare(request_, url), session.prepare_request(request_))


def test_cookies_in_the_jar_are_sent_and_the_jar_is_read_not_copied() -> None:
    session = session_for()
    preparer = Preparer(session)
    assert not has_cookies(session.cookies)
    assert "Cookie" not in preparer.prepare(requests.Request("GET", URL)).headers
    session.cookies.set("sid", "42", domain="a.test", path="/")
    assert has_cookies(session.cookies)
    prepared = preparer.prepare(requests.Request("GET", URL))
    assert prepared.headers["Cookie"] == "sid=42"
    assert prepared._cookies is session.cookies  # type: ignore[attr-defined]
    other = preparer.prepare(requests.Request("GET", "http://b.test/"))
    assert "Cookie" not in other.headers  # a host's cookie stays its own


def test_a_session_that_reads_the_environment_is_refused() -> None:
    with pytest.raises(ValueError, match="trust_env"):
        Preparer(requests.Session())


@responses.activate
def test_send_keeps_cookies_and_finds_the_next_hop() -> None:
    responses.get(
        "http://a.test/start",
        status=302,
        headers={"Location": "/next", "Set-Cookie": "sid=7; Path=/"},
    )
    session = session_for()
    prepared = Preparer(session).prepare(requests.Request("GET", "http://a.test/start"))
    response = send(session, prepared, stream=True, timeout=5, verify=True, proxies={}, cert=None)
    assert response.status_code == 302
    assert session.cookies.get("sid") == "7"  # kept in the run's jar
    assert response.next is not None and response.next.url == "http://a.test/next"
    assert response.next.headers["Cookie"] == "sid=7"  # the next hop carries it


@responses.activate
def test_send_without_a_cookie_leaves_the_jar_alone() -> None:
    responses.get("http://a.test/", body="ok")
    session = session_for()
    prepared = Preparer(session).prepare(requests.Request("GET", "http://a.test/"))
    response = send(session, prepared, stream=True, timeout=5, verify=True, proxies={}, cert=None)
    assert response.status_code == 200 and response.next is None
    assert not has_cookies(session.cookies)


def test_https_pools_share_one_tls_context_with_the_bundle_loaded_once(tmp_path: Any) -> None:
    import trustme

    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    adapter = shared_adapter(FetchConfig())
    pools = [
        adapter.get_connection_with_tls_context(
            requests.Request("GET", f"https://{name}.test/").prepare(), str(bundle)
        )
        for name in ("a", "b", "c", "a")
    ]
    contexts = {id(pool.conn_kw["ssl_context"]) for pool in pools}
    assert len({id(pool) for pool in pools}) == 3 and len(contexts) == 1
    context = pools[0].conn_kw["ssl_context"]
    assert context.cert_store_stats()["x509_ca"] == 1  # the bundle's one CA, loaded once
    assert pools[0].ca_certs is None  # nothing for urllib3 to load again per connection
    unverified = adapter.get_connection_with_tls_context(
        requests.Request("GET", "https://a.test/").prepare(), False
    )
    assert unverified.conn_kw["ssl_context"].verify_mode == 0  # ssl.CERT_NONE
    with pytest.raises(OSError, match="invalid path"):  # requests' own words for a bad bundle
        adapter.get_connection_with_tls_context(
            requests.Request("GET", "https://a.test/").prepare(), str(tmp_path / "missing.pem")
        )


@pytest.mark.parametrize(
    "headers",
    [{"Content-Type": "text/html; charset=utf-8", "X-A": "1"}, {"Set-Cookie": "s=1; Path=/"}, {}],
    ids=["no cookie", "a cookie", "no headers"],
)
def test_the_adapter_builds_the_response_requests_builds(headers: dict[str, str]) -> None:
    import io

    from urllib3 import HTTPResponse

    def raw() -> HTTPResponse:
        return HTTPResponse(io.BytesIO(b"x"), headers=headers, status=203, reason="Fine",
                            preload_content=False)  # fmt: skip

    adapter = shared_adapter(FetchConfig())
    prepared = requests.Request("GET", "http://a.test/p").prepare()
    ours = adapter.build_response(prepared, raw())
    theirs = requests.adapters.HTTPAdapter.build_response(adapter, prepared, raw())
    plain = {"raw", "headers", "cookies"}
    assert {k: v for k, v in vars(ours).items() if k not in plain} == {
        k: v for k, v in vars(theirs).items() if k not in plain
    }
    assert list(ours.headers.items()) == list(theirs.headers.items())
    assert ours.cookies.get_dict() == theirs.cookies.get_dict()
    assert ours.raw.status == theirs.raw.status


TARGETS = [
    "http://a.test/p?q=1#f", "http://a.test//double", "http://a.test", "http://a.test?q",
    "http://a.test/p?", "http://a.test/p?a?b#c?d#e", "http://a.test#f?x", "https://u:p@a.test:8/",
    "http://[::1]:8/p?q", "http://xn--caf-dma.test/caf%C3%A9", "http://a.test/\u00e9?\u00e8",
    "HTTP://A.TEST/P", "http://a.test/a b", "http://a.test/;p;q?x=1&y=%20",
]  # fmt: skip


@pytest.mark.parametrize("proxies", [{}, {"http": "http://proxy.test:3128"}])
@pytest.mark.parametrize("url", TARGETS)
def test_the_adapter_asks_for_the_url_requests_asks_for(url: str, proxies: dict[str, str]) -> None:
    adapter = shared_adapter(FetchConfig())
    prepared = requests.Request("GET", url).prepare()
    theirs = requests.adapters.HTTPAdapter.request_url(adapter, prepared, proxies)
    assert adapter.request_url(prepared, proxies) == theirs


def test_any_url_asks_for_the_path_requests_asks_for() -> None:
    # Prepared URLs, and URLs set on a request as they come (a hook's, a redirect's).
    import random

    pieces = ["/", "//", "?", "#", "a", "%2F", "[", "]", ":", "@", " ", "\t", "\x00", "\u00e9"]
    adapter, rng = shared_adapter(FetchConfig()), random.Random(3)
    for _ in range(3000):
        tail = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))
        prepared = requests.PreparedRequest()
        prepared.url = rng.choice(["http://a.test", "https://b.test:8", "http://"]) + tail
        try:
            theirs = requests.adapters.HTTPAdapter.request_url(adapter, prepared, {})
        except ValueError as exc:  # urlsplit's own refusal (an unclosed bracket): alike
            with pytest.raises(ValueError, match=re.escape(str(exc))):
                adapter.request_url(prepared, {})
            continue
        assert adapter.request_url(prepared, {}) == theirs, prepared.url
