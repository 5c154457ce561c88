"""The frontier's lines: hosts ready now, hosts asleep until due, and jobs waiting to retry.

These are data only: which host may start a request, and when, is the politeness rules' word,
asked by the frontier. Nothing here takes a lock: the frontier's lock guards every call.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator

from urlfleet.schedule.hosts import HostQueue
from urlfleet.schedule.job import Job

LONGEST_WAIT = 1.0  # a waiting thread looks again at least this often, whatever happens


class Lines:
    """A ready line (a heap with lazy invalidation through ``ready_mark``) and two timer heaps.

    >>> lines.line_up(host); lines.pop_ready()   # the host with the most work per slot
    """

    def __init__(self) -> None:
        # Hosts that can start a request now, the most work per slot first: a hot host then
        # keeps its slots busy from the start instead of being the last to finish.
        self._ready: list[tuple[float, int, HostQueue]] = []
        self._sleeping: list[tuple[float, int, HostQueue]] = []
        self._retries: list[tuple[float, int, Job]] = []
        self._seq = itertools.count(1)  # 0 means "not in the ready line" to ready_mark

    def has_ready(self) -> bool:
        """Whether the ready line has any entry (an old one counts: popping skips it)."""
        return bool(self._ready)

    def line_up(self, host: HostQueue) -> None:
        """Put the host in the ready line, or move it up to the work it has now."""
        # The heap cannot reorder an entry in place: push a new one; the old one is skipped.
        host.ready_mark = next(self._seq)
        work = (len(host.queue) + (host.robots is not None)) / host.rules.limits.per_host
        heapq.heappush(self._ready, (-work, host.ready_mark, host))

    def pop_ready(self) -> HostQueue | None:
        """The host with the most work per slot, out of the lines; None if none is ready."""
        while self._ready:
            _, mark, host = heapq.heappop(self._ready)
            if mark != host.ready_mark:
                continue  # an older entry of a host that was lined up again
            host.scheduled, host.ready_mark = False, 0
            return host
        return None

    def sleep(self, host: HostQueue, due: float) -> None:
        """Keep the host out of the ready line until ``due``."""
        heapq.heappush(self._sleeping, (due, next(self._seq), host))

    def retry(self, job: Job, at: float) -> None:
        """Hold the job, and no thread, until ``at``."""
        heapq.heappush(self._retries, (at, next(self._seq), job))

    def woken(self, now: float) -> Iterator[HostQueue]:
        """The sleeping hosts that are due, out of the lines, one at a time."""
        while self._sleeping and self._sleeping[0][0] <= now:
            host = heapq.heappop(self._sleeping)[2]
            host.scheduled = False
            yield host

    def due_retries(self, now: float) -> Iterator[Job]:
        """The jobs whose retry time has come, one at a time."""
        while self._retries and self._retries[0][0] <= now:
            yield heapq.heappop(self._retries)[2]

    def wait_time(self, now: float) -> float:
        """How long a thread with nothing to take may wait before it looks again."""
        due = [entries[0][0] for entries in (self._sleeping, self._retries) if entries]
        return max(0.0, min([LONGEST_WAIT, *(d - now for d in due)]))
