"""The options that shape a run, and the one place a Namespace becomes library values.

``fetch`` and ``demo`` share these options; ``config_from`` turns them into a FetchConfig and
``session_from`` into the SessionOptions of ``fetch_to``.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from urlfleet.cli.interrupts import DEFAULT_GRACE
from urlfleet.config import (
    DEFAULT_BACKOFF,
    DEFAULT_HOST_BACKOFF,
    DEFAULT_JOBS,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_CRAWL_DELAY,
    DEFAULT_MAX_FAILURES,
    DEFAULT_MAX_REDIRECTS,
    DEFAULT_MAX_WAIT,
    DEFAULT_OK_STATUS,
    DEFAULT_PER_HOST,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    DEFAULT_USER_AGENT,
    FetchConfig,
    proxy_problem,
    status_ranges,
)
from urlfleet.errors import InputError
from urlfleet.fetching.mediatypes import media_patterns

if TYPE_CHECKING:
    from urlfleet.cli.session import SessionOptions

T = TypeVar("T")


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
    _add_shaping_options(parser)
    out = parser.add_argument_group("output")
    out.add_argument(
        "-o",
        "--out",
        type=Path,
        metavar="PATH",
        help="write the records to PATH instead of stdout: JSON lines, or CSV when PATH ends "
        "in .csv (see --out-format)",
    )
    out.add_argument(
        "--out-format",
        choices=OUT_FORMATS,
        help="jsonl or csv: one row per URL, the record's keys as columns, a header row first "
        "(a CSV/TSV list's own columns follow as columns of their own). Default: csv for an "
        "-o ending in .csv, else jsonl (stdout too)",
    )
    out.add_argument(
        "--record-headers",
        action="store_true",
        help="add the final response's headers to each record (a 'headers' key before meta)",
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


def _add_shaping_options(parser: argparse.ArgumentParser) -> None:
    shaping = parser.add_argument_group("request shaping")
    shaping.add_argument("-X", "--method", metavar="NAME",
                         help="request method, as curl's -X (default GET; POST with --data); "
                         "a list row's own method wins")  # fmt: skip
    shaping.add_argument("--data", metavar="STRING",
                         help="send STRING as the request body; '@FILE' sends FILE's bytes as "
                         "they are (curl's --data-binary); a list row's own body wins")  # fmt: skip
    shaping.add_argument(
        "--data-file",
        type=Path,
        metavar="FILE",
        help="send FILE's bytes as the request body, as --data @FILE",
    )
    shaping.add_argument("--head", action="store_true",
                         help="send HEAD requests; a URL answered 405 or 501 is asked again "
                         "with GET (a request of its own, queued politely)")  # fmt: skip
    shaping.add_argument("--cookie", action="append", default=[], metavar="'NAME=VALUE'",
                         help="send this cookie with every request (repeatable; also "
                         "'a=1; b=2'); dropped when a redirect leaves the host")  # fmt: skip
    shaping.add_argument("--cookie-jar", type=Path, metavar="FILE",
                         help="a Netscape cookies.txt (curl's, wget's): read at the start if it "
                         "exists, written at the end with the cookies servers set, session "
                         "cookies too. Every thread shares one jar; with --processes or "
                         "--dask this process keeps it and gives each shard its hosts' "
                         "cookies")  # fmt: skip
    shaping.add_argument("--proxy", metavar="URL",
                         help="send every request through this proxy: http://, https://, "
                         "socks5:// or socks5h:// (default: HTTP_PROXY, HTTPS_PROXY, "
                         "NO_PROXY)")  # fmt: skip
    shaping.add_argument("--ok-status", metavar="LIST",
                         help="statuses that count as ok, codes or ranges: e.g. "
                         "'200-299,403,429' for a link checker; such a 429 is not retried "
                         "(default 200-299)")  # fmt: skip
    shaping.add_argument("--accept-type", action="append", default=[], metavar="PATTERN",
                         help="read a body only when its Content-Type matches (repeatable or "
                         "comma-separated: text/html, text/*, application/*+xml); others "
                         "stop after the headers, error_kind 'skipped'")  # fmt: skip


def config_from(args: argparse.Namespace, **overrides: Any) -> FetchConfig:
    """The FetchConfig the options describe; a bad value is an InputError (exit 2)."""
    check_numbers(args)
    ca_bundle, headers = _ca_bundle(args.ca_bundle), _headers(args.header)
    shaping = shaping_from(args)
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
            secret_headers=tuple(args.secret_header), **shaping, **_host_settings(args),
            **overrides,
        )  # fmt: skip
    except ValueError as exc:
        raise InputError(f"bad option: {exc}") from exc


def shaping_from(args: argparse.Namespace) -> dict[str, Any]:
    """FetchConfig's request-shaping fields from the options; a bad value is an InputError."""
    data = _data(args.data, args.data_file)
    method = args.method.upper() if args.method else None
    if method is not None and not (method.isascii() and method.isalpha()):
        raise InputError(f"bad option: -X/--method wants a method name like PUT, got {method!r}")
    if args.head and (data is not None or method not in (None, "GET", "HEAD")):
        raise InputError("bad option: --head cannot go with --data or -X (a HEAD has no body)")
    ok_status = DEFAULT_OK_STATUS if args.ok_status is None else args.ok_status
    return {
        "method": method or ("POST" if data is not None else "GET"),  # as curl
        "data": data,
        "head": args.head,
        "cookies": _cookies(args.cookie),
        "cookie_jar": args.cookie_jar,
        "proxies": _proxies(args.proxy),
        "ok_status": _parsed("--ok-status", status_ranges, ok_status),
        "accept_type": _parsed("--accept-type", media_patterns, args.accept_type),
    }


