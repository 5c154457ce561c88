from __future__ import annotations

import threading

import pytest

from tests.conftest import FakeClock
from urlfleet.config import HostLimits
from urlfleet.hosts import HostRules, Outcome
from urlfleet.schedule import GAP_MARGIN, Frontier, Job, host_key


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("http://Example.COM/a", "example.com"),
        ("http://example.com:80/a", "example.com"),
        ("https://example.com:443/", "example.com"),
        ("https://example.com:80/", "example.com:80"),
        ("http://127.0.0.1:8701/x", "127.0.0.1:8701"),
        ("http://[::1]:8080/", "[::1]:8080"),
        ("http://user:pw@host.test/", "host.test"),
    ],
)
def test_host_key_is_lowercase_host_plus_non_default_port(url: str, key: str) -> None:
    assert host_key(url) == key


def jobs_for(urls: list[str]) -> list[Job]:
    return [Job(index=i, url=u, meta=None, target=u, host=host_key(u)) for i, u in enumerate(urls)]


def frontier(clock: FakeClock, per_host: int = 2, delay: float = 0.0, **kw: object) -> Frontier:
    return Frontier(policy=lambda host: HostLimits(per_host, delay), clock=clock, **kw)  # type: ignore[arg-type]


def start(front: Frontier, jobs: list[Job]) -> None:
    tokens = front.tokens(iter(jobs))
    for _ in tokens:  # admit everything, as joblib would over the run
        pass


def drain(front: Frontier) -> list[Job]:
    taken = []
    while (job := front.take(wait=False)) is not None:
        taken.append(job)
    return taken


def test_never_more_than_per_host_in_flight(clock: FakeClock) -> None:
    front = frontier(clock, per_host=2)
    start(front, jobs_for([f"http://a.test/{i}" for i in range(5)]))
    first = drain(front)
    assert [j.index for j in first] == [0, 1]
    front.release(first[0])
    assert [j.index for j in drain(front)] == [2]


def test_busy_host_does_not_block_other_hosts(clock: FakeClock) -> None:
    # A host-sorted list: all of a.test first. b.test must still get its turn at once.
    urls = [f"http://a.test/{i}" for i in range(50)] + [f"http://b.test/{i}" for i in range(3)]
    front = frontier(clock, per_host=1)
    start(front, jobs_for(urls))
    assert {j.host for j in drain(front)} == {"a.test", "b.test"}


def test_starts_to_one_host_are_delay_apart(clock: FakeClock) -> None:
    front = frontier(clock, per_host=4, delay=0.5)
    start(front, jobs_for([f"http://a.test/{i}" for i in range(3)] + ["http://b.test/"]))
    assert sorted(j.host for j in drain(front)) == ["a.test", "b.test"]
    clock.advance(0.5 + GAP_MARGIN - 0.001)
    assert drain(front) == []
    clock.advance(0.001)
    assert [j.host for j in drain(front)] == ["a.test"]


def test_jitter_adds_to_the_gap(clock: FakeClock) -> None:
    front = Frontier(policy=lambda h: HostLimits(4, 1.0), jitter=0.5, clock=clock, rng=lambda: 1.0)
    start(front, jobs_for(["http://a.test/1", "http://a.test/2"]))
    assert len(drain(front)) == 1
    clock.advance(1.5 + GAP_MARGIN - 0.001)
    assert drain(front) == []
    clock.advance(0.001)
    assert len(drain(front)) == 1


def test_retry_waits_without_holding_the_slot(clock: FakeClock) -> None:
    front = frontier(clock, per_host=1)
    start(front, jobs_for(["http://a.test/1", "http://a.test/2"]))
    (job,) = drain(front)
    front.release(job, again_at=clock() + 5)
    (other,) = drain(front)  # the slot is free for the other URL meanwhile
    assert other.index == 1
    front.release(other)
    clock.advance(5)
    assert [j.index for j in drain(front)] == [0]


def test_pause_stops_the_whole_host(clock: FakeClock) -> None:
    front = frontier(clock, per_host=4)
    start(front, jobs_for(["http://a.test/1", "http://a.test/2", "http://b.test/1"]))
    first = front.take(wait=False)
    assert first is not None and first.host == "a.test"
    front.release(first, again_at=clock() + 2, outcome=Outcome.THROTTLED, retry_after=2.0)
    assert [j.host for j in drain(front)] == ["b.test"]
    clock.advance(2)
    assert sorted(j.index for j in drain(front)) == [0, 1]


