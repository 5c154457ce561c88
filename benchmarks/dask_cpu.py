"""One process or a dask cluster, on the "cpu" workload: ``python benchmarks/dask_cpu.py``.

The list is CPU-bound on purpose (0 ms latency, 4 hosts, jobs 64, per_host 4): one process
tops out where requests' client CPU fills its one core (the GIL), and the question is how much
a ``local:N`` cluster of N processes adds on this machine. Both are measured in the same run,
interleaved, against the same loopback servers (each in a process of its own), with fresh URLs
every time. CPU is counted in every process involved: the client, the dask workers and the
servers, so the table shows which one the machine's cores went to.

    python benchmarks/dask_cpu.py                      # 5,000 URLs, local:2, 2 servers
    python benchmarks/dask_cpu.py --servers 1          # every host on one server process
    python benchmarks/dask_cpu.py --workers 3 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parent.parent / "src"  # so a checkout works without an install
sys.path.insert(0, str(SRC))


@dataclass(frozen=True)
class Sample:
    """One timed run: wall time, and CPU seconds of each kind of process over it."""

    wall_s: float
    ok: int
    client_cpu_s: float  # this process (for dask: the client, dispatching and collecting)
    workers_cpu_s: float  # the dask workers (0 for the single process)
    server_cpu_s: float
    max_in_flight: int


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for name in [n for n in os.environ if n.lower().endswith("_proxy")]:
        del os.environ[name]  # loopback traffic must not go through a developer's proxy
    from urlfleet.api import make_config
    from urlfleet.distributed import client_for

    config = make_config(jobs=args.jobs, per_host=args.per_host, keep_content=False)
    with ExitStack() as stack:
        servers = start_servers(stack, args.hosts, args.servers)
        client, close = client_for(f"local:{args.workers}")
        stack.callback(close)
        bases = [base for server in servers for base in server.base_urls]
        runs: dict[str, Callable[[list[str]], Sample]] = {
            "one process": lambda urls: measure(servers, urls, lambda: single(urls, config)),
            f"dask local:{args.workers}": lambda urls: measure(
                servers, urls, lambda: on_dask(urls, config, client, args.shard_size), client
            ),
        }
        for run in runs.values():  # warm up: imports, first connections, worker start
            run(make_urls(bases, 200))
        samples: dict[str, list[Sample]] = {name: [] for name in runs}
        for _ in range(args.repeat):  # interleaved, so drift in the machine's load hits both
            for name, run in runs.items():
                samples[name].append(run(make_urls(bases, args.urls)))
        report(samples, args)
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--urls", type=int, default=5000)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--servers", type=int, default=2, help="server processes (hosts split)")
    parser.add_argument("--workers", type=int, default=2, help="dask worker processes")
    parser.add_argument("--jobs", type=int, default=64)
    parser.add_argument("--per-host", type=int, default=4)
    parser.add_argument("--shard-size", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=2)
    return parser.parse_args(argv)


def start_servers(stack: ExitStack, hosts: int, count: int) -> list[Any]:
    from urlfleet.loopback import LoopbackProcess, ServerSpec

    sizes = [hosts // count + (i < hosts % count) for i in range(count)]
    return [stack.enter_context(LoopbackProcess(ServerSpec(hosts=n, latency=0.0))) for n in sizes]


def make_urls(bases: list[str], count: int) -> list[str]:
    token = uuid.uuid4().hex[:10]  # fresh URLs: nothing is answered from a cache
    return [f"{bases[i % len(bases)]}/page/{token}/{i}" for i in range(count)]


def single(urls: list[str], config: Any) -> int:
    import urlfleet

    return sum(result.ok for result in urlfleet.fetch(urls, config))


def on_dask(urls: list[str], config: Any, client: Any, shard_size: int) -> int:
    from urlfleet.distributed import fetch_distributed

    results = fetch_distributed(urls, config, client=client, shard_size=shard_size)
    return sum(result.ok for result in results)


def measure(
    servers: list[Any], urls: list[str], fetch: Callable[[], int], client: Any = None
) -> Sample:
    """Time ``fetch`` and count the CPU every process spent meanwhile."""
    from urlfleet.loopback import host_loads

    def workers_cpu() -> float:
        return sum(client.run(time.process_time).values()) if client is not None else 0.0

    server_before, workers_before = server_cpu(servers), workers_cpu()
    cpu_before, started = time.process_time(), time.monotonic()
    ok = fetch()
    wall = time.monotonic() - started
    client_cpu = time.process_time() - cpu_before
    workers, servers_cpu = workers_cpu() - workers_before, server_cpu(servers) - server_before
    token = urls[0].split("/")[-2]
    loads = [load for s in servers for load in host_loads(s.records(contains=token)).values()]
    for server in servers:
        server.clear()
    in_flight = max(load.max_in_flight for load in loads)
    return Sample(wall, ok, client_cpu, workers, servers_cpu, in_flight)


def server_cpu(servers: list[Any]) -> float:
    return float(sum(server.cpu_seconds() for server in servers))


def report(samples: dict[str, list[Sample]], args: argparse.Namespace) -> None:
    print(f"{args.urls} URLs over {args.hosts} hosts on {args.servers} server process(es), "
          f"0 ms, jobs {args.jobs}, per_host {args.per_host}, shard_size {args.shard_size}; "
          f"{os.cpu_count()} cores; median of {args.repeat}")  # fmt: skip
    print(f"{'':16} {'wall_s':>7} {'req/s':>7} {'speedup':>7} {'client':>7} {'workers':>7} "
          f"{'server':>7} {'total':>7} {'ok':>6} {'inflight':>8}")  # fmt: skip
    base: float | None = None
    for name, runs in samples.items():
        wall = statistics.median(s.wall_s for s in runs)
        base = base or wall
        cores = {k: statistics.median(getattr(s, k) / s.wall_s for s in runs)
                 for k in ("client_cpu_s", "workers_cpu_s", "server_cpu_s")}  # fmt: skip
        print(f"{name:16} {wall:7.2f} {args.urls / wall:7.0f} {base / wall:7.2f}x "
              f"{cores['client_cpu_s']:6.0%} {cores['workers_cpu_s']:7.0%} "
              f"{cores['server_cpu_s']:7.0%} {sum(cores.values()):7.0%} "
              f"{min(s.ok for s in runs):6} {max(s.max_in_flight for s in runs):8}")  # fmt: skip
    print("CPU columns: CPU seconds per wall second (100% = one core) of this process, of all "
          "dask workers, of all server processes, and their total.")  # fmt: skip
    explain(samples, args)


def explain(samples: dict[str, list[Sample]], args: argparse.Namespace) -> None:
    """Say in words what bounded the cluster's speedup, from the CPU figures."""
    (one, *_), (dask, *_) = samples.values()  # first repeat of each: the story, not the median
    cores = os.cpu_count() or 1
    used = (dask.client_cpu_s + dask.workers_cpu_s + dask.server_cpu_s) / dask.wall_s
    per_request = [(s.client_cpu_s + s.workers_cpu_s) / args.urls * 1000 for s in (one, dask)]
    print(f"\nOne process is GIL-bound: {one.client_cpu_s / one.wall_s:.0%} of a core at "
          f"{per_request[0]:.2f} ms of client CPU per request. The cluster spends "
          f"{per_request[1]:.2f} ms per request (workers and client together), so its speedup "
          f"can only come from more cores: at most min(workers, cores) = "
          f"{min(args.workers, cores)}x, less what the client "
          f"({dask.client_cpu_s / dask.wall_s:.0%}) and the server "
          f"({dask.server_cpu_s / dask.wall_s:.0%}) take from the same "
          f"{cores} cores. All processes together used {used:.0%} of {cores * 100}%; what is "
          f"missing went to other processes on this shared machine.")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
