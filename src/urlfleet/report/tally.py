"""Running totals over a run's results: per phase, and per host within it.

One thread (the one reading results) keeps them, so nothing here locks. ``Totals`` are the
counts every tally shares; a phase's ``Tally`` adds what the report breaks down (failures,
statuses, latency), a host's ``HostTally`` what its row shows (its span, a latency sample).
Bounded however many hosts a list has: ``HostTallies`` keeps exact rows for the busiest
hosts (by time spent on them, the report's order) and folds the rest into one aggregate.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from urlfleet.record.records import Result
from urlfleet.report.runstats import LatencySample, status_label

LATENCY_SAMPLES = 1000  # per host: enough for a p95, bounded however many URLs a host has
HOSTS_KEPT = 1000  # hosts with a row of their own; the report shows the top 20


@dataclass(slots=True)
class Totals:
    """The counts every tally keeps: URLs, how many ok, requests, 429/503 answers, time."""

    urls: int = 0
    ok: int = 0
    requests: int = 0
    throttled: int = 0  # 429 and 503 answers
    busy_s: float = 0.0  # time spent in requests

    def count(self, result: Result) -> None:
        self.urls += 1
        self.ok += result.ok
        self.throttled += result.throttled
        self.requests += result.requests
        self.busy_s += result.busy_s

    def merge(self, other: Totals) -> None:
        """Add ``other``'s counts to these."""
        self.urls += other.urls
        self.ok += other.ok
        self.requests += other.requests
        self.throttled += other.throttled
        self.busy_s += other.busy_s


@dataclass(slots=True)
class HostTally(Totals):
    """Running totals for one host, from its results."""

    first: float = math.inf
    last: float = -math.inf
    latencies: list[float] = field(default_factory=list)
    _seen: int = 0

    def add(self, result: Result) -> None:
        self.count(result)
        if not result.requests:
            return
        self.first = min(self.first, result.started)
        self.last = max(self.last, result.started + result.elapsed_s)
        self._sample(result.busy_s / result.requests)

    def merge(self, other: Totals) -> None:
        """Add ``other``'s totals to these (its latencies join the sample)."""
        Totals.merge(self, other)  # by name: zero-argument super() fails in slotted dataclasses
        if not isinstance(other, HostTally):
            return
        self.first, self.last = min(self.first, other.first), max(self.last, other.last)
        for latency in other.latencies:
            self._sample(latency)

    def _sample(self, latency: float) -> None:
        # Reservoir sampling keeps a fair sample of every latency seen in bounded memory.
        self._seen += 1
        if len(self.latencies) < LATENCY_SAMPLES:
            self.latencies.append(latency)
        else:
            slot = random.randrange(self._seen)
            if slot < LATENCY_SAMPLES:
                self.latencies[slot] = latency


class HostTallies:
    """A HostTally per host, for at most ``2 * kept`` hosts at a time.

    When more come, the ``kept`` busiest stay and the rest are folded into ``others`` (and
    counted in ``folded``): a list of a million one-URL hosts costs a few hundred KB, not
    300 bytes a host. A host busy enough to stay keeps its exact row; one that was folded and
    comes back starts a new row, short of what it had then: less than the ``kept``-th
    busiest host had at that moment.

    >>> tallies.add(result); for host, tally in tallies.items(): ...
    """

    def __init__(self, kept: int = HOSTS_KEPT) -> None:
        self.kept = kept
        self._hosts: dict[str, HostTally] = {}
        self.others = HostTally(latencies=[])  # every host folded away, together
        self.folded = 0  # rows folded into ``others`` (a host that came back counts again)

    def add(self, result: Result) -> None:
        self.tally(result.host).add(result)

    def tally(self, host: str) -> HostTally:
        """The host's tally, made if new (which may fold the least busy hosts away)."""
        tally = self._hosts.get(host)
        if tally is None:
            if len(self._hosts) >= 2 * self.kept:
                self._fold()
            tally = self._hosts[host] = HostTally()
        return tally

    def _fold(self) -> None:
        # Once per ``kept`` new hosts: sorting 2 * kept rows is cheap spread over them.
        ranked = sorted(self._hosts.items(), key=lambda item: item[1].busy_s, reverse=True)
        for _, tally in ranked[self.kept :]:
            self.others.merge(tally)
        self.folded += len(ranked) - self.kept
        self._hosts = dict(ranked[: self.kept])

    def items(self) -> Iterator[tuple[str, HostTally]]:
        return iter(self._hosts.items())

    def __len__(self) -> int:
        return len(self._hosts)

    def __contains__(self, host: object) -> bool:
        return host in self._hosts

    def __getitem__(self, host: str) -> HostTally:
        return self._hosts[host]


@dataclass(slots=True)
class Tally(Totals):
    """Running totals over the results of one phase, kept by the thread that reads them."""

    failures: Counter[str] = field(default_factory=Counter)
    hosts: HostTallies = field(default_factory=HostTallies)  # the busiest, exactly
    changed: int = 0  # asked with validators (--revalidate), answered with a new copy
    unchanged: int = 0  # asked with validators, answered 304
    latency: LatencySample = field(default_factory=LatencySample)  # each URL's elapsed_s
    ttfb: LatencySample = field(default_factory=LatencySample)  # of URLs that got headers
    statuses: Counter[str] = field(default_factory=Counter)  # runstats.status_label's

    def add(self, result: Result) -> None:
        self.count(result)
        if result.ok:
            if result.unchanged:
                self.unchanged += 1
            elif result.revalidated:
                self.changed += 1
        else:
            self.failures[failure_kind(result)] += 1
        self.hosts.add(result)
        self.latency.add(result.elapsed_s)
        if result.ttfb_s is not None:
            self.ttfb.add(result.ttfb_s)
        self.statuses[status_label(result.status, result.error_kind)] += 1


def failure_kind(result: Result) -> str:
    """What sort of failure, for counting: ``HTTP 404``, ``timeout``, ``cut-off``, ...: the
    record's error_kind, with the status for HTTP answers."""
    if result.truncated:
        return "body larger than --max-bytes"
    kind = result.error_kind
    if kind == "http" and result.status is not None:
        return f"HTTP {result.status}"
    if kind is not None:
        return kind
    return f"HTTP {result.status}" if result.status is not None else "unknown"


@dataclass(frozen=True, slots=True)
class Phase:
    """One timed stretch of a run: the serial sample, or the threaded rest."""

    name: str
    threads: int
    wall_s: float
    tally: Tally
    cpu_s: float | None = None  # CPU seconds of this process meanwhile; None: not measured
    worker_cpu_s: float = 0.0  # of the worker processes that fetched it (--processes)
