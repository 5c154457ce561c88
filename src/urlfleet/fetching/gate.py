"""The politeness gate at the write: a request waits there for its host's start gap.

The gap between two requests to a host is kept from the moment each request is actually
written to its connection: after any connection setup (TCP, TLS, a proxy's CONNECT), right
before the request line goes out. That holds for direct requests, for requests through an
HTTP proxy or a CONNECT tunnel, and for a caller's own Sessions (``adapter.install_gate``).

Keeping it from any earlier moment (say, when a thread picked the URL) lets a
request that needed a new connection reach the server late and the next one early, so a
server could see two requests closer together than ``--delay``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from urllib3.connection import HTTPConnection

from urlfleet.fetching.deadlines import current_watch

# The longest a request may wait at its write for the host's gap. The frontier hands a request
# out only when its host is due, so the wait is what a thread, a DNS lookup or a handshake
# took; anything longer (a Crawl-delay learned meanwhile, a pause) goes back to the frontier
# rather than sit on a connection the server may close (Apache drops idle ones after 5 s).
HOLD_AT_WRITE = 1.0

# urllib3 polls a pooled connection as it takes it from the pool. A request that reaches its
# write within this many seconds of that is sent on the answer it got, as requests sends
# every request; one that waited longer (its gap, another thread's write) asks again.
ASKED_RECENTLY = 0.05

_waiting = threading.local()  # this thread's gate for the request it sends


class NotDue(Exception):  # noqa: N818 - a signal, not an error: the request was not written
    """Raised at the write when the request must not be written yet: back to the frontier."""

    def __init__(self, until: float) -> None:
        super().__init__(f"host not due until {until:.3f}")
        self.until = until


class Gate(Protocol):
    """What a request is written under: its host's lease, as the politeness rules give it."""

    @property
    def clock(self) -> Callable[[], float]: ...
    @property
    def sleep(self) -> Callable[[float], None]: ...
    def write_lock(self) -> AbstractContextManager[object]: ...  # one write at a time
    def write_due(self, now: float) -> tuple[float, bool]: ...  # when; whether to wait there
    def wrote(self, at: float) -> None: ...  # it was written then


def check(lease: Gate) -> None:
    """Raise ``NotDue`` now, before any connection is made, if the write could not go."""
    _wait(lease, sleep=False)


@contextmanager
def writing(lease: Gate) -> Iterator[None]:
    """Around writing a request: the host's gap since its last write has passed, it is not
    paused nor cut off (else ``NotDue``, and nothing is written); the write is then told."""
    with lease.write_lock():
        _wait(lease, sleep=True)
        try:
            yield
        except NotDue:
            raise  # found unwritable at the last moment: nothing went out
        except BaseException:
            lease.wrote(lease.clock())  # some of it may have gone out: it counts
            raise
        lease.wrote(lease.clock())


def _wait(lease: Gate, *, sleep: bool) -> None:
    while True:  # a pause may come while the gap is slept off: look again after
        now = lease.clock()
        due, may_wait = lease.write_due(now)
        if not may_wait or due - now > HOLD_AT_WRITE:
            raise NotDue(max(due, now))
        if due <= now or not sleep:
            return
        lease.sleep(due - now)


@contextmanager
def gate(lease: Gate) -> Iterator[None]:
    """Write this thread's next request (once) inside ``writing(lease)``.

    >>> with gate(lease): session.send(request)
    """
    _waiting.gate = lease
    _waiting.wrote_at = None
    try:
        yield
    finally:
        _waiting.gate = None


def wrote_at() -> float | None:
    """``time.monotonic()`` when this thread's last gated request began to be written (after
    connection setup and the host's gap): where its time to first byte starts."""
    return getattr(_waiting, "wrote_at", None)


@contextmanager
def held(connection: HTTPConnection) -> Iterator[None]:
    """Around ``connection``'s request: set up first, then written inside this thread's gate
    (once; a connection with no gate waiting writes at once)."""
    lease: Gate | None = getattr(_waiting, "gate", None)
    if lease is None:
        yield
        return
    _waiting.gate = None
    reused = bool(getattr(connection, "served", False))
    if connection.sock is None:
        check(lease)  # a request that cannot go now costs no connection
        connection.connect()  # first (TCP, TLS, CONNECT): setup must not eat into the gap
    watch = current_watch()
    if watch is not None:
        watch.attach(connection.sock)
    taken = time.monotonic()
    with writing(lease):
        # A pooled connection the server closed while the request waited for its gap: the
        # request goes back, unwritten, and urllib3 sets up a fresh connection for it (its
        # proxy tunnel included). Only one that has served a request is asked: a fresh TLS
        # 1.3 connection is readable (session tickets) without being closed. Nor one that did
        # not wait: urllib3 asked the same (a poll) as it took it from the pool.
        now = time.monotonic()
        if reused and now - taken > ASKED_RECENTLY and not connection.is_connected:
            raise NotDue(0.0)
        _waiting.wrote_at = now
        yield
