"""Fetching: one request for one job, turned into either a final Result or a re-queue.

``Fetcher.step`` never raises for anything a URL or a server can do: every failure becomes a
Result with ``ok=False`` and the reason in plain words, because one exception escaping a joblib
task would end the whole run and the contract promises one record per URL.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, nullcontext
from typing import Any, Literal, NamedTuple, TypeVar

import requests
from tenacity import Retrying
from urllib3.exceptions import ReadTimeoutError

from urlfleet.config import FetchConfig, HostLimits
from urlfleet.errors import RetryableStatus, RetryRequested, SaveError, UrlfleetError
from urlfleet.hosts import Outcome
from urlfleet.records import Result
from urlfleet.retrying import (
    RETRY_STATUSES,
    TRANSIENT_ERRORS,
    build_retrying,
    new_attempts,
    next_wait,
    parse_retry_after,
)
from urlfleet.robots import ROBOTS_MAX_BYTES, Robots, RobotsBook, robots_url, understand
from urlfleet.saving import SavedBody, body_path
from urlfleet.schedule import Frontier, Job, host_key
from urlfleet.sources import redact_url, scrub, url_problem
from urlfleet.throttle import next_delay
from urlfleet.transport import Environment, GatedAdapter, gate, new_session, shared_adapter

T = TypeVar("T")
CHUNK_SIZE = 64 * 1024  # requests' default of 10 KiB costs CPU on large bodies
SessionFactory = Callable[[], requests.Session]


class Body(NamedTuple):
    """What was read of a response body."""

    content: bytes = b""
    size: int = 0
    truncated: bool = False
    saved_to: str | None = None


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
        robots: RobotsBook | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.retrying: Retrying = build_retrying(config)
        self.robots = robots
        self._session_factory = session_factory or self._default_session
        self._clock = clock
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self._adapter = shared_adapter(config)
        self._own_sessions = session_factory is None
        self._environment = Environment(config)

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

    def session(self) -> requests.Session:
        """This thread's Session, created on first use."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._session_factory()
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def _default_session(self) -> requests.Session:
        return new_session(self.config, self._adapter)

    def new_job(self, index: int, url: str, meta: Any = None) -> Job:
        """A job for one input URL; a URL that cannot be fetched carries its problem."""
        problem = url_problem(url) if isinstance(url, str) else f"not a URL string: {url!r}"
        host = host_key(url) if problem is None else ""
        job = Job(index=index, url=str(url), meta=meta, target=str(url), host=host)
        job.problem = None if problem is None else f"invalid URL: {problem}"
        job.attempts = new_attempts(self.retrying)
        return job

    def step(self, job: Job, frontier: Frontier) -> Result | None:
        """Make the job's next request; the final Result, or None when it was queued again."""
        if job.problem is not None:
            return self.failure(job, job.problem)
        if self.robots is not None:
            verdict = self._obey_robots(job, frontier)
            if verdict is not True:
                return verdict
        started = self._clock()
        if job.first_start is None:
            job.first_start = started
        job.requests += 1
        response: requests.Response | None = None
        body, error = Body(), None
        try:
            response = self._send(job, frontier)
            if response.next is not None and response.is_redirect:
                return self._redirect(job, response, frontier, started)
            if response.status_code in RETRY_STATUSES:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                raise RetryableStatus(response.status_code, retry_after)
            body = self._read_body(response, job)
            if self.config.retry_if is not None and self._asks_retry(job, response, body):
                raise RetryRequested("retry_if asked for another attempt")
        except SaveError:
            raise
        except (requests.RequestException, UrlfleetError, OSError, ValueError) as exc:
            error = exc
        finally:
            if response is not None:
                response.close()
        latency = self._clock() - started
        job.busy_s += latency
        assert job.attempts is not None
        wait = next_wait(self.retrying, job.attempts, error)
        outcome = outcome_of(response, error)
        job.throttled += outcome.pauses
        if self.config.auto_throttle:
            self._adapt_pace(job, frontier, latency, response, outcome)
        frontier.release(
            job,
            again_at=None if wait is None else self._clock() + wait,
            outcome=outcome,
            retry_after=error.retry_after if isinstance(error, RetryableStatus) else None,
            why=describe(error, response.status_code if response else None, body.truncated, 1),
        )
        if wait is not None:
            return None
        return self._result(job, response, body, error)

    def _adapt_pace(
        self,
        job: Job,
        frontier: Frontier,
        latency: float,
        response: requests.Response | None,
        outcome: Outcome,
    ) -> None:
        if job.slot is None:
            return
        limits = job.slot.policy
        known = self.robots.get(job.host) if self.robots is not None else None
        floor = max(self.config.limits_for(job.host).delay, known.crawl_delay if known else 0.0)
        delay = next_delay(
            limits.delay,
            latency=latency,
            status=response.status_code if response is not None else None,
            outcome=outcome,
            per_host=limits.per_host,
            floor=floor,
            ceiling=self.config.max_wait,
        )
        if delay != limits.delay:
            frontier.set_policy(job, HostLimits(limits.per_host, delay))

    def _asks_retry(self, job: Job, response: requests.Response, body: Body) -> bool:
        assert self.config.retry_if is not None
        return bool(self.config.retry_if(self._result(job, response, body, None)))

    def _obey_robots(self, job: Job, frontier: Frontier) -> Result | None | Literal[True]:
        """True when robots.txt lets the job's request go; else its Result, or None if deferred."""
        assert self.robots is not None
        robots = self.robots.get(job.host)
        if robots is None:
            learned = self._learn_robots(job, frontier)
            if not isinstance(learned, Robots):
                return learned  # a final Result, or None: deferred
            robots = learned
        if robots.allows(job.target, self.config.user_agent):
            return True
        frontier.release(job)
        return self.failure(job, "disallowed by robots.txt")

    def _learn_robots(self, job: Job, frontier: Frontier) -> Robots | Result | None:
        # Fetched by the thread that holds the host's only slot (a host whose robots.txt is
        # unknown gets one request at a time), and spaced from the next request like any other.
        assert self.robots is not None
        status, body, problem = self._get_robots(job, frontier)
        if status is not None and status < 500 and status != 429:
            robots = understand(status, body, self.config.user_agent, self.config.max_crawl_delay)
            self.robots.learn(job.host, robots)
            limits = self.config.limits_for(job.host)
            delay = max(limits.delay, robots.crawl_delay)
            frontier.set_policy(job, HostLimits(limits.per_host, delay))
            return robots
        why = f"robots.txt unavailable ({problem or f'HTTP {status}'})"
        if self.robots.failed(job.host) > self.config.retries:
            frontier.cut_off(job.host, why)
            frontier.release(job)
            return self.failure(job, why)
        frontier.release(job, again_at=self._clock(), outcome=Outcome.THROTTLED, why=why)
        return None

    def _get_robots(self, job: Job, frontier: Frontier) -> tuple[int | None, bytes, str | None]:
        session = self.session()
        timeout = (self.config.timeout, self.config.timeout)
        try:
            with (
                gate(lambda: frontier.sending(job)),
                session.get(robots_url(job.target), stream=True, timeout=timeout) as response,
            ):
                body = b""
                for chunk in response.iter_content(CHUNK_SIZE):
                    body += chunk
                    if len(body) >= ROBOTS_MAX_BYTES:
                        break
                return response.status_code, body, None
        except requests.RequestException as exc:
            return None, b"", describe(exc, None, False, 1)

    def _send(self, job: Job, frontier: Frontier) -> requests.Response:
        session = self.session()
        if self._own_sessions:
            env = self._environment.settings(job.target)
            request = job.request or session.prepare_request(
                requests.Request("GET", job.target, auth=env.auth)
            )
            settings: dict[str, Any] = {"proxies": env.proxies, "verify": env.verify}
            settings.update(stream=True, cert=None)
        else:  # a caller's own sessions: requests' own lookups, as the caller set them up
            request = job.request or session.prepare_request(requests.Request("GET", job.target))
            settings = dict(session.merge_environment_settings(request.url, {}, True, None, None))
        timeout = (self.config.timeout, self.config.timeout)
        # The gate holds the request, once its connection is up, until the host's gap has
        # passed. A session without gated connections (a proxy, a caller's own session)
        # is held here instead, a little earlier.
        if not isinstance(session.get_adapter(request.url or ""), GatedAdapter) or settings.get(
            "proxies"
        ):
            frontier.before_send(job)
            return session.send(request, timeout=timeout, allow_redirects=False, **settings)
        with gate(lambda: frontier.sending(job)):
            return session.send(request, timeout=timeout, allow_redirects=False, **settings)

    def _redirect(
        self, job: Job, response: requests.Response, frontier: Frontier, started: float
    ) -> Result | None:
        job.busy_s += self._clock() - started
        if job.hops >= self.config.max_redirects:
            frontier.release(job)
            error = requests.TooManyRedirects(f"more than {self.config.max_redirects} redirects")
            return self._result(job, response, Body(), error)
        # requests prepared the next hop for us: method, cookies, and Authorization dropped
        # when the redirect leaves the host. It goes back to the frontier, so the new host's
        # politeness applies to it like to any other request.
        job.request = response.next
        job.target = str(job.request.url)
        job.host = host_key(job.target)
        job.hops += 1
        frontier.release(job, again_at=self._clock())
        return None

    def _read_body(self, response: requests.Response, job: Job) -> Body:
        limit = self.config.max_bytes
        keep = self.config.keep_content or self.config.retry_if is not None
        body, size = bytearray(), 0
        with ExitStack() as stack:
            saved = _saving(stack.enter_context, self._saved_body(response, job))
            # iter_content decodes gzip/deflate, so the cap applies to what a bomb inflates to.
            for chunk in _timed_out_as_read_timeout(response.iter_content(CHUNK_SIZE)):
                if size + len(chunk) > limit:
                    if keep:
                        body += chunk[: limit - size]
                    return Body(bytes(body), limit, truncated=True)  # never saved: cut off
                size += len(chunk)
                if keep:
                    body += chunk
                if saved is not None:
                    _saving(saved.write, chunk)
            path = _saving(saved.commit) if saved is not None else None
        return Body(bytes(body), size, saved_to=None if path is None else str(path))

    def _saved_body(
        self, response: requests.Response, job: Job
    ) -> AbstractContextManager[SavedBody | None]:
        if self.config.save_dir is None or not 200 <= response.status_code < 300:
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
        ok = error is None and not truncated and status is not None and 200 <= status < 300
        return Result(
            url=redact_url(job.url),
            ok=ok,
            status=status,
            error=None if ok else scrub(describe(error, status, truncated, attempts), job.url),
            attempts=attempts,
            elapsed_s=round(self._clock() - (job.first_start or self._clock()), 6),
            bytes=body.size,
            host=host_key(job.url),
            final_url=redact_url(response.url) if response is not None else None,
            saved_to=body.saved_to,
            truncated=truncated,
            redirects=job.hops,
            content=body.content,
            headers=dict(response.headers) if response is not None else {},
            meta=job.meta,
            index=job.index,
            requests=job.requests,
            busy_s=job.busy_s,
            throttled=job.throttled,
            started=job.first_start or 0.0,
        )

    def failure(self, job: Job, error: str) -> Result:
        """A failed Result for a job that got no response to speak of."""
        attempts = job.attempts.attempt_number if job.requests and job.attempts else 0
        return Result.failed(
            redact_url(job.url), scrub(error, job.url),
            host=job.host, meta=job.meta, index=job.index, attempts=attempts,
        )  # fmt: skip


