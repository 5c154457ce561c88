"""Every request passes the one gate: checked from the server's side, through real parts.

Each test starts its own loopback hosts (so the server's records are its own), sends urlfleet
down one request path (a forward proxy, NO_PROXY, a caller's Session, one host under several
names, a pause that arrives while requests wait, a slow or self-feeding input) and checks what
the server saw: requests in flight per host, and gaps between request arrivals. Gaps are
checked twice: exactly, on the client's own write stamps, and at the server with an allowance
for its stamps (and a proxy's forwarding) coming late on a busy machine.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

import urlfleet
from tests.conftest import PROXY_SLACK, SERVER_SLACK
from tests.gaps import ClientWrites, server_starts, short_gaps
from tests.realparts import ForwardProxy, HostsMapping, TlsFiles
from urlfleet.loopback import LoopbackProcess, RequestRecord, ServerSpec, host_loads

pytestmark = pytest.mark.integration


@pytest.fixture
def token() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="module")
def origin() -> Iterator[LoopbackProcess]:
    """Three hosts, 50 ms each, for the tests of this module alone."""
    with LoopbackProcess(ServerSpec(hosts=3, latency=0.05)) as process:
        yield process


def loads(server: LoopbackProcess, token: str) -> dict[str, Any]:
    return host_loads(server.records(token))


def impolite(
    records: list[RequestRecord],
    writes: ClientWrites,
    within: str,
    *,
    per_host: int,
    delay: float,
    slack: float = SERVER_SLACK,
) -> list[tuple[str, str, float]]:
    """What broke the rules, as ``(where, host, figure)``: a host with more than ``per_host``
    requests open at the server; two starts closer than ``delay`` at the client's writes
    (exact), or closer than ``delay - slack`` at the server. ``within`` picks this test's
    writes (its token, or its server's base URL) to stand beside ``records``."""
    assert records, "the server saw nothing"
    assert len(writes.of(within)) == len(records)  # every request the server saw was seen
    crowded = [load for load in host_loads(records).values() if load.max_in_flight > per_host]
    broken = [("in flight", load.host, float(load.max_in_flight)) for load in crowded]
    if delay:
        broken += [("client", *gap) for gap in short_gaps(writes.starts(within), delay)]
        broken += [("server", *gap) for gap in short_gaps(server_starts(records), delay - slack)]
    return broken


def through_a_forward_proxy(
    origin: LoopbackProcess, token: str, monkeypatch: pytest.MonkeyPatch, delay: float
) -> list[RequestRecord]:
    """16 URLs on two hosts through proxy.py, per-host 2: what the origin saw of them."""
    urls = [f"{base}/page/{token}/{i}" for base in origin.base_urls[:2] for i in range(8)]
    with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        results = urlfleet.fetch_all(urls, jobs=16, per_host=2, delay=delay)
        seen = proxy.seen()
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert sum(token in entry["path"] for entry in seen) == len(urls)  # all through the proxy
    return origin.records(token)


def test_through_a_forward_proxy_every_request_keeps_the_rules(
    origin: LoopbackProcess, token: str, monkeypatch: pytest.MonkeyPatch,
    client_writes: ClientWrites,
) -> None:  # fmt: skip
    records = through_a_forward_proxy(origin, token, monkeypatch, delay=0.2)
    assert impolite(records, client_writes, token, per_host=2, delay=0.2, slack=PROXY_SLACK) == []


def test_the_checks_through_a_proxy_fail_a_run_without_a_gap(
    origin: LoopbackProcess, token: str, monkeypatch: pytest.MonkeyPatch,
    client_writes: ClientWrites,
) -> None:  # fmt: skip
    # The same run with no delay: the client's check and the server's must both see short
    # gaps, or they could not have seen a broken gap above.
    records = through_a_forward_proxy(origin, token, monkeypatch, delay=0.0)
    broken = impolite(records, client_writes, token, per_host=2, delay=0.2, slack=PROXY_SLACK)
    assert {where for where, *_ in broken} == {"client", "server"}, broken


def test_a_proxy_that_keeps_one_origin_per_connection_gets_one(
    origin: LoopbackProcess, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # proxy.py forwards every request of a keep-alive connection to the first request's host.
    # The proxy here answers such a request with a 502 rather than another host's page.
    urls = [f"{base}/page/{token}/{i}" for i in range(10) for base in origin.base_urls]
    with ForwardProxy(keep_alive=True) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        results = urlfleet.fetch_all(urls, jobs=8, per_host=2)
    assert all(r.ok and r.attempts == 1 for r in results), [r.error for r in results][:3]
    arrived = {(r.host, r.path) for r in origin.records(token)}
    assert all((r.host, r.url.split(r.host, 1)[1]) in arrived for r in results)


def test_robots_txt_goes_through_the_proxy_too(
    token: str, monkeypatch: pytest.MonkeyPatch, client_writes: ClientWrites
) -> None:
    robots = "User-agent: *\nDisallow: /private\n"
    with (
        LoopbackProcess(ServerSpec(hosts=1, latency=0.02, robots=((0, 200, robots),))) as server,
        ForwardProxy() as proxy,
    ):
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        base = server.base_urls[0]
        urls = [f"{base}/page/{token}/1", f"{base}/private/{token}"]
        results = {r.url: r for r in urlfleet.fetch_all(urls, robots=True, delay=0.2)}
        seen = [entry["path"] for entry in proxy.seen()]
        arrivals = server.records()
    assert results[urls[0]].ok
    assert results[urls[1]].error == "disallowed by robots.txt"
    assert "/robots.txt" in seen and f"/page/{token}/1" in seen
    # robots.txt keeps the gap to the page that follows it, like any request to its host
    assert impolite(arrivals, client_writes, base, per_host=1, delay=0.2, slack=PROXY_SLACK) == []


def test_no_proxy_hosts_go_direct_and_keep_the_gap(
    origin: LoopbackProcess,
    token: str,
    monkeypatch: pytest.MonkeyPatch,
    hosts_mapping: HostsMapping,
    client_writes: ClientWrites,
) -> None:
    hosts_mapping.add("direct.test", "127.0.0.1")
    direct = origin.base_urls[0].replace("127.0.0.1", "direct.test")
    proxied = origin.base_urls[1]
    urls = [f"{base}/page/{token}/{i}" for base in (direct, proxied) for i in range(6)]
    with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "localhost,direct.test")  # as in many containers
        results = urlfleet.fetch_all(urls, jobs=8, per_host=2, delay=0.2)
        seen = proxy.seen()
    assert all(r.ok for r in results)
    through = {entry["target"] for entry in seen if token in entry["path"]}
    assert through == {proxied.split("//")[1]}
    records = origin.records(token)
    assert impolite(records, client_writes, token, per_host=2, delay=0.2, slack=PROXY_SLACK) == []


def test_a_callers_session_is_gated_at_the_write(
    origin: LoopbackProcess, token: str, client_writes: ClientWrites
) -> None:
    sessions: list[requests.Session] = []

    def own_session() -> requests.Session:
        session = requests.Session()
        session.headers["X-Mine"] = "yes"
        sessions.append(session)
        return session

    urls = [f"{origin.base_urls[2]}/page/{token}/{i}" for i in range(8)]
    results = urlfleet.fetch_all(urls, jobs=8, per_host=3, delay=0.15, session_factory=own_session)
    assert all(r.ok for r in results) and sessions
    records = origin.records(token)
    assert all(record.headers.get("x-mine") == "yes" for record in records)
    assert impolite(records, client_writes, token, per_host=3, delay=0.15) == []


def test_one_host_under_several_names_is_one_host(hosts_mapping: HostsMapping, token: str) -> None:
    with LoopbackProcess(ServerSpec(addresses=("127.0.0.2",), latency=0.2)) as server:
        port = server.base_urls[0].rsplit(":", 1)[1]
        hosts_mapping.add("bücher.test", "127.0.0.2")
        names = ["bücher.test", "xn--bcher-kva.test", "BÜCHER.test", "bücher.test.", "127.0.0.2"]
        urls = [f"http://{name}:{port}/page/{token}/{i}" for i in range(4) for name in names[:4]]
        results = urlfleet.fetch_all(urls, jobs=16, per_host=2)
        records = server.records(token)
    assert all(r.ok for r in results)
    assert {r.host for r in results} == {f"xn--bcher-kva.test:{port}"}
    assert max(load.max_in_flight for load in host_loads(records).values()) == 2


def test_ipv6_spellings_are_one_host(token: str) -> None:
    with LoopbackProcess(ServerSpec(addresses=("::1",), latency=0.2)) as server:
        port = server.base_urls[0].rsplit(":", 1)[1]
        spellings = ["[::1]", "[0:0:0:0:0:0:0:1]", "[0::1]"]
        urls = [f"http://{name}:{port}/page/{token}/{i}" for i in range(4) for name in spellings]
        results = urlfleet.fetch_all(urls, jobs=12, per_host=2)
        records = server.records(token)
    assert all(r.ok for r in results)
    assert max(load.max_in_flight for load in host_loads(records).values()) == 2


def test_nothing_is_written_during_a_pause_that_came_while_others_waited(token: str) -> None:
    # One fast 429 (Retry-After: 1) among slower requests to the same host, per-host 4: the
    # others are in flight, queued or connecting when it comes; none may be written in the 1 s.
    with LoopbackProcess(ServerSpec(hosts=1, latency=0.3)) as server:
        base = server.base_urls[0]
        urls = [f"{base}/retry-after/1/1/{token}?latency=0"]
        urls += [f"{base}/page/{token}/{i}" for i in range(16)]
        results = urlfleet.fetch_all(urls, jobs=8, per_host=4)
        records = sorted(server.records(token), key=lambda r: r.arrived)
    assert all(r.ok for r in results)
    throttled = next(r for r in records if r.status == 429)
    during = [r for r in records if throttled.finished < r.arrived < throttled.finished + 1.0]
    assert not [r.path for r in during if r.arrived > throttled.finished + SERVER_SLACK]
    assert max(load.max_in_flight for load in host_loads(records).values()) <= 4


def test_a_slow_stdin_is_fetched_as_it_comes(origin: LoopbackProcess, token: str) -> None:
    # `tail -f found.txt | urlfleet fetch -`: each URL's record comes out while stdin is open.
    command = [sys.executable, "-m", "urlfleet", "fetch", "-", "--no-progress", "-j", "8"]
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as child:  # fmt: skip
        assert child.stdin is not None and child.stdout is not None
        out, lines = child.stdout, queue.Queue[str]()
        threading.Thread(target=lambda: [lines.put(line) for line in out], daemon=True).start()
        try:
            for i in range(3):
                child.stdin.write(f"{origin.base_urls[i]}/page/{token}/{i}\n")
                child.stdin.flush()
                record = lines.get(timeout=20)  # before the next URL is even written
                assert f"/page/{token}/{i}" in record and '"ok": true' in record
            child.stdin.close()
            assert child.wait(timeout=20) == 0
        finally:
            child.kill()


def test_a_generator_that_waits_on_results_is_fed(origin: LoopbackProcess, token: str) -> None:
    # A crawl that feeds what it finds back into the list: each URL waits for the last result.
    seen = threading.Event()
    done: list[str] = []

    def crawl() -> Iterator[str]:
        for i in range(5):
            seen.clear()
            yield f"{origin.base_urls[i % 3]}/page/{token}/{i}"
            if not seen.wait(20):
                raise AssertionError("the result of the last URL never came")

    def consume() -> None:
        for result in urlfleet.fetch(crawl(), jobs=4):
            done.append(result.url)
            seen.set()

    worker = threading.Thread(target=consume, daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), f"deadlocked after {len(done)} results"
    assert len(done) == 5 and time.monotonic() - started < 30


# -- HTTPS, CONNECT tunnels and idle connections -------------------------------------------


@pytest.fixture(scope="module")
def tls_origin(tls_files: TlsFiles) -> Iterator[LoopbackProcess]:
    """Two HTTPS hosts, 50 ms each, with certificates from the test CA."""
    spec = ServerSpec(
        hosts=2, latency=0.05, tls_cert=tls_files.cert_path, tls_key=tls_files.key_path
    )
    with LoopbackProcess(spec) as process:
        yield process


def test_https_keeps_the_gap_from_the_write_not_the_handshake(
    tls_origin: LoopbackProcess, tls_files: TlsFiles, token: str, monkeypatch: pytest.MonkeyPatch,
    client_writes: ClientWrites,
) -> None:  # fmt: skip
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_files.ca_path)
    urls = [f"{base}/page/{token}/{i}" for base in tls_origin.base_urls for i in range(6)]
    assert all(url.startswith("https://") for url in urls)
    quiet = tls_origin.base_urls[1].split("//")[1]  # the control requests go to the first host
    before = tls_origin.stats()["host_connections"].get(quiet, 0)
    results = urlfleet.fetch_all(urls, jobs=12, per_host=2, delay=0.15)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    records = tls_origin.records(token)
    assert impolite(records, client_writes, token, per_host=2, delay=0.15) == []
    opened = tls_origin.stats()["host_connections"][quiet] - before
    assert opened <= 2  # no connection set up and dropped unused


