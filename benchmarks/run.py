"""urlfleet's benchmarks in one command: ``python benchmarks/run.py [--quick] [--only NAME]``.

Every workload runs against the loopback server, in a process of its own, and every single
measurement (urlfleet, or a reference) runs in a fresh child process, so one point's peak RSS
and CPU time are not another's. The references, measured in the same run:

* ``serial``: a plain loop over one ``requests.Session`` on a sample of the list, extrapolated;
* ``pool``: a bare ``ThreadPoolExecutor`` with one Session per thread and no politeness, the
  CPU floor of any requests-based fetcher.

The server's own records check urlfleet's politeness (most requests in flight per host, shortest
gap between request starts), and the server's CPU time shows it is not the bottleneck.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"  # so a checkout works without `pip install -e .`
RESULTS = HERE / "results.json"
CHILD_TIMEOUT = 900.0
DEFAULT_WINDOW = 10_000  # urlfleet.config.DEFAULT_WINDOW: memory is flat only past it


# -- workloads -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Workload:
    """A list shape, a server, and a politeness setting; sizes for the full and quick runs."""

    name: str
    about: str
    hosts: int
    latency: float
    urls: int
    quick_urls: int
    per_host: int = 4
    delay: float = 0.0
    jobs: tuple[int, ...] = (64, 256)
    hot: bool = False  # one host holds a block at the top, sized to take as long as the rest
    serial_sample: int = 40
    references: bool = True
    pool_jobs: tuple[int, ...] = (64, 256)
    repeat: int = 3

    def layout(self, urls: int) -> list[tuple[list[int], int]]:
        """``[(host indexes, count), ...]`` in list order; URLs cycle over a block's hosts."""
        if not self.hot:
            return [(list(range(self.hosts)), urls)]
        # n_h * L / P = (N - n_h) * L / C  <=>  n_h = N * P / (C + P), with C = the first jobs
        block = round(urls * self.per_host / (self.jobs[0] + self.per_host))
        return [([0], block), (list(range(1, self.hosts)), urls - block)]


WORKLOADS = (
    Workload(
        name="even",
        about="2,000 URLs over 20 hosts, 100 ms",
        hosts=20,
        latency=0.1,
        urls=2000,
        quick_urls=400,
    ),
    Workload(
        name="hot",
        about="one host's block on top = the rest's time; 19 more, 100 ms",
        hosts=20,
        latency=0.1,
        urls=2000,
        quick_urls=400,
        hot=True,
    ),
    Workload(
        name="polite",
        about="200 URLs over 4 hosts, 10 ms, per_host 2, delay 0.1",
        hosts=4,
        latency=0.01,
        urls=200,
        quick_urls=40,
        per_host=2,
        delay=0.1,
        serial_sample=200,
    ),
    Workload(
        name="cpu",
        about="5,000 URLs over 4 hosts, 0 ms",
        hosts=4,
        latency=0.0,
        urls=5000,
        quick_urls=1000,
        serial_sample=500,
    ),
    Workload(
        name="huge-10k",
        about="10,000 URLs over 100 hosts, 0 ms",
        hosts=100,
        latency=0.0,
        urls=10_000,
        quick_urls=1000,
        jobs=(64,),
        pool_jobs=(64,),
        serial_sample=500,
        repeat=1,
    ),
    Workload(
        name="huge-100k",
        about="100,000 URLs over 100 hosts, 0 ms",
        hosts=100,
        latency=0.0,
        urls=100_000,
        quick_urls=10_000,
        jobs=(64,),
        references=False,
        repeat=1,
    ),
)


# -- the child: one measurement in a fresh process ---------------------------------------------


