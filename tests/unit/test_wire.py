"""The quick way over the wire writes what urllib3 and http.client write, byte for byte."""

from __future__ import annotations

import random
import socket
import threading
from typing import Any

import pytest
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.util import SKIP_HEADER

from urlfleet.fetching import wire
from urlfleet.fetching.headers import Headers


class _Wire:
    """A socket that keeps what is written to it."""

    def __init__(self) -> None:
        self.sent = b""

    def settimeout(self, _timeout: Any) -> None:
        pass

    def sendall(self, data: bytes) -> None:
        self.sent += bytes(data)


def urllib3_writes(
    cls: type[HTTPConnection], host: str, port: int, method: str, target: str,
    headers: Any, body: bytes | None,
) -> bytes:  # fmt: skip
    connection = cls(host=host, port=port)
    connection.sock = _Wire()  # type: ignore[assignment]
    connection.request(method, target, body=body, headers=headers)
    return connection.sock.sent  # type: ignore[attr-defined,no-any-return]


def quick_writes(
    cls: type[HTTPConnection], host: str, port: int, method: str, target: str,
    headers: Any, body: bytes | None,
) -> bytes | None:  # fmt: skip
    sample = cls(host=host, port=port)
    host_value = wire.host_header(sample.host, sample.port, sample.default_port)
    head = wire.request_head(method, target, headers, body, host_value)
    return None if head is None else head + (body or b"")


HOSTS = [
    ("127.0.0.1", 8080), ("example.com", 80), ("example.com", 443), ("Example.COM.", 8443),
    ("::1", 8080), ("[::1]", 80), ("fe80::1%eth0", 9000), ("bücher.example", 80),
    ("xn--bcher-kva.example", 443), ("h17.bench.test", 5000),
]  # fmt: skip
NAMES = ["User-Agent", "Accept", "Accept-Encoding", "Connection", "Cookie", "X-Any", "host",
         "Content-Length", "content-type", "If-None-Match", "Authorization", "X_Under",
         "Spaced Name"]  # fmt: skip
VALUES = ["", "x", "*/*", "gzip, deflate", "a=1; b=2", "caf\u00e9", "  padded  ", "tab\there",
          "Basic dXNlcjpwYXNz", '"etag"', "7", "keep-alive"]  # fmt: skip
TARGETS = ["/", "/page/a/1", "/a%2fb", "/sp ace", "/caf\u00e9", "/q?x=1&y=%7e", "/?", "/p?a/b?c",
           "/~user/[x]", "/semi;colon", "/frag#ment", "/%zz"]  # fmt: skip
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "M-SEARCH"]


def _random_request(rng: random.Random) -> tuple[Any, ...]:
    host, port = rng.choice(HOSTS)
    method = rng.choice(METHODS)
    headers = Headers() if rng.random() < 0.7 else {}
    for name in rng.sample(NAMES, rng.randint(0, 6)):
        headers[name] = rng.choice(VALUES)
    body = rng.choice([None, None, b"", b"a=1", b"\x00\xff" * 40])
    if body is not None and "Content-Length" in headers:
        headers["Content-Length"] = str(len(body))
    return host, port, method, rng.choice(TARGETS), headers, body


@pytest.mark.parametrize("cls", [HTTPConnection, HTTPSConnection])
def test_the_quick_head_is_the_bytes_urllib3_writes(cls: type[HTTPConnection]) -> None:
    rng = random.Random(23)
    quick = 0
    for _ in range(400):
        host, port, method, target, headers, body = _random_request(rng)
        encoded = wire._encode_target(target)
        if wire._PLAIN_TARGET(target):
            assert encoded == target  # the shortcut changes nothing
        written = quick_writes(cls, host, port, method, encoded, headers, body)
        if written is None:
            continue
        quick += 1
        assert written == urllib3_writes(cls, host, port, method, encoded, headers, body), (
            host, port, method, target, dict(headers), body,
        )  # fmt: skip
    assert quick > 300  # the ordinary requests, which are most, take the quick way


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Bad": "a\r\nInjected: 1"},  # http.client refuses it
        {"X-Folded": "a\r\n b"},  # http.client lets an obsolete fold through, as it is
        {" Leading": "x"},
        {":colon": "x"},
        {"X-Bytes": b"raw"},
        {"X-Int": 7},
        {"User-Agent": SKIP_HEADER},  # urllib3 leaves the header out
        {"Transfer-Encoding": "chunked"},
        {"X-Wide": "\u20ac"},  # not Latin-1: http.client raises its own error
        {"X-\u00e9": "x"},
    ],
)
def test_what_http_client_refuses_or_treats_its_own_way_is_left_to_it(headers: Any) -> None:
    assert wire.request_head("GET", "/", headers, None, "example.com") is None


@pytest.mark.parametrize("method", ["GE T", "GET\r\n", "G\u00c9T", ""])
def test_a_method_urllib3_would_refuse_is_left_to_it(method: str) -> None:
    assert wire.request_head(method, "/", {}, None, "example.com") is None


class _TimeoutSpy:
    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.set: list[float | None] = []

    def gettimeout(self) -> float | None:
        return self.timeout

    def settimeout(self, timeout: float | None) -> None:
        self.set.append(timeout)
        self.timeout = timeout


@pytest.mark.parametrize(
    ("before", "wanted", "calls"), [(5.0, 5.0, []), (5.0, 30.0, [30.0]), (None, 5.0, [5.0]),
                                    (5.0, None, [None])],
)  # fmt: skip
def test_a_timeout_is_set_only_where_it_changes(
    before: float | None, wanted: float | None, calls: list[float | None]
) -> None:
    sock = _TimeoutSpy(before)
    wire.keep_timeout(sock, wanted)
    assert sock.set == calls
    assert sock.gettimeout() == wanted


def test_what_a_socket_cannot_take_at_once_is_sent_after_it() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        ours.settimeout(5.0)
        data = bytes(range(256)) * 4096  # 1 MiB: far more than the buffer holds
        got = bytearray()

        def read() -> None:
            while len(got) < len(data):
                chunk = theirs.recv(65536)
                if not chunk:
                    return
                got.extend(chunk)

        reader = threading.Thread(target=read)
        reader.start()
        wire.send_all(ours, data)
        reader.join(10)
        assert bytes(got) == data


def test_a_peer_that_never_reads_times_the_send_out() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        ours.settimeout(0.2)
        with pytest.raises(TimeoutError):
            wire.send_all(ours, b"x" * (8 << 20))


def test_a_closed_peer_fails_the_send_as_sendall_does() -> None:
    ours, theirs = socket.socketpair()
    with ours:
        theirs.close()
        ours.settimeout(1.0)
        with pytest.raises(BrokenPipeError):
            wire.send_all(ours, b"GET / HTTP/1.1\r\n\r\n")
