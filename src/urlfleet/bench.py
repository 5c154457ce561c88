"""``urlfleet bench``: the same list at a sweep of ``--jobs`` values, and what each one bought.

Every point is a full run through the library (frontier, retries, politeness), timed and
compared with the least time any scheduler could need (``report.ideal_time``), so the table
says both how much faster more threads were and how much speed was left on the table.
By default the list is made up and served by the loopback server in a process of its own,
with fresh URLs for every point so no answer is a cached one.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import math
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from urlfleet.config import DEFAULT_PER_HOST, DEFAULT_TIMEOUT, FetchConfig
from urlfleet.errors import InputError
from urlfleet.loopback import LoopbackProcess, ServerSpec, host_loads
from urlfleet.politeness import host_key
from urlfleet.report import build_report, speedup_of
from urlfleet.runner import Run
from urlfleet.sources import UrlReader

DEFAULT_JOBS_LIST = (1, 2, 4, 8, 16, 32, 64, 128, 256)
DEFAULT_URLS = 500
DEFAULT_HOSTS = 64  # x --per-host 4 = 256 connections, so even the last point can use them all
DEFAULT_LATENCY = 0.05
LOOPBACK_PER_HOST = 4
DEFAULT_LIMIT = 200  # a user's list is fetched once per point: keep what real servers see small
DEFAULT_SAMPLE = 40
PLOT_HINT = "--plot needs matplotlib: pip install 'urlfleet[plot]' (text chart instead)"
# Python threads share one core for Python code: past this share of it, more threads add
# queueing, not speed, and efficiency falls for reasons no scheduler can fix.
BUSY_CLIENT = 0.85
EXIT_OK, EXIT_FAILURES = 0, 1


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


def add_bench_command(commands: Any) -> None:
    """Add ``bench`` to an argparse subparsers object (its handler is ``run_bench``)."""
    bench = commands.add_parser(
        "bench",
        help="time one list at several --jobs values and compare with the ideal",
        description="Fetch the same list at each --jobs value and print wall time, requests/s, "
        "speedup over --jobs 1 and efficiency (ideal time / wall time). Without FILE, a list "
        "of fresh URLs is served by the built-in loopback server; no network needed.",
        epilog="Exit status: 0, or 1 if any URL failed (its timings are suspect).",
    )
    bench.add_argument("file", nargs="?", metavar="FILE", help="a URL list to time instead")
    bench.add_argument("--limit", type=_positive, default=DEFAULT_LIMIT, metavar="N",
                       help="with FILE: its first N URLs, fetched again at every point "
                       "(default %(default)s)")  # fmt: skip
    bench.add_argument("-j", "--jobs-list", type=_jobs_list, default=DEFAULT_JOBS_LIST,
                       metavar="J,J,...", help="thread counts to try; 1 is always measured "
                       "(default 1,2,4,...,256)")  # fmt: skip
    server = bench.add_argument_group("built-in loopback server")
    server.add_argument("--urls", type=_positive, default=DEFAULT_URLS, metavar="N",
                        help="URLs per point (default %(default)s)")  # fmt: skip
    server.add_argument("--hosts", type=_positive, default=DEFAULT_HOSTS, metavar="H",
                        help="simulated hosts (default %(default)s)")  # fmt: skip
    server.add_argument("--latency", type=float, default=DEFAULT_LATENCY, metavar="S",
                        help="seconds before each answer (default %(default)s)")  # fmt: skip
    run = bench.add_argument_group("run")
    run.add_argument(
        "--per-host",
        type=int,
        metavar="N",
        help="requests in flight per host "
        f"(default {LOOPBACK_PER_HOST} on loopback, {DEFAULT_PER_HOST} with FILE)",
    )
    run.add_argument(
        "--delay",
        type=float,
        default=0.0,
        metavar="S",
        help="seconds between request starts per host (default %(default)s)",
    )
    run.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                     help="per-request timeout (default %(default)s)")  # fmt: skip
    run.add_argument(
        "--sample",
        type=_positive,
        default=DEFAULT_SAMPLE,
        metavar="K",
        help="jobs=1 fetches K URLs and extrapolates (default %(default)s)",
    )
    run.add_argument(
        "--plot",
        type=Path,
        metavar="FILE.png",
        help="draw speedup vs jobs beside the ideal (needs urlfleet[plot])",
    )
    bench.set_defaults(handler=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    """Run the sweep the options describe, print the table (and chart); the exit code."""
    jobs_list = sorted({1, *args.jobs_list})
    if args.file is not None:
        sweep = _sweep_file(args, jobs_list)
    else:
        sweep = _sweep_loopback(args, jobs_list)
    if args.plot is not None:
        try:
            plot_png(sweep, args.plot)
            print(f"plot: {args.plot}")
        except ImportError:
            print(PLOT_HINT, file=sys.stderr)
            print(text_chart(sweep))
    return EXIT_FAILURES if any(p.failed for p in sweep.points) else EXIT_OK


def _config(args: argparse.Namespace, per_host: int) -> FetchConfig:
    try:
        return FetchConfig(
            per_host=per_host if args.per_host is None else args.per_host,
            delay=args.delay, timeout=args.timeout,
            keep_content=False,
        )  # fmt: skip
    except ValueError as exc:
        raise InputError(f"bad option: {exc}") from exc


def _sweep_file(args: argparse.Namespace, jobs_list: list[int]) -> Sweep:
    reader = UrlReader([args.file], on_problem=lambda p: print(p, file=sys.stderr))
    reader.check()
    urls = list(itertools.islice(reader, args.limit))
    if not urls:
        raise InputError(f"{args.file}: no URLs to fetch")
    config = _config(args, DEFAULT_PER_HOST)
    label = f"{len(urls)} URLs from {Path(args.file).name}; {_politeness(config)}"
    return sweep(label, lambda jobs: urls, jobs_list, config, sample=args.sample)


def _sweep_loopback(args: argparse.Namespace, jobs_list: list[int]) -> Sweep:
    config = _config(args, LOOPBACK_PER_HOST)
    token = uuid.uuid4().hex[:8]
    spec = ServerSpec(hosts=args.hosts, latency=args.latency)
    with LoopbackProcess(spec) as server:
        bases = server.base_urls

        def urls_for(jobs: int) -> list[str]:  # fresh URLs per point: nothing can be cached
            return [f"{bases[i % len(bases)]}/page/{token}/{jobs}/{i}" for i in range(args.urls)]

        label = (
            f"{args.urls} URLs on {len(bases)} loopback hosts, {args.latency * 1000:g} ms "
            f"each; {_politeness(config)}"
        )
        cpu_before, started = server.cpu_seconds(), time.monotonic()
        result = sweep(label, urls_for, jobs_list, config, sample=args.sample)
        cpu_share = (server.cpu_seconds() - cpu_before) / (time.monotonic() - started)
        # Point by point: each run keeps its own politeness; two runs need not keep a gap.
        loads = [
            load
            for jobs in jobs_list
            for load in host_loads(server.records(contains=f"/{token}/{jobs}/")).values()
        ]
    gap = f", shortest gap {min(h.min_gap for h in loads):.3f} s" if config.delay else ""
    print(
        f"server: {sum(h.requests for h in loads)} requests, at most "
        f"{max(h.max_in_flight for h in loads)} in flight to one host{gap} (within a run); "
        f"used {cpu_share:.0%} of a core"
    )
    return result


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
    if max(p.client_cpu for p in points) >= BUSY_CLIENT:
        print(
            "client CPU near one core: there the GIL, not the scheduler or the server, "
            "sets the pace (ideal_s counts latency only)"
        )
    if points[0].fetched < total:
        print(
            f"* jobs=1 fetched {points[0].fetched} of the {total} URLs one at a time; "
            "its wall and ideal times are extrapolated to the whole list"
        )
    return Sweep(label, total, points)


def measure(urls: list[str], config: FetchConfig, total: int) -> Point:
    """Fetch ``urls`` once with ``config``; its Point, with times scaled to ``total`` URLs."""
    run = Run(config)
    cpu_before = time.process_time()  # every thread of this process: the client's CPU
    for _ in run.results(urls):
        pass
    cpu_s = time.process_time() - cpu_before
    report = build_report(run.phases, config)
    scale = total / report.urls if report.urls else 1.0
    return Point(
        jobs=report.jobs,
        fetched=report.urls,
        wall_s=report.wall_s * scale,
        requests_per_s=report.requests_per_s,
        ideal_s=report.ideal_s * scale if report.ideal_s is not None else None,
        efficiency=report.efficiency,
        client_cpu=cpu_s / report.wall_s if report.wall_s > 0 else 0.0,
        failed=report.failed,
    )


def spread_sample(urls: Sequence[str], size: int) -> list[str]:
    """``size`` URLs taken round-robin over their hosts, so no one host sets the pace."""
    by_host: dict[str, list[str]] = {}
    for url in urls:
        by_host.setdefault(host_key(url), []).append(url)
    layers = itertools.chain.from_iterable(itertools.zip_longest(*by_host.values()))
    return [url for url in layers if url is not None][:size]


def _politeness(config: FetchConfig) -> str:
    return f"--per-host {config.per_host}, --delay {config.delay:g}"


# -- output ------------------------------------------------------------------------------

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


def text_chart(sweep: Sweep, width: int = 48) -> str:
    """Speedup per jobs value as bars on a log scale: ``#`` measured, ``|`` the ideal."""
    rows = [(p.jobs, sweep.speedup(p) or 0.0, sweep.ideal_speedup(p) or 0.0) for p in sweep.points]
    top = max(2.0, *(max(s, i) for _, s, i in rows))

    def column(value: float) -> int:
        return round(width * math.log(value) / math.log(top)) if value > 1 else 0

    lines = ["speedup over jobs=1 (log scale): # measured, | ideal"]
    for jobs, speedup, ideal in rows:
        filled = max(1, column(speedup))
        bar = ["#" if i < filled else " " for i in range(width + 1)]
        bar[column(ideal)] = "|"
        lines.append(f"{jobs:>5} {''.join(bar)} {speedup:6.1f}x  (ideal {ideal:.1f}x)")
    return "\n".join(lines)


