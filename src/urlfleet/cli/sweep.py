"""What ``urlfleet bench`` measures: one list at a sweep of ``--jobs`` values, as a table.

Every point is a full run through the library (frontier, retries, politeness), timed and
compared with the least time any scheduler could need (``report.ideal_time``), so the table
says both how much faster more threads were and how much speed was left on the table.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from urlfleet.config import FetchConfig
from urlfleet.politeness import host_key
from urlfleet.report.cpu import CpuVerdict, cpu_use, cpu_verdict
from urlfleet.report.summary import build_report, speedup_of
from urlfleet.run.cores import usable_cores
from urlfleet.run.runner import Run


@dataclass(frozen=True, slots=True)
class Point:
    """One jobs value, measured; times are for the whole list (extrapolated when sampled)."""

    jobs: int
    fetched: int  # URLs actually fetched: fewer than the list when jobs=1 ran on a sample
    wall_s: float
    requests_per_s: float
    ideal_s: float | None
    efficiency: float | None
    client_cpu: float  # CPU seconds of this process per wall second: 1.0 is one core
    failed: int
    cpu: CpuVerdict | None = None  # whether the client's CPU set the pace (report.cpu)


@dataclass(frozen=True, slots=True)
class Sweep:
    """A list's size and its points; ``speedup`` is relative to the jobs=1 point."""

    label: str  # what was fetched and how politely, for titles
    urls: int
    points: list[Point]

    def speedup(self, point: Point) -> float | None:
        base = self.points[0]
        return speedup_of(base.wall_s / self.urls, point.wall_s / self.urls)

    def ideal_speedup(self, point: Point) -> float | None:
        # Measured over this is exactly the point's efficiency: the gap on the chart.
        return self.points[0].wall_s / point.ideal_s if point.ideal_s else None


def sweep(
    label: str,
    urls_for: Callable[[int], list[str]],
    jobs_list: list[int],
    config: FetchConfig,
    *,
    sample: int,
) -> Sweep:
    """Measure every jobs value (the first must be 1) and print each row as it comes.

    ``urls_for(jobs)`` gives the list for one point; jobs=1 fetches a sample of it.
    """
    total = len(urls_for(jobs_list[0]))
    points: list[Point] = []
    print(f"urlfleet bench: {label}")
    print(TABLE_HEADER)
    for jobs in jobs_list:
        urls = urls_for(jobs)
        if jobs == 1 and len(urls) > sample:
            urls = spread_sample(urls, sample)  # one at a time would take too long
        points.append(measure(urls, replace(config, jobs=jobs), total))
        if points[-1].failed:
            failed, fetched = points[-1].failed, points[-1].fetched
            print(f"jobs={jobs}: {failed} of {fetched} URLs failed", file=sys.stderr)
        print(format_row(Sweep(label, total, points), points[-1]), flush=True)
    line = cpu_line(points)
    if line is not None:
        print(line)
    if points[0].fetched < total:
        print(
            f"* jobs=1 fetched {points[0].fetched} of the {total} URLs one at a time; "
            "its wall and ideal times are extrapolated to the whole list"
        )
    return Sweep(label, total, points)


def measure(urls: list[str], config: FetchConfig, total: int) -> Point:
    """Fetch ``urls`` once with ``config``; its Point, with times scaled to ``total`` URLs."""
    run = Run(config)
    for _ in run.results(urls):
        pass
    report = build_report(run.phases, config)
    use = cpu_use(run.phases, processes=1, cores=usable_cores())
    verdict = None
    if use is not None:
        verdict = cpu_verdict(use, ideal_s=report.ideal_s, bottleneck=report.bottleneck)
    scale = total / report.urls if report.urls else 1.0
    wall = report.wall_s or 0.0  # a run's report is always timed; None is a records file's
    return Point(
        jobs=report.jobs or 1,
        fetched=report.urls,
        wall_s=wall * scale,
        requests_per_s=report.requests_per_s or 0.0,
        ideal_s=report.ideal_s * scale if report.ideal_s is not None else None,
        efficiency=report.efficiency,
        client_cpu=use.share if use is not None else 0.0,
        failed=report.failed,
        cpu=verdict,
    )


def cpu_line(points: Sequence[Point]) -> str | None:
    """The sweep's CPU in one line: from which --jobs the client's CPU set the pace, and
    what the rule says of the fastest point (whether more processes would help there)."""
    judged = [p for p in points if p.cpu is not None]
    if not judged:
        return None
    fastest = min(judged, key=lambda p: p.wall_s)
    first = next((p for p in judged if p.cpu is not None and p.cpu.bound), None)
    where = f"CPU-bound from --jobs {first.jobs}; " if first is not None else ""
    assert fastest.cpu is not None
    return f"cpu: {where}at --jobs {fastest.jobs}, the fastest: {fastest.cpu.line}"


def spread_sample(urls: Sequence[str], size: int) -> list[str]:
    """``size`` URLs taken round-robin over their hosts, so no one host sets the pace."""
    by_host: dict[str, list[str]] = {}
    for url in urls:
        by_host.setdefault(host_key(url), []).append(url)
    layers = itertools.chain.from_iterable(itertools.zip_longest(*by_host.values()))
    return [url for url in layers if url is not None][:size]


TABLE_HEADER = (
    f"{'jobs':>6} {'wall_s':>9} {'requests/s':>11} {'speedup':>8} {'ideal_s':>9} "
    f"{'efficiency':>10} {'client_cpu':>10}"
)


def format_row(sweep: Sweep, point: Point) -> str:
    """One table row; jobs=1 is starred when it was extrapolated from a sample."""
    star = "*" if point.fetched < sweep.urls else " "
    return (
        f"{point.jobs:>5}{star} {point.wall_s:>9.2f} {point.requests_per_s:>11.1f} "
        f"{_num(sweep.speedup(point), 8, 2)} {_num(point.ideal_s, 9, 2)} "
        f"{_num(point.efficiency, 10, 2)} {point.client_cpu:>10.0%}"
    )


def _num(value: float | None, width: int, digits: int) -> str:
    return f"{value:>{width}.{digits}f}" if value is not None else f"{'-':>{width}}"
