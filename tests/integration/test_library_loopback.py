"""urlfleet as a library, against the real loopback server."""

from __future__ import annotations

import html.parser
import os
import uuid

import pytest

import urlfleet
from tests.conftest import SERVER_SLACK
from urlfleet import HostLimits, Result
from urlfleet.loopback import LoopbackProcess, host_loads

pytestmark = pytest.mark.integration


class _Title(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inside, self.title = False, ""

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.inside = tag == "title"

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.title += data

    def handle_endtag(self, tag: str) -> None:
        self.inside = False


def title_and_pid(result: Result) -> tuple[str, int]:
    parser = _Title()
    parser.feed(result.text)
    return parser.title, os.getpid()


def explode(result: Result) -> None:
    if result.url.endswith("/3"):
        raise ValueError("no title here")


def test_parse_runs_in_other_processes(server: LoopbackProcess) -> None:
    token = uuid.uuid4().hex[:8]
    urls = [(f"{base}/page/{token}/{i}", i) for base in server.base_urls for i in range(3)]
    results = urlfleet.fetch_all(urls, jobs=8, parse=title_and_pid, parse_jobs=2)
    assert len(results) == 24 and all(r.parse_error is None for r in results)
    assert all(r.parsed[0] == f"Page /page/{token}/{r.meta}" for r in results)
    pids = {r.parsed[1] for r in results}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


def test_parse_errors_are_captured_per_url(server: LoopbackProcess) -> None:
    token = uuid.uuid4().hex[:8]
    urls = [f"{server.base_urls[0]}/page/{token}/{i}" for i in range(5)]
    results = urlfleet.fetch_all(urls, parse=explode, parse_jobs=2)
    failed = [r for r in results if r.parse_error]
    assert [r.url for r in failed] == [urls[3]]
    assert (
        failed[0].parse_error is not None and "ValueError: no title here" in failed[0].parse_error
    )
    assert all(r.ok for r in results)


def test_per_host_limits_hold_at_the_server(server: LoopbackProcess) -> None:
    token = uuid.uuid4().hex[:8]
    careful, free = server.base_urls[0], server.base_urls[1]
    urls = [f"{careful}/page/{token}/{i}" for i in range(6)]
    urls += [f"{free}/page/{token}/{i}" for i in range(24)]
    limits = {careful.removeprefix("http://"): HostLimits(per_host=1, delay=0.2)}
    results = urlfleet.fetch_all(urls, jobs=16, per_host=4, host_limits=limits)
    assert all(r.ok for r in results)
    loads = host_loads(server.records(contains=token))
    assert loads[careful.removeprefix("http://")].max_in_flight == 1
    assert loads[careful.removeprefix("http://")].min_gap >= 0.2 - SERVER_SLACK
    assert loads[free.removeprefix("http://")].max_in_flight == 4


def test_headers_cookies_and_auth_reach_the_server(server: LoopbackProcess) -> None:
    token = uuid.uuid4().hex[:8]
    url = f"{server.base_urls[2]}/auth/{token}"
    (result,) = urlfleet.fetch_all(
        [url], headers={"X-Scraper": "tests"}, cookies={"session": "abc"}, auth=("bob", "pw")
    )
    assert result.json()["authorization"].startswith("Basic ")
    (seen,) = server.records(contains=token)
    assert seen.headers["x-scraper"] == "tests" and "session=abc" in seen.headers["cookie"]


def test_authorization_is_not_sent_to_another_host_after_a_redirect(
    server: LoopbackProcess,
) -> None:
    token = uuid.uuid4().hex[:8]
    here, there = server.base_urls[3], server.base_urls[4]
    port = there.rsplit(":", 1)[1]
    (result,) = urlfleet.fetch_all([f"{here}/to/{port}/auth/{token}"], auth=("bob", "secret"))
    assert result.ok and result.final_url == f"{there}/auth/{token}"
    assert result.json() == {"authorization": None}


def test_retry_if_retries_a_response_that_looks_fine(server: LoopbackProcess) -> None:
    token = uuid.uuid4().hex[:8]
    urls = [f"{server.base_urls[5]}/page/{token}/{name}" for name in ("good", "rate-limited")]
    results = urlfleet.fetch_all(
        urls, retries=2, backoff=0, retry_if=lambda r: r.url.endswith("rate-limited")
    )
    assert results[0].ok and results[0].attempts == 1
    assert not results[1].ok and results[1].attempts == 3
    assert results[1].error is not None and results[1].error.startswith("RetryRequested")


def test_on_result_sees_every_result_and_fetch_all_keeps_order(server: LoopbackProcess) -> None:
    token = uuid.uuid4().hex[:8]
    urls = [f"{base}/page/{token}/{i}" for i in range(5) for base in server.base_urls]
    seen: list[str] = []
    results = urlfleet.fetch_all(urls, jobs=16, on_result=lambda r: seen.append(r.url))
    assert [r.url for r in results] == urls and sorted(seen) == sorted(urls)


def test_a_generator_of_urls_is_read_lazily(server: LoopbackProcess) -> None:
    token = uuid.uuid4().hex[:8]
    produced = 0

    def endless() -> object:
        nonlocal produced
        while True:
            produced += 1
            yield f"{server.base_urls[produced % 8]}/page/{token}/{produced}"

    stream = urlfleet.fetch(endless(), jobs=4, per_host=1, window=50)  # type: ignore[arg-type]
    got = [next(stream) for _ in range(20)]
    stream.close()  # type: ignore[attr-defined]
    assert len(got) == 20 and produced < 200
