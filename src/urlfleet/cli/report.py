"""``urlfleet report RECORDS.jsonl --html run.html``: the report of any results file.

The file may come from any run, including one interrupted and resumed. The summary goes to
stderr as after a run; ``--html`` writes the page and ``--report`` the JSON. A records file
does not say the run's limits: ``-j`` and ``--per-host`` (and ``--delay``) given here let the
report work out the ideal time and the bottleneck.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from urlfleet.cli.exits import EXIT_FAILURES, EXIT_OK
from urlfleet.errors import InputError


def add_report_command(commands: Any) -> None:
    report = commands.add_parser(
        "report",
        help="build the run report (summary, --html page, --report JSON) from a results file",
        description="Read a JSONL results file (from fetch -o, also an interrupted and resumed "
        "one), print the summary, and write the report as an HTML page and/or JSON.",
    )
    report.add_argument("records", type=Path, metavar="RECORDS.jsonl", help="a results file")
    report.add_argument("--html", type=Path, metavar="PATH", help="write the report as HTML")
    report.add_argument("--report", type=Path, metavar="PATH", help="write the report as JSON")
    limits = report.add_argument_group("the run's limits (for the ideal time and bottleneck)")
    limits.add_argument("-j", "--jobs", type=int, metavar="N", help="its worker threads")
    limits.add_argument("--per-host", type=int, metavar="N", help="its --per-host")
    limits.add_argument("--delay", type=float, default=0.0, metavar="S", help="its --delay")
    report.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    # Imported here: building the parser must not load the report's modules.
    from urlfleet.cli.outputs import check_report_path, same_path
    from urlfleet.cli.session import say, write_html
    from urlfleet.report.htmlreport import render_html
    from urlfleet.report.recordfile import read_records, report_of_records

    for option, value in (("-j/--jobs", args.jobs), ("--per-host", args.per_host)):
        if value is not None and value < 1:
            raise InputError(f"bad option: {option} must be >= 1")
    if args.delay < 0:
        raise InputError("bad option: --delay must be >= 0")
    for option, path in (("--html", args.html), ("--report", args.report)):
        if path is not None:
            if same_path(path, args.records):
                raise InputError(f"{option} {path} is the input: refusing to write over it")
            check_report_path(path)
    read = read_records(args.records)
    if read.skipped:
        more = f" (and {read.skipped - 1} more such lines)" if read.skipped > 1 else ""
        say(f"warning: {args.records}:{read.first_skipped}: not a urlfleet record, "
            f"skipped{more}")  # fmt: skip
    report = report_of_records(read.records, jobs=args.jobs, per_host=args.per_host,
                               delay=args.delay, malformed=read.skipped)  # fmt: skip
    say(report.summary())
    if args.report is not None:
        try:
            report.write(args.report)
        except OSError as exc:
            raise InputError(f"{args.report}: cannot write report ({exc.strerror or exc})") from exc
    if args.html is not None:
        write_html(args.html, render_html(report, read.records, title=f"urlfleet: {args.records}",
                                             resumed_at=read.resumed_at))  # fmt: skip
    return EXIT_OK if report.failed == 0 else EXIT_FAILURES
