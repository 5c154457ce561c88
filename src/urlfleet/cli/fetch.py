"""``urlfleet fetch``: every URL in the given lists, one JSON line each, on stdout or ``-o``.

Its options are in ``fetchargs``, so that building the parser loads none of this. The
handler turns the Namespace into a FetchConfig and SessionOptions, checks the input and
that no output would overwrite it or another output, opens and locks the output (appending
when resuming), picks the run (threads here, worker processes here, or a dask cluster), and
hands them all to ``fetch_to``. Every refusal comes before the first byte is written.
"""

from __future__ import annotations

import argparse
import stat
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING

from urllib3.exceptions import InsecureRequestWarning

from urlfleet.cli.inputs import reader_from
from urlfleet.cli.options import config_from, session_from
from urlfleet.cli.outputs import check_outputs, check_report_path, open_locked, same_path
from urlfleet.cli.session import SessionOptions, fetch_to, say
from urlfleet.config import DEFAULT_SHARD_SIZE, FetchConfig
from urlfleet.errors import InputError
from urlfleet.fetching.cookies import load_jar
from urlfleet.read.sources import InputProblem
from urlfleet.run.cores import choose_processes, parse_processes
from urlfleet.run.runner import Run, RunLike

# What --resume and --revalidate read back (resume, revalidation, CSV records) loads only for
# a run given them.
if TYPE_CHECKING:
    from urlfleet.read.resume import DoneUrls
    from urlfleet.read.revalidation import Validators
    from urlfleet.read.sources import UrlReader


def run_fetch(args: argparse.Namespace) -> int:
    config = config_from(args, keep_content=False)
    if args.compare_serial < 0:
        raise InputError("bad option: --compare-serial must be >= 0")
    if args.dask and args.compare_serial:
        raise InputError("bad option: --compare-serial cannot be used with --dask")
    if args.shard_size is not None and args.shard_size < 1:
        raise InputError("bad option: --shard-size must be >= 1")
    if args.dask and args.processes is not None:
        raise InputError("bad option: --processes cannot be used with --dask (each dask "
                         "worker is a process of its own: give local:N)")  # fmt: skip
    asked = _processes(args.processes)
    load_jar(config.cookie_jar)  # a bad cookies.txt is refused before anything is written
    options = session_from(args)
    reader = reader_from(args, _report_problem)
    reader.check()
    if args.dask and any(reader.format_for(p) == "sitemap" for p in reader.sources):
        raise InputError("bad option: sitemaps cannot be fetched with --dask yet")
    processes = _choose_processes(asked, reader, config, compare_serial=args.compare_serial)
    check_outputs([*reader.sources, *reader.files()], out=options.out, report=options.report,
                  save_dir=config.save_dir)  # fmt: skip
    for written in (options.report, options.html):
        if written is not None:
            check_report_path(written)
    if options.html is not None and any(
        same_path(options.html, p) for p in (*reader.files(), options.out, options.report) if p
    ):
        raise InputError(f"--html {options.html} is an input or another output: choose another")
    if options.resume and options.out is None:
        raise InputError("--resume needs -o/--out FILE: the results file to resume")
    if options.out_format == "csv":
        options = replace(options, columns=_columns(reader.columns()))
    validators = _validators(args.revalidate, options.out)
    if args.insecure:
        say("warning: --insecure: TLS certificates are not verified")
        # Said once, here; urllib3 would repeat it for every host, with a file path.
        warnings.filterwarnings("ignore", category=InsecureRequestWarning)
    with _open_output(options.out, append=options.resume) as stream:
        # Read what to skip only now: the lock is ours, so no other run is writing it.
        done = _resume_from(options.out, options) if options.resume else None
        run_for = _run_for(config, compare_serial=args.compare_serial, dask=args.dask,
                           shard_size=args.shard_size, processes=processes,
                           size=reader.estimate())  # fmt: skip
        with run_for as run:
            try:
                code = fetch_to(reader, stream, config, options, done=done, run=run,
                                on_abandon=run.save_cookies, validators=validators,
                                processes=None if args.dask else processes)  # fmt: skip
            except RuntimeError as exc:
                if "can't start new thread" not in str(exc):
                    raise
                raise InputError(
                    f"cannot start {config.jobs} threads on this machine (its limit on "
                    "threads or memory); records so far are kept; try a smaller -j"
                ) from exc
    if reader.sitemaps:
        say(f"sitemaps: {reader.sitemaps} read")
    return code


def _processes(given: str | None) -> int | str:
    try:
        return parse_processes(given or 1)
    except ValueError as exc:
        raise InputError(f"bad option: --{exc}") from exc


