"""A loopback HTTP/1.1 test server: simulated hosts, latency, fault routes, request records.

Every simulated host is one listening socket (distinct ports on 127.0.0.1 by default, or
distinct addresses such as 127.0.0.2 on Linux). Each request waits for the host's latency,
is answered by a route chosen by its first path segment, and is recorded with its server-side
arrival and completion times, so tests can check a client's politeness from the server's side.

The server is a minimal HTTP/1.1 implementation on :class:`asyncio.Protocol`, standard library
only, because it must sustain thousands of keep-alive requests per second on one core while
using a small share of it; :mod:`http.server` is far too slow for that.

Routes (first path segment; further segments only make URLs unique)::

    /  /page/...  anything unknown     200 HTML page: <title>Page <target></title>, 3 links
                                        (?paragraphs=N adds N paragraphs)
    /status/<code>/...                  that status (3xx without Location)
    /flaky/<n>/...                      503 for the first n requests of this exact URL, then 200
    /retry-after/<s>/<n>/...            429 + "Retry-After: <s>" n times, then 200
    /retry-after-date/<s>/<n>/...       same with an HTTP-date <s> seconds in the future
    /redirect/<n>/rest                  302 to /redirect/<n-1>/rest; n == 0 is the page
    /to/<port>/rest                     302 to http://<this address>:<port>/rest
    /bytes/<n>/...                      n bytes of a repeating b"urlfleet" pattern
    /gzip/<n>/...                       n zero bytes with Content-Encoding: gzip
    /drop/...                           connection closed without a response (status 0)
    /slow-body/<interval>/<n>/...       headers at once, then 1 byte every <interval> s
    /delay/<s>/...                      the page, after <s> s instead of the host's latency
    /auth/...                           JSON {"authorization": <header or null>}
    /robots.txt                         404, or what ServerSpec.robots sets for the host
    ?latency=<s> on any route           overrides the latency of that request
    /__urlfleet__/records?contains=X    control: JSON records (never recorded, no latency)
    /__urlfleet__/clear                 control: forget records and fault counters
    /__urlfleet__/stats                 control: JSON counters and the server's CPU time

A request a client abandons (timeout, hang-up) is recorded when the connection goes, with
status 0 unless a status line had been sent. :func:`host_loads` turns records into per-host
politeness figures (most requests in flight, shortest gap between request starts).

Run it with ``python -m urlfleet.loopback --hosts 4 --latency 0.1``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import email.utils
import functools
import hashlib
import html
import http
import http.client
import ipaddress
import json
import math
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TextIO

__all__ = [
    "HostLoad",
    "LoopbackProcess",
    "LoopbackServer",
    "RequestRecord",
    "ServerSpec",
    "host_loads",
    "main",
    "serve",
]

CONTROL_PREFIX = "/__urlfleet__/"
READY_PREFIX = "READY "

_MAX_HEAD = 64 * 1024  # bytes of request line + headers before we answer 400
_MAX_BYTES = 1 << 28  # /bytes/<n> builds the body in memory
_MAX_GZIP = 1 << 32  # /gzip/<n>: 4 GiB of zeros already takes ~15 s to compress at level 9
_MAX_DRIP = 1 << 20  # /slow-body/<interval>/<n>
_PATTERN = b"urlfleet"
_SERVER_NAME = "urlfleet-loopback"
_START_TIMEOUT = 20.0


# --------------------------------------------------------------------------- public data


@dataclass(frozen=True, kw_only=True)
class ServerSpec:
    """What to simulate: how many hosts, where they listen, their latency and robots.txt.

    ``addresses`` (one host per address, e.g. ``("127.0.0.2", "127.0.0.3")``, Linux only)
    overrides ``hosts``; otherwise ``hosts`` sockets listen on distinct ports of ``bind``.
    ``host_latency[i]``, when given and not None, replaces ``latency`` for host ``i``.
    ``robots`` holds ``(host_index, status, body)`` answers for ``/robots.txt``.
    ``port`` fixes the ports: host ``i`` listens on ``port + i`` (0: free ports picked by the OS,
    the default and the right choice for tests).
    """

    hosts: int = 4
    latency: float = 0.1
    host_latency: tuple[float | None, ...] = ()
    addresses: tuple[str, ...] = ()
    bind: str = "127.0.0.1"
    robots: tuple[tuple[int, int, str], ...] = ()
    port: int = 0

    def __post_init__(self) -> None:
        # Accept lists from callers but store tuples, so a spec stays immutable and hashable.
        for name in ("host_latency", "addresses", "robots"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if isinstance(self.hosts, bool) or not isinstance(self.hosts, int) or self.hosts < 1:
            raise ValueError(f"ServerSpec.hosts must be an integer >= 1, got {self.hosts!r}")
        _check_seconds("ServerSpec.latency", self.latency)
        for address in (*self.addresses, self.bind):
            _check_address(address)
        if len(self.host_latency) > self.host_count:
            raise ValueError(
                f"ServerSpec.host_latency has {len(self.host_latency)} entries "
                f"but there are only {self.host_count} hosts"
            )
        for index, value in enumerate(self.host_latency):
            if value is not None:
                _check_seconds(f"ServerSpec.host_latency[{index}]", value)
        for entry in self.robots:
            index, status, _body = entry
            if not 0 <= index < self.host_count:
                raise ValueError(f"ServerSpec.robots entry {entry!r}: no host with index {index}")
            if not 100 <= status <= 599:
                raise ValueError(f"ServerSpec.robots entry {entry!r}: bad status {status}")
        if not 0 <= self.port <= 65536 - self.host_count:
            raise ValueError(
                f"ServerSpec.port must be 0 or leave room for {self.host_count} ports, "
                f"got {self.port!r}"
            )

    @property
    def host_count(self) -> int:
        """Number of simulated hosts (``len(addresses)`` if given, else ``hosts``)."""
        return len(self.addresses) or self.hosts

    def host_addresses(self) -> list[str]:
        """The listening address of every host, in index order."""
        return list(self.addresses) if self.addresses else [self.bind] * self.hosts

    def port_for(self, index: int) -> int:
        """The port host ``index`` asks for (0: any free port)."""
        return self.port + index if self.port else 0

    def latency_for(self, index: int) -> float:
        """The latency of host ``index``: its override if set, else the default."""
        if index < len(self.host_latency):
            override = self.host_latency[index]
            if override is not None:
                return float(override)
        return float(self.latency)

    def robots_for(self, index: int) -> tuple[int, str] | None:
        """``(status, body)`` for host ``index``'s /robots.txt, or None for the default 404."""
        for host_index, status, body in self.robots:
            if host_index == index:
                return status, body
        return None


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it; times are the server's ``time.monotonic()``."""

    host: str  # "127.0.0.1:PORT", the socket the client connected to
    method: str
    path: str  # request target as sent, query string included
    arrived: float  # request head parsed, before any latency
    finished: float  # response written, or the connection dropped
    status: int  # 0 when the connection was dropped without a response
    headers: dict[str, str]  # request headers, names lower-cased

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RequestRecord:
        """The inverse of :meth:`to_json`."""
        return cls(
            host=str(data["host"]),
            method=str(data["method"]),
            path=str(data["path"]),
            arrived=float(data["arrived"]),
            finished=float(data["finished"]),
            status=int(data["status"]),
            headers={str(k): str(v) for k, v in data["headers"].items()},
        )


