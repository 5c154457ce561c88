"""One client connection: an :class:`asyncio.Protocol` that parses, answers and records."""

from __future__ import annotations

import asyncio
import time
import traceback
from collections import deque
from typing import TYPE_CHECKING

from .http11 import (
    _MAX_HEAD,
    _chunk,
    _encode_head,
    _has_no_body,
    _HttpError,
    _parse_head,
    _Request,
    _Response,
)
from .routes import _WAITING_ROUTES, CONTROL_PREFIX, _control, _latency_of, _route, _text
from .spec import BODY_KEPT, RequestRecord, _Host

if TYPE_CHECKING:
    from .state import _State


class _Connection(asyncio.Protocol):
    """One client connection: parses requests, answers them in order, records them.

    Requests are parsed as bytes arrive (so ``arrived`` is exact even for pipelined ones) and
    queued. Those that need no waiting are answered at once; the first that must wait (latency,
    gzip, a body sent over time, silence) starts a worker task that answers the rest of the
    queue in order. A body sent over time waits whenever the transport's buffer is full, so a
    client that stops reading never makes the server hold more than that buffer.

    With an ``idle_timeout``, one timer per connection closes it once it has been idle that
    long: no request queued or being answered, and nothing received since the last response.
    The timer is not re-armed per request; when it fires early it sets itself for the rest.
    """

    def __init__(self, host: _Host, state: _State, idle_timeout: float | None = None) -> None:
        self._host = host
        self._state = state
        # Numbered here, when the socket is accepted (before any TLS handshake), so that the
        # numbers follow the order in which clients connected.
        self._serial = next(state.serials)
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._skip = 0  # request-body bytes still to come
        # The request whose body is arriving: it is queued once the body is all in, so a
        # route sees the body, and its first BODY_KEPT bytes are kept for its record.
        self._receiving: _Request | None = None
        self._body = bytearray()
        self._queue: deque[_Request] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._reading = True  # False after a request that ends the connection
        self._waiting: _Request | None = None  # the request a worker is answering, unrecorded
        self._sent = 0  # the status already sent for it (a streamed body), else 0
        self._writable: asyncio.Future[None] | None = None  # set while writing is paused
        self._idle_timeout = idle_timeout
        self._idle_since = 0.0  # when bytes last arrived or a request was last recorded
        self._idle_timer: asyncio.TimerHandle | None = None

    # asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        with self._state.lock:
            self._state.connections += 1
            counts = self._state.host_connections
            counts[self._host.key] = counts.get(self._host.key, 0) + 1
            self._state.open.add(self)
        if self._idle_timeout is not None:
            self._idle_since = time.monotonic()
            self._idle_timer = asyncio.get_running_loop().call_later(
                self._idle_timeout, self._check_idle
            )

    def data_received(self, data: bytes) -> None:
        if not self._reading:
            return
        if self._idle_timeout is not None:
            self._idle_since = time.monotonic()
        self._buffer += data
        self._parse_requests()
        if self._worker is None:
            self._answer_ready()

    def eof_received(self) -> None:
        # Returning None closes the transport. A client's FIN while it waits is almost always
        # a hang-up (a timeout), which must end the request's recorded interval at once, as
        # nginx's "499" does; so half-closed clients only get answers that need no waiting.
        self._reading = False

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        with self._state.lock:
            self._state.open.discard(self)
        self._reading = False
        self.resume_writing()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        # Record the hang-up now, not when the cancelled worker next runs: by then the socket
        # is closed and the client may already be reading the records.
        self._record_dropped()
        if self._worker is not None:
            self._worker.cancel()
        while self._queue:
            request = self._queue.popleft()
            if request.error is None and not request.path.startswith(CONTROL_PREFIX):
                self._record(request, 0)
        receiving, self._receiving = self._receiving, None
        if receiving is not None and not receiving.path.startswith(CONTROL_PREFIX):
            receiving.body = bytes(self._body)
            self._record(receiving, 0)  # hung up while sending the body

    def _check_idle(self) -> None:
        """Close the connection if it has been idle for ``idle_timeout``, else look again
        when it could be: a request being answered keeps it open however long it takes."""
        assert self._idle_timeout is not None
        self._idle_timer = None
        if self._is_closing():
            return
        if self._queue or self._worker is not None:
            delay = self._idle_timeout  # busy; its last record restarts the idle clock
        else:
            delay = self._idle_since + self._idle_timeout - time.monotonic()
            if delay <= 0:
                with self._state.lock:
                    self._state.idle_closed += 1
                self._close()  # a FIN after any buffered bytes, as Apache's KeepAliveTimeout
                return
        self._idle_timer = asyncio.get_running_loop().call_later(delay, self._check_idle)

    # parsing ----------------------------------------------------------------------------

    def _parse_requests(self) -> None:
        buffer = self._buffer
        while self._reading:
            if self._skip:
                taken = min(self._skip, len(buffer))
                self._body += buffer[: max(0, min(taken, BODY_KEPT - len(self._body)))]
                del buffer[:taken]
                self._skip -= taken
                if self._skip:
                    return
                self._body_received()
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
            if request.body_length:
                self._receiving, self._skip = request, request.body_length
            else:
                self._enqueue(request)

    def _body_received(self) -> None:
        request, self._receiving = self._receiving, None
        assert request is not None
        request.body = bytes(self._body)
        self._body.clear()
        self._enqueue(request)

    def _enqueue(self, request: _Request) -> None:
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
        close it; None (having changed nothing) if it must wait for latency, gzip or a body
        sent over time."""
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
        return not response.closes

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
            if response.silent:  # until the client or the server goes and cancels this
                await asyncio.get_running_loop().create_future()
            if response.stream is None or request.method == "HEAD":
                return self._finish(request, response)
            self._write(response, request)  # the head only
            self._sent = response.status
            return await self._stream(request, response)
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
        if response.http10:
            pass  # an HTTP/1.0 server that knows nothing of keep-alive: it closes
        elif not keep_alive:
            headers.append(("Connection", "close"))
        elif request.headers.get("connection", "").lower() == "keep-alive":
            headers.append(("Connection", "keep-alive"))  # HTTP/1.0 clients need to hear it
        if response.chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        length: int | None
        if _has_no_body(response.status) or response.http10 or response.chunked:
            length = None
        elif response.stream is not None:
            length = response.length
        else:
            length = len(response.body)
        version = "HTTP/1.0" if response.http10 else "HTTP/1.1"
        head = _encode_head(response.status, headers, length, self._state.http_date(), version)
        if request.method == "HEAD" or response.stream is not None or _has_no_body(response.status):
            return head
        return head + response.body

    async def _stream(self, request: _Request, response: _Response) -> bool:
        """Send a streamed body piece by piece, then record; False if the connection must
        close (the client hung up, or the response ends it).

        The last bytes of a complete body go out with the record, as every response's do;
        one piece is looked ahead for that, which costs nothing since pieces are made, not
        awaited. Pieces sent without an interval are written in batches of about 64 KiB, with
        a pass through the event loop after each, so that a fast reader of a long body does
        not keep the other connections (or a stop) waiting.
        """
        assert self._transport is not None
        assert response.stream is not None
        pieces, interval = response.stream, response.interval
        batch: list[bytes] = []
        batched = 0
        piece = next(pieces, None)
        while piece is not None:
            following = next(pieces, None)
            if interval:
                await asyncio.sleep(interval)
            if self._writable is not None:  # the client is not reading: wait until it does
                await self._writable
            if self._is_closing():
                self._record(request, response.status)
                return False
            batch.append(_chunk(piece) if response.chunked else piece)
            batched += len(piece)
            if following is None and not response.truncated:
                break  # the last piece: sent with the record
            if interval or batched >= 1 << 16 or following is None:
                self._transport.write(b"".join(batch))
                batch.clear()
                batched = 0
                if not interval:
                    await asyncio.sleep(0)
            piece = following
        if response.truncated:
            self._record(request, response.status)
            return False
        if response.chunked:
            batch.append(_chunk(b""))
        self._record(request, response.status, b"".join(batch))
        return not response.closes

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
            self._idle_since = now = time.monotonic()
            record = RequestRecord(
                host=self._host.key,
                method=request.method,
                path=request.target,
                arrived=request.arrived,
                finished=now,
                status=status,
                headers=request.headers,
                connection=self._serial,
                body=request.body.decode("latin-1"),
            )
            self._state.add_locked(record)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
