"""Whether the client's CPU held a run back, and whether more processes would help: one rule.

One process runs Python on one core at a time (the GIL): once its threads keep that core
busy, more threads add queueing, not speed. ``--processes N`` gives a run N of them, but a
host lives in exactly one process, so N can usefully go up to the cores this process may
use and the hosts in the list, no further; and no number of processes makes a run shorter
than its ideal time (politeness, or ``-j`` threads waiting on latency). ``cpu_verdict``
puts these measured facts together into one line, for ``urlfleet demo``, ``urlfleet
fetch``, ``urlfleet bench`` and the HTML report's headline.

>>> cpu_verdict(CpuUse(wall_s=10.0, cpu_s=9.7, cores=2, hosts=8)).line
"client CPU was the bottleneck: 97% of one core in 1 process; --processes 2 (this machine's
cores) would help"
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from urlfleet.report.tally import Phase

# Of one core, per process. A process held by the GIL reads below 100%: time its threads
# spend waiting for the GIL is not CPU time, and the loopback server or other load takes
# its share of the same cores. The CPU-bound runs in benchmarks/results.json (2 shared
# cores) read 83-99%; a sweep's point at 76% had already fallen to efficiency 0.69.
CPU_BOUND = 0.8
# Starting worker processes costs each an interpreter importing the fetching modules:
# about 0.6 s of wall time on 2 cores (benchmarks/README.md, "Processes on one machine").
START_S = 0.6
# A predicted gain smaller than this share of the wall time is not promised: the prediction
# is rough (CPU assumed to divide evenly over processes, start-up measured on one machine).
MIN_GAIN = 0.1


@dataclass(frozen=True, slots=True)
class CpuUse:
    """What a run's client did with its CPU, measured over the stretch that fetched
    concurrently (the threaded phase).

    ``cpu_s`` is this process's CPU seconds (every thread), ``worker_cpu_s`` that of the
    worker processes (``--processes``) together; ``cores`` the cores this process may use,
    ``hosts`` the hosts fetched.
    """

    wall_s: float
    cpu_s: float
    processes: int = 1
    worker_cpu_s: float = 0.0
    cores: int = 1
    hosts: int = 1

    @property
    def share(self) -> float:
        """CPU seconds of every process of the client per wall second: 1.0 is one core."""
        return (self.cpu_s + self.worker_cpu_s) / self.wall_s if self.wall_s > 0 else 0.0


@dataclass(frozen=True, slots=True)
class CpuVerdict:
    """The rule's answer: whether the client's CPU set the pace, the ``--processes`` count
    that would help (None: more would not), and both in one line of words."""

    bound: bool
    helps: int | None
    line: str


def cpu_use(phases: Sequence[Phase], *, processes: int, cores: int) -> CpuUse | None:
    """The CpuUse of a run's threaded phase; None if it has none or its CPU was not measured
    (a records file)."""
    threaded = next((p for p in phases if p.name == "threaded"), None)
    if threaded is None or threaded.cpu_s is None or threaded.wall_s <= 0:
        return None
    hosts = threaded.tally.hosts
    return CpuUse(
        wall_s=threaded.wall_s,
        cpu_s=threaded.cpu_s,
        processes=processes,
        worker_cpu_s=threaded.worker_cpu_s,
        cores=cores,
        hosts=max(1, sum(1 for _ in hosts.items()) + hosts.folded),
    )


def cpu_verdict(
    use: CpuUse, *, ideal_s: float | None = None, bottleneck: str | None = None
) -> CpuVerdict:
    """Whether the client's CPU was the bottleneck and whether more processes would help.

    ``ideal_s`` and ``bottleneck`` are the report's: the least time any scheduler could
    need, and what sets it (``politeness towards HOST`` or ``--jobs N``).
    """
    n = use.processes
    used = f"{use.share:.0%} of one core in {n} process{'es' if n > 1 else ''}"
    pace = _pace_words(bottleneck)
    wall = use.wall_s
    this = use.cpu_s / wall if wall > 0 else 0.0
    each = use.worker_cpu_s / wall / n if n > 1 and wall > 0 else this
    if max(each, this) < CPU_BOUND and use.share < CPU_BOUND * use.cores:
        cause = f"the pace was set by {pace}"
        if ideal_s and wall * (1 - MIN_GAIN) > ideal_s:  # something else held it back too
            cause = f"the run took {wall / ideal_s:.2f}x its ideal (set by {pace})"
        return CpuVerdict(False, None, f"not CPU-bound ({used}): more processes would not "
                          f"help; {cause}")  # fmt: skip
    head = f"client CPU was the bottleneck: {used}"
    if n > 1 and this >= CPU_BOUND:
        return CpuVerdict(True, None, f"{head}; this process (it writes every record) used "
                          f"{this:.0%} of a core: more processes would not help")  # fmt: skip
    most = min(use.cores, use.hosts)
    if most <= n:
        if use.hosts < use.cores and use.hosts == 1:
            why = "all on 1 host, which one process fetches: more processes would not help"
        elif use.hosts < use.cores:
            why = (f"already {n} processes for {use.hosts} hosts, each host in one process: "
                   "more would not help here")  # fmt: skip
        else:
            cores = f"{use.cores} core{'s' if use.cores > 1 else ''}"
            why = f"already {used.rpartition(' in ')[2]} on {cores}: more would not help here"
        return CpuVerdict(True, None, f"{head}; {why}")
    # With ``most`` processes: the CPU's share of the time divides, down to the ideal.
    expected = max(ideal_s or 0.0, wall * n / most) + (START_S if n == 1 else 0.0)
    if expected > wall * (1 - MIN_GAIN):
        if ideal_s is not None and ideal_s > wall * (1 - MIN_GAIN):
            # Both limits at once: the run was at its ideal, so the CPU did not set its pace.
            return CpuVerdict(False, None, f"client CPU busy ({used}), but the run "
                              f"took {wall / ideal_s:.2f}x its ideal: more processes would "
                              f"not help; the pace was set by {pace}")  # fmt: skip
        return CpuVerdict(True, None, f"{head}; --processes {most} would not pay on a run "
                          f"this short (starting them takes ~{START_S:g} s)")  # fmt: skip
    why = "this machine's cores" if most == use.cores else "one per host"
    return CpuVerdict(True, most, f"{head}; --processes {most} ({why}) would help")


def _pace_words(bottleneck: str | None) -> str:
    # The report's bottleneck as the cause of a run's pace.
    if bottleneck is None:
        return "waiting on the servers"
    if bottleneck.startswith("--jobs"):
        return f"latency at {bottleneck}"
    return bottleneck
