"""The politeness authority: every per-host rule of urlfleet, in one place.

A host never sees more than its ``per_host`` requests at once, nor two request starts closer
than its gap (``--delay``, jitter, Crawl-delay, adaptive pace), nor any request during a pause
it asked for (429/503, Retry-After), nor any at all once it is cut off or its robots.txt says
no. Whatever path a request takes (a page, a redirect hop, robots.txt, through a proxy or a
caller's Session), it passes here twice:

- **a lease** before it is sent: the frontier asks ``can_start``/``due`` and takes a
  ``Lease``. At the moment of the write, after connection setup, fetch code's write gate
  asks the lease ``write_due`` (the gap since the host's last write, its pause) and tells it
  ``wrote``. A request whose host got paused meanwhile, or whose gap is still far off, is not
  written but sent back to the frontier, so no thread ever sleeps on an open connection;
- **an observation** after: fetch code reports an ``Attempt`` (what it saw, with no policy
  in it), and ``observe`` folds the lease's write in and decides what the answer means for
  the host.

The frontier calls everything here under its lock; ``Lease.write_due`` and ``Lease.wrote``
alone run in the fetching thread, under the host's own write lock, and each field of a
host's state is written under one of the two locks only. Nothing here imports fetch code
or the frontier.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import NamedTuple

from urlfleet.config import FetchConfig, HostLimits
from urlfleet.politeness.health import HostHealth, HostRules, Outcome, outcome_of
from urlfleet.politeness.identity import canonical_host, host_key, key_of
from urlfleet.politeness.pace import next_delay
from urlfleet.politeness.robots import ALLOW_ALL, ROBOTS_MAX_BYTES, Robots, robots_url, understand
from urlfleet.schedule.job import Job, JobKind

__all__ = [
    "GAP_MARGIN",
    "ROBOTS_MAX_BYTES",
    "Attempt",
    "HostMemory",
    "HostPoliteness",
    "Lease",
    "Outcome",
    "Politeness",
    "RobotsAnswer",
    "canonical_host",
    "host_key",
    "robots_url",
]

# Requests leave the client with a few milliseconds of jitter (thread scheduling, connection
# setup) and reach the server with more; a gap kept to the microsecond here could still look
# a little short to a strict rate limiter there. So every non-zero gap gets this much extra.
GAP_MARGIN = 0.005
# robots.txt verdicts kept for hosts the frontier has forgotten (the oldest go first: such a
# host that comes back has its robots.txt fetched again), and hosts whose pause is counted.
ROBOTS_KEPT = 100_000
PAUSES_KEPT = 100_000
PACES_KEPT = 100_000  # adaptive paces of forgotten hosts (--auto-throttle), likewise


class Attempt(NamedTuple):
    """What one request saw of its host. Facts only: what they mean is decided here."""

    status: int | None  # None: no response
    latency: float
    error_kind: str | None = None  # what ended it, as a record's error_kind; None: nothing
    retry_after: float | None = None  # what a 429/503 asked for, in seconds
    problem: str = ""  # the failure in words, for a cut-off's reason


class RobotsAnswer(NamedTuple):
    """The final answer to a robots.txt request (after its retries and redirects)."""

    status: int | None
    body: bytes = b""
    problem: str = ""


class HostPoliteness:
    """One host's politeness state."""

    __slots__ = ("key", "limits", "robots", "health", "in_flight", "next_start", "send_after",
                 "last_send", "last_start", "written_at", "written_gap", "written_for",
                 "send_lock", "robots_asked")  # fmt: skip

    def __init__(self, key: str, limits: HostLimits, robots: Robots | None) -> None:
        self.key = key
        self.limits = limits  # in force now: the config's, slowed by Crawl-delay and the pace
        self.robots = robots  # None: not known yet (with --robots only)
        self.health = HostHealth()
        self.in_flight = 0
        self.next_start = 0.0  # earliest hand-out of the next request (start gap)
        # Each field has one writer, so no change is lost between two locks. Under the
        # frontier's lock: the earliest next write (from the host's pace, Crawl-delay or a
        # shard's inheritance) and the latest write its leases brought back.
        self.send_after = 0.0
        self.last_send = -math.inf
        self.last_start = -math.inf  # when the latest lease was taken
        # Under ``send_lock``, by the write gate: the latest write, the gap its lease reserved
        # and the delay that gap was drawn for, for a request written before that lease is back.
        self.written_at = -math.inf
        self.written_gap = 0.0
        self.written_for = 0.0
        self.send_lock = threading.Lock()
        self.robots_asked = False  # a robots.txt request is queued or in flight

    def due(self) -> float:
        """When the host may start its next request (start gap and pause)."""
        return max(self.next_start, self.health.paused_until)


