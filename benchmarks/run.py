"""urlfleet's benchmarks in one command: ``python benchmarks/run.py [--quick] [--only NAME]``.

Every workload runs against the loopback server, in a process of its own, and every single
measurement (urlfleet, or a reference) runs in a fresh child process, so one point's peak RSS
and CPU time are not another's. The references, measured in the same run:

* ``serial``: a plain loop over one ``requests.Session`` on a sample of the list, extrapolated;
* ``pool``: a bare ``ThreadPoolExecutor`` with one Session per thread and no politeness, the
  CPU floor of any requests-based fetcher;
* ``aiohttp``: one ``aiohttp.ClientSession`` driven by as many coroutines as urlfleet has
  threads, its connector held to the same per-host limit (only with ``urlfleet[bench]``).

The server's own records check urlfleet's politeness (most requests in flight per host, shortest
gap between request starts), and the server's CPU time shows it is not the bottleneck.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import importlib.util
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"  # so a checkout works without `pip install -e .`
RESULTS = HERE / "results.json"
CHILD_TIMEOUT = 900.0
DEFAULT_WINDOW = 10_000  # urlfleet.config.DEFAULT_WINDOW: memory is flat only past it
# Named hosts: h{i}.bench.test, resolved to 127.0.0.1 inside the children, all answered by one
# loopback port (the server answers any Host header; its records keep the header, so the
# politeness per name is read from there).
NAME_SUFFIX = ".bench.test"
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")
BENCH_EXTRA = "pip install 'urlfleet[bench]'"


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
    references: tuple[str, ...] = ("pool", "serial")
    pool_jobs: tuple[int, ...] = (64, 256)
    repeat: int = 3
    named: bool = False  # hosts are names (h{i}.bench.test) on one port, not ports of 127.0.0.1
    tls: bool = False  # HTTPS, with a certificate for *.bench.test from a throwaway CA
    urls_per_host: int | None = None  # hosts follow the list's size (quick lists are smaller)

    def host_count(self, urls: int) -> int:
        return max(1, urls // self.urls_per_host) if self.urls_per_host else self.hosts

    def layout(self, urls: int) -> list[tuple[int, int, int]]:
        """``[(first host, hosts, count), ...]`` in list order; URLs cycle over a block's hosts.

        Ranges rather than lists of indexes, so 20,000 hosts cost a child nothing to be told."""
        hosts = self.host_count(urls)
        if not self.hot:
            return [(0, hosts, urls)]
        # n_h * L / P = (N - n_h) * L / C  <=>  n_h = N * P / (C + P), with C = the first jobs
        block = round(urls * self.per_host / (self.jobs[0] + self.per_host))
        return [(0, 1, block), (1, hosts - 1, urls - block)]


HTTPS = Workload(
    name="https",
    about="2,000 HTTPS URLs over 200 host names, 50 ms, per_host 2",
    hosts=200,
    latency=0.05,
    urls=2000,
    quick_urls=1000,
    per_host=2,
    references=("pool", "aiohttp"),
    named=True,
    tls=True,
)

# Long and fast enough to be CPU-bound for one process: where --processes pays.
SCALE = replace(
    HTTPS,
    name="scale",
    about="10,000 HTTPS URLs over 1,000 host names, 50 ms, per_host 2, jobs 256",
    hosts=1000,
    urls=10_000,
    quick_urls=2000,
    jobs=(256,),
    references=("aiohttp",),
    repeat=1,
)

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
    HTTPS,
    replace(HTTPS, name="https-plain", about="the https list over plain HTTP", tls=False),
    SCALE,
    replace(SCALE, name="scale-plain", about="the scale list over plain HTTP", tls=False),
    Workload(
        name="hosts-20k",
        about="20,000 URLs over 4,000 host names, 0 ms",
        hosts=4000,
        latency=0.0,
        urls=20_000,
        quick_urls=2000,
        jobs=(64,),
        references=(),
        repeat=1,
        named=True,
        urls_per_host=5,
    ),
    Workload(
        name="hosts-100k",
        about="100,000 URLs over 20,000 host names, 0 ms",
        hosts=20_000,
        latency=0.0,
        urls=100_000,
        quick_urls=10_000,
        jobs=(64,),
        pool_jobs=(64,),
        references=("pool",),
        repeat=1,
        named=True,
        urls_per_host=5,
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
        references=(),
        repeat=1,
    ),
)


# -- the child: one measurement in a fresh process ---------------------------------------------


# urlfleet with --processes auto (as `urlfleet fetch` runs it: in this process when auto
# picks one, else one process per usable core), and with --processes 2 whatever the list's
# length, beside "urlfleet", one process; on the workloads that have an aiohttp reference.
AUTO_IMPL = "uf-auto"
TWO_IMPL = "uf-2p"
PROCESS_IMPLS = (AUTO_IMPL, TWO_IMPL)
OUR_IMPLS = ("urlfleet", *PROCESS_IMPLS)
HOSTMAP = HERE.parent / "tests" / "hostmap"  # names resolved in worker processes too

CLIENT_MODULES = {
    "urlfleet": "urlfleet.run.runner",
    AUTO_IMPL: "urlfleet.distributed.local",
    TWO_IMPL: "urlfleet.distributed.local",
    "pool": "requests",
    "serial": "requests",
    "aiohttp": "aiohttp",
}


def child_main(spec: dict[str, Any]) -> dict[str, Any]:
    """Fetch the list ``spec`` describes the way ``spec["kind"]`` says; measurements as a dict."""
    kind = spec["kind"]
    if spec.get("named"):
        _resolve_names_to_loopback()
    urls = generate_urls(spec)
    if kind == "serial":
        urls = itertools.islice(urls, 0, None, max(1, spec["urls"] // spec["sample"]))
    measure = {
        "urlfleet": _child_urlfleet,
        AUTO_IMPL: _child_urlfleet,
        TWO_IMPL: _child_urlfleet,
        "pool": _child_pool,
        "serial": _child_serial,
        "aiohttp": _child_aiohttp,
    }[kind]
    # Imports happen before the clock starts: a run is timed, not the interpreter's start.
    importlib.import_module(CLIENT_MODULES[kind])
    cpu_before, started = _cpu_s(), time.monotonic()
    out = measure(urls, spec)
    out["wall_s"] = time.monotonic() - started
    out["cpu_s"] = _cpu_s() - cpu_before
    out["peak_rss_kb"] = _peak_rss_kb()
    return out


def _cpu_s() -> float:
    # This process's CPU and that of its children once ended (uf-auto's worker processes,
    # which end before the clock stops).
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _resolve_names_to_loopback() -> None:
    """Make ``*.bench.test`` resolve to 127.0.0.1 in this process, every other name as before.

    A patched ``socket.getaddrinfo`` rather than tests/hostmap's name list: 20,000 names do
    not fit in one environment variable (Linux caps one at 128 KiB). requests (through
    urllib3) and aiohttp's ThreadedResolver (through ``loop.getaddrinfo``) both look the
    function up at every call, so both go through this one."""
    import socket

    original = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode("ascii", "replace") if isinstance(host, bytes) else host
        if isinstance(name, str) and name.rstrip(".").lower().endswith(NAME_SUFFIX):
            host = "127.0.0.1"
        return original(host, port, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo


def generate_urls(spec: dict[str, Any]) -> Iterator[str]:
    """The list, made lazily: a huge list must never sit in the child's memory."""
    token, index = spec["token"], 0
    if spec.get("named"):
        scheme, port = spec["scheme"], spec["port"]

        def base(host: int) -> str:
            return f"{scheme}://h{host}{NAME_SUFFIX}:{port}"
    else:
        bases = spec["bases"]

        def base(host: int) -> str:
            return str(bases[host])

    for first, hosts, count in spec["layout"]:
        for k in range(count):
            yield f"{base(first + k % hosts)}/page/{token}/{index}"
            index += 1


