"""Running a list: joblib threads take jobs from the frontier and stream results back.

Each phase is one joblib task per thread (``Parallel(backend="threading")``), each taking
leases from the frontier until it is done; every Result comes back on a queue to the thread
that iterates ``results()``, the only one that ever sees a Result: it alone writes records
and moves the progress bar, and nothing it touches needs a lock. Memory stays flat because
the frontier reads the list through a bounded window.
"""

from __future__ import annotations

import itertools
import queue
import time
import warnings
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from http.cookiejar import Cookie
from typing import Any, Protocol

from joblib import Parallel, delayed

from urlfleet.config import FetchConfig
from urlfleet.errors import SaveError
from urlfleet.fetching.adapter import threads_for
from urlfleet.fetching.cookies import load_jar, save_jar
from urlfleet.fetching.fetcher import Fetcher
from urlfleet.fetching.kinds import Step
from urlfleet.fetching.sessions import SessionFactory
from urlfleet.politeness import HostMemory, Lease, Politeness, host_key
from urlfleet.read.items import UrlItem, split_item
from urlfleet.read.sitemaps import SitemapInbox, SitemapItem
from urlfleet.record.records import Result
from urlfleet.report.tally import Phase, Tally
from urlfleet.schedule.frontier import Frontier
from urlfleet.schedule.job import Job, JobKind


@dataclass(frozen=True, slots=True)
class Hop:
    """A job handed on at a redirect to a host its run does not keep (``keeps_host``), to go
    on in another run: that run's ``results()`` takes it in place of a URL, and the job
    carries on as if it had never left (its redirect count, attempts and time so far).

    ``request`` is the next request as requests prepared it from the redirect: cookies as
    for the new host, and Authorization already dropped if the redirect left the host.
    """

    index: int  # the job's index in the run that handed it on
    url: str  # the input URL, as given
    target: str  # where the next request goes
    request: Any  # a requests.PreparedRequest
    hops: int
    attempts: int
    requests: int
    busy_s: float
    throttled: int
    elapsed_s: float  # since the job's first request


class RunLike(Protocol):
    """What a run offers its caller, on one machine (``Run``) or on a cluster (``ClusterRun``)."""

    config: FetchConfig
    phases: list[Phase]

    def results(self, urls: Iterable[UrlItem]) -> Iterator[Result]: ...
    def stop(self) -> None: ...
    def paused_hosts(self) -> int: ...
    def paused_seconds(self) -> dict[str, float]: ...
    def save_cookies(self) -> None: ...