def test_https_on_fresh_connections_after_a_wait_goes_out(
    tls_origin: LoopbackProcess, tls_files: TlsFiles, token: str, monkeypatch: pytest.MonkeyPatch,
    client_writes: ClientWrites,
) -> None:  # fmt: skip
    # Every request on a new TLS 1.3 connection (the server closes each one), each waiting for
    # its gap: the server's session tickets make a fresh connection readable, which must not
    # pass for one the server closed.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_files.ca_path)
    urls = [f"{tls_origin.base_urls[1]}/page/{token}/{i}" for i in range(3)]
    done: list[urlfleet.Result] = []
    worker = threading.Thread(
        target=lambda: done.extend(
            urlfleet.fetch_all(urls, delay=0.2, headers={"Connection": "close"}, retries=0)
        ),
        daemon=True,
    )
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "never sent"
    assert [r.ok for r in done] == [True] * 3, [r.error for r in done]
    records = tls_origin.records(token)
    assert impolite(records, client_writes, token, per_host=2, delay=0.2) == []


def test_https_without_the_ca_fails_verification_in_plain_words(
    tls_origin: LoopbackProcess, token: str
) -> None:
    url = f"{tls_origin.base_urls[0]}/page/{token}/x"
    (result,) = urlfleet.fetch_all([url], retries=3, backoff=0.01)
    assert not result.ok and result.status is None and result.error_kind == "tls"
    assert (
        result.error
        == "SSLError: certificate verify failed: unable to get local issuer certificate"
    )
    assert result.attempts == 1  # a certificate does not heal: never retried


