"""The layout math of the HTML report: lanes, bars, time bins. Pure: records in, numbers out.

A record (a dict, as read from the JSONL or built by a run) becomes a Bar when it says when its
URL was first requested (``started_s``, seconds from the run's start) and for how long
(``elapsed_s``). Hosts become lanes, busiest first; the lanes past ``MAX_LANES`` are summed into
one. Bars that overlap in time are stacked in rows, so a lane is as tall as the most requests
that host had in flight at once: ``--per-host`` can be read off it.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from urlfleet.config import THROTTLE_STATUSES

MAX_LANES = 40  # hosts drawn with a lane of their own; the rest share one
MAX_ROWS = 8  # rows a lane stacks concurrent bars in; beyond that they overlap on the last
MAX_BARS = 12_000  # bars drawn in all; beyond that lanes are drawn as density (page < 2 MB)
TIME_BINS = 120  # columns of the throughput and in-flight charts and of a dense lane
OUTCOMES = ("ok", "retried", "throttled", "failed", "cut-off")
PAGE_RECORDS = 200_000  # records a run keeps for its page (some 40 MB); past that, a sample


class RecordSample:
    """The records a run's page is drawn from: every one up to ``kept``, then a fair sample
    (reservoir sampling), so a run of millions of URLs keeps bounded memory for its page.

    >>> sample.add(record); render_html(report, sample.records, sampled_of=sample.seen)
    """

    def __init__(self, kept: int = PAGE_RECORDS) -> None:
        self.kept = kept
        self.records: list[dict[str, Any]] = []
        self.seen = 0

    def add(self, record: dict[str, Any]) -> None:
        self.seen += 1
        if len(self.records) < self.kept:
            self.records.append(record)
            return
        slot = random.randrange(self.seen)
        if slot < self.kept:
            self.records[slot] = record


def outcome_of(record: Mapping[str, Any]) -> str:
    """One of OUTCOMES: how a record's bar is drawn (and named, for those who cannot tell
    colours apart)."""
    if record.get("truncated"):
        return "cut-off"
    if record.get("ok"):
        return "retried" if int(record.get("attempts") or 0) > 1 else "ok"
    return "throttled" if record.get("status") in THROTTLE_STATUSES else "failed"


@dataclass(frozen=True, slots=True)
class Bar:
    """One URL on the timeline: from its first request to its last byte."""

    start: float
    end: float
    outcome: str
    attempts: int
    row: int = 0


@dataclass(slots=True)
class Lane:
    """One host's (or the other hosts') bars, stacked in rows."""

    name: str
    hosts: int = 1
    bars: list[Bar] = field(default_factory=list)
    rows: int = 1
    busy_s: float = 0.0
    first: float = math.inf
    last: float = 0.0
    dense: list[int] | None = None  # in flight per time bin, when bars are too many to draw


@dataclass(frozen=True, kw_only=True, slots=True)
class Timeline:
    """Everything the charts need, in seconds from the run's start."""

    lanes: list[Lane]
    span_s: float  # from the first request to the last byte
    timed: int  # records that had started_s; 0: no bars at all
    throughput: list[float]  # URLs finished per second, per bin
    in_flight: list[float]  # mean URLs in flight, per bin
    attempts: Counter[int]  # URLs by the number of attempts they took


def bar_of(record: Mapping[str, Any]) -> Bar | None:
    """The record's Bar, or None when it does not say when it started."""
    start = record.get("started_s")
    if not isinstance(start, int | float) or isinstance(start, bool):
        return None
    elapsed = float(record.get("elapsed_s") or 0.0)
    attempts = int(record.get("attempts") or 0)
    return Bar(float(start), float(start) + elapsed, outcome_of(record), attempts)


def build_timeline(records: Iterable[Mapping[str, Any]], *, max_lanes: int = MAX_LANES,
                   max_bars: int = MAX_BARS, bins: int = TIME_BINS) -> Timeline:  # fmt: skip
    """Lanes (busiest hosts first, the rest in one), time bins and retry counts of ``records``."""
    by_host: dict[str, list[Bar]] = {}
    attempts: Counter[int] = Counter()
    for record in records:
        attempts[int(record.get("attempts") or 0)] += 1
        bar = bar_of(record)
        if bar is not None:
            by_host.setdefault(str(record.get("host") or "?"), []).append(bar)
    bars = [bar for host_bars in by_host.values() for bar in host_bars]
    span = max((bar.end for bar in bars), default=0.0)
    lanes = _lanes(by_host, max_lanes)
    budget = max_bars // max(1, len(lanes))
    for lane in lanes:
        _stack(lane, span, bins, dense=len(lane.bars) > budget)
    return Timeline(lanes=lanes, span_s=span, timed=len(bars), attempts=attempts,
                    throughput=_throughput(bars, span, bins),
                    in_flight=_in_flight(bars, span, bins))  # fmt: skip