class Run:
    """One pass over a URL list; iterate ``results()``; ``phases`` holds the timings after.

    >>> run = Run(FetchConfig(jobs=64)); for result in run.results(urls): ...
    """

    def __init__(
        self,
        config: FetchConfig,
        *,
        compare_serial: int = 0,
        session_factory: SessionFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
        keeps_host: Callable[[str], bool] | None = None,
        hand_back: Callable[[Hop], None] | None = None,
        memories: Mapping[str, HostMemory] | None = None,
        cookies: Iterable[Cookie] = (),
        most_urls: int | None = None,
    ) -> None:
        """``keeps_host`` (with ``hand_back``): a redirect to a host it says no to is not
        followed here but handed to ``hand_back`` as a Hop, from the fetching thread, before
        its job ends. ``memories``: host states to start from (``Politeness.remember``);
        ``cookies``: cookies to start with, beside those of ``config``.
        ``most_urls``: the list holds at most this many URLs (and no sitemap, which would
        add more), so no more threads start than it could keep busy: each URL's job makes
        one request at a time, its robots.txt included."""
        if (keeps_host is None) != (hand_back is None):
            raise ValueError("keeps_host and hand_back go together")
        self.config = config
        self.compare_serial = compare_serial
        self._keeps_host = keeps_host
        self._hand_back = hand_back
        self._memories = dict(memories or {})
        self._most_urls = most_urls
        self.threads = self._threads(config.jobs)
        self.phases: list[Phase] = []
        self._session_factory = session_factory
        self._clock = clock
        self._frontier: Frontier | None = None
        self.politeness: Politeness | None = None
        self._inboxes: set[SitemapInbox] = set()  # of the sitemap jobs made, told at the end
        # One jar for every thread's Session, read from --cookie-jar now: a bad file is an
        # InputError before anything is fetched.
        if config.cookie_jar is not None and session_factory is not None:
            raise ValueError("cookie_jar cannot be used with session_factory (its sessions "
                             "keep their own cookies)")  # fmt: skip
        self.cookies = load_jar(config.cookie_jar, config.cookies)
        for cookie in cookies:
            self.cookies.set_cookie(cookie)

    def paused_seconds(self) -> dict[str, float]:
        """Seconds each host was paused for (429, 503, Retry-After), for the report."""
        return dict(self.politeness.paused_s) if self.politeness is not None else {}

    def paused_hosts(self) -> int:
        """How many hosts are paused right now."""
        return self._frontier.paused_hosts() if self._frontier is not None else 0

    def _threads(self, n_jobs: int) -> int:
        threads = threads_for(n_jobs)
        return threads if self._most_urls is None else max(1, min(threads, self._most_urls))

    def stop(self) -> None:
        """Hand out no more URLs; requests in flight finish, then ``results()`` ends."""
        if self._frontier is not None:
            self._frontier.close()

    def results(self, urls: Iterable[UrlItem | Hop]) -> Iterator[Result]:
        """Fetch every URL, yielding each Result as it completes (not in input order)."""
        config = self.config
        self.politeness = Politeness(config, clock=self._clock)
        for key, memory in self._memories.items():
            self.politeness.remember(key, memory)
        frontier = Frontier(self.politeness, window=config.window, clock=self._clock)
        self._frontier = frontier
        with Fetcher(config, session_factory=self._session_factory, clock=self._clock,
                     cookies=self.cookies) as fetcher:  # fmt: skip
            jobs: Iterator[Job] = (self._job(fetcher, i, item) for i, item in enumerate(urls))
            try:
                if self.compare_serial > 0:
                    sample, jobs = take_sample(jobs, self.compare_serial, config.window)
                    yield from self._phase("serial", frontier, fetcher, iter(sample), 1)
                yield from self._phase("threaded", frontier, fetcher, jobs, config.jobs)
            finally:  # a reader still waiting for sitemaps of this run waits no more
                for inbox in self._inboxes:
                    inbox.close()
                self.save_cookies()  # after failures and interrupts too
        error = frontier.input_error()
        if error is not None:
            raise error

    def save_cookies(self) -> None:
        """Write the run's cookies to ``config.cookie_jar`` (if set), as they are now."""
        if self.config.cookie_jar is not None:
            save_jar(self.cookies.snapshot(), self.config.cookie_jar)

    def host_memories(self) -> dict[str, HostMemory | None]:
        """What each host the run knows must carry into its next requests elsewhere (None:
        nothing), from ``Politeness.memory``; empty before ``results()`` starts."""
        frontier, politeness = self._frontier, self.politeness
        if frontier is None or politeness is None:
            return {}
        now = self._clock()
        return {state.key: politeness.memory(state, now) for state in frontier.host_states()}

    def _job(self, fetcher: Fetcher, index: int, item: UrlItem | Hop) -> Job:
        if isinstance(item, SitemapItem):  # fetched like any URL; its answer is more input
            job = fetcher.new_job(index, item.url, item.meta)
            job.sitemap = item
            item.inbox.expect()  # made in the thread that reads the list: counted in time
            self._inboxes.add(item.inbox)
            return job
        if not isinstance(item, Hop):
            return fetcher.new_job(index, *split_item(item))
        job = fetcher.new_job(index, item.url)
        job.target, job.host, job.request = item.target, host_key(item.target), item.request
        job.hops, job.requests, job.busy_s = item.hops, item.requests, item.busy_s
        job.throttled = item.throttled
        job.first_start = self._clock() - item.elapsed_s
        if job.attempts is not None:
            job.attempts.attempt_number = item.attempts
        return job

    def _handed_on(self, lease: Lease, step: Step) -> Hop | None:
        # A redirect (a re-queue to another host) that this run does not keep.
        job = lease.job
        keeps = self._keeps_host
        if keeps is None or step.again_at is None or step.result is not None:
            return None
        if job.kind is JobKind.ROBOTS or lease.host is None or job.host == lease.host.key:
            return None
        if keeps(job.host):
            return None
        elapsed = self._clock() - (job.first_start or self._clock())
        attempts = job.attempts.attempt_number if job.attempts is not None else 1
        return Hop(job.index, job.url, job.target, job.request, job.hops, attempts,
                   job.requests, job.busy_s, job.throttled, elapsed)  # fmt: skip

    def _phase(
        self, name: str, frontier: Frontier, fetcher: Fetcher, jobs: Iterator[Job], n_jobs: int
    ) -> Iterator[Result]:
        started, tally, finished = self._clock(), Tally(), False
        cpu_at_start = time.process_time()  # every thread of this process: the client's CPU
        threads = self._threads(n_jobs)
        frontier.feed(jobs)
        if threads == 1:  # joblib runs a lone task in the calling thread: so does this
            results = self._steps(frontier, fetcher)
        else:
            results = self._threaded(frontier, fetcher, threads)
        try:
            for result in results:
                tally.add(result)
                yield result
            finished = True
        finally:
            if not finished:  # the caller stopped early, or a task failed: let the threads go
                frontier.close()
                results.close()
            cpu_s = time.process_time() - cpu_at_start
            self.phases.append(Phase(name, threads, self._clock() - started, tally, cpu_s=cpu_s))

    def _threaded(
        self, frontier: Frontier, fetcher: Fetcher, threads: int
    ) -> Generator[Result, None, None]:
        # One joblib task per thread, for the whole phase: each takes leases until the
        # frontier is done and hands each Result over as it is made. A task per URL would
        # cost joblib's dispatch and callbacks for every request, a tenth of the CPU of a
        # CPU-bound list.
        made: queue.SimpleQueue[Result | _Ended] = queue.SimpleQueue()

        def work() -> None:
            try:
                lease = frontier.take()
                while lease is not None:  # a release takes the next lease if one is ready
                    result, lease = self._one_step(frontier, fetcher, lease, take_next=True)
                    if result is not None:
                        made.put(result)  # the main thread writes it
                    if lease is None:
                        lease = frontier.take()  # waits, its Result handed over first
            except BaseException as exc:  # a full disk, or a bug outside a step: the run ends
                made.put(_Ended(exc))
            else:
                made.put(_Ended(None))

        parallel = Parallel(n_jobs=threads, backend="threading", return_as="generator_unordered")
        tasks = parallel(delayed(work)() for _ in range(threads))
        try:
            running = threads
            while running:
                item = made.get()
                if not isinstance(item, _Ended):
                    yield item
                    continue
                running -= 1
                if item.error is not None:
                    raise item.error
            for _ in tasks:  # every task has ended: this only joins them
                pass
        finally:
            with warnings.catch_warnings():  # stopped early: the threads go, quietly
                warnings.simplefilter("ignore")
                tasks.close()

    def _steps(self, frontier: Frontier, fetcher: Fetcher) -> Generator[Result, None, None]:
        """Requests for the leases the frontier hands out, until it is done; each Result.
        Each release is followed by this thread's next take, unless the caller stops."""
        while (lease := frontier.take()) is not None:  # politeness decides who is ready
            result, _ = self._one_step(frontier, fetcher, lease, take_next=False)
            if result is not None:
                yield result

    def _one_step(
        self, frontier: Frontier, fetcher: Fetcher, lease: Lease, *, take_next: bool
    ) -> tuple[Result | None, Lease | None]:
        """One request for ``lease`` and its release: the job's Result if it has ended, and
        with ``take_next``, the thread's next lease if one could start at once, taken as this
        one is released. Otherwise (None) the caller takes the next one itself, or stops."""
        step = _step_safely(fetcher, lease)  # one request, no scheduling inside
        result, again_at = step.result, step.again_at
        hop = self._handed_on(lease, step)
        if hop is not None:
            try:  # handed on while the job is still in flight: the run cannot end first
                assert self._hand_back is not None
                self._hand_back(hop)
            except BaseException:
                frontier.release(lease, step.attempt, robots=step.robots)
                raise
            result, again_at = None, None  # the 3xx is observed like any answer; the job ends
        else:
            _answer_sitemap(lease.job, step)  # before the release: the input is not done
        following = frontier.release(lease, step.attempt, again_at=again_at, robots=step.robots,
                                     then="take" if take_next else "caller_takes")  # fmt: skip
        return result, following