@dataclass(frozen=True, slots=True)
class HostMemory:
    """What a host's state says for its next requests elsewhere (a dask shard), with times
    as seconds from now, since clocks differ between machines."""

    paused_for: float = 0.0
    gap_for: float = 0.0  # until the next start may come
    delay: float | None = None  # the adaptive pace, when it moved
    failures: int = 0
    throttles: int = 0
    cut_off: str | None = None
    robots: Robots | None = None


class Lease:
    """Permission for one request to one host. The write gate (``urlfleet.fetching.gate``)
    asks it when the request may be written and tells it when it was."""

    __slots__ = ("job", "host", "gap", "reserved", "drawn_for", "clock", "sleep", "wrote_at")

    def __init__(
        self,
        job: Job,
        host: HostPoliteness | None,  # None for a job that fails without a request
        gap: float = 0.0,  # the start gap that must follow this request
        reserved: tuple[float, float] = (0.0, 0.0),  # the host's next start before and after it
        drawn_for: float = 0.0,  # the host's delay when ``gap`` was drawn
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.job, self.host, self.gap, self.reserved = job, host, gap, reserved
        self.drawn_for, self.clock, self.sleep = drawn_for, clock, sleep
        self.wrote_at: float | None = None  # when its request was written, once it was

    def write_lock(self) -> AbstractContextManager[object]:
        """Held around the write, so two requests to one host are written one at a time."""
        return self.host.send_lock if self.host is not None else nullcontext()

    def write_due(self, now: float) -> tuple[float, bool]:
        """When the request may be written (the gap since the host's last write, and its
        pause), and whether it may wait for that at the write: not while the host is paused
        or cut off, which is the frontier's to handle. Asked under ``write_lock``."""
        host = self.host
        if host is None:
            return now, True
        paused_until = host.health.paused_until
        gap = _gap_after(host.written_gap, host.written_for, host.limits.delay)
        due = max(host.send_after, host.written_at + gap, paused_until)
        return due, not host.health.cut_off and paused_until <= now

    def wrote(self, at: float) -> None:
        """The request was written at ``at``. Told under ``write_lock``."""
        self.wrote_at = at
        if self.host is not None:
            host = self.host
            host.written_at, host.written_gap, host.written_for = at, self.gap, self.drawn_for


class Politeness:
    """Every per-host rule, built once from a FetchConfig; ``clock`` and ``rng`` injectable."""

    def __init__(
        self,
        config: FetchConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.rules = HostRules(
            backoff=config.host_backoff,
            max_wait=config.max_wait,
            max_failures=config.host_max_failures,
        )
        self._clock, self._sleep, self._rng = clock, sleep, rng
        self._host_limits = {key_of(key): limits for key, limits in config.host_limits.items()}
        # Kept when an idle host's state is forgotten, at most ROBOTS_KEPT of them.
        self._robots: dict[str, Robots] = {}
        # What a host's next state starts from, taken when it is built: a shard's inheritance
        # (``remember``: no more than the client sent, itself bounded), and the paces of
        # forgotten hosts (``forget``: past PACES_KEPT, the oldest entries go).
        self._memories: dict[str, HostMemory] = {}
        # host -> seconds it was paused, for the report: the longest PAUSES_KEPT pauses.
        self.paused_s: dict[str, float] = {}

    # -- limits ------------------------------------------------------------------------------

    def base_limits(self, key: str) -> HostLimits:
        """A host's own limits: from ``host_limits``, else ``per_host`` and ``delay``."""
        return self._host_limits.get(key) or HostLimits(self.config.per_host, self.config.delay)

    def max_gap(self, key: str, memory: HostMemory | None = None) -> float:
        """The longest start gap this host may be given (jitter at its top), as known now
        or as ``memory`` says (the Crawl-delay of its robots.txt, its adaptive pace)."""
        robots = memory.robots if memory is not None else None
        pace = memory.delay if memory is not None and memory.delay is not None else 0.0
        return _with_margin(max(self._floor(key, robots), pace) + self.config.jitter)

    def gap(self, limits: HostLimits) -> float:
        """The start gap after one request: the delay, a random share of the jitter, a margin."""
        jitter = self._rng() * self.config.jitter if self.config.jitter else 0.0
        return _with_margin(limits.delay + jitter)

    def _floor(self, key: str, robots: Robots | None = None) -> float:
        return max(self.base_limits(key).delay, self._crawl_delay(key, robots))

    def _crawl_delay(self, key: str, robots: Robots | None = None) -> float:
        # A state's own verdict first: the kept one may have been dropped meanwhile.
        known = robots if robots is not None else self._robots.get(key)
        return known.crawl_delay if known is not None else 0.0

    def _keep_robots(self, key: str, robots: Robots) -> None:
        self._robots.pop(key, None)  # the newest go last, so the oldest go first
        self._robots[key] = robots
        while len(self._robots) > ROBOTS_KEPT:
            del self._robots[next(iter(self._robots))]

    # -- hosts -------------------------------------------------------------------------------

    def host(self, key: str) -> HostPoliteness:
        """A new state for a host (the frontier keeps it while the host has work)."""
        limits = self.base_limits(key)
        robots = self._robots.get(key) if self.config.robots else ALLOW_ALL
        state = HostPoliteness(key, HostLimits(limits.per_host, self._floor(key)), robots)
        memory = self._memories.pop(key, None)
        if memory is not None:
            self._recall(state, memory)
        return state

    def idle(self, state: HostPoliteness, now: float) -> bool:
        """True when forgetting this state loses nothing (it is rebuilt the same)."""
        return self._resting(state, now) and state.limits.delay == self._floor(
            state.key, state.robots
        )

    def forget(self, state: HostPoliteness, now: float) -> bool:
        """Whether the frontier may drop this state now: it is idle, or idle but for its
        adaptive pace, which is then kept (the ``PACES_KEPT`` latest) for its next state."""
        if not self._resting(state, now):
            return False
        if state.limits.delay != self._floor(state.key, state.robots):
            self._memories.pop(state.key, None)
            self._memories[state.key] = HostMemory(delay=state.limits.delay)
            while len(self._memories) > PACES_KEPT:
                del self._memories[next(iter(self._memories))]
        return True

    def _resting(self, state: HostPoliteness, now: float) -> bool:
        return (
            not state.in_flight
            and not state.health.cut_off
            and not state.robots_asked
            and max(state.due(), state.send_after) <= now
        )

    def can_start(self, state: HostPoliteness, job: Job) -> bool:
        """Whether ``job`` may take one of the host's slots now (gap and pause aside)."""
        if state.in_flight >= state.limits.per_host:
            return False
        return state.robots is not None or job.kind is JobKind.ROBOTS

    def needs_robots(self, state: HostPoliteness, job: Job) -> str | None:
        """The robots.txt URL to fetch before ``job``, once per host; None if not needed."""
        if state.robots is not None or state.robots_asked or job.kind is JobKind.ROBOTS:
            return None
        state.robots_asked = True
        return robots_url(job.target)

    def refusal(self, state: HostPoliteness, job: Job) -> str | None:
        """Why ``job`` gets no request to this host at all, if it does not."""
        if state.health.cut_off:
            return state.health.cut_off
        robots = state.robots
        if job.kind is not JobKind.ROBOTS and robots is not None:
            if not robots.allows(job.target, self.config.user_agent):
                return "disallowed by robots.txt"
        return None

    def lease(self, state: HostPoliteness, job: Job, now: float) -> Lease:
        """Take one of the host's slots for ``job`` and reserve its start."""
        state.in_flight += 1
        gap = self.gap(state.limits)
        before, state.next_start, state.last_start = state.next_start, now + gap, now
        reserved = (before, state.next_start)
        drawn_for = state.limits.delay
        return Lease(job, state, gap, reserved, drawn_for, clock=self._clock, sleep=self._sleep)

    def observe(self, lease: Lease, attempt: Attempt | None, now: float) -> str | None:
        """Give the lease's slot back and take in what its request saw (None: nothing was
        written). Returns the reason when this cut the host off."""
        state = lease.host
        if state is None:
            return None
        state.in_flight -= 1
        if lease.wrote_at is not None:  # the gate's record of the write, folded in here
            state.last_send = max(state.last_send, lease.wrote_at)
            gap = _gap_after(lease.gap, lease.drawn_for, state.limits.delay)
            state.send_after = max(state.send_after, lease.wrote_at + gap)
        if attempt is None:  # nothing was written: its start is free again, if still its own
            before, after = lease.reserved
            if state.next_start == after:
                state.next_start = before
            return None
        was_cut_off = state.health.cut_off
        outcome = outcome_of(attempt.status, error_kind=attempt.error_kind)
        paused_until = state.health.paused_until
        state.health.note(
            outcome, now, self.rules, retry_after=attempt.retry_after, why=attempt.problem
        )
        if state.health.paused_until > max(paused_until, now):  # newly paused, counted once
            added = state.health.paused_until - max(paused_until, now)
            self._count_pause(state.key, added)
        if self.config.auto_throttle:
            self._adapt_pace(state, attempt, outcome)
        return state.health.cut_off if not was_cut_off else None

    def _count_pause(self, key: str, seconds: float) -> None:
        paused = self.paused_s
        paused[key] = paused.get(key, 0.0) + seconds
        if len(paused) > 2 * PAUSES_KEPT:  # now and then, in bulk: the shortest go
            kept = sorted(paused.items(), key=lambda item: item[1], reverse=True)[:PAUSES_KEPT]
            self.paused_s = dict(kept)

    def _adapt_pace(self, state: HostPoliteness, attempt: Attempt, outcome: Outcome) -> None:
        delay = next_delay(
            state.limits.delay,
            latency=attempt.latency,
            status=attempt.status,
            outcome=outcome,
            per_host=state.limits.per_host,
            floor=self._floor(state.key, state.robots),
            ceiling=self.config.max_wait,
        )
        if delay != state.limits.delay:
            self._set_delay(state, delay)

    def _set_delay(self, state: HostPoliteness, delay: float) -> None:
        # The new gap counts from the host's last request, and holds for its next one, longer
        # or shorter than the one reserved then.
        state.limits = HostLimits(state.limits.per_host, delay)
        gap = self.gap(state.limits)
        state.next_start = max(state.last_start, state.last_send) + gap
        state.send_after = state.last_send + gap

    def learn_robots(self, state: HostPoliteness, answer: RobotsAnswer) -> str | None:
        """Take in a host's robots.txt; returns the reason when the host is cut off for it.

        An answer (2xx rules, 4xx none) is kept for the run; no answer after the request's
        retries means the host's URLs fail rather than be fetched unchecked.
        """
        state.robots_asked = False
        status = answer.status
        if status is None or status >= 500 or status == 429:
            if state.health.cut_off:
                return None
            why = f"robots.txt unavailable ({answer.problem or f'HTTP {status}'})"
            state.health.cut_off = why
            return why
        config = self.config
        robots = understand(status, answer.body, config.user_agent, config.max_crawl_delay)
        state.robots = robots
        self._keep_robots(state.key, robots)
        if robots.crawl_delay > state.limits.delay:
            self._set_delay(state, robots.crawl_delay)
        return None

    def paused(self, state: HostPoliteness, now: float) -> bool:
        return state.health.paused_until > now

    # -- across machines (dask shards) -----------------------------------------------------

    def memory(self, state: HostPoliteness, now: float) -> HostMemory | None:
        """What the host's next requests elsewhere must respect; None when nothing."""
        base = self._floor(state.key, state.robots)
        memory = HostMemory(
            paused_for=max(0.0, state.health.paused_until - now),
            gap_for=max(0.0, max(state.next_start, state.send_after) - now),
            delay=state.limits.delay if state.limits.delay != base else None,
            failures=state.health.failures,
            throttles=state.health.throttles,
            cut_off=state.health.cut_off,
            robots=self._robots_of(state) if self.config.robots else None,
        )
        return None if memory == HostMemory() else memory

    def _robots_of(self, state: HostPoliteness) -> Robots | None:
        return state.robots if state.robots is not None else self._robots.get(state.key)

    def remember(self, key: str, memory: HostMemory) -> None:
        """Start from ``memory`` when this host is first seen (a shard's inheritance)."""
        if memory.robots is not None:
            self._keep_robots(key, memory.robots)
        self._memories[key] = memory

    def _recall(self, state: HostPoliteness, memory: HostMemory) -> None:
        now = self._clock()
        state.health.paused_until = now + memory.paused_for if memory.paused_for else 0.0
        state.next_start = state.send_after = now + memory.gap_for if memory.gap_for else 0.0
        state.health.failures, state.health.throttles = memory.failures, memory.throttles
        state.health.cut_off = memory.cut_off
        if memory.delay is not None:
            state.limits = HostLimits(state.limits.per_host, memory.delay)


def _gap_after(drawn: float, drawn_for: float, delay: float) -> float:
    """The gap that follows a write: the one drawn for it (jitter and all), unless the host's
    delay changed since (Crawl-delay, the pace), which then holds, longer or shorter."""
    return drawn if drawn_for == delay else _with_margin(delay)


def _with_margin(gap: float) -> float:
    return gap + GAP_MARGIN if gap > 0 else 0.0
