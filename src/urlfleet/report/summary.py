"""The run report: counts, timings, the measured speedup and how close to ideal the run came.

``speedup`` is computed here and nowhere else: serial seconds per URL (measured on a sample
fetched one at a time) over threaded seconds per URL (the rest, fetched concurrently), both
from the same run.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from urlfleet.config import FetchConfig
from urlfleet.report.hoststats import HostRow, host_rows, host_table
from urlfleet.report.runstats import Latency, LatencySample, status_words
from urlfleet.report.tally import HostTallies, Phase, Tally

# The contract's report keys, in order; the rest follow.
SUMMARY_HOSTS = 5  # hosts shown on stderr; --report has up to 20

REPORT_FIELDS = (
    "urls", "ok", "failed", "wall_s", "serial_s_per_url", "threaded_s_per_url", "speedup",
    "jobs", "per_host", "delay",
)  # fmt: skip


@dataclass(frozen=True, kw_only=True, slots=True)
class Ideal:
    """The least time any scheduler could need, and what sets it."""

    seconds: float
    bottleneck: str


def ideal_time(
    tally: Tally, threads: int, per_host: int, gap: float, paused: Mapping[str, float] | None = None
) -> Ideal | None:
    """max(N*L/C, max over hosts of n_h * max(L_h/P, gap) + pause_h), from what was measured.

    N*L/C is Little's law for the thread pool; a host serves at most min(P/L_h, 1/gap)
    requests per second, and not at all while it is paused (429/503, Retry-After): no
    scheduler can win that time back.
    """
    if not tally.requests:
        return None
    pool = tally.busy_s / threads
    best = Ideal(seconds=pool, bottleneck=f"--jobs {threads}")
    for host, load in tally.hosts.items():
        if not load.requests:
            continue
        need = load.requests * max(load.busy_s / load.requests / per_host, gap)
        need += (paused or {}).get(host, 0.0)
        if need > best.seconds:
            best = Ideal(seconds=need, bottleneck=f"politeness towards {host}")
    return best


@dataclass(frozen=True, kw_only=True, slots=True)
class Report:
    """What a run did and how fast, as written by ``--report`` (contract keys first)."""

    urls: int
    ok: int
    failed: int
    wall_s: float | None  # None: not measured (records that do not say when URLs started)
    serial_s_per_url: float | None
    threaded_s_per_url: float | None
    speedup: float | None
    jobs: int | None  # None: not known (a records file, without the run's -j)
    per_host: int | None
    delay: float
    requests: int
    requests_per_s: float | None
    serial_sample: int
    serial_estimate_s: float | None
    ideal_s: float | None
    efficiency: float | None
    bottleneck: str | None
    failures: dict[str, int]
    latency: Latency | None = None  # of each URL's elapsed_s: first request to last byte
    ttfb: Latency | None = None  # of each ttfb_s: final request written to its headers read
    statuses: dict[str, int] = field(default_factory=dict)  # final status, or error kind
    duplicates: int = 0
    malformed: int = 0
    already_done: int = 0
    changed: int = 0  # revalidated URLs with a new copy (a 2xx)
    unchanged: int = 0  # revalidated URLs answered 304: the copy kept is current
    hosts: list[HostRow] = field(default_factory=list)  # the busiest, by time spent on them

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    def write(self, path: Path) -> None:
        """Write the report to ``path`` whole or not at all (a temp file, then a rename)."""
        write_atomically(path, self.to_json().encode("utf-8"))

    def summary(self) -> str:
        """The report in words, a few lines for stderr."""
        failures = ", ".join(f"{kind}: {n}" for kind, n in sorted(self.failures.items()))
        rate = self.requests_per_s or 0.0
        timing = ("(wall time not in these records)" if self.wall_s is None else
                  f"in {self.wall_s:.2f} s ({rate:.1f} requests/s)")  # fmt: skip
        lines = [
            f"{self.urls} URLs {timing}: "
            f"{self.ok} ok, {self.failed} failed" + (f" ({failures})" if failures else "")
        ]
        if self.duplicates or self.malformed or self.already_done:
            lines.append(
                f"input: {self.duplicates} duplicates dropped, {self.malformed} "
                f"malformed lines skipped, {self.already_done} done before (--resume)"
            )
        if self.changed or self.unchanged:
            lines.append(f"revalidated: {self.unchanged} unchanged (304), {self.changed} changed")
        if self.serial_s_per_url is not None and self.serial_estimate_s is not None:
            lines.append(
                f"serial:   {self.serial_sample} URLs one at a time, "
                f"{self.serial_s_per_url:.4f} s/URL; the whole list would take "
                f"{self.serial_estimate_s:.1f} s"
            )
        if self.threaded_s_per_url is not None:
            threads = f"{self.jobs} thread" + ("" if self.jobs == 1 else "s")
            lines.append(f"threaded: {self.urls - self.serial_sample} URLs on {threads}, "
                         f"{self.threaded_s_per_url:.4f} s/URL")  # fmt: skip
        if self.latency is not None:
            lines.append(f"latency:  {self.latency.words()} per URL")
        if self.statuses:
            lines.append(f"status:   {status_words(self.statuses)}")
        if self.speedup is not None:
            lines.append(f"speedup:  {self.speedup:.1f}x from concurrency")
        if self.ideal_s is not None and self.efficiency is not None:
            lines.append(f"ideal:    {self.ideal_s:.2f} s (set by {self.bottleneck}); "
                         f"efficiency {self.efficiency:.2f}")  # fmt: skip
        if len(self.hosts) > 1 or any(row.throttled or row.paused_s for row in self.hosts):
            lines.append("busiest hosts:\n" + host_table(self.hosts[:SUMMARY_HOSTS]))
        return "\n".join(lines)


def temp_name(path: Path) -> Path:
    """A fresh hidden name beside ``path``, for writing it atomically."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def write_atomically(path: Path, data: bytes) -> None:
    """``data`` into ``path``: readers see the old file or the new one, never a part.

    The temp file sits in the same directory (``os.replace`` is atomic only within one file
    system) and is created with the usual permissions (0666 less the umask). A path that exists
    and is not a regular file (``/dev/stdout``) is written directly: it cannot be replaced.
    """
    try:
        regular = stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        regular = True
    if not regular:
        with open(path, "wb") as handle:
            handle.write(data)
        return
    temp = temp_name(path)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


