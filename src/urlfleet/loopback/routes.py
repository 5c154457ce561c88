"""The routes: one function per first path segment, and the control routes."""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import html
import itertools
import json
import math
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
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
_MAX_DRIP = 1 << 20  # /slow-body/<interval>/<n>, /drip/<interval>/<n>
_MAX_STREAM = 1 << 40  # bodies made as they are sent: only the client's patience limits them
_MAX_HEADERS = 100_000  # /many-headers/<n>: the head is built in memory
_MAX_HEADER_BYTES = 1 << 20  # /huge-header/<bytes>
_PATTERN = b"urlfleet"
_CHUNK = 1024  # the chunk size of chunked bodies
_PIECE = 1 << 16  # the piece size of other streamed bodies
_ENDLESS_INTERVAL = 0.01  # /redirect-body/endless: one chunk per interval


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


def _pieces(size: int, piece: int) -> Iterator[bytes]:
    """``size`` bytes of the pattern in pieces of ``piece`` bytes (the last may be shorter),
    made one at a time."""
    block = _pattern(min(size, piece))
    for _ in range(size // piece):
        yield block
    if size % piece:
        yield block[: size % piece]


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
    """/slow-body/<interval>/<n> (also /drip/<interval>/<n>): one byte per interval."""
    interval = _seconds_arg(_arg(ctx, 0), "slow-body interval")
    size = _int_arg(ctx, 1, "slow-body byte count", 0, _MAX_DRIP)
    # Each byte is made when it is sent (the pattern's bytes in turn), never the whole body.
    drip = (_PATTERN[i : i + 1] for i in itertools.islice(itertools.cycle(range(8)), size))
    return _Response(
        200, content_type="application/octet-stream",
        stream=drip, interval=interval, length=size,
    )  # fmt: skip


def _redirect_to_page(ctx: _Context, first_rest: int) -> list[tuple[str, str]]:
    location = "/".join(["", "page", *ctx.args[first_rest:]])
    return [("Location", _with_query(location, ctx.request.query))]


def _route_redirect_body(ctx: _Context) -> _Response:
    """/redirect-body/<kind>/<n>/rest: a 302 to /page/rest whose body is the hazard."""
    kind = _arg(ctx, 0)
    headers = _redirect_to_page(ctx, 2)
    if kind == "big":
        size = _int_arg(ctx, 1, "redirect body size", 0, _MAX_STREAM)
        return _Response(302, headers=headers, stream=_pieces(size, _PIECE), length=size)
    if kind == "gzip":
        size = _int_arg(ctx, 1, "redirect body size", 0, _MAX_GZIP)
        return _Response(
            302, content_type="application/octet-stream",
            headers=[*headers, ("Content-Encoding", "gzip")], gzip_size=size,
        )  # fmt: skip
    if kind == "endless":
        block = _pattern(_CHUNK)
        return _Response(
            302, headers=headers, stream=itertools.repeat(block), interval=_ENDLESS_INTERVAL,
            chunked=True,
        )  # fmt: skip
    raise _HttpError(400, f"redirect body kind must be big, gzip or endless, got {kind!r}")


def _route_chunked(ctx: _Context) -> _Response:
    size = _int_arg(ctx, 0, "chunked byte count", 0, _MAX_STREAM)
    return _Response(
        200, content_type="application/octet-stream", stream=_pieces(size, _CHUNK), chunked=True
    )


def _route_chunked_truncated(ctx: _Context) -> _Response:
    size = _int_arg(ctx, 0, "chunked byte count", 0, _MAX_STREAM)
    half = (size // _CHUNK + (size % _CHUNK > 0) + 1) // 2  # of the chunks, rounded up
    return _Response(
        200, content_type="application/octet-stream",
        stream=itertools.islice(_pieces(size, _CHUNK), half), chunked=True, truncated=True,
    )  # fmt: skip


def _route_short_body(ctx: _Context) -> _Response:
    size = _int_arg(ctx, 0, "short-body byte count", 0, _MAX_STREAM)
    return _Response(
        200, content_type="application/octet-stream",
        stream=_pieces(size // 2, _PIECE), length=size, truncated=True,
    )  # fmt: skip


def _route_black_hole(ctx: _Context) -> _Response:
    return _Response(0, silent=True)


def _route_many_headers(ctx: _Context) -> _Response:
    count = _int_arg(ctx, 0, "header count", 0, _MAX_HEADERS)
    headers = [(f"X-H{i}", "v") for i in range(1, count + 1)]
    return _text(200, f"{count} extra headers\n", headers)


def _route_huge_header(ctx: _Context) -> _Response:
    size = _int_arg(ctx, 0, "header value size", 0, _MAX_HEADER_BYTES)
    return _text(200, f"one header of {size} bytes\n", [("X-Huge", "v" * size)])


def _route_http10(ctx: _Context) -> _Response:
    size = _int_arg(ctx, 0, "byte count", 0, _MAX_STREAM)
    return _Response(
        200, content_type="application/octet-stream", stream=_pieces(size, _PIECE), http10=True
    )


def _route_auth(ctx: _Context) -> _Response:
    body = json.dumps({"authorization": ctx.request.headers.get("authorization")})
    return _Response(200, body.encode("utf-8"), "application/json")


def _route_robots(ctx: _Context) -> _Response:
    if ctx.host.robots is None:
        return _text(404, "no robots.txt\n")
    status, body = ctx.host.robots
    return _text(status, body)


# --------------------------------------------------------------------------- sitemap input
# Sitemaps for urlfleet's sitemap input (``--input-format sitemap``, ``.xml`` lists):
#   /sitemap/<n>/<tag>.xml            a urlset of n pages, /page/<tag>/<i>, on this host
#   /sitemap/<n>/<tag>.xml.gz         the same gzipped, sent as application/gzip, as files are
#   /sitemap-index/<k>/<n>/<tag>.xml  an index of k children /sitemap/<n>/<tag>-<j>.xml, on
#                                     this host or, with ?port=P, on the host at port P
#   /sitemap-nest/<d>/<tag>.xml       an index d levels deep above /sitemap/1/<tag>.xml
#   /sitemap-bad/<kind>.xml           xml: not well-formed; root: not a sitemap; doctype: an
#                                     entity declaration (a billion-laughs shape)

_MAX_SITEMAP_URLS = 1_000_000  # past the protocol's 50,000, to test that limit
_SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"


def _sitemap_tag(ctx: _Context, index: int) -> tuple[str, bool]:
    """The tag in ``<tag>.xml`` (or ``.xml.gz``), and whether it is the gzipped one."""
    name = _arg(ctx, index)
    for suffix, gzipped in ((".xml.gz", True), (".xml", False)):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], gzipped
    raise _HttpError(400, f"sitemap name must be <tag>.xml or <tag>.xml.gz, got {name!r}")


def _sitemap_xml(root: str, entry: str, locs: Iterator[str]) -> bytes:
    lines = [f"<{entry}><loc>{html.escape(loc)}</loc><lastmod>2024-05-06</lastmod></{entry}>"
             for loc in locs]  # fmt: skip
    body = "\n".join(
        ['<?xml version="1.0" encoding="UTF-8"?>', f'<{root} xmlns="{_SITEMAP_NS}">', *lines,
         f"</{root}>", ""]
    )  # fmt: skip
    return body.encode("utf-8")


def _sitemap_answer(body: bytes, gzipped: bool) -> _Response:
    if gzipped:
        return _Response(200, gzip.compress(body, 1), "application/gzip")
    return _Response(200, body, "application/xml")


def _route_sitemap(ctx: _Context) -> _Response:
    count = _int_arg(ctx, 0, "sitemap URL count", 0, _MAX_SITEMAP_URLS)
    tag, gzipped = _sitemap_tag(ctx, 1)
    base = ctx.host.base_url
    locs = (f"{base}/page/{tag}/{i}" for i in range(count))
    return _sitemap_answer(_sitemap_xml("urlset", "url", locs), gzipped)


def _route_sitemap_index(ctx: _Context) -> _Response:
    children = _int_arg(ctx, 0, "sitemap index size", 0, _MAX_SITEMAP_URLS)
    count = _int_arg(ctx, 1, "sitemap URL count", 0, _MAX_SITEMAP_URLS)
    tag, gzipped = _sitemap_tag(ctx, 2)
    base = ctx.host.base_url
    ports = urllib.parse.parse_qs(ctx.request.query).get("port")
    if ports:  # another host of this server, named as /to/<port> names it
        if not _is_decimal(ports[-1]) or not 1 <= int(ports[-1]) <= 65535:
            raise _HttpError(400, f"port must be an integer in [1, 65535], got {ports[-1]!r}")
        base = f"{ctx.host.scheme}://{_url_host(ctx.host.address)}:{int(ports[-1])}"
    locs = (f"{base}/sitemap/{count}/{tag}-{j}.xml" for j in range(children))
    return _sitemap_answer(_sitemap_xml("sitemapindex", "sitemap", locs), gzipped)


def _route_sitemap_nest(ctx: _Context) -> _Response:
    depth = _int_arg(ctx, 0, "sitemap nesting depth", 0, 100)
    tag, gzipped = _sitemap_tag(ctx, 1)
    base = ctx.host.base_url
    below = f"{base}/sitemap-nest/{depth - 1}/{tag}.xml" if depth else f"{base}/sitemap/1/{tag}.xml"
    return _sitemap_answer(_sitemap_xml("sitemapindex", "sitemap", iter([below])), gzipped)


def _route_sitemap_bad(ctx: _Context) -> _Response:
    kind, _ = _sitemap_tag(ctx, 0)
    bodies = {
        "xml": b'<?xml version="1.0"?>\n<urlset><url><loc>http://x.test/</loc></url>\n',
        "root": b'<?xml version="1.0"?>\n<html><body>not a sitemap</body></html>\n',
        "doctype": b'<?xml version="1.0"?>\n<!DOCTYPE urlset [<!ENTITY a "aaaaaaaaaa">\n'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n<urlset><url><loc>&b;</loc></url>'
        b"</urlset>\n",
    }
    if kind not in bodies:
        raise _HttpError(400, f"bad sitemap kind must be xml, root or doctype, got {kind!r}")
    return _Response(200, bodies[kind], "application/xml")


# --------------------------------------------------------------------------- request shaping
#   /echo/...                 any method: 200, JSON of the method, headers and body received
#   /set-cookie/NAME/VALUE    the page, with Set-Cookie NAME=VALUE; ?path=, ?domain=, ?max_age=
#                             add those attributes
#   /no-head/...              405 to HEAD (as some servers do), the page to GET
#   /type/<type>/<subtype>    a small body sent with that Content-Type


def _route_echo(ctx: _Context) -> _Response:
    request = ctx.request
    seen = {"method": request.method, "headers": request.headers,
            "body": request.body.decode("latin-1")}  # fmt: skip
    return _Response(200, json.dumps(seen).encode("utf-8"), "application/json")


_COOKIE_ATTRIBUTES = (("path", "Path"), ("domain", "Domain"), ("max_age", "Max-Age"))


def _route_set_cookie(ctx: _Context) -> _Response:
    name, value = _arg(ctx, 0), _arg(ctx, 1)
    if not name:
        raise _HttpError(400, "cookie name missing: /set-cookie/NAME/VALUE")
    query = urllib.parse.parse_qs(ctx.request.query)
    attributes = [f"{label}={query[key][-1]}" for key, label in _COOKIE_ATTRIBUTES if key in query]
    cookie = "; ".join([f"{name}={value}", *attributes])
    page = _route_page(ctx)
    page.headers.append(("Set-Cookie", cookie))
    return page


def _route_no_head(ctx: _Context) -> _Response:
    if ctx.request.method == "HEAD":
        return _text(405, "no HEAD here\n", [("Allow", "GET")])
    return _route_page(ctx)


_MEDIA_PART = re.compile(r"[A-Za-z0-9!#$&^_.+-]+")


def _route_type(ctx: _Context) -> _Response:
    parts = ctx.args[:2]
    if len(parts) < 2 or not all(_MEDIA_PART.fullmatch(part) for part in parts):
        raise _HttpError(400, "want /type/<type>/<subtype>, each part a token")
    media = "/".join(parts)
    return _Response(200, f"a {media} body\n".encode(), media)


# --------------------------------------------------------------------------- revalidation
#   /etag/<tag>[/<epoch>]  the page, with ETag "<tag>" and Last-Modified <epoch> (seconds,
#                          default _LAST_MODIFIED); 304 and no body to an If-None-Match that
#                          names the tag (or *), or, without one, to an If-Modified-Since
#                          not older than Last-Modified (RFC 9110 13.2.2: that order)

_LAST_MODIFIED = 1_700_000_000


def _route_etag(ctx: _Context) -> _Response:
    tag = _arg(ctx, 0)
    if not tag or '"' in tag:
        raise _HttpError(400, f"etag wants a tag without quotes, got {tag!r}")
    epoch = _int_arg(ctx, 1, "last-modified epoch", 0, 1 << 40) if len(ctx.args) > 1 else None
    etag = f'"{tag}"'
    modified = _LAST_MODIFIED if epoch is None else epoch
    validators = [("ETag", etag), ("Last-Modified", email.utils.formatdate(modified, usegmt=True))]
    if _not_modified(ctx.request.headers, etag, modified):
        return _Response(304, headers=validators)
    page = _route_page(ctx)
    page.headers.extend(validators)
    return page


def _not_modified(headers: dict[str, str], etag: str, modified: int) -> bool:
    if "if-none-match" in headers:
        # Weak comparison, as for GET: W/"x" matches "x".
        given = [t.strip().removeprefix("W/") for t in headers["if-none-match"].split(",")]
        return "*" in given or etag in given
    since = headers.get("if-modified-since")
    if since is None:
        return False
    try:
        when = email.utils.parsedate_to_datetime(since).timestamp()
    except (TypeError, ValueError):
        return False  # not a date: ignored, as RFC 9110 says
    return when >= modified


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
    "drip": _route_slow_body,
    "redirect-body": _route_redirect_body,
    "chunked": _route_chunked,
    "chunked-truncated": _route_chunked_truncated,
    "short-body": _route_short_body,
    "black-hole": _route_black_hole,
    "many-headers": _route_many_headers,
    "huge-header": _route_huge_header,
    "http10": _route_http10,
    "auth": _route_auth,
    "robots.txt": _route_robots,
    # sitemap input
    "sitemap": _route_sitemap,
    "sitemap-index": _route_sitemap_index,
    "sitemap-nest": _route_sitemap_nest,
    "sitemap-bad": _route_sitemap_bad,
    # revalidation: validators, and 304 to a request that still has the current copy
    "etag": _route_etag,
    # "delay" only changes the latency (see _latency_of); the answer is the page.
    # request shaping: what a client sent (method, headers, body), cookies, HEAD, media types
    "echo": _route_echo,
    "set-cookie": _route_set_cookie,
    "no-head": _route_no_head,
    "type": _route_type,
}
_ANY_METHOD_ROUTES = frozenset({"echo"})  # the others answer GET and HEAD only
# Routes that await something even without latency, so they are answered by a task.
_WAITING_ROUTES = frozenset(
    {
        "gzip", "slow-body", "drip", "redirect-body", "chunked", "chunked-truncated",
        "short-body", "black-hole", "http10",
    }
)  # fmt: skip


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
    if request.method not in ("GET", "HEAD") and request.route not in _ANY_METHOD_ROUTES:
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
