"""Start gaps as the client kept them, and as a server saw them, for politeness tests.

urlfleet keeps a host's gap at the write: the write gate (``urlfleet.fetching.gate``) holds
each request until its host's gap since the last write has passed, and tells the lease when
the request was written (``Lease.wrote``), on the clock the gap is kept by; the next write to
the host counts from there. :class:`ClientWrites` wraps ``Lease.wrote`` in the test process
and keeps those stamps, so a test asserts the rule exactly, on the clock that kept it.

A server's arrival stamps come from another process, which a busy machine may schedule late
(see ``SERVER_SLACK`` in tests/conftest.py): a check of them needs an allowance, and
:func:`short_gaps` takes the threshold as given.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pytest

from urlfleet.loopback import RequestRecord
from urlfleet.politeness import Lease


@dataclass(frozen=True, slots=True)
class Write:
    """One request as the client wrote it."""

    host: str  # its politeness key (host:port)
    url: str
    at: float  # time.monotonic() when it was written (what the host's next gap counts from)


class ClientWrites:
    """The gated requests this process writes once installed, with the client's own stamps.

    >>> writes = ClientWrites.installed(monkeypatch)
    >>> short_gaps(writes.starts(token), 0.1)  # [] when every gap was kept
    """

    def __init__(self) -> None:
        self._writes: list[Write] = []
        self._lock = threading.Lock()

    @classmethod
    def installed(cls, monkeypatch: pytest.MonkeyPatch) -> ClientWrites:
        writes = cls()
        plain = Lease.wrote

        def wrote(lease: Lease, at: float) -> None:
            plain(lease, at)
            if lease.host is not None:
                writes._add(Write(lease.host.key, lease.job.target, at))

        monkeypatch.setattr(Lease, "wrote", wrote)
        return writes

    def _add(self, write: Write) -> None:
        with self._lock:
            self._writes.append(write)

    def of(self, contains: str = "") -> list[Write]:
        """The writes whose URL contains ``contains`` (a test's token, a server's base URL):
        a thread another test left behind may write too."""
        with self._lock:
            return [w for w in self._writes if contains in w.url]

    def starts(self, contains: str = "") -> dict[str, list[float]]:
        """Write stamps by host, of the writes ``of(contains)``."""
        return _by_host((w.host, w.at) for w in self.of(contains))


def server_starts(records: Sequence[RequestRecord]) -> dict[str, list[float]]:
    """Arrival stamps by host, as the server took them."""
    return _by_host((r.host, r.arrived) for r in records)


def short_gaps(starts: Mapping[str, Sequence[float]], at_least: float) -> list[tuple[str, float]]:
    """``(host, gap)`` for each two successive starts of a host closer than ``at_least``."""
    short: list[tuple[str, float]] = []
    for host, stamps in starts.items():
        ordered = sorted(stamps)
        gaps = (later - earlier for earlier, later in zip(ordered, ordered[1:], strict=False))
        short += [(host, gap) for gap in gaps if gap < at_least]
    return short


def _by_host(stamps: Iterable[tuple[str, float]]) -> dict[str, list[float]]:
    by_host: dict[str, list[float]] = {}
    for host, at in stamps:
        by_host.setdefault(host, []).append(at)
    return by_host