def _choose_processes(
    asked: int | str, reader: UrlReader, config: FetchConfig, *, compare_serial: int
) -> int:
    # What needs one process: each process would time or read sitemaps alone.
    single_only = None
    if compare_serial:
        single_only = "--compare-serial times one process"
    elif any(reader.format_for(p) == "sitemap" for p in reader.sources):
        single_only = "sitemaps are read by the process that fetches them"
    if asked != "auto" and int(asked) > 1 and single_only is not None:
        raise InputError(f"bad option: --processes {asked}: {single_only}; give --processes 1")
    choice = choose_processes(asked, size=reader.estimate(), single_only=single_only)
    if choice.reason is not None:
        say(choice.reason)
    return choice.count


@contextmanager
def _run_for(
    config: FetchConfig,
    *,
    compare_serial: int,
    dask: str | None,
    shard_size: int | None,
    processes: int,
    size: int | None,
) -> Iterator[RunLike]:
    if processes > 1:
        from urlfleet.distributed.local import processes_run

        with processes_run(config, processes, shard_size=shard_size, size=size) as local:
            yield local
        return
    if not dask:
        yield Run(config, compare_serial=compare_serial, most_urls=size)
        return
    from urlfleet.distributed import ClusterRun, client_for

    say(f"connecting to the dask cluster at {dask}")
    client, close = client_for(dask)
    try:
        yield ClusterRun(config, client=client, shard_size=shard_size or DEFAULT_SHARD_SIZE)
    finally:
        close()


def _columns(found: list[str] | None) -> tuple[str, ...] | None:
    return None if found is None else tuple(found)


def _validators(prev: Path | None, out: Path | None) -> Validators | None:
    if prev is None:
        return None
    from urlfleet.read.revalidation import Validators

    if out is not None and same_path(prev, out):
        raise InputError(f"--revalidate {prev} is -o {out}: write the new records elsewhere "
                         "(opening -o would empty it before it is read)")  # fmt: skip
    validators = Validators.read(prev)
    say(f"revalidating: {len(validators)} URLs in {prev} have validators")
    return validators


def _check_format(out: Path, options: SessionOptions) -> None:
    # Appending rows of another shape would leave a file no reader can use.
    from urlfleet.read.resume import MAX_RECORD_BYTES
    from urlfleet.record.csvout import csv_header, csv_rows, header_of, is_csv_records

    csv = is_csv_records(out)
    if csv != (options.out_format == "csv"):
        held, writes = ("CSV", "JSON lines") if csv else ("JSON lines", "CSV")
        raise InputError(f"{out}: holds {held} records and this run writes {writes}; "
                         "give --out-format to match it")  # fmt: skip
    if not csv:
        return
    with open(out, "rb") as handle:
        number, row = next(csv_rows(handle, MAX_RECORD_BYTES), (1, None))
    want = header_of(record_headers=options.record_headers, meta_columns=options.columns)
    if csv_header(row) != want:
        raise InputError(
            f"{out}:{number}: its columns are not this run's (another "
            "--record-headers or input columns); resume with the same options"
        )


def _resume_from(out: Path | None, options: SessionOptions) -> DoneUrls:
    from urlfleet.read.resume import DoneUrls, check_results_file, repair_torn_tail

    if out is None:
        raise InputError("--resume needs -o/--out FILE: the results file to resume")
    bad = [0, 0]  # lines that are not records, and the first of them

    def count(number: int) -> None:
        bad[0] += 1
        bad[1] = bad[1] or number

    try:
        info = out.stat()
        if not info.st_size:
            return DoneUrls(())  # new (just made by opening it) or empty: nothing done yet
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{out}: not a regular file; --resume needs the -o of an earlier run")
        check_results_file(out)  # before the repair below, which would cut a foreign file
        _check_format(out, options)
        if repair_torn_tail(out):
            say(f"{out}: removed a half-written last line (from an interrupted run)")
        done = DoneUrls.read(out, on_bad_line=count)
    except OSError as exc:
        raise InputError(f"{out}: cannot resume ({exc.strerror or exc})") from exc
    if bad[0]:
        lines = "1 line" if bad[0] == 1 else f"{bad[0]} lines"
        say(f"{out}: {lines} could not be read (the first is line {bad[1]}); ignored")
    say(f"resuming: {len(done)} URLs in {out} are done and will be skipped")
    return done


class _open_output:  # noqa: N801 - reads as a function at the call site
    def __init__(self, path: Path | None, *, append: bool = False) -> None:
        self._path = path
        self._mode = "a" if append else "w"
        self._stream: IO[str] | None = None

    def __enter__(self) -> IO[str]:
        if self._path is None:
            return sys.stdout
        self._stream = open_locked(self._path, append=self._mode == "a")
        return self._stream

    def __exit__(self, *exc_info: object) -> None:
        if self._stream is not None:
            try:
                self._stream.close()
            except OSError:
                pass  # already reported by the write or sync that failed


def _report_problem(problem: InputProblem) -> None:
    say(str(problem))