def _child_urlfleet(urls: Iterator[str], spec: dict[str, Any]) -> dict[str, Any]:
    from urlfleet.config import FetchConfig
    from urlfleet.report.summary import build_report
    from urlfleet.run.runner import Run

    config = FetchConfig(
        jobs=spec["jobs"],
        per_host=spec["per_host"],
        delay=spec["delay"],
        keep_content=False,
        ca_bundle=spec.get("ca_bundle"),
    )
    processes = 1
    if spec["kind"] in PROCESS_IMPLS:
        from urlfleet.run.cores import choose_processes

        asked = "auto" if spec["kind"] == AUTO_IMPL else 2
        processes = choose_processes(asked, size=spec["urls"]).count
    if processes > 1:  # as `urlfleet fetch` does: one process runs here, not in a worker
        from urlfleet.distributed.local import processes_run

        if spec.get("named"):
            _names_for_workers(spec)
        with processes_run(config, processes, size=spec["urls"]) as shard_run:
            ok = sum(result.ok for result in shard_run.results(urls))
        report = build_report(shard_run.phases, config)
        return _urlfleet_out(report, ok) | {"processes": processes}
    run = Run(config)
    ok = sum(result.ok for result in run.results(urls))
    report = build_report(run.phases, config)
    return _urlfleet_out(report, ok) | {"processes": 1}


