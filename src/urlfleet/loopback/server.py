"""Running the hosts: shared state, the in-process server and the foreground server."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import ssl
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

from .protocol import _Connection
from .spec import RequestRecord, ServerSpec, Started, _Host
from .state import _State

READY_PREFIX = "READY "


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
        contexts: dict[tuple[str, str], ssl.SSLContext] = {}
        for index, address in enumerate(spec.host_addresses()):
            host = _Host(address, spec.latency_for(index), spec.robots_for(index), spec.scheme)
            server = await loop.create_server(
                functools.partial(_Connection, host, state, spec.idle_timeout),
                host=address,
                port=spec.port_for(index),
                backlog=1024,
                ssl=_tls_context(spec.tls_for(index), contexts),
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


def _tls_context(
    pems: tuple[str, str] | None, contexts: dict[tuple[str, str], ssl.SSLContext]
) -> ssl.SSLContext | None:
    """The server side of TLS for a ``(cert, key)`` pair (one context per pair, kept in
    ``contexts``), or None for plain HTTP."""
    if pems is None:
        return None
    context = contexts.get(pems)
    if context is None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*pems)
        contexts[pems] = context
    return context


class LoopbackServer(Started):
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

    def records(self, contains: str | None = None) -> list[RequestRecord]:
        """A snapshot of the recorded requests (all hosts), optionally only paths containing
        ``contains``; control routes are never recorded."""
        return self._state.snapshot(contains)

    def clear(self) -> None:
        """Forget all records and the /flaky and /retry-after counters."""
        self._state.clear()

    def stats(self) -> dict[str, Any]:
        """Counters: cpu_s (this whole process), requests, connections (accepted so far),
        open_connections, idle_closed (closed for ``idle_timeout``), tls_resumed (TLS
        connections on a resumed session), host_connections, records, pid."""
        return self._state.stats()


# --------------------------------------------------------------------------- foreground


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
