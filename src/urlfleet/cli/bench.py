"""``urlfleet bench``: the same list at a sweep of ``--jobs`` values, and what each one bought.

The measuring is in ``urlfleet.cli.sweep`` and the charts in ``urlfleet.cli.plot``; this is
the command. By default the list is made up and served by the loopback server in a process of
its own, with fresh URLs for every point so no answer is a cached one.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from urlfleet.cli.exits import EXIT_FAILURES, EXIT_OK
from urlfleet.config import DEFAULT_PER_HOST, DEFAULT_TIMEOUT, FetchConfig
from urlfleet.errors import InputError

# The sweep, the run's modules and the loopback server are imported where used: building the
# parser must not load them.
if TYPE_CHECKING:
    from urlfleet.cli.sweep import Sweep

DEFAULT_JOBS_LIST = (1, 2, 4, 8, 16, 32, 64, 128, 256)
DEFAULT_URLS = 500
DEFAULT_HOSTS = 64  # x --per-host 4 = 256 connections, so even the last point can use them all
DEFAULT_LATENCY = 0.05
LOOPBACK_PER_HOST = 4
DEFAULT_LIMIT = 200  # a user's list is fetched once per point: keep what real servers see small
DEFAULT_SAMPLE = 40
PLOT_HINT = "--plot needs matplotlib: pip install 'urlfleet[plot]' (text chart instead)"


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
    from urlfleet.cli.plot import plot_png, text_chart

    jobs_list = sorted({1, *args.jobs_list})
    # The --per-host default depends on the list, so the config is made where the list is.
    config_for = functools.partial(_config, args.per_host, delay=args.delay, timeout=args.timeout)
    if args.file is not None:
        sweep = _sweep_file(args.file, args.limit, config_for, jobs_list, sample=args.sample)
    else:
        sweep = _sweep_loopback(args.urls, args.hosts, args.latency, config_for, jobs_list,
                                sample=args.sample)  # fmt: skip
    if args.plot is not None:
        try:
            plot_png(sweep, args.plot)
            print(f"plot: {args.plot}")
        except ImportError:
            print(PLOT_HINT, file=sys.stderr)
            print(text_chart(sweep))
    return EXIT_FAILURES if any(p.failed for p in sweep.points) else EXIT_OK


def _config(
    per_host: int | None, default_per_host: int, *, delay: float, timeout: float
) -> FetchConfig:
    try:
        return FetchConfig(
            per_host=default_per_host if per_host is None else per_host,
            delay=delay, timeout=timeout,
            keep_content=False,
        )  # fmt: skip
    except ValueError as exc:
        raise InputError(f"bad option: {exc}") from exc


def _sweep_file(
    file: str,
    limit: int,
    config_for: Callable[[int], FetchConfig],
    jobs_list: list[int],
    *,
    sample: int,
) -> Sweep:
    from urlfleet.cli.sweep import sweep
    from urlfleet.read.items import split_item
    from urlfleet.read.sources import UrlReader

    reader = UrlReader([file], on_problem=lambda p: print(p, file=sys.stderr))
    reader.check()
    # The URLs alone: a sweep compares thread counts on plain GETs (a sitemap here is not
    # fetched: it would have to be fetched again at every thread count).
    items = (split_item(item)[0] for item in itertools.islice(reader, limit))
    urls = [url for url in items if isinstance(url, str)]
    if not urls:
        raise InputError(f"{file}: no URLs to fetch")
    config = config_for(DEFAULT_PER_HOST)
    label = f"{len(urls)} URLs from {Path(file).name}; {_politeness(config)}"
    return sweep(label, lambda jobs: urls, jobs_list, config, sample=sample)


def _sweep_loopback(
    count: int,
    hosts: int,
    latency: float,
    config_for: Callable[[int], FetchConfig],
    jobs_list: list[int],
    *,
    sample: int,
) -> Sweep:
    from urlfleet.cli.sweep import sweep
    from urlfleet.loopback import LoopbackProcess, ServerSpec, host_loads

    config = config_for(LOOPBACK_PER_HOST)
    token = uuid.uuid4().hex[:8]
    spec = ServerSpec(hosts=hosts, latency=latency)
    with LoopbackProcess(spec) as server:
        bases = server.base_urls

        def urls_for(jobs: int) -> list[str]:  # fresh URLs per point: nothing can be cached
            return [f"{bases[i % len(bases)]}/page/{token}/{jobs}/{i}" for i in range(count)]

        label = (
            f"{count} URLs on {len(bases)} loopback hosts, {latency * 1000:g} ms "
            f"each; {_politeness(config)}"
        )
        cpu_before, started = server.cpu_seconds(), time.monotonic()
        result = sweep(label, urls_for, jobs_list, config, sample=sample)
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


def _politeness(config: FetchConfig) -> str:
    return f"--per-host {config.per_host}, --delay {config.delay:g}"


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