def test_tokens_match_jobs_and_take_ends_when_all_done(clock: FakeClock) -> None:
    front = frontier(clock)
    jobs = jobs_for([f"http://h{i % 3}.test/{i}" for i in range(10)])
    assert sum(1 for _ in front.tokens(iter(jobs))) == 10
    for job in drain(front):
        front.release(job)
    while (job := front.take(wait=False)) is not None:
        front.release(job)
    assert front.take() is None  # nothing pending, nothing in flight: done, no waiting


def test_window_bounds_read_ahead(clock: FakeClock) -> None:
    read: list[int] = []

    def lazily() -> object:
        for job in jobs_for([f"http://a.test/{i}" for i in range(1000)]):
            read.append(job.index)
            yield job

    front = frontier(clock, per_host=1, window=10)
    tokens = front.tokens(lazily())  # type: ignore[arg-type]
    next(tokens)
    drain(front)
    assert len(read) <= 10 + 1


def test_send_gate_measures_from_the_actual_send(clock: FakeClock) -> None:
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    front = Frontier(policy=lambda h: HostLimits(4, 1.0), clock=clock, sleep=sleep)
    start(front, jobs_for(["http://a.test/1", "http://a.test/2"]))
    first = front.take(wait=False)
    assert first is not None
    clock.advance(0.3)  # the first thread was slow to send
    front.before_send(first)
    clock.advance(1.0 + GAP_MARGIN - 0.3)
    second = front.take(wait=False)
    assert second is not None and not slept
    front.before_send(second)  # held back until a full gap after the first actual send
    assert slept == [pytest.approx(0.3)]


def test_the_host_with_most_work_per_slot_goes_first(clock: FakeClock) -> None:
    urls = [f"http://small{i}.test/" for i in range(5)] + [f"http://hot.test/{i}" for i in range(9)]
    front = frontier(clock, per_host=2)
    start(front, jobs_for(urls))
    assert [j.host for j in drain(front)][:2] == ["hot.test", "hot.test"]


def test_the_first_host_lined_up_moves_up_as_its_queue_grows(clock: FakeClock) -> None:
    # The first host ever lined up once carried the mark 0, which read as "not lined up",
    # so its place was never updated as its queue grew, and it finished last.
    urls = ["http://first.test/0"] + [f"http://other.test/{i}" for i in range(3)]
    urls += [f"http://first.test/{i}" for i in range(1, 12)]
    front = frontier(clock, per_host=1)
    start(front, jobs_for(urls))
    taken = front.take(wait=False)
    assert taken is not None and taken.host == "first.test"


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
    rules = HostRules(backoff=1.0, max_wait=3.0)
    front = Frontier(policy=lambda h: HostLimits(1, 0.0), rules=rules, clock=clock)
    start(front, jobs_for([f"http://a.test/{i}" for i in range(5)]))
    for pause in (1.0, 2.0, 3.0):  # doubling, capped by max_wait
        job = front.take(wait=False)
        assert job is not None
        front.release(job, outcome=Outcome.THROTTLED)
        clock.advance(pause - 0.01)
        assert front.take(wait=False) is None
        clock.advance(0.01)
    job = front.take(wait=False)
    assert job is not None
    front.release(job, outcome=Outcome.ANSWERED)  # a success resets the backoff
    job = front.take(wait=False)
    assert job is not None
    front.release(job, outcome=Outcome.THROTTLED)
    clock.advance(1.0)
    assert front.take(wait=False) is None  # nothing left: all five were taken


def test_failing_host_is_cut_off_and_its_jobs_fail_at_once(clock: FakeClock) -> None:
    rules = HostRules(max_failures=3)
    front = Frontier(policy=lambda h: HostLimits(1, 0.0), rules=rules, clock=clock)
    urls = [f"http://dead.test/{i}" for i in range(10)] + ["http://alive.test/"]
    start(front, jobs_for(urls))
    failures = 0
    while failures < 3:
        job = front.take(wait=False)
        assert job is not None
        if job.host == "alive.test":
            front.release(job, outcome=Outcome.ANSWERED)
            continue
        front.release(job, again_at=clock(), outcome=Outcome.FAILED, why="ConnectionError: x")
        failures += 1
    rest = drain(front)
    given_up = [j for j in rest if j.problem]
    assert [j.host for j in rest if not j.problem] in (["alive.test"], [])
    assert len(given_up) == 10 and all(j.host == "dead.test" for j in given_up)
    assert all(j.problem and j.problem.startswith("host cut off after 3") for j in given_up)