def plot_png(sweep: Sweep, path: Path) -> None:
    """Draw speedup vs jobs (log-log) beside the ideal and linear curves into a PNG.

    Raises ImportError when matplotlib is not installed.
    """
    # Imported by name: matplotlib is an optional extra, and a Figure needs no pyplot state.
    figure_module: Any = importlib.import_module("matplotlib.figure")
    figure = figure_module.Figure(figsize=(7.5, 5), layout="constrained")
    axes = figure.subplots()
    _draw_curves(axes, sweep)
    jobs = [p.jobs for p in sweep.points]
    axes.set_xscale("log", base=2)
    axes.set_yscale("log", base=2)
    axes.set_xticks(jobs, [str(j) for j in jobs])
    axes.yaxis.set_major_formatter(_plain_formatter())
    axes.set_ylim(bottom=0.7)  # room for the label under jobs=1
    axes.set_xlabel("threads (--jobs)")
    axes.set_ylabel("speedup over --jobs 1")
    axes.set_title(f"urlfleet bench: {sweep.label}", fontsize=10)
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(loc="upper left", fontsize=9)
    axes.text(0.98, 0.03, _plot_note(sweep), transform=axes.transAxes, ha="right",
              va="bottom", fontsize=8, color="0.35")  # fmt: skip
    figure.savefig(path, dpi=120)


