"""FetchConfig: every knob of a run in one frozen, validated value.

The CLI's job is to build one of these; the library takes one (or the same names as keywords).
Change a config with ``dataclasses.replace(config, jobs=64)``; validation runs again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from urlfleet._version import __version__
from urlfleet.fetching.mediatypes import media_patterns

if TYPE_CHECKING:
    from urlfleet.record.records import Result

DEFAULT_JOBS = 32
DEFAULT_PER_HOST = 2
DEFAULT_RETRIES = 3  # retries *after* the first attempt: 3 means at most 4 attempts
DEFAULT_MAX_WAIT = 60.0
DEFAULT_BACKOFF = 0.5
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_MAX_REDIRECTS = 10  # what curl -L and wget give up at is 50 and 20; browsers use ~20
DEFAULT_USER_AGENT = f"urlfleet/{__version__}"
# How many URLs past the one being handed out the scheduler may read ahead, to find hosts that
# can take a request while others are busy. Large enough for a hot host's block at the top of a
# list, small enough that a huge list never sits in memory whole.
DEFAULT_WINDOW = 10_000
# On a dask cluster: URLs per task. A shard should take a second or more (a thread pool and
# connections are set up per shard): 1,000 URLs is ~0.5 s of one process's CPU at 0 ms latency.
DEFAULT_SHARD_SIZE = 1000
# In processes on this machine (--processes): at most this many URLs per shard, an equal
# share of a shorter list. A shard's set-up (a new Run, its threads, new connections to its
# hosts) is then lost in the noise, and a host's URLs mostly fit in one shard (one that spans
# two reconnects once).
DEFAULT_LOCAL_SHARD_SIZE = 5000
# Statuses that mean "not now" rather than "no": request timeout, too early, too many requests,
# and the server-side failures that a later attempt often gets past (Scrapy's RETRY_HTTP_CODES
# plus 425). Every other 4xx is the server's final answer.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# The answers with which a host asks us to slow down: each pauses the whole host, counts as
# throttled in its record, and is drawn as such on the timeline.
THROTTLE_STATUSES = frozenset({429, 503})
DEFAULT_HOST_BACKOFF = 2.0  # first host-wide pause after a 429/503 that gave no Retry-After
DEFAULT_MAX_FAILURES = 10  # failures in a row that cut a host off (wget2 blocks hosts too)
DEFAULT_MAX_CRAWL_DELAY = 30.0  # a robots.txt Crawl-delay above this is taken as this
DEFAULT_OK_STATUS = ((200, 299),)
PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")


@dataclass(frozen=True, slots=True)
class HostLimits:
    """The politeness limits of one host: requests in flight, and the gap between starts.

    >>> FetchConfig(host_limits={"slow.example": HostLimits(per_host=1, delay=2.0)})
    """

    per_host: int
    delay: float = 0.0

    def __post_init__(self) -> None:
        _require(self.per_host >= 1, f"per_host must be >= 1, got {self.per_host}")
        _require(self.delay >= 0, f"delay must be >= 0 seconds, got {self.delay}")


@dataclass(frozen=True, kw_only=True, slots=True)
class FetchConfig:
    """How to fetch: concurrency, politeness, retries, limits.

    >>> FetchConfig(jobs=64, per_host=4, delay=0.5)
    """

    jobs: int = DEFAULT_JOBS
    per_host: int = DEFAULT_PER_HOST
    delay: float = 0.0
    jitter: float = 0.0
    retries: int = DEFAULT_RETRIES
    max_wait: float = DEFAULT_MAX_WAIT
    backoff: float = DEFAULT_BACKOFF
    timeout: float = DEFAULT_TIMEOUT
    max_time: float | None = None  # a deadline for each whole attempt, as curl's -m
    max_bytes: int = DEFAULT_MAX_BYTES
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    user_agent: str = DEFAULT_USER_AGENT
    verify: bool = True
    ca_bundle: str | None = None  # PEM file of the CAs to trust instead of the default ones
    save_dir: Path | None = None
    keep_content: bool = True  # keep bodies in memory for Result.content (the CLI does not)
    window: int = DEFAULT_WINDOW
    host_backoff: float = DEFAULT_HOST_BACKOFF
    host_max_failures: int = DEFAULT_MAX_FAILURES
    robots: bool = False  # off for explicit URL lists, as in wget and curl
    max_crawl_delay: float = DEFAULT_MAX_CRAWL_DELAY
    auto_throttle: bool = False
    # Per-host limits that replace per_host and delay for those hosts (keys as host_key()).
    host_limits: Mapping[str, HostLimits] = field(default_factory=dict)
    # What every request carries, as in requests.Session.
    headers: Mapping[str, str | None] = field(default_factory=dict)  # None: do not send it
    # Headers for one host's requests only (keys as host_limits'), over ``headers``.
    host_headers: Mapping[str, Mapping[str, str | None]] = field(default_factory=dict)
    cookies: Mapping[str, str] = field(default_factory=dict)
    # Headers dropped when a redirect leaves the host, besides those always dropped
    # (Authorization, Proxy-Authorization, and Cookie from `cookies`): e.g. "X-Api-Key".
    secret_headers: tuple[str, ...] = ()
    auth: tuple[str, str] | None = None
    proxies: Mapping[str, str] = field(default_factory=dict)
    # How to ask: the method and body of every request (a list row's own win for that URL).
    # The library sends what it is told; the CLI makes --data without -X a POST, as curl.
    method: str = "GET"
    data: bytes | None = None
    head: bool = False  # send HEAD; a 405 or 501 answer gets the same URL asked with GET
    # A Netscape cookies.txt read at the start (when it exists) and written at the end.
    cookie_jar: Path | None = None
    # The statuses that count as ok, as (low, high) ranges: "200-299,404" for a link checker.
    ok_status: tuple[tuple[int, int], ...] = DEFAULT_OK_STATUS
    # Media type patterns a final response must match ("text/*"), else its body is not read.
    accept_type: tuple[str, ...] = ()
    # Decides, from a response that looks fine, that it is not: e.g. a 200 "rate limited" page.
    retry_if: Callable[[Result], bool] | None = None

    def __post_init__(self) -> None:
        _require(self.jobs != 0, "jobs must not be 0 (use 1 for one thread, -1 for one per CPU)")
        _require(self.per_host >= 1, f"per_host must be >= 1, got {self.per_host}")
        for name in ("delay", "jitter", "max_wait", "backoff", "host_backoff", "max_crawl_delay"):
            value = getattr(self, name)
            _require(value >= 0, f"{name} must be >= 0 seconds, got {value}")
        _require(self.retries >= 0, f"retries must be >= 0, got {self.retries}")
        _require(self.timeout > 0, f"timeout must be > 0 seconds, got {self.timeout}")
        if self.max_time is not None:
            _require(self.max_time > 0, f"max_time must be > 0 seconds, got {self.max_time}")
        _require(self.max_bytes >= 0, f"max_bytes must be >= 0, got {self.max_bytes}")
        _require(self.max_redirects >= 0, f"max_redirects must be >= 0, got {self.max_redirects}")
        _require(self.window >= 1, f"window must be >= 1, got {self.window}")
        _require(self.host_max_failures >= 0, "host_max_failures must be >= 0 (0: never)")
        if self.save_dir is not None and not isinstance(self.save_dir, Path):
            object.__setattr__(self, "save_dir", Path(self.save_dir))
        object.__setattr__(self, "headers", _checked_headers(self.headers))
        object.__setattr__(self, "cookies", _checked_cookies(self.cookies))
        host_headers = {
            key.lower(): MappingProxyType(_checked_headers(value))
            for key, value in self.host_headers.items()
        }
        object.__setattr__(self, "secret_headers", _checked_names(self.secret_headers))
        self._check_shaping()
        if self.auth is not None:
            _require(
                isinstance(self.auth, tuple) and len(self.auth) == 2
                and all(isinstance(part, str) for part in self.auth),
                "auth must be a (user, password) pair of strings",
            )  # fmt: skip
        limits = {key.lower(): _limits(value) for key, value in self.host_limits.items()}
        for name, value in (("host_limits", limits), ("headers", self.headers),
                            ("host_headers", host_headers), ("cookies", self.cookies),
                            ("proxies", self.proxies)):  # fmt: skip
            object.__setattr__(self, name, MappingProxyType(dict(value)))  # frozen all the way

    def _check_shaping(self) -> None:
        method = self.method
        _require(isinstance(method, str) and method.isalpha(), f"bad method {method!r}")
        object.__setattr__(self, "method", method.upper())
        if isinstance(self.data, str):
            object.__setattr__(self, "data", self.data.encode("utf-8"))
        _require(self.data is None or isinstance(self.data, bytes), "data must be bytes")
        if self.head:
            _require(self.method in ("GET", "HEAD"), f"head cannot go with method {method!r}")
            _require(self.data is None, "head cannot go with data (a HEAD request has no body)")
        if self.cookie_jar is not None and not isinstance(self.cookie_jar, Path):
            object.__setattr__(self, "cookie_jar", Path(self.cookie_jar))
        object.__setattr__(self, "ok_status", status_ranges(self.ok_status))
        object.__setattr__(self, "accept_type", media_patterns(self.accept_type))
        for scheme, proxy in self.proxies.items():
            if scheme == "no":  # requests' NO_PROXY list, not a proxy
                continue
            problem = proxy_problem(proxy)
            _require(problem is None, f"proxy for {scheme!r}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Read-only mappings do not pickle; rebuild from plain dicts (validated again).
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("host_limits", "headers", "cookies", "proxies"):
            values[name] = dict(values[name])
        values["host_headers"] = {k: dict(v) for k, v in values["host_headers"].items()}
        return (_rebuild, (values,))


# RFC 9110 field names are tokens; values may not hold line breaks or NUL, and their leading
# and trailing whitespace is not part of them (a token read from a file ends in a newline).
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BAD_IN_VALUE = re.compile(r"[\r\n\x00]")
_BAD_IN_COOKIE = re.compile(r"[\s;,\\\"\x00-\x1f\x7f]")


def _checked_headers(headers: Mapping[str, str | None]) -> dict[str, str | None]:
    # None leaves a header out altogether (User-Agent, Accept...), as in requests.Session.
    kept = _checked("header", {k: v for k, v in headers.items() if v is not None},
                    _BAD_IN_VALUE, "a line break or NUL")  # fmt: skip
    for name in headers:
        _require(isinstance(name, str) and bool(_TOKEN.match(name)), f"bad header name {name!r}")
    return {name: kept.get(name) for name in headers}


def _checked_cookies(cookies: Mapping[str, str]) -> dict[str, str]:
    return _checked("cookie", cookies, _BAD_IN_COOKIE, "a space, ';', ',', a quote or a control "
                    "character")  # fmt: skip


def _checked(
    what: str, fields: Mapping[str, str], bad: re.Pattern[str], says: str
) -> dict[str, str]:
    checked = {}
    for name, value in fields.items():
        _require(isinstance(name, str) and bool(_TOKEN.match(name)), f"bad {what} name {name!r}")
        _require(isinstance(value, str), f"{what} {name!r}: the value must be a string")
        value = value.strip(" \t\r\n")
        # The value is never shown: headers and cookies carry tokens and passwords.
        _require(
            not bad.search(value), f"{what} {name!r}: the value holds {says} (value not shown)"
        )
        checked[name] = value
    return checked


def status_ranges(value: str | Iterable[int | tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Status ranges from ``"200-299,404"``, or from codes and (low, high) pairs.

    >>> status_ranges("200-299,403")
    ((200, 299), (403, 403))
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    _require(bool(items), "ok_status must name at least one status")
    return tuple(_status_range(item) for item in items)


def _status_range(item: object) -> tuple[int, int]:
    if isinstance(item, str):
        low, dash, high = item.strip().partition("-")
        _require(_is_code(low) and (not dash or _is_code(high)), f"bad status {item.strip()!r}: "
                 "want a code like 404 or a range like 200-299")  # fmt: skip
        return _checked_range(int(low), int(high if dash else low))
    if _is_int(item):
        assert isinstance(item, int)
        return _checked_range(item, item)
    if isinstance(item, tuple) and len(item) == 2 and _is_int(item[0]) and _is_int(item[1]):
        return _checked_range(item[0], item[1])
    raise ValueError(f"bad status range {item!r}: want a code or a (low, high) pair")


def _checked_range(low: int, high: int) -> tuple[int, int]:
    _require(100 <= low <= high <= 599, f"bad status range {low}-{high}: codes are 100-599")
    return (low, high)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_code(text: str) -> bool:
    return len(text) == 3 and text.isascii() and text.isdigit()


def proxy_problem(url: str) -> str | None:
    """What is wrong with a proxy URL, or None: its scheme must be one urlfleet can use."""
    if not isinstance(url, str):
        return f"not a URL string: {url!r}"
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in PROXY_SCHEMES:
        return f"the scheme must be one of {', '.join(PROXY_SCHEMES)} (as in http://host:port)"
    if not rest.strip("/"):
        return "no host in it"
    return None


def _checked_names(names: Any) -> tuple[str, ...]:
    _require(not isinstance(names, str), "secret_headers must be a list of header names")
    for name in names:
        _require(isinstance(name, str) and bool(_TOKEN.match(name)), f"bad header name {name!r}")
    return tuple(names)


def _rebuild(values: dict[str, Any]) -> FetchConfig:
    return FetchConfig(**values)


def _limits(value: HostLimits | Mapping[str, Any] | tuple[int, float]) -> HostLimits:
    if isinstance(value, HostLimits):
        return value
    if isinstance(value, Mapping):
        return HostLimits(**value)
    return HostLimits(*value)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)
