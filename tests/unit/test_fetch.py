"""The fetch path against `responses` mocks: retries, final errors, redirects, body limits."""

from __future__ import annotations

import gzip

import pytest
import requests
import responses

import urlfleet
from urlfleet.errors import RetryableStatus
from urlfleet.fetching.failures import describe

FAST = {"backoff": 0.0, "host_backoff": 0.0, "jobs": 4}


@responses.activate
def test_retryable_status_then_success() -> None:
    responses.get("http://a.test/x", status=503)
    responses.get("http://a.test/x", status=200, body=b"hello")
    (result,) = urlfleet.fetch_all(["http://a.test/x"], **FAST)
    assert result.ok and result.status == 200 and result.attempts == 2
    assert result.content == b"hello" and result.bytes == 5 and result.error is None


@responses.activate
def test_404_is_final_at_once() -> None:
    responses.get("http://a.test/missing", status=404, body=b"no")
    (result,) = urlfleet.fetch_all(["http://a.test/missing"], **FAST)
    assert not result.ok and result.status == 404 and result.attempts == 1
    assert result.error == "HTTP 404"
    assert len(responses.calls) == 1


@responses.activate
def test_exhausted_retries_say_so() -> None:
    responses.get("http://a.test/busy", status=503)
    (result,) = urlfleet.fetch_all(["http://a.test/busy"], retries=2, **FAST)
    assert result.error == "HTTP 503 after 3 attempts" and result.attempts == 3
    assert len(responses.calls) == 3


@responses.activate
def test_connection_error_becomes_a_record_not_an_exception() -> None:
    responses.get("http://a.test/down", body=requests.ConnectionError("boom"))
    (result,) = urlfleet.fetch_all(["http://a.test/down"], retries=1, **FAST)
    assert not result.ok and result.status is None and result.attempts == 2
    assert result.error is not None and result.error.startswith("ConnectionError: boom")


@responses.activate
def test_redirect_is_followed_and_final_url_recorded() -> None:
    responses.get("http://a.test/old", status=301, headers={"Location": "http://b.test/new"})
    responses.get("http://b.test/new", body=b"moved")
    (result,) = urlfleet.fetch_all(["http://a.test/old"], **FAST)
    assert result.ok and result.final_url == "http://b.test/new" and result.redirects == 1
    assert result.host == "a.test" and result.attempts == 1


@responses.activate
def test_redirect_loop_stops_at_the_limit() -> None:
    responses.get("http://a.test/loop", status=302, headers={"Location": "http://a.test/loop"})
    (result,) = urlfleet.fetch_all(["http://a.test/loop"], max_redirects=3, **FAST)
    assert not result.ok and result.error is not None and "TooManyRedirects" in result.error
    assert len(responses.calls) == 4


@responses.activate
def test_body_over_max_bytes_is_cut_and_said() -> None:
    responses.get("http://a.test/big", body=b"x" * 1000)
    (result,) = urlfleet.fetch_all(["http://a.test/big"], max_bytes=100, **FAST)
    assert not result.ok and result.truncated and result.bytes == 100
    assert result.content == b"x" * 100 and result.error == "body larger than --max-bytes"


@responses.activate
def test_max_bytes_counts_the_decoded_body() -> None:
    bomb = gzip.compress(b"\0" * 100_000)
    responses.get("http://a.test/z", body=bomb, headers={"Content-Encoding": "gzip"})
    (result,) = urlfleet.fetch_all(["http://a.test/z"], max_bytes=50_000, **FAST)
    assert result.truncated and result.bytes == 50_000 and len(bomb) < 50_000


def test_invalid_urls_get_a_record_each() -> None:
    results = urlfleet.fetch_all(["ftp://a.test/", "not a url"], **FAST)
    assert [r.ok for r in results] == [False, False]
    assert all(r.error and r.error.startswith("invalid URL:") for r in results)


@responses.activate
def test_meta_travels_with_the_url_and_order_is_kept() -> None:
    for i in range(20):
        responses.get(f"http://h{i % 3}.test/{i}", body=str(i))
    items = [(f"http://h{i % 3}.test/{i}", {"n": i}) for i in range(20)]
    results = urlfleet.fetch_all(items, **FAST)
    assert [r.meta["n"] for r in results] == list(range(20))
    assert [r.text for r in results] == [str(i) for i in range(20)]


@responses.activate
def test_credentials_never_reach_the_record() -> None:
    # The mock does not match a URL with credentials in it, so the error names the URL.
    (result,) = urlfleet.fetch_all(["http://bob:hunter2@a.test/private"], retries=0, **FAST)
    record = str(result.to_record())
    assert "hunter2" not in record and "bob:***@a.test" in record
    assert responses.calls[0].request.headers["Authorization"].startswith("Basic ")


@pytest.mark.parametrize(
    ("error", "status", "attempts", "text"),
    [
        (RetryableStatus(503), 503, 4, "HTTP 503 after 4 attempts"),
        (RetryableStatus(429), 429, 1, "HTTP 429"),
        (None, 404, 1, "HTTP 404"),
        (
            requests.ReadTimeout("read timed out"),
            None,
            2,
            "ReadTimeout: read timed out after 2 attempts",
        ),
    ],
)
def test_describe(
    error: BaseException | None, status: int | None, attempts: int, text: str
) -> None:
    assert describe(error, status, False, attempts) == text
