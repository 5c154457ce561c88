"""Wall time against the bound for 2,000 URLs over 20 loopback hosts (50 ms), jobs 64, per-host 4.

    python benchmarks/core_bound.py [--repeat 3]

bound = max(N·L/jobs, max over hosts of n_host·L/per_host), with L the latency measured in
the run (urlfleet's report computes it as ``ideal_s``). "even" spreads the URLs evenly;
"skewed" puts half of them on one host, at the top of the list (a host-sorted list).
Prints the median wall, the bound and their ratio, and the politeness the server saw.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from urlfleet.config import FetchConfig  # noqa: E402
from urlfleet.loopback import LoopbackProcess, ServerSpec, host_loads  # noqa: E402
from urlfleet.report.summary import build_report  # noqa: E402
from urlfleet.run.runner import Run  # noqa: E402

N, HOSTS, LATENCY, JOBS, PER_HOST = 2000, 20, 0.05, 64, 4


def lists(bases: list[str], token: str) -> dict[str, list[str]]:
    even = [f"{bases[i % HOSTS]}/page/{token}/e{i}" for i in range(N)]
    skewed = [f"{bases[0]}/page/{token}/s{i}" for i in range(N // 2)]
    skewed += [f"{bases[1 + i % (HOSTS - 1)]}/page/{token}/s{i}" for i in range(N // 2, N)]
    return {"even": even, "skewed": skewed}


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--repeat", type=int, default=3)
    args = options.parse_args()
    config = FetchConfig(jobs=JOBS, per_host=PER_HOST, keep_content=False)
    with LoopbackProcess(ServerSpec(hosts=HOSTS, latency=LATENCY)) as server:
        rows = {"even": [], "skewed": []}  # type: dict[str, list[tuple[float, float, int, float]]]
        for _ in range(args.repeat):
            token = uuid.uuid4().hex[:8]
            for name, urls in lists(server.base_urls, token).items():
                run = Run(config)
                assert all(result.ok for result in run.results(urls))
                report = build_report(run.phases, config)
                loads = host_loads(server.records(contains=f"{token}/{name[0]}"))
                busiest = max(load.max_in_flight for load in loads.values())
                rows[name].append((report.wall_s, report.ideal_s or 0.0, busiest, 0.0))
    print(f"{N} URLs, {HOSTS} hosts, {LATENCY * 1000:.0f} ms, --jobs {JOBS} --per-host {PER_HOST};"
          f" median of {args.repeat}")  # fmt: skip
    for name, runs in rows.items():
        wall = statistics.median(r[0] for r in runs)
        bound = statistics.median(r[1] for r in runs)
        print(f"  {name:7} wall {wall:6.2f} s  bound {bound:6.2f} s  wall/bound {wall / bound:5.2f}"
              f"  max in flight per host {max(r[2] for r in runs)}")  # fmt: skip


if __name__ == "__main__":
    main()
