"""Peak memory of a run over as many hosts as URLs: 10,000 vs 100,000 one-URL hosts.

    python benchmarks/many_hosts_memory.py [SMALL LARGE]

Every URL has a host name of its own (``h{i}.test``), resolved to 127.0.0.1 by a patched
``socket.getaddrinfo`` and answered by one loopback host on one port (it answers any Host
header). Each size runs in a fresh child process (a library ``Run`` at -j 64, records
tallied and the report built, as the CLI does), which prints its peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss``) and what the run still holds per host at its end.
Flat memory means a ratio near 1 between the two peaks, though the list is 10x longer.
"""

from __future__ import annotations

import json
import resource
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from urlfleet.config import FetchConfig  # noqa: E402
from urlfleet.loopback import LoopbackProcess, ServerSpec  # noqa: E402
from urlfleet.report.summary import build_report  # noqa: E402
from urlfleet.run.runner import Run  # noqa: E402


def child(count: int, port: int) -> None:
    original = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".test"):
            host = "127.0.0.1"
        return original(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    token = uuid.uuid4().hex[:8]
    urls = (f"http://h{i}.test:{port}/page/{token}/{i}" for i in range(count))
    config = FetchConfig(jobs=64, keep_content=False, retries=0)
    run = Run(config)
    started, ok = time.monotonic(), 0
    for result in run.results(urls):
        ok += result.ok
    report = build_report(run.phases, config, paused=run.paused_seconds())
    politeness = run.politeness
    assert politeness is not None and run._frontier is not None
    print(json.dumps({
        "urls": count, "ok": ok, "report_urls": report.urls,
        "seconds": round(time.monotonic() - started, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "frontier_hosts": len(run._frontier._hosts),
        "report_rows": len(run.phases[0].tally.hosts),
        "robots": len(politeness._robots), "memories": len(politeness._memories),
    }))  # fmt: skip


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), int(sys.argv[3]))
        return
    sizes = [int(a) for a in sys.argv[1:3]] if len(sys.argv) >= 3 else [10_000, 100_000]
    with LoopbackProcess(ServerSpec(hosts=1, latency=0.0)) as server:
        port = server.base_urls[0].rsplit(":", 1)[1]
        peaks = []
        for count in sizes:
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(count), port],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            figures = json.loads(done.stdout)
            print(figures)
            peaks.append(figures["peak_rss_mb"])
    print(f"peak RSS {peaks[0]} MB at {sizes[0]:,} URLs, {peaks[1]} MB at {sizes[1]:,} URLs: "
          f"ratio {peaks[1] / peaks[0]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
