"""Per-host figures for the report: who was slow, who throttled us, who set the pace.

Bounded however many hosts a list has: ``HostTallies`` keeps exact rows for the busiest
hosts (by time spent on them, the report's order) and folds the rest into one aggregate.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from urlfleet.record.records import Result
from urlfleet.report.runstats import quantile

LATENCY_SAMPLES = 1000  # per host: enough for a p95, bounded however many URLs a host has
HOSTS_KEPT = 1000  # hosts with a row of their own; the report shows the top 20


@dataclass(slots=True)
class HostTally:
    """Running totals for one host, from its results."""

    urls: int = 0
    ok: int = 0
    requests: int = 0
    throttled: int = 0
    busy_s: float = 0.0
    first: float = math.inf
    last: float = -math.inf
    latencies: list[float] = field(default_factory=list)
    _seen: int = 0

    def add(self, result: Result) -> None:
        self.urls += 1
        self.ok += result.ok
        self.throttled += result.throttled
        if not result.requests:
            return
        self.requests += result.requests
        self.busy_s += result.busy_s
        self.first = min(self.first, result.started)
        self.last = max(self.last, result.started + result.elapsed_s)
        self._sample(result.busy_s / result.requests)

    def merge(self, other: HostTally) -> None:
        """Add ``other``'s totals to these (its latencies join the sample)."""
        self.urls += other.urls
        self.ok += other.ok
        self.requests += other.requests
        self.throttled += other.throttled
        self.busy_s += other.busy_s
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


@dataclass(frozen=True, kw_only=True, slots=True)
class HostRow:
    """One host's line in the report."""

    host: str
    requests: int
    ok: int
    failed: int
    throttled: int  # 429 and 503 answers
    paused_s: float
    p50_s: float | None
    p95_s: float | None
    rate: float  # requests per second while the host was being fetched


def host_rows(
    hosts: Mapping[str, HostTally] | HostTallies, paused: Mapping[str, float], *, top: int = 20
) -> list[HostRow]:
    """The ``top`` hosts by time spent on them, busiest first."""
    busiest = sorted(hosts.items(), key=lambda item: item[1].busy_s, reverse=True)[:top]
    return [_row(host, tally, paused.get(host, 0.0)) for host, tally in busiest]


def _row(host: str, tally: HostTally, paused_s: float) -> HostRow:
    span = tally.last - tally.first
    ordered = sorted(tally.latencies)
    return HostRow(
        host=host,
        requests=tally.requests,
        ok=tally.ok,
        failed=tally.urls - tally.ok,
        throttled=tally.throttled,
        paused_s=round(paused_s, 3),
        p50_s=quantile(ordered, 0.5),
        p95_s=quantile(ordered, 0.95),
        rate=round(tally.requests / span, 2) if span > 0 else 0.0,
    )


def host_table(rows: list[HostRow]) -> str:
    """The rows as an aligned text table."""
    header = ("host", "requests", "ok", "failed", "429/503", "paused s", "p50 s", "p95 s", "req/s")
    lines = [
        (r.host, str(r.requests), str(r.ok), str(r.failed), str(r.throttled), f"{r.paused_s:.1f}",
         _seconds(r.p50_s), _seconds(r.p95_s), f"{r.rate:.1f}")
        for r in rows
    ]  # fmt: skip
    widths = [max(len(cell) for cell in column) for column in zip(header, *lines, strict=False)]
    return "\n".join(
        "  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in
                  enumerate(zip(row, widths, strict=False)))
        for row in (header, *lines)
    )  # fmt: skip


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
