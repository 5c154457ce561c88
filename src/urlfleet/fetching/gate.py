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
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from urllib3.connection import HTTPConnection

from urlfleet.fetching.deadlines import current_watch
from urlfleet.politeness import NotDue

_waiting = threading.local()  # this thread's gate for the request it sends


class Gate(Protocol):
    """What a request passes at its write (a politeness Lease)."""

    def check(self) -> None: ...  # raises NotDue if the write could not go now
    def hold(self) -> AbstractContextManager[None]: ...  # entered around the write


@contextmanager
def gate(lease: Gate) -> Iterator[None]:
    """Write this thread's next request (once) inside ``lease.hold()``.

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
        lease.check()  # a request that cannot go now costs no connection
        connection.connect()  # first (TCP, TLS, CONNECT): setup must not eat into the gap
    watch = current_watch()
    if watch is not None:
        watch.attach(connection.sock)
    with lease.hold():
        # A pooled connection the server closed while the request waited for its gap: the
        # request goes back, unwritten, and urllib3 sets up a fresh connection for it (its
        # proxy tunnel included). Only one that has served a request is asked: a fresh TLS
        # 1.3 connection is readable (session tickets) without being closed.
        if reused and not connection.is_connected:
            raise NotDue(0.0)
        _waiting.wrote_at = time.monotonic()
        yield
