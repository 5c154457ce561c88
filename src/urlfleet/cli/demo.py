"""``urlfleet demo`` and ``urlfleet serve``: see the speedup in a minute, with no network.

The demo starts the loopback server in its own process (so its CPU does not distort the
client's timings), fetches the demo list against it with the serial comparison on, prints the
report, and shows what the server itself saw of urlfleet's politeness.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from urlfleet.cli.exits import EXIT_OK
from urlfleet.cli.options import add_fetch_options, config_from, session_from

# The server and the run's modules are imported by the handlers: building the parser must
# not load them.
if TYPE_CHECKING:
    from urlfleet.loopback import RequestRecord

DEMO_LIST = "demo.txt"
DEMO_FIRST_PORT = 8701  # the ports demo.txt names; `urlfleet serve` listens there by default
DEMO_HOSTS = 8
DEMO_LATENCY = 0.1
DEMO_HTML = "urlfleet-demo.html"
_PORT = re.compile(r"^(http://127\.0\.0\.1:)(\d+)(/.*)$")


def add_demo_command(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="fetch the demo list from a built-in loopback server and show the speedup",
        description="Start the loopback server in its own process, fetch the demo list (400 "
        "URLs on 8 hosts, 100 ms each) with --compare-serial, and print the report. "
        "No network needed. --urls N fetches N generated URLs instead; --hosts spreads the "
        "list over that many hosts.",
    )
    demo.add_argument("--urls", type=int, metavar="N", help="fetch N generated URLs instead")
    demo.add_argument(
        "--hosts",
        type=int,
        default=DEMO_HOSTS,
        metavar="H",
        help="simulated hosts (default %(default)s)",
    )
    demo.add_argument(
        "--latency",
        type=float,
        default=DEMO_LATENCY,
        metavar="S",
        help="server latency per request (default %(default)s)",
    )
    add_fetch_options(demo)
    demo.add_argument(
        "--html",
        type=Path,
        nargs="?",
        const=Path(DEMO_HTML),
        metavar="PATH",
        help=f"write the report as an HTML page (default PATH: {DEMO_HTML})",
    )
    demo.set_defaults(handler=run_demo, per_host=4, compare_serial=20, out=None)


def add_serve_command(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the loopback test server in the foreground",
        description="Simulated hosts on loopback with per-request latency and fault routes "
        "(see `python -m urlfleet.loopback --help`). Stop with Ctrl-C.",
    )
    serve.add_argument("--hosts", type=int, default=DEMO_HOSTS, help="default %(default)s")
    serve.add_argument("--latency", type=float, default=DEMO_LATENCY, help="default %(default)s")
    serve.add_argument("--port", type=int, default=DEMO_FIRST_PORT,
                       help="port of the first host; host i listens on PORT+i; 0 picks free "
                       "ports (default %(default)s, the ports of urls/demo.txt)")  # fmt: skip
    serve.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from urlfleet.loopback import ServerSpec, serve

    serve(ServerSpec(hosts=args.hosts, latency=args.latency, port=args.port))
    return EXIT_OK


def demo_urls(base_urls: list[str], count: int | None) -> list[str]:
    """The demo list pointed at the running server: demo.txt, or ``count`` generated URLs."""
    if count is not None:
        return [f"{base_urls[i % len(base_urls)]}/page/{i:05d}" for i in range(count)]
    text = (
        resources.files("urlfleet").joinpath("urls").joinpath(DEMO_LIST).read_text(encoding="utf-8")
    )
    urls = []
    for line in text.splitlines():
        match = _PORT.match(line.strip())
        if match:
            host = (int(match[2]) - DEMO_FIRST_PORT) % len(base_urls)
            urls.append(base_urls[host] + match[3])
    return urls


def run_demo(args: argparse.Namespace) -> int:
    from urlfleet.cli.session import fetch_to
    from urlfleet.loopback import LoopbackProcess, ServerSpec
    from urlfleet.read.sources import UrlReader
    from urlfleet.run.runner import Run

    config = config_from(args, keep_content=False)
    options = session_from(args)
    spec = ServerSpec(hosts=args.hosts, latency=args.latency)
    with LoopbackProcess(spec) as server:
        urls = demo_urls(server.base_urls, args.urls)
        print(
            f"urlfleet demo: {len(urls)} URLs on {len(server.base_urls)} loopback hosts, "
            f"{args.latency * 1000:.0f} ms each; {args.jobs} threads, --per-host "
            f"{args.per_host}; first {args.compare_serial} one at a time",
            file=sys.stderr,
        )
        with tempfile.TemporaryDirectory(prefix="urlfleet-demo-") as scratch:
            listed = Path(scratch, "demo.txt")
            listed.write_text("\n".join(urls) + "\n", encoding="utf-8")
            results = args.out or Path(scratch, "results.jsonl")
            with open(results, "w", encoding="utf-8") as sink:
                run = Run(config, compare_serial=args.compare_serial)
                code = fetch_to(UrlReader([listed]), sink, config, options, run=run)
        print(_politeness_line(server.records(), args.per_host), file=sys.stderr)
    return code


def _politeness_line(records: list[RequestRecord], per_host: int) -> str:
    from urlfleet.loopback import host_loads

    loads = host_loads(records)
    if not loads:
        return "server: saw no requests"
    busiest = max(load.max_in_flight for load in loads.values())
    return (
        f"server:   saw {sum(load.requests for load in loads.values())} requests on "
        f"{len(loads)} hosts, at most {busiest} in flight to one host (--per-host {per_host})"
    )
