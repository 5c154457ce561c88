"""The library against the real loopback server: real threads, sockets and timings.

Politeness is checked from the server's side: it records when each request arrived and when
its response was finished, per host. Start gaps are checked exactly on the client's own write
stamps, and from the server's side with an allowance for its late stamps.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

import urlfleet
from tests.conftest import SERVER_SLACK
from tests.gaps import ClientWrites, server_starts, short_gaps
from urlfleet.loopback import LoopbackProcess, RequestRecord, ServerSpec, host_loads

pytestmark = pytest.mark.integration


@pytest.fixture
def token() -> str:
    """A unique path segment, so each test reads back only its own requests."""
    return uuid.uuid4().hex[:12]


def urls_on(server: LoopbackProcess, token: str, per_host: int, route: str = "page") -> list[str]:
    return [f"{base}/{route}/{token}/{i}" for i in range(per_host) for base in server.base_urls]


def records(server: LoopbackProcess, token: str) -> list[RequestRecord]:
    return server.records(contains=token)


def test_one_record_per_url_with_statuses(server: LoopbackProcess, token: str) -> None:
    base = server.base_urls[0]
    urls = urls_on(server, token, 5) + [
        f"{base}/status/404/{token}",
        f"{base}/flaky/2/{token}",
        f"{base}/redirect/3/{token}",
        f"{server.base_urls[1]}/to/{base.rsplit(':', 1)[1]}/page/{token}/moved",
        f"{base}/bytes/70000/{token}",
    ]
    results = urlfleet.fetch_all(urls, jobs=16, per_host=2, backoff=0.01, host_backoff=0.05)
    assert [r.url for r in results] == urls
    by_url = {r.url: r for r in results}
    assert all(by_url[u].ok and by_url[u].status == 200 for u in urls[:40])
    missing = by_url[f"{base}/status/404/{token}"]
    assert (missing.ok, missing.status, missing.attempts) == (False, 404, 1)
    flaky = by_url[f"{base}/flaky/2/{token}"]
    assert flaky.ok and flaky.attempts == 3
    chain = by_url[f"{base}/redirect/3/{token}"]
    assert chain.ok and chain.redirects == 3 and chain.final_url == f"{base}/redirect/0/{token}"
    moved = by_url[urls[-2]]
    assert moved.ok and moved.final_url == f"{base}/page/{token}/moved"
    assert by_url[urls[-1]].bytes == 70000 and by_url[urls[-1]].ok
    # the server saw exactly the requests the records account for
    assert len(records(server, token)) == sum(r.requests for r in results)


def test_dropped_connections_are_retried_then_recorded(server: LoopbackProcess, token: str) -> None:
    url = f"{server.base_urls[2]}/drop/{token}"
    (result,) = urlfleet.fetch_all([url], retries=2, backoff=0.01)
    assert not result.ok and result.status is None and result.attempts == 3
    assert result.error is not None and result.error.startswith("ConnectionError")
    assert len(records(server, token)) == 3


def test_read_timeout_is_retried_and_named(server: LoopbackProcess, token: str) -> None:
    url = f"{server.base_urls[3]}/slow-body/1.0/5/{token}?latency=0"
    (result,) = urlfleet.fetch_all([url], retries=1, timeout=0.3, backoff=0.01)
    assert not result.ok and result.attempts == 2
    assert result.error is not None and "ReadTimeout" in result.error


def test_max_bytes_cuts_a_gzip_bomb(server: LoopbackProcess, token: str) -> None:
    url = f"{server.base_urls[0]}/gzip/50000000/{token}"
    (result,) = urlfleet.fetch_all([url], max_bytes=1_000_000)
    assert result.truncated and not result.ok and result.bytes == 1_000_000


def test_per_host_limit_holds_at_64_jobs(server: LoopbackProcess, token: str) -> None:
    urls = urls_on(server, token, 25)  # 200 URLs on 8 hosts
    results = urlfleet.fetch_all(urls, jobs=64, per_host=2)
    assert all(r.ok for r in results)
    loads = host_loads(records(server, token))
    assert len(loads) == 8
    assert max(load.max_in_flight for load in loads.values()) == 2  # the limit, and it was used


def paced_run(
    server: LoopbackProcess, token: str, writes: ClientWrites, delay: float
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Start stamps by host of 8 URLs on each of 4 hosts at 64 jobs: the client's and the
    server's."""
    urls = [f"{base}/page/{token}/{i}" for base in server.base_urls[:4] for i in range(8)]
    results = urlfleet.fetch_all(urls, jobs=64, per_host=4, delay=delay)
    assert all(r.ok for r in results)
    assert sorted(w.url for w in writes.of(token)) == sorted(urls)  # each write was seen
    return writes.starts(token), server_starts(records(server, token))


