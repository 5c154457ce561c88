"""Fetching: one request for one leased job, turned into a Step: a final Result or a re-queue.

``Fetcher.step`` never raises for anything a URL or a server can do: every failure becomes a
Result with ``ok=False`` and the reason in plain words, because one exception escaping a joblib
task would end the whole run and the contract promises one record per URL.

Fetch code never decides anything about a host: it writes its request inside the lease's
hold, and says what it saw in the Step's ``Attempt``. The frontier and the politeness rules
take it from there.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, NamedTuple, TypeVar

import requests
from tenacity import Retrying
from urllib3.exceptions import HTTPError, ReadTimeoutError
from urllib3.util import SKIP_HEADER, SKIPPABLE_HEADERS

from urlfleet.config import FetchConfig
from urlfleet.errors import (
    DeadlineExceeded,
    NotAccepted,
    RetryableStatus,
    RetryRequested,
    SaveError,
    UrlfleetError,
)
from urlfleet.fetching import sending
from urlfleet.fetching.adapter import install_gate, is_gated, new_session, shared_adapter
from urlfleet.fetching.cookies import SharedCookieJar, new_jar
from urlfleet.fetching.deadlines import Deadlines, Watch
from urlfleet.fetching.environment import Environment
from urlfleet.fetching.failures import describe, kind_of, kind_of_problem
from urlfleet.fetching.gate import gate, wrote_at
from urlfleet.fetching.mediatypes import accepts, shown
from urlfleet.fetching.retrying import (
    RETRY_STATUSES,
    TRANSIENT_ERRORS,
    build_retrying,
    new_attempts,
    next_wait,
    parse_retry_after,
)
from urlfleet.politeness import ROBOTS_MAX_BYTES, Attempt, Lease, NotDue, RobotsAnswer, host_key
from urlfleet.politeness.identity import key_of
from urlfleet.read.items import UrlRequest
from urlfleet.read.sitemaps import MAX_BYTES as SITEMAP_MAX_BYTES
from urlfleet.read.sitemaps import Sitemap, SitemapError, parse, unpack
from urlfleet.record.records import Result
from urlfleet.record.saving import SavedBody, body_path
from urlfleet.schedule.job import Job
from urlfleet.urls import checked_url, redact_url, scrub

T = TypeVar("T")
CHUNK_SIZE = 64 * 1024  # requests' default of 10 KiB costs CPU on large bodies
# A redirect's body is read only to keep its connection for the next request; a longer one
# costs the connection, never memory: requests would read and decode any size, bombs too.
REDIRECT_BODY_MAX = 64 * 1024
# A request goes back unwritten when its host is paused or its gap is far off, a few times at
# most; this many in a row means something is wrong, and the URL fails rather than spin.
MAX_SENT_BACK = 1000
HEAD_REFUSED = frozenset({405, 501})  # a HEAD answered so is asked again with GET (--head)
SessionFactory = Callable[[], requests.Session]
# Request headers that make a request conditional: a 304 to one means "what you have is current".
CONDITIONAL_HEADERS = frozenset({"if-none-match", "if-modified-since"})


class Body(NamedTuple):
    """What was read of a response body."""

    content: bytes = b""
    size: int = 0
    truncated: bool = False
    saved_to: str | None = None
    sha256: str | None = None  # of ``size`` bytes as decoded; None when no body was read


@dataclass(frozen=True, slots=True)
class Step:
    """What one step of a job came to: for the frontier, and for the record."""

    attempt: Attempt | None = None  # what the request saw; None when nothing was written
    again_at: float | None = None  # queue the job again for this moment (a retry, a hop)
    result: Result | None = None  # the job's final record
    robots: RobotsAnswer | None = None  # a robots.txt job's final answer (it has no record)
    sitemap: Sitemap | None = None  # a sitemap job's parsed answer (a good one has no record)


class Fetcher:
    """Everything a worker thread needs to fetch: config, retry policy, its own Session.

    A requests.Session is not thread-safe, so each thread gets its own; all are closed by
    ``close()``.
    """

    def __init__(
        self,
        config: FetchConfig,
        *,
        session_factory: SessionFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
        cookies: SharedCookieJar | None = None,
    ) -> None:
        """``cookies``: the jar every thread's Session shares (default: a new one holding
        ``config.cookies``); a caller's own sessions (``session_factory``) keep their own."""
        self.config = config
        self.cookies = cookies if cookies is not None else new_jar(config.cookies)
        self.retrying: Retrying = build_retrying(config)
        self._session_factory = session_factory or self._default_session
        self._clock = clock
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self._adapter = shared_adapter(config)
        self._own_sessions = session_factory is None
        self._preparer_made: sending.Preparer | None = None
        self._environment = Environment(config)
        self._deadlines = Deadlines(config.max_time) if config.max_time is not None else None
        self._host_headers = {key_of(key): dict(h) for key, h in config.host_headers.items()}
        # The run's start, for each record's started_s: one Fetcher serves one run (on a
        # dask cluster, one shard).
        self.started = clock()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every Session any thread opened (and so their pooled connections)."""
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()  # the shared adapter too: closing it twice is harmless
        self._local = threading.local()
        if self._deadlines is not None:
            self._deadlines.close()

    def session(self) -> requests.Session:
        """This thread's Session, created on first use."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._session_factory()
            if not self._own_sessions:
                install_gate(session)
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def _default_session(self) -> requests.Session:
        return new_session(self.config, self._adapter, self.cookies)

    def _preparer(self, session: requests.Session) -> sending.Preparer:
        # Every Session of ours has the same settings: the first one made serves as the model.
        preparer = self._preparer_made
        if preparer is None:
            with self._sessions_lock:
                preparer = self._preparer_made = self._preparer_made or sending.Preparer(session)
        return preparer

    def new_job(
        self, index: int, url: str, meta: Any = None, asked: UrlRequest | None = None
    ) -> Job:
        """A job for one input URL; a URL that cannot be fetched carries its problem."""
        problem, prepared = checked_url(url) if isinstance(url, str) else (
            f"not a URL string: {url!r}", None)  # fmt: skip
        host = host_key(url) if problem is None else ""
        job = Job(index=index, url=str(url), meta=meta, asked=asked, target=str(url), host=host)
        job.problem = None if problem is None else f"invalid URL: {problem}"
        job.prepared_url = prepared
        job.attempts = new_attempts(self.retrying)
        return job

    def step(self, lease: Lease) -> Step:
        """Make the leased job's next request."""
        job = lease.job
        if job.problem is not None:
            return self.failed(job, job.problem)
        if job.attempts is None:
            job.attempts = new_attempts(self.retrying)
        started = self._clock()
        first_start, job.first_start = job.first_start, job.first_start or started
        job.requests += 1
        try:
            with self._deadline() as watch:
                response, body, error = self._attempt(job, lease, watch)
        except NotDue as not_due:  # nothing was written: the frontier keeps it for later
            job.requests -= 1
            job.first_start = first_start
            job.sent_back += 1
            if job.sent_back >= MAX_SENT_BACK:  # a bug, never a reason to spin for ever
                return self.failed(job, f"internal error: request sent back {job.sent_back} "
                                   "times unwritten")  # fmt: skip
            return Step(again_at=not_due.until)
        job.sent_back = 0
        if watch is not None and watch.expired:  # cut by the watchdog, whatever it looked like
            assert self.config.max_time is not None
            error, body = DeadlineExceeded(self.config.max_time), Body()
        elif response is not None and response.is_redirect and response.next is not None:
            return self._redirect(job, response, started)
        elif response is not None and self._head_refused(job, response):
            return self._ask_with_get(job, response, started)
        latency = self._clock() - started
        job.busy_s += latency
        assert job.attempts is not None
        status = response.status_code if response is not None else None
        attempt = Attempt(
            status=status,
            latency=latency,
            failed=isinstance(error, TRANSIENT_ERRORS),
            retry_after=error.retry_after if isinstance(error, RetryableStatus) else None,
            problem=describe(error, status, body.truncated, 1),
        )
        wait = next_wait(self.retrying, job.attempts, error)
        if wait is not None:
            return Step(attempt, again_at=self._clock() + wait)
        return self._final(job, self._result(job, response, body, error), attempt, body)

    def _attempt(
        self, job: Job, lease: Lease, watch: Watch | None
    ) -> tuple[requests.Response | None, Body, BaseException | None]:
        """One request and its body: what came back, and the error that ended it, if any."""
        response: requests.Response | None = None
        body, error = Body(), None
        try:
            response = self._send(job, lease)
            if watch is not None:  # the body comes on this socket (a proxy's, maybe)
                watch.attach(_socket_of(response))
            if response.status_code in (429, 503):
                job.throttled += 1
            if response.is_redirect and response.next is not None:
                return response, body, None
            if self._retries_status(response.status_code, job):
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                raise RetryableStatus(response.status_code, retry_after)
            self._check_type(response, job)
            body = self._read_body(response, job)
            if response.status_code == 304:  # bodiless: read only to keep the connection
                body = Body()
            if self._checks_retry(job) and self._asks_retry(job, response, body):
                raise RetryRequested("retry_if asked for another attempt")
        except (NotDue, SaveError):
            raise
        except (requests.RequestException, UrlfleetError, OSError, ValueError) as exc:
            error = exc
        finally:
            if response is not None:
                response.close()
        return response, body, error

    def _deadline(self) -> AbstractContextManager[Watch | None]:
        return self._deadlines.attempt() if self._deadlines is not None else nullcontext()

    def failed(self, job: Job, why: str) -> Step:
        """The last Step of a job that ends without a response to speak of."""
        return self._final(job, self.failure(job, why), None)

    def _final(
        self, job: Job, result: Result, attempt: Attempt | None, body: Body | None = None
    ) -> Step:
        if job.sitemap is not None:
            return self._sitemap_step(result, attempt, body)
        if job.robots_for is None:
            return Step(attempt, result=result)
        # A robots.txt job ends in an answer for its host, not in a record. An answer is a
        # status, read in full; a body cut short says nothing of the rules.
        content = body.content if body is not None else b""
        answered = result.status is not None and result.error_kind in (None, "http", "redirect")
        status = result.status if answered else None
        answer = RobotsAnswer(status, content, "" if answered else result.error or "")
        return Step(attempt, robots=answer)

    def _sitemap_step(self, result: Result, attempt: Attempt | None, body: Body | None) -> Step:
        # A sitemap job ends in more input when it parses, else in a record saying why.
        limit = self._sitemap_limit()
        if result.ok and body is not None:
            try:
                return Step(attempt, sitemap=parse(unpack(body.content, limit)))
            except SitemapError as exc:
                return Step(attempt, result=_sitemap_failed(result, str(exc)))
        if result.truncated:
            return Step(attempt, result=_sitemap_failed(result, f"larger than {limit} bytes"))
        return Step(attempt, result=replace(result, error=f"sitemap: {result.error}"))

    def _sitemap_limit(self) -> int:
        return min(SITEMAP_MAX_BYTES, self.config.max_bytes)

    def _checks_retry(self, job: Job) -> bool:
        return self.config.retry_if is not None and job.robots_for is None

    def _asks_retry(self, job: Job, response: requests.Response, body: Body) -> bool:
        assert self.config.retry_if is not None
        return bool(self.config.retry_if(self._result(job, response, body, None)))

    def _send(self, job: Job, lease: Lease) -> requests.Response:
        session = self.session()
        if self._own_sessions:
            env = self._environment.settings(job.target)
            request = job.request or self._preparer(session).prepare(
                self._request(job, auth=env.auth),
                job.prepared_url if job.target == job.url else None,
            )
            settings: dict[str, Any] = {"proxies": env.proxies, "verify": env.verify}
            settings.update(stream=True, cert=None)
            gated = env.gated
        else:  # a caller's own sessions: requests' own lookups, as the caller set them up
            request = job.request or session.prepare_request(self._request(job))
            settings = dict(session.merge_environment_settings(request.url, {}, True, None, None))
            settings["stream"] = True
            gated = is_gated(session, request.url or "", settings.get("proxies"))
        if _drain_redirect not in request.hooks["response"]:
            request.register_hook("response", _drain_redirect)
        limit = min(self.config.timeout, self.config.max_time or math.inf)
        timeout = (limit, limit)
        if not gated:
            # Connections this process cannot gate (SOCKS, a custom adapter): the same rule,
            # kept just before the send instead of at the write.
            with lease.hold():
                pass
            return self._timed(job, session, request, timeout=timeout, **settings)
        lease.check()  # not due: back to the frontier before a pooled connection is taken
        with gate(lease):
            return self._timed(job, session, request, timeout=timeout, **settings)

    def _timed(
        self, job: Job, session: requests.Session, request: requests.PreparedRequest,
        **settings: Any,
    ) -> requests.Response:  # fmt: skip
        # A gated request's clock starts at its write (connection set up, the host's gap
        # passed); any other's just before the send. Real time, whatever the run's clock.
        before = time.monotonic()
        if self._own_sessions:
            response = sending.send(session, request, **settings)
        else:
            response = session.send(request, allow_redirects=False, **settings)
        job.ttfb_s = round(time.monotonic() - max(before, wrote_at() or before), 6)
        return response

    def _request(self, job: Job, auth: Any = None) -> requests.Request:
        """The first request of a job, before the session merges its own headers in.

        What the list item asked for wins over the run's method and body. robots.txt and
        sitemaps are read as content: always a plain GET, whatever the run sends."""
        config, asked = self.config, job.asked
        if job.robots_for is not None or job.sitemap is not None:
            return requests.Request(
                "GET", job.target, headers=self._headers_for(job.host), auth=auth
            )
        method = "HEAD" if config.head else config.method
        # The host's own headers win over the session's (every URL's); a list item's own
        # headers win over both, as the most particular.
        headers = {**self._headers_for(job.host), **(_with_validators(asked) if asked else {})}
        if asked is None:
            return requests.Request(
                method, job.target, headers=headers, data=config.data, auth=auth
            )
        return requests.Request(
            asked.method or method,
            job.target,
            headers=headers,
            data=asked.data if asked.data is not None else config.data,
            auth=auth,
        )

    def _head_refused(self, job: Job, response: requests.Response) -> bool:
        # Only a HEAD that --head chose: a list row that asked for HEAD gets what it asked.
        return (
            self.config.head
            and (job.asked is None or job.asked.method is None)
            and response.request.method == "HEAD"
            and response.status_code in HEAD_REFUSED
        )

    def _ask_with_get(self, job: Job, response: requests.Response, started: float) -> Step:
        # The same request as a GET, queued like a redirect hop so the host's politeness
        # applies to it; built from the HEAD as sent, so a redirect's dropped secrets stay so.
        latency = self._clock() - started
        job.busy_s += latency
        retry = response.request.copy()
        retry.method = "GET"
        job.request = retry
        return Step(Attempt(status=response.status_code, latency=latency), again_at=self._clock())

    def _redirect(self, job: Job, response: requests.Response, started: float) -> Step:
        latency = self._clock() - started
        job.busy_s += latency
        attempt = Attempt(status=response.status_code, latency=latency)
        if job.hops >= self.config.max_redirects:
            error = requests.TooManyRedirects(f"more than {self.config.max_redirects} redirects")
            return self._final(job, self._result(job, response, Body(), error), attempt)
        # requests prepared the next hop for us: method, cookies, and Authorization and
        # Proxy-Authorization dropped when the redirect leaves the host. It goes back to the
        # frontier, so the new host's politeness applies to it like to any other request.
        hop = response.next
        assert hop is not None
        target = str(hop.url)
        if host_key(target) != job.host:
            self._forget_secrets(hop)
            self._move_host_headers(hop, job, host_key(target))
        job.request, job.target, job.host = hop, target, host_key(target)
        job.hops += 1
        return Step(attempt, again_at=self._clock())

    def _headers_for(self, host: str) -> dict[str, str | None]:
        """``host_headers`` of one host as a request carries them: None leaves a header out
        (urllib3's SKIP_HEADER where urllib3 would otherwise add its own)."""
        headers: dict[str, str | None] = {}
        for name, value in self._host_headers.get(host, {}).items():
            if name.lower() == "proxy-authorization":
                continue  # the proxy's alone, never the origin's: see new_session
            if value is None and name.lower() in SKIPPABLE_HEADERS:
                value = SKIP_HEADER
            headers[name] = value
        return headers

    def _move_host_headers(self, hop: requests.PreparedRequest, job: Job, new_host: str) -> None:
        """A redirect to another host: the old host's own headers go (the session's value of
        the same name comes back, unless it is one never sent to another host), the new
        host's come. A list item's own headers stay as requests carried them."""
        own = {name.lower() for name in (job.asked.headers if job.asked else ())}
        never_moved = {"authorization", "proxy-authorization", "cookie"}
        never_moved.update(name.lower() for name in self.config.secret_headers)
        every_url = self.session().headers
        for name in self._headers_for(job.host):
            if name.lower() in own:
                continue
            hop.headers.pop(name, None)
            value = every_url.get(name)
            if isinstance(value, str) and name.lower() not in never_moved:
                hop.headers[name] = value
        for name, new in self._headers_for(new_host).items():
            if name.lower() in own:
                continue
            if new is None:
                hop.headers.pop(name, None)
            else:
                hop.headers[name] = new

    def _forget_secrets(self, hop: requests.PreparedRequest) -> None:
        """What must not follow a redirect to another host, besides what requests drops:
        the cookies given for every URL (not set by a server for that host), and the
        headers the user marked as secret."""
        for name in self.config.secret_headers:
            hop.headers.pop(name, None)
        jar = getattr(hop, "_cookies", None)
        if self.config.cookies and isinstance(jar, requests.cookies.RequestsCookieJar):
            for name in self.config.cookies:
                with contextlib.suppress(KeyError):
                    jar.clear("", "/", name)  # as cookiejar_from_dict made them: no domain
            hop.headers.pop("Cookie", None)
            hop.prepare_cookies(jar)

    def _read_body(self, response: requests.Response, job: Job) -> Body:
        robots, sitemap = job.robots_for is not None, job.sitemap is not None
        limit = ROBOTS_MAX_BYTES if robots else self.config.max_bytes
        if sitemap:
            limit = self._sitemap_limit()
        keep = robots or sitemap or self.config.keep_content or self.config.retry_if is not None
        body, size, digest = bytearray(), 0, hashlib.sha256()
        with ExitStack() as stack:
            saving = nullcontext() if robots or sitemap else self._saved_body(response, job)
            saved = _saving(stack.enter_context, saving)
            # iter_content decodes gzip, deflate, br and zstd, so the cap applies to what a bomb
            # inflates to.
            for chunk in _timed_out_as_read_timeout(response.iter_content(CHUNK_SIZE)):
                if size + len(chunk) > limit:
                    kept = chunk[: limit - size]
                    digest.update(kept)
                    if keep:
                        body += kept
                    # Never saved. RFC 9309: what lies past the limit of a robots.txt may be
                    # ignored.
                    sha256 = digest.hexdigest()
                    return Body(bytes(body), limit, truncated=not robots, sha256=sha256)
                size += len(chunk)
                digest.update(chunk)  # as it streams: a body only saved is hashed too
                if keep:
                    body += chunk
                if saved is not None:
                    _saving(saved.write, chunk)
            path = _saving(saved.commit) if saved is not None else None
        saved_to = None if path is None else str(path)
        return Body(bytes(body), size, saved_to=saved_to, sha256=digest.hexdigest())

    def _saved_body(
        self, response: requests.Response, job: Job
    ) -> AbstractContextManager[SavedBody | None]:
        if self.config.save_dir is None or not 200 <= response.status_code < 300:
            return nullcontext()
        if response.request.method == "HEAD":  # no body: nothing to save
            return nullcontext()
        content_type = response.headers.get("Content-Type")
        return SavedBody(body_path(self.config.save_dir, job.url, content_type=content_type))

    def _result(
        self,
        job: Job,
        response: requests.Response | None,
        body: Body,
        error: BaseException | None,
    ) -> Result:
        attempts = job.attempts.attempt_number if job.attempts is not None else 1
        status = response.status_code if response is not None else None
        truncated = body.truncated
        ok = (
            error is None
            and not truncated
            and status is not None
            and self._counts_as_ok(status, job)
        )
        unchanged = ok and status == 304 and _is_conditional(job)
        said: Mapping[str, str] = response.headers if response is not None else {}
        asked = job.asked if unchanged else None  # a 304 without validators keeps the asked ones
        return Result(
            url=redact_url(job.url),
            ok=ok,
            status=status,
            error=None if ok else scrub(describe(error, status, truncated, attempts), job.url),
            error_kind=None if ok else kind_of(error, status, truncated),
            attempts=attempts,
            elapsed_s=round(self._clock() - (job.first_start or self._clock()), 6),
            bytes=body.size,
            host=job.host if job.hops == 0 else host_key(job.url),  # hops move job.host
            final_url=redact_url(response.url) if response is not None else None,
            saved_to=body.saved_to,
            truncated=truncated,
            redirects=job.hops,
            content_type=said.get("Content-Type"),
            content_encoding=said.get("Content-Encoding"),
            fetched_at=_utc_now() if response is not None else None,
            started_s=self._started_s(job),
            ttfb_s=job.ttfb_s if response is not None else None,
            sha256=body.sha256,
            etag=said.get("ETag") or (asked.etag if asked is not None else None),
            last_modified=said.get("Last-Modified") or (asked.last_modified if asked else None),
            unchanged=unchanged,
            revalidated=_is_conditional(job),
            content=body.content,
            headers=response.headers if response is not None else {},
            meta=job.meta,
            index=job.index,
            requests=job.requests,
            busy_s=job.busy_s,
            throttled=job.throttled,
            started=job.first_start or 0.0,
        )

    def _counts_as_ok(self, status: int, job: Job) -> bool:
        """Whether a final ``status`` makes the record ok (--ok-status; 2xx by default).

        robots.txt and sitemap jobs keep the 2xx rule: their answers are read as content.
        """
        if job.robots_for is not None or job.sitemap is not None:
            return 200 <= status < 300
        if status == 304 and _is_conditional(job):  # what the caller has is current
            return True
        return any(low <= status <= high for low, high in self.config.ok_status)

    def _retries_status(self, status: int, job: Job) -> bool:
        # A status the user counts as ok (say --ok-status 429) is an answer, not a "later".
        return status in RETRY_STATUSES and not self._counts_as_ok(status, job)

    def _check_type(self, response: requests.Response, job: Job) -> None:
        # --accept-type: stop after the headers; the body is never read, nor saved.
        patterns = self.config.accept_type
        if not patterns or job.robots_for is not None or job.sitemap is not None:
            return
        content_type = response.headers.get("Content-Type")
        if not accepts(patterns, content_type):
            raise NotAccepted(shown(content_type))

    def _started_s(self, job: Job) -> float | None:
        if job.first_start is None:
            return None
        return round(max(0.0, job.first_start - self.started), 6)

    def failure(self, job: Job, error: str) -> Result:
        """A failed Result for a job that got no response to speak of."""
        attempts = job.attempts.attempt_number if job.requests and job.attempts else 0
        result = Result.failed(
            redact_url(job.url), scrub(error, job.url),
            host=job.host, meta=job.meta, index=job.index, attempts=attempts,
            kind=kind_of_problem(error),
        )  # fmt: skip
        return replace(result, started_s=self._started_s(job)) if job.requests else result


