"""The frontier: per-host queues that hand a URL to a thread only when its host can take it.

A per-host semaphore taken inside each task is not enough: a thread that picks a URL of a busy
host sits waiting while URLs of idle hosts wait behind it (head-of-line blocking). So, as in
Mercator's back queues and Scrapy's download slots, URLs are read ahead (a bounded window) into
one queue per host, and ``take`` returns a URL from a host that is under its in-flight limit and
past its start gap. Threads wait only when no host at all can start a request now.

Per host: at most ``per_host`` requests in flight, and at least ``delay`` (+ jitter) seconds
between the starts of two requests. URLs waiting to retry, or redirected to another host, go
back into the frontier and hold no thread while they wait.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tenacity import RetryCallState

from urlfleet.config import HostLimits
from urlfleet.hosts import HostRules, HostState, Outcome

ADMIT_PER_TAKE = 64  # read ahead in small steps so no thread holds the lock for long
LONGEST_WAIT = 1.0  # a waiting thread looks again at least this often, whatever happens
SWEEP_HOSTS_AT = 10_000  # forget idle hosts once this many are known
# Requests leave the client with a few milliseconds of jitter (thread scheduling, connection
# setup) and reach the server with more; a gap kept to the microsecond here could still look
# a little short to a strict rate limiter there. So every non-zero gap gets this much extra.
GAP_MARGIN = 0.005


def host_key(url: str) -> str:
    """The politeness key of a URL: lower-cased host name, plus the port when not the default.

    >>> host_key("https://Example.COM:443/a"), host_key("http://127.0.0.1:8001/")
    ('example.com', '127.0.0.1:8001')
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets, so the port stays readable
        host = f"[{host}]"
    port = parts.port
    default = 443 if parts.scheme.lower() == "https" else 80
    return host if port is None or port == default else f"{host}:{port}"


@dataclass(eq=False, slots=True)
class Job:
    """One input URL on its way through the frontier: retries and redirects included."""

    index: int
    url: str
    meta: Any
    target: str  # where the next request goes: the URL itself, or a redirect's Location
    host: str  # host_key(target)
    attempts: RetryCallState | None = None
    request: Any = None  # the next hop's prepared request, once a redirect has been followed
    hops: int = 0
    first_start: float | None = None
    requests: int = 0
    busy_s: float = 0.0
    problem: str | None = None  # set when the URL cannot be fetched at all
    slot: HostState | None = None  # the host whose slot this job holds while in flight
    gap: float = 0.0  # the start gap that must follow this job's request to its host
    throttled: int = 0  # 429 and 503 answers so far