def _urlfleet_out(report: Any, ok: int) -> dict[str, Any]:
    return {
        "urls": report.urls,
        "ok": ok,
        "failures": report.failures,
        "requests": report.requests,
        "ideal_s": report.ideal_s,
        "threads": report.jobs,
    }


def _names_for_workers(spec: dict[str, Any]) -> None:
    # Worker processes do not inherit the patched getaddrinfo: tests/hostmap's sitecustomize
    # gives them the list's names (a few hundred fit in one environment variable).
    names = {f"h{first + k}{NAME_SUFFIX}": "127.0.0.1" for first, hosts, _ in spec["layout"]
             for k in range(hosts)}  # fmt: skip
    os.environ["URLFLEET_TEST_HOSTS"] = json.dumps(names)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HOSTMAP), os.environ.get("PYTHONPATH", "")])


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
            session.verify = spec.get("ca_bundle") or True
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
        session.verify = spec.get("ca_bundle") or True
        return _tally([_timed_get(session, url) for url in urls], 1)


def _child_aiohttp(urls: Iterator[str], spec: dict[str, Any]) -> dict[str, Any]:
    """A bounded asyncio client: ``jobs`` coroutines share the list and one ClientSession whose
    connector allows ``jobs`` connections, ``per_host`` to a host: urlfleet's politeness."""
    import asyncio
    import ssl

    import aiohttp

    jobs, per_host = spec["jobs"], spec["per_host"]
    outcomes: list[tuple[bool, float]] = []

    async def fetch_all() -> None:
        tls = ssl.create_default_context(cafile=spec.get("ca_bundle"))
        connector = aiohttp.TCPConnector(
            limit=jobs, limit_per_host=per_host, ssl=tls, resolver=aiohttp.ThreadedResolver()
        )
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def worker() -> None:
                for url in urls:  # one event loop thread: the generator is never entered twice
                    started = time.monotonic()
                    try:
                        async with session.get(url) as response:
                            await response.read()
                            ok = response.status < 400
                    except (aiohttp.ClientError, asyncio.TimeoutError):
                        ok = False
                    outcomes.append((ok, time.monotonic() - started))

            await asyncio.gather(*(worker() for _ in range(jobs)))

    asyncio.run(fetch_all())
    return _tally(outcomes, jobs)


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
    names_seen: int | None = None  # named hosts: how many names the server saw (Host header)
    hosts: int = 0  # hosts (names) in the list
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
    # requests lets REQUESTS_CA_BUNDLE override a Session's verify: every client must trust
    # (and load) the bundle the benchmark gives it, not the developer's.
    for name in CA_VARIABLES:
        env.pop(name, None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    return env


def measure_once(
    server: Any, workload: Workload, urls: int, impl: str, jobs: int, tls: TlsFiles | None
) -> dict[str, Any]:
    """One child run against ``server``; adds the server's view (CPU, connections, politeness)."""
    token = uuid.uuid4().hex[:10]
    spec = {
        "kind": impl,
        "layout": workload.layout(urls),
        "token": token,
        "jobs": jobs,
        "per_host": workload.per_host,
        "delay": workload.delay,
        "urls": urls,
        "sample": workload.serial_sample,
        "named": workload.named,
        "ca_bundle": tls.ca_bundle if tls else None,
    }
    if workload.named:
        scheme, _, port = server.base_urls[0].rpartition(":")
        spec |= {"scheme": scheme.partition(":")[0], "port": int(port)}
    else:
        spec["bases"] = server.base_urls
    before = server.stats()
    out = run_child(spec)
    after = server.stats()
    out["server_cpu_s"] = after["cpu_s"] - before["cpu_s"]
    out["connections"] = after["connections"] - before["connections"] - 1  # our stats call
    if impl in (*OUR_IMPLS, "aiohttp") or workload.named:
        out |= server_view(server.records(contains=token), workload, urls, spec)
    if out["ok"] < out["urls"]:
        failures = out.get("failures") or "see the child"
        print(f"{workload.name} {impl} {jobs}: {out['urls'] - out['ok']} failed: {failures}",
              file=sys.stderr, flush=True)  # fmt: skip
    server.clear()  # the server keeps every record: forget them, or a huge run grows it
    return out


def server_view(
    records: list[Any], workload: Workload, urls: int, spec: dict[str, Any]
) -> dict[str, Any]:
    """Politeness per host as the server saw it and, for named hosts, the names it was asked
    for. Named hosts share one port, so there a host is the request's Host header."""
    from urlfleet.loopback import host_loads

    view: dict[str, Any] = {}
    if workload.named:
        records = [replace(r, host=r.headers.get("host", "?")) for r in records]
        expected = {
            f"h{first + k}{NAME_SUFFIX}:{spec['port']}"
            for first, hosts, _ in spec["layout"]
            for k in range(hosts)
        }
        seen = {record.host for record in records}
        view["names_seen"] = len(seen & expected)
        view["names_other"] = len(seen - expected)
    if spec["kind"] in (*OUR_IMPLS, "aiohttp"):
        loads = host_loads(records).values()
        view["max_in_flight"] = max((load.max_in_flight for load in loads), default=0)
        view["min_gap_s"] = min((load.min_gap for load in loads), default=None)
    return view


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
        # The worst repeat: every repeat must reach every name (and no other).
        names_seen=min(
            (r["names_seen"] - r["names_other"] for r in runs if "names_seen" in r), default=None
        ),
        hosts=workload.host_count(urls),
        repeats=len(runs),
        walls=[round(r["wall_s"] * scale, 3) for r in runs],
    )


