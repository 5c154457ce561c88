"""Where a request's CPU goes: a CPU profile of one run, its own time summed per layer.

    python benchmarks/cpu_profile.py [--urls 3000] [--jobs 64] [--tls]

Fetches ``--urls`` URLs over 4 loopback hosts (0 ms latency: CPU-bound, as the ``cpu``
workload of run.py) with ``--jobs`` threads and ``--per-host 4``, after an unprofiled warm-up
of 500, under yappi's CPU clock in every thread. Each function's own time goes to its layer
(urllib3, requests, http.client, ``email``, ``urllib.parse``, C functions, each urlfleet
module...), and the layers are printed as shares of the whole. ``--tls`` serves HTTPS with a
certificate for 127.0.0.1 from a throwaway trustme CA, which the client trusts alone. Needs
yappi (and trustme for ``--tls``: ``pip install -e '.[bench]'``). yappi slows the run several-fold; the shares, not the
milliseconds, are the result.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from urlfleet.config import FetchConfig  # noqa: E402
from urlfleet.loopback import LoopbackProcess, ServerSpec  # noqa: E402
from urlfleet.run.runner import Run  # noqa: E402

HOSTS = 4
WARM_UP = 500
PACKAGES = ("urllib3", "requests", "joblib", "tenacity", "tqdm", "charset_normalizer", "idna")
STDLIB = {
    "http/client.py": "http.client",
    "/email/": "email (http.client's header parser)",
    "urllib/parse.py": "urllib.parse",
    "/socket.py": "socket",
    "/ssl.py": "ssl",
    "/_pyio.py": "io",
    "/threading.py": "threading",
    "/queue.py": "queue",
    "/contextlib.py": "contextlib",
    "_collections_abc": "collections.abc",
}


def layer(module: str, builtin: bool) -> str:
    """The layer a function belongs to, from its file's path."""
    if builtin:
        return "C functions (socket I/O, locks, str, dict...)"
    if "/urlfleet/" in module:
        name = module.rsplit("/urlfleet/", 1)[1].removesuffix(".py").replace("/", ".")
        return "urlfleet." + name.removesuffix(".__init__")
    for package in PACKAGES:
        if f"/{package}/" in module:
            return package
    for part, name in STDLIB.items():
        if part in module:
            return name
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=3000)
    parser.add_argument("--jobs", type=int, default=64)
    parser.add_argument("--tls", action="store_true", help="HTTPS instead of plain HTTP")
    parser.add_argument("--top", type=int, default=0, help="also list the N costliest functions")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        profile(args, scratch)


def profile(args: argparse.Namespace, scratch: str) -> None:
    import yappi

    spec, ca_bundle = ServerSpec(hosts=HOSTS, latency=0.0), None
    if args.tls:
        import trustme

        ca = trustme.CA()
        leaf = ca.issue_cert("127.0.0.1")
        ca_bundle, chain = f"{scratch}/ca.pem", f"{scratch}/chain.pem"
        ca.cert_pem.write_to_path(ca_bundle)
        leaf.private_key_and_cert_chain_pem.write_to_path(chain)
        spec = ServerSpec(hosts=HOSTS, latency=0.0, tls_cert=chain, tls_key=chain)
    with LoopbackProcess(spec) as server:
        token = uuid.uuid4().hex[:8]
        urls = [
            f"{server.base_urls[i % HOSTS]}/page/{token}/{i}" for i in range(WARM_UP + args.urls)
        ]
        config = FetchConfig(
            jobs=args.jobs, per_host=4, keep_content=False, ca_bundle=ca_bundle
        )
        sum(result.ok for result in Run(config).results(urls[:WARM_UP]))
        yappi.set_clock_type("cpu")
        yappi.start(builtins=True)
        cpu_start = time.process_time()
        ok = sum(result.ok for result in Run(config).results(urls[WARM_UP:]))
        cpu = time.process_time() - cpu_start
        yappi.stop()
    own: collections.Counter[str] = collections.Counter()
    functions: collections.Counter[str] = collections.Counter()
    for stat in yappi.get_func_stats():
        own[layer(stat.module, bool(stat.builtin))] += stat.tsub
        functions[f"{stat.name} ({Path(stat.module).name}:{stat.lineno})"] += stat.tsub
    total = sum(own.values())
    print(
        f"{ok}/{args.urls} fetched at --jobs {args.jobs}; "
        f"{cpu / args.urls * 1000:.2f} ms CPU per request under the profiler"
    )
    urlfleet_share = sum(t for name, t in own.items() if name.startswith("urlfleet")) / total
    for name, seconds in own.most_common():
        if seconds / total >= 0.002:
            print(f"{seconds / total:6.1%}  {name}")
    print(f"{urlfleet_share:6.1%}  all of urlfleet's own modules together")
    if args.top:
        print(f"the {args.top} costliest functions, by their own time:")
        for name, seconds in functions.most_common(args.top):
            print(f"{seconds / total:6.1%}  {name}")


if __name__ == "__main__":
    main()
