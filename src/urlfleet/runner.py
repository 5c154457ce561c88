"""Running a list: joblib threads take jobs from the frontier and stream results back.

Results come back through ``Parallel(return_as="generator_unordered")``, so the thread that
iterates is the only one that ever sees a Result: it alone writes records and moves the
progress bar, and nothing it touches needs a lock. Memory stays flat because joblib pulls
tasks lazily and the frontier reads the list through a bounded window.
"""

from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from joblib import Parallel, delayed, effective_n_jobs, parallel_config

from urlfleet.config import FetchConfig
from urlfleet.errors import SaveError
from urlfleet.fetcher import Fetcher, SessionFactory, Step
from urlfleet.frontier import Frontier
from urlfleet.job import Job
from urlfleet.politeness import Lease, Politeness
from urlfleet.records import Result
from urlfleet.report import Phase, Tally

UrlItem = str | tuple[str, Any]


def threads_for(jobs: int) -> int:
    """How many threads ``jobs`` means, with joblib's rules (-1: one per CPU, -2: all but one)."""
    with parallel_config(backend="threading"):
        return int(effective_n_jobs(jobs))


class RunLike(Protocol):
    """What a run offers its caller, on one machine (``Run``) or on a cluster (``ClusterRun``)."""

    config: FetchConfig
    phases: list[Phase]

    def results(self, urls: Iterable[UrlItem]) -> Iterator[Result]: ...
    def stop(self) -> None: ...
    def paused_hosts(self) -> int: ...
    def paused_seconds(self) -> dict[str, float]: ...


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
    ) -> None:
        self.config = config
        self.compare_serial = compare_serial
        self.threads = threads_for(config.jobs)
        self.phases: list[Phase] = []
        self._session_factory = session_factory
        self._clock = clock
        self._frontier: Frontier | None = None
        self.politeness: Politeness | None = None

    def paused_seconds(self) -> dict[str, float]:
        """Seconds each host was paused for (429, 503, Retry-After), for the report."""
        return dict(self.politeness.paused_s) if self.politeness is not None else {}

    def paused_hosts(self) -> int:
        """How many hosts are paused right now."""
        return self._frontier.paused_hosts() if self._frontier is not None else 0

    def stop(self) -> None:
        """Hand out no more URLs; requests in flight finish, then ``results()`` ends."""
        if self._frontier is not None:
            self._frontier.close()

    def results(self, urls: Iterable[UrlItem]) -> Iterator[Result]:
        """Fetch every URL, yielding each Result as it completes (not in input order)."""
        config = self.config
        self.politeness = Politeness(config, clock=self._clock)
        frontier = Frontier(self.politeness, window=config.window, clock=self._clock)
        self._frontier = frontier
        with Fetcher(config, session_factory=self._session_factory, clock=self._clock) as fetcher:
            jobs: Iterator[Job] = (fetcher.new_job(i, *_split(it)) for i, it in enumerate(urls))
            if self.compare_serial > 0:
                sample, jobs = take_sample(jobs, self.compare_serial, config.window)
                yield from self._phase("serial", frontier, fetcher, iter(sample), 1)
            yield from self._phase("threaded", frontier, fetcher, jobs, config.jobs)
        error = frontier.input_error()
        if error is not None:
            raise error

    def _phase(
        self, name: str, frontier: Frontier, fetcher: Fetcher, jobs: Iterator[Job], n_jobs: int
    ) -> Iterator[Result]:
        def work() -> Result | None:
            while (lease := frontier.take()) is not None:  # politeness decides who is ready
                step = _step_safely(fetcher, lease)  # one request, no scheduling inside
                frontier.release(lease, step.attempt, again_at=step.again_at, robots=step.robots)
                if step.result is not None:
                    return step.result  # the main thread writes it
            return None

        started, tally, finished = self._clock(), Tally(), False
        parallel = Parallel(n_jobs=n_jobs, backend="threading", return_as="generator_unordered")
        outputs = parallel(delayed(work)() for _ in frontier.tokens(jobs))
        try:
            for result in outputs:
                if result is not None:
                    tally.add(result)
                    yield result
            finished = True
        finally:
            if not finished:  # the caller stopped early: let the threads go, quietly
                frontier.close()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    outputs.close()
            self.phases.append(Phase(name, threads_for(n_jobs), self._clock() - started, tally))


def _step_safely(fetcher: Fetcher, lease: Lease) -> Step:
    try:
        return fetcher.step(lease)
    except SaveError:
        raise  # a full disk ends the run: every later body would fail the same way
    except Exception as exc:  # a bug must cost one URL, never the run (and its records)
        return fetcher.failed(lease.job, f"internal error: {type(exc).__name__}: {exc}")


def _split(item: UrlItem) -> tuple[str, Any]:
    if isinstance(item, tuple) and len(item) == 2:
        return item[0], item[1]
    return item, None


def take_sample(jobs: Iterator[Job], size: int, window: int) -> tuple[list[Job], Iterator[Job]]:
    """Pick ``size`` jobs spread over hosts (round-robin) from the first ``window`` jobs.

    Returns the sample and an iterator over every other job, in input order.
    """
    head = list(itertools.islice(jobs, window))
    by_host: dict[str, list[Job]] = {}
    for job in head:
        if job.problem is None:
            by_host.setdefault(job.host, []).append(job)
    sample: list[Job] = []
    for layer in itertools.zip_longest(*by_host.values()):
        sample.extend(job for job in layer if job is not None)
        if len(sample) >= size:
            break
    chosen = {id(job) for job in sample[:size]}
    rest = (job for job in head if id(job) not in chosen)
    return sample[:size], itertools.chain(rest, jobs)
