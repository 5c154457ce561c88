"""What threads cost a request: CPU and context switches per request at 1, 4, 16 and 64 threads.

    python benchmarks/thread_cost.py [--urls 4000] [--repeat 3]

The ``cpu`` list of run.py in small: ``--urls`` URLs over 4 loopback hosts at 0 ms, ``--per-host
4``, after a warm-up of 500. Each thread count runs ``--repeat`` times, the counts taking turns
so that the machine's drift falls on all of them; the medians are printed. CPU is this
process's (every thread), from ``getrusage``, as are the voluntary context switches: a thread
that waits for a socket, a lock or the GIL gives up its core once.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from urlfleet.config import FetchConfig  # noqa: E402
from urlfleet.loopback import LoopbackProcess, ServerSpec  # noqa: E402
from urlfleet.run.runner import Run  # noqa: E402

HOSTS = 4
WARM_UP = 500
THREADS = (1, 4, 16, 64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cpu_ms: dict[int, list[float]] = {n: [] for n in THREADS}
    switches: dict[int, list[float]] = {n: [] for n in THREADS}
    with LoopbackProcess(ServerSpec(hosts=HOSTS, latency=0.0)) as server:
        for _ in range(args.repeat):
            for threads in THREADS:
                token = uuid.uuid4().hex[:8]
                urls = [f"{server.base_urls[i % HOSTS]}/page/{token}/{i}"
                        for i in range(WARM_UP + args.urls)]  # fmt: skip
                config = FetchConfig(jobs=threads, per_host=4, keep_content=False)
                sum(result.ok for result in Run(config).results(urls[:WARM_UP]))
                before = resource.getrusage(resource.RUSAGE_SELF)
                ok = sum(result.ok for result in Run(config).results(urls[WARM_UP:]))
                after = resource.getrusage(resource.RUSAGE_SELF)
                if ok != args.urls:
                    raise SystemExit(f"{threads} threads: {ok}/{args.urls} fetched")
                cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                cpu_ms[threads].append(cpu / args.urls * 1000)
                switches[threads].append((after.ru_nvcsw - before.ru_nvcsw) / args.urls)
    print(f"{args.urls} URLs over {HOSTS} loopback hosts, 0 ms; medians of {args.repeat}")
    print("threads  CPU ms/request  vs 1 thread  context switches/request")
    alone = statistics.median(cpu_ms[1])
    for threads in THREADS:
        cpu = statistics.median(cpu_ms[threads])
        print(f"{threads:7}  {cpu:14.3f}  {cpu / alone:10.2f}x  "
              f"{statistics.median(switches[threads]):24.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
