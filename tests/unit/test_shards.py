"""Politeness across shards, pure: what a host's next shard inherits and when it may start."""

from __future__ import annotations

import pytest

from tests.conftest import FakeClock
from urlfleet.config import FetchConfig
from urlfleet.politeness import GAP_MARGIN, HostMemory
from urlfleet.politeness.robots import Robots
from urlfleet.politeness.shards import HostMemories, aged, all_aged

# The planner's groups, made up: a.test and c.test share one.
GROUPS = {"a.test": 1, "b.test": 2, "c.test": 1}
A, B = GROUPS["a.test"], GROUPS["b.test"]


def memories_for(clock: FakeClock, config: FetchConfig | None = None) -> HostMemories:
    return HostMemories(config or FetchConfig(), group=GROUPS.__getitem__, clock=clock)


def test_memories_age_and_go_once_they_say_nothing(clock: FakeClock) -> None:
    memories = memories_for(clock)
    memories.update({"a.test": HostMemory(paused_for=2.0), "b.test": HostMemory(failures=3)})
    clock.advance(1.5)
    assert memories.inherited([A]) == {"a.test": HostMemory(paused_for=0.5)}
    assert memories.waits([A, B]) == {A: 0.5}
    clock.advance(1.5)
    assert memories.inherited([A, B]) == {"b.test": HostMemory(failures=3)}
    memories.update({"b.test": None})  # its last shard left it with nothing to carry
    assert memories.inherited([A, B]) == {} and memories.waits([A, B]) == {}


def robots_with(crawl_delay: float) -> Robots:
    return Robots(rules=None, crawl_delay=crawl_delay)


def test_the_next_shard_waits_out_a_crawl_delay_learned_in_the_last(clock: FakeClock) -> None:
    # The config says 0.5 s; a.test's robots.txt, read in its last shard, says 2 s. That
    # shard's last request was long before its end, so it left no gap of its own to wait out.
    memories = memories_for(clock, FetchConfig(delay=0.5, robots=True))
    memories.update({"a.test": HostMemory(robots=robots_with(2.0))})
    assert memories.waits([A], ["a.test"]) == {A: pytest.approx(2.0 + GAP_MARGIN)}
    # Lost with its worker, the shard's requests may run on: the gap counts from their end.
    waits = memories.waits([A], ["a.test"], in_flight_for=1.0)
    assert waits == {A: pytest.approx(3.0 + GAP_MARGIN)}
    assert memories.waits([B], ["b.test"]) == {B: pytest.approx(0.5 + GAP_MARGIN)}


def test_a_group_waits_for_its_slowest_host_known_or_remembered(clock: FakeClock) -> None:
    memories = memories_for(clock, FetchConfig(delay=0.2, jitter=0.1, robots=True))
    # c.test was not in this shard, but its group was: its next shard may hold c.test too.
    remembered = {"c.test": HostMemory(robots=robots_with(1.0)), "b.test": HostMemory(delay=3.0)}
    memories.update(remembered)
    assert memories.waits([A], ["a.test"]) == {A: pytest.approx(1.1 + GAP_MARGIN)}
    assert memories.waits([B], ["b.test"]) == {B: pytest.approx(3.1 + GAP_MARGIN)}  # its pace
    assert memories_for(clock).waits([A, B], ["a.test", "b.test"]) == {}  # no delay at all


def test_a_pause_carries_over_and_ages_on_both_sides(clock: FakeClock) -> None:
    memories = memories_for(clock, FetchConfig(delay=0.5))
    memories.update({"a.test": HostMemory(paused_for=3.0, throttles=1)})
    clock.advance(1.0)  # the client waits that long for a free worker
    inherited = memories.inherited([A])
    assert inherited == {"a.test": HostMemory(paused_for=2.0, throttles=1)}
    assert memories.waits([A], ["a.test"]) == {A: 2.0}  # longer than the gap: the pause holds
    # The worker ages what it inherits by the time the shard took to reach it.
    assert all_aged(inherited, 0.5) == {"a.test": HostMemory(paused_for=1.5, throttles=1)}
    assert aged(HostMemory(paused_for=1.0, gap_for=0.4), 0.5) == HostMemory(paused_for=0.5)


def test_memories_past_their_useful_life_are_dropped(clock: FakeClock) -> None:
    memories = HostMemories(FetchConfig(), group=GROUPS.__getitem__, clock=clock, kept=2)
    memories.update({"a.test": HostMemory(gap_for=1.0), "b.test": HostMemory(cut_off="gone")})
    clock.advance(1.0)
    assert memories.inherited([A, B]) == {"b.test": HostMemory(cut_off="gone")}
    assert len(memories) == 1  # the run-out gap is gone, not only left out
    assert aged(HostMemory(paused_for=1.0), 1.0) is None
    # A verdict or a cut-off never runs out: past ``kept``, the oldest goes.
    memories.update({"a.test": HostMemory(robots=robots_with(1.0))})
    memories.update({"c.test": HostMemory(robots=robots_with(2.0))})
    assert len(memories) == 2 and set(memories.inherited([A, B])) == {"a.test", "c.test"}
