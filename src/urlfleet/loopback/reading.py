"""A connection's incoming bytes framed into requests: heads parsed, bodies collected."""

from __future__ import annotations

import time
from collections import deque

from .http11 import _MAX_HEAD, _HttpError, _parse_head, _Request
from .spec import BODY_KEPT


class _RequestReader:
    """Frames one connection's incoming bytes into requests, appended to ``queue`` in order.

    Requests are parsed as bytes arrive, so ``arrived`` is exact even for pipelined ones. One
    with a body is queued once the body is all in, so a route sees the body; its first
    BODY_KEPT bytes are kept for its record. Reading stops after a request that ends the
    connection, and after a malformed one (queued with its ``error``, to be answered).
    """

    def __init__(self, queue: deque[_Request]) -> None:
        self.queue = queue
        self.reading = True  # False after a request that ends the connection
        self._buffer = bytearray()
        self._skip = 0  # request-body bytes still to come
        self._receiving: _Request | None = None  # the request whose body is arriving
        self._body = bytearray()

    def feed(self, data: bytes) -> None:
        """Take bytes from the client and queue the requests they complete."""
        self._buffer += data
        self._parse_requests()

    def take_unanswered(self) -> list[_Request]:
        """Remove the queued requests and the one whose body was arriving (with the body
        so far), in that order: the client has gone, and they end with it."""
        unanswered = list(self.queue)
        self.queue.clear()
        receiving, self._receiving = self._receiving, None
        if receiving is not None:
            receiving.body = bytes(self._body)
            unanswered.append(receiving)
        return unanswered

    def _parse_requests(self) -> None:
        buffer = self._buffer
        while self.reading:
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
        self.queue.append(request)
        if not request.keep_alive:
            self.reading = False

    def _enqueue_error(self, error: _HttpError) -> None:
        request = _Request("", "", "", "", {}, False, time.monotonic(), error=error)
        self.queue.append(request)
        self.reading = False
        self._buffer.clear()
