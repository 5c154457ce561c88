"""The kinds of job (``JobKind``) and, for each, the one rule for how its last step ends.

Every kind takes the same path through the fetch: politeness, the gate at the write,
retries, redirects. What differs is said here, once per kind, so step code never asks which
kind a job is:

========== =============================== ================== ===========================
kind       body read, at most (and kept)   the run's options  its last step ends in
========== =============================== ================== ===========================
page       --max-bytes (with keep_content) all of them        its record
robots.txt 500 KiB, the rest ignored       none: a plain GET  an answer for its host
sitemap    50 MiB, or --max-bytes if less  retry_if           its entries, or a record
========== =============================== ================== ===========================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import ClassVar, NamedTuple

import requests

from urlfleet.config import FetchConfig
from urlfleet.fetching.body import NOT_SAVED, Body, read_body, saved_body
from urlfleet.politeness import ROBOTS_MAX_BYTES, Attempt, RobotsAnswer
from urlfleet.read.sitemaps import MAX_BYTES as SITEMAP_MAX_BYTES
from urlfleet.read.sitemaps import Sitemap, SitemapError, parse, unpack
from urlfleet.record.records import Result
from urlfleet.schedule.job import Job, JobKind


class Step(NamedTuple):
    """What one step of a job came to: for the frontier, and for the record."""

    attempt: Attempt | None = None  # what the request saw; None when nothing was written
    again_at: float | None = None  # queue the job again for this moment (a retry, a hop)
    result: Result | None = None  # the job's final record
    robots: RobotsAnswer | None = None  # a robots.txt job's final answer (it has no record)
    sitemap: Sitemap | None = None  # a sitemap job's parsed answer (a good one has no record)


class Kind:
    """What one kind of job reads, keeps and applies, and what its last step ends in.

    The defaults are a page's: every option of the run applies to it.
    """

    # Read as content: a plain GET with the host's own headers, whatever the run sends.
    read_as_content: ClassVar[bool] = False
    saves: ClassVar[bool] = True  # --save-dir keeps its body
    checks_type: ClassVar[bool] = True  # --accept-type may refuse it
    asks_retry_if: ClassVar[bool] = True  # the caller's retry_if sees its Result
    own_ok_status: ClassVar[bool] = True  # --ok-status says which answers are ok (else 2xx)
    truncates: ClassVar[bool] = True  # a body past the limit is cut short, and said to be

    def body_limit(self, config: FetchConfig) -> int:
        """The most of a body that is read."""
        return config.max_bytes

    def keeps_content(self, config: FetchConfig) -> bool:
        """Whether the body read is kept (retry_if is given the Result, content and all)."""
        return config.keep_content or config.retry_if is not None

    def read(self, response: requests.Response, job: Job, config: FetchConfig) -> Body:
        """``response``'s body, read as this kind reads it."""
        saving = saved_body(response, job.url, config) if self.saves else NOT_SAVED
        keep = self.keeps_content(config)
        limit = self.body_limit(config)
        return read_body(response, limit, keep=keep, truncates=self.truncates, saving=saving)

    def finish(
        self, result: Result, attempt: Attempt | None, body: Body | None, config: FetchConfig
    ) -> Step:
        """The last Step of a job of this kind, given the Result it came to."""
        return Step(attempt, result=result)


class PageKind(Kind):
    """A URL of the list: it ends in its record."""


class RobotsKind(Kind):
    """A robots.txt, fetched for a host before its pages: it ends in an answer for that
    host, not in a record."""

    read_as_content = True
    saves = checks_type = asks_retry_if = own_ok_status = False
    truncates = False  # RFC 9309: what lies past the limit of a robots.txt may be ignored

    def body_limit(self, config: FetchConfig) -> int:
        return ROBOTS_MAX_BYTES

    def keeps_content(self, config: FetchConfig) -> bool:
        return True

    def finish(
        self, result: Result, attempt: Attempt | None, body: Body | None, config: FetchConfig
    ) -> Step:
        # An answer is a status, read in full; a body cut short says nothing of the rules.
        content = body.content if body is not None else b""
        answered = result.status is not None and result.error_kind in (None, "http", "redirect")
        status = result.status if answered else None
        answer = RobotsAnswer(status, content, "" if answered else result.error or "")
        return Step(attempt, robots=answer)


class SitemapKind(Kind):
    """A sitemap: it ends in more input when it parses, else in a record saying why."""

    read_as_content = True
    saves = checks_type = own_ok_status = False

    def body_limit(self, config: FetchConfig) -> int:
        return min(SITEMAP_MAX_BYTES, config.max_bytes)

    def keeps_content(self, config: FetchConfig) -> bool:
        return True

    def finish(
        self, result: Result, attempt: Attempt | None, body: Body | None, config: FetchConfig
    ) -> Step:
        limit = self.body_limit(config)
        if result.ok and body is not None:
            try:
                return Step(attempt, sitemap=parse(unpack(body.content, limit)))
            except SitemapError as exc:
                return Step(attempt, result=_unreadable(result, str(exc)))
        if result.truncated:
            return Step(attempt, result=_unreadable(result, f"larger than {limit} bytes"))
        return Step(attempt, result=replace(result, error=f"sitemap: {result.error}"))


KINDS: Mapping[JobKind, Kind] = MappingProxyType({
    JobKind.PAGE: PageKind(), JobKind.ROBOTS: RobotsKind(), JobKind.SITEMAP: SitemapKind(),
})  # fmt: skip


def kind_for(job: Job) -> Kind:
    """The rules of ``job``'s kind."""
    return KINDS[job.kind]


def _unreadable(result: Result, why: str) -> Result:
    return replace(result, ok=False, error=f"sitemap: {why}", error_kind="sitemap", content=b"")
