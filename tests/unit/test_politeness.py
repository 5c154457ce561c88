"""The politeness rules on their own: host identity, the gate at the write, memory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import FakeClock
from urlfleet.config import FetchConfig, HostLimits
from urlfleet.fetching.gate import HOLD_AT_WRITE, NotDue, writing
from urlfleet.politeness import (
    GAP_MARGIN,
    Attempt,
    HostPoliteness,
    Lease,
    Politeness,
    RobotsAnswer,
    host_key,
)
from urlfleet.politeness.health import Outcome, outcome_of
from urlfleet.politeness.identity import key_of
from urlfleet.schedule.job import Job


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("http://Example.COM/a", "example.com"),
        ("http://example.com:80/a", "example.com"),
        ("https://example.com:443/", "example.com"),
        ("https://example.com:80/", "example.com:80"),
        ("http://example.com./", "example.com"),
        ("http://127.0.0.1:8701/x", "127.0.0.1:8701"),
        ("http://127.1:8701/x", "127.0.0.1:8701"),
        ("http://0x7f.0.0.1/", "127.0.0.1"),
        ("http://[::1]:8080/", "[::1]:8080"),
        ("http://[0:0:0::1]:8080/", "[::1]:8080"),
        ("http://[::FFFF:7F00:1]/", "[::ffff:7f00:1]"),
        ("http://user:pw@host.test/", "host.test"),
        ("http://bücher.test/", "xn--bcher-kva.test"),
        ("http://BÜCHER.test./", "xn--bcher-kva.test"),
        ("http://XN--BCHER-KVA.TEST:8080/", "xn--bcher-kva.test:8080"),
        ("http://1e100.net/", "1e100.net"),
    ],
)
def test_host_key_is_the_name_on_the_wire(url: str, key: str) -> None:
    assert host_key(url) == key


def test_host_limits_keys_are_spelled_like_host_keys(clock: FakeClock) -> None:
    assert key_of("Bücher.TEST:8080") == "xn--bcher-kva.test:8080"
    config = FetchConfig(host_limits={"BÜCHER.test": HostLimits(1, 3.0)})
    politeness = Politeness(config, clock=clock)
    assert politeness.base_limits(host_key("http://xn--bcher-kva.test/")) == HostLimits(1, 3.0)


def leased(politeness: Politeness, clock: FakeClock, url: str = "http://a.test/") -> Lease:
    states: dict[str, HostPoliteness] = politeness.__dict__.setdefault("_test_states", {})
    key = host_key(url)
    state = states.setdefault(key, politeness.host(key))
    return politeness.lease(state, Job(0, url, None, url, key), clock())


def test_hold_keeps_the_gap_from_the_last_write(clock: FakeClock) -> None:
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    politeness = Politeness(FetchConfig(delay=1.0, per_host=4), clock=clock, sleep=sleep)
    first, second = leased(politeness, clock), leased(politeness, clock)
    clock.advance(0.3)  # the first thread was slow to write
    with writing(first):
        pass
    clock.advance(1.0 + GAP_MARGIN - 0.05)
    with writing(second):
        pass  # held back until a full gap after the first actual write
    assert slept == [pytest.approx(0.05)]


def test_hold_sends_a_far_off_request_back_instead_of_sleeping(clock: FakeClock) -> None:
    politeness = Politeness(FetchConfig(delay=2.0, per_host=4), clock=clock, sleep=clock.advance)
    first, second = leased(politeness, clock), leased(politeness, clock)
    with writing(first):
        pass
    with pytest.raises(NotDue) as not_due, writing(second):
        pytest.fail("written too early")
    assert not_due.value.until == pytest.approx(clock() + 2.0 + GAP_MARGIN)
    assert HOLD_AT_WRITE < 2.0


def test_nothing_is_written_to_a_host_paused_after_its_lease(clock: FakeClock) -> None:
    politeness = Politeness(FetchConfig(per_host=4), clock=clock, sleep=clock.advance)
    answered, waiting = leased(politeness, clock), leased(politeness, clock)
    politeness.observe(answered, Attempt(429, 0.01, retry_after=5.0), clock())
    with pytest.raises(NotDue) as not_due, writing(waiting):
        pytest.fail("written during the pause")
    assert not_due.value.until == pytest.approx(clock() + 5.0)


def test_a_host_remembers_its_state_elsewhere(clock: FakeClock) -> None:
    config = FetchConfig(per_host=2, auto_throttle=True)
    here = Politeness(config, clock=clock)
    lease = leased(here, clock)
    here.observe(lease, Attempt(429, 0.3, retry_after=4.0), clock())
    memory = here.memory(lease.host, clock())
    assert memory is not None and memory.paused_for == pytest.approx(4.0) and memory.delay

    there_clock = FakeClock(start=50.0)
    there = Politeness(config, clock=there_clock)
    there.remember("a.test", memory)
    state = there.host("a.test")
    assert state.health.paused_until == pytest.approx(54.0)
    assert state.limits.delay == memory.delay and state.health.throttles == 1


def test_a_pause_that_comes_while_the_gap_is_slept_off_still_holds(clock: FakeClock) -> None:
    politeness = Politeness(FetchConfig(delay=0.5, per_host=4), clock=clock)
    first, second, answered = (leased(politeness, clock) for _ in range(3))
    with writing(first):
        pass

    def sleep_while_a_429_comes(seconds: float) -> None:
        politeness.observe(answered, Attempt(429, 0.01, retry_after=5.0), clock())
        clock.advance(seconds)

    second.sleep = sleep_while_a_429_comes
    with pytest.raises(NotDue), writing(second):
        pytest.fail("written during the pause")


def test_a_failure_mid_body_counts_towards_the_cut_off(clock: FakeClock) -> None:
    politeness = Politeness(FetchConfig(host_max_failures=2), clock=clock)
    cut = None
    for _ in range(2):
        lease = leased(politeness, clock)
        cut = politeness.observe(
            lease, Attempt(200, 0.01, error_kind="timeout", problem="ReadTimeout"), 0
        )
    assert cut is not None and cut.startswith("host cut off after 2 failures")


def test_a_request_sent_back_unwritten_gives_its_start_back(clock: FakeClock) -> None:
    politeness = Politeness(FetchConfig(delay=1.0, per_host=2), clock=clock)
    lease = leased(politeness, clock)
    assert lease.host is not None and lease.host.next_start == pytest.approx(
        1.0 + GAP_MARGIN + 1000
    )
    politeness.observe(lease, None, clock())
    assert lease.host.next_start == 0.0


def test_a_longer_delay_learned_during_a_write_holds_for_the_next(clock: FakeClock) -> None:
    politeness = Politeness(FetchConfig(per_host=2, robots=True), clock=clock)
    lease = leased(politeness, clock)
    assert lease.host is not None
    with writing(lease):  # robots.txt says Crawl-delay: 2 while this request is written
        politeness.learn_robots(lease.host, RobotsAnswer(200, b"User-agent: *\nCrawl-delay: 2\n"))
    due, _ = leased(politeness, clock).write_due(clock())
    assert due >= clock() + 2.0


class RacingHost(HostPoliteness):
    """A host state whose ``send_after``, once the request is written, is read just before
    another thread (the frontier, under its own lock) changes the host's pace: the read is
    stale by the time whoever read it writes again, as a thread switch could leave it."""

    def __init__(self, state: HostPoliteness, race: Callable[[], None]) -> None:
        super().__init__(state.key, state.limits, state.robots)
        object.__setattr__(self, "_race", race)
        object.__setattr__(self, "_armed", False)

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        if name == "send_after" and object.__getattribute__(self, "_armed"):
            object.__setattr__(self, "_armed", False)
            object.__getattribute__(self, "_race")()
        return value


def test_a_pace_change_while_a_write_is_recorded_is_not_lost(clock: FakeClock) -> None:
    # The write gate and the frontier each hold a lock of their own; a field written under
    # both would lose one of two changes that race. The gate records the write in fields of
    # its own, and the frontier folds them in when the lease comes back.
    politeness = Politeness(FetchConfig(per_host=2, delay=0.1), clock=clock, sleep=clock.advance)
    lease = leased(politeness, clock)
    assert lease.host is not None
    slowed = False

    def slow_down() -> None:
        nonlocal slowed
        slowed = True
        politeness._set_delay(host, 5.0)  # e.g. an --auto-throttle step after a 429

    host = RacingHost(lease.host, slow_down)
    lease.host = host
    with writing(lease):
        object.__setattr__(host, "_armed", True)
    if not slowed:  # nothing read the state after the write: the change comes after it
        slow_down()
    due, _ = lease.write_due(clock())
    assert due >= clock() + 5.0 + GAP_MARGIN
    politeness.observe(lease, Attempt(200, 0.01), clock())
    assert host.send_after >= clock() + 5.0 + GAP_MARGIN


def test_host_limits_keys_may_be_urls(clock: FakeClock) -> None:
    politeness = Politeness(
        FetchConfig(host_limits={"https://A.test:443/x": (1, 2.0)}), clock=clock
    )
    assert politeness.base_limits("a.test") == HostLimits(1, 2.0)


@pytest.mark.parametrize(
    ("status", "error_kind", "outcome"),
    [
        (200, None, Outcome.ANSWERED),
        (404, "http", Outcome.ANSWERED),  # a final answer says nothing against the host
        (200, "skipped", Outcome.ANSWERED),  # --accept-type refused the body: our doing
        (200, None, Outcome.ANSWERED),  # a body past --max-bytes: no error, our limit
        (302, "redirect", Outcome.ANSWERED),
        (408, "http", Outcome.ANSWERED),
        (429, "http", Outcome.THROTTLED),
        (503, "http", Outcome.OVERLOADED),
        (500, "http", Outcome.FAILED),
        (None, "connect", Outcome.FAILED),
        (None, "dns", Outcome.FAILED),
        (None, "tls", Outcome.FAILED),
        (None, "http", Outcome.FAILED),  # garbage instead of an answer
        (200, "timeout", Outcome.FAILED),  # stalled mid-body
        (200, "body", Outcome.FAILED),  # cut short
        (None, "internal", Outcome.ANSWERED),
    ],
)
def test_what_an_attempt_says_of_its_host(
    status: int | None, error_kind: str | None, outcome: Outcome
) -> None:
    assert outcome_of(status, error_kind=error_kind) is outcome


def test_a_pace_changed_after_a_write_holds_for_the_next_longer_or_shorter(
    clock: FakeClock,
) -> None:
    politeness = Politeness(FetchConfig(per_host=2, delay=1.0), clock=clock, sleep=clock.advance)
    first = leased(politeness, clock)  # its gap drawn for the 1 s delay
    assert first.host is not None
    with writing(first):
        pass
    politeness._set_delay(first.host, 0.2)  # --auto-throttle speeds up after a quick 200
    due, _ = leased(politeness, clock).write_due(clock())
    assert due == pytest.approx(clock() + 0.2 + GAP_MARGIN)
    politeness._set_delay(first.host, 3.0)  # a Crawl-delay learned meanwhile
    due, _ = leased(politeness, clock).write_due(clock())
    assert due == pytest.approx(clock() + 3.0 + GAP_MARGIN)


def test_a_urls_key_is_the_key_of_the_url_read_whole() -> None:
    # The key is worked out once per origin: it must be what the whole URL gives.
    import random

    from urlfleet.politeness import identity

    pieces = ["a", "B", ".", ":", "8", "/", "?", "#", "@", "[", "]", "\t", " ", "\u00fc", "%41"]
    rng = random.Random(5)
    for _ in range(3000):
        url = rng.choice(["http://", "HTTPS://", "http:/", "ftp://", " http://", ""])
        url += "".join(rng.choice(pieces) for _ in range(rng.randint(0, 10)))
        try:
            whole = identity._origin_key.__wrapped__(url)
        except (ValueError, UnicodeError) as exc:
            with pytest.raises(type(exc)):
                identity.host_key(url)
            continue
        assert identity.host_key(url) == whole, url
