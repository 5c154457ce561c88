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
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from tenacity import Retrying
from urllib3.exceptions import ReadTimeoutError

from urlfleet.config import FetchConfig
from urlfleet.errors import RetryableStatus
from urlfleet.records import Result
from urlfleet.retrying import (
    RETRY_STATUSES,
    build_retrying,
    new_attempts,
    next_wait,
    parse_retry_after,
)
from urlfleet.schedule import Frontier, Job, host_key
from urlfleet.sources import redact_url, scrub, url_problem

CHUNK_SIZE = 64 * 1024  # requests' default of 10 KiB costs CPU on large bodies
# Hosts whose idle keep-alive connections one thread keeps; requests' default of 10 makes a
# thread that cycles over more hosts open a new connection for almost every request.
POOLED_HOSTS = 32
SessionFactory = Callable[[], requests.Session]


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
    ) -> None:
        self.config = config
        self.retrying: Retrying = build_retrying(config)
        self._session_factory = session_factory or self._default_session
        self._clock = clock
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every Session any thread opened (and so their pooled connections)."""
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
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
        session = requests.Session()
        # One thread uses one connection at a time, so a pool of 2 per host never overflows
        # ("Connection pool is full"); retries are tenacity's job, never urllib3's as well.
        adapter = HTTPAdapter(pool_connections=POOLED_HOSTS, pool_maxsize=2, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers["User-Agent"] = self.config.user_agent
        session.verify = self.config.verify
        return session

    def new_job(self, index: int, url: str, meta: Any = None) -> Job:
        """A job for one input URL; a URL that cannot be fetched carries its problem."""
        problem = url_problem(url) if isinstance(url, str) else f"not a URL string: {url!r}"
        host = host_key(url) if problem is None else ""
        job = Job(index=index, url=str(url), meta=meta, target=str(url), host=host)
        job.problem = problem
        job.attempts = new_attempts(self.retrying)
        return job

    def step(self, job: Job, frontier: Frontier) -> Result | None:
        """Make the job's next request; the final Result, or None when it was queued again."""
        if job.problem is not None:
            return self.failure(job, f"invalid URL: {job.problem}")
        started = self._clock()
        if job.first_start is None:
            job.first_start = started
        job.requests += 1
        response: requests.Response | None = None
        content, size, truncated, error = b"", 0, False, None
        try:
            response = self._send(job, frontier)
            if response.next is not None and response.is_redirect:
                return self._redirect(job, response, frontier, started)
            if response.status_code in RETRY_STATUSES:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                raise RetryableStatus(response.status_code, retry_after)
            content, size, truncated = self._read_body(response)
        except (requests.RequestException, RetryableStatus, OSError, ValueError) as exc:
            error = exc
        finally:
            if response is not None:
                response.close()
        job.busy_s += self._clock() - started
        assert job.attempts is not None
        wait = next_wait(self.retrying, job.attempts, error)
        if wait is not None:
            now = self._clock()
            frontier.release(job, again_at=now + wait, pause_until=self._pause(error, now))
            return None
        frontier.release(job, pause_until=self._pause(error, self._clock()))
        return self._result(job, response, content, size, truncated, error)

    def _send(self, job: Job, frontier: Frontier) -> requests.Response:
        # What Session.request does, split so that the politeness gate sits right before
        # the bytes go out, after the work of preparing the request.
        session = self.session()
        request = job.request or session.prepare_request(requests.Request("GET", job.target))
        settings = session.merge_environment_settings(request.url, {}, True, None, None)
        frontier.before_send(job)
        timeout = (self.config.timeout, self.config.timeout)
        return session.send(request, timeout=timeout, allow_redirects=False, **settings)

    def _redirect(
        self, job: Job, response: requests.Response, frontier: Frontier, started: float
    ) -> Result | None:
        job.busy_s += self._clock() - started
        if job.hops >= self.config.max_redirects:
            frontier.release(job)
            error = requests.TooManyRedirects(f"more than {self.config.max_redirects} redirects")
            return self._result(job, response, b"", 0, False, error)
        # requests prepared the next hop for us: method, cookies, and Authorization dropped
        # when the redirect leaves the host. It goes back to the frontier, so the new host's
        # politeness applies to it like to any other request.
        job.request = response.next
        job.target = str(job.request.url)
        job.host = host_key(job.target)
        job.hops += 1
        frontier.release(job, again_at=self._clock())
        return None

    def _read_body(self, response: requests.Response) -> tuple[bytes, int, bool]:
        limit = self.config.max_bytes
        keep = self.config.keep_content
        body = bytearray()
        size = 0
        # iter_content decodes gzip/deflate, so the cap applies to what a bomb inflates to.
        for chunk in _timed_out_as_read_timeout(response.iter_content(CHUNK_SIZE)):
            if size + len(chunk) > limit:
                if keep:
                    body += chunk[: limit - size]
                return bytes(body), limit, True
            size += len(chunk)
            if keep:
                body += chunk
        return bytes(body), size, False

    def _pause(self, error: BaseException | None, now: float) -> float | None:
        # A server that says when to come back is speaking for the whole host, not one URL.
        if isinstance(error, RetryableStatus) and error.retry_after is not None:
            return now + min(error.retry_after, self.config.max_wait)
        return None

    def _result(
        self,
        job: Job,
        response: requests.Response | None,
        content: bytes,
        size: int,
        truncated: bool,
        error: BaseException | None,
    ) -> Result:
        attempts = job.attempts.attempt_number if job.attempts is not None else 1
        status = response.status_code if response is not None else None
        ok = error is None and not truncated and status is not None and 200 <= status < 300
        return Result(
            url=redact_url(job.url),
            ok=ok,
            status=status,
            error=None if ok else scrub(describe(error, status, truncated, attempts), job.url),
            attempts=attempts,
            elapsed_s=round(self._clock() - (job.first_start or self._clock()), 6),
            bytes=size,
            host=host_key(job.url),
            final_url=redact_url(response.url) if response is not None else None,
            truncated=truncated,
            redirects=job.hops,
            content=content,
            headers=dict(response.headers) if response is not None else {},
            meta=job.meta,
            index=job.index,
            requests=job.requests,
            busy_s=job.busy_s,
        )

    def failure(self, job: Job, error: str) -> Result:
        """A failed Result for a job that got no response to speak of."""
        attempts = job.attempts.attempt_number if job.requests and job.attempts else 0
        return Result(
            url=redact_url(job.url), ok=False, status=None, error=scrub(error, job.url),
            attempts=attempts,
            elapsed_s=0.0, bytes=0, host=job.host, meta=job.meta, index=job.index,
        )  # fmt: skip


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