def plan(workload: Workload, references: tuple[str, ...]) -> list[tuple[str, int]]:
    """The measurements of one workload, in the order one repeat makes them."""
    points = [("urlfleet", jobs) for jobs in workload.jobs]
    if "aiohttp" in references:
        points += [(impl, workload.jobs[0]) for impl in PROCESS_IMPLS]
    for impl in references:
        points += [("serial", 1)] if impl == "serial" else [(impl, j) for j in workload.pool_jobs]
    # serial last: it is the slowest, and once per workload is enough
    return sorted(points, key=lambda point: point[0] == "serial")


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the server's certificate and key, and the bundle the clients trust."""

    cert: str
    key: str
    ca_bundle: str


def make_tls_files(directory: Path) -> TlsFiles | None:
    """A throwaway CA and one certificate for ``*.bench.test``; None without trustme.

    The clients trust that CA alone. A path given as ``verify`` is loaded again for every new
    connection by requests (urllib3), while its default, certifi's bundle, is loaded once
    (requests 2.32 and later preload it): certifi plus this CA as a path would charge every
    requests-based client ~60 ms of CPU per connection here that real sites never cost it."""
    try:
        import trustme
    except ImportError:
        return None
    ca = trustme.CA()
    leaf = ca.issue_cert("*" + NAME_SUFFIX)
    cert, key, bundle = (directory / name for name in ("cert.pem", "key.pem", "ca.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(bundle))
    return TlsFiles(str(cert), str(key), str(bundle))


def have_aiohttp() -> bool:
    return importlib.util.find_spec("aiohttp") is not None


@functools.cache
def say_once(message: str) -> None:
    """One line on stderr, once a run however many workloads it concerns."""
    print(message, file=sys.stderr, flush=True)


def run_workload(workload: Workload, *, quick: bool, repeat: int | None) -> list[Row]:
    """Start the server, make every measurement ``repeat`` times (interleaved), summarize."""
    from urlfleet.loopback import LoopbackProcess, ServerSpec

    urls = workload.quick_urls if quick else workload.urls
    repeats = 1 if quick else (repeat or workload.repeat)
    references = workload.references
    if "aiohttp" in references and not have_aiohttp():
        say_once(f"aiohttp is not installed: no aiohttp reference ({BENCH_EXTRA})")
        references = tuple(impl for impl in references if impl != "aiohttp")
    points = plan(workload, references)
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {point: [] for point in points}
    with tempfile.TemporaryDirectory(prefix="urlfleet-bench-") as scratch:
        tls = make_tls_files(Path(scratch)) if workload.tls else None
        if workload.tls and tls is None:
            say_once(f"trustme is not installed: no https workload ({BENCH_EXTRA})")
            return []
        server_spec = ServerSpec(
            # Named hosts: one port answers every name; the Host header tells them apart.
            hosts=1 if workload.named else workload.hosts,
            latency=workload.latency,
            tls_cert=tls.cert if tls else None,
            tls_key=tls.key if tls else None,
        )
        with LoopbackProcess(server_spec) as server:
            # Interleaved, so drift in the machine's load hits urlfleet and the references alike.
            for _ in range(repeats):
                for impl, jobs in points:
                    if impl == "serial" and runs[impl, jobs]:
                        continue  # an extrapolated estimate; once is enough, and it is slow
                    got = measure_once(server, workload, urls, impl, jobs, tls)
                    runs[impl, jobs].append(got)
    return [summarize(workload, urls, impl, jobs, got) for (impl, jobs), got in runs.items()]


# -- the report --------------------------------------------------------------------------------

HEADER = (
    f"{'workload':<11} {'impl':<9} {'jobs':>4} {'urls':>7} {'wall_s':>8} {'ideal_s':>8} "
    f"{'eff':>5} {'req/s':>7} {'cpu_ms/req':>10} {'cli_cpu':>7} {'rss_MB':>7} "
    f"{'srv_cpu':>7} {'conns':>6}  politeness (server's view)"
)


LEGEND = """
* serial: a sample fetched one at a time, times extrapolated to the whole list.
names: the host names the server was asked for (Host header), of those in the list.
eff = ideal_s / wall_s. cli_cpu, srv_cpu: CPU seconds per wall second of the fetching process
and of the server process (100% = one core). Figures are medians over the repeats."""


def format_row(row: Row, workload: Workload) -> str:
    """One line of the table; serial is starred (a sample, extrapolated)."""
    impl = row.impl + ("*" if row.fetched < row.urls else "")
    ideal = f"{row.ideal_s:8.2f}" if row.ideal_s is not None else f"{'-':>8}"
    eff = f"{row.efficiency:5.2f}" if row.efficiency is not None else f"{'-':>5}"
    return (
        f"{row.workload:<11} {impl:<9} {row.jobs:>4} {row.urls:>7} {row.wall_s:8.2f} {ideal} "
        f"{eff} {row.requests_per_s:7.0f} {row.cpu_ms_per_request:10.3f} "
        f"{row.client_cpu:7.0%} {row.peak_rss_mb:7.1f} {row.server_cpu:7.0%} "
        f"{row.connections:>6}  {politeness(row, workload)}"
    )


def politeness(row: Row, workload: Workload) -> str:
    """``in flight 4/4 ok, gap 0.105 s >= 0.1 ok`` for urlfleet rows (aiohttp's too, whose
    connector holds the same limit); '-' for the others. Named hosts add the names seen."""
    if row.max_in_flight is None:
        text = "- (no politeness)" if row.impl == "pool" else "-"
    else:
        text = f"in flight {row.max_in_flight}/{workload.per_host}"
        text += f" {_ok(polite_in_flight(row, workload))}"
        if workload.delay > 0 and row.min_gap_s is not None:
            text += f", gap {row.min_gap_s:.3f} s >= {workload.delay:g}"
            text += f" {_ok(polite_gap(row, workload))}"
    if row.names_seen is not None:
        text += f"; names {row.names_seen}/{row.hosts} {_ok(row.names_seen == row.hosts)}"
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
                    f"cpu: CPU/request at jobs {jobs} <= 0.6 x bare pool",
                    f"{ratio:.3f} ({ours.cpu_ms_per_request:.3f} vs "
                    f"{pool.cpu_ms_per_request:.3f} ms)",
                    ratio <= 0.6,
                )
            )
    checks += _https_checks(find)
    checks += _hosts_checks(find)
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
    for check in (_names_check(rows), _politeness_check(rows, by_name)):
        if check is not None:
            checks.append(check)
    return checks


