"""A Job: one input URL on its way to a record, retries and redirect hops included.

It holds what fetching needs to know about this URL only. Everything about its host (slots,
gaps, pauses) lives with the politeness rules, so a Job never says when it may be sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from tenacity import RetryCallState

from urlfleet.read.items import UrlRequest
from urlfleet.read.sitemaps import SitemapItem


class JobKind(Enum):
    """What a job is for, and so what it ends in (the fetching package says how)."""

    PAGE = "page"  # a URL of the list: it ends in its record
    ROBOTS = "robots.txt"  # fetched for a host before its pages: it ends in the host's rules
    SITEMAP = "sitemap"  # its answer is more input: it ends in entries, or a record saying why


@dataclass(eq=False, slots=True)
class Job:
    """One URL's fetch state: where the next request goes and what it has cost so far."""

    index: int
    url: str
    meta: Any
    target: str  # where the next request goes: the URL itself, or a redirect's Location
    host: str  # host_key(target): the politeness key of the next request
    asked: UrlRequest | None = None  # what the list item asked for: method, headers, body...
    attempts: RetryCallState | None = None
    request: Any = None  # the next hop's prepared request, once a redirect has been followed
    prepared_url: str | None = None  # url as requests sends it, from its check (None: not made)
    hops: int = 0
    first_start: float | None = None
    requests: int = 0
    busy_s: float = 0.0
    problem: str | None = None  # set when the URL cannot be fetched at all
    throttled: int = 0  # 429 and 503 answers so far
    robots_for: str | None = None  # a robots.txt request on behalf of this host, not a record
    sent_back: int = 0  # times in a row its request went back unwritten (NotDue)
    sitemap: SitemapItem | None = None  # a sitemap: it ends in more input, or a failure
    ttfb_s: float | None = None  # of its latest request: from the write to the headers

    @property
    def kind(self) -> JobKind:
        """What this job is for: read from whom it is fetched for, so the two always agree."""
        if self.robots_for is not None:
            return JobKind.ROBOTS
        return JobKind.PAGE if self.sitemap is None else JobKind.SITEMAP
