"""The run's distributions: latency quantiles and the status breakdown.

One source of truth for the numbers that ``--report`` JSON, the terminal summary and the HTML
page all show: each of them asks these functions, so the three never disagree.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

LATENCY_SAMPLES = 10_000  # per run: p99 of a bounded sample, however many URLs a run has
QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))


def quantile(ordered: list[float], q: float) -> float | None:
    """The ``q`` quantile of sorted ``ordered`` (nearest rank, no interpolation); None if empty."""
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)


@dataclass(frozen=True, kw_only=True, slots=True)
class Latency:
    """p50, p90, p99 and max of a set of latencies, in seconds (as oha shows them)."""

    count: int
    p50_s: float
    p90_s: float
    p99_s: float
    max_s: float

    def words(self) -> str:
        """``p50 0.101 s, p90 0.120 s, p99 0.304 s, max 1.20 s``: the summary's and the page's."""
        return (f"p50 {self.p50_s:.3f} s, p90 {self.p90_s:.3f} s, p99 {self.p99_s:.3f} s, "
                f"max {self.max_s:.3f} s")  # fmt: skip


def latency_of(samples: Iterable[float], *, largest: float | None = None) -> Latency | None:
    """The quantiles of ``samples``; ``largest`` is the true max when the samples are a subset."""
    ordered = sorted(samples)
    if not ordered:
        return None
    p50, p90, p99 = (quantile(ordered, q) or 0.0 for _, q in QUANTILES)
    top = max(ordered[-1], largest if largest is not None else ordered[-1])
    return Latency(count=len(ordered), p50_s=p50, p90_s=p90, p99_s=p99, max_s=round(top, 4))


@dataclass(slots=True)
class LatencySample:
    """A fair, bounded sample of latencies (reservoir sampling) and the exact max."""

    kept: int = LATENCY_SAMPLES
    values: list[float] = field(default_factory=list)
    seen: int = 0
    largest: float = 0.0

    def add(self, value: float) -> None:
        self.seen += 1
        self.largest = max(self.largest, value)
        if len(self.values) < self.kept:
            self.values.append(value)
            return
        slot = random.randrange(self.seen)
        if slot < self.kept:
            self.values[slot] = value

    def merge(self, other: LatencySample) -> None:
        for value in other.values:
            self.add(value)
        self.largest = max(self.largest, other.largest)

    def latency(self) -> Latency | None:
        return latency_of(self.values, largest=self.largest)


def status_label(status: int | None, error_kind: str | None) -> str:
    """A record's outcome as counted in the status breakdown: ``200``, ``429``, ``timeout``...

    A record with an HTTP status counts under it; one without counts under its error kind.
    """
    if status is not None:
        return str(status)
    return error_kind or "no answer"


def status_words(statuses: Counter[str] | dict[str, int]) -> str:
    """``200: 380, 429: 12, timeout: 3``: numbers first, then kinds, each most common first."""
    ranked = sorted(statuses.items(), key=lambda item: (not item[0].isdigit(), -item[1], item[0]))
    return ", ".join(f"{label}: {count}" for label, count in ranked)