def test_https_through_a_connect_tunnel_keeps_the_rules(
    tls_origin: LoopbackProcess, tls_files: TlsFiles, token: str, monkeypatch: pytest.MonkeyPatch,
    client_writes: ClientWrites,
) -> None:  # fmt: skip
    urls = [f"{base}/page/{token}/{i}" for base in tls_origin.base_urls for i in range(12)]
    with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_files.ca_path)
        tls_origin.clear()
        results = urlfleet.fetch_all(urls, jobs=12, per_host=4, delay=0.2, robots=True)
        tunnels = [entry for entry in proxy.seen() if entry["method"] == "CONNECT"]
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    # robots.txt too went through the tunnel, verified against the same CA bundle
    assert sum(r.path == "/robots.txt" for r in tls_origin.records()) == 2
    targets = {base.split("//")[1] for base in tls_origin.base_urls}
    assert tunnels and {entry["target"] for entry in tunnels} == targets
    records = tls_origin.records(token)
    assert impolite(records, client_writes, token, per_host=4, delay=0.2, slack=PROXY_SLACK) == []
    for host in targets:  # tunnels reused: no more of them than requests in flight
        assert len({r.connection for r in records if r.host == host}) <= 4


def test_a_long_crawl_delay_holds_no_thread_and_no_stale_connection(
    token: str, client_writes: ClientWrites
) -> None:
    # Crawl-delay 2 s on a server that drops connections idle for 0.5 s (Apache does after
    # 5 s; Crawl-delay: 10 is common). Every request must go out on a live connection, with
    # no retries, and the crawl-delayed host must hold no thread between its requests: the
    # other two hosts keep all four threads to themselves.
    latency, per_host, pages = 0.2, 2, 20
    robots = ((0, 200, "User-agent: *\nCrawl-delay: 2\n"),)
    spec = ServerSpec(hosts=3, latency=latency, robots=robots, idle_timeout=0.5)
    with LoopbackProcess(spec) as server:
        slow, *others = server.base_urls
        urls = [f"{slow}/page/{token}/{i}" for i in range(3)]
        urls += [f"{base}/page/{token}/{i}" for base in others for i in range(pages)]
        results = urlfleet.fetch_all(urls, jobs=2 * per_host, per_host=per_host, robots=True,
                                     retries=0)  # fmt: skip
        records = server.records()
        idle_closed = server.stats()["idle_closed"]
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert idle_closed > 0  # the server did drop idle connections meanwhile
    by_host: dict[str, list[RequestRecord]] = {}
    for record in records:
        by_host.setdefault(record.host, []).append(record)
    slow_key = slow.split("//")[1]
    starts = sorted(r.arrived for r in by_host[slow_key])
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:], strict=False)]
    assert len(starts) == 4 and min(gaps) >= 2 - SERVER_SLACK
    assert len(client_writes.of(slow)) == 4 and short_gaps(client_writes.starts(slow), 2) == []
    bound = (1 + pages / per_host) * latency  # robots.txt, then the pages per_host at a time
    for base in others:
        own = by_host[base.split("//")[1]]
        took = max(r.finished for r in own) - min(r.arrived for r in own)
        assert took <= 1.2 * bound, (base, took, bound)