@dataclass(frozen=True)
class HostLoad:
    """What one host saw of a client's politeness, from its records."""

    host: str
    requests: int
    max_in_flight: int  # most requests open ([arrived, finished]) at one instant
    min_gap: float  # shortest time between two request arrivals; inf for fewer than 2


def host_loads(records: list[RequestRecord]) -> dict[str, HostLoad]:
    """Per-host politeness figures (max in flight, min gap between starts) of ``records``."""
    by_host: dict[str, list[RequestRecord]] = {}
    for record in records:
        by_host.setdefault(record.host, []).append(record)
    return {host: _host_load(host, group) for host, group in by_host.items()}


def _host_load(host: str, records: list[RequestRecord]) -> HostLoad:
    # Sweep over start (+1) and end (-1) events; on a tie the end goes first, so a request
    # that starts the instant another finished does not count as overlapping it.
    events = sorted([(r.arrived, 1) for r in records] + [(r.finished, -1) for r in records])
    depth = deepest = 0
    for _, step in events:
        depth += step
        deepest = max(deepest, depth)
    starts = sorted(r.arrived for r in records)
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:], strict=False)]
    return HostLoad(host, len(records), deepest, min(gaps, default=math.inf))


def _check_seconds(what: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number of seconds, got {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{what} must be a finite number >= 0, got {value!r}")


def _check_address(address: str) -> None:
    # An IP literal listens on exactly one socket; a name like "localhost" may resolve to
    # several (IPv4 and IPv6) with different ports, which would break "one host, one port".
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"ServerSpec address {address!r} is not an IP address") from None


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


# --------------------------------------------------------------------------- shared state


@dataclass
class _Host:
    """One simulated host: its socket address, latency and robots.txt."""

    address: str
    latency: float
    robots: tuple[int, str] | None
    port: int = 0
    key: str = ""  # "address:port", set once the socket listens

    def bound(self, port: int) -> None:
        self.port = port
        self.key = f"{_url_host(self.address)}:{port}"

    @property
    def base_url(self) -> str:
        return f"http://{self.key}"


class _State:
    """What all hosts of one server share; written by the loop thread, read by any thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: list[RequestRecord] = []
        self.fault_counts: dict[str, int] = {}
        self.requests = 0
        self.connections = 0
        self.host_connections: dict[str, int] = {}
        self.open: set[_Connection] = set()
        self.gzip_cache: dict[int, asyncio.Future[bytes]] = {}
        self.stopping = threading.Event()  # lets a long gzip compression end with the server
        self._date_second = -1
        self._date = ""

    def add_locked(self, record: RequestRecord) -> None:
        """Append ``record``; the caller holds ``lock``."""
        self.records.append(record)
        self.requests += 1

    def snapshot(self, contains: str | None) -> list[RequestRecord]:
        with self.lock:
            records = list(self.records)
        if contains is None:
            return records
        return [r for r in records if contains in r.path]

    def clear(self) -> None:
        with self.lock:
            self.records.clear()
            self.fault_counts.clear()

    def bump(self, key: str) -> int:
        """Count one more request for ``key``; returns how many came before it."""
        with self.lock:
            seen = self.fault_counts.get(key, 0)
            self.fault_counts[key] = seen + 1
        return seen

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "cpu_s": time.process_time(),
                "requests": self.requests,
                "connections": self.connections,
                "open_connections": len(self.open),
                "host_connections": dict(self.host_connections),
                "records": len(self.records),
                "pid": os.getpid(),
            }

    def http_date(self) -> str:
        # Formatting a date costs more than the rest of a response head; once a second is enough.
        now = int(time.time())
        if now != self._date_second:
            self._date = email.utils.formatdate(now, usegmt=True)
            self._date_second = now
        return self._date

    async def gzip_zeros(self, size: int) -> bytes:
        """Gzip of ``size`` zero bytes, compressed once per size in a worker thread."""
        future = self.gzip_cache.get(size)
        if future is None:
            future = asyncio.ensure_future(asyncio.to_thread(_gzip_zeros, size, self.stopping))
            # Mark a failure as seen even if every waiter has gone (no "never retrieved" log).
            future.add_done_callback(lambda done: done.cancelled() or done.exception())
            self.gzip_cache[size] = future
        # shield: a client hanging up must not cancel the compression other requests await.
        return await asyncio.shield(future)


def _gzip_zeros(size: int, stopping: threading.Event) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31 = gzip container
    chunk = bytes(min(size, 1 << 20))
    parts: list[bytes] = []
    remaining = size
    while remaining:
        if stopping.is_set():  # a 4 GiB bomb takes ~15 s; do not hold up stop() for it
            raise RuntimeError("server stopping")
        take = min(remaining, len(chunk))
        parts.append(compressor.compress(memoryview(chunk)[:take]))
        remaining -= take
    parts.append(compressor.flush())
    return b"".join(parts)


# --------------------------------------------------------------------------- HTTP messages


class _HttpError(Exception):
    """A request we refuse with ``status`` (400 for malformed ones, which also close)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class _Request:
    method: str
    target: str
    path: str  # target without the query
    query: str
    headers: dict[str, str]
    keep_alive: bool
    arrived: float
    body_length: int = 0
    route: str = ""  # first path segment
    args: list[str] = dataclasses.field(default_factory=list)  # the segments after it
    error: _HttpError | None = None  # set for malformed requests: answer it, then close


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    drop: bool = False  # close the connection without answering
    gzip_size: int = -1  # >= 0: body is the gzip of that many zeros, computed lazily
    drip_interval: float = 0.0  # slow-body: seconds between body bytes...
    drip_bytes: int = 0  # ...and how many


# Header lines, validated in one C-level pass and split in another: a Python loop over the
# lines was the largest single cost of a request. A folded (obsolete) line starts with a space,
# which is not a token character, so it fails validation like any other malformed line.
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_HEADER_BLOCK = re.compile(rf"(?:{_TOKEN}:[^\r\n]*\r\n)*")
_HEADER = re.compile(rf"({_TOKEN}):[ \t]*([^\r\n]*?)[ \t]*\r\n")


def _parse_head(head: bytes, arrived: float) -> _Request:
    """Parse a request line and headers (without the blank line); raises _HttpError."""
    request_line, _, block = head.decode("latin-1").partition("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3:
        raise _HttpError(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise _HttpError(400, f"unsupported protocol {version!r}")
    if not (method.isalpha() and method.isupper()):
        raise _HttpError(400, f"malformed method {method!r}")
    if not target.startswith("/"):
        raise _HttpError(400, "request target must be a path")
    block = block + "\r\n" if block else ""
    if not _HEADER_BLOCK.fullmatch(block):
        raise _HttpError(400, "malformed header line")
    headers: dict[str, str] = {}
    for name, value in _HEADER.findall(block):
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    if "transfer-encoding" in headers:
        raise _HttpError(501, "request bodies with Transfer-Encoding are not supported")
    body_length = 0
    if "content-length" in headers:
        raw = headers["content-length"]
        if not _is_decimal(raw):
            raise _HttpError(400, f"malformed Content-Length {raw!r}")
        body_length = int(raw)
    connection = headers.get("connection", "").lower()
    tokens = {t.strip() for t in connection.split(",")} if connection else set()
    keep_alive = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
    path, _, query = target.partition("?")
    segments = path.split("/")
    route = segments[1] if len(segments) > 1 else ""
    return _Request(
        method, target, path, query, headers, keep_alive, arrived, body_length,
        route, segments[2:],
    )  # fmt: skip


def _is_decimal(text: str) -> bool:
    # str.isdigit() alone accepts "²" (latin-1 0xB2), which int() then rejects.
    return text.isascii() and text.isdigit()


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


@functools.cache
def _status_line(status: int) -> str:
    """The first lines of every response with ``status`` (HTTPStatus lookups are slow)."""
    return f"HTTP/1.1 {status} {_reason(status)}\r\nServer: {_SERVER_NAME}\r\n"


def _encode_head(
    status: int, headers: list[tuple[str, str]], content_length: int | None, date: str
) -> bytes:
    fields = "".join(f"{name}: {value}\r\n" for name, value in headers)
    if content_length is not None:
        fields += f"Content-Length: {content_length}\r\n"
    return f"{_status_line(status)}Date: {date}\r\n{fields}\r\n".encode("latin-1")


def _has_no_body(status: int) -> bool:
    return status in (204, 304) or status < 200


# --------------------------------------------------------------------------- routes


@dataclass
class _Context:
    request: _Request
    host: _Host
    state: _State

    @property
    def args(self) -> list[str]:
        """The path segments after the route's."""
        return self.request.args


def _text(status: int, text: str, headers: list[tuple[str, str]] | None = None) -> _Response:
    return _Response(status, text.encode("utf-8"), headers=headers or [])


def _int_arg(ctx: _Context, index: int, what: str, low: int, high: int) -> int:
    raw = _arg(ctx, index)
    if not _is_decimal(raw) or not low <= int(raw) <= high:
        raise _HttpError(400, f"{what} must be an integer in [{low}, {high}], got {raw!r}")
    return int(raw)


def _seconds_arg(raw: str, what: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise _HttpError(400, f"{what} must be a number of seconds >= 0, got {raw!r}")
    return value


def _arg(ctx: _Context, index: int) -> str:
    return ctx.args[index] if index < len(ctx.args) else ""


def _route_page(ctx: _Context) -> _Response:
    target = ctx.request.target
    link = "/page/" + hashlib.sha1(target.encode("latin-1")).hexdigest()[:12]
    title = html.escape(f"Page {target}")
    page = (
        "<!doctype html>\n"
        f'<html><head><meta charset="utf-8"><title>{title}</title></head>\n'
        f"<body><h1>{title}</h1>\n"
        f"<p>A loopback page served by urlfleet from {ctx.host.key}.</p>\n<ul>\n"
        f'<li><a href="{link}-1">link 1</a></li>\n'
        f'<li><a href="{link}-2">link 2</a></li>\n'
        f'<li><a href="{link}-3">link 3</a></li>\n'
        f"</ul>\n{_filler(ctx.request.query)}</body></html>\n"
    )
    return _Response(200, page.encode("utf-8"), "text/html; charset=utf-8")


def _filler(query: str) -> str:
    # ?paragraphs=N makes a bigger page, for parsers that should have some work to do.
    if "paragraphs=" not in query:
        return ""
    values = urllib.parse.parse_qs(query).get("paragraphs") or ["0"]
    count = min(int(values[-1]) if values[-1].isdigit() else 0, 10_000)
    return "".join(
        f"<p>Paragraph {i}: <b>loopback</b> text with <a href='/page/p{i}'>a link</a>.</p>\n"
        for i in range(count)
    )


def _route_status(ctx: _Context) -> _Response:
    code = _int_arg(ctx, 0, "status code", 200, 599)
    return _text(code, f"{code} {_reason(code)}\n")


def _counted(ctx: _Context, failures: int) -> bool:
    """True while this exact URL (host + target) has had fewer than ``failures`` requests."""
    return ctx.state.bump(f"{ctx.host.key}{ctx.request.target}") < failures


def _route_flaky(ctx: _Context) -> _Response:
    failures = _int_arg(ctx, 0, "flaky count", 0, 1 << 30)
    if _counted(ctx, failures):
        return _text(503, "flaky: try again\n")
    return _route_page(ctx)


def _route_retry_after(ctx: _Context) -> _Response:
    raw = _arg(ctx, 0)
    _seconds_arg(raw, "Retry-After seconds")
    failures = _int_arg(ctx, 1, "retry-after count", 0, 1 << 30)
    if _counted(ctx, failures):
        return _text(429, "slow down\n", [("Retry-After", raw)])
    return _route_page(ctx)


def _route_retry_after_date(ctx: _Context) -> _Response:
    seconds = _seconds_arg(_arg(ctx, 0), "Retry-After seconds")
    failures = _int_arg(ctx, 1, "retry-after count", 0, 1 << 30)
    if _counted(ctx, failures):
        when = email.utils.formatdate(time.time() + seconds, usegmt=True)
        return _text(429, "slow down\n", [("Retry-After", when)])
    return _route_page(ctx)


def _with_query(location: str, query: str) -> str:
    return f"{location}?{query}" if query else location


def _route_redirect(ctx: _Context) -> _Response:
    hops = _int_arg(ctx, 0, "redirect count", 0, 1 << 20)
    if hops == 0:
        return _route_page(ctx)
    location = "/".join(["", "redirect", str(hops - 1), *ctx.args[1:]])
    return _text(302, "redirect\n", [("Location", _with_query(location, ctx.request.query))])


def _route_to(ctx: _Context) -> _Response:
    port = _int_arg(ctx, 0, "port", 1, 65535)
    rest = "/".join(ctx.args[1:])
    location = f"http://{_url_host(ctx.host.address)}:{port}/{rest}"
    return _text(302, "redirect\n", [("Location", _with_query(location, ctx.request.query))])


def _pattern(size: int) -> bytes:
    return (_PATTERN * (size // len(_PATTERN) + 1))[:size]


def _route_bytes(ctx: _Context) -> _Response:
    size = _int_arg(ctx, 0, "byte count", 0, _MAX_BYTES)
    return _Response(200, _pattern(size), "application/octet-stream")


def _route_gzip(ctx: _Context) -> _Response:
    size = _int_arg(ctx, 0, "byte count", 0, _MAX_GZIP)
    return _Response(
        200, content_type="application/octet-stream",
        headers=[("Content-Encoding", "gzip")], gzip_size=size,
    )  # fmt: skip


def _route_drop(ctx: _Context) -> _Response:
    return _Response(0, drop=True)


def _route_slow_body(ctx: _Context) -> _Response:
    interval = _seconds_arg(_arg(ctx, 0), "slow-body interval")
    size = _int_arg(ctx, 1, "slow-body byte count", 0, _MAX_DRIP)
    return _Response(
        200, content_type="application/octet-stream", drip_interval=interval, drip_bytes=size
    )


def _route_auth(ctx: _Context) -> _Response:
    body = json.dumps({"authorization": ctx.request.headers.get("authorization")})
    return _Response(200, body.encode("utf-8"), "application/json")


def _route_robots(ctx: _Context) -> _Response:
    if ctx.host.robots is None:
        return _text(404, "no robots.txt\n")
    status, body = ctx.host.robots
    return _text(status, body)


_ROUTES: dict[str, Callable[[_Context], _Response]] = {
    "status": _route_status,
    "flaky": _route_flaky,
    "retry-after": _route_retry_after,
    "retry-after-date": _route_retry_after_date,
    "redirect": _route_redirect,
    "to": _route_to,
    "bytes": _route_bytes,
    "gzip": _route_gzip,
    "drop": _route_drop,
    "slow-body": _route_slow_body,
    "auth": _route_auth,
    "robots.txt": _route_robots,
    # "delay" only changes the latency (see _latency_of); the answer is the page.
}
# Routes that await something even without latency, so they are answered by a task.
_WAITING_ROUTES = frozenset({"gzip", "slow-body"})


def _latency_of(request: _Request, host: _Host) -> float:
    """The wait before answering: ?latency=, else /delay/<s>, else the host's latency."""
    if "latency=" in request.query:
        values = urllib.parse.parse_qs(request.query).get("latency")
        if values:
            return _seconds_arg(values[-1], "latency")
    if request.route == "delay":
        return _seconds_arg(request.args[0] if request.args else "", "delay")
    return host.latency


def _route(request: _Request, host: _Host, state: _State) -> _Response:
    if request.method not in ("GET", "HEAD"):
        return _text(405, "only GET and HEAD\n", [("Allow", "GET, HEAD")])
    handler = _ROUTES.get(request.route, _route_page)
    try:
        return handler(_Context(request, host, state))
    except _HttpError as exc:
        return _text(exc.status, exc.message + "\n")


def _control(request: _Request, state: _State) -> _Response:
    name = request.path[len(CONTROL_PREFIX) :]
    if name == "records":
        contains = urllib.parse.parse_qs(request.query).get("contains", [None])[-1]
        body = json.dumps([r.to_json() for r in state.snapshot(contains)])
    elif name == "clear":
        state.clear()
        body = json.dumps({"cleared": True})
    elif name == "stats":
        body = json.dumps(state.stats())
    else:
        return _text(404, f"unknown control route {name!r}\n")
    return _Response(200, body.encode("utf-8"), "application/json")


# --------------------------------------------------------------------------- connections


class _Connection(asyncio.Protocol):
    """One client connection: parses requests, answers them in order, records them.

    Requests are parsed as bytes arrive (so ``arrived`` is exact even for pipelined ones) and
    queued. Those that need no waiting are answered at once; the first that must wait (latency,
    gzip, slow body) starts a worker task that answers the rest of the queue in order.
    """

    def __init__(self, host: _Host, state: _State) -> None:
        self._host = host
        self._state = state
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._skip = 0  # request-body bytes still to discard
        self._queue: deque[_Request] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._reading = True  # False after a request that ends the connection
        self._waiting: _Request | None = None  # the request a worker is answering, unrecorded
        self._sent = 0  # the status already sent for it (slow-body), else 0

    # asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        with self._state.lock:
            self._state.connections += 1
            counts = self._state.host_connections
            counts[self._host.key] = counts.get(self._host.key, 0) + 1
            self._state.open.add(self)

    def data_received(self, data: bytes) -> None:
        if not self._reading:
            return
        self._buffer += data
        self._parse_requests()
        if self._worker is None:
            self._answer_ready()

    def eof_received(self) -> None:
        # Returning None closes the transport. A client's FIN while it waits is almost always
        # a hang-up (a timeout), which must end the request's recorded interval at once, as
        # nginx's "499" does; so half-closed clients only get answers that need no waiting.
        self._reading = False

    def connection_lost(self, exc: Exception | None) -> None:
        with self._state.lock:
            self._state.open.discard(self)
        self._reading = False
        # Record the hang-up now, not when the cancelled worker next runs: by then the socket
        # is closed and the client may already be reading the records.
        self._record_dropped()
        if self._worker is not None:
            self._worker.cancel()
        while self._queue:
            request = self._queue.popleft()
            if request.error is None and not request.path.startswith(CONTROL_PREFIX):
                self._record(request, 0)

    # parsing ----------------------------------------------------------------------------

    def _parse_requests(self) -> None:
        buffer = self._buffer
        while self._reading:
            if self._skip:
                dropped = min(self._skip, len(buffer))
                del buffer[:dropped]
                self._skip -= dropped
                if self._skip:
                    return
            while buffer[:2] == b"\r\n":  # RFC 9112 2.2: ignore empty lines before a request
                del buffer[:2]
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > _MAX_HEAD:
                    self._enqueue_error(_HttpError(400, "request head too large"))
                return
            if end > _MAX_HEAD:
                self._enqueue_error(_HttpError(400, "request head too large"))
                return
            head = bytes(buffer[:end])
            del buffer[: end + 4]
            try:
                request = _parse_head(head, time.monotonic())
            except _HttpError as exc:
                self._enqueue_error(exc)
                return
            self._skip = request.body_length
            self._queue.append(request)
            if not request.keep_alive:
                self._reading = False

    def _enqueue_error(self, error: _HttpError) -> None:
        request = _Request("", "", "", "", {}, False, time.monotonic(), error=error)
        self._queue.append(request)
        self._reading = False
        self._buffer.clear()

    # answering --------------------------------------------------------------------------

    def _answer_ready(self) -> None:
        """Answer queued requests that need no waiting right away; hand the rest to a task.

        Most benchmark traffic has no latency, and answering it inside data_received saves a
        task and an event-loop iteration per request, about a fifth of the server's CPU.
        """
        while self._queue:
            try:
                result = self._answer_now(self._queue[0])
            except Exception:
                self._internal_error(self._queue.popleft(), 0)
                self._close()
                return
            if result is None:
                self._worker = asyncio.get_running_loop().create_task(self._work())
                return
            request = self._queue.popleft()
            if not (result and request.keep_alive):
                self._close()
                return

    async def _work(self) -> None:
        try:
            while self._queue:
                request = self._queue.popleft()
                if not await self._answer(request) or not request.keep_alive:
                    self._close()
                    return
        finally:
            self._worker = None

    def _close(self) -> None:
        self._reading = False
        self._queue.clear()
        if self._transport is not None:
            self._transport.close()

    def _answer_now(self, request: _Request) -> bool | None:
        """Answer ``request`` if that needs no waiting: True to keep the connection, False to
        close it; None (having changed nothing) if it must wait for latency, gzip or drips."""
        if request.error is not None:
            self._write(_text(request.error.status, request.error.message + "\n"), request)
            return False
        if request.path.startswith(CONTROL_PREFIX):
            self._write(_control(request, self._state), request)
            return True
        try:
            latency = _latency_of(request, self._host)
        except _HttpError as exc:
            return self._finish(request, _text(exc.status, exc.message + "\n"))
        if latency > 0 or request.route in _WAITING_ROUTES:
            return None
        return self._finish(request, _route(request, self._host, self._state))

    def _finish(self, request: _Request, response: _Response) -> bool:
        """Send a complete response (or drop the connection) and record it."""
        if response.drop or self._is_closing():
            self._record(request, 0)
            return False
        self._record(request, response.status, self._encode(response, request))
        return True

    async def _answer(self, request: _Request) -> bool:
        """Answer one request, waiting as needed; False if the connection must close."""
        immediate = self._answer_now(request)
        if immediate is not None:
            return immediate
        self._waiting, self._sent = request, 0
        try:
            latency = _latency_of(request, self._host)  # valid: _answer_now checked it
            if latency > 0:
                await asyncio.sleep(latency)
            response = _route(request, self._host, self._state)
            if response.gzip_size >= 0:
                response.body = await self._state.gzip_zeros(response.gzip_size)
            if not response.drip_bytes or request.method == "HEAD":
                return self._finish(request, response)
            self._write(response, request)  # the head only
            self._sent = response.status
            return await self._drip(request, response)
        except asyncio.CancelledError:
            self._record_dropped()
            raise
        except Exception:
            self._internal_error(request, self._sent)
            return False
        finally:
            self._waiting = None

    def _record_dropped(self) -> None:
        """Record the request being answered (if any) as ended by the client going away."""
        if self._waiting is not None:
            self._record(self._waiting, self._sent)

    def _internal_error(self, request: _Request, sent: int) -> None:
        """A bug in a route: log it and answer 500 rather than leave the client hanging."""
        traceback.print_exc()
        if sent or self._is_closing():
            self._record(request, sent)
        else:
            self._record(request, 500, self._encode(_text(500, "internal error\n"), request))

    def _write(self, response: _Response, request: _Request) -> None:
        assert self._transport is not None
        self._transport.write(self._encode(response, request))

    def _encode(self, response: _Response, request: _Request) -> bytes:
        """The response's head and body as one buffer: one write, so Nagle never delays it."""
        headers = [("Content-Type", response.content_type), *response.headers]
        keep_alive = request.keep_alive and request.error is None
        if not keep_alive:
            headers.append(("Connection", "close"))
        elif request.headers.get("connection", "").lower() == "keep-alive":
            headers.append(("Connection", "keep-alive"))  # HTTP/1.0 clients need to hear it
        if _has_no_body(response.status):
            length: int | None = None
        elif response.drip_bytes:
            length = response.drip_bytes
        else:
            length = len(response.body)
        head = _encode_head(response.status, headers, length, self._state.http_date())
        if request.method == "HEAD" or length is None or response.drip_bytes:
            return head
        return head + response.body

    async def _drip(self, request: _Request, response: _Response) -> bool:
        """Send the body one byte per interval, then record; False if the client hung up."""
        assert self._transport is not None
        body = _pattern(response.drip_bytes)
        for index in range(len(body)):
            await asyncio.sleep(response.drip_interval)
            if self._is_closing():
                self._record(request, response.status)
                return False
            if index + 1 < len(body):
                self._transport.write(body[index : index + 1])
        self._record(request, response.status, body[-1:])
        return True

    def _is_closing(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    def _record(self, request: _Request, status: int, last_bytes: bytes = b"") -> None:
        """Write the response's ``last_bytes`` and record the request, both under the state
        lock: a client that has read its whole response always finds its record."""
        if request is self._waiting:
            self._waiting = None  # recorded exactly once
        with self._state.lock:
            if last_bytes and self._transport is not None:
                self._transport.write(last_bytes)
            record = RequestRecord(
                host=self._host.key,
                method=request.method,
                path=request.target,
                arrived=request.arrived,
                finished=time.monotonic(),
                status=status,
                headers=request.headers,
            )
            self._state.add_locked(record)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


# --------------------------------------------------------------------------- running hosts


async def _run_hosts(
    spec: ServerSpec,
    state: _State,
    stop: asyncio.Event,
    on_ready: Callable[[list[str]], None],
) -> None:
    """Listen on every host's socket, call ``on_ready(base_urls)``, serve until ``stop``."""
    loop = asyncio.get_running_loop()
    servers: list[asyncio.Server] = []
    hosts: list[_Host] = []
    try:
        for index, address in enumerate(spec.host_addresses()):
            host = _Host(address, spec.latency_for(index), spec.robots_for(index))
            server = await loop.create_server(
                functools.partial(_Connection, host, state),
                host=address,
                port=spec.port_for(index),
                backlog=1024,
            )
            servers.append(server)
            host.bound(server.sockets[0].getsockname()[1])
            hosts.append(host)
        on_ready([host.base_url for host in hosts])
        await stop.wait()
    finally:
        state.stopping.set()
        for server in servers:
            server.close()
        for connection in list(state.open):
            connection.abort()
        # Let the aborted transports run their connection_lost callbacks and free their sockets.
        for _ in range(100):
            if not state.open:
                break
            await asyncio.sleep(0.001)
        for server in servers:
            await server.wait_closed()


class LoopbackServer:
    """Runs the simulated hosts on an asyncio loop in a background thread of this process.

    >>> with LoopbackServer(ServerSpec(hosts=2, latency=0)) as server:
    ...     url = server.base_urls[0] + "/page/1"
    """

    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        self._state = _State()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._urls: list[str] = []
        self._error: BaseException | None = None

    def start(self) -> None:
        """Start the loop thread; returns once every host's socket listens."""
        if self._thread is not None:
            raise RuntimeError("LoopbackServer already started")
        ready = threading.Event()

        def on_ready(urls: list[str]) -> None:
            self._urls = urls
            ready.set()

        def run() -> None:
            try:
                asyncio.run(self._main(on_ready))
            except BaseException as exc:  # handed to start() (or lost if after a stop())
                self._error = exc
            finally:
                ready.set()

        self._thread = threading.Thread(target=run, name="urlfleet-loopback", daemon=True)
        self._thread.start()
        ready.wait()
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError(f"loopback server failed to start: {self._error}") from self._error

    async def _main(self, on_ready: Callable[[list[str]], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await _run_hosts(self.spec, self._state, self._stop, on_ready)

    def stop(self) -> None:
        """Close all sockets and connections and join the loop thread (idempotent)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if self._loop is not None and self._stop is not None:
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # the loop already ended
                pass
        thread.join()
        self._loop = self._stop = None

    def __enter__(self) -> LoopbackServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_urls(self) -> list[str]:
        """``["http://127.0.0.1:PORT", ...]``, one per host in index order."""
        if not self._urls:
            raise RuntimeError("LoopbackServer not started")
        return list(self._urls)

    def records(self, contains: str | None = None) -> list[RequestRecord]:
        """A snapshot of the recorded requests (all hosts), optionally only paths containing
        ``contains``; control routes are never recorded."""
        return self._state.snapshot(contains)

    def clear(self) -> None:
        """Forget all records and the /flaky and /retry-after counters."""
        self._state.clear()

    def stats(self) -> dict[str, Any]:
        """Counters: cpu_s (this whole process), requests, connections (accepted so far),
        open_connections, host_connections, records, pid."""
        return self._state.stats()


# --------------------------------------------------------------------------- foreground / CLI


def serve(spec: ServerSpec, *, out: TextIO | None = None) -> None:
    """Run in the foreground until SIGINT/SIGTERM; print one line per host URL, then block."""
    _serve(spec, out=out or sys.stdout, ready_line=False, watch_stdin=False)


def _serve(spec: ServerSpec, *, out: TextIO, ready_line: bool, watch_stdin: bool) -> None:
    def on_ready(urls: list[str]) -> None:
        for url in urls:
            print(url, file=out)
        if ready_line:
            print(READY_PREFIX + " ".join(urls), file=out)
        out.flush()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, stop.set)
            except (NotImplementedError, RuntimeError, ValueError):  # not main thread / Windows
                pass
        if watch_stdin:
            _stop_on_stdin_eof(loop, stop)
        await _run_hosts(spec, _State(), stop, on_ready)

    asyncio.run(run())


def _stop_on_stdin_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Stop when stdin reaches EOF: the parent holding its other end died or closed it."""
    fd = sys.stdin.fileno()

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            stop.set()

    loop.add_reader(fd, readable)


def _parse_host_latency(text: str) -> tuple[float | None, ...]:
    """``"0:1.0,3:0.5"`` -> ``(1.0, None, None, 0.5)``."""
    overrides: dict[int, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        index, colon, seconds = item.partition(":")
        if not colon or not index.isdigit():
            raise ValueError(f"--host-latency item {item!r} is not INDEX:SECONDS")
        overrides[int(index)] = float(seconds)
    if not overrides:
        return ()
    return tuple(overrides.get(i) for i in range(max(overrides) + 1))


def _parse_robots(text: str) -> tuple[int, int, str]:
    index, _, rest = text.partition(":")
    status, colon, body = rest.partition(":")
    if not colon or not index.isdigit() or not status.isdigit():
        raise ValueError(f"--robots {text!r} is not INDEX:STATUS:BODY")
    return int(index), int(status), body


def _spec_to_argv(spec: ServerSpec) -> list[str]:
    """Command-line arguments that make :func:`main` rebuild ``spec``."""
    argv = ["--hosts", str(spec.hosts), "--latency", repr(spec.latency), "--bind", spec.bind]
    if spec.port:
        argv += ["--port", str(spec.port)]
    overrides = [f"{i}:{v!r}" for i, v in enumerate(spec.host_latency) if v is not None]
    if overrides:
        argv += ["--host-latency", ",".join(overrides)]
    if spec.addresses:
        argv += ["--addresses", ",".join(spec.addresses)]
    for index, status, body in spec.robots:
        argv += [f"--robots={index}:{status}:{body}"]
    return argv


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m urlfleet.loopback",
        description="Loopback HTTP test server: simulated hosts with latency and fault routes.",
    )
    parser.add_argument("--hosts", type=int, default=4, help="number of hosts (default 4)")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds before each answer")
    parser.add_argument("--host-latency", default="", help="per-host latency, e.g. 0:1.0,3:0.5")
    parser.add_argument("--addresses", default="", help="one host per address, e.g. 127.0.0.2")
    parser.add_argument("--bind", default="127.0.0.1", help="address when --addresses is empty")
    parser.add_argument(
        "--port", type=int, default=0, help="host i listens on PORT+i (default 0: free ports)"
    )
    parser.add_argument(
        "--robots", action="append", default=[], help="INDEX:STATUS:BODY for /robots.txt"
    )
    parser.add_argument("--ready-line", action="store_true", help="print 'READY <urls>' too")
    parser.add_argument(
        "--exit-on-stdin-eof", action="store_true", help="stop when stdin closes (for parents)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m urlfleet.loopback [--hosts N] [--latency S] ...``; see ``--help``."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        spec = ServerSpec(
            hosts=args.hosts,
            latency=args.latency,
            host_latency=_parse_host_latency(args.host_latency),
            addresses=tuple(a.strip() for a in args.addresses.split(",") if a.strip()),
            bind=args.bind,
            robots=tuple(_parse_robots(r) for r in args.robots),
            port=args.port,
        )
    except ValueError as exc:
        parser.error(str(exc))
    try:
        _serve(spec, out=sys.stdout, ready_line=args.ready_line, watch_stdin=args.exit_on_stdin_eof)
    except OSError as exc:  # e.g. 127.0.0.2 cannot be bound on macOS
        print(f"loopback: {exc}", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------- child process


def _request_json(base_url: str, route: str, timeout: float = 30.0) -> Any:
    """GET a control route with http.client (no proxies, no extra dependencies)."""
    parts = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        connection.request("GET", route)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"loopback control {route} answered {response.status}: {body!r}")
    return json.loads(body)


class LoopbackProcess:
    """The same server in a child process, so its CPU does not compete with the client's GIL.

    >>> with LoopbackProcess(ServerSpec(hosts=2, latency=0)) as server:
    ...     url = server.base_urls[1]
    """

    def __init__(self, spec: ServerSpec, *, start_timeout: float = _START_TIMEOUT) -> None:
        self.spec = spec
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._urls: list[str] = []

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Spawn ``python -m urlfleet.loopback`` and wait for its READY line (RuntimeError
        with the child's stderr if it does not come within ``start_timeout`` seconds)."""
        if self._proc is not None:
            raise RuntimeError("LoopbackProcess already started")
        command = [sys.executable, "-m", "urlfleet.loopback", *_spec_to_argv(self.spec)]
        command += ["--ready-line", "--exit-on-stdin-eof"]
        self._stderr = tempfile.TemporaryFile()
        # stdin stays open as a lifeline: if this process dies, the child sees EOF and exits.
        self._proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=_child_env(),
        )
        lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(
            target=_pump_lines, args=(self._proc.stdout, lines), daemon=True
        )
        self._reader.start()
        try:
            self._urls = self._wait_ready(lines)
        except BaseException:
            error = self._child_stderr()
            self.stop()
            if error is None:
                raise
            raise RuntimeError(f"loopback child did not start: {error}") from None

    def _wait_ready(self, lines: queue.Queue[str | None]) -> list[str]:
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"no READY line within {self.start_timeout} s") from None
            if line is None:
                raise RuntimeError("exited before its READY line")
            if line.startswith(READY_PREFIX):
                return line[len(READY_PREFIX) :].split()

    def _child_stderr(self) -> str | None:
        if self._stderr is None:
            return None
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace").strip()
        return text or "(no stderr)"

    def stop(self) -> None:
        """Terminate the child, reap it and close its pipes (idempotent)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if self._reader is not None:
                self._reader.join(timeout=10)  # EOF follows the exit
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()
        self._reader = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self._urls = []

    def __enter__(self) -> LoopbackProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_urls(self) -> list[str]:
        """``["http://127.0.0.1:PORT", ...]``, one per host in index order."""
        if not self._urls:
            raise RuntimeError("LoopbackProcess not started")
        return list(self._urls)

    def records(self, contains: str | None = None) -> list[RequestRecord]:
        """The child's records (all hosts), fetched over the control route."""
        route = CONTROL_PREFIX + "records"
        if contains is not None:
            route += "?" + urllib.parse.urlencode({"contains": contains})
        data = _request_json(self.base_urls[0], route)
        return [RequestRecord.from_json(item) for item in data]

    def clear(self) -> None:
        """Forget the child's records and fault counters."""
        _request_json(self.base_urls[0], CONTROL_PREFIX + "clear")

    def stats(self) -> dict[str, Any]:
        """The child's counters (see :meth:`LoopbackServer.stats`); each call is 1 connection."""
        result: dict[str, Any] = _request_json(self.base_urls[0], CONTROL_PREFIX + "stats")
        return result

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the server process has used so far."""
        return float(self.stats()["cpu_s"])


def _pump_lines(stream: IO[bytes] | None, lines: queue.Queue[str | None]) -> None:
    """Move the child's stdout lines into ``lines`` until EOF (then None)."""
    if stream is not None:
        for raw in stream:
            lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
    lines.put(None)


def _child_env() -> dict[str, str]:
    """The environment for the child: ours, plus our package's root on PYTHONPATH if this
    process found urlfleet through a path the child would not have (e.g. a test runner's)."""
    env = dict(os.environ)
    root = Path(__file__).resolve().parent.parent
    on_path = {Path(p).resolve() for p in sys.path if p}
    # A site directory must not go on PYTHONPATH: that would put it ahead of the stdlib.
    if root not in on_path or root.name in ("site-packages", "dist-packages"):
        return env
    existing = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = str(root) + (os.pathsep + existing if existing else "")
    return env


if __name__ == "__main__":
    raise SystemExit(main())
