"""The command line: ``urlfleet fetch | demo | serve``. A thin layer over the library.

Data (JSON lines) goes to stdout or ``-o``; the progress bar, problems and the summary go to
stderr, so ``urlfleet fetch urls.txt > results.jsonl`` keeps the two apart.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Any

from tqdm import tqdm

from urlfleet._version import __version__
from urlfleet.config import (
    DEFAULT_BACKOFF,
    DEFAULT_JOBS,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_REDIRECTS,
    DEFAULT_MAX_WAIT,
    DEFAULT_PER_HOST,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    DEFAULT_USER_AGENT,
    FetchConfig,
)
from urlfleet.errors import InputError
from urlfleet.progress import Progress
from urlfleet.records import JsonlWriter
from urlfleet.report import Report, build_report
from urlfleet.runner import Run
from urlfleet.sources import InputProblem, UrlReader

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except InputError as exc:
        _say(f"error: {exc}")
        return EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="urlfleet",
        description="Fetch a list of URLs fast and politely, and see what concurrency bought.",
    )
    parser.add_argument("--version", action="version", version=f"urlfleet {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_fetch_command(commands)
    from urlfleet.demo import add_demo_command, add_serve_command

    add_demo_command(commands)
    add_serve_command(commands)
    return parser


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
        "means every *.txt in it",
    )  # fmt: skip
    add_fetch_options(fetch)
    fetch.set_defaults(handler=run_fetch)


def add_fetch_options(parser: argparse.ArgumentParser) -> None:
    """The options that build a FetchConfig and shape a run (shared with ``demo``)."""
    conc = parser.add_argument_group("concurrency and politeness")
    conc.add_argument("-j", "--jobs", type=int, default=DEFAULT_JOBS,
                      help="worker threads, joblib n_jobs semantics: -1 one per CPU, -2 all but "
                      "one (default %(default)s)")  # fmt: skip
    conc.add_argument(
        "--per-host",
        type=int,
        default=DEFAULT_PER_HOST,
        help="at most N requests in flight to one host (default %(default)s)",
    )
    conc.add_argument("--delay", type=float, default=0.0, metavar="S",
                      help="at least S seconds between the starts of two requests to the same "
                      "host (default %(default)s)")  # fmt: skip
    conc.add_argument(
        "--jitter",
        type=float,
        default=0.0,
        metavar="S",
        help="add a random 0..S seconds to each per-host gap (default %(default)s)",
    )
    retry = parser.add_argument_group("retries and limits")
    retry.add_argument("--retries", type=int, default=DEFAULT_RETRIES,
                       help="retries after the first attempt, for connection errors, timeouts "
                       "and HTTP 408/425/429/500/502/503/504 (default %(default)s)")  # fmt: skip
    retry.add_argument("--backoff", type=float, default=DEFAULT_BACKOFF, metavar="S",
                       help="base of the exponential backoff with full jitter: retry n waits a "
                       "random 0..S*2^(n-1) seconds (default %(default)s)")  # fmt: skip
    retry.add_argument("--max-wait", type=float, default=DEFAULT_MAX_WAIT, metavar="S",
                       help="longest single wait between attempts, Retry-After included "
                       "(default %(default)s)")  # fmt: skip
    retry.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                       help="per-attempt connect timeout, and longest wait for the next byte "
                       "(default %(default)s)")  # fmt: skip
    retry.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES, metavar="N",
                       help="largest body kept; a longer one is cut off and the record says so "
                       "(default %(default)s = 100 MiB)")  # fmt: skip
    retry.add_argument(
        "--max-redirects",
        type=int,
        default=DEFAULT_MAX_REDIRECTS,
        metavar="N",
        help="redirects followed per URL (default %(default)s)",
    )
    retry.add_argument(
        "--user-agent",
        default=DEFAULT_USER_AGENT,
        metavar="S",
        help="User-Agent header (default %(default)s)",
    )
    retry.add_argument(
        "--insecure",
        action="store_true",
        help="do not verify TLS certificates (a warning is printed)",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "-o",
        "--out",
        type=Path,
        metavar="PATH",
        help="write the JSON lines to PATH instead of stdout",
    )
    out.add_argument("--report", type=Path, metavar="PATH", help="write the run report as JSON")
    out.add_argument("--compare-serial", type=int, default=0, metavar="K",
                     help="first fetch a sample of K URLs one at a time, then the rest "
                     "threaded, and report the measured speedup (default 0: off)")  # fmt: skip
    out.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (it is off anyway when stderr is not a terminal)",
    )


def config_from(args: argparse.Namespace, **overrides: Any) -> FetchConfig:
    """The FetchConfig the options describe; a bad value is an InputError (exit 2)."""
    try:
        return FetchConfig(
            jobs=args.jobs, per_host=args.per_host, delay=args.delay, jitter=args.jitter,
            retries=args.retries, backoff=args.backoff, max_wait=args.max_wait,
            timeout=args.timeout, max_bytes=args.max_bytes, max_redirects=args.max_redirects,
            user_agent=args.user_agent, verify=not args.insecure, **overrides,
        )  # fmt: skip
    except ValueError as exc:
        raise InputError(f"bad option: {exc}") from exc


def run_fetch(args: argparse.Namespace) -> int:
    config = config_from(args, keep_content=False)
    if args.compare_serial < 0:
        raise InputError("bad option: --compare-serial must be >= 0")
    reader = UrlReader(args.files, on_problem=_report_problem)
    reader.check()
    if args.insecure:
        _say("warning: --insecure: TLS certificates are not verified")
    with _open_output(args.out) as stream:
        return fetch_to(reader, stream, config, args)


def fetch_to(
    reader: UrlReader, stream: IO[str], config: FetchConfig, args: argparse.Namespace
) -> int:
    """Fetch the reader's URLs into ``stream``; print the summary; return the exit code."""
    run = Run(config, compare_serial=args.compare_serial)
    writer = JsonlWriter(stream)
    interrupted = _on_interrupt(run)
    bar = Progress(reader.estimate(), enabled=False if args.no_progress else None)
    try:
        for result in run.results(reader):
            writer.write(result)
            bar.advance(result, dropped=reader.duplicates + reader.malformed)
    finally:
        bar.close()
        _restore_interrupt()
    report = build_report(
        run.phases, config, duplicates=reader.duplicates, malformed=reader.malformed
    )
    _finish(report, args.report)
    if interrupted():
        return EXIT_INTERRUPTED
    return EXIT_OK if report.failed == 0 else EXIT_FAILURES