def _data(text: str | None, path: Path | None) -> bytes | None:
    if text is not None and path is not None:
        raise InputError("bad option: --data and --data-file cannot go together")
    option = "--data-file"
    if text is not None and text.startswith("@"):
        path, option = Path(text[1:]), "--data"
    elif text is not None:
        return os.fsencode(text)  # the bytes as typed, whatever the locale's encoding
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"{option} {path}: cannot read ({exc.strerror or exc})") from exc


def _cookies(given: list[str]) -> dict[str, str]:
    cookies: dict[str, str] = {}
    for text in given:
        for pair in text.split(";"):
            if not pair.strip():
                continue
            name, equals, value = pair.partition("=")
            if not equals or not name.strip():  # never shown: a cookie may be a session token
                raise InputError("--cookie wants 'name=value' (or 'a=1; b=2'); one has no "
                                 "name or no '=' (not shown)")  # fmt: skip
            cookies[name.strip()] = value.strip()  # checked by FetchConfig
    return cookies


def _proxies(url: str | None) -> dict[str, str]:
    if url is None:
        return {}
    problem = proxy_problem(url)
    if problem is not None:
        raise InputError(f"bad option: --proxy: {problem}")
    if url.lower().startswith("socks") and importlib.util.find_spec("socks") is None:
        raise InputError("bad option: --proxy: SOCKS proxies need PySocks "
                         "(pip install 'requests[socks]')")  # fmt: skip
    return {"http": url, "https": url}


def _parsed(option: str, parse: Callable[[Any], T], value: Any) -> T:
    try:
        return parse(value)
    except ValueError as exc:
        raise InputError(f"bad option: {option}: {exc}") from exc


def _host_settings(args: argparse.Namespace) -> dict[str, Any]:
    # host_limits and host_headers, from a configuration file's [hosts."NAME"] tables (fetch).
    return {name: getattr(args, name) for name in ("host_limits", "host_headers")
            if getattr(args, name, None)}  # fmt: skip


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
    # Imported here: building the parser must not load the run's modules (--help, --version).
    from urlfleet.cli.session import SessionOptions

    return SessionOptions(
        out=args.out,
        resume=args.resume,
        report=args.report,
        html=getattr(args, "html", None),
        progress=not args.no_progress,
        grace=args.grace,
        out_format=out_format_of(args.out, args.out_format),
        record_headers=args.record_headers,
    )


OUT_FORMATS = ("jsonl", "csv")


def out_format_of(out: Path | None, given: str | None) -> str:
    """The records' format: as given, else csv for an ``-o`` ending in .csv, else jsonl."""
    if given is not None:
        return given
    return "csv" if out is not None and out.suffix.lower() == ".csv" else "jsonl"


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
