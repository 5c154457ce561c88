"""One client connection: an :class:`asyncio.Protocol` that reads, answers and records."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING

from .http11 import _HttpError, _Request
from .reading import _RequestReader
from .routes import _WAITING_ROUTES, CONTROL_PREFIX, _control, _latency_of, _route, _text
from .spec import _Host
from .writing import _ResponseWriter

if TYPE_CHECKING:
    from .state import _State


class _Connection(asyncio.Protocol):
    """One client connection: answers its requests in order, each as soon as it may.

    A :class:`_RequestReader` queues requests as their bytes arrive, and a
    :class:`_ResponseWriter` sends the answers and records them. Requests that need no
    waiting are answered at once; the first that must wait (latency, gzip, a body sent over
    time, silence) starts a worker task that answers the rest of the queue in order.

    With an ``idle_timeout``, one timer per connection closes it once it has been idle that
    long: no request queued or being answered, and nothing received since the last response.
    The timer is not re-armed per request; when it fires early it sets itself for the rest.
    """

    def __init__(self, host: _Host, state: _State, idle_timeout: float | None = None) -> None:
        self._host = host
        self._state = state
        self._queue: deque[_Request] = deque()
        self._reader = _RequestReader(self._queue)
        # Numbered here, when the socket is accepted (before any TLS handshake), so that the
        # numbers follow the order in which clients connected.
        self._out = _ResponseWriter(host, state, next(state.serials))
        self._worker: asyncio.Task[None] | None = None
        self._idle_timeout = idle_timeout
        self._received_at = 0.0  # when bytes last arrived (or the connection was made)
        self._idle_timer: asyncio.TimerHandle | None = None

    # asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._out.transport = transport
        tls = transport.get_extra_info("ssl_object")  # the handshake is done by now
        with self._state.lock:
            self._state.connections += 1
            self._state.tls_resumed += bool(tls is not None and tls.session_reused)
            counts = self._state.host_connections
            counts[self._host.key] = counts.get(self._host.key, 0) + 1
            self._state.open.add(self)
        if self._idle_timeout is not None:
            self._received_at = time.monotonic()
            self._idle_timer = asyncio.get_running_loop().call_later(
                self._idle_timeout, self._check_idle
            )

    def data_received(self, data: bytes) -> None:
        if not self._reader.reading:
            return
        if self._idle_timeout is not None:
            self._received_at = time.monotonic()
        self._reader.feed(data)
        if self._worker is None:
            self._answer_ready()

    def eof_received(self) -> None:
        # Returning None closes the transport. A client's FIN while it waits is almost always
        # a hang-up (a timeout), which must end the request's recorded interval at once, as
        # nginx's "499" does; so half-closed clients only get answers that need no waiting.
        self._reader.reading = False

    def pause_writing(self) -> None:
        self._out.pause()

    def resume_writing(self) -> None:
        self._out.resume()

    def connection_lost(self, exc: Exception | None) -> None:
        with self._state.lock:
            self._state.open.discard(self)
        self._reader.reading = False
        self._out.resume()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        # Record the hang-up now, not when the cancelled worker next runs: by then the socket
        # is closed and the client may already be reading the records.
        self._out.record_dropped()
        if self._worker is not None:
            self._worker.cancel()
        # Queued, or hung up on while sending the body.
        for request in self._reader.take_unanswered():
            if request.error is None and not request.path.startswith(CONTROL_PREFIX):
                self._out.record(request, 0)

    def _check_idle(self) -> None:
        """Close the connection if it has been idle for ``idle_timeout``, else look again
        when it could be: a request being answered keeps it open however long it takes."""
        assert self._idle_timeout is not None
        self._idle_timer = None
        if self._out.is_closing():
            return
        if self._queue or self._worker is not None:
            delay = self._idle_timeout  # busy; its last record restarts the idle clock
        else:
            idle_since = max(self._received_at, self._out.recorded_at)
            delay = idle_since + self._idle_timeout - time.monotonic()
            if delay <= 0:
                with self._state.lock:
                    self._state.idle_closed += 1
                self._close()  # a FIN after any buffered bytes, as Apache's KeepAliveTimeout
                return
        self._idle_timer = asyncio.get_running_loop().call_later(delay, self._check_idle)

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
                self._out.internal_error(self._queue.popleft(), 0)
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
        self._reader.reading = False
        self._queue.clear()
        self._out.close()

    def _answer_now(self, request: _Request) -> bool | None:
        """Answer ``request`` if that needs no waiting: True to keep the connection, False to
        close it; None (having changed nothing) if it must wait for latency, gzip or a body
        sent over time."""
        if request.error is not None:
            self._out.write(_text(request.error.status, request.error.message + "\n"), request)
            return False
        if request.path.startswith(CONTROL_PREFIX):
            self._out.write(_control(request, self._state), request)
            return True
        try:
            latency = _latency_of(request, self._host)
        except _HttpError as exc:
            return self._out.finish(request, _text(exc.status, exc.message + "\n"))
        if latency > 0 or request.route in _WAITING_ROUTES:
            return None
        return self._out.finish(request, _route(request, self._host, self._state))

    async def _answer(self, request: _Request) -> bool:
        """Answer one request, waiting as needed; False if the connection must close."""
        immediate = self._answer_now(request)
        if immediate is not None:
            return immediate
        out = self._out
        out.waiting, out.sent = request, 0
        try:
            latency = _latency_of(request, self._host)  # valid: _answer_now checked it
            if latency > 0:
                await asyncio.sleep(latency)
            response = _route(request, self._host, self._state)
            if response.gzip_size >= 0:
                response.body = await self._state.gzip_zeros(response.gzip_size)
            if response.silent:  # until the client or the server goes and cancels this
                await asyncio.get_running_loop().create_future()
            if response.stream is None or request.method == "HEAD":
                return out.finish(request, response)
            return await out.stream(request, response)
        except asyncio.CancelledError:
            out.record_dropped()
            raise
        except Exception:
            out.internal_error(request, out.sent)
            return False
        finally:
            out.waiting = None

    def abort(self) -> None:
        self._out.abort()