def _saving(action: Callable[..., T], *args: Any) -> T:
    # A disk that cannot take the bodies ends the run (exit 2), not just one URL.
    try:
        return action(*args)
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        raise SaveError(f"cannot save bodies ({exc.strerror or exc}{where})") from exc


def outcome_of(response: requests.Response | None, error: BaseException | None) -> Outcome:
    """What a request says about its host's health: willing, throttling, or failing."""
    status = response.status_code if response is not None else None
    if status == 429:
        return Outcome.THROTTLED
    if status == 503:
        return Outcome.OVERLOADED
    if (status is not None and status >= 500) or isinstance(error, TRANSIENT_ERRORS):
        return Outcome.FAILED
    return Outcome.ANSWERED


def _timed_out_as_read_timeout(chunks: Iterator[bytes]) -> Iterator[bytes]:
    # requests reports a read timeout in the body as a ConnectionError; call it what it is.
    try:
        yield from chunks
    except requests.ConnectionError as exc:
        if exc.args and isinstance(exc.args[0], ReadTimeoutError):
            raise requests.ReadTimeout(*exc.args) from exc
        raise


def describe(
    error: BaseException | None, status: int | None, truncated: bool, attempts: int
) -> str:
    """A failure in plain words, e.g. ``HTTP 503 after 4 attempts`` or ``ConnectTimeout: ...``."""
    after = f" after {attempts} attempts" if attempts > 1 else ""
    if truncated:
        return "body larger than --max-bytes"
    if isinstance(error, RetryableStatus):
        return f"HTTP {error.status}{after}"
    if error is None:
        return f"HTTP {status}"
    return f"{type(error).__name__}: {_innermost(error)}{after}"


_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>: ")


def _innermost(error: BaseException) -> str:
    # requests wraps urllib3 wraps the socket error; the innermost one says what happened.
    reason: BaseException = error
    for _ in range(6):
        inner = getattr(reason, "reason", None)
        if not isinstance(inner, BaseException) and reason.args:
            inner = next((a for a in reason.args if isinstance(a, BaseException)), None)
        if not isinstance(inner, BaseException):
            break
        reason = inner
    text = str(reason) or type(reason).__name__
    return _OBJECT_REPR.sub("", text).strip()
