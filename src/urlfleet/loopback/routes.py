"""The routes: one function per first path segment, and the control routes."""

from __future__ import annotations

import email.utils
import hashlib
import html
import json
import math
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .http11 import (
    _HttpError,
    _is_decimal,
    _reason,
    _Request,
    _Response,
)
from .spec import _Host, _url_host

if TYPE_CHECKING:
    from .state import _State

CONTROL_PREFIX = "/__urlfleet__/"

_MAX_BYTES = 1 << 28  # /bytes/<n> builds the body in memory
_MAX_GZIP = 1 << 32  # /gzip/<n>: 4 GiB of zeros already takes ~15 s to compress at level 9
_MAX_DRIP = 1 << 20  # /slow-body/<interval>/<n>
_PATTERN = b"urlfleet"


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
    location = f"{ctx.host.scheme}://{_url_host(ctx.host.address)}:{port}/{rest}"
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
