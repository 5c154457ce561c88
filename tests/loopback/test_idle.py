"""idle_timeout: the server closes keep-alive connections left idle, never a busy one."""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from urlfleet.loopback import LoopbackProcess, LoopbackServer, ServerSpec, main

pytestmark = pytest.mark.integration

IDLE = 0.3


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    """A fresh server per test, so that idle_closed counts only that test's connections."""
    with LoopbackServer(ServerSpec(hosts=1, latency=0, idle_timeout=IDLE)) as running:
        yield running


def connect(server: LoopbackServer) -> http.client.HTTPConnection:
    parts = urlsplit(server.base_urls[0])
    return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)


def get(connection: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.read()


def test_idle_connection_is_closed_and_counted(server: LoopbackServer) -> None:
    connection = connect(server)
    try:
        assert get(connection, "/idle/first")[0] == 200
        assert get(connection, "/idle/second")[0] == 200  # within the timeout: reused
        time.sleep(IDLE * 2)
        assert server.stats()["idle_closed"] == 1
        # A client writing on the closed connection gets no answer: what a retry must handle.
        with pytest.raises(http.client.RemoteDisconnected, match="without response"):
            get(connection, "/idle/too-late")
    finally:
        connection.close()
    records = server.records("/idle/")
    assert [r.path for r in records] == ["/idle/first", "/idle/second"]
    assert records[0].connection == records[1].connection
    assert server.stats()["open_connections"] == 0


def test_close_comes_after_the_timeout_not_before(server: LoopbackServer) -> None:
    parts = urlsplit(server.base_urls[0])
    with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=5) as sock:
        sock.sendall(b"GET /idle/timing HTTP/1.1\r\nHost: x\r\n\r\n")
        reader = sock.makefile("rb")
        head = b"".join(iter(reader.readline, b"\r\n"))
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        reader.read(length)
        answered = time.monotonic()
        assert reader.read(1) == b""  # blocks until the server's FIN
        waited = time.monotonic() - answered
        reader.close()
    assert IDLE * 0.9 <= waited < IDLE + 0.3
    assert server.stats()["idle_closed"] == 1


def test_unfinished_request_head_counts_as_idle(server: LoopbackServer) -> None:
    parts = urlsplit(server.base_urls[0])
    with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=5) as sock:
        sock.sendall(b"GET /idle/stalled HTTP/1.1\r\nHost: x\r\n")  # no blank line: stalled
        started = time.monotonic()
        assert sock.recv(100) == b""
    assert IDLE * 0.9 <= time.monotonic() - started < IDLE + 0.3
    assert server.stats()["idle_closed"] == 1
    assert server.records("/idle/stalled") == []


def test_busy_connection_with_slow_response_is_not_closed(server: LoopbackServer) -> None:
    connection = connect(server)
    try:
        # Each takes well over the idle timeout, with no bytes from the client meanwhile.
        status, body = get(connection, f"/delay/{IDLE * 3}/idle/busy")
        assert status == 200 and body.endswith(b"</html>\n")
        started = time.monotonic()
        status, body = get(connection, f"/slow-body/{IDLE / 2}/6/idle/busy")
        assert (status, body) == (200, b"urlfle")
        assert time.monotonic() - started >= IDLE * 2.5
        # Activity keeps restarting the clock: requests a little apart stay on one connection.
        for i in range(4):
            time.sleep(IDLE / 2)
            assert get(connection, f"/idle/busy/{i}")[0] == 200
    finally:
        connection.close()
    records = server.records("/idle/busy")
    assert len(records) == 6 and all(r.status == 200 for r in records)
    assert len({r.connection for r in records}) == 1
    assert server.stats()["idle_closed"] == 0


def test_without_idle_timeout_nothing_is_closed() -> None:
    with LoopbackServer(ServerSpec(hosts=1, latency=0)) as srv, requests.Session() as s:
        s.get(srv.base_urls[0] + "/idle/never")
        time.sleep(0.2)
        assert srv.stats()["open_connections"] == 1 and srv.stats()["idle_closed"] == 0


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), True, "1"])
def test_idle_timeout_validation(value: object) -> None:
    with pytest.raises(ValueError, match="idle_timeout"):
        ServerSpec(idle_timeout=value)  # type: ignore[arg-type]


def test_main_rejects_a_zero_idle_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--idle-timeout", "0"])
    assert "idle_timeout" in capsys.readouterr().err


def test_loopback_process_passes_idle_timeout_on() -> None:
    with LoopbackProcess(ServerSpec(hosts=1, latency=0, idle_timeout=IDLE)) as server:
        parts = urlsplit(server.base_urls[0])
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
        try:
            connection.request("GET", "/idle/child")
            connection.getresponse().read()
            time.sleep(IDLE * 2)
            with pytest.raises(http.client.RemoteDisconnected):
                connection.request("GET", "/idle/child-again")
                connection.getresponse()
        finally:
            connection.close()
        assert server.stats()["idle_closed"] == 1
