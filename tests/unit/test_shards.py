"""Politeness across shards, pure: what a host's next shard inherits and when it may start."""

from __future__ import annotations

from tests.conftest import FakeClock
from urlfleet.config import FetchConfig
from urlfleet.politeness import HostMemory
from urlfleet.politeness.shards import HostMemories

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
