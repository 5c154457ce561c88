"""A request's way over one of urlfleet's pooled connections: urllib3's steps, taken once.

urllib3's ``urlopen`` is written for every caller (retries that recurse, redirects, proxies,
bodies of every kind) and writes each request through http.client's ``putrequest`` and
``putheader``, which check and encode one header at a time (``python
benchmarks/cpu_profile.py`` put urllib3 alone at a fifth of the client's CPU). The requests
urlfleet sends on a direct connection need none of that: tenacity retries and requests
follows redirects, the body is none or bytes of a known length. For them
``QuickPool.urlopen`` takes urllib3's own steps in one pass: the same pooled connection and
drop check, the same bytes on the wire (``request_head``; a test compares them with
http.client's), the same urllib3 ``HTTPResponse``, and every error mapped as urllib3 maps
it, by urllib3's own ``Retry.increment``. Anything else (a proxy, a chunked or streamed
body, a header http.client would refuse, fold or encode its own way, retries left to count)
goes to urllib3's ``urlopen`` itself, so it behaves, and fails, exactly as urllib3 does.
"""

from __future__ import annotations

import errno
import http.client
import logging
import os
import re
import socket
import sys
from collections.abc import Mapping
from typing import Any

import urllib3.connection
import urllib3.connectionpool
from urllib3._collections import HTTPHeaderDict
from urllib3.connection import BaseSSLError, HTTPException
from urllib3.exceptions import (
    EmptyPoolError,
    HeaderParsingError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.exceptions import (
    TimeoutError as Urllib3TimeoutError,
)
from urllib3.response import HTTPResponse
from urllib3.util import SKIP_HEADER
from urllib3.util.response import assert_header_parsing
from urllib3.util.retry import Retry
from urllib3.util.ssl_match_hostname import CertificateError
from urllib3.util.timeout import _DEFAULT_TIMEOUT, Timeout

# urllib3's and http.client's private helpers this path shares with them (urllib3 2.8 has
# them all); without any of them, every request takes urllib3's own urlopen, and the tests
# of this module fail rather than pass on the slow path.
_encode_target: Any = getattr(urllib3.connectionpool, "_encode_target", None)
_normalize_header_values: Any = getattr(urllib3.connection, "_normalize_header_values", None)
_default_user_agent: Any = getattr(urllib3.connection, "_get_default_user_agent", None)
_strip_ipv6_iface: Any = getattr(http.client, "_strip_ipv6_iface", None)
# http.client's connection keeps its latest response (name-mangled ``__response``), to close
# it with the connection and to refuse a response while that one is unread.
_LATEST = "_HTTPConnection__response"
QUICK = None not in (
    _encode_target, _normalize_header_values, _default_user_agent, _strip_ipv6_iface
) and _LATEST in vars(http.client.HTTPConnection("h"))  # fmt: skip

_log = logging.getLogger("urllib3.connection")  # where urllib3 reports a bad header block
# A method of token characters only, as both urllib3 and http.client demand.
_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+").fullmatch
# A target that urllib3's _encode_target returns as it is (nothing to percent-encode, no
# percent-escape to upper-case), and so also one http.client's path check lets through.
_PLAIN_TARGET = re.compile(
    r"/[-A-Za-z0-9._~!$&'()*+,;=:@/]*(?:\?[-A-Za-z0-9._~!$&'()*+,;=:@/?]*)?"
).fullmatch
# http.client's legal header name (``_is_legal_header_name``), on ASCII text.
_LEGAL_NAME = re.compile(r"[^:\s][^:\r\n]*", re.ASCII).fullmatch
_NO_BODY_EXPECTED = frozenset({"GET", "HEAD", "DELETE", "TRACE", "OPTIONS", "CONNECT"})


def host_header(host: str, port: int | None, default_port: int) -> str:
    """The ``Host`` value http.client's ``putrequest`` writes for a connection to ``host``
    and ``port`` (a request in origin form, no tunnel)."""
    try:
        encoded = host.encode("ascii")
    except UnicodeEncodeError:
        encoded = host.encode("idna")
    if ":" in host:
        encoded = _strip_ipv6_iface(b"[" + encoded + b"]")
    if port == default_port:
        return encoded.decode("latin-1")  # as http.client's putheader sends those bytes
    return f"{encoded.decode('ascii')}:{port}"


def request_head(
    method: str, target: str, headers: Mapping[Any, Any], body: bytes | None, host: str
) -> bytes | None:
    """The request line and header block urllib3 and http.client write for this request, or
    None where they would refuse a part of it, fold it or encode it otherwise (their own
    code then does so). ``target``: as urllib3's ``_encode_target`` left it."""
    if not _TOKEN(method) or not target.isascii():
        return None
    lines = [f"{method} {target} HTTP/1.1"]
    store = getattr(headers, "_store", None)  # requests' CaseInsensitiveDict: lower -> item
    keys: Any
    items: Any
    if isinstance(store, dict):
        keys, items = store.keys(), store.values()
    else:
        items = headers.items()
        keys = {name.lower() for name, _ in items if isinstance(name, str)}
    if "transfer-encoding" in keys:
        return None  # a chunked body: urllib3's business
    if "host" not in keys:
        lines.append(f"Host: {host}")
    if "accept-encoding" not in keys:
        lines.append("Accept-Encoding: identity")
    if "content-length" not in keys:
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        elif method.upper() not in _NO_BODY_EXPECTED:
            lines.append("Content-Length: 0")
    if "user-agent" not in keys:
        lines.append(f"User-Agent: {_default_user_agent()}")
    for name, value in items:
        if (
            not isinstance(name, str)
            or not isinstance(value, str)
            or value == SKIP_HEADER
            or "\r" in value
            or "\n" in value
            or not name.isascii()
            or not _LEGAL_NAME(name)
        ):
            return None
        lines.append(f"{name}: {value}")
    lines.append("\r\n")
    try:
        return "\r\n".join(lines).encode("latin-1")
    except UnicodeEncodeError:
        return None  # http.client raises its own error for such a value


def keep_timeout(sock: Any, timeout: float | None) -> None:
    """``sock.settimeout(timeout)``, left out where the socket has that timeout already.

    Every ``settimeout`` is a system call (the socket's blocking flag, set again even where it
    is unchanged) made with the GIL let go; on a CPU-bound list, each such call may hand the
    GIL to a waiting thread, and this one must then wait to get it back."""
    if sock.gettimeout() != timeout:
        sock.settimeout(timeout)


def send_all(sock: Any, data: bytes) -> None:
    """``sock.sendall(data)`` in one system call where the socket takes it all at once.

    A socket with a timeout waits for room (a ``poll``) before every send, GIL let go, even
    with its buffer empty; a plain socket is written directly first, and only what it could
    not take goes through ``sendall`` and its timeout. An encrypted one always goes through
    ``sendall``."""
    if type(sock) is socket.socket:
        try:
            sent = os.write(sock.fileno(), data)
        except BlockingIOError:
            sent = 0
        if sent == len(data):
            return
        data = memoryview(data)[sent:]  # type: ignore[assignment]
    sock.sendall(data)


class QuickConnection:
    """A urllib3 connection that can also be sent a head made by ``request_head``, and read
    the response as urllib3's ``getresponse`` reads it."""

    sock: Any
    timeout: Any
    response_class: type[http.client.HTTPResponse]
    _http_vsn: int
    _http_vsn_str: str

    def send_head(self, head: bytes, body: bytes | None) -> None:
        """Write ``head`` and ``body``, connecting first if need be (http.client's ``send``)."""
        latest = getattr(self, _LATEST)
        if latest is not None and latest.isclosed():
            setattr(self, _LATEST, None)  # read to its end: forgotten, as putrequest does
        if self.sock is not None:
            keep_timeout(self.sock, self.timeout)
        else:
            self.connect()  # type: ignore[attr-defined]
        send_all(self.sock, head)
        if body:
            send_all(self.sock, body)  # on its own, as urllib3 sends it

    def quick_response(self, method: str, url: str) -> HTTPResponse:
        """The response to the request just sent, as urllib3's ``getresponse`` makes it."""
        keep_timeout(self.sock, self.timeout)
        shutdown = getattr(self.sock, "shutdown", None)
        if getattr(self, _LATEST) is not None:
            raise http.client.ResponseNotReady("Request-sent")  # the one before is unread
        answer = self.response_class(self.sock, method=method)
        try:
            try:
                answer.begin()
            except ConnectionError:
                self.close()  # type: ignore[attr-defined]
                raise
            if answer.will_close:
                self.close()  # type: ignore[attr-defined]  # the response reads on alone
            else:
                setattr(self, _LATEST, answer)  # closed with the connection (its socket too)
        except BaseException:
            answer.close()
            raise
        try:
            assert_header_parsing(answer.msg)
        except (HeaderParsingError, TypeError) as hpe:
            _log.warning("Failed to parse headers (url=%s): %s", url, hpe, exc_info=True)
        return HTTPResponse(
            body=answer,
            headers=HTTPHeaderDict(_normalize_header_values(answer.msg)),
            status=answer.status,
            version=answer.version,
            version_string=getattr(self, "_http_vsn_str", "HTTP/?"),
            reason=answer.reason,
            preload_content=False,
            decode_content=False,
            original_response=answer,
            enforce_content_length=True,
            request_method=method,
            request_url=url,
            sock_shutdown=shutdown,
        )


class QuickPool(urllib3.connectionpool.HTTPConnectionPool):
    """A pool whose requests without a body, or with bytes, go out by ``request_head``."""

    def urlopen(  # type: ignore[override]
        self,
        method: str,
        url: str,
        body: Any = None,
        headers: Any = None,
        retries: Any = None,
        redirect: bool = True,
        assert_same_host: bool = True,
        timeout: Any = _DEFAULT_TIMEOUT,
        pool_timeout: Any = None,
        release_conn: Any = None,
        chunked: bool = False,
        body_pos: Any = None,
        preload_content: bool = True,
        decode_content: bool = True,
        **response_kw: Any,
    ) -> Any:
        head = target = None
        if (
            QUICK
            and not redirect
            and not assert_same_host
            and not chunked
            and not preload_content
            and release_conn is None
            and pool_timeout is None
            and body_pos is None
            and not response_kw
            and self.proxy is None
            and not self.proxy_headers
            and isinstance(retries, Retry)
            and retries.total == 0
            and not retries.status_forcelist
            and (body is None or isinstance(body, bytes))
            and headers is not None
            and url.startswith("/")
            and issubclass(self.ConnectionCls, QuickConnection)
            and self.ConnectionCls._http_vsn == 11
        ):
            target = url if _PLAIN_TARGET(url) else str(_encode_target(url))
            head = request_head(method, target, headers, body, self._host_header())
        if head is None or target is None:
            return super().urlopen(
                method, url, body, headers, retries, redirect, assert_same_host,
                timeout=timeout, pool_timeout=pool_timeout, release_conn=release_conn,
                chunked=chunked, body_pos=body_pos, preload_content=preload_content,
                decode_content=decode_content, **response_kw,
            )  # fmt: skip
        return self._quick_urlopen(method, target, head, body, retries, timeout)

    def _host_header(self) -> str:
        # It depends on the pool's host and port alone: a connection object made as the pool
        # makes them, never connected, answers it once for every request of the pool.
        value: str | None = getattr(self, "_quick_host", None)
        if value is None:
            sample: Any = self.ConnectionCls(host=self.host, port=self.port)
            value = self._quick_host = host_header(sample.host, sample.port, sample.default_port)
        return value

    def _quick_urlopen(
        self, method: str, url: str, head: bytes, body: bytes | None, retries: Retry,
        timeout: Any,
    ) -> HTTPResponse:  # fmt: skip
        # urllib3's urlopen, for no proxy, no redirect, release_conn None and no retry left.
        timeout_obj = self._get_timeout(timeout)
        conn = None
        clean_exit = False
        try:
            conn = self._get_conn()
            conn.timeout = timeout_obj.connect_timeout  # type: ignore[assignment]
            response = self._quick_request(conn, method, url, head, body, timeout_obj, retries)
            clean_exit = True
        except EmptyPoolError:
            clean_exit = True  # no connection was taken: none to give back
            raise
        except (
            Urllib3TimeoutError, HTTPException, OSError, ProtocolError, BaseSSLError, SSLError,
            CertificateError, ProxyError,
        ) as e:  # fmt: skip
            new_e: Exception = e
            if isinstance(e, (BaseSSLError, CertificateError)):
                new_e = SSLError(e)
            if isinstance(new_e, (OSError, HTTPException)):
                new_e = ProtocolError("Connection aborted.", new_e)
            # No retry is left: this raises, as urllib3's urlopen would, MaxRetryError or e.
            retries = retries.increment(
                method, url, error=new_e, _pool=self, _stacktrace=sys.exc_info()[2]
            )
            raise AssertionError("Retry.increment let a request with no retry left retry") from e
        finally:
            if not clean_exit:
                if conn:
                    conn.close()
                self._put_conn(None)
        return response

    def _quick_request(
        self, conn: Any, method: str, url: str, head: bytes, body: bytes | None,
        timeout_obj: Timeout, retries: Retry,
    ) -> HTTPResponse:  # fmt: skip
        # urllib3's _make_request, the request written by send_head.
        self.num_requests += 1
        timeout_obj.start_connect()
        conn.timeout = Timeout.resolve_default_timeout(timeout_obj.connect_timeout)
        try:
            try:
                self._validate_conn(conn)
            except (TimeoutError, BaseSSLError) as e:  # socket.timeout is TimeoutError
                self._raise_timeout(err=e, url=url, timeout_value=conn.timeout)
                raise
        except (
            OSError, NewConnectionError, Urllib3TimeoutError, BaseSSLError, CertificateError,
            SSLError,
        ) as e:  # fmt: skip
            new_e: Exception = e
            if isinstance(e, (BaseSSLError, CertificateError)):
                new_e = SSLError(e)
            raise new_e  # noqa: B904 - as urllib3 raises it
        try:
            conn.send_head(head, body)
        except BrokenPipeError:
            pass  # the server may close after a valid response, which can still be read
        except OSError as e:
            if e.errno != errno.EPROTOTYPE and e.errno != errno.ECONNRESET:
                raise
        read_timeout = timeout_obj.read_timeout
        if not conn.is_closed:
            if read_timeout == 0:
                raise ReadTimeoutError(self, url, f"Read timed out. (read timeout={read_timeout})")
            conn.timeout = read_timeout
        try:
            response: HTTPResponse = conn.quick_response(method, url)
        except (BaseSSLError, OSError) as e:
            self._raise_timeout(err=e, url=url, timeout_value=read_timeout)
            raise
        response.retries = retries
        response._connection = conn
        response._pool = self
        return response
