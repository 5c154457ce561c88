"""One run of the command line: fetch a reader's URLs into a stream of JSON lines.

The run loop of ``fetch`` and ``demo``: records to the stream, the progress bar and the summary
to stderr, the report to its file, Ctrl-C handled so no record is lost or torn. It takes plain
values (a FetchConfig, SessionOptions), never the command line's Namespace.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tqdm import tqdm

from urlfleet.cli.exits import EXIT_FAILURES, EXIT_INTERRUPTED, EXIT_OK
from urlfleet.cli.interrupts import DEFAULT_GRACE, Interrupts
from urlfleet.config import FetchConfig
from urlfleet.errors import InputError
from urlfleet.read.sources import UrlReader
from urlfleet.record.records import JsonlWriter, RecordWriter, Result
from urlfleet.report.cpu import cpu_use, cpu_verdict
from urlfleet.report.summary import Report, build_report, write_atomically
from urlfleet.run.cores import usable_cores
from urlfleet.run.progress import Progress
from urlfleet.run.runner import RunLike

# The HTML page's modules (htmlreport, recordfile, timeline) are imported where a page is
# made: only a run with --html needs them. Likewise CSV records (csvout), and what --resume
# and --revalidate read (resume, revalidation), which the caller hands in already made.
if TYPE_CHECKING:
    from urlfleet.read.resume import DoneUrls
    from urlfleet.read.revalidation import Validators
    from urlfleet.report.timeline import RecordSample


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """Where a run's output goes and how it behaves at the terminal (``-o``, ``--report``...)."""

    out: Path | None = None  # the records file, named in write errors; None is stdout
    resume: bool = False  # append to ``out``, skipping URLs it already holds a final record of
    report: Path | None = None  # where to write the run report as JSON; None: summary only
    html: Path | None = None  # where to write the report as an HTML page; None: no page
    progress: bool = True  # False: no bar; True: a bar when stderr is a terminal
    grace: float = DEFAULT_GRACE  # seconds requests in flight get after the first Ctrl-C
    out_format: str = "jsonl"  # or "csv"
    record_headers: bool = False  # each record carries its final response's headers
    # CSV only: the input list's own columns, each written as a column of its own (None:
    # meta as one column of JSON).
    columns: tuple[str, ...] | None = None


def fetch_to(
    reader: UrlReader,
    stream: IO[str],
    config: FetchConfig,
    options: SessionOptions,
    *,
    run: RunLike,
    done: DoneUrls | None = None,
    on_abandon: Callable[[], None] = lambda: None,
    validators: Validators | None = None,
    processes: int | None = 1,
) -> int:
    """Fetch the reader's URLs into ``stream`` with ``run``; print the summary; the exit code.

    ``config`` is the one ``run`` was made with (the report names its limits); ``done`` holds
    the URLs a resumed file already has, which are skipped; ``on_abandon`` runs if an
    interrupt abandons the requests in flight (the process then exits at once).
    ``processes``: the processes on this machine that fetched (None: a cluster's, elsewhere,
    so nothing is said of this machine's CPU).
    """
    writer = writer_for(stream, options)
    started = time.monotonic()
    timed: RecordSample | None = None
    if options.html is not None:
        from urlfleet.report.timeline import RecordSample

        timed = RecordSample()
    skipped = [0]
    urls = done.skip_done(reader, skipped) if done else iter(reader)
    if validators is not None:
        urls = validators.apply(urls)
    bar = Progress(
        reader.estimate,  # counted only for a bar that shows, while the run goes
        enabled=None if options.progress else False,
        paused_hosts=run.paused_hosts,
    )

    def last_words() -> str:
        if options.html is not None and timed is not None:
            _page_when_abandoned(options.html, timed, config)
        return (f"stopped: {bar.ok + bar.failed} URLs recorded ({bar.ok} ok, {bar.failed} "
                "failed); requests still in flight were abandoned. Run again with --resume "
                "to fetch the rest.")  # fmt: skip

    with Interrupts(run.stop, writer, grace=options.grace, last_words=last_words, say=say,
                    before_exit=on_abandon) as stop:  # fmt: skip
        try:
            for result in run.results(urls):
                _write(writer, result, options.out)
                if timed is not None:
                    timed.add(page_record(result, started))
                bar.advance(result, dropped=reader.duplicates + reader.malformed + skipped[0])
        finally:
            bar.close()
            _sync(writer, options.out)
    report = build_report(
        run.phases, config, duplicates=reader.duplicates, malformed=reader.malformed,
        already_done=skipped[0], paused=run.paused_seconds(),
    )  # fmt: skip
    cpu = None
    if processes is not None:
        cpu = cpu_use(run.phases, processes=processes, cores=usable_cores())
    _finish(report, options.report)
    if cpu is not None:
        verdict = cpu_verdict(cpu, ideal_s=report.ideal_s, bottleneck=report.bottleneck)
        say(f"cpu:      {verdict.line}")
    if options.html is not None and timed is not None:
        from urlfleet.report.htmlreport import render_html

        write_html(options.html, render_html(report, timed.records, sampled_of=timed.seen,
                                             cpu=cpu))  # fmt: skip
    if stop.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if report.failed == 0 else EXIT_FAILURES


