"""A good citizen, checked from the server's side: host-wide pauses, robots.txt, cut-offs."""

from __future__ import annotations

import socket
import time
import uuid

import pytest

import urlfleet
from tests.conftest import SERVER_SLACK
from tests.gaps import ClientWrites
from urlfleet.loopback import LoopbackProcess, RequestRecord, ServerSpec, host_loads

pytestmark = pytest.mark.integration


def key(base: str) -> str:
    return base.removeprefix("http://")


def test_retry_after_2_stops_the_host_for_2_s_while_others_go_on(
    server: LoopbackProcess,
) -> None:
    token = uuid.uuid4().hex[:10]
    throttled, other = server.base_urls[6], server.base_urls[7]
    urls = [f"{throttled}/retry-after/2/1/{token}"]
    urls += [f"{throttled}/page/{token}/{i}" for i in range(3)]
    urls += [f"{other}/page/{token}/{i}" for i in range(60)]
    # One request at a time per host: nothing else is in flight when the 429 arrives.
    results = urlfleet.fetch_all(urls, jobs=8, per_host=1)
    assert all(r.ok for r in results)
    log = server.records(contains=token)
    told = next(r for r in log if r.status == 429)
    later = [r for r in log if r.host == key(throttled) and r.arrived > told.finished]
    # told.finished is stamped after the 429 went out, so a late stamp shortens the pause seen
    assert later and min(r.arrived for r in later) >= told.finished + 2.0 - SERVER_SLACK
    during = [r for r in log if r.host == key(other) and told.finished < r.arrived]
    assert len([r for r in during if r.arrived < told.finished + 2.0]) >= 10


def test_429_without_retry_after_backs_the_host_off(server: LoopbackProcess) -> None:
    token = uuid.uuid4().hex[:10]
    base = server.base_urls[5]
    urls = [f"{base}/status/429/{token}/a"] + [f"{base}/page/{token}/{i}" for i in range(3)]
    results = urlfleet.fetch_all(urls, jobs=4, per_host=1, retries=1, host_backoff=0.5)
    assert results[0].error == "HTTP 429 after 2 attempts"
    log = sorted(server.records(contains=token), key=lambda r: r.arrived)
    first_429 = next(r for r in log if r.status == 429)
    after = [r for r in log if r.arrived > first_429.finished]
    assert min(r.arrived for r in after) >= first_429.finished + 0.5 - SERVER_SLACK


def others_finish(server: LoopbackProcess, token: str, paused: bool) -> float:
    hosts = server.base_urls
    urls = [f"{hosts[0]}/retry-after/3/1/{token}/x"] if paused else []
    urls += [f"{hosts[0]}/page/{token}/p{i}" for i in range(20)] if paused else []
    urls += [f"{base}/page/{token}/{i}" for base in hosts[1:] for i in range(10)]
    urlfleet.fetch_all(urls, jobs=16, per_host=2)
    log = server.records(contains=token)
    start = min(r.arrived for r in log)
    return max(r.finished for r in log if r.host != key(hosts[0])) - start


def test_a_paused_host_does_not_delay_the_others() -> None:
    with LoopbackProcess(ServerSpec(hosts=20, latency=0.05)) as server:
        alone = others_finish(server, uuid.uuid4().hex[:10], paused=False)
        beside = others_finish(server, uuid.uuid4().hex[:10], paused=True)
    # 190 URLs x 50 ms on 16 threads: ~0.6 s either way; a parked host would add its 3 s.
    assert beside < alone * 1.5 + 0.3


ROBOTS = "User-agent: *\nDisallow: /private\nCrawl-delay: 0.3\n"


def robots_hits(log: list[RequestRecord], host: str) -> int:
    return sum(1 for r in log if r.host == host and r.path == "/robots.txt")


def test_robots_rules_crawl_delay_404_and_5xx() -> None:
    spec = ServerSpec(hosts=3, latency=0.01, robots=((0, 200, ROBOTS), (2, 503, "down")))
    token = uuid.uuid4().hex[:10]
    with LoopbackProcess(spec) as server:
        ruled, missing, broken = server.base_urls
        urls = [f"{ruled}/page/{token}/{i}" for i in range(4)]
        urls += [f"{ruled}/private/{token}/{i}" for i in range(3)]
        urls += [f"{missing}/page/{token}/{i}" for i in range(5)]
        urls += [f"{broken}/page/{token}/{i}" for i in range(3)]
        results = urlfleet.fetch_all(
            urls, jobs=8, per_host=4, robots=True, retries=1, host_backoff=0.2
        )
        log = server.records()
    by_url = {r.url: r for r in results}
    assert all(by_url[u].ok for u in urls[:4] + urls[7:12])
    assert all(by_url[u].error == "disallowed by robots.txt" for u in urls[4:7])
    assert all(by_url[u].error == "robots.txt unavailable (HTTP 503)" for u in urls[12:])
    mine = [r for r in log if token in r.path or r.path == "/robots.txt"]
    assert not any("/private/" in r.path for r in mine)  # never requested
    assert not any(r.host == key(broken) and token in r.path for r in mine)
    assert robots_hits(mine, key(ruled)) == 1 and robots_hits(mine, key(missing)) == 1
    assert robots_hits(mine, key(broken)) == 2  # deferred once, then given up (retries=1)
    loads = host_loads([r for r in mine if r.host == key(ruled)])
    assert (
        loads[key(ruled)].min_gap >= 0.3 - SERVER_SLACK
    )  # Crawl-delay, robots.txt request included
    assert loads[key(ruled)].max_in_flight == 1


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("host", [f"127.0.0.1:{closed_port()}", "urlfleet-test.invalid"])
def test_a_dead_host_is_cut_off_quickly(host: str) -> None:
    urls = [f"http://{host}/page/{i}" for i in range(50)]
    started = time.monotonic()
    results = urlfleet.fetch_all(
        urls, jobs=8, per_host=2, retries=3, backoff=0.01, host_max_failures=4
    )
    assert time.monotonic() - started < 10
    assert not any(r.ok for r in results)
    cut = [r for r in results if r.error and r.error.startswith("host cut off after 4")]
    assert len(cut) >= 40
    assert sum(r.attempts for r in results) <= 4 + 2 * 4  # the threshold, plus those in flight


def test_auto_throttle_slows_down_under_429s_and_speeds_up_after(
    server: LoopbackProcess, client_writes: ClientWrites
) -> None:
    token = uuid.uuid4().hex[:10]
    base = server.base_urls[3]
    urls = [f"{base}/status/429/{token}/{i}" for i in range(3)]
    urls += [f"{base}/page/{token}/{i}?latency=0.02" for i in range(12)]
    urlfleet.fetch_all(urls, jobs=4, per_host=1, retries=0, host_backoff=0, auto_throttle=True)
    log = sorted(server.records(contains=token), key=lambda r: r.arrived)
    assert [r.status for r in log] == [429] * 3 + [200] * 12  # one at a time, in order
    # The pace is kept at the write: its gaps, exact on the client's own stamps.
    writes = sorted(client_writes.starts(token)[key(base)])
    assert len(writes) == len(urls)
    gaps = [later - earlier for earlier, later in zip(writes, writes[1:], strict=False)]
    assert gaps[0] >= 0.25 and gaps[1] >= 0.5 and gaps[2] >= 1.0  # doubling under 429s
    # Falling back once they stop: each 200 moves the pace halfway to the latency it saw, so
    # a response slowed by a busy machine may raise it for a while; it still ends far below
    # where throttling began (0.25 s).
    assert gaps[3] < gaps[2] and max(gaps[-4:]) < 0.25, gaps
