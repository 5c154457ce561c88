"""Failures in words people can act on: one ``error_kind`` from a fixed vocabulary, a short
message without internal class names, and which failures can never heal.

The kinds, as the record's ``error_kind`` (None when the URL is ok):

    dns          the host name does not resolve (NXDOMAIN is final; a DNS failure is retried)
    connect      refused, reset, closed without a response, unreachable
    tls          the TLS handshake failed: certificate expired, untrusted, for another name
    timeout      --timeout passed while connecting or waiting for the next byte
    deadline     --max-time passed before the whole response was in
    http         a final HTTP status that is not 2xx, or a response that is not valid HTTP
    body         the body was larger than --max-bytes, cut short, or could not be decoded
    redirect     too many redirects, or a redirect to a URL that cannot be fetched
    robots       disallowed by robots.txt, or robots.txt unavailable
    sitemap      a sitemap (a URL given as one, or listed by an index) is not a sitemap
    cut-off      the host was cut off after failing too often in a row
    skipped      not fetched past its headers: --accept-type does not take its Content-Type
    input        the URL itself cannot be fetched (malformed, unsupported scheme)
    interrupted  the run was interrupted before the URL was done
    internal     a bug in urlfleet: one URL lost its fetch, never the run

Final at once, as curl decides too: certificate errors, NXDOMAIN, malformed responses and
too many headers. Retried: timeouts, refused and reset connections, DNS failures that say
"try again", 408/425/429/5xx.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import NameResolutionError

from urlfleet.errors import DeadlineExceeded, NotAccepted, RetryableStatus, RetryRequested

ERROR_KINDS = (
    "dns", "connect", "tls", "timeout", "deadline", "http", "body", "redirect", "robots",
    "sitemap", "cut-off", "input", "interrupted", "internal", "skipped",
)  # fmt: skip

# The reasons the rest of urlfleet gives a URL that gets no request, and their kinds.
PROBLEM_KINDS = (
    ("invalid URL", "input"),
    ("not a URL string", "input"),
    ("disallowed by robots.txt", "robots"),
    ("robots.txt unavailable", "robots"),
    ("host cut off", "cut-off"),
    ("internal error", "internal"),
)

_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>: ")
_CONNECTION_REPR = re.compile(r"\b_?\w*HTTPS?Connection(?:Pool)?\([^)]*\): ")
_ERRNO = re.compile(r"^\[Errno -?\d+\] ")


def kind_of_problem(why: str) -> str:
    """The kind of a reason given without a request (``job.problem``)."""
    return next((kind for prefix, kind in PROBLEM_KINDS if why.startswith(prefix)), "internal")


def kind_of(error: BaseException | None, status: int | None, truncated: bool) -> str | None:
    """The ``error_kind`` of a failed attempt; None when nothing failed."""
    if truncated:
        return "body"
    if error is None:
        return None if status is not None and 200 <= status < 300 else "http"
    if isinstance(error, DeadlineExceeded):
        return "deadline"
    if isinstance(error, NotAccepted):
        return "skipped"
    if isinstance(error, (RetryableStatus, RetryRequested)):
        return "http"
    if isinstance(error, requests.TooManyRedirects | requests.exceptions.InvalidURL):
        return "redirect" if status is not None else "input"
    if isinstance(error, requests.exceptions.SSLError) or _innermost_of(error, ssl.SSLError):
        return "tls"
    if isinstance(error, requests.Timeout):
        return "timeout"
    if _innermost_of(error, socket.gaierror) or _innermost_of(error, NameResolutionError):
        return "dns"
    if isinstance(
        error, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError
    ):
        return "body"
    if _malformed(error):
        return "http"
    if isinstance(error, requests.ConnectionError | OSError):
        return "connect"
    return "internal"


def is_permanent(error: BaseException) -> bool:
    """True for a failure that the same request will meet again: not worth a retry."""
    if isinstance(error, requests.exceptions.SSLError) or _innermost_of(error, ssl.SSLError):
        return True
    gai = _innermost_of(error, socket.gaierror)
    if isinstance(gai, socket.gaierror) and gai.errno in _NO_SUCH_NAME:
        return True
    return _malformed(error)


_NO_SUCH_NAME = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


def describe(
    error: BaseException | None, status: int | None, truncated: bool, attempts: int
) -> str:
    """A failure in plain words, e.g. ``HTTP 503 after 4 attempts`` or ``ConnectTimeout: ...``."""
    after = f" after {attempts} attempts" if attempts > 1 else ""
    if truncated:
        return "body larger than --max-bytes"
    if isinstance(error, RetryableStatus):
        return f"HTTP {error.status}{after}"
    if error is None:
        return f"HTTP {status}"
    if isinstance(error, DeadlineExceeded):
        return f"{error}{after}"
    if isinstance(error, NotAccepted):
        return str(error)
    return f"{type(error).__name__}: {_detail(error)}{after}"


def _detail(error: BaseException) -> str:
    inner = _innermost(error)
    if isinstance(inner, ssl.SSLCertVerificationError) and inner.verify_message:
        return f"certificate verify failed: {inner.verify_message}"
    if isinstance(inner, socket.gaierror) or isinstance(inner, NameResolutionError):
        host = _host_in(error)
        name = f" {host!r}" if host else ""
        if isinstance(inner, socket.gaierror) and inner.errno not in _NO_SUCH_NAME:
            return f"cannot resolve host name{name} (DNS: {inner.strerror or inner})"
        return f"cannot resolve host name{name} (no such name)"
    if isinstance(inner, ConnectionRefusedError):
        return "connection refused"
    if isinstance(inner, http.client.RemoteDisconnected):
        return "connection closed without a response"
    if isinstance(inner, ConnectionResetError):
        return "connection reset by the server"
    text = str(inner) or type(inner).__name__
    text = _CONNECTION_REPR.sub("", _OBJECT_REPR.sub("", text))
    return _ERRNO.sub("", text.strip())


def _host_in(error: BaseException) -> str | None:
    request = getattr(error, "request", None)
    url = getattr(request, "url", None)
    if isinstance(url, str):
        return urlsplit(url).hostname
    return None


def _malformed(error: BaseException) -> bool:
    inner = _innermost(error)
    if isinstance(inner, http.client.RemoteDisconnected | http.client.IncompleteRead):
        return False  # a dropped connection, not a malformed answer
    return isinstance(inner, http.client.HTTPException)


def _chain(error: BaseException) -> list[BaseException]:
    # requests wraps urllib3 wraps the socket error; the innermost one says what happened.
    found: list[BaseException] = [error]
    reason: BaseException = error
    for _ in range(8):
        inner = getattr(reason, "reason", None)
        if not isinstance(inner, BaseException) and reason.args:
            inner = next((a for a in reason.args if isinstance(a, BaseException)), None)
        if not isinstance(inner, BaseException):
            inner = reason.__cause__
        if not isinstance(inner, BaseException) or inner in found:
            break
        found.append(inner)
        reason = inner
    return found


def _innermost(error: BaseException) -> BaseException:
    chain = [e for e in _chain(error) if not isinstance(e, NameResolutionError)] or [error]
    return chain[-1]


def _innermost_of(error: BaseException, kind: type[BaseException]) -> BaseException | None:
    return next((e for e in _chain(error) if isinstance(e, kind)), None)
