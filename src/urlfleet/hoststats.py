"""Per-host figures for the report: who was slow, who throttled us, who set the pace."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from urlfleet.records import Result

LATENCY_SAMPLES = 1000  # per host: enough for a p95, bounded however many URLs a host has


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

    def _sample(self, latency: float) -> None:
        # Reservoir sampling keeps a fair sample of every latency seen in bounded memory.
        self._seen += 1
        if len(self.latencies) < LATENCY_SAMPLES:
            self.latencies.append(latency)
        else:
            slot = random.randrange(self._seen)
            if slot < LATENCY_SAMPLES:
                self.latencies[slot] = latency


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
    hosts: Mapping[str, HostTally], paused: Mapping[str, float], *, top: int = 20
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
        p50_s=_quantile(ordered, 0.5),
        p95_s=_quantile(ordered, 0.95),
        rate=round(tally.requests / span, 2) if span > 0 else 0.0,
    )


def _quantile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)


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
