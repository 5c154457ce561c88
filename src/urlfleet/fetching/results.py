"""The Result that is a job's record, built from what its last step came to.

A Result is built in one of two ways: from what a request got (its response, the body read,
the error that ended it), or from a failure in words when there was no response to speak of.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timezone

import requests

from urlfleet.config import RETRY_STATUSES, FetchConfig
from urlfleet.fetching.body import Body
from urlfleet.fetching.failures import describe, kind_of, kind_of_problem
from urlfleet.fetching.kinds import kind_for
from urlfleet.fetching.shaping import is_conditional
from urlfleet.politeness import host_key
from urlfleet.record.records import Result
from urlfleet.schedule.job import Job
from urlfleet.urls import redact_url, scrub


class Results:
    """Builds the Results of one run's jobs; ``started``: the run's start, for started_s."""

    def __init__(
        self, config: FetchConfig, started: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self.started = started
        self._clock = clock

    def of(
        self,
        job: Job,
        response: requests.Response | None,
        body: Body,
        error: BaseException | None,
    ) -> Result:
        """The Result of ``job``'s latest request: what came back, and what ended it."""
        attempts = job.attempts.attempt_number if job.attempts is not None else 1
        status = response.status_code if response is not None else None
        truncated = body.truncated
        ok = (
            error is None
            and not truncated
            and status is not None
            and self.counts_as_ok(status, job)
        )
        unchanged = ok and status == 304 and is_conditional(job)
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
            revalidated=is_conditional(job),
            content=body.content,
            headers=response.headers if response is not None else {},
            meta=job.meta,
            index=job.index,
            requests=job.requests,
            busy_s=job.busy_s,
            throttled=job.throttled,
            started=job.first_start or 0.0,
        )

    def counts_as_ok(self, status: int, job: Job) -> bool:
        """Whether a final ``status`` makes the record ok (--ok-status; 2xx by default).

        robots.txt and sitemap jobs keep the 2xx rule: their answers are read as content.
        """
        if not kind_for(job).own_ok_status:
            return 200 <= status < 300
        if status == 304 and is_conditional(job):  # what the caller has is current
            return True
        return any(low <= status <= high for low, high in self.config.ok_status)

    def retries_status(self, status: int, job: Job) -> bool:
        """Whether ``status`` asks for the request again, later."""
        # A status the user counts as ok (say --ok-status 429) is an answer, not a "later".
        return status in RETRY_STATUSES and not self.counts_as_ok(status, job)

    def failure(self, job: Job, error: str) -> Result:
        """A failed Result for a job that got no response to speak of."""
        attempts = job.attempts.attempt_number if job.requests and job.attempts else 0
        result = Result.failed(
            redact_url(job.url), scrub(error, job.url),
            host=job.host, meta=job.meta, index=job.index, attempts=attempts,
            kind=kind_of_problem(error),
        )  # fmt: skip
        return replace(result, started_s=self._started_s(job)) if job.requests else result

    def _started_s(self, job: Job) -> float | None:
        if job.first_start is None:
            return None
        return round(max(0.0, job.first_start - self.started), 6)


def _utc_now() -> str:
    # Milliseconds are plenty for "when", and keep the record short.
    moment = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    return moment.replace("+00:00", "Z")
