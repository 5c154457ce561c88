"""HTTP/1.1 messages: parsing a request head, encoding a response head."""

from __future__ import annotations

import dataclasses
import functools
import http
import re
from collections.abc import Iterator
from dataclasses import dataclass

_MAX_HEAD = 64 * 1024  # bytes of request line + headers before we answer 400
_SERVER_NAME = "urlfleet-loopback"


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
    body: bytes = b""  # its first BODY_KEPT bytes, once they have all arrived


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    drop: bool = False  # close the connection without answering
    gzip_size: int = -1  # >= 0: body is the gzip of that many zeros, computed lazily
    # A body sent over time instead of ``body``: its pieces, made as they are sent (so that
    # none is ever held whole), each one ``interval`` seconds after the one before.
    stream: Iterator[bytes] | None = None
    interval: float = 0.0
    length: int | None = None  # the Content-Length announced for ``stream`` (None: none)
    chunked: bool = False  # Transfer-Encoding: chunked, one chunk per piece of ``stream``
    truncated: bool = False  # the body stops short: close without the rest (or last chunk)
    http10: bool = False  # an HTTP/1.0 answer: no Content-Length, the body ends at the close
    silent: bool = False  # send nothing at all until the client or the server goes

    @property
    def closes(self) -> bool:
        """Whether the connection must close after this response."""
        return self.drop or self.truncated or self.http10


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
def _status_line(status: int, version: str = "HTTP/1.1") -> str:
    """The first lines of every response with ``status`` (HTTPStatus lookups are slow)."""
    return f"{version} {status} {_reason(status)}\r\nServer: {_SERVER_NAME}\r\n"


def _encode_head(
    status: int,
    headers: list[tuple[str, str]],
    content_length: int | None,
    date: str,
    version: str = "HTTP/1.1",
) -> bytes:
    fields = "".join(f"{name}: {value}\r\n" for name, value in headers)
    if content_length is not None:
        fields += f"Content-Length: {content_length}\r\n"
    return f"{_status_line(status, version)}Date: {date}\r\n{fields}\r\n".encode("latin-1")


def _chunk(data: bytes) -> bytes:
    """``data`` framed as one chunk of a chunked body (RFC 9112 7.1); b"" is the last chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b"0\r\n\r\n"


def _has_no_body(status: int) -> bool:
    return status in (204, 304) or status < 200