def speedup_of(serial_s_per_url: float | None, threaded_s_per_url: float | None) -> float | None:
    """serial s/URL over threaded s/URL; None unless both were measured."""
    if not serial_s_per_url or not threaded_s_per_url:
        return None
    return serial_s_per_url / threaded_s_per_url


def build_report(
    phases: list[Phase],
    config: FetchConfig,
    *,
    duplicates: int = 0,
    malformed: int = 0,
    already_done: int = 0,
    paused: Mapping[str, float] | None = None,
) -> Report:
    """Put a run's phases together into its Report."""
    serial = next((p for p in phases if p.name == "serial"), None)
    threaded = next((p for p in phases if p.name == "threaded"), None)
    urls = sum(p.tally.urls for p in phases)
    ok = sum(p.tally.ok for p in phases)
    requests = sum(p.tally.requests for p in phases)
    wall = sum(p.wall_s for p in phases)
    failures: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    latency, ttfb = LatencySample(), LatencySample()
    for phase in phases:
        failures.update(phase.tally.failures)
        statuses.update(phase.tally.statuses)
        latency.merge(phase.tally.latency)
        ttfb.merge(phase.tally.ttfb)
    serial_per_url = _per_url(serial)
    threaded_per_url = _per_url(threaded)
    threads = threaded.threads if threaded else 1
    threaded_wall = threaded.wall_s if threaded else 0.0  # 0.0: not timed (a records file)
    ideal = (
        ideal_time(
            threaded.tally, threads, config.per_host, config.delay + config.jitter / 2, paused
        )
        if threaded and threaded.tally.urls
        else None
    )
    return Report(
        urls=urls,
        ok=ok,
        failed=urls - ok,
        wall_s=round(wall, 6),
        serial_s_per_url=serial_per_url,
        threaded_s_per_url=threaded_per_url,
        speedup=speedup_of(serial_per_url, threaded_per_url),
        jobs=threads,
        per_host=config.per_host,
        delay=config.delay,
        requests=requests,
        requests_per_s=round(requests / wall, 3) if wall > 0 else 0.0,
        serial_sample=serial.tally.urls if serial else 0,
        serial_estimate_s=serial_per_url * urls if serial_per_url is not None else None,
        ideal_s=round(ideal.seconds, 6) if ideal else None,
        efficiency=round(ideal.seconds / threaded_wall, 4) if ideal and threaded_wall else None,
        bottleneck=ideal.bottleneck if ideal else None,
        failures=dict(failures),
        latency=latency.latency(),
        ttfb=ttfb.latency(),
        statuses=dict(statuses),
        duplicates=duplicates,
        malformed=malformed,
        already_done=already_done,
        changed=sum(p.tally.changed for p in phases),
        unchanged=sum(p.tally.unchanged for p in phases),
        hosts=host_rows(_all_hosts(phases), paused or {}),
    )


def _all_hosts(phases: list[Phase]) -> HostTallies:
    if len(phases) == 1:
        return phases[0].tally.hosts
    merged = HostTallies()
    for phase in phases:
        for host, tally in phase.tally.hosts.items():
            merged.tally(host).merge(tally)
    return merged


def _per_url(phase: Phase | None) -> float | None:
    if phase is None or not phase.tally.urls or phase.wall_s <= 0:
        return None
    return phase.wall_s / phase.tally.urls