def _finish(report: Report, path: Path | None) -> None:
    _say(report.summary())
    if path is not None:
        try:
            report.write(path)
        except OSError as exc:
            raise InputError(f"{path}: cannot write report ({exc.strerror or exc})") from exc


class _open_output:  # noqa: N801 - reads as a function at the call site
    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._stream: IO[str] | None = None

    def __enter__(self) -> IO[str]:
        if self._path is None:
            return sys.stdout
        try:
            self._stream = open(self._path, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise InputError(f"{self._path}: cannot write ({exc.strerror or exc})") from exc
        return self._stream

    def __exit__(self, *exc_info: object) -> None:
        if self._stream is not None:
            self._stream.close()


def _on_interrupt(run: Run) -> Callable[[], bool]:
    """First Ctrl-C (or SIGTERM): stop handing out URLs, let those in flight finish and be
    recorded. A second one stops at once."""
    seen: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if seen:
            raise KeyboardInterrupt
        seen.append(signum)
        _say("\ninterrupted: finishing requests in flight (Ctrl-C again to stop now)")
        run.stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return lambda: bool(seen)


def _restore_interrupt() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _report_problem(problem: InputProblem) -> None:
    _say(str(problem))


def _say(message: str) -> None:
    tqdm.write(message, file=sys.stderr)
