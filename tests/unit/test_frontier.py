"""The frontier on a fake clock: who gets a slot, when, and what waits without a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from tests.conftest import FakeClock
from urlfleet.config import FetchConfig
from urlfleet.politeness import GAP_MARGIN, Attempt, Lease, Politeness, host_key
from urlfleet.schedule.frontier import Frontier
from urlfleet.schedule.job import Job

OK = Attempt(status=200, latency=0.01)
THROTTLED = Attempt(status=429, latency=0.01)
FAILED = Attempt(status=None, latency=0.01, error_kind="connect", problem="ConnectionError: x")


def jobs_for(urls: list[str]) -> list[Job]:
    return [Job(index=i, url=u, meta=None, target=u, host=host_key(u)) for i, u in enumerate(urls)]


def frontier(
    clock: FakeClock, *, window: int = 10_000, rng: float = 0.0, **config: object
) -> Frontier:
    politeness = Politeness(FetchConfig(**config), clock=clock, rng=lambda: rng)  # type: ignore[arg-type]
    return Frontier(politeness, window=window, clock=clock)


def start(front: Frontier, jobs: list[Job]) -> None:
    reader = front.feed(iter(jobs))
    reader.join(10)  # read in, every one: each take then admits what its window lets in
    assert not reader.is_alive()


def drain(front: Frontier) -> list[Lease]:
    taken = []
    while (lease := front.take(wait=False)) is not None:
        taken.append(lease)
    return taken


def hosts(leases: list[Lease]) -> list[str]:
    return [lease.job.host for lease in leases]


def test_never_more_than_per_host_in_flight(clock: FakeClock) -> None:
    front = frontier(clock, per_host=2)
    start(front, jobs_for([f"http://a.test/{i}" for i in range(5)]))
    first = drain(front)
    assert [lease.job.index for lease in first] == [0, 1]
    front.release(first[0], OK)
    assert [lease.job.index for lease in drain(front)] == [2]


def test_busy_host_does_not_block_other_hosts(clock: FakeClock) -> None:
    # A host-sorted list: all of a.test first. b.test must still get its turn at once.
    urls = [f"http://a.test/{i}" for i in range(50)] + [f"http://b.test/{i}" for i in range(3)]
    front = frontier(clock, per_host=1)
    start(front, jobs_for(urls))
    assert set(hosts(drain(front))) == {"a.test", "b.test"}


def test_one_host_under_several_spellings_shares_one_limit(clock: FakeClock) -> None:
    urls = ["http://bücher.test/1", "http://XN--BCHER-KVA.test/2", "http://BÜCHER.test./3"]
    front = frontier(clock, per_host=2)
    start(front, jobs_for(urls))
    assert hosts(drain(front)) == ["xn--bcher-kva.test"] * 2


def test_starts_to_one_host_are_delay_apart(clock: FakeClock) -> None:
    front = frontier(clock, per_host=4, delay=0.5)
    start(front, jobs_for([f"http://a.test/{i}" for i in range(3)] + ["http://b.test/"]))
    assert sorted(hosts(drain(front))) == ["a.test", "b.test"]
    clock.advance(0.5 + GAP_MARGIN - 0.001)
    assert drain(front) == []
    clock.advance(0.001)
    assert hosts(drain(front)) == ["a.test"]


def test_jitter_adds_to_the_gap(clock: FakeClock) -> None:
    front = frontier(clock, per_host=4, delay=1.0, jitter=0.5, rng=1.0)
    start(front, jobs_for(["http://a.test/1", "http://a.test/2"]))
    assert len(drain(front)) == 1
    clock.advance(1.5 + GAP_MARGIN - 0.001)
    assert drain(front) == []
    clock.advance(0.001)
    assert len(drain(front)) == 1


def test_retry_waits_without_holding_the_slot(clock: FakeClock) -> None:
    front = frontier(clock, per_host=1)
    start(front, jobs_for(["http://a.test/1", "http://a.test/2"]))
    (lease,) = drain(front)
    front.release(lease, OK, again_at=clock() + 5)
    (other,) = drain(front)  # the slot is free for the other URL meanwhile
    assert other.job.index == 1
    front.release(other, OK)
    clock.advance(5)
    assert [lease.job.index for lease in drain(front)] == [0]


def test_pause_stops_the_whole_host(clock: FakeClock) -> None:
    front = frontier(clock, per_host=4)
    start(front, jobs_for(["http://a.test/1", "http://a.test/2", "http://b.test/1"]))
    first = front.take(wait=False)
    assert first is not None and first.job.host == "a.test"
    throttled = Attempt(status=429, latency=0.01, retry_after=2.0)
    front.release(first, throttled, again_at=clock() + 2)
    assert hosts(drain(front)) == ["b.test"]
    clock.advance(2)
    assert sorted(lease.job.index for lease in drain(front)) == [0, 1]


def test_take_ends_when_every_job_is_done(clock: FakeClock) -> None:
    front = frontier(clock)
    jobs = jobs_for([f"http://h{i % 3}.test/{i}" for i in range(10)])
    start(front, jobs)
    while (lease := front.take(wait=False)) is not None:
        front.release(lease, OK)
    assert front.take() is None  # nothing pending, nothing in flight: done, no waiting


def test_window_bounds_read_ahead(clock: FakeClock) -> None:
    read: list[int] = []

    def lazily() -> Iterator[Job]:
        for job in jobs_for([f"http://a.test/{i}" for i in range(1000)]):
            read.append(job.index)
            yield job

    front = frontier(clock, per_host=1, window=10)
    front.feed(lazily())
    drain(front)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:  # let the feeder read all it may
        before = len(read)
        time.sleep(0.05)
        drain(front)
        if len(read) == before:
            break
    assert 10 <= len(read) <= 2 * 10 + 2  # the window, the feeder's queue, one in its hand
    front.close()


def test_a_slow_input_stalls_no_thread(clock: FakeClock) -> None:
    # The feeder reads the input, not the threads: a blocked read holds no lock they need.
    go = threading.Event()

    def slow() -> Iterator[Job]:
        yield from jobs_for(["http://a.test/1"])
        go.wait(10)
        yield from jobs_for(["http://b.test/2"])

    front = frontier(clock)
    front.feed(slow())
    lease = front.take()  # the first job, while the input is still blocked
    assert lease is not None and lease.job.host == "a.test"
    front.release(lease, OK)
    assert front.take(wait=False) is None  # nothing to do yet, and no lock held by the input
    go.set()
    second = front.take()
    assert second is not None and second.job.host == "b.test"
    front.release(second, OK)
    assert front.take() is None  # the input has ended and every job is done


def test_the_host_with_most_work_per_slot_goes_first(clock: FakeClock) -> None:
    urls = [f"http://small{i}.test/" for i in range(5)] + [f"http://hot.test/{i}" for i in range(9)]
    front = frontier(clock, per_host=2)
    start(front, jobs_for(urls))
    assert hosts(drain(front))[:2] == ["hot.test", "hot.test"]


def test_close_wakes_waiting_threads(clock: FakeClock) -> None:
    front = frontier(clock, per_host=1)
    start(front, jobs_for(["http://a.test/1", "http://a.test/2"]))
    assert front.take(wait=False) is not None
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(front.take()))
    waiter.start()
    front.close()
    waiter.join(timeout=5)
    assert not waiter.is_alive() and got == [None]


def test_throttling_without_retry_after_backs_off_doubling(clock: FakeClock) -> None:
    front = frontier(clock, per_host=1, host_backoff=1.0, max_wait=3.0)
    start(front, jobs_for([f"http://a.test/{i}" for i in range(5)]))
    for pause in (1.0, 2.0, 3.0):  # doubling, capped by max_wait
        lease = front.take(wait=False)
        assert lease is not None
        front.release(lease, THROTTLED)
        clock.advance(pause - 0.01)
        assert front.take(wait=False) is None
        clock.advance(0.01)
    lease = front.take(wait=False)
    assert lease is not None
    front.release(lease, OK)  # a success resets the backoff
    lease = front.take(wait=False)
    assert lease is not None
    front.release(lease, THROTTLED)
    clock.advance(1.0)
    assert front.take(wait=False) is None  # nothing left: all five were taken


def test_failing_host_is_cut_off_and_its_jobs_fail_at_once(clock: FakeClock) -> None:
    front = frontier(clock, per_host=1, host_max_failures=3)
    urls = [f"http://dead.test/{i}" for i in range(10)] + ["http://alive.test/"]
    start(front, jobs_for(urls))
    failures = 0
    while failures < 3:
        lease = front.take(wait=False)
        assert lease is not None
        if lease.job.host == "alive.test":
            front.release(lease, OK)
            continue
        front.release(lease, FAILED, again_at=clock())
        failures += 1
    rest = drain(front)
    given_up = [lease.job for lease in rest if lease.job.problem]
    assert [lease.job.host for lease in rest if not lease.job.problem] in (["alive.test"], [])
    assert len(given_up) == 10 and all(job.host == "dead.test" for job in given_up)
    assert all(job.problem and job.problem.startswith("host cut off after 3") for job in given_up)


def test_robots_txt_goes_first_as_a_job_of_its_own(clock: FakeClock) -> None:
    from urlfleet.politeness import RobotsAnswer

    front = frontier(clock, per_host=2, robots=True)
    start(front, jobs_for(["http://a.test/private/1", "http://a.test/2"]))
    (robots,) = drain(front)  # one request while robots.txt is unknown: robots.txt itself
    assert robots.job.robots_for == "a.test" and robots.job.target == "http://a.test/robots.txt"
    answer = RobotsAnswer(200, b"User-agent: *\nDisallow: /private\nCrawl-delay: 2\n")
    front.release(robots, OK, robots=answer)
    assert drain(front) == []  # the Crawl-delay counts from the robots.txt request too
    clock.advance(2.0 + GAP_MARGIN)
    refused, allowed = drain(front)
    assert refused.host is None and refused.job.problem == "disallowed by robots.txt"
    assert allowed.job.index == 1
    front.release(allowed, OK)
    assert allowed.host is not None and allowed.host.limits.delay == 2.0


@pytest.mark.parametrize("status", [500, None])
def test_robots_txt_unavailable_cuts_the_host_off(clock: FakeClock, status: int | None) -> None:
    from urlfleet.politeness import RobotsAnswer

    front = frontier(clock, robots=True)
    start(front, jobs_for(["http://a.test/1", "http://a.test/2"]))
    (robots,) = drain(front)
    front.release(robots, OK, robots=RobotsAnswer(status, problem="ConnectTimeout: x"))
    given_up = drain(front)
    assert [lease.job.index for lease in given_up] == [0, 1]
    assert all("robots.txt unavailable" in (lease.job.problem or "") for lease in given_up)


def test_a_hop_into_a_host_whose_robots_txt_is_queued_waits_behind_it(clock: FakeClock) -> None:
    # The hop goes to the front of b.test's queue; robots.txt must still go first, or the
    # host would wait for its verdict forever and the run with it.
    from urlfleet.politeness import RobotsAnswer

    front = frontier(clock, per_host=4, robots=True)
    start(front, jobs_for(["http://b.test/1", "http://a.test/1"]))
    leases = drain(front)
    robots_b = next(lease for lease in leases if lease.job.robots_for == "b.test")
    robots_a = next(lease for lease in leases if lease.job.robots_for == "a.test")
    front.release(robots_a, OK, robots=RobotsAnswer(404))
    (page_a,) = drain(front)
    page_a.job.target, page_a.job.host = "http://b.test/moved", "b.test"  # a redirect hop
    front.release(page_a, OK, again_at=clock())
    assert drain(front) == []  # b.test's robots.txt is still in flight
    front.release(robots_b, OK, robots=RobotsAnswer(404))
    assert sorted(lease.job.target for lease in drain(front)) == [
        "http://b.test/1",
        "http://b.test/moved",
    ]


def test_a_robots_txt_cut_short_is_no_answer() -> None:
    from urlfleet.fetching.fetcher import Fetcher
    from urlfleet.record.records import Result

    fetcher = Fetcher(FetchConfig(robots=True))
    job = Job(-1, "http://a.test/robots.txt", None, "http://a.test/robots.txt", "a.test")
    job.robots_for = "a.test"
    cut = Result(url=job.url, ok=False, status=200, error="ChunkedEncodingError: x", attempts=1,
                 elapsed_s=0, bytes=10, host="a.test", error_kind="body")  # fmt: skip
    step = fetcher._final(job, cut, None)
    assert step.result is None and step.robots is not None and step.robots.status is None
    missing = Result(url=job.url, ok=False, status=404, error="HTTP 404", attempts=1,
                     elapsed_s=0, bytes=0, host="a.test", error_kind="http")  # fmt: skip
    step = fetcher._final(job, missing, None)
    assert step.robots is not None and step.robots.status == 404


def test_a_release_that_takes_gets_the_slot_it_freed(clock: FakeClock) -> None:
    front = frontier(clock, per_host=1)
    start(front, jobs_for(["http://a.test/1", "http://a.test/2", "http://b.test/1"]))
    first, other = drain(front)
    assert (first.job.index, other.job.index) == (0, 2)
    following = front.release(first, OK, then="take")
    assert following is not None and following.job.index == 1  # a.test's slot, just freed
    front.release(other, OK)
    retried = front.release(following, OK, again_at=clock(), then="take")  # a retry, due now
    assert retried is not None and retried.job.index == 1
    assert front.release(retried, OK, then="take") is None  # all done


@pytest.mark.parametrize("merged", [False, True], ids=["release, take", "release taking"])
def test_the_take_that_finds_the_end_wakes_every_waiting_thread(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch, merged: bool
) -> None:
    # A waiting thread must hear that all is done, not find out at its next timeout.
    monkeypatch.setattr("urlfleet.schedule.lines.LONGEST_WAIT", 60.0)
    more = threading.Event()

    def listed() -> Iterator[Job]:
        yield from jobs_for(["http://a.test/1"])
        more.wait(10)  # the end of the input comes while the one job is in flight

    front = frontier(clock, window=1)
    reader = front.feed(listed())
    lease = front.take()
    assert lease is not None
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(front.take()))
    waiter.start()
    more.set()
    reader.join(10)  # the end is in the feed; the window (1) is full: nobody takes it in yet
    deadline = time.monotonic() + 10
    while not front._cond._waiters and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.01)  # the waiter, woken by the feeder, is back waiting
    if merged:
        assert front.release(lease, OK, then="take") is None  # reads the end: every job done
    else:
        front.release(lease, OK, then="caller_takes")
        assert front.take() is None  # this take reads the end, and finds every job done
    waiter.join(timeout=5)
    assert not waiter.is_alive() and got == [None]


def test_a_close_from_inside_the_lock_does_not_hang(clock: FakeClock) -> None:
    # Ctrl-C's handler (Run.stop -> close) runs in the main thread wherever it is, inside the
    # frontier's lock too (a one-thread run's take, the progress line's paused_hosts).
    front = frontier(clock)
    done = threading.Event()

    def handler_inside_the_lock() -> None:
        with front._cond:
            front.close()
        done.set()

    threading.Thread(target=handler_inside_the_lock, daemon=True).start()
    assert done.wait(5), "close() waited for a lock its own thread held"
    assert front.take() is None