def _https_checks(find: dict[tuple[str, str, int], Row]) -> list[Check]:
    ours = find.get(("https", "urlfleet", 64))
    if ours is None:
        return []
    target = "https: wall at jobs 64 <= aiohttp's (200 names, per_host 2)"
    theirs = find.get(("https", "aiohttp", 64))
    if theirs is None:
        return [Check(target, f"not measured: aiohttp is not installed ({BENCH_EXTRA})", None)]
    ratio = ours.wall_s / theirs.wall_s
    measured = f"{ratio:.3f} ({ours.wall_s:.2f} vs {theirs.wall_s:.2f} s)"
    checks = [Check(target, measured, ratio <= 1.0)]
    for name in ("https", "https-plain"):
        auto, aio = find.get((name, AUTO_IMPL, 64)), find.get((name, "aiohttp", 64))
        if auto is not None and aio is not None:
            ratio = auto.wall_s / aio.wall_s
            measured = f"{ratio:.3f} ({auto.wall_s:.2f} vs {aio.wall_s:.2f} s)"
            target = f"{name}: wall with --processes auto <= 0.8x aiohttp's at jobs 64"
            checks.append(Check(target, measured, ratio <= 0.8))
        one = find.get((name, "urlfleet", 64))
        if one is not None and aio is not None and name != "https":  # https: checked above
            ratio = one.wall_s / aio.wall_s
            measured = f"{ratio:.3f} ({one.wall_s:.2f} vs {aio.wall_s:.2f} s)"
            target = f"{name}: wall in one process <= aiohttp's at jobs 64"
            checks.append(Check(target, measured, ratio <= 1.0))
    return checks