def writer_for(stream: IO[str], options: SessionOptions) -> RecordWriter:
    """The writer of ``options.out_format`` on ``stream``; a CSV header row only at the
    start of a stream (not when appending to a file that has one)."""
    if options.out_format == "csv":
        from urlfleet.record.csvout import CsvWriter

        return CsvWriter(stream, record_headers=options.record_headers,
                         meta_columns=options.columns, header=_at_start(stream))  # fmt: skip
    return JsonlWriter(stream, record_headers=options.record_headers)


def _at_start(stream: IO[str]) -> bool:
    try:
        return stream.tell() == 0
    except (OSError, ValueError):  # a pipe: nothing before this run's rows
        return True


def _write(writer: RecordWriter, result: Result, out: Path | None) -> None:
    try:
        writer.write(result)
    except OSError as exc:
        raise InputError(f"{out or 'stdout'}: cannot write ({exc.strerror or exc})") from exc


def _sync(writer: RecordWriter, out: Path | None) -> None:
    try:
        writer.sync()
    except OSError as exc:
        raise InputError(f"{out or 'stdout'}: cannot write ({exc.strerror or exc})") from exc


def _finish(report: Report, path: Path | None) -> None:
    say(report.summary())
    if path is not None:
        try:
            report.write(path)
        except OSError as exc:
            raise InputError(f"{path}: cannot write report ({exc.strerror or exc})") from exc


def page_record(result: Result, run_started: float) -> dict[str, Any]:
    """What the HTML page needs of a result: its record's figures, and when it started."""
    record = {name: getattr(result, name) for name in PAGE_KEYS}
    for name in NEWER_KEYS:  # drawn when a Result carries them
        if hasattr(result, name):
            record[name] = getattr(result, name)
    since = result.started - run_started
    record["started_s"] = round(max(0.0, since), 6) if result.started else None  # no request
    return record


PAGE_KEYS = ("url", "ok", "status", "attempts", "elapsed_s", "host", "truncated", "error_kind")
NEWER_KEYS = ("ttfb_s",)


def _page_when_abandoned(path: Path, timed: RecordSample, config: FetchConfig) -> None:
    # Requests still in flight are being abandoned and the process exits at once, before the
    # run's phases are complete: the page is made from what was recorded, as `report` would.
    from urlfleet.report.htmlreport import render_html
    from urlfleet.report.recordfile import report_of_records

    records = list(timed.records)  # a copy: the main thread may still be adding one
    report = report_of_records(records, jobs=config.jobs, per_host=config.per_host,
                               delay=config.delay)  # fmt: skip
    try:
        write_html(path, render_html(report, records))
    except InputError as exc:
        say(f"error: {exc}")


def write_html(path: Path, page: str) -> None:
    """The page into ``path``, atomically; a one-line InputError when it cannot be written."""
    try:
        write_atomically(path, page.encode("utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot write HTML report ({exc.strerror or exc})") from exc
    say(f"HTML report: {path}")


def say(message: str) -> None:
    """A line on stderr that leaves the progress bar intact."""
    tqdm.write(message, file=sys.stderr)
