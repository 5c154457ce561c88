"""A connection's responses on the wire: heads and bodies written, requests recorded."""

from __future__ import annotations

import asyncio
import time
import traceback
from typing import TYPE_CHECKING

from .http11 import _chunk, _encode_head, _has_no_body, _Request, _Response
from .routes import _text
from .spec import RequestRecord, _Host

if TYPE_CHECKING:
    from .state import _State


class _ResponseWriter:
    """Writes one connection's responses and records each request as its response ends.

    A response's last bytes are written with its record, under the state lock, so a client
    that has read a whole response always finds its record. A body sent over time waits
    whenever the transport's buffer is full, so a client that stops reading never makes the
    server hold more than that buffer.
    """

    def __init__(self, host: _Host, state: _State, serial: int) -> None:
        self._host = host
        self._state = state
        self._serial = serial  # the connection's number, in its records
        self.transport: asyncio.Transport | None = None
        self.waiting: _Request | None = None  # the request a worker is answering, unrecorded
        self.sent = 0  # the status already sent for it (a streamed body), else 0
        self.recorded_at = 0.0  # when a request was last recorded
        self._writable: asyncio.Future[None] | None = None  # set while writing is paused

    # the transport ----------------------------------------------------------------------

    def pause(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    def is_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def close(self) -> None:
        """Close the connection after the bytes already written (a FIN after them)."""
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # responses --------------------------------------------------------------------------

    def write(self, response: _Response, request: _Request) -> None:
        assert self.transport is not None
        self.transport.write(self._encode(response, request))

    def finish(self, request: _Request, response: _Response) -> bool:
        """Send a complete response (or drop the connection) and record it; False if the
        connection must close."""
        if response.drop or self.is_closing():
            self.record(request, 0)
            return False
        self.record(request, response.status, self._encode(response, request))
        return not response.closes

    def internal_error(self, request: _Request, sent: int) -> None:
        """A bug in a route: log it and answer 500 rather than leave the client hanging."""
        traceback.print_exc()
        if sent or self.is_closing():
            self.record(request, sent)
        else:
            self.record(request, 500, self._encode(_text(500, "internal error\n"), request))

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

    async def stream(self, request: _Request, response: _Response) -> bool:
        """Send the head, then the streamed body piece by piece, then record; False if the
        connection must close (the client hung up, or the response ends it).

        The last bytes of a complete body go out with the record, as every response's do;
        one piece is looked ahead for that, which costs nothing since pieces are made, not
        awaited. Pieces sent without an interval are written in batches of about 64 KiB, with
        a pass through the event loop after each, so that a fast reader of a long body does
        not keep the other connections (or a stop) waiting.
        """
        assert self.transport is not None
        assert response.stream is not None
        self.write(response, request)  # the head only
        self.sent = response.status
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
            if self.is_closing():
                self.record(request, response.status)
                return False
            batch.append(_chunk(piece) if response.chunked else piece)
            batched += len(piece)
            if following is None and not response.truncated:
                break  # the last piece: sent with the record
            if interval or batched >= 1 << 16 or following is None:
                self.transport.write(b"".join(batch))
                batch.clear()
                batched = 0
                if not interval:
                    await asyncio.sleep(0)
            piece = following
        if response.truncated:
            self.record(request, response.status)
            return False
        if response.chunked:
            batch.append(_chunk(b""))
        self.record(request, response.status, b"".join(batch))
        return not response.closes

    # records ----------------------------------------------------------------------------

    def record_dropped(self) -> None:
        """Record the request being answered (if any) as ended by the client going away."""
        if self.waiting is not None:
            self.record(self.waiting, self.sent)

    def record(self, request: _Request, status: int, last_bytes: bytes = b"") -> None:
        """Write the response's ``last_bytes`` and record the request, both under the state
        lock: a client that has read its whole response always finds its record."""
        if request is self.waiting:
            self.waiting = None  # recorded exactly once
        with self._state.lock:
            if last_bytes and self.transport is not None:
                self.transport.write(last_bytes)
            self.recorded_at = now = time.monotonic()
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
