"""A Job: one input URL on its way to a record, retries and redirect hops included.

It holds what fetching needs to know about this URL only. Everything about its host (slots,
gaps, pauses) lives with the politeness rules, so a Job never says when it may be sent.
"""

from __future__ import annotations

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


class Job:
    """One URL's fetch state: where the next request goes and what it has cost so far.

    A plain class, not a dataclass: it is state, never compared or copied, and building a
    dataclass costs every run's start-up.
    """

    __slots__ = ("index", "url", "meta", "target", "host", "asked", "attempts", "request",
                 "prepared_url", "hops", "first_start", "requests", "busy_s", "problem",
                 "throttled", "robots_for", "sent_back", "sitemap", "ttfb_s")  # fmt: skip

    def __init__(
        self,
        index: int,
        url: str,
        meta: Any,
        target: str,
        host: str,
        *,
        asked: UrlRequest | None = None,
        robots_for: str | None = None,
    ) -> None:
        self.index = index
        self.url = url
        self.meta = meta
        self.target = target  # where the next request goes: the URL, or a redirect's Location
        self.host = host  # host_key(target): the politeness key of the next request
        self.asked = asked  # what the list item asked for: method, headers, body...
        self.attempts: RetryCallState | None = None
        self.request: Any = None  # the next hop's prepared request, once a redirect was followed
        self.prepared_url: str | None = None  # url as requests sends it (None: not made yet)
        self.hops = 0
        self.first_start: float | None = None
        self.requests = 0
        self.busy_s = 0.0
        self.problem: str | None = None  # set when the URL cannot be fetched at all
        self.throttled = 0  # 429 and 503 answers so far
        self.robots_for = robots_for  # a robots.txt request on behalf of this host, not a record
        self.sent_back = 0  # times in a row its request went back unwritten (NotDue)
        self.sitemap: SitemapItem | None = None  # a sitemap: it ends in more input, or a failure
        self.ttfb_s: float | None = None  # of its latest request: from the write to the headers

    @property
    def kind(self) -> JobKind:
        """What this job is for: read from whom it is fetched for, so the two always agree."""
        if self.robots_for is not None:
            return JobKind.ROBOTS
        return JobKind.PAGE if self.sitemap is None else JobKind.SITEMAP
