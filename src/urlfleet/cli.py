"""The command line: ``urlfleet fetch | demo | serve``. A thin layer over the library.

Data (JSON lines) goes to stdout or ``-o``; the progress bar, problems and the summary go to
stderr, so ``urlfleet fetch urls.txt > results.jsonl`` keeps the two apart.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tqdm import tqdm

from urlfleet._version import __version__
from urlfleet.config import (
    DEFAULT_BACKOFF,
    DEFAULT_HOST_BACKOFF,
    DEFAULT_JOBS,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_CRAWL_DELAY,
    DEFAULT_MAX_FAILURES,
    DEFAULT_MAX_REDIRECTS,
    DEFAULT_MAX_WAIT,
    DEFAULT_PER_HOST,
    DEFAULT_RETRIES,
    DEFAULT_SHARD_SIZE,
    DEFAULT_TIMEOUT,
    DEFAULT_USER_AGENT,
    FetchConfig,
)
from urlfleet.errors import ClusterError, InputError, SaveError
from urlfleet.interrupts import DEFAULT_GRACE, EXIT_INTERRUPTED, Interrupts
from urlfleet.progress import Progress
from urlfleet.records import JsonlWriter, Result
from urlfleet.report import Report, build_report
from urlfleet.resume import DoneUrls, repair_torn_tail
from urlfleet.runner import Run
from urlfleet.sources import InputProblem, UrlReader

if TYPE_CHECKING:
    from urlfleet.distributed import ClusterRun

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    try:
        return _main(argv)
    except KeyboardInterrupt:  # before a run has begun (a run handles its own signals)
        _say("interrupted")
        return EXIT_INTERRUPTED


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (InputError, SaveError, ClusterError) as exc:
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
    from urlfleet.bench import add_bench_command
    from urlfleet.demo import add_demo_command, add_serve_command

    add_demo_command(commands)
    add_bench_command(commands)
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
        default=DEFAULT_SHARD_SIZE,
        metavar="N",
        help="URLs per task on the cluster (default %(default)s)",
    )
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
    manners = parser.add_argument_group("a good citizen")
    manners.add_argument(
        "--robots",
        action="store_true",
        help="fetch each host's robots.txt once (politely), skip URLs it disallows and use its "
        "Crawl-delay as the host's --delay; off by default for explicit URL lists, as in wget "
        "and curl. A 4xx robots.txt allows all; a 5xx or 429 defers the host",
    )
    manners.add_argument(
        "--max-crawl-delay",
        type=float,
        default=DEFAULT_MAX_CRAWL_DELAY,
        metavar="S",
        help="a longer Crawl-delay is taken as S seconds (default %(default)s)",
    )
    manners.add_argument(
        "--auto-throttle",
        action="store_true",
        help="adapt each host's delay to how it answers: halfway towards latency/--per-host "
        "after each 2xx, at least doubled after a 429 or 503; never below --delay (or "
        "Crawl-delay), never above --max-wait",
    )
    manners.add_argument(
        "--host-backoff",
        type=float,
        default=DEFAULT_HOST_BACKOFF,
        metavar="S",
        help="a 429 or 503 pauses its whole host: for its Retry-After, else S seconds, doubling "
        "while the host keeps throttling, up to --max-wait (default %(default)s)",
    )
    manners.add_argument(
        "--host-max-failures",
        type=int,
        default=DEFAULT_MAX_FAILURES,
        metavar="N",
        help="after N failures in a row (refused, timed out, 5xx) a host is cut off and its "
        "remaining URLs fail at once; 0 never cuts off (default %(default)s)",
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
    out.add_argument(
        "--save-dir",
        type=Path,
        metavar="DIR",
        help="write each 2xx body to its own file under DIR (DIR/host/path/name-HASH.ext, never "
        "outside DIR); a file appears only once complete. The record's saved_to names it",
    )
    out.add_argument("--compare-serial", type=int, default=0, metavar="K",
                     help="first fetch a sample of K URLs one at a time, then the rest "
                     "threaded, and report the measured speedup (default 0: off)")  # fmt: skip
    out.add_argument(
        "--resume",
        action="store_true",
        help="skip URLs that already have a final record in --out, append the rest; a record "
        "is final when ok, or an HTTP 4xx other than 408/425/429 (anything else, and URLs "
        "abandoned at an interrupt, are fetched again)",
    )
    out.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_GRACE,
        metavar="S",
        help="on Ctrl-C or SIGTERM, wait up to S seconds for requests in flight before "
        "abandoning them (default %(default)s); a second Ctrl-C stops at once",
    )
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
            user_agent=args.user_agent, verify=not args.insecure, robots=args.robots,
            max_crawl_delay=args.max_crawl_delay, host_backoff=args.host_backoff,
            host_max_failures=args.host_max_failures, save_dir=args.save_dir,
            auto_throttle=args.auto_throttle, **overrides,
        )  # fmt: skip
    except ValueError as exc:
        raise InputError(f"bad option: {exc}") from exc


def run_fetch(args: argparse.Namespace) -> int:
    config = config_from(args, keep_content=False)
    if args.compare_serial < 0:
        raise InputError("bad option: --compare-serial must be >= 0")
    if args.dask and args.compare_serial:
        raise InputError("bad option: --compare-serial cannot be used with --dask")
    if args.shard_size < 1:
        raise InputError("bad option: --shard-size must be >= 1")
    reader = UrlReader(args.files, on_problem=_report_problem)
    reader.check()
    if args.insecure:
        _say("warning: --insecure: TLS certificates are not verified")
    done = _resume_from(args.out) if args.resume else DoneUrls(())
    with _open_output(args.out, append=args.resume) as stream, _run_for(args, config) as run:
        return fetch_to(reader, stream, config, args, done=done, run=run)


@contextmanager
def _run_for(args: argparse.Namespace, config: FetchConfig) -> Iterator[Run | ClusterRun]:
    if not args.dask:
        yield Run(config, compare_serial=args.compare_serial)
        return
    from urlfleet.distributed import ClusterRun, client_for

    _say(f"connecting to the dask cluster at {args.dask}")
    client, close = client_for(args.dask)
    try:
        yield ClusterRun(config, client=client, shard_size=args.shard_size)
    finally:
        close()


def _resume_from(out: Path | None) -> DoneUrls:
    if out is None:
        raise InputError("--resume needs -o/--out FILE: the results file to resume")
    if not out.exists():
        return DoneUrls(())
    try:
        if repair_torn_tail(out):
            _say(f"{out}: removed a half-written last line (from an interrupted run)")
        done = DoneUrls.read(out, on_bad_line=lambda n: _say(f"{out}:{n}: not a record, ignored"))
    except OSError as exc:
        raise InputError(f"{out}: cannot resume ({exc.strerror or exc})") from exc
    _say(f"resuming: {len(done)} URLs in {out} are done and will be skipped")
    return done


def fetch_to(
    reader: UrlReader,
    stream: IO[str],
    config: FetchConfig,
    args: argparse.Namespace,
    *,
    done: DoneUrls | None = None,
    run: Run | ClusterRun | None = None,
) -> int:
    """Fetch the reader's URLs into ``stream``; print the summary; return the exit code."""
    if run is None:
        run = Run(config, compare_serial=args.compare_serial)
    writer = JsonlWriter(stream)
    skipped = [0]
    urls = done.skip_done(reader, skipped) if done else iter(reader)
    bar = Progress(
        reader.estimate(),
        enabled=False if args.no_progress else None,
        paused_hosts=run.paused_hosts,
    )

    def last_words() -> str:
        return (f"stopped: {bar.ok + bar.failed} URLs recorded ({bar.ok} ok, {bar.failed} "
                "failed); requests still in flight were abandoned. Run again with --resume "
                "to fetch the rest.")  # fmt: skip

    with Interrupts(run.stop, writer, grace=args.grace, last_words=last_words, say=_say) as stop:
        try:
            for result in run.results(urls):
                _write(writer, result, args.out)
                bar.advance(result, dropped=reader.duplicates + reader.malformed + skipped[0])
        finally:
            bar.close()
            _sync(writer, args.out)
    report = build_report(
        run.phases, config, duplicates=reader.duplicates, malformed=reader.malformed,
        already_done=skipped[0], paused=run.paused_seconds(),
    )  # fmt: skip
    _finish(report, args.report)
    if stop.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if report.failed == 0 else EXIT_FAILURES


