"""The loopback test server over real sockets: keep-alive, hosts, latency, fault routes,
records, and the child-process variant."""

from __future__ import annotations

import email.utils
import gzip
import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from urlfleet.loopback import (
    HostLoad,
    LoopbackProcess,
    LoopbackServer,
    RequestRecord,
    ServerSpec,
    host_loads,
    main,
)

pytestmark = pytest.mark.integration

ROBOTS = "User-agent: *\nDisallow: /private\n"


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    """Three hosts without latency; tests use unique paths so they do not see each other."""
    spec = ServerSpec(hosts=3, latency=0, robots=((1, 200, ROBOTS),))
    with LoopbackServer(spec) as running:
        yield running


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def token() -> str:
    return uuid.uuid4().hex[:12]


def netloc(url: str) -> str:
    return urlsplit(url).netloc


def raw_exchange(url: str, payload: bytes, *, half_close: bool = False) -> bytes:
    """Send raw bytes on a fresh connection (then EOF if ``half_close``) and read until the
    server closes it."""
    parts = urlsplit(url)
    address = (parts.hostname or "", parts.port or 80)
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(payload)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# --------------------------------------------------------------------------- connections


def test_keep_alive_reuses_one_connection_and_nagle_does_not_bite() -> None:
    with LoopbackServer(ServerSpec(hosts=1, latency=0)) as srv, requests.Session() as s:
        before = srv.stats()["connections"]
        tag = token()
        started = time.monotonic()
        for i in range(100):
            response = s.get(f"{srv.base_urls[0]}/page/{tag}/{i}")
            assert response.status_code == 200
        elapsed = time.monotonic() - started
        assert srv.stats()["connections"] - before == 1
        assert len(srv.records(tag)) == 100
    # Nagle + delayed ACK would cost ~40 ms per request, i.e. ~4 s for 100.
    assert elapsed < 100 * 0.045 / 3


def test_connection_close_is_honoured(server: LoopbackServer, session: requests.Session) -> None:
    before = server.stats()["connections"]
    for _ in range(5):
        response = session.get(server.base_urls[0] + "/", headers={"Connection": "close"})
        assert response.status_code == 200
        assert response.headers["Connection"] == "close"
    assert server.stats()["connections"] - before == 5


def test_raw_pipelining_half_close_and_body_skipping(server: LoopbackServer) -> None:
    tag = token()
    payload = (
        f"GET /a/{tag} HTTP/1.1\r\nHost: x\r\n\r\n"
        f"GET /b/{tag} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        f"HEAD /c/{tag} HTTP/1.1\r\nHost: x\r\n\r\n"
    ).encode()
    reply = raw_exchange(server.base_urls[0], payload, half_close=True)
    assert reply.count(b"HTTP/1.1 200 OK") == 3
    assert reply.index(f"Page /a/{tag}".encode()) < reply.index(f"Page /b/{tag}".encode())
    assert f"Page /c/{tag}".encode() not in reply  # HEAD: no body
    assert [r.path for r in server.records(tag)] == [f"/a/{tag}", f"/b/{tag}", f"/c/{tag}"]


def test_client_eof_while_waiting_counts_as_hang_up(server: LoopbackServer) -> None:
    tag = token()
    payload = f"GET /eof/{tag}?latency=1 HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    assert raw_exchange(server.base_urls[0], payload, half_close=True) == b""
    (record,) = server.records(tag)  # recorded before the server's FIN reached us
    assert record.status == 0 and record.finished - record.arrived < 0.8


