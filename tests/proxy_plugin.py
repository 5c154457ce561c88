"""A proxy.py plugin that records every request it forwards, for tests.

Loaded into a proxy.py child with ``--plugins tests.proxy_plugin.Counter``; never imported by
the test process itself. Each plain HTTP request (also each further request on a keep-alive
connection) and each CONNECT becomes one JSON line appended to the file named by
``URLFLEET_PROXY_RECORDS``, written before the request goes upstream, so a test that got its
response can count it at once.

Proxy.py's own access log is no substitute: it writes one line per client *connection*, when
the connection closes, which for a pooled keep-alive connection is long after the response.

Proxy.py connects upstream once per client connection, for the first request, and sends every
later request on that connection to the same upstream, whatever its absolute-form target says.
urllib3 pools one keep-alive connection per *proxy* for plain HTTP, so a session fetching two
hosts through proxy.py silently gets the first host's answers for the second. Unless
``URLFLEET_PROXY_KEEP_ALIVE`` is set, this plugin therefore makes each plain HTTP request the
last on its connection ("Connection: close" to the server and, in the response head, to the
client), and in any mode answers a later request for another target with a 502 instead of
misrouting it. CONNECT tunnels are not affected: a tunnel carries one target by definition.

When ``URLFLEET_PROXY_LIFELINE`` holds the test process's pid, the proxy's main process also
exits (cleanly, via SIGTERM) once that process is no longer its parent, so a test process that
dies cannot leave it behind. (Not a stdin lifeline: a thread blocked reading ``sys.stdin`` holds
its lock across proxy.py's forks, and multiprocessing's child then hangs closing ``sys.stdin``.)
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from typing import Any

from proxy.http.exception import HttpRequestRejected
from proxy.http.parser import HttpParser
from proxy.http.proxy import HttpProxyBasePlugin

RECORDS_ENV = "URLFLEET_PROXY_RECORDS"
LIFELINE_ENV = "URLFLEET_PROXY_LIFELINE"
KEEP_ALIVE_ENV = "URLFLEET_PROXY_KEEP_ALIVE"

_CLOSE = b"Connection: close\r\n"
_SAYS_CLOSE = re.compile(rb"\r\nconnection:[^\r\n]*\bclose\b")


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


class Counter(HttpProxyBasePlugin):
    """Appends ``{"method", "host", "port", "target", "path", "upstream", "pid", "time"}`` per
    request; ``upstream`` is where proxy.py really sends it: the first request's host:port on
    that client connection (proxy.py keeps one upstream per client connection)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._upstream: str | None = None
        self._close = not os.environ.get(KEEP_ALIVE_ENV)
        self._tunnel = False
        self._response_head_seen = False

    def before_upstream_connection(self, request: HttpParser) -> HttpParser | None:
        self._upstream = f"{_text(request.host)}:{request.port}"
        self._tunnel = request.is_https_tunnel
        return request

    def handle_client_request(self, request: HttpParser) -> HttpParser | None:
        host, port = _text(request.host), request.port
        self._record(request, host, port)
        if self._tunnel:
            return request
        if host is not None and f"{host}:{port}" != self._upstream:
            message = f"test proxy: proxy.py would send {host}:{port} to {self._upstream}\n"
            raise HttpRequestRejected(status_code=502, reason=b"Bad Gateway", body=message.encode())
        if self._close:
            request.del_headers([b"connection", b"keep-alive"])
            request.add_header(b"Connection", b"close")
        return request

    def handle_upstream_chunk(self, chunk: memoryview) -> memoryview | None:
        if not self._close or self._tunnel or self._response_head_seen:
            return chunk
        self._response_head_seen = True
        raw = chunk.tobytes()
        end = raw.find(b"\r\n")
        head = raw.split(b"\r\n\r\n", 1)[0].lower()
        if end < 0 or not raw.startswith(b"HTTP/") or _SAYS_CLOSE.search(head):
            return chunk
        # The status line comes first in the first chunk; the header goes right after it.
        return memoryview(raw[: end + 2] + _CLOSE + raw[end + 2 :])

    def _record(self, request: HttpParser, host: str | None, port: int | None) -> None:
        entry = {
            "method": _text(request.method),
            "host": host,
            "port": port,
            "target": f"{host}:{port}",
            "path": _text(request.path),
            "upstream": self._upstream,
            "pid": os.getpid(),
            "time": time.time(),
        }
        path = os.environ.get(RECORDS_ENV)
        if path:
            line = (json.dumps(entry) + "\n").encode()
            # One write on an O_APPEND descriptor: lines from several processes never mix.
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)


# proxy.py imports plugins in its main process before it forks acceptors; threads do not
# survive a fork, so only the main process watches its parent.
_parent = os.environ.pop(LIFELINE_ENV, "")
if _parent.isdigit():
    threading.Thread(
        target=_watch_parent, args=(int(_parent),), name="urlfleet-proxy-lifeline", daemon=True
    ).start()
