"""The frontier: per-host queues that hand a URL to a thread only when its host can take it.

A per-host semaphore taken inside each task is not enough: a thread that picks a URL of a busy
host sits waiting while URLs of idle hosts wait behind it (head-of-line blocking). So, as in
Mercator's back queues and Scrapy's download slots, URLs are read ahead (a bounded window) into
one queue per host, and ``take`` returns a lease for a URL of a host that the politeness rules
say can start a request now. Threads wait only when no host at all can start a request now.

The input is read by a feeder thread into a bounded queue, never under the frontier's lock:
a slow stdin, or a generator that waits for results it has not seen yet, stalls no thread.
URLs waiting to retry, or redirected to another host, go back into the frontier and hold no
thread while they wait. What a host may do is the politeness module's word, not this one's.

The input side is the feeder (``feeder.py``); the per-host queues and the book of them are
``hosts.py``; the ready line and the timer heaps are ``lines.py``. Those hold data and take no
lock: this class holds the lock, and it alone asks the politeness rules.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Literal

from urlfleet.politeness import Attempt, HostPoliteness, Lease, Politeness, RobotsAnswer
from urlfleet.schedule.feeder import Feeder
from urlfleet.schedule.hosts import HostQueue, Hosts
from urlfleet.schedule.job import Job
from urlfleet.schedule.lines import Lines

Then = Literal["wake", "caller_takes", "take"]  # what a release does after it settles

ADMIT_PER_TAKE = 64  # read ahead in small steps so no thread holds the lock for long


class Frontier:
    """Per-host queues fed from a bounded look-ahead window; thread-safe.

    >>> frontier.feed(jobs)   # read on a thread of its own; every take admits some
    >>> lease = frontier.take(); ...; frontier.release(lease, attempt)
    """

    def __init__(
        self,
        politeness: Politeness,
        *,
        window: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.politeness = politeness
        self._window = window
        self._clock = clock
        # Re-entrant: a signal handler (Ctrl-C: Run.stop, close) may run in a thread inside it.
        self._cond = threading.Condition()
        self._closed = False
        self._hosts = Hosts()
        self._lines = Lines()
        self._unfetchable: deque[Job] = deque()
        self._feeder = Feeder(self._cond, self._take_in, lambda: self._closed, window=window)
        self._pending = 0  # admitted, not in flight, not final
        self._in_flight = 0

    # -- feeding -------------------------------------------------------------------------

    def feed(self, jobs: Iterator[Job]) -> threading.Thread:
        """Start reading ``jobs`` in, on the feeder's thread (returned): ``take`` admits them
        as the window has room, and ends only once all of them are done."""
        return self._feeder.start(jobs)

    def input_error(self) -> BaseException | None:
        """The exception that stopped reading the input early, if any."""
        return self._feeder.input_error()

    def _take_in(self, job: Job) -> None:
        # The feeder's hand-over, under the lock: a job read joins its host's queue.
        self._pending += 1
        if job.problem is not None:
            self._unfetchable.append(job)
        else:
            self._enqueue(job, self._clock(), front=False)

    # -- handing out -----------------------------------------------------------------------

    def take(self, *, wait: bool = True) -> Lease | None:
        """A lease for the next job whose host can start a request now; waits for one.

        Returns None when the frontier is closed or every job is done (or, with
        ``wait=False``, when no job can start at this moment).
        """
        with self._cond:
            return self._take_held(wait)

    def _take_held(self, wait: bool) -> Lease | None:
        while not self._closed:
            lease = self._poll()
            if lease is not None or not wait:
                return lease
            if self._all_done():  # this take may be what found the input's end: tell all
                self._cond.notify_all()
                return None
            self._cond.wait(self._lines.wait_time(self._clock()))
        return None

    def _poll(self) -> Lease | None:
        room = self._window - self._pending - self._in_flight
        if room > 0:
            self._feeder.admit(min(room, ADMIT_PER_TAKE))
        now = self._clock()
        self._wake(now)
        lease: Lease | None = None
        while lease is None:
            if self._unfetchable:
                self._pending -= 1
                lease = Lease(self._unfetchable.popleft(), None)
                break
            host = self._pop_ready(now)
            if host is None:
                return None
            lease = self._hand_out(host, now)
        if self._lines.has_ready() or self._unfetchable:
            self._cond.notify()  # the next waiting thread takes the next one, and so on
        return lease

    def release(
        self,
        lease: Lease,
        attempt: Attempt | None = None,
        *,
        again_at: float | None = None,
        robots: RobotsAnswer | None = None,
        then: Then = "wake",
    ) -> Lease | None:
        """Give back the lease's slot with what its request saw (``attempt``; None when
        nothing was written); with ``again_at``, queue its job again for that moment.

        ``robots`` is the final answer of a robots.txt job, for the host it was fetched for.
        ``then``, what comes after, under the same hold of the lock:

        - ``"wake"``: one waiting thread is woken to look at what this release made ready;
        - ``"caller_takes"``: none is, as the caller calls ``take`` next: a thread woken
          would find the slot taken already, and wait again, once for every request;
        - ``"take"``: likewise, and the caller's next lease is returned if one can start at
          once (else None: the caller hands its Result over, then waits in ``take``). Each
          taking of the lock by a thread of a CPU-bound run is a likely wait, and a thread
          that loses the GIL while holding it stalls every other: this takes it once per
          request instead of twice.
        """
        with self._cond:
            self._settle(lease, attempt, again_at, robots)
            following = self._take_held(wait=False) if then == "take" else None
            if following is None and self._all_done():
                self._cond.notify_all()  # all done: every waiting task may end now
            elif then == "wake":
                self._cond.notify()  # one slot freed or one job back: one thread to look
            return following

    def _settle(
        self,
        lease: Lease,
        attempt: Attempt | None,
        again_at: float | None,
        robots: RobotsAnswer | None,
    ) -> None:
        # A lease's end, under the lock: its slot, its host's schedule, its job's next try.
        job = lease.job
        now = self._clock()
        rules = lease.host
        if rules is not None:
            self._in_flight -= 1
            cut_off = self.politeness.observe(lease, attempt, now)
            if cut_off is not None:
                self._cut_off(rules.key)
        if robots is not None and job.robots_for is not None:
            host = self._host(job.robots_for)
            if self.politeness.learn_robots(host.rules, robots) is not None:
                self._cut_off(host.key)
            elif not host.scheduled:
                self._schedule(host, now)
        own = self._hosts.get(rules.key) if rules is not None else None
        if own is not None and not own.scheduled:
            self._schedule(own, now)
        if again_at is not None:
            self._pending += 1
            if again_at <= now:
                self._enqueue(job, now, front=True)
            else:
                self._lines.retry(job, again_at)
        if self._hosts.crowded():
            self._hosts.sweep(lambda idle: self.politeness.forget(idle.rules, now))

    def paused_hosts(self) -> int:
        """How many hosts are paused right now (a 429 or 503 told them to wait)."""
        with self._cond:
            now = self._clock()
            return sum(self.politeness.paused(h.rules, now) for h in self._hosts)

    def host_states(self) -> list[HostPoliteness]:
        """The politeness state of every host the frontier knows now."""
        with self._cond:
            return [host.rules for host in self._hosts]

    def close(self) -> None:
        """Stop handing out jobs: every waiting and later ``take`` returns None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # -- bookkeeping under the lock ----------------------------------------------------------

    def _all_done(self) -> bool:
        return self._pending == 0 and self._in_flight == 0 and self._feeder.fed_all

    def _host(self, key: str) -> HostQueue:
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts.add(HostQueue(key, self.politeness.host(key)))
        return host

    def _enqueue(self, job: Job, now: float, *, front: bool) -> None:
        host = self._host(job.host)
        why = self.politeness.refusal(host.rules, job)
        if why is not None:
            self._give_up(job, why)
            return
        host.add(job, front=front)  # retries and redirect hops first: older than the queue
        robots = self.politeness.needs_robots(host.rules, job)
        if robots is not None:  # fetched first, through this same frontier, as a job
            self._pending += 1
            host.robots = Job(-1, robots, None, robots, host.key, robots_for=host.key)
        if not host.scheduled:
            self._schedule(host, now)
        elif host.ready_mark:  # in the ready line with less work than it has now: move it up
            self._lines.line_up(host)

    def _give_up(self, job: Job, why: str) -> None:
        job.problem = why
        self._unfetchable.append(job)

    def _cut_off(self, key: str) -> None:
        host = self._hosts.get(key)
        if host is None:
            return
        why = host.rules.health.cut_off or "host cut off"
        for job in host.drain():
            self._give_up(job, why)

    def _has_room(self, host: HostQueue) -> bool:
        job = host.next_job()
        return job is not None and self.politeness.can_start(host.rules, job)

    def _schedule(self, host: HostQueue, now: float) -> None:
        """Put a host that has work and a free slot in the ready line, or asleep until due."""
        if not self._has_room(host):
            return
        due = host.rules.due()
        if due <= now:
            self._lines.line_up(host)
        else:
            self._lines.sleep(host, due)
        host.scheduled = True

    def _wake(self, now: float) -> None:
        for host in self._lines.woken(now):
            self._schedule(host, now)
        for job in self._lines.due_retries(now):
            self._enqueue(job, now, front=True)

    def _pop_ready(self, now: float) -> HostQueue | None:
        while (host := self._lines.pop_ready()) is not None:
            if self._has_room(host) and host.rules.due() <= now:
                return host
            self._schedule(host, now)  # something changed since it was lined up
        return None

    def _hand_out(self, host: HostQueue, now: float) -> Lease | None:
        job = host.pop_next()
        why = self.politeness.refusal(host.rules, job)  # robots.txt may have said no meanwhile
        if why is not None:
            self._give_up(job, why)
            self._schedule(host, now)
            return None
        self._pending -= 1
        self._in_flight += 1
        lease = self.politeness.lease(host.rules, job, now)
        self._schedule(host, now)
        return lease