def test_http_1_0_closes_unless_keep_alive_is_asked(server: LoopbackServer) -> None:
    reply = raw_exchange(server.base_urls[0], b"GET /old HTTP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 OK") and b"Connection: close\r\n" in reply
    parts = urlsplit(server.base_urls[0])
    with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=5) as sock:
        reader = sock.makefile("rb")
        for _ in range(2):  # the same connection serves twice
            sock.sendall(b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            head = b"".join(iter(reader.readline, b"\r\n"))
            assert head.startswith(b"HTTP/1.1 200 OK")
            assert b"Connection: keep-alive\r\n" in head
            length = re.search(rb"Content-Length: (\d+)", head)
            assert length is not None and b"</html>" in reader.read(int(length[1]))
        reader.close()


@pytest.mark.parametrize(
    "payload",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /x HTTP/9.9\r\n\r\n",
        b"GET /x HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: x\r\n folded: line\r\n\r\n",
        b"GET /x HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
        b"GET x HTTP/1.1\r\n\r\n",
    ],
)
def test_malformed_requests_get_400_and_close(server: LoopbackServer, payload: bytes) -> None:
    reply = raw_exchange(server.base_urls[0], payload)  # returns only once the server closes
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert b"Connection: close\r\n" in reply


def test_other_methods_get_405(server: LoopbackServer, session: requests.Session) -> None:
    response = session.post(server.base_urls[0] + "/post", data=b"x" * 100)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert session.get(server.base_urls[0] + "/after-post").status_code == 200  # still in sync


# --------------------------------------------------------------------------- hosts & latency


def test_hosts_are_isolated(server: LoopbackServer, session: requests.Session) -> None:
    tag = token()
    urls = server.base_urls
    assert len(urls) == 3 and len({netloc(u) for u in urls}) == 3
    for index, url in enumerate(urls):
        for _ in range(index + 1):
            session.get(f"{url}/iso/{tag}/{index}")
    by_host: dict[str, list[str]] = {}
    for record in server.records(tag):
        by_host.setdefault(record.host, []).append(record.path)
    assert by_host == {netloc(url): [f"/iso/{tag}/{i}"] * (i + 1) for i, url in enumerate(urls)}


def test_latency_defaults_overrides_and_delay(session: requests.Session) -> None:
    spec = ServerSpec(hosts=2, latency=0.15, host_latency=(None, 0.35))
    with LoopbackServer(spec) as srv:
        cases = [
            (srv.base_urls[0] + "/lat/default", 0.15, 0.35),
            (srv.base_urls[1] + "/lat/host-override", 0.35, 0.55),
            (srv.base_urls[1] + "/lat/query?latency=0", 0.0, 0.15),
            (srv.base_urls[0] + "/delay/0.3/lat", 0.3, 0.5),
        ]
        for url, low, high in cases:
            started = time.monotonic()
            assert session.get(url).status_code == 200
            elapsed = time.monotonic() - started
            assert low <= elapsed < high, url
            (record,) = srv.records(urlsplit(url).path)
            assert low <= record.finished - record.arrived < high, url
            assert started <= record.arrived <= record.finished <= time.monotonic()


def test_bad_latency_parameter_is_400(server: LoopbackServer, session: requests.Session) -> None:
    assert session.get(server.base_urls[0] + "/x?latency=-1").status_code == 400
    assert session.get(server.base_urls[0] + "/delay/soon").status_code == 400


def test_concurrent_requests_are_recorded_overlapping(server: LoopbackServer) -> None:
    tag = token()
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def fetch(i: int) -> None:
        with requests.Session() as s:
            barrier.wait()
            statuses.append(s.get(f"{server.base_urls[2]}/conc/{tag}/{i}?latency=0.2").status_code)

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = server.records(tag)
    assert statuses == [200] * 8 and len(records) == 8
    assert all(r.finished - r.arrived >= 0.2 for r in records)
    (load,) = host_loads(records).values()
    assert load.host == netloc(server.base_urls[2]) and load.requests == 8
    assert load.max_in_flight == 8


def test_client_hanging_up_during_latency_is_recorded_as_dropped(
    server: LoopbackServer, session: requests.Session
) -> None:
    tag = token()
    with pytest.raises(requests.Timeout):
        session.get(f"{server.base_urls[0]}/hangup/{tag}?latency=2", timeout=0.3)
    deadline = time.monotonic() + 3
    while not server.records(tag) and time.monotonic() < deadline:
        time.sleep(0.02)
    (record,) = server.records(tag)
    assert record.status == 0
    assert 0.25 < record.finished - record.arrived < 1.5  # ended by the hang-up, not at 2 s


# --------------------------------------------------------------------------- routes