def test_start_gap_holds_at_64_jobs(
    server: LoopbackProcess, token: str, client_writes: ClientWrites
) -> None:
    client, seen = paced_run(server, token, client_writes, delay=0.1)
    assert len(client) == len(seen) == 4
    assert short_gaps(client, 0.1) == []  # exact: kept at the write, on the client's clock
    assert short_gaps(seen, 0.1 - SERVER_SLACK) == []  # the server's stamps may come late


def test_the_start_gap_checks_fail_a_run_without_a_gap(
    server: LoopbackProcess, token: str, client_writes: ClientWrites
) -> None:
    # The same run and checks with no delay: both must see gaps that short, or they could not
    # have seen a broken one above.
    client, seen = paced_run(server, token, client_writes, delay=0.0)
    assert short_gaps(client, 0.1) and short_gaps(seen, 0.1 - SERVER_SLACK)


def test_hot_host_at_the_top_does_not_starve_the_others(token: str) -> None:
    # 60 URLs of one host first, then 10 on each of 7 others: a host-sorted list.
    with LoopbackProcess(ServerSpec(hosts=8, latency=0.05)) as server:
        hot, *others = server.base_urls
        urls = [f"{hot}/page/{token}/{i}" for i in range(60)]
        urls += [f"{base}/page/{token}/{i}" for base in others for i in range(10)]
        results = urlfleet.fetch_all(urls, jobs=16, per_host=2)
        assert all(r.ok for r in results)
        log = records(server, token)
    hot_key = hot.removeprefix("http://")
    start = min(r.arrived for r in log)
    hot_done = max(r.finished for r in log if r.host == hot_key) - start
    others_done = max(r.finished for r in log if r.host != hot_key) - start
    # The hot host needs 60 * 50 ms / 2 = 1.5 s whatever happens; the others need 0.25 s each
    # and, if not starved, are done long before the hot host is.
    assert hot_done >= 1.5
    assert others_done < 0.5 * hot_done


def test_a_slow_host_does_not_hold_threads_others_could_use(token: str) -> None:
    spec = ServerSpec(hosts=5, latency=0.05, host_latency=(1.0,))
    with LoopbackProcess(spec) as server:
        slow, *fast = server.base_urls
        urls = [f"{slow}/page/{token}/{i}" for i in range(8)]
        urls += [f"{base}/page/{token}/{i}" for base in fast for i in range(20)]
        urlfleet.fetch_all(urls, jobs=8, per_host=2)
        log = records(server, token)
    slow_key = slow.removeprefix("http://")
    start = min(r.arrived for r in log)
    fast_done = max(r.finished for r in log if r.host != slow_key) - start
    # 80 fast URLs on 6 free threads (2 sit on the slow host) take ~0.7 s; parked threads
    # would take 8 URLs x 1 s / 2 = 4 s.
    assert fast_done < 1.5


def test_a_result_comes_out_while_its_thread_waits_for_work(token: str) -> None:
    # The slow host's requests take 3 s; every fast URL is done within half a second, and its
    # record must come out then, not when the thread that made it next finds work.
    spec = ServerSpec(hosts=2, latency=0.02, host_latency=(3.0,))
    with LoopbackProcess(spec) as server:
        slow, fast = server.base_urls
        urls = [f"{slow}/page/{token}/{i}" for i in range(4)]
        urls += [f"{fast}/page/{token}/{i}" for i in range(20)]
        order = [r.url.startswith(slow) for r in urlfleet.fetch(urls, jobs=16, per_host=2)]
    assert order == [False] * 20 + [True] * 4


def test_retry_after_pauses_the_whole_host_only(server: LoopbackProcess, token: str) -> None:
    throttled, other = server.base_urls[4], server.base_urls[5]
    urls = [f"{throttled}/retry-after/1/1/{token}/first"]
    urls += [f"{throttled}/page/{token}/{i}" for i in range(4)]
    urls += [f"{other}/page/{token}/{i}" for i in range(30)]
    results = urlfleet.fetch_all(urls, jobs=8, per_host=1)
    assert all(r.ok for r in results) and results[0].attempts == 2
    log = sorted(records(server, token), key=lambda r: r.arrived)
    throttled_key = throttled.removeprefix("http://")
    told = next(r for r in log if r.status == 429)
    during = [r for r in log if told.finished < r.arrived < told.finished + 0.95]
    assert during and all(r.host != throttled_key for r in during)  # others went on


def test_closing_the_generator_stops_dispatch(server: LoopbackProcess, token: str) -> None:
    urls = urls_on(server, token, 50)  # 400 URLs
    stream: Iterator[urlfleet.Result] = urlfleet.fetch(urls, jobs=8, per_host=1)
    first = [next(stream) for _ in range(5)]
    stream.close()  # type: ignore[attr-defined]
    assert len(first) == 5
    assert len(records(server, token)) < 40