class _DueLater:
    """A host's lease whose gap ends ``wait`` seconds after the first time it is asked."""

    def __init__(self, wait: float) -> None:
        self.clock, self.sleep = time.monotonic, time.sleep
        self.wait, self.due, self.writes = wait, None, []  # type: ignore[var-annotated]
        self._lock = threading.Lock()

    def write_lock(self) -> Any:
        return self._lock

    def write_due(self, now: float) -> tuple[float, bool]:
        if self.due is None:
            self.due = now + self.wait
        return self.due, True

    def wrote(self, at: float) -> None:
        self.writes.append(at)


@pytest.mark.parametrize("wait", [0.0, 0.6])
def test_a_connection_closed_while_its_request_waits_for_the_gap_writes_nothing(
    wait: float, token: str
) -> None:
    # The server drops connections idle for 0.3 s. A request that waits 0.6 s at the write, on
    # a pooled connection urllib3 found open, must find it closed and go back unwritten (the
    # frontier then sends it on a fresh one); one that does not wait goes out on it.
    from urlfleet.fetching.adapter import GatedAdapter
    from urlfleet.fetching.gate import NotDue, gate

    with LoopbackProcess(ServerSpec(hosts=1, latency=0, idle_timeout=0.3)) as server:
        pool = GatedAdapter(max_retries=0).poolmanager.connection_from_url(server.base_urls[0])
        assert pool.urlopen("GET", f"/page/{token}/first").status == 200
        lease = _DueLater(wait)
        with gate(lease):
            if wait:
                with pytest.raises(NotDue):
                    pool.urlopen("GET", f"/page/{token}/second", retries=False)
            else:
                assert pool.urlopen("GET", f"/page/{token}/second").status == 200
        paths = [record.path for record in server.records(token)]
    assert paths == [f"/page/{token}/first"] + ([] if wait else [f"/page/{token}/second"])
    assert len(lease.writes) == (0 if wait else 1)  # what went out counts for the gap