@dataclass(frozen=True, slots=True)
class _Ended:
    """A phase's task has ended: with the exception that ended it, or None when done."""

    error: BaseException | None


def _answer_sitemap(job: Job, step: Step) -> None:
    # A sitemap job that has ended (parsed, or failed with a record) tells its reader.
    if job.sitemap is not None and (step.sitemap is not None or step.result is not None):
        job.sitemap.inbox.deliver(job.sitemap, step.sitemap)


def _step_safely(fetcher: Fetcher, lease: Lease) -> Step:
    try:
        return fetcher.step(lease.job, hold=lease)
    except SaveError:
        raise  # a full disk ends the run: every later body would fail the same way
    except Exception as exc:  # a bug must cost one URL, never the run (and its records)
        return fetcher.failed(lease.job, f"internal error: {type(exc).__name__}: {exc}")


def take_sample(jobs: Iterator[Job], size: int, window: int) -> tuple[list[Job], Iterator[Job]]:
    """Pick ``size`` jobs spread over hosts (round-robin) from the first ``window`` jobs.

    Returns the sample and an iterator over every other job, in input order.
    """
    head: list[Job] = []
    for job in jobs:  # not past a sitemap: the list goes on only once it has been fetched
        head.append(job)
        if len(head) >= window or job.kind is JobKind.SITEMAP:
            break
    by_host: dict[str, list[Job]] = {}
    for job in head:
        if job.problem is None and job.kind is not JobKind.SITEMAP:
            by_host.setdefault(job.host, []).append(job)
    sample: list[Job] = []
    for layer in itertools.zip_longest(*by_host.values()):
        sample.extend(job for job in layer if job is not None)
        if len(sample) >= size:
            break
    chosen = {id(job) for job in sample[:size]}
    rest = (job for job in head if id(job) not in chosen)
    return sample[:size], itertools.chain(rest, jobs)
