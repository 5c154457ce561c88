"""Politeness across shards: what a host's next shard inherits, and when it may start.

A cluster run fetches each host in one shard at a time, and every shard runs a Politeness of
its own. Between shards, the machine that plans them keeps what each host's state said at the
end of its last shard (``Politeness.memory``) and decides here:

- **what a shard starts from**: the latest memory of each of its hosts, aged by the seconds
  since it came, so a pause or gap runs on while no shard holds the host;
- **how long a group of hosts waits** before its next shard: one full start gap of its hosts
  (their delay or the Crawl-delay of the robots.txt they remember, their adaptive pace, with
  jitter and margin), plus, for a shard lost with its worker, as long as its requests may
  still run; longer while a remembered pause or gap lasts.

The gap counts from when the planner saw the last shard end, and that shard's requests had
all started before it ended: so it holds across shards with no clocks compared between
machines. Memories keep their times as seconds from when they came, on the planner's clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

from urlfleet.config import FetchConfig
from urlfleet.politeness import HostMemory, Politeness

MEMORIES_KEPT = 100_000  # host states kept between shards (the oldest go first)


class HostMemories:
    """The latest memory of each host that has one, as its last shard left it. Hosts are
    found by group (``group(key)``, the planner's): a shard holds groups, not hosts.

    Bounded: a memory that has run out is dropped when next looked at, and past ``kept``
    the oldest go (a robots.txt verdict among them is then fetched again).

    >>> memories.update(end.memories); waits = memories.waits(groups, hosts)
    """

    def __init__(
        self,
        config: FetchConfig,
        *,
        group: Callable[[str], int],
        clock: Callable[[], float] = time.monotonic,
        kept: int = MEMORIES_KEPT,
    ) -> None:
        self._politeness = Politeness(config, clock=clock)  # for the gap rule only
        self._group = group
        self._clock = clock
        self._kept_at_most = kept
        self._kept: dict[str, tuple[float, HostMemory]] = {}  # host: (when received, memory)
        self._by_group: dict[int, set[str]] = {}

    def __len__(self) -> int:
        return len(self._kept)

    def update(self, memories: Mapping[str, HostMemory | None]) -> None:
        """Take in what a finished shard said of its hosts (None: nothing to carry)."""
        now = self._clock()
        for key, memory in memories.items():
            self._forget(key)
            if memory is not None:
                self._kept[key] = (now, memory)
                self._by_group.setdefault(self._group(key), set()).add(key)
        while len(self._kept) > self._kept_at_most:
            self._forget(next(iter(self._kept)))

    def inherited(self, groups: Iterable[int]) -> dict[str, HostMemory]:
        """What a shard of ``groups`` starts from, aged to now."""
        now = self._clock()
        memories: dict[str, HostMemory] = {}
        for group in groups:
            for key in list(self._by_group.get(group, ())):
                received, memory = self._kept[key]
                still = aged(memory, now - received)
                if still is None:
                    self._forget(key)
                else:
                    memories[key] = still
        return memories

    def waits(
        self, groups: Iterable[int], hosts: Iterable[str] = (), *, in_flight_for: float = 0.0
    ) -> dict[int, float]:
        """Seconds from now before each of ``groups`` may start its next shard, the last
        one having ended now with ``hosts`` in it; requests it lost may run ``in_flight_for``
        more. Groups that need not wait are left out."""
        hosts_of: dict[int, set[str]] = {}
        for key in hosts:
            hosts_of.setdefault(self._group(key), set()).add(key)
        waits: dict[int, float] = {}
        for group in groups:
            memories = self.inherited([group])
            keys = hosts_of.get(group, set()) | memories.keys()
            gap = max((self._politeness.max_gap(k, memories.get(k)) for k in keys), default=0.0)
            held = max((max(m.paused_for, m.gap_for) for m in memories.values()), default=0.0)
            wait = max(gap + in_flight_for, held)
            if wait > 0:
                waits[group] = wait
        return waits

    def _forget(self, key: str) -> None:
        if self._kept.pop(key, None) is not None:
            group = self._group(key)
            keys = self._by_group[group]
            keys.discard(key)
            if not keys:
                del self._by_group[group]


def aged(memory: HostMemory, seconds: float) -> HostMemory | None:
    """``memory`` ``seconds`` later: its pause and gap that much shorter; None once it says
    nothing more (a robots.txt verdict, a pace or a cut-off never run out)."""
    older = replace(
        memory,
        paused_for=max(0.0, memory.paused_for - seconds),
        gap_for=max(0.0, memory.gap_for - seconds),
    )
    return None if older == HostMemory() else older


def all_aged(memories: Mapping[str, HostMemory], seconds: float) -> dict[str, HostMemory]:
    """Every memory ``seconds`` later, those that say nothing more left out."""
    older = {key: aged(memory, seconds) for key, memory in memories.items()}
    return {key: memory for key, memory in older.items() if memory is not None}
