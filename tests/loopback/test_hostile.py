"""Routes that behave like hostile servers, seen on the wire: redirect bodies that are big,
compressed bombs or endless, chunked bodies whole and cut short, short bodies, drips."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import socket
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from urlfleet.loopback import LoopbackServer, RequestRecord, ServerSpec

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(ServerSpec(hosts=2, latency=0)) as running:
        yield running


def token() -> str:
    return uuid.uuid4().hex[:12]


def connect(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)


def open_socket(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname or "", parts.port or 80), timeout=5)


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def split_head(reply: bytes) -> tuple[list[str], bytes]:
    head, _, body = reply.partition(b"\r\n\r\n")
    return head.decode("latin-1").split("\r\n"), body


def wait_for_records(server: LoopbackServer, tag: str, count: int = 1) -> list[RequestRecord]:
    deadline = time.monotonic() + 5
    while len(records := server.records(tag)) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return records


def pattern(size: int) -> bytes:
    return (b"urlfleet" * (size // 8 + 1))[:size]


# --------------------------------------------------------------------------- redirect bodies


def test_redirect_with_a_big_body(server: LoopbackServer) -> None:
    tag = token()
    size = 3_000_000
    connection = connect(server.base_urls[0])
    try:
        connection.request("GET", f"/redirect-body/big/{size}/{tag}/x?q=1")
        response = connection.getresponse()
        assert response.status == 302
        assert response.getheader("Location") == f"/page/{tag}/x?q=1"
        assert response.getheader("Content-Length") == str(size)
        assert response.read() == pattern(size)
        connection.request("GET", f"/page/{tag}/x?q=1")  # the same connection, still in step
        assert connection.getresponse().read().count(b"</html>") == 1
    finally:
        connection.close()
    assert [(r.path, r.status) for r in server.records(tag)] == [
        (f"/redirect-body/big/{size}/{tag}/x?q=1", 302),
        (f"/page/{tag}/x?q=1", 200),
    ]
    followed = requests.get(f"{server.base_urls[0]}/redirect-body/big/1000/{tag}/y", timeout=5)
    assert followed.status_code == 200 and followed.url.endswith(f"/page/{tag}/y")


def test_redirect_with_a_gzip_bomb_body(server: LoopbackServer) -> None:
    """The body is the gzip of n zeros, compressed in pieces: the server never holds n bytes."""
    tag = token()
    size = 64 << 20
    tracemalloc.start()
    try:
        connection = connect(server.base_urls[0])
        try:
            connection.request("GET", f"/redirect-body/gzip/{size}/{tag}")
            response = connection.getresponse()
            compressed = response.read()  # http.client does not decode
        finally:
            connection.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status == 302 and response.getheader("Location") == f"/page/{tag}"
    assert response.getheader("Content-Encoding") == "gzip"
    assert len(compressed) == int(response.getheader("Content-Length") or "") < size // 500
    assert peak < size // 8  # what this process (server thread and client) held at most
    assert gzip.decompress(compressed) == bytes(size)
    (record,) = server.records(tag)
    assert record.status == 302


def test_redirect_with_an_endless_body_ends_when_the_client_goes() -> None:
    with LoopbackServer(ServerSpec(hosts=1, latency=0)) as srv:
        tag = token()
        with open_socket(srv.base_urls[0]) as sock:
            sock.sendall(f"GET /redirect-body/endless/0/{tag} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            reply = b""
            started = time.monotonic()
            while reply.count(b"\r\n400\r\n") < 5:  # chunk sizes: 400 hex = 1 KiB
                reply += sock.recv(65536)
            elapsed = time.monotonic() - started
            lines, body = split_head(reply)
            assert lines[0] == "HTTP/1.1 302 Found"
            assert f"Location: /page/{tag}" in lines
            assert "Transfer-Encoding: chunked" in lines
            assert not any(line.startswith("Content-Length") for line in lines)
            assert body.startswith(b"400\r\n" + pattern(1024) + b"\r\n")
            assert elapsed >= 0.03  # one chunk per 10 ms, not a flood
            assert srv.stats()["open_connections"] == 1
        (record,) = wait_for_records(srv, tag)
        assert record.status == 302  # the status line had been sent
        deadline = time.monotonic() + 5
        while srv.stats()["open_connections"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert srv.stats()["open_connections"] == 0


def test_redirect_body_kind_must_be_known(server: LoopbackServer) -> None:
    for path in ("/redirect-body/huge/10/x", "/redirect-body/big/-1/x", "/redirect-body/gzip/x"):
        assert requests.get(server.base_urls[0] + path, timeout=5).status_code == 400, path


# --------------------------------------------------------------------------- chunked bodies


@pytest.mark.parametrize("size", [0, 1, 1024, 2500, 300_000])
def test_chunked_body(server: LoopbackServer, size: int) -> None:
    tag = token()
    with open_socket(server.base_urls[0]) as sock:
        sock.sendall(f"GET /chunked/{size}/{tag} HTTP/1.1\r\nConnection: close\r\n\r\n".encode())
        lines, body = split_head(read_until_closed(sock))
    assert lines[0] == "HTTP/1.1 200 OK" and "Transfer-Encoding: chunked" in lines
    expected = b"".join(
        b"%x\r\n%s\r\n" % (len(part), part)
        for part in (pattern(size)[i : i + 1024] for i in range(0, size, 1024))
    )
    assert body == expected + b"0\r\n\r\n"
    assert requests.get(f"{server.base_urls[0]}/chunked/{size}/{tag}", timeout=5).content == (
        pattern(size)
    )
    assert [r.status for r in server.records(tag)] == [200, 200]


def test_chunked_keeps_the_connection(server: LoopbackServer) -> None:
    connection = connect(server.base_urls[1])
    try:
        for size in (5000, 10):
            connection.request("GET", f"/chunked/{size}/{token()}")
            response = connection.getresponse()
            assert response.getheader("Transfer-Encoding") == "chunked"
            assert response.read() == pattern(size)
    finally:
        connection.close()


def test_a_client_that_stops_reading_holds_up_the_body_not_the_memory(
    server: LoopbackServer,
) -> None:
    """Sending waits while the transport's buffer is full: a TiB body unread for 0.3 s costs
    the socket buffers and the transport's high-water mark, not what could be made in 0.3 s."""
    tag = token()
    tracemalloc.start()
    try:
        with open_socket(server.base_urls[0]) as sock:
            sock.sendall(f"GET /chunked/{1 << 40}/{tag} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            time.sleep(0.3)
            _, peak = tracemalloc.get_traced_memory()
            assert len(sock.recv(65536)) > 0
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20
    (record,) = wait_for_records(server, tag)
    assert record.status == 200


@pytest.mark.parametrize(("size", "chunks"), [(1, 1), (1024, 1), (3000, 2), (10_240, 5)])
def test_chunked_truncated_closes_without_the_last_chunk(
    server: LoopbackServer, size: int, chunks: int
) -> None:
    tag = token()
    with open_socket(server.base_urls[0]) as sock:
        sock.sendall(f"GET /chunked-truncated/{size}/{tag} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        lines, body = split_head(read_until_closed(sock))  # keep-alive asked; closed anyway
    assert lines[0] == "HTTP/1.1 200 OK" and "Transfer-Encoding: chunked" in lines
    assert "Connection: close" not in lines  # no warning: the body just stops
    sent = pattern(size)[: chunks * 1024]
    assert body == b"".join(
        b"%x\r\n%s\r\n" % (len(part), part)
        for part in (sent[i : i + 1024] for i in range(0, len(sent), 1024))
    )
    connection = connect(server.base_urls[0])
    try:
        connection.request("GET", f"/chunked-truncated/{size}/{tag}")
        with pytest.raises(http.client.IncompleteRead):
            connection.getresponse().read()
    finally:
        connection.close()
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{server.base_urls[0]}/chunked-truncated/{size}/{tag}", timeout=5)
    assert [r.status for r in wait_for_records(server, tag, 3)] == [200] * 3


# --------------------------------------------------------------------------- short bodies


@pytest.mark.parametrize("size", [1, 2, 101, 1_000_000])
def test_short_body_sends_half_of_its_content_length(server: LoopbackServer, size: int) -> None:
    tag = token()
    with open_socket(server.base_urls[0]) as sock:
        sock.sendall(f"GET /short-body/{size}/{tag} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        lines, body = split_head(read_until_closed(sock))
    assert lines[0] == "HTTP/1.1 200 OK" and f"Content-Length: {size}" in lines
    assert body == pattern(size // 2)
    connection = connect(server.base_urls[0])
    try:
        connection.request("GET", f"/short-body/{size}/{tag}")
        with pytest.raises(http.client.IncompleteRead):
            connection.getresponse().read()
    finally:
        connection.close()
    with pytest.raises(requests.exceptions.ChunkedEncodingError):  # urllib3's IncompleteRead
        requests.get(f"{server.base_urls[0]}/short-body/{size}/{tag}", timeout=5)
    assert [r.status for r in wait_for_records(server, tag, 3)] == [200] * 3


def test_head_of_a_short_body(server: LoopbackServer) -> None:
    response = requests.head(f"{server.base_urls[0]}/short-body/10/{token()}", timeout=5)
    assert response.status_code == 200 and response.headers["Content-Length"] == "10"


# --------------------------------------------------------------------------- drips


def test_drip_is_slow_body_and_never_holds_the_body(server: LoopbackServer) -> None:
    """/drip/0.05/1000000: a byte per 50 ms for 14 hours, until the client gives up."""
    tag = token()
    with open_socket(server.base_urls[0]) as sock:
        sock.sendall(f"GET /drip/0.05/1000000/{tag} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += sock.recv(65536)
        lines, body = split_head(reply)
        assert lines[0] == "HTTP/1.1 200 OK" and "Content-Length: 1000000" in lines
        started = time.monotonic()
        times = []
        while len(body) < 4:
            body += sock.recv(65536)
            times.append(time.monotonic() - started)
    assert body == b"urlf"
    assert all(b - a > 0.03 for a, b in zip(times, times[1:], strict=False))
    (record,) = wait_for_records(server, tag)
    assert record.status == 200 and record.finished - record.arrived < 1.0


def test_drip_route_makes_each_byte_as_it_is_sent() -> None:
    from urlfleet.loopback.http11 import _parse_head
    from urlfleet.loopback.routes import _route
    from urlfleet.loopback.spec import _Host
    from urlfleet.loopback.state import _State

    request = _parse_head(b"GET /drip/0.05/1000000/x HTTP/1.1", 0.0)
    response = _route(request, _Host("127.0.0.1", 0.0, None), _State())
    assert response.body == b"" and response.length == 1_000_000
    assert response.stream is not None and response.interval == 0.05
    assert b"".join(next(response.stream) for _ in range(10)) == b"urlfleetur"


# --------------------------------------------------------------------------- silence


def test_black_hole_says_nothing_and_is_recorded_abandoned(server: LoopbackServer) -> None:
    tag = token()
    with open_socket(server.base_urls[0]) as sock:
        sock.sendall(f"GET /black-hole/{tag} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # not a byte
        assert server.records(tag) == []  # still waiting, not yet recorded
    connection = connect(server.base_urls[0])
    connection.timeout = 0.3
    try:
        connection.request("GET", f"/black-hole/{tag}/2")
        with pytest.raises(TimeoutError):
            connection.getresponse()
    finally:
        connection.close()
    records = wait_for_records(server, tag, 2)
    assert [r.status for r in records] == [0, 0]
    assert all(0.25 < r.finished - r.arrived < 1.5 for r in records)
    with pytest.raises(requests.Timeout):
        requests.get(f"{server.base_urls[1]}/black-hole/{tag}/3", timeout=0.2)


def test_black_hole_and_endless_body_end_when_the_server_stops() -> None:
    srv = LoopbackServer(ServerSpec(hosts=1, latency=0))
    srv.start()
    sockets: list[socket.socket] = []
    try:
        for path in ("/black-hole/stop", "/redirect-body/endless/0/stop"):
            sockets.append(open_socket(srv.base_urls[0]))
            sockets[-1].sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert sockets[1].recv(100).startswith(b"HTTP/1.1 302 ")
        started = time.monotonic()
        srv.stop()
        assert time.monotonic() - started < 1.0
        for sock in sockets:  # each closed by the stop: EOF, or a reset for unread bytes
            sock.settimeout(2)
            with contextlib.suppress(ConnectionResetError):
                read_until_closed(sock)
    finally:
        for sock in sockets:
            sock.close()
    assert sorted((r.path, r.status) for r in srv.records()) == [
        ("/black-hole/stop", 0),
        ("/redirect-body/endless/0/stop", 302),
    ]


# --------------------------------------------------------------------------- heads


def test_many_headers(server: LoopbackServer) -> None:
    tag = token()
    with open_socket(server.base_urls[0]) as sock:
        sock.sendall(f"GET /many-headers/500/{tag} HTTP/1.1\r\nConnection: close\r\n\r\n".encode())
        lines, body = split_head(read_until_closed(sock))
    assert lines[0] == "HTTP/1.1 200 OK"
    assert [line for line in lines if line.startswith("X-H")] == [
        f"X-H{i}: v" for i in range(1, 501)
    ]
    assert body == b"500 extra headers\n"
    connection = connect(server.base_urls[0])
    try:
        connection.request("GET", f"/many-headers/101/{tag}")
        with pytest.raises(http.client.HTTPException, match="more than 100 headers"):
            connection.getresponse()
    finally:
        connection.close()
    assert [r.status for r in server.records(tag)] == [200, 200]


def test_huge_header(server: LoopbackServer) -> None:
    tag = token()
    size = 1 << 20
    with open_socket(server.base_urls[0]) as sock:
        sock.sendall(
            f"GET /huge-header/{size}/{tag} HTTP/1.1\r\nConnection: close\r\n\r\n".encode()
        )
        lines, body = split_head(read_until_closed(sock))
    assert lines[0] == "HTTP/1.1 200 OK"
    assert "X-Huge: " + "v" * size in lines
    assert body == f"one header of {size} bytes\n".encode()
    connection = connect(server.base_urls[0])
    try:
        connection.request("GET", f"/huge-header/{size}/{tag}")
        with pytest.raises(http.client.LineTooLong):
            connection.getresponse()
    finally:
        connection.close()
    too_big = requests.get(f"{server.base_urls[0]}/huge-header/{size + 1}/{tag}", timeout=5)
    assert too_big.status_code == 400


# --------------------------------------------------------------------------- HTTP/1.0


@pytest.mark.parametrize("size", [0, 10, 200_000])
def test_http10_body_ends_with_the_connection(server: LoopbackServer, size: int) -> None:
    tag = token()
    with open_socket(server.base_urls[0]) as sock:  # keep-alive asked for, and refused
        sock.sendall(f"GET /http10/{size}/{tag} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        lines, body = split_head(read_until_closed(sock))
    assert lines[0] == "HTTP/1.0 200 OK"
    assert not any(line.startswith(("Content-Length", "Connection", "Transfer")) for line in lines)
    assert body == pattern(size)
    connection = connect(server.base_urls[0])
    try:
        connection.request("GET", f"/http10/{size}/{tag}")
        response = connection.getresponse()
        assert response.version == 10 and response.read() == pattern(size)
    finally:
        connection.close()
    assert requests.get(f"{server.base_urls[0]}/http10/{size}/{tag}", timeout=5).content == (
        pattern(size)
    )
    assert [r.status for r in server.records(tag)] == [200] * 3


def test_http10_head(server: LoopbackServer) -> None:
    with open_socket(server.base_urls[0]) as sock:
        sock.sendall(b"HEAD /http10/10/head HTTP/1.1\r\nHost: x\r\n\r\n")
        lines, body = split_head(read_until_closed(sock))
    assert lines[0] == "HTTP/1.0 200 OK" and body == b""
