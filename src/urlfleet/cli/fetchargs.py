"""The ``fetch`` command's options: cheap to build, as every command line builds them (even
``--help`` and ``--version``); its handler, in ``fetch``, loads what a run needs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from urlfleet.cli.inputs import add_input_options
from urlfleet.cli.options import add_fetch_options
from urlfleet.cli.startup import collector_held
from urlfleet.config import DEFAULT_LOCAL_SHARD_SIZE, DEFAULT_SHARD_SIZE
from urlfleet.run.cores import AUTO_MIN_URLS


def add_fetch_command(commands: Any) -> None:
    fetch = commands.add_parser(
        "fetch",
        help="fetch the URLs listed in files",
        description="Fetch every URL in the given lists; one JSON line per URL on stdout or -o.",
        epilog="Exit status: 0 all URLs ok, 1 some failed (all recorded), 2 usage or input "
        "error, 130 interrupted.",
    )
    fetch.add_argument(
        "files", nargs="*", metavar="FILE",
        help="URL list: one URL per line, '#' comments; '-' or none reads stdin; a directory "
        "means every *.txt in it; .jsonl, .csv, .tsv and .xml (sitemap) files are read as "
        "such (see --input-format)",
    )  # fmt: skip
    add_input_options(fetch)
    add_fetch_options(fetch)
    fetch.add_argument(
        "--revalidate",
        type=Path,
        metavar="PREV",
        help="a previous run's -o (JSON lines or CSV): each URL whose last record there is ok "
        "and has an etag or last_modified is asked with If-None-Match / If-Modified-Since; a "
        "304 is then ok, with unchanged true and no body read or saved again",
    )
    fetch.add_argument("--html", type=Path, metavar="PATH",
                       help="write the report as one self-contained HTML page (a per-host "
                       "timeline, latency, outcomes), also after Ctrl-C")  # fmt: skip
    cores = fetch.add_argument_group("every core of this machine")
    cores.add_argument(
        "--processes",
        metavar="N|auto",
        help="fetch in N worker processes here, each with its own hosts and its share of -j "
        "threads (a host is in one process at a time, so every limit above holds); this "
        "process writes the records. auto: one per core this process may use, for a list "
        f"known to hold {AUTO_MIN_URLS} URLs or more, else 1 (the reason is said). Default 1",
    )
    cluster = fetch.add_argument_group("beyond one machine (needs urlfleet[dask])")
    cluster.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="fetch on a dask.distributed cluster: tcp://HOST:PORT of a running scheduler, or "
        "local:N to start N worker processes here. Each host is fetched by one worker at a "
        "time, with the limits above; this machine writes the records",
    )
    cluster.add_argument(
        "--shard-size",
        type=int,
        metavar="N",
        help=f"URLs per task on the cluster (default {DEFAULT_SHARD_SIZE}; with --processes, "
        f"an equal share of the list, up to {DEFAULT_LOCAL_SHARD_SIZE})",
    )
    fetch.set_defaults(handler=_fetch)


def _fetch(args: argparse.Namespace) -> int:
    with collector_held():
        from urlfleet.cli.fetch import run_fetch  # the run's modules, only for a run

    return run_fetch(args)
