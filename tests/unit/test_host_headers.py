"""host_headers: a host's own headers on its requests only, over the every-URL ones, and
changed over when a redirect moves to another host."""

from __future__ import annotations

import responses

import urlfleet
from urlfleet.read.items import UrlRequest

FAST = {"backoff": 0.0, "host_backoff": 0.0, "jobs": 2}


@responses.activate
def test_a_hosts_headers_go_to_that_host_only() -> None:
    responses.get("http://a.test/x")
    responses.get("http://b.test:8080/y")
    results = urlfleet.fetch_all(
        ["http://a.test/x", "http://b.test:8080/y"],
        headers={"X-Client": "every", "X-Plain": "p"},
        host_headers={"A.test": {"X-Client": "a", "X-Key": "k", "X-Plain": None}},
        **FAST,
    )
    assert all(r.ok for r in results)
    sent = {call.request.url: call.request.headers for call in responses.calls}
    a, b = sent["http://a.test/x"], sent["http://b.test:8080/y"]
    assert (a["X-Client"], a["X-Key"]) == ("a", "k") and "X-Plain" not in a
    assert (b["X-Client"], b["X-Plain"]) == ("every", "p") and "X-Key" not in b


@responses.activate
def test_a_redirect_to_another_host_changes_the_host_headers_over() -> None:
    responses.get("http://a.test/old", status=302, headers={"Location": "http://b.test/new"})
    responses.get("http://b.test/new", body=b"moved")
    (result,) = urlfleet.fetch_all(
        ["http://a.test/old"],
        headers={"X-Client": "every", "X-Secret": "s"},
        secret_headers=("X-Secret",),
        host_headers={
            "a.test": {"X-Client": "a", "X-Key": "k", "X-Secret": "a-only"},
            "http://b.test/": {"X-B": "b", "User-Agent": None},
        },
        **FAST,
    )
    assert result.ok and result.redirects == 1
    first, second = (call.request.headers for call in responses.calls)
    assert (first["X-Client"], first["X-Key"], first["X-Secret"]) == ("a", "k", "a-only")
    assert "X-B" not in first and first["User-Agent"].startswith("urlfleet/")
    # a.test's own headers stay behind; the every-URL value of the same name comes back,
    # except a secret one, which never follows a redirect to another host.
    assert "X-Key" not in second and "X-Secret" not in second
    assert second["X-Client"] == "every" and second["X-B"] == "b"
    assert "urlfleet" not in second.get("User-Agent", "")


@responses.activate
def test_a_list_items_own_headers_win_and_follow_the_redirect() -> None:
    responses.post("http://a.test/form", status=307, headers={"Location": "http://b.test/in"})
    responses.post("http://b.test/in")
    item = UrlRequest("http://a.test/form", method="POST", headers={"X-Key": "mine"}, data=b"x")
    (result,) = urlfleet.fetch_all([item], host_headers={"a.test": {"X-Key": "k"}}, **FAST)
    assert result.ok
    first, second = (call.request.headers for call in responses.calls)
    assert first["X-Key"] == "mine" and second["X-Key"] == "mine"