def child_main(spec: dict[str, Any]) -> dict[str, Any]:
    """Fetch the list ``spec`` describes the way ``spec["kind"]`` says; measurements as a dict."""
    kind = spec["kind"]
    urls = generate_urls(spec)
    if kind == "serial":
        urls = itertools.islice(urls, 0, None, max(1, spec["urls"] // spec["sample"]))
    measure = {"urlfleet": _child_urlfleet, "pool": _child_pool, "serial": _child_serial}[kind]
    # Imports happen before the clock starts: a run is timed, not the interpreter's start.
    importlib.import_module("urlfleet.runner" if kind == "urlfleet" else "requests")
    cpu_before, started = time.process_time(), time.monotonic()
    out = measure(urls, spec)
    out["wall_s"] = time.monotonic() - started
    out["cpu_s"] = time.process_time() - cpu_before
    out["peak_rss_kb"] = _peak_rss_kb()
    return out


def generate_urls(spec: dict[str, Any]) -> Iterator[str]:
    """The list, made lazily: a huge list must never sit in the child's memory."""
    bases, token, index = spec["bases"], spec["token"], 0
    for hosts, count in spec["layout"]:
        for k in range(count):
            yield f"{bases[hosts[k % len(hosts)]]}/page/{token}/{index}"
            index += 1


def _child_urlfleet(urls: Iterator[str], spec: dict[str, Any]) -> dict[str, Any]:
    from urlfleet.config import FetchConfig
    from urlfleet.report import build_report
    from urlfleet.runner import Run

    config = FetchConfig(
        jobs=spec["jobs"], per_host=spec["per_host"], delay=spec["delay"], keep_content=False
    )
    run = Run(config)
    ok = sum(result.ok for result in run.results(urls))
    report = build_report(run.phases, config)
    return {
        "urls": report.urls,
        "ok": ok,
        "failures": report.failures,
        "requests": report.requests,
        "ideal_s": report.ideal_s,
        "threads": report.jobs,
    }


def _child_pool(urls: Iterator[str], spec: dict[str, Any]) -> dict[str, Any]:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import requests

    local = threading.local()
    sessions: list[requests.Session] = []

    def get(url: str) -> tuple[bool, float]:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            sessions.append(session)  # list.append is atomic under the GIL
        return _timed_get(session, url)

    with ThreadPoolExecutor(spec["jobs"]) as pool:
        outcomes = list(pool.map(get, urls))
    for session in sessions:
        session.close()
    return _tally(outcomes, spec["jobs"])


def _child_serial(urls: Iterator[str], spec: dict[str, Any]) -> dict[str, Any]:
    import requests

    with requests.Session() as session:
        return _tally([_timed_get(session, url) for url in urls], 1)


def _timed_get(session: Any, url: str) -> tuple[bool, float]:
    started = time.monotonic()
    with session.get(url, timeout=30) as response:
        ok = response.ok and response.content is not None
    return ok, time.monotonic() - started


def _tally(outcomes: list[tuple[bool, float]], threads: int) -> dict[str, Any]:
    # No politeness: the least time is the latency of all requests spread over the threads.
    busy = sum(seconds for _, seconds in outcomes)
    return {
        "urls": len(outcomes),
        "ok": sum(ok for ok, _ in outcomes),
        "requests": len(outcomes),
        "ideal_s": busy / threads,
        "threads": threads,
    }


def _peak_rss_kb() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


# -- the parent: workloads, children, server records -----------------------------------------


@dataclass
class Row:
    """One measurement (median over repeats), as printed and as written to JSON."""

    workload: str
    impl: str
    jobs: int
    urls: int  # the list's size; serial fetched a sample and is extrapolated to this
    fetched: int
    wall_s: float
    ideal_s: float | None
    efficiency: float | None
    requests_per_s: float
    cpu_ms_per_request: float
    client_cpu: float  # CPU seconds per wall second of the fetching process
    peak_rss_mb: float
    server_cpu: float  # the same for the server process
    connections: int  # TCP connections the server accepted
    failed: int
    max_in_flight: int | None = None
    min_gap_s: float | None = None
    repeats: int = 1
    walls: list[float] = field(default_factory=list)


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; what it printed, parsed."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        env=_clean_env(),
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child {spec['kind']} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _clean_env() -> dict[str, str]:
    # A developer's HTTP_PROXY must not send loopback traffic elsewhere (or through a proxy).
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    return env


def measure_once(
    server: Any, workload: Workload, urls: int, impl: str, jobs: int
) -> dict[str, Any]:
    """One child run against ``server``; adds the server's view (CPU, connections, politeness)."""
    from urlfleet.loopback import host_loads

    token = uuid.uuid4().hex[:10]
    spec = {
        "kind": impl,
        "bases": server.base_urls,
        "layout": workload.layout(urls),
        "token": token,
        "jobs": jobs,
        "per_host": workload.per_host,
        "delay": workload.delay,
        "urls": urls,
        "sample": workload.serial_sample,
    }
    before = server.stats()
    out = run_child(spec)
    after = server.stats()
    out["server_cpu_s"] = after["cpu_s"] - before["cpu_s"]
    out["connections"] = after["connections"] - before["connections"] - 1  # our stats call
    if impl == "urlfleet":
        loads = host_loads(server.records(contains=token)).values()
        out["max_in_flight"] = max((load.max_in_flight for load in loads), default=0)
        out["min_gap_s"] = min((load.min_gap for load in loads), default=None)
    if out["ok"] < out["urls"]:
        failures = out.get("failures") or "see the child"
        print(f"{workload.name} {impl} {jobs}: {out['urls'] - out['ok']} failed: {failures}",
              file=sys.stderr, flush=True)  # fmt: skip
    server.clear()  # the server keeps every record: forget them, or a huge run grows it
    return out


def summarize(
    workload: Workload, urls: int, impl: str, jobs: int, runs: list[dict[str, Any]]
) -> Row:
    """The median of each figure over the repeats; politeness is the worst seen."""
    scale = urls / runs[0]["urls"]  # serial ran on a sample

    def med(key: str) -> float:
        return float(statistics.median(run[key] for run in runs))

    ideal = med("ideal_s") * scale if runs[0]["ideal_s"] is not None else None
    wall = med("wall_s") * scale
    gaps = [run["min_gap_s"] for run in runs if run.get("min_gap_s") is not None]
    return Row(
        workload=workload.name,
        impl=impl,
        jobs=jobs,
        urls=urls,
        fetched=runs[0]["urls"],
        wall_s=wall,
        ideal_s=ideal,
        efficiency=statistics.median(r["ideal_s"] / r["wall_s"] for r in runs) if ideal else None,
        requests_per_s=statistics.median(r["requests"] / r["wall_s"] for r in runs),
        cpu_ms_per_request=statistics.median(1000 * r["cpu_s"] / r["requests"] for r in runs),
        client_cpu=statistics.median(r["cpu_s"] / r["wall_s"] for r in runs),
        peak_rss_mb=med("peak_rss_kb") / 1024,
        server_cpu=statistics.median(r["server_cpu_s"] / r["wall_s"] for r in runs),
        connections=int(med("connections")),
        failed=max(r["urls"] - r["ok"] for r in runs),
        max_in_flight=max((r["max_in_flight"] for r in runs if "max_in_flight" in r), default=None),
        min_gap_s=min(gaps) if gaps else None,
        repeats=len(runs),
        walls=[round(r["wall_s"] * scale, 3) for r in runs],
    )


def plan(workload: Workload) -> list[tuple[str, int]]:
    """The measurements of one workload, in the order one repeat makes them."""
    points = [("urlfleet", jobs) for jobs in workload.jobs]
    if workload.references:
        points += [("pool", jobs) for jobs in workload.pool_jobs] + [("serial", 1)]
    return points


def run_workload(workload: Workload, *, quick: bool, repeat: int | None) -> list[Row]:
    """Start the server, make every measurement ``repeat`` times (interleaved), summarize."""
    from urlfleet.loopback import LoopbackProcess, ServerSpec

    urls = workload.quick_urls if quick else workload.urls
    repeats = 1 if quick else min(repeat or workload.repeat, workload.repeat)
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {point: [] for point in plan(workload)}
    with LoopbackProcess(ServerSpec(hosts=workload.hosts, latency=workload.latency)) as server:
        # Interleaved, so drift in the machine's load hits urlfleet and the references alike.
        for _ in range(repeats):
            for impl, jobs in plan(workload):
                if impl == "serial" and runs[impl, jobs]:
                    continue  # an extrapolated estimate; once is enough, and it is slow
                runs[impl, jobs].append(measure_once(server, workload, urls, impl, jobs))
    return [summarize(workload, urls, impl, jobs, got) for (impl, jobs), got in runs.items()]


# -- the report --------------------------------------------------------------------------------

HEADER = (
    f"{'workload':<10} {'impl':<9} {'jobs':>4} {'urls':>7} {'wall_s':>8} {'ideal_s':>8} "
    f"{'eff':>5} {'req/s':>7} {'cpu_ms/req':>10} {'cli_cpu':>7} {'rss_MB':>7} "
    f"{'srv_cpu':>7} {'conns':>6}  politeness (server's view)"
)


LEGEND = """
* serial: a sample fetched one at a time, times extrapolated to the whole list.
eff = ideal_s / wall_s. cli_cpu, srv_cpu: CPU seconds per wall second of the fetching process
and of the server process (100% = one core). Figures are medians over the repeats."""


def format_row(row: Row, workload: Workload) -> str:
    """One line of the table; serial is starred (a sample, extrapolated)."""
    impl = row.impl + ("*" if row.fetched < row.urls else "")
    ideal = f"{row.ideal_s:8.2f}" if row.ideal_s is not None else f"{'-':>8}"
    eff = f"{row.efficiency:5.2f}" if row.efficiency is not None else f"{'-':>5}"
    return (
        f"{row.workload:<10} {impl:<9} {row.jobs:>4} {row.urls:>7} {row.wall_s:8.2f} {ideal} "
        f"{eff} {row.requests_per_s:7.0f} {row.cpu_ms_per_request:10.3f} "
        f"{row.client_cpu:7.0%} {row.peak_rss_mb:7.1f} {row.server_cpu:7.0%} "
        f"{row.connections:>6}  {politeness(row, workload)}"
    )


def politeness(row: Row, workload: Workload) -> str:
    """``in flight 4/4 ok, gap 0.105 s >= 0.1 ok`` for urlfleet rows; '-' for references."""
    if row.max_in_flight is None:
        return "- (no politeness)" if row.impl == "pool" else "-"
    text = (
        f"in flight {row.max_in_flight}/{workload.per_host} {_ok(polite_in_flight(row, workload))}"
    )
    if workload.delay > 0 and row.min_gap_s is not None:
        text += (
            f", gap {row.min_gap_s:.3f} s >= {workload.delay:g} {_ok(polite_gap(row, workload))}"
        )
    return text


def polite_in_flight(row: Row, workload: Workload) -> bool:
    return row.max_in_flight is not None and row.max_in_flight <= workload.per_host


def polite_gap(row: Row, workload: Workload) -> bool:
    return workload.delay == 0 or (row.min_gap_s is not None and row.min_gap_s >= workload.delay)


def _ok(passed: bool) -> str:
    return "ok" if passed else "VIOLATED"


# -- targets -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One target: what was compared, the figures, and whether it held."""

    target: str
    measured: str
    met: bool | None  # None: not checked (e.g. --quick lists are too small for it)


def check_targets(rows: list[Row], by_name: dict[str, Workload]) -> list[Check]:
    """The issue's targets, each on the rows it applies to (absent rows are skipped)."""
    find = {(r.workload, r.impl, r.jobs): r for r in rows}
    checks: list[Check] = []
    for name in ("even", "hot", "polite"):
        if (row := find.get((name, "urlfleet", 64))) and row.efficiency is not None:
            checks.append(
                Check(
                    f"{name}: efficiency >= 0.9 at jobs 64",
                    f"{row.efficiency:.3f}",
                    row.efficiency >= 0.9,
                )
            )
    for name in ("even", "hot", "cpu"):  # polite is held back by its delay, by design
        ours, pool = find.get((name, "urlfleet", 256)), find.get((name, "pool", 256))
        if ours and pool:
            ratio = ours.requests_per_s / pool.requests_per_s
            checks.append(
                Check(
                    f"{name}: req/s at jobs 256 >= 0.9 x bare pool",
                    f"{ratio:.3f} ({ours.requests_per_s:.0f} vs {pool.requests_per_s:.0f})",
                    ratio >= 0.9,
                )
            )
    for jobs in (64, 256):
        ours, pool = find.get(("cpu", "urlfleet", jobs)), find.get(("cpu", "pool", jobs))
        if ours and pool:
            ratio = ours.cpu_ms_per_request / pool.cpu_ms_per_request
            checks.append(
                Check(
                    f"cpu: CPU/request at jobs {jobs} <= 1.15 x bare pool",
                    f"{ratio:.3f} ({ours.cpu_ms_per_request:.3f} vs "
                    f"{pool.cpu_ms_per_request:.3f} ms)",
                    ratio <= 1.15,
                )
            )
    small, big = find.get(("huge-10k", "urlfleet", 64)), find.get(("huge-100k", "urlfleet", 64))
    if small and big:
        ratio = big.peak_rss_mb / small.peak_rss_mb
        checks.append(
            Check(
                f"huge: peak RSS at {big.urls:,} <= 1.2 x at {small.urls:,}",
                f"{ratio:.3f} ({big.peak_rss_mb:.1f} vs {small.peak_rss_mb:.1f} MB)",
                # Below the look-ahead window the whole list is held by design: not comparable.
                ratio <= 1.2 if small.urls >= DEFAULT_WINDOW else None,
            )
        )
    polite = _politeness_check(rows, by_name)
    if polite is not None:
        checks.append(polite)
    return checks


def _politeness_check(rows: list[Row], by_name: dict[str, Workload]) -> Check | None:
    ours = [row for row in rows if row.max_in_flight is not None]
    if not ours:
        return None
    bad = [
        f"{row.workload}@{row.jobs}"
        for row in ours
        if not (
            polite_in_flight(row, by_name[row.workload]) and polite_gap(row, by_name[row.workload])
        )
    ]
    measured = f"{len(ours) - len(bad)}/{len(ours)} runs ok"
    if bad:
        measured += f"; violated: {', '.join(bad)}"
    return Check("politeness exact (server records, every urlfleet run)", measured, not bad)


# -- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the selected workloads, print the table and targets; 0 if every target was met."""
    args = _parser().parse_args(argv)
    if args.child:
        print(json.dumps(child_main(json.load(sys.stdin))))
        return 0
    chosen = _select(args.only)
    by_name = {w.name: w for w in WORKLOADS}
    started = time.monotonic()
    print(
        f"urlfleet benchmarks{' (quick)' if args.quick else ''} at {code_version()}: "
        f"Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start"
    )
    print(HEADER, flush=True)
    rows: list[Row] = []
    for workload in chosen:
        for row in run_workload(workload, quick=args.quick, repeat=args.repeat):
            rows.append(row)
            print(format_row(row, workload), flush=True)
    checks = check_targets(rows, by_name)
    _print_footer(checks, time.monotonic() - started)
    if args.json:
        _write_json(args, rows, checks, time.monotonic() - started)
    return 1 if any(check.met is False for check in checks) else 0


def _print_footer(checks: list[Check], elapsed: float) -> None:
    print(LEGEND)
    print("\ntargets:")
    for check in checks:
        verdict = {True: "met   ", False: "MISSED", None: "n/a   "}[check.met]
        print(f"  {verdict}  {check.target}: {check.measured}")
    print(f"\ntotal time {elapsed:.0f} s")


def _write_json(
    args: argparse.Namespace, rows: list[Row], checks: list[Check], elapsed: float
) -> None:
    data = {
        "command": "python benchmarks/run.py " + " ".join(sys.argv[1:]),
        "code": code_version(),
        "quick": args.quick,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "elapsed_s": round(elapsed, 1),
        "rows": [asdict(row) for row in rows],
        "targets": [asdict(check) for check in checks],
    }
    RESULTS.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


def code_version() -> str:
    """The commit measured, ``+dirty`` when src/ has uncommitted changes (numbers depend on it)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=HERE.parent, capture_output=True, text=True,
                              check=False)  # fmt: skip
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (
        "+dirty" if git("status", "--porcelain", "--untracked-files=no", "--", "src") else ""
    )


def _select(only: str | None) -> list[Workload]:
    if not only:
        return list(WORKLOADS)
    names = [name.strip() for name in only.split(",") if name.strip()]
    chosen = [w for w in WORKLOADS if any(w.name == n or w.name.startswith(n + "-") for n in names)]
    if not chosen:
        raise SystemExit(
            f"--only: no workload named {only!r}; one of "
            f"{', '.join(w.name for w in WORKLOADS)} (or 'huge')"
        )
    return chosen


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small lists, one repeat (~1 min)")
    parser.add_argument(
        "--only",
        metavar="NAME[,NAME]",
        help="even, hot, polite, cpu, huge (both sizes) or huge-10k, huge-100k",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        metavar="R",
        help="at most R repeats per measurement (default: 3, huge 1)",
    )
    parser.add_argument("--json", action="store_true", help=f"also write {RESULTS.name}")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser


if __name__ == "__main__":
    if str(SRC) not in sys.path:
        sys.path.insert(0, str(SRC))
    raise SystemExit(main())