def _is_conditional(job: Job) -> bool:
    asked = job.asked
    if asked is None:
        return False
    given = {name.lower() for name, value in asked.headers.items() if value is not None}
    return asked.conditional or bool(given & CONDITIONAL_HEADERS)


def _with_validators(asked: UrlRequest) -> dict[str, str | None]:
    # The item's validators become its conditional headers; a header it gives itself wins.
    headers = dict(asked.headers)
    given = {name.lower() for name in headers}
    if asked.etag is not None and "if-none-match" not in given:
        headers["If-None-Match"] = asked.etag
    if asked.last_modified is not None and "if-modified-since" not in given:
        headers["If-Modified-Since"] = asked.last_modified
    return headers


def _utc_now() -> str:
    # Milliseconds are plenty for "when", and keep the record short.
    moment = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    return moment.replace("+00:00", "Z")


def _sitemap_failed(result: Result, why: str) -> Result:
    return replace(result, ok=False, error=f"sitemap: {why}", error_kind="sitemap", content=b"")


def _saving(action: Callable[..., T], *args: Any) -> T:
    # A disk that cannot take the bodies ends the run (exit 2), not just one URL.
    try:
        return action(*args)
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        raise SaveError(f"cannot save bodies ({exc.strerror or exc}{where})") from exc


