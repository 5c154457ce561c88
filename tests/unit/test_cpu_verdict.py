"""The CPU rule (``urlfleet.report.cpu``): from measured numbers to a verdict, no run needed."""

from __future__ import annotations

import pytest

from tests.verdicts import is_a_verdict
from urlfleet.cli.sweep import Point, cpu_line
from urlfleet.record.records import Result
from urlfleet.report.cpu import CPU_BOUND, START_S, CpuUse, cpu_use, cpu_verdict
from urlfleet.report.tally import Phase, Tally


def test_cpu_bound_in_one_process_with_cores_to_spare_more_processes_help() -> None:
    verdict = cpu_verdict(CpuUse(wall_s=10.0, cpu_s=9.7, cores=2, hosts=64), ideal_s=4.0)
    assert verdict.bound and verdict.helps == 2
    assert verdict.line == ("client CPU was the bottleneck: 97% of one core in 1 process; "
                            "--processes 2 (this machine's cores) would help")  # fmt: skip
    eight = cpu_verdict(CpuUse(wall_s=10.0, cpu_s=9.0, cores=8, hosts=64))
    assert eight.helps == 8 and "--processes 8 (this machine's cores)" in eight.line


def test_cpu_bound_with_as_many_processes_as_cores_more_would_not_help() -> None:
    use = CpuUse(wall_s=10.0, cpu_s=1.0, processes=2, worker_cpu_s=17.5, cores=2, hosts=64)
    verdict = cpu_verdict(use, ideal_s=4.0)
    assert verdict.bound and verdict.helps is None
    assert verdict.line == ("client CPU was the bottleneck: 185% of one core in 2 processes; "
                            "already 2 processes on 2 cores: more would not help here")  # fmt: skip
    one_core = cpu_verdict(CpuUse(wall_s=10.0, cpu_s=9.5, cores=1, hosts=64))
    assert one_core.bound and one_core.helps is None
    assert one_core.line.endswith("already 1 process on 1 core: more would not help here")


def test_not_cpu_bound_more_processes_would_not_help() -> None:
    use = CpuUse(wall_s=10.0, cpu_s=3.5, cores=4, hosts=8)
    verdict = cpu_verdict(use, ideal_s=9.8, bottleneck="politeness towards a.test")
    assert not verdict.bound and verdict.helps is None
    assert verdict.line == ("not CPU-bound (35% of one core in 1 process): more processes would "
                            "not help; the pace was set by politeness towards a.test")  # fmt: skip
    threads = cpu_verdict(use, ideal_s=9.5, bottleneck="--jobs 32")
    assert threads.line.endswith("the pace was set by latency at --jobs 32")
    slow = cpu_verdict(use, ideal_s=5.0, bottleneck="--jobs 32")  # far from its ideal
    assert slow.line.endswith("the run took 2.00x its ideal (set by latency at --jobs 32)")
    assert cpu_verdict(use).line.endswith("the pace was set by waiting on the servers")


def test_one_host_lives_in_one_process_so_more_cannot_help() -> None:
    verdict = cpu_verdict(CpuUse(wall_s=10.0, cpu_s=9.7, cores=4, hosts=1), ideal_s=2.0)
    assert verdict.bound and verdict.helps is None
    assert verdict.line.endswith("all on 1 host, which one process fetches: more processes "
                                 "would not help")  # fmt: skip
    # No more processes than hosts, whatever the cores.
    three = cpu_verdict(CpuUse(wall_s=10.0, cpu_s=9.7, cores=8, hosts=3), ideal_s=2.0)
    assert three.helps == 3 and three.line.endswith("--processes 3 (one per host) would help")
    held = CpuUse(wall_s=10.0, cpu_s=1.0, processes=3, worker_cpu_s=27.0, cores=8, hosts=3)
    assert cpu_verdict(held).line.endswith(
        "already 3 processes for 3 hosts, each host in one process: more would not help here"
    )


def test_the_threshold_is_of_one_core_per_process() -> None:
    below = CpuUse(wall_s=10.0, cpu_s=10.0 * CPU_BOUND - 0.01, cores=2, hosts=8)
    assert not cpu_verdict(below).bound
    at = CpuUse(wall_s=10.0, cpu_s=10.0 * CPU_BOUND, cores=2, hosts=8)
    assert cpu_verdict(at).bound
    # Two workers at half a core each are not CPU-bound, though they add up to one core.
    half = CpuUse(wall_s=10.0, cpu_s=0.5, processes=2, worker_cpu_s=10.0, cores=4, hosts=8)
    assert not cpu_verdict(half).bound
    # Two at a full core each, on 4 cores: 4 processes would help.
    full = CpuUse(wall_s=10.0, cpu_s=0.5, processes=2, worker_cpu_s=19.0, cores=4, hosts=8)
    assert cpu_verdict(full).helps == 4


def test_the_parent_as_the_one_writer_of_records_can_be_the_limit() -> None:
    use = CpuUse(wall_s=10.0, cpu_s=9.0, processes=2, worker_cpu_s=8.0, cores=4, hosts=64)
    verdict = cpu_verdict(use)
    assert verdict.bound and verdict.helps is None
    assert "this process (it writes every record) used 90% of a core" in verdict.line