def test_default_page_has_title_and_three_links(
    server: LoopbackServer, session: requests.Session
) -> None:
    response = session.get(server.base_urls[0] + "/some/where?x=1")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert re.search(r"<title>Page /some/where\?x=1</title>", response.text)
    links = re.findall(r'href="(/page/[0-9a-f]+-\d)"', response.text)
    assert len(links) == 3 and len(set(links)) == 3
    again = session.get(server.base_urls[0] + "/some/where?x=1")
    assert re.findall(r'href="(/page/[0-9a-f]+-\d)"', again.text) == links  # deterministic
    head = session.head(server.base_urls[0] + "/some/where?x=1")
    assert head.content == b"" and head.headers["Content-Length"] == str(len(response.content))


def test_page_title_is_escaped(server: LoopbackServer) -> None:
    payload = b"GET /page/<i>&amp; HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    reply = raw_exchange(server.base_urls[0], payload)
    assert b"<title>Page /page/&lt;i&gt;&amp;amp;</title>" in reply


@pytest.mark.parametrize("code", [200, 204, 301, 404, 418, 500, 503])
def test_status_route(server: LoopbackServer, session: requests.Session, code: int) -> None:
    response = session.get(f"{server.base_urls[0]}/status/{code}/{token()}", allow_redirects=False)
    assert response.status_code == code
    assert "Location" not in response.headers
    if code == 204:
        assert response.content == b""
    else:
        assert response.content.startswith(str(code).encode())


def test_flaky_counts_per_path(server: LoopbackServer, session: requests.Session) -> None:
    url = f"{server.base_urls[0]}/flaky/2/{token()}"
    assert [session.get(url).status_code for _ in range(4)] == [503, 503, 200, 200]
    assert session.get(url + "-other").status_code == 503
    assert session.get(url.replace(server.base_urls[0], server.base_urls[1])).status_code == 503


def test_retry_after_seconds(server: LoopbackServer, session: requests.Session) -> None:
    url = f"{server.base_urls[0]}/retry-after/2/1/{token()}"
    first = session.get(url)
    assert first.status_code == 429 and first.headers["Retry-After"] == "2"
    assert session.get(url).status_code == 200


def test_retry_after_http_date(server: LoopbackServer, session: requests.Session) -> None:
    url = f"{server.base_urls[0]}/retry-after-date/30/2/{token()}"
    responses = [session.get(url) for _ in range(3)]
    assert [r.status_code for r in responses] == [429, 429, 200]
    when = email.utils.parsedate_to_datetime(responses[0].headers["Retry-After"])
    assert 28 <= when.timestamp() - time.time() <= 31


def test_redirect_chain(server: LoopbackServer, session: requests.Session) -> None:
    tag = token()
    first = session.get(f"{server.base_urls[0]}/redirect/3/{tag}/x?q=1", allow_redirects=False)
    assert first.status_code == 302
    assert first.headers["Location"] == f"/redirect/2/{tag}/x?q=1"
    final = session.get(f"{server.base_urls[0]}/redirect/3/{tag}/x?q=1")
    assert final.status_code == 200 and len(final.history) == 3
    assert final.url == f"{server.base_urls[0]}/redirect/0/{tag}/x?q=1"
    assert f"<title>Page /redirect/0/{tag}/x?q=1</title>" in final.text


def test_cross_host_redirect(server: LoopbackServer, session: requests.Session) -> None:
    tag = token()
    target = urlsplit(server.base_urls[1])
    url = f"{server.base_urls[0]}/to/{target.port}/landing/{tag}"
    first = session.get(url, allow_redirects=False)
    assert first.status_code == 302
    assert first.headers["Location"] == f"{server.base_urls[1]}/landing/{tag}"
    assert session.get(url).status_code == 200
    hosts = [r.host for r in server.records(tag)]
    assert hosts == [netloc(server.base_urls[0])] * 2 + [target.netloc]


