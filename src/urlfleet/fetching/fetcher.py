"""Fetching: one request for a job, under its hold, turned into a Step: a Result or a re-queue.

``Fetcher.step`` never raises for anything a URL or a server can do: every failure becomes a
Result with ``ok=False`` and the reason in plain words, because one exception escaping a joblib
task would end the whole run and the contract promises one record per URL.

Fetch code never decides anything about a host: it writes its request inside the hold it is
given (the lease's), and says what it saw in the Step's ``Attempt``. The frontier and the
politeness rules take it from there; the fetcher never sees the lease itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import requests
from tenacity import Retrying

from urlfleet.config import THROTTLE_STATUSES, FetchConfig
from urlfleet.errors import (
    DeadlineExceeded,
    RetryableStatus,
    RetryRequested,
    SaveError,
    UrlfleetError,
)
from urlfleet.fetching.body import Body, check_type, socket_of
from urlfleet.fetching.cookies import SharedCookieJar, new_jar
from urlfleet.fetching.deadlines import Deadlines, Watch
from urlfleet.fetching.failures import describe, kind_of
from urlfleet.fetching.gate import Gate, NotDue
from urlfleet.fetching.kinds import Step, kind_for
from urlfleet.fetching.results import Results
from urlfleet.fetching.retrying import (
    build_retrying,
    new_attempts,
    next_wait,
    parse_retry_after,
)
from urlfleet.fetching.sessions import SessionFactory, Sessions
from urlfleet.fetching.shaping import Shaper
from urlfleet.politeness import Attempt, host_key
from urlfleet.read.items import UrlRequest
from urlfleet.record.records import Result
from urlfleet.schedule.job import Job
from urlfleet.urls import checked_url

# A request goes back unwritten when its host is paused or its gap is far off, a few times at
# most; this many in a row means something is wrong, and the URL fails rather than spin.
MAX_SENT_BACK = 1000
HEAD_REFUSED = frozenset({405, 501})  # a HEAD answered so is asked again with GET (--head)


class Fetcher:
    """Everything a worker thread needs to fetch: config, retry policy, its own Session.

    ``close()`` closes every thread's Session.
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
        self._clock = clock
        self._shaper = Shaper(config)
        self._sessions = Sessions(config, self._shaper, self.cookies, session_factory)
        self._deadlines = Deadlines(config.max_time) if config.max_time is not None else None
        # The run's start, for each record's started_s: one Fetcher serves one run (on a
        # dask cluster, one shard).
        self.started = clock()
        self.results = Results(config, self.started, clock=clock)

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every Session any thread opened (and so their pooled connections)."""
        self._sessions.close()
        if self._deadlines is not None:
            self._deadlines.close()

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

    def step(self, job: Job, hold: Gate) -> Step:
        """Make ``job``'s next request, written under ``hold`` (its politeness Lease).

        >>> step = fetcher.step(lease.job, hold=lease)
        """
        if job.problem is not None:
            return self.failed(job, job.problem)
        if job.attempts is None:
            job.attempts = new_attempts(self.retrying)
        started = self._clock()
        first_start, job.first_start = job.first_start, job.first_start or started
        job.requests += 1
        try:
            with self._deadline() as watch:
                response, body, error = self._attempt(job, hold, watch)
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
            error_kind=kind_of(error, status, False) if error is not None else None,
            retry_after=error.retry_after if isinstance(error, RetryableStatus) else None,
            problem=describe(error, status, body.truncated, 1),
        )
        wait = next_wait(self.retrying, job.attempts, error)
        if wait is not None:
            return Step(attempt, again_at=self._clock() + wait)
        return self._final(job, self.results.of(job, response, body, error), attempt, body)

    def _attempt(
        self, job: Job, hold: Gate, watch: Watch | None
    ) -> tuple[requests.Response | None, Body, BaseException | None]:
        """One request and its body: what came back, and the error that ended it, if any."""
        response: requests.Response | None = None
        body, error = Body(), None
        try:
            response = self._sessions.send(job, hold)
            if watch is not None:  # the body comes on this socket (a proxy's, maybe)
                watch.attach(socket_of(response))
            if response.status_code in THROTTLE_STATUSES:
                job.throttled += 1
            if response.is_redirect and response.next is not None:
                return response, body, None
            if self.results.retries_status(response.status_code, job):
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                raise RetryableStatus(response.status_code, retry_after)
            kind = kind_for(job)
            if kind.checks_type:
                check_type(response, self.config)
            body = kind.read(response, job, self.config)
            if response.status_code == 304:  # bodiless: read only to keep the connection
                body = Body()
            if kind.asks_retry_if and self._asks_retry(job, response, body):
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
        return self._final(job, self.results.failure(job, why), None)

    def _final(
        self, job: Job, result: Result, attempt: Attempt | None, body: Body | None = None
    ) -> Step:
        return kind_for(job).finish(result, attempt, body, self.config)

    def _asks_retry(self, job: Job, response: requests.Response, body: Body) -> bool:
        if self.config.retry_if is None:
            return False
        return bool(self.config.retry_if(self.results.of(job, response, body, None)))

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
            return self._final(job, self.results.of(job, response, Body(), error), attempt)
        # requests prepared the next hop for us: method, cookies, and Authorization and
        # Proxy-Authorization dropped when the redirect leaves the host. It goes back to the
        # frontier, so the new host's politeness applies to it like to any other request.
        hop = response.next
        assert hop is not None
        target = str(hop.url)
        if host_key(target) != job.host:
            every_url = self._sessions.session().headers
            self._shaper.to_another_host(hop, job, host_key(target), every_url)
        job.request, job.target, job.host = hop, target, host_key(target)
        job.hops += 1
        return Step(attempt, again_at=self._clock())
