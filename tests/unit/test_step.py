"""``Fetcher.step(job, hold)`` on its own: one request per call, against `responses` mocks,
under a trivial hold (no frontier, no politeness), for each kind of job.

`responses` patches ``HTTPAdapter.send``, which urlfleet's GatedAdapter does not override, so
a step's request never reaches a connection: the gate's ``check`` asks the hold when its
request is due; ``writing`` (entered at the write, in the connection) is never reached.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext

import responses

from urlfleet.config import FetchConfig
from urlfleet.fetching.fetcher import Fetcher
from urlfleet.fetching.kinds import Step
from urlfleet.read.sitemaps import SitemapInbox, SitemapItem
from urlfleet.schedule.job import Job, JobKind

URL = "http://a.test/page"
SITEMAP = b"""<?xml version="1.0"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>http://a.test/1</loc></url><url><loc>http://a.test/2</loc></url>
</urlset>"""


class Hold:
    """A gate that lets every request go, or none (``not_due_until``), and counts its asks."""

    def __init__(self, not_due_until: float | None = None) -> None:
        self.not_due_until = not_due_until
        self.checks = 0
        self.clock, self.sleep = time.monotonic, time.sleep

    def write_lock(self) -> AbstractContextManager[object]:
        return nullcontext()

    def write_due(self, now: float) -> tuple[float, bool]:
        self.checks += 1
        if self.not_due_until is not None:
            return self.not_due_until, False
        return now, True

    def wrote(self, at: float) -> None:
        pass


def fetcher_for(**options: object) -> Fetcher:
    return Fetcher(FetchConfig(**options))  # type: ignore[arg-type]


def page_step(**options: object) -> tuple[Job, Step]:
    """One step of a fresh page job for URL, under a hold that lets it go."""
    with fetcher_for(**options) as fetcher:
        job = fetcher.new_job(0, URL)
        return job, fetcher.step(job, Hold())


def robots_job(fetcher: Fetcher) -> Job:
    job = fetcher.new_job(-1, "http://a.test/robots.txt")
    job.robots_for = "a.test"
    return job


def sitemap_job(fetcher: Fetcher) -> Job:
    job = fetcher.new_job(0, "http://a.test/sitemap.xml")
    job.sitemap = SitemapItem(job.url, 0, SitemapInbox())
    return job


@responses.activate
def test_a_200_page_ends_in_an_ok_record() -> None:
    responses.get(URL, body=b"hello", content_type="text/html")
    hold = Hold()
    with fetcher_for() as fetcher:
        job = fetcher.new_job(3, URL, meta={"id": 3})
        step = fetcher.step(job, hold)
    assert job.kind is JobKind.PAGE and hold.checks == 1
    assert step.again_at is None and step.robots is None and step.sitemap is None
    attempt = step.attempt
    assert attempt is not None and attempt.status == 200 and attempt.error_kind is None
    result = step.result
    assert result is not None and result.ok and result.status == 200 and result.index == 3
    assert result.content == b"hello" and result.bytes == 5 and result.meta == {"id": 3}


@responses.activate
def test_a_503_with_retry_after_comes_back_later_and_says_so() -> None:
    responses.get(URL, status=503, headers={"Retry-After": "7"})
    job, step = page_step()
    assert step.result is None and step.again_at is not None
    attempt = step.attempt
    assert attempt is not None and attempt.status == 503 and attempt.retry_after == 7.0
    assert attempt.error_kind == "http" and job.throttled == 1 and job.requests == 1


@responses.activate
def test_a_redirect_moves_the_jobs_target_and_comes_back_at_once() -> None:
    responses.get(URL, status=301, headers={"Location": "http://b.test/new"})
    job, step = page_step()
    assert step.result is None and step.again_at is not None
    assert step.attempt is not None and step.attempt.status == 301
    assert job.target == "http://b.test/new" and job.host == "b.test" and job.hops == 1
    assert job.request is not None and job.url == URL


@responses.activate
def test_a_robots_txt_job_ends_in_an_answer_for_its_host_not_a_record() -> None:
    rules = b"User-agent: *\nDisallow: /private\n"
    responses.get("http://a.test/robots.txt", body=rules)
    with fetcher_for(accept_type=("text/html",)) as fetcher:
        job = robots_job(fetcher)
        step = fetcher.step(job, Hold())
    assert job.kind is JobKind.ROBOTS and step.result is None and step.again_at is None
    assert step.robots is not None and step.robots.status == 200
    assert step.robots.body == rules and step.robots.problem == ""  # --accept-type: not for it


@responses.activate
def test_a_sitemap_job_ends_in_its_parsed_entries() -> None:
    responses.get("http://a.test/sitemap.xml", body=SITEMAP, content_type="application/xml")
    with fetcher_for() as fetcher:
        job = sitemap_job(fetcher)
        step = fetcher.step(job, Hold())
    assert job.kind is JobKind.SITEMAP and step.result is None
    assert step.sitemap is not None and not step.sitemap.index
    assert [entry.loc for entry in step.sitemap.entries] == ["http://a.test/1", "http://a.test/2"]


@responses.activate
def test_a_broken_sitemap_ends_in_a_record_saying_why() -> None:
    responses.get("http://a.test/sitemap.xml", body=b"<html>not a sitemap</html>")
    with fetcher_for() as fetcher:
        step = fetcher.step(sitemap_job(fetcher), Hold())
    assert step.sitemap is None and step.result is not None
    assert not step.result.ok and step.result.error_kind == "sitemap"
    assert step.result.error is not None and step.result.error.startswith("sitemap: ")


@responses.activate
def test_a_hold_that_is_not_due_sends_nothing_and_counts_nothing() -> None:
    responses.get(URL, body=b"never")
    with fetcher_for() as fetcher:
        job = fetcher.new_job(0, URL)
        until = time.monotonic() + 42.0
        step = fetcher.step(job, Hold(not_due_until=until))
    assert step.again_at == until and step.attempt is None and step.result is None
    assert job.requests == 0 and job.first_start is None and job.sent_back == 1
    assert len(responses.calls) == 0


@responses.activate
def test_a_body_past_max_bytes_is_cut_and_the_record_says_so() -> None:
    responses.get(URL, body=b"x" * 1000)
    result = page_step(max_bytes=100)[1].result
    assert result is not None and not result.ok and result.truncated and result.bytes == 100
    assert result.content == b"x" * 100 and result.error == "body larger than --max-bytes"


@responses.activate
def test_a_type_that_accept_type_refuses_ends_after_the_headers() -> None:
    responses.get(URL, body=b"%PDF-1.7", content_type="application/pdf")
    result = page_step(accept_type=("text/html",))[1].result
    assert result is not None and not result.ok and result.error_kind == "skipped"
    assert result.status == 200 and result.bytes == 0 and result.content == b""
    assert result.error == "content type application/pdf not accepted"
