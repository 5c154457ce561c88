"""The frontier's hosts: one queue of waiting jobs per host, and the book that keeps them.

Data only, with no lock of its own: the frontier's lock guards every call, and the frontier
alone asks the politeness rules about a host.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator

from urlfleet.politeness import HostPoliteness
from urlfleet.schedule.job import Job

SWEEP_HOSTS_AT = 1_000  # forget idle hosts once this many are known...
SWEEP_GROWTH = 4  # ...and again once a quarter more than the last sweep kept have come


class HostQueue:
    """One host's waiting jobs and its place in the frontier's lines."""

    __slots__ = ("key", "rules", "queue", "robots", "scheduled", "ready_mark")

    def __init__(self, key: str, rules: HostPoliteness) -> None:
        self.key = key
        self.rules = rules
        self.queue: deque[Job] = deque()
        self.robots: Job | None = None  # its robots.txt job, which goes before the queue
        self.scheduled = False  # already in the ready line or the sleeping heap
        self.ready_mark = 0  # the sequence number of its live entry in the ready line, if any

    def add(self, job: Job, *, front: bool) -> None:
        """Queue a job at the back, or with ``front`` at the head."""
        if front:  # retries and redirect hops go first: they are older than the queue
            self.queue.appendleft(job)
        else:
            self.queue.append(job)

    def next_job(self) -> Job | None:
        """The job it would hand out next (its robots.txt job first), left in place."""
        return self.robots or (self.queue[0] if self.queue else None)

    def pop_next(self) -> Job:
        """The job it hands out next, taken out; only when ``next_job`` is not None."""
        if self.robots is not None:
            job, self.robots = self.robots, None
            return job
        return self.queue.popleft()

    def drain(self) -> Iterator[Job]:
        """Every job it holds, taken out one at a time: its robots.txt job first."""
        if self.robots is not None:
            yield self.robots
            self.robots = None
        while self.queue:
            yield self.queue.popleft()


class Hosts:
    """Every host the frontier knows, by key, in the order they came; idle ones are swept."""

    def __init__(self) -> None:
        self._by_key: dict[str, HostQueue] = {}
        self._sweep_at = SWEEP_HOSTS_AT

    def __iter__(self) -> Iterator[HostQueue]:
        return iter(self._by_key.values())

    def get(self, key: str) -> HostQueue | None:
        """The host's queue, if the host is known."""
        return self._by_key.get(key)

    def add(self, host: HostQueue) -> HostQueue:
        """Know one more host; returns it."""
        self._by_key[host.key] = host
        return host

    def crowded(self) -> bool:
        """Whether enough hosts have come since the last sweep to sweep again."""
        return len(self._by_key) > self._sweep_at

    def sweep(self, forgettable: Callable[[HostQueue], bool]) -> None:
        """Forget the hosts with nothing queued or scheduled that ``forgettable`` lets go."""
        idle = [
            key
            for key, host in self._by_key.items()
            if not host.queue and host.robots is None and not host.scheduled and forgettable(host)
        ]
        for key in idle:
            del self._by_key[key]
        # The window bounds the hosts with work; a sweep after each quarter more bounds the
        # idle ones beside them, for a sweep's cost (a look at each host) of 5 per new host.
        kept = len(self._by_key)
        self._sweep_at = max(SWEEP_HOSTS_AT, kept + kept // SWEEP_GROWTH)
