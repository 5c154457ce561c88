"""The options that shape a run, and the one place a Namespace becomes library values.

``fetch`` and ``demo`` share these options; ``config_from`` turns them into a FetchConfig and
``session_from`` into the SessionOptions of ``fetch_to``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from urlfleet.cli.interrupts import DEFAULT_GRACE
from urlfleet.cli.session import SessionOptions
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
    DEFAULT_TIMEOUT,
    DEFAULT_USER_AGENT,
    FetchConfig,
)
from urlfleet.errors import InputError


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
    retry.add_argument("--max-time", type=float, default=None, metavar="S",
                       help="deadline for each whole attempt: connect, headers and body "
                       "together, as curl's -m (default: none)")  # fmt: skip
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
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="send this header with every request (repeatable), as curl's -H ('Name:' leaves "
        "a header out, e.g. 'User-Agent:'); Authorization, "
        "Proxy-Authorization, Cookie and --secret-header names are dropped when a redirect "
        "leaves the host",
    )
    retry.add_argument(
        "--secret-header",
        action="append",
        default=[],
        metavar="NAME",
        help="also drop header NAME when a redirect leaves the host (repeatable)",
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
    retry.add_argument(
        "--ca-bundle",
        type=Path,
        metavar="FILE",
        help="trust the CA certificates in FILE (PEM) instead of the default ones, as curl's "
        "--cacert (default: REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE when set)",
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
    check_numbers(args)
    ca_bundle, headers = _ca_bundle(args.ca_bundle), _headers(args.header)
    try:
        return FetchConfig(
            jobs=args.jobs, per_host=args.per_host, delay=args.delay, jitter=args.jitter,
            retries=args.retries, backoff=args.backoff, max_wait=args.max_wait,
            timeout=args.timeout, max_bytes=args.max_bytes, max_redirects=args.max_redirects,
            user_agent=args.user_agent, verify=not args.insecure, robots=args.robots,
            max_crawl_delay=args.max_crawl_delay, host_backoff=args.host_backoff,
            host_max_failures=args.host_max_failures, save_dir=args.save_dir,
            auto_throttle=args.auto_throttle, max_time=args.max_time,
            ca_bundle=ca_bundle, headers=headers,
            secret_headers=tuple(args.secret_header), **overrides,
        )  # fmt: skip
    except ValueError as exc:
        raise InputError(f"bad option: {exc}") from exc


def _headers(lines: list[str]) -> dict[str, str | None]:
    headers: dict[str, str | None] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():  # the line may be a bare token: never shown
            raise InputError("-H wants 'Name: value'; one has no name or no colon (not shown)")
        # As curl: 'Name:' leaves the header out. Checked (and stripped) by FetchConfig.
        headers[name.strip()] = value if value.strip() else None
    return headers


def _ca_bundle(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        with path.open("rb") as handle:
            if b"-----BEGIN CERTIFICATE-----" not in handle.read(1 << 20):
                raise InputError(f"--ca-bundle {path}: no PEM certificate in it")
    except OSError as exc:
        raise InputError(f"--ca-bundle {path}: {exc.strerror or exc}") from exc
    return str(path)


def session_from(args: argparse.Namespace) -> SessionOptions:
    """What ``fetch_to`` needs of the output options, without the Namespace."""
    return SessionOptions(
        out=args.out,
        resume=args.resume,
        report=args.report,
        html=getattr(args, "html", None),
        progress=not args.no_progress,
        grace=args.grace,
    )


# Numeric options, checked once parsed so each message names the option as the user typed it.
MAX_JOBS = 10_000  # threads; measured fine on Linux, and far past any host's politeness
MAX_SECONDS = 7 * 24 * 3600.0  # a week: past this a wait is a typo (and near timer limits)
_SECONDS = ("delay", "jitter", "backoff", "max_wait", "host_backoff", "max_crawl_delay",
            "grace", "timeout", "max_time")  # fmt: skip
_MORE_THAN_ZERO = frozenset({"timeout", "max_time"})  # the others may be 0
# (--jobs 0 and --per-host 0 are refused by FetchConfig itself.)
_COUNTS = {"retries": 0, "max_bytes": 0, "max_redirects": 0, "host_max_failures": 0}


def check_numbers(args: argparse.Namespace) -> None:
    """Raise InputError, naming the option, for a number no run can use (inf, nan, -1 ...)."""
    for dest in _SECONDS:
        value = getattr(args, dest, None)
        if value is None:
            continue
        name = "--" + dest.replace("_", "-")
        if not math.isfinite(value):
            raise InputError(f"bad option: {name} must be a finite number of seconds, got {value}")
        if dest in _MORE_THAN_ZERO and value <= 0:
            raise InputError(f"bad option: {name} must be > 0 seconds, got {value:g}")
        if value < 0:
            raise InputError(f"bad option: {name} must be >= 0 seconds, got {value:g}")
        if value > MAX_SECONDS:
            raise InputError(
                f"bad option: {name} must be at most {MAX_SECONDS:g} seconds (a week), "
                f"got {value:g}"
            )
    for dest, least in _COUNTS.items():
        value = getattr(args, dest, None)
        if value is not None and value < least:
            raise InputError(f"bad option: --{dest.replace('_', '-')} must be >= {least}, "
                             f"got {value}")  # fmt: skip
    per_host = getattr(args, "per_host", None)
    if per_host is not None and per_host > MAX_JOBS:  # each slot is a pooled connection
        raise InputError(f"bad option: --per-host must be at most {MAX_JOBS}, got {per_host}")
    jobs = getattr(args, "jobs", None)
    if jobs is not None and abs(jobs) > MAX_JOBS:
        raise InputError(
            f"bad option: -j/--jobs {jobs} is beyond the {MAX_JOBS} threads urlfleet runs at "
            "most on one machine (negative values count back from the CPUs)"
        )