def _socket_of(response: requests.Response) -> socket.socket | None:
    connection = getattr(response.raw, "connection", None)
    return getattr(connection, "sock", None)


def _drain_redirect(response: requests.Response, **_: Any) -> requests.Response:
    """Read a redirect's body before requests does, raw and capped (a response hook).

    requests reads every 3xx body whole, decoded, to release its connection, even when the
    redirect is not followed: a 302 whose gzip body inflates to gigabytes would fill memory.
    Here it reads at most REDIRECT_BODY_MAX raw bytes; past that the connection is dropped.
    """
    if not response.is_redirect or getattr(response, "_content_consumed", False):
        return response
    raw, left = response.raw, REDIRECT_BODY_MAX
    try:
        while left > 0 and (chunk := raw.read(min(left, CHUNK_SIZE), decode_content=False)):
            left -= len(chunk)
        if left <= 0:
            raw.close()  # more to come: not worth reading, nor the connection worth keeping
    except (OSError, ValueError, requests.RequestException, HTTPError):
        raw.close()
    response._content = b""
    setattr(response, "_content_consumed", True)  # noqa: B010 - no typed way to say so
    return response


def _timed_out_as_read_timeout(chunks: Iterator[bytes]) -> Iterator[bytes]:
    # requests reports a read timeout in the body as a ConnectionError; call it what it is.
    try:
        yield from chunks
    except requests.ConnectionError as exc:
        if exc.args and isinstance(exc.args[0], ReadTimeoutError):
            raise requests.ReadTimeout(*exc.args) from exc
        raise