def test_more_processes_cannot_beat_the_ideal_nor_win_back_their_start() -> None:
    # At its ideal already: the CPU was busy, but did not set the pace.
    near = cpu_verdict(CpuUse(wall_s=2.2, cpu_s=2.2, cores=2, hosts=64), ideal_s=2.0,
                       bottleneck="--jobs 64")  # fmt: skip
    assert not near.bound and near.helps is None
    assert near.line == ("client CPU busy (100% of one core in 1 process), but the "
                         "run took 1.10x its ideal: more processes would not help; the pace "
                         "was set by latency at --jobs 64")  # fmt: skip
    # Too short for starting processes to pay: half of 1 s, plus START_S, is not a gain.
    short = cpu_verdict(CpuUse(wall_s=1.0, cpu_s=0.95, cores=2, hosts=64), ideal_s=0.2)
    assert short.bound and short.helps is None
    assert short.line.endswith(f"--processes 2 would not pay on a run this short (starting "
                               f"them takes ~{START_S:g} s)")  # fmt: skip
    # Once processes run, starting more costs about what they cost already: no start-up.
    running = CpuUse(wall_s=1.0, cpu_s=0.1, processes=2, worker_cpu_s=1.9, cores=4, hosts=64)
    assert cpu_verdict(running, ideal_s=0.2).helps == 4


@pytest.mark.parametrize(
    "use",
    [
        CpuUse(wall_s=10.0, cpu_s=9.7, cores=2, hosts=64),
        CpuUse(wall_s=10.0, cpu_s=1.0, processes=2, worker_cpu_s=17.5, cores=2, hosts=64),
        CpuUse(wall_s=10.0, cpu_s=3.5, cores=4, hosts=8),
        CpuUse(wall_s=10.0, cpu_s=9.7, cores=4, hosts=1),
        CpuUse(wall_s=10.0, cpu_s=9.7, cores=8, hosts=3),
        CpuUse(wall_s=10.0, cpu_s=1.0, processes=3, worker_cpu_s=27.0, cores=8, hosts=3),
        CpuUse(wall_s=10.0, cpu_s=9.0, processes=2, worker_cpu_s=8.0, cores=4, hosts=64),
        CpuUse(wall_s=2.2, cpu_s=2.2, cores=2, hosts=64),
        CpuUse(wall_s=1.0, cpu_s=0.95, cores=2, hosts=64),
        CpuUse(wall_s=10.0, cpu_s=9.5, cores=1, hosts=64),
    ],
)
def test_every_verdict_is_one_short_line_of_a_known_form(use: CpuUse) -> None:
    for efficiency in (None, 0.2, 0.5, 0.95):
        ideal = None if efficiency is None else use.wall_s * efficiency
        line = cpu_verdict(use, ideal_s=ideal, bottleneck="--jobs 8").line
        assert is_a_verdict(line), line
        assert "\n" not in line and len(line) < 170, line


def test_the_facts_come_from_the_threaded_phase() -> None:
    tally = Tally()
    for i in range(30):
        tally.add(Result(url=f"http://h{i % 3}.test/{i}", ok=True, status=200, error=None,
                         attempts=1, elapsed_s=0.1, bytes=0, host=f"h{i % 3}"))  # fmt: skip
    serial = Phase("serial", 1, 2.0, Tally(), cpu_s=0.01)
    threaded = Phase("threaded", 32, 4.0, tally, cpu_s=3.6, worker_cpu_s=0.0)
    use = cpu_use([serial, threaded], processes=1, cores=2)
    assert use == CpuUse(wall_s=4.0, cpu_s=3.6, processes=1, cores=2, hosts=3)
    assert use.share == pytest.approx(0.9)
    # A records file's phase was never measured; a list all in the serial sample has no
    # threaded phase.
    assert cpu_use([Phase("threaded", 4, 4.0, tally)], processes=1, cores=2) is None
    assert cpu_use([serial], processes=1, cores=2) is None


def test_the_bench_says_from_which_jobs_the_client_was_cpu_bound() -> None:
    def point(jobs: int, wall: float, cpu: float) -> Point:
        verdict = cpu_verdict(CpuUse(wall_s=wall, cpu_s=wall * cpu, cores=2, hosts=64),
                              ideal_s=wall / 4, bottleneck=f"--jobs {jobs}")  # fmt: skip
        return Point(jobs=jobs, fetched=100, wall_s=wall, requests_per_s=100 / wall,
                     ideal_s=wall / 4, efficiency=0.25, client_cpu=cpu, failed=0,
                     cpu=verdict)  # fmt: skip

    points = [point(1, 100.0, 0.05), point(16, 8.0, 0.5), point(64, 4.0, 0.9)]
    points.append(point(256, 5.0, 0.95))
    assert cpu_line(points) == (
        "cpu: CPU-bound from --jobs 64; at --jobs 64, the fastest: client CPU was the "
        "bottleneck: 90% of one core in 1 process; --processes 2 (this machine's cores) would "
        "help"
    )
    assert cpu_line(points[:2]) == (
        "cpu: at --jobs 16, the fastest: not CPU-bound (50% of one core in 1 process): more "
        "processes would not help; the run took 4.00x its ideal (set by latency at --jobs 16)"
    )