def _draw_curves(axes: Any, sweep: Sweep) -> None:
    jobs = [p.jobs for p in sweep.points]
    axes.plot(jobs, jobs, color="0.75", linestyle=":", label="linear (speedup = jobs)")
    axes.plot(
        jobs,
        [sweep.ideal_speedup(p) for p in sweep.points],
        color="tab:green",
        linestyle="--",
        marker="s",
        markersize=4,
        label="ideal (from measured latency)",
    )
    axes.plot(jobs, [sweep.speedup(p) for p in sweep.points], color="tab:blue", marker="o",
              linewidth=2, label="measured")  # fmt: skip
    busy = [p for p in sweep.points if p.client_cpu >= BUSY_CLIENT]
    if busy:
        axes.scatter([p.jobs for p in busy], [sweep.speedup(p) for p in busy], s=160,
                     facecolors="none", edgecolors="tab:red", zorder=3,
                     label=f"client CPU ≥ {BUSY_CLIENT:.0%} of a core (GIL-bound)")  # fmt: skip
    for point in sweep.points:  # the gap to the ideal, in numbers
        if point.efficiency is not None:
            axes.annotate(f"{point.efficiency:.2f}", (point.jobs, sweep.speedup(point)),
                          textcoords="offset points", xytext=(0, -15), ha="center",
                          fontsize=8, color="tab:blue")  # fmt: skip


def _plot_note(sweep: Sweep) -> str:
    note = "numbers: efficiency = ideal time / wall time"
    first = sweep.points[0]
    if first.fetched < sweep.urls:
        note += f"\njobs=1: {first.fetched} URLs fetched, time extrapolated to {sweep.urls}"
    return note


def _plain_formatter() -> Any:
    ticker: Any = importlib.import_module("matplotlib.ticker")
    return ticker.FuncFormatter(lambda value, _pos: f"{value:g}")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _jobs_list(text: str) -> tuple[int, ...]:
    values = tuple(_positive(part) for part in text.split(",") if part.strip())
    if not values:
        raise argparse.ArgumentTypeError("give at least one thread count")
    return values
