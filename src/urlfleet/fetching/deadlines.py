"""The --max-time watchdog: one thread cuts the connection of any attempt past its deadline."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_watching = threading.local()  # this thread's deadline for the request it sends


def current_watch() -> Watch | None:
    """The deadline of the attempt this thread is making, if it has one."""
    watch: Watch | None = getattr(_watching, "watch", None)
    return watch


class Watch:
    """One attempt's deadline; ``expired`` once the watchdog has cut its connection."""

    __slots__ = ("deadline", "expired", "_sock")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.expired = False
        self._sock: socket.socket | None = None

    def attach(self, sock: socket.socket | None) -> None:
        """The socket this attempt now reads from (cut at once if the deadline has passed)."""
        with Deadlines.lock:
            self._sock = sock
            if self.expired:
                _cut(sock)

    def _expire(self) -> None:
        self.expired = True
        _cut(self._sock)


def _cut(sock: socket.socket | None) -> None:
    # shutdown, not close: the reading thread owns the socket and gets EOF or an error at once,
    # whatever it was blocked in (a recv, a TLS read), and urllib3 then discards the connection.
    if sock is not None:
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class Deadlines:
    """A deadline for each whole attempt (``--max-time``, as curl's ``-m``), kept by one thread.

    A read timeout bounds the wait for each byte, not for the body: a server that drips a byte
    every 29 s under ``--timeout 30`` never times out, and holds a thread and a host slot. So
    a watchdog thread cuts the connection of any attempt still running at its deadline.
    """

    lock = threading.Lock()

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._heap: list[tuple[float, int, Watch]] = []
        self._serial = itertools.count()
        self._wake = threading.Condition(Deadlines.lock)
        self._thread: threading.Thread | None = None
        self._closed = False

    @contextmanager
    def attempt(self) -> Iterator[Watch]:
        """Around one attempt in this thread: its connection is cut at the deadline."""
        watch = Watch(self._clock() + self.seconds)
        with self._wake:
            heapq.heappush(self._heap, (watch.deadline, next(self._serial), watch))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="urlfleet-deadlines",
                                                daemon=True)  # fmt: skip
                self._thread.start()
            self._wake.notify()
        _watching.watch = watch
        try:
            yield watch
        finally:
            _watching.watch = None
            with Deadlines.lock:
                watch._sock = None  # done: the socket may serve another request now
                watch.deadline = -1.0  # the watchdog drops it when it comes up

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()

    def _run(self) -> None:
        with self._wake:
            while not self._closed:
                now = self._clock()
                while self._heap and (self._heap[0][2].deadline < 0 or self._heap[0][0] <= now):
                    _, _, watch = heapq.heappop(self._heap)
                    if watch.deadline >= 0:
                        watch._expire()
                wait = self._heap[0][0] - now if self._heap else None
                self._wake.wait(wait)