def _hosts_checks(find: dict[tuple[str, str, int], Row]) -> list[Check]:
    checks = []
    ours, pool = find.get(("hosts-100k", "urlfleet", 64)), find.get(("hosts-100k", "pool", 64))
    if ours and pool:
        ratio = ours.requests_per_s / pool.requests_per_s
        checks.append(
            Check(
                f"hosts: req/s at jobs 64 >= 0.9 x bare pool ({ours.urls:,} URLs, "
                f"{ours.hosts:,} names)",
                f"{ratio:.3f} ({ours.requests_per_s:.0f} vs {pool.requests_per_s:.0f})",
                ratio >= 0.9,
            )
        )
    small, big = find.get(("hosts-20k", "urlfleet", 64)), find.get(("hosts-100k", "urlfleet", 64))
    if small and big:
        ratio = big.peak_rss_mb / small.peak_rss_mb
        checks.append(
            Check(
                f"hosts: peak RSS at {big.urls:,} URLs/{big.hosts:,} names <= 1.25 x at "
                f"{small.urls:,}/{small.hosts:,}",
                f"{ratio:.3f} ({big.peak_rss_mb:.1f} vs {small.peak_rss_mb:.1f} MB)",
                # Below the look-ahead window the whole list is held by design: not comparable.
                ratio <= 1.25 if small.urls >= DEFAULT_WINDOW else None,
            )
        )
    return checks


def _names_check(rows: list[Row]) -> Check | None:
    named = [row for row in rows if row.names_seen is not None]
    if not named:
        return None
    bad = [f"{row.workload} {row.impl}@{row.jobs}" for row in named if row.names_seen != row.hosts]
    measured = f"{len(named) - len(bad)}/{len(named)} rows reached every name and no other"
    if bad:
        measured += f"; not: {', '.join(bad)}"
    return Check("host names: every request by name (server's Host headers)", measured, not bad)


def _politeness_check(rows: list[Row], by_name: dict[str, Workload]) -> Check | None:
    ours = [row for row in rows if row.impl in OUR_IMPLS
            and row.max_in_flight is not None]  # fmt: skip
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
            f"{', '.join(w.name for w in WORKLOADS)} (or 'https', 'scale', 'hosts', 'huge')"
        )
    return chosen


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small lists, one repeat (~1 min)")
    parser.add_argument(
        "--only",
        metavar="NAME[,NAME]",
        help="even, hot, polite, cpu, https (and https-plain), hosts (hosts-20k, hosts-100k), "
        "huge (huge-10k, huge-100k)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        metavar="R",
        help="R repeats per measurement (default: 3, hosts and huge 1); more on a noisy machine",
    )
    parser.add_argument("--json", action="store_true", help=f"also write {RESULTS.name}")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser


if __name__ == "__main__":
    if str(SRC) not in sys.path:
        sys.path.insert(0, str(SRC))
    raise SystemExit(main())