class Frontier:
    """Per-host queues fed from a bounded look-ahead window; thread-safe.

    >>> for _ in frontier.tokens(jobs): ...   # one token per job, for joblib to dispatch
    >>> job = frontier.take(); ...; frontier.release(job)
    """

    def __init__(
        self,
        *,
        policy: Callable[[str], HostLimits],
        rules: HostRules | None = None,
        jitter: float = 0.0,
        window: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._policy = policy
        self._rules = rules or HostRules()
        self._jitter = jitter
        self._window = window
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._cond = threading.Condition()
        self._hosts: dict[str, HostState] = {}
        # Hosts that can start a request now, the most work per slot first: a hot host then
        # keeps its slots busy from the start instead of being the last to finish.
        self._ready: list[tuple[float, int, HostState]] = []
        self._sleeping: list[tuple[float, int, HostState]] = []
        self._retries: list[tuple[float, int, Job]] = []
        self._unfetchable: deque[Job] = deque()
        self._seq = itertools.count(1)  # 0 means "not in the ready line" to ready_mark
        self._input: Iterator[Job] = iter(())
        self._input_error: BaseException | None = None
        self._pending = 0  # admitted, not in flight, not final
        self._in_flight = 0
        self._admitted = 0
        self._tokens = 0
        self._closed = False
        self._sweep_at = SWEEP_HOSTS_AT
        self.paused_s: dict[str, float] = {}  # host -> seconds it was paused, for the report

    # -- feeding -------------------------------------------------------------------------

    def tokens(self, jobs: Iterator[Job]) -> Iterator[None]:
        """Yield once per job in ``jobs``: each token is one task that will finish one job.

        A task takes whatever job is ready next, not a particular one, so tokens never wait
        on a host. The jobs are read lazily, as tasks and the look-ahead window need them.
        """
        with self._cond:
            self._input, self._admitted, self._tokens = jobs, 0, 0
        while True:
            with self._cond:
                if self._tokens >= self._admitted:
                    if self._closed or not self._admit(1):
                        return
                    self._cond.notify()  # a job came in: a waiting thread may take it
                elif self._closed:
                    return
                self._tokens += 1
            yield None

    def input_error(self) -> BaseException | None:
        """The exception that stopped reading the input early, if any."""
        return self._input_error

    def _admit(self, most: int) -> int:
        admitted = 0
        while admitted < most:
            try:
                job = next(self._input)
            except StopIteration:
                break
            except Exception as exc:  # a list file that fails mid-read ends the input, not the run
                self._input_error, self._input = exc, iter(())
                break
            admitted += 1
            self._pending += 1
            if job.problem is not None:
                self._unfetchable.append(job)
            else:
                self._enqueue(job, self._clock(), front=False)
        self._admitted += admitted
        return admitted

    # -- handing out -----------------------------------------------------------------------

    def take(self, *, wait: bool = True) -> Job | None:
        """The next job whose host can start a request now; waits until there is one.

        Returns None when the frontier is closed or every job is done (or, with
        ``wait=False``, when no job can start at this moment).
        """
        with self._cond:
            while not self._closed:
                job = self._poll()
                if job is not None or not wait:
                    return job
                if self._pending == 0 and self._in_flight == 0:
                    return None
                self._cond.wait(self._wait_time(self._clock()))
            return None

    def _poll(self) -> Job | None:
        room = self._window - self._pending - self._in_flight
        if room > 0:
            self._admit(min(room, ADMIT_PER_TAKE))
        now = self._clock()
        self._wake(now)
        if self._unfetchable:
            self._pending -= 1
            job = self._unfetchable.popleft()
        else:
            host = self._pop_ready(now)
            if host is None:
                return None
            job = self._hand_out(host, now)
        if self._ready or self._unfetchable:
            self._cond.notify()  # the next waiting thread takes the next one, and so on
        return job

    def release(
        self,
        job: Job,
        *,
        again_at: float | None = None,
        outcome: Outcome | None = None,
        retry_after: float | None = None,
        why: str = "",
    ) -> None:
        """Give back the job's slot; with ``again_at``, queue the job again for that moment.

        ``outcome`` tells the host's health: throttling answers pause the whole host
        (``retry_after`` seconds when the server said, else a growing backoff), and a host
        that keeps failing is cut off, its remaining jobs failed with the reason.
        """
        with self._cond:
            now = self._clock()
            host = job.slot
            if host is not None:
                job.slot = None
                host.in_flight -= 1
                self._in_flight -= 1
                if outcome is not None:
                    self._note(host, outcome, now, retry_after, why)
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
            self._cond.notify()  # one slot freed or one job back: one thread to look

    def _note(
        self, host: HostState, outcome: Outcome, now: float, retry_after: float | None, why: str
    ) -> None:
        was_cut_off = host.cut_off
        paused_until = host.paused_until
        host.note(outcome, now, self._rules, retry_after=retry_after, why=why)
        if host.paused_until > max(paused_until, now):  # time newly paused, overlaps once
            added = host.paused_until - max(paused_until, now)
            self.paused_s[host.key] = self.paused_s.get(host.key, 0.0) + added
        if host.cut_off and not was_cut_off:
            while host.queue:
                self._give_up(host.queue.popleft(), host.cut_off)

    def _give_up(self, job: Job, why: str) -> None:
        job.problem = why
        self._unfetchable.append(job)

    def set_policy(self, job: Job, policy: HostLimits) -> None:
        """Change the limits of the job's host (robots.txt, adaptive pace) from now on.

        The new gap counts from the host's last request, and applies to the job's own next one.
        """
        with self._cond:
            host = self._hosts.get(job.host)
            if host is None:
                return
            host.policy = policy
            job.gap = gap = self._gap(policy.delay)
            host.next_start = max(host.next_start, host.last_send + gap)
            host.send_after = max(host.send_after, host.last_send + gap)
            for job in host.queue:
                job.gap = gap
            if not host.scheduled:
                self._schedule(host, self._clock())
            self._cond.notify()

    def cut_off(self, key: str, why: str) -> None:
        """No more requests to this host: its queued and later jobs fail with ``why``."""
        with self._cond:
            host = self._hosts.get(key)
            if host is not None and not host.cut_off:
                host.cut_off = why
                while host.queue:
                    self._give_up(host.queue.popleft(), why)
                self._cond.notify()

    @contextmanager
    def sending(self, job: Job) -> Iterator[None]:
        """Around writing a request: held until the host's gap has passed since the last one.

        The frontier spaces hand-outs by the gap, but a thread can be delayed between taking
        a job and sending it (the GIL, connection setup), so two requests could reach the
        server closer than the gap. So the gap is kept between actual writes: one write to a
        host at a time, each starting at least a gap after the previous one ended. The wait
        is usually zero or a few milliseconds.
        """
        host = job.slot
        if host is None:
            yield
            return
        with host.send_lock:
            wait = host.send_after - self._clock()
            if wait > 0:
                self._sleep(wait)
            try:
                yield
            finally:
                host.last_send = self._clock()
                host.send_after = host.last_send + job.gap

    def before_send(self, job: Job) -> None:
        """Hold until the host's gap has passed, for a request about to be sent."""
        with self.sending(job):
            pass

    def paused_hosts(self) -> int:
        """How many hosts are paused right now (a 429 or 503 told them to wait)."""
        with self._cond:
            now = self._clock()
            return sum(1 for host in self._hosts.values() if host.paused_until > now)

    def close(self) -> None:
        """Stop handing out jobs: every waiting and later ``take`` returns None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # -- bookkeeping under the lock ----------------------------------------------------------

    def _enqueue(self, job: Job, now: float, *, front: bool) -> None:
        host = self._hosts.get(job.host)
        if host is None:
            host = self._hosts[job.host] = HostState(job.host, self._policy(job.host))
        if host.cut_off:
            self._give_up(job, host.cut_off)
            return
        if front:  # retries and redirect hops go first: they are older than the queue
            host.queue.appendleft(job)
        else:
            host.queue.append(job)
        if not host.scheduled:
            self._schedule(host, now)
        elif host.ready_mark:  # in the ready line with less work than it has now: move it up
            self._line_up(host)

    def _line_up(self, host: HostState) -> None:
        # The heap cannot reorder an entry in place: push a new one; the old one is skipped.
        host.ready_mark = next(self._seq)
        work = len(host.queue) / host.policy.per_host
        heapq.heappush(self._ready, (-work, host.ready_mark, host))

    def _schedule(self, host: HostState, now: float) -> None:
        """Put a host that has work and a free slot in the ready line, or asleep until due."""
        if not host.has_room():
            return
        due = host.due()
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

    def _pop_ready(self, now: float) -> HostState | None:
        while self._ready:
            _, mark, host = heapq.heappop(self._ready)
            if mark != host.ready_mark:
                continue  # an older entry of a host that was lined up again
            host.scheduled, host.ready_mark = False, 0
            if host.has_room() and host.due() <= now:
                return host
            self._schedule(host, now)  # something changed since it was lined up
        return None

    def _hand_out(self, host: HostState, now: float) -> Job:
        job = host.queue.popleft()
        self._pending -= 1
        self._in_flight += 1
        host.in_flight += 1
        # Reserve this start under the lock; the next start may not come sooner than the gap.
        job.gap = self._gap(host.policy.delay)
        host.next_start = now + job.gap
        job.slot = host
        self._schedule(host, now)
        return job

    def _gap(self, delay: float) -> float:
        gap = delay + (self._rng() * self._jitter if self._jitter else 0.0)
        return gap + GAP_MARGIN if gap > 0 else 0.0

    def _wait_time(self, now: float) -> float:
        due = [entries[0][0] for entries in (self._sleeping, self._retries) if entries]
        return max(0.0, min([LONGEST_WAIT, *(d - now for d in due)]))

    def _sweep(self, now: float) -> None:
        idle = [
            key
            for key, host in self._hosts.items()
            if not host.queue
            and not host.in_flight
            and not host.scheduled
            and not host.cut_off
            and max(host.due(), host.send_after) <= now
        ]
        for key in idle:
            del self._hosts[key]
        self._sweep_at = max(SWEEP_HOSTS_AT, 2 * len(self._hosts))
