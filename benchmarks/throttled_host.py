"""One host answers 429 with Retry-After: 2; do the other hosts keep their full speed?

    python benchmarks/throttled_host.py

From the server's own records: when the next request reached the throttled host, and how
many requests the other four hosts got during the two seconds it was paused (their full
speed is 4 hosts x --per-host 2 / 50 ms = 160 requests/s).
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import urlfleet  # noqa: E402
from urlfleet.loopback import LoopbackProcess, ServerSpec, host_loads  # noqa: E402


def main() -> None:
    with LoopbackProcess(ServerSpec(hosts=5, latency=0.05)) as server:
        token = uuid.uuid4().hex[:8]
        throttled, *others = server.base_urls
        key = throttled.removeprefix("http://")
        urls = [f"{throttled}/retry-after/2/1/{token}/first"]
        urls += [f"{throttled}/page/{token}/t{i}" for i in range(10)]
        urls += [f"{base}/page/{token}/{i}" for base in others for i in range(100)]
        # One request at a time to the throttled host: none is in flight when the 429 comes.
        limits = {key: urlfleet.HostLimits(per_host=1)}
        results = urlfleet.fetch_all(urls, jobs=16, per_host=2, host_limits=limits)
        log = sorted(server.records(contains=token), key=lambda r: r.arrived)
    start = log[0].arrived
    told = next(r for r in log if r.status == 429)
    after = min(r.arrived for r in log if r.host == key and r.arrived > told.finished)
    during = [r for r in log if r.host != key and told.finished < r.arrived < told.finished + 2]
    print(f"429 with Retry-After: 2 answered at {told.finished - start:.3f} s; the next request"
          f" to that host arrived at {after - start:.3f} s (+{after - told.finished:.3f} s)")
    print(f"meanwhile the other 4 hosts got {len(during)} requests in those 2 s "
          f"({len(during) / 2:.0f}/s of a full 160/s)")
    loads = host_loads(log)
    print(f"all ok: {all(r.ok for r in results)}; most in flight to one host: "
          f"{max(load.max_in_flight for load in loads.values())}")


if __name__ == "__main__":
    main()