def _write(writer: JsonlWriter, result: Result, out: Path | None) -> None:
    try:
        writer.write(result)
    except OSError as exc:
        raise InputError(f"{out or 'stdout'}: cannot write ({exc.strerror or exc})") from exc


def _sync(writer: JsonlWriter, out: Path | None) -> None:
    try:
        writer.sync()
    except OSError as exc:
        raise InputError(f"{out or 'stdout'}: cannot write ({exc.strerror or exc})") from exc


def _finish(report: Report, path: Path | None) -> None:
    _say(report.summary())
    if path is not None:
        try:
            report.write(path)
        except OSError as exc:
            raise InputError(f"{path}: cannot write report ({exc.strerror or exc})") from exc


class _open_output:  # noqa: N801 - reads as a function at the call site
    def __init__(self, path: Path | None, *, append: bool = False) -> None:
        self._path = path
        self._mode = "a" if append else "w"
        self._stream: IO[str] | None = None

    def __enter__(self) -> IO[str]:
        if self._path is None:
            return sys.stdout
        try:
            self._stream = open(self._path, self._mode, encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise InputError(f"{self._path}: cannot write ({exc.strerror or exc})") from exc
        return self._stream

    def __exit__(self, *exc_info: object) -> None:
        if self._stream is not None:
            try:
                self._stream.close()
            except OSError:
                pass  # already reported by the write or sync that failed


def _report_problem(problem: InputProblem) -> None:
    _say(str(problem))


def _say(message: str) -> None:
    tqdm.write(message, file=sys.stderr)
