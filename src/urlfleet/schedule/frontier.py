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
"""

from __future__ import annotations

import heapq
import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from urlfleet.politeness import Attempt, HostPoliteness, Lease, Politeness, RobotsAnswer
from urlfleet.schedule.job import Job

ADMIT_PER_TAKE = 64  # read ahead in small steps so no thread holds the lock for long
LONGEST_WAIT = 1.0  # a waiting thread looks again at least this often, whatever happens
SWEEP_HOSTS_AT = 1_000  # forget idle hosts once this many are known...
SWEEP_GROWTH = 4  # ...and again once a quarter more than the last sweep kept have come
FEED_AHEAD = 256  # URLs the feeder may read past what the frontier has taken in (at most)
_END = object()  # the feeder's last word


@dataclass(eq=False, slots=True)
class HostQueue:
    """One host's waiting jobs and its place in the frontier's lines."""

    key: str
    rules: HostPoliteness
    queue: deque[Job] = field(default_factory=deque)
    robots: Job | None = None  # its robots.txt job, which goes before anything in the queue
    scheduled: bool = False  # already in the ready line or the sleeping heap
    ready_mark: int = 0  # the sequence number of its live entry in the ready line, if any


class Frontier:
    """Per-host queues fed from a bounded look-ahead window; thread-safe.

    >>> for _ in frontier.tokens(jobs): ...   # one token per job, for joblib to dispatch
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
        self._cond = threading.Condition()
        self._hosts: dict[str, HostQueue] = {}
        # Hosts that can start a request now, the most work per slot first: a hot host then
        # keeps its slots busy from the start instead of being the last to finish.
        self._ready: list[tuple[float, int, HostQueue]] = []
        self._sleeping: list[tuple[float, int, HostQueue]] = []
        self._retries: list[tuple[float, int, Job]] = []
        self._unfetchable: deque[Job] = deque()
        self._seq = itertools.count(1)  # 0 means "not in the ready line" to ready_mark
        self._feed: queue.Queue[object] = queue.Queue(FEED_AHEAD)
        self._fed_all = True  # no feeder running, or it has said its last word
        self._input_error: BaseException | None = None
        self._pending = 0  # admitted, not in flight, not final
        self._in_flight = 0
        self._admitted = 0
        self._tokens = 0
        self._closed = False
        self._sweep_at = SWEEP_HOSTS_AT

    # -- feeding -------------------------------------------------------------------------

    def tokens(self, jobs: Iterator[Job]) -> Iterator[None]:
        """Yield tokens for joblib to dispatch: each is one task that takes jobs until it
        finishes one (or finds the frontier done). Never blocks on the input.

        joblib asks for the next token from the thread that reports a finished task, under
        its own lock; a token that waited there for input would hold back every result. So
        while the input is slow, spare tokens go out: their tasks wait in ``take``, where a
        new job wakes them. joblib asks once per finished task, which bounds the spares.
        """
        with self._cond:
            self._admitted = self._tokens = 0
            self._feed, self._fed_all = queue.Queue(min(FEED_AHEAD, self._window)), False
        feeder = threading.Thread(
            target=self._read, args=(jobs, self._feed), name="urlfleet-feeder", daemon=True
        )
        feeder.start()
        while True:
            with self._cond:
                if self._closed:
                    return
                if self._tokens >= self._admitted:
                    self._admit(1)
                    if self._tokens >= self._admitted and self._fed_all:
                        return
                self._tokens += 1
            yield None

    def _read(self, jobs: Iterator[Job], feed: queue.Queue[object]) -> None:
        try:
            for job in jobs:
                if not self._put(feed, job):
                    return
                with self._cond:
                    self._cond.notify()  # a job came in: a waiting thread may take it
        except Exception as exc:  # a list file that fails mid-read ends the input, not the run
            self._input_error = exc
        self._put(feed, _END)
        with self._cond:
            self._cond.notify_all()

    def _put(self, feed: queue.Queue[object], item: object) -> bool:
        # A full feed waits for the frontier to take some in, but never past a close.
        while not self._closed:
            try:
                feed.put(item, timeout=LONGEST_WAIT)
                return True
            except queue.Full:
                continue
        return False

    def input_error(self) -> BaseException | None:
        """The exception that stopped reading the input early, if any."""
        return self._input_error

    def _admit(self, most: int) -> int:
        admitted = 0
        while admitted < most and not self._fed_all:
            try:
                item = self._feed.get_nowait()
            except queue.Empty:
                break
            if item is _END:
                self._fed_all = True
                break
            assert isinstance(item, Job)
            admitted += 1
            self._pending += 1
            if item.problem is not None:
                self._unfetchable.append(item)
            else:
                self._enqueue(item, self._clock(), front=False)
        self._admitted += admitted
        return admitted

    # -- handing out -----------------------------------------------------------------------

    def take(self, *, wait: bool = True) -> Lease | None:
        """A lease for the next job whose host can start a request now; waits for one.

        Returns None when the frontier is closed or every job is done (or, with
        ``wait=False``, when no job can start at this moment).
        """
        with self._cond:
            while not self._closed:
                lease = self._poll()
                if lease is not None or not wait:
                    return lease
                if self._pending == 0 and self._in_flight == 0 and self._fed_all:
                    return None
                self._cond.wait(self._wait_time(self._clock()))
            return None

    def _poll(self) -> Lease | None:
        room = self._window - self._pending - self._in_flight
        if room > 0:
            self._admit(min(room, ADMIT_PER_TAKE))
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
        if self._ready or self._unfetchable:
            self._cond.notify()  # the next waiting thread takes the next one, and so on
        return lease

    def release(
        self,
        lease: Lease,
        attempt: Attempt | None = None,
        *,
        again_at: float | None = None,
        robots: RobotsAnswer | None = None,
    ) -> None:
        """Give back the lease's slot with what its request saw (``attempt``; None when
        nothing was written); with ``again_at``, queue its job again for that moment.

        ``robots`` is the final answer of a robots.txt job, for the host it was fetched for.
        """
        job = lease.job
        with self._cond:
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
            if rules is not None and rules.key in self._hosts:
                host = self._hosts[rules.key]
                if not host.scheduled:
                    self._schedule(host, now)
            if again_at is not None:
                self._pending += 1
                if again_at <= now:
                    self._enqueue(job, now, front=True)
                else:
                    heapq.heappush(self._retries, (again_at, next(self._seq), job))
            if len(self._hosts) > self._sweep_at:
                self._sweep(now)
            if self._pending == 0 and self._in_flight == 0 and self._fed_all:
                self._cond.notify_all()  # all done: every waiting task may end now
            else:
                self._cond.notify()  # one slot freed or one job back: one thread to look

    def paused_hosts(self) -> int:
        """How many hosts are paused right now (a 429 or 503 told them to wait)."""
        with self._cond:
            now = self._clock()
            return sum(self.politeness.paused(h.rules, now) for h in self._hosts.values())

    def host_states(self) -> list[HostPoliteness]:
        """The politeness state of every host the frontier knows now."""
        with self._cond:
            return [host.rules for host in self._hosts.values()]

    def close(self) -> None:
        """Stop handing out jobs: every waiting and later ``take`` returns None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # -- bookkeeping under the lock ----------------------------------------------------------

    def _host(self, key: str) -> HostQueue:
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = HostQueue(key, self.politeness.host(key))
        return host

    def _enqueue(self, job: Job, now: float, *, front: bool) -> None:
        host = self._host(job.host)
        why = self.politeness.refusal(host.rules, job)
        if why is not None:
            self._give_up(job, why)
            return
        if front:  # retries and redirect hops go first: they are older than the queue
            host.queue.appendleft(job)
        else:
            host.queue.append(job)
        robots = self.politeness.needs_robots(host.rules, job)
        if robots is not None:  # fetched first, through this same frontier, as a job
            self._pending += 1
            host.robots = Job(-1, robots, None, robots, host.key, robots_for=host.key)
        if not host.scheduled:
            self._schedule(host, now)
        elif host.ready_mark:  # in the ready line with less work than it has now: move it up
            self._line_up(host)

    def _give_up(self, job: Job, why: str) -> None:
        job.problem = why
        self._unfetchable.append(job)

    def _cut_off(self, key: str) -> None:
        host = self._hosts.get(key)
        if host is None:
            return
        why = host.rules.health.cut_off or "host cut off"
        if host.robots is not None:
            self._give_up(host.robots, why)
            host.robots = None
        while host.queue:
            self._give_up(host.queue.popleft(), why)

    def _has_room(self, host: HostQueue) -> bool:
        job = self._next_of(host)
        return job is not None and self.politeness.can_start(host.rules, job)

    @staticmethod
    def _next_of(host: HostQueue) -> Job | None:
        return host.robots or (host.queue[0] if host.queue else None)

    def _line_up(self, host: HostQueue) -> None:
        # The heap cannot reorder an entry in place: push a new one; the old one is skipped.
        host.ready_mark = next(self._seq)
        work = (len(host.queue) + (host.robots is not None)) / host.rules.limits.per_host
        heapq.heappush(self._ready, (-work, host.ready_mark, host))

    def _schedule(self, host: HostQueue, now: float) -> None:
        """Put a host that has work and a free slot in the ready line, or asleep until due."""
        if not self._has_room(host):
            return
        due = host.rules.due()
        if due <= now:
            self._line_up(host)
        else:
            heapq.heappush(self._sleeping, (due, next(self._seq), host))
        host.scheduled = True

    def _wake(self, now: float) -> None:
        while self._sleeping and self._sleeping[0][0] <= now:
            host = heapq.heappop(self._sleeping)[2]
            host.scheduled = False
            self._schedule(host, now)
        while self._retries and self._retries[0][0] <= now:
            self._enqueue(heapq.heappop(self._retries)[2], now, front=True)

    def _pop_ready(self, now: float) -> HostQueue | None:
        while self._ready:
            _, mark, host = heapq.heappop(self._ready)
            if mark != host.ready_mark:
                continue  # an older entry of a host that was lined up again
            host.scheduled, host.ready_mark = False, 0
            if self._has_room(host) and host.rules.due() <= now:
                return host
            self._schedule(host, now)  # something changed since it was lined up
        return None

    def _hand_out(self, host: HostQueue, now: float) -> Lease | None:
        if host.robots is not None:
            job, host.robots = host.robots, None
        else:
            job = host.queue.popleft()
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

    def _wait_time(self, now: float) -> float:
        due = [entries[0][0] for entries in (self._sleeping, self._retries) if entries]
        return max(0.0, min([LONGEST_WAIT, *(d - now for d in due)]))

    def _sweep(self, now: float) -> None:
        idle = [
            key
            for key, host in self._hosts.items()
            if not host.queue
            and host.robots is None
            and not host.scheduled
            and self.politeness.forget(host.rules, now)
        ]
        for key in idle:
            del self._hosts[key]
        # The window bounds the hosts with work; a sweep after each quarter more bounds the
        # idle ones beside them, for a sweep's cost (a look at each host) of 5 per new host.
        kept = len(self._hosts)
        self._sweep_at = max(SWEEP_HOSTS_AT, kept + kept // SWEEP_GROWTH)