def _lanes(by_host: dict[str, list[Bar]], max_lanes: int) -> list[Lane]:
    ranked = sorted(by_host.items(), key=lambda item: -sum(b.end - b.start for b in item[1]))
    lanes = [Lane(host, bars=bars) for host, bars in ranked[:max_lanes]]
    rest = ranked[max_lanes:]
    if rest:
        merged = [bar for _, bars in rest for bar in bars]
        lanes.append(Lane(f"{len(rest)} other hosts", hosts=len(rest), bars=merged))
    for lane in lanes:
        lane.busy_s = sum(bar.end - bar.start for bar in lane.bars)
        lane.first = min(bar.start for bar in lane.bars)
        lane.last = max(bar.end for bar in lane.bars)
    return lanes


def _stack(lane: Lane, span: float, bins: int, *, dense: bool) -> None:
    """Give each bar the lowest row free at its start (interval partitioning), or, for a lane
    with too many bars, count its bars in flight per time bin instead."""
    if dense:
        lane.dense = [round(v) for v in _in_flight(lane.bars, span, bins)]
        lane.rows = min(MAX_ROWS, max(1, max(lane.dense, default=1)))
        lane.bars = []
        return
    row_ends: list[float] = []
    stacked = []
    for bar in sorted(lane.bars, key=lambda b: (b.start, b.end)):
        row = next((i for i, end in enumerate(row_ends) if end <= bar.start), len(row_ends))
        if row == len(row_ends):
            row_ends.append(bar.end)
        row_ends[row] = bar.end
        stacked.append(Bar(bar.start, bar.end, bar.outcome, bar.attempts, min(row, MAX_ROWS - 1)))
    lane.bars = stacked
    lane.rows = min(MAX_ROWS, max(1, len(row_ends)))


def _width(span: float, bins: int) -> float:
    return span / bins if span > 0 else 1.0


def _throughput(bars: list[Bar], span: float, bins: int) -> list[float]:
    width = _width(span, bins)
    counts = [0.0] * bins
    for bar in bars:
        counts[min(bins - 1, int(bar.end / width))] += 1
    return [count / width for count in counts]


def _in_flight(bars: list[Bar], span: float, bins: int) -> list[float]:
    """Mean bars in flight per bin: each bar adds the share of each bin it covers."""
    width = _width(span, bins)
    busy = [0.0] * bins
    for bar in bars:
        first, last = int(bar.start / width), min(bins - 1, int(bar.end / width))
        for index in range(first, last + 1):
            low, high = max(bar.start, index * width), min(bar.end, (index + 1) * width)
            busy[index] += max(0.0, high - low) / width
    return busy


def histogram(values: list[float], *, bins: int = 30, top: float | None = None) -> list[int]:
    """Counts of ``values`` in ``bins`` equal bins from 0 to ``top`` (the last bin holds every
    value at or above ``top``)."""
    top = top if top and top > 0 else max(values, default=1.0) or 1.0
    counts = [0] * bins
    for value in values:
        counts[min(bins - 1, int(value / top * bins))] += 1
    return counts


@dataclass(frozen=True, kw_only=True, slots=True)
class ThreadUse:
    """How much of the run's threads' time held a URL, from the in-flight bins.

    A URL waiting to be retried is in flight but holds no thread (the scheduler re-queues it),
    so in flight bounds threads busy from above: ``busy`` is at most, ``idle_s`` at least.
    """

    threads: int
    busy: float  # mean share of the threads holding a URL, at most
    idle_s: float  # thread-seconds that held no URL, at least


def thread_use(in_flight: list[float], *, span_s: float, threads: int,
               since: float = 0.0) -> ThreadUse | None:  # fmt: skip
    """The threads' use from ``since`` (the end of the serial sample, which ran on one) to the
    end; each bin counts for the share of it after ``since``. None when there is no such time."""
    if threads < 1 or span_s <= 0 or not in_flight:
        return None
    width = span_s / len(in_flight)
    capacity = used = 0.0
    for index, flying in enumerate(in_flight):
        share = min(1.0, max(0.0, ((index + 1) * width - since) / width))
        capacity += threads * width * share
        used += min(float(threads), flying) * width * share
    if capacity <= 0:
        return None
    return ThreadUse(threads=threads, busy=used / capacity, idle_s=capacity - used)