@pytest.mark.parametrize("size", [0, 1, 7, 100_000])
def test_bytes_route(server: LoopbackServer, session: requests.Session, size: int) -> None:
    response = session.get(f"{server.base_urls[0]}/bytes/{size}/{token()}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert len(response.content) == size
    assert response.content == (b"urlfleet" * (size // 8 + 1))[:size]


def test_gzip_route_decodes_to_zeros(server: LoopbackServer, session: requests.Session) -> None:
    size = 3_000_000
    response = session.get(f"{server.base_urls[0]}/gzip/{size}/{token()}", stream=True)
    with response:
        assert response.headers["Content-Encoding"] == "gzip"
        compressed = response.raw.read(decode_content=False)
    assert len(compressed) == int(response.headers["Content-Length"]) < size // 500
    assert gzip.decompress(compressed) == bytes(size)
    assert session.get(f"{server.base_urls[1]}/gzip/{size}").content == bytes(size)  # cached n


def test_drop_route(server: LoopbackServer, session: requests.Session) -> None:
    tag = token()
    with pytest.raises(requests.ConnectionError):
        session.get(f"{server.base_urls[0]}/drop/{tag}?latency=0.1")
    (record,) = server.records(tag)
    assert record.status == 0 and record.finished - record.arrived >= 0.1


def test_slow_body_drips(server: LoopbackServer, session: requests.Session) -> None:
    tag = token()
    started = time.monotonic()
    with session.get(f"{server.base_urls[0]}/slow-body/0.1/4/{tag}", stream=True) as response:
        headers_at = time.monotonic() - started
        assert response.headers["Content-Length"] == "4"
        times, body = [], b""
        while len(body) < 4:
            body += response.raw.read(1)
            times.append(time.monotonic() - started)
    assert headers_at < 0.25  # long before the body's 0.4 s
    assert body == b"urlf"
    assert times[-1] >= 0.38
    assert all(b - a > 0.05 for a, b in zip(times, times[1:], strict=False))  # byte by byte
    (record,) = server.records(tag)
    assert record.status == 200 and record.finished - record.arrived >= 0.38


def test_auth_echo(server: LoopbackServer, session: requests.Session) -> None:
    url = f"{server.base_urls[0]}/auth/{token()}"
    assert session.get(url).json() == {"authorization": None}
    echoed = session.get(url, headers={"Authorization": "Bearer s3cret"}).json()
    assert echoed == {"authorization": "Bearer s3cret"}
    assert server.records(url.rsplit("/", 1)[1])[-1].headers["authorization"] == "Bearer s3cret"


def test_robots_txt(server: LoopbackServer, session: requests.Session) -> None:
    assert session.get(server.base_urls[0] + "/robots.txt").status_code == 404
    configured = session.get(server.base_urls[1] + "/robots.txt")
    assert configured.status_code == 200 and configured.text == ROBOTS


def test_bad_route_arguments_are_400(server: LoopbackServer, session: requests.Session) -> None:
    for path in ("/status/abc", "/status/99", "/flaky/x", "/bytes/-1", "/to/0/x"):
        assert session.get(server.base_urls[0] + path).status_code == 400, path


# --------------------------------------------------------------------------- records & spec


def test_records_filter_clear_and_control_routes_unrecorded(
    session: requests.Session,
) -> None:
    with LoopbackServer(ServerSpec(hosts=1, latency=0)) as srv:
        base = srv.base_urls[0]
        session.get(base + "/one/alpha", headers={"X-Probe": "yes"})
        session.get(base + "/two/beta")
        session.get(base + "/__urlfleet__/stats")
        assert [r.path for r in srv.records()] == ["/one/alpha", "/two/beta"]
        (alpha,) = srv.records("alpha")
        assert alpha.method == "GET" and alpha.status == 200 and alpha.host == netloc(base)
        assert alpha.headers["x-probe"] == "yes"
        over_http = session.get(base + "/__urlfleet__/records?contains=beta").json()
        assert [item["path"] for item in over_http] == ["/two/beta"]
        flaky = base + "/flaky/1/again"
        assert session.get(flaky).status_code == 503
        srv.clear()
        assert srv.records() == []
        assert session.get(flaky).status_code == 503  # clear() also reset the fault counter


def record(host: str, arrived: float, finished: float) -> RequestRecord:
    return RequestRecord(host, "GET", "/", arrived, finished, 200, {})


def test_host_loads_from_records() -> None:
    records = [
        record("a:1", 0.0, 1.0),
        record("a:1", 0.5, 2.0),
        record("a:1", 1.0, 1.5),  # starts as the first ends: 2 in flight, not 3
        record("a:1", 1.2, 1.3),  # 3 in flight here
        record("b:2", 5.0, 6.0),
    ]
    loads = host_loads(records)
    a = loads["a:1"]
    assert (a.host, a.requests, a.max_in_flight) == ("a:1", 4, 3)
    assert a.min_gap == pytest.approx(0.2)
    assert loads["b:2"] == HostLoad("b:2", 1, 1, float("inf"))
    assert host_loads([]) == {}


def test_sequential_requests_have_one_in_flight_and_real_gaps(
    server: LoopbackServer, session: requests.Session
) -> None:
    tag = token()
    for i in range(5):
        session.get(f"{server.base_urls[1]}/seq/{tag}/{i}")
        time.sleep(0.05)
    (load,) = host_loads(server.records(tag)).values()
    assert load.requests == 5 and load.max_in_flight == 1 and load.min_gap >= 0.05


def test_fixed_ports() -> None:
    # Below the ephemeral range, where the ports of other processes' connections (a busy
    # machine's thousands) are not: a port and the next are then most likely both free.
    rng = random.Random()
    for _ in range(50):
        first = rng.randrange(20_000, 32_000)
        try:
            with LoopbackServer(ServerSpec(hosts=2, latency=0, port=first)) as srv:
                assert srv.base_urls == [f"http://127.0.0.1:{first + i}" for i in (0, 1)]
                return
        except RuntimeError:
            continue
    pytest.fail("no two consecutive free ports found")


def test_server_spec_validation() -> None:
    with pytest.raises(ValueError, match="hosts"):
        ServerSpec(hosts=0)
    with pytest.raises(ValueError, match="latency"):
        ServerSpec(latency=-0.1)
    with pytest.raises(ValueError, match="latency"):
        ServerSpec(latency=float("nan"))
    with pytest.raises(ValueError, match="host_latency"):
        ServerSpec(hosts=1, host_latency=(0.1, 0.2))
    with pytest.raises(ValueError, match="IP address"):
        ServerSpec(addresses=("localhost",))
    with pytest.raises(ValueError, match="robots"):
        ServerSpec(hosts=2, robots=((2, 200, ""),))
    with pytest.raises(ValueError, match="port"):
        ServerSpec(hosts=2, port=65535)
    assert ServerSpec(hosts=1, addresses=("127.0.0.1", "127.0.0.1")).host_count == 2


@pytest.mark.parametrize("address", ["0.0.0.0", "192.0.2.1", "::"])
def test_non_loopback_addresses_need_an_explicit_opt_in(address: str) -> None:
    with pytest.raises(ValueError, match="allow_non_loopback"):
        ServerSpec(bind=address)
    with pytest.raises(ValueError, match="allow_non_loopback"):
        ServerSpec(addresses=("127.0.0.2", address))
    assert ServerSpec(bind=address, allow_non_loopback=True).bind == address
    assert ServerSpec(bind="::1").bind == "::1"


def test_main_refuses_a_non_loopback_bind(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--bind", "0.0.0.0"])
    assert "allow_non_loopback" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform != "linux", reason="only Linux routes all of 127/8")
def test_distinct_loopback_addresses() -> None:
    spec = ServerSpec(addresses=("127.0.0.2", "127.0.0.3"), latency=0)
    with LoopbackServer(spec) as srv, requests.Session() as s:
        assert [urlsplit(u).hostname for u in srv.base_urls] == ["127.0.0.2", "127.0.0.3"]
        port = urlsplit(srv.base_urls[1]).port
        response = s.get(f"{srv.base_urls[0]}/to/{port}/x", allow_redirects=False)
        assert response.headers["Location"] == f"http://127.0.0.2:{port}/x"
        assert s.get(srv.base_urls[1] + "/addr").status_code == 200
        assert srv.records("/addr")[0].host.startswith("127.0.0.3:")


def test_stop_ends_in_flight_requests_promptly() -> None:
    srv = LoopbackServer(ServerSpec(hosts=1, latency=0))
    srv.start()
    errors: list[BaseException] = []

    def fetch(path: str) -> None:
        with requests.Session() as s:
            try:
                s.get(srv.base_urls[0] + path, timeout=10)
            except requests.RequestException as exc:
                errors.append(exc)

    paths = ["/inflight?latency=5", "/slow-body/1/10/inflight", "/gzip/3000000000/inflight"]
    threads = [threading.Thread(target=fetch, args=(p,)) for p in paths]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while srv.stats()["open_connections"] < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # let the gzip compression start
    started = time.monotonic()
    srv.stop()
    assert time.monotonic() - started < 1.0
    for thread in threads:
        thread.join()
    assert len(errors) == 3
    assert sorted((r.path, r.status) for r in srv.records()) == [
        ("/gzip/3000000000/inflight", 0),
        ("/inflight?latency=5", 0),
        ("/slow-body/1/10/inflight", 200),  # its head had been sent
    ]


def test_start_failure_is_reported() -> None:
    spec = ServerSpec(hosts=1, bind="192.0.2.1", allow_non_loopback=True)  # TEST-NET: not ours
    bad = LoopbackServer(spec)
    with pytest.raises(RuntimeError, match="failed to start"):
        bad.start()
    bad.stop()


# --------------------------------------------------------------------------- child process


def test_loopback_process_end_to_end() -> None:
    spec = ServerSpec(hosts=2, latency=0, host_latency=(None, 0.3))
    server = LoopbackProcess(spec)
    server.start()
    try:
        pid = server.pid
        assert pid is not None and pid != os.getpid()
        cpu_before = server.cpu_seconds()
        with requests.Session() as s:
            for i in range(300):
                assert s.get(f"{server.base_urls[0]}/proc/{i}").status_code == 200
            started = time.monotonic()
            assert s.get(f"{server.base_urls[1]}/slow-host").status_code == 200
            assert time.monotonic() - started >= 0.3  # --host-latency reached the child
        assert server.cpu_seconds() > cpu_before
        assert len(server.records("/proc/")) == 300
        (record,) = server.records("/proc/42")
        assert record.host == netloc(server.base_urls[0]) and record.status == 200
        assert record.arrived <= record.finished <= time.monotonic()  # one clock for both
        server.clear()
        assert server.records() == []
    finally:
        server.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # exited and reaped
    with pytest.raises(requests.ConnectionError), requests.Session() as s:
        s.get(f"http://{record.host}/after-stop", timeout=2)


def test_loopback_process_start_failure_reports_stderr() -> None:
    process = LoopbackProcess(ServerSpec(hosts=1, bind="192.0.2.1", allow_non_loopback=True))
    with pytest.raises(RuntimeError, match="192.0.2.1"):
        process.start()
    process.stop()


def test_module_cli_prints_ready_line() -> None:
    command = [sys.executable, "-m", "urlfleet.loopback", "--hosts", "2", "--latency", "0"]
    with subprocess.Popen(
        [*command, "--ready-line"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None
            lines = [child.stdout.readline().strip() for _ in range(3)]
            assert lines[2].startswith("READY ")
            urls = lines[2].removeprefix("READY ").split()
            assert urls == lines[:2] and all(u.startswith("http://127.0.0.1:") for u in urls)
            with requests.Session() as s:
                assert s.get(urls[1] + "/cli").status_code == 200
        finally:
            child.terminate()
            _out, err = child.communicate(timeout=10)
    assert child.returncode == 0, err


def test_main_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--hosts", "0"])
    with pytest.raises(SystemExit):
        main(["--host-latency", "zero:1"])
    assert "hosts" in capsys.readouterr().err


def test_stats_over_http(server: LoopbackServer, session: requests.Session) -> None:
    stats = session.get(server.base_urls[0] + "/__urlfleet__/stats").json()
    assert set(stats) >= {"cpu_s", "requests", "connections"}
    assert stats["pid"] == os.getpid()
    assert json.loads(json.dumps(stats)) == stats
