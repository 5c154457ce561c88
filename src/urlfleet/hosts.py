"""What urlfleet knows about each host: its limits, its pace, and how it has been answering.

A host that says "slow down" (429, 503) is paused as a whole: for its Retry-After when it
sends one, else for a backoff that doubles with each throttling answer in a row and resets
after a success. A host that keeps failing (refused connections, timeouts, 5xx) is cut off
after ``max_failures`` failures in a row, so its remaining URLs fail at once instead of each
burning every retry.
"""

from __future__ import annotations

import enum
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from urlfleet.config import DEFAULT_HOST_BACKOFF, DEFAULT_MAX_FAILURES, HostLimits

if TYPE_CHECKING:
    from urlfleet.schedule import Job


@dataclass(frozen=True, kw_only=True, slots=True)
class HostRules:
    """How hosts are paused and cut off."""

    backoff: float = DEFAULT_HOST_BACKOFF  # first pause after a 429/503 without Retry-After
    max_wait: float = 60.0  # longest pause
    max_failures: int = DEFAULT_MAX_FAILURES  # failures in a row that cut a host off; 0: never


class Outcome(enum.Enum):
    """What one request told us about its host."""

    ANSWERED = "answered"  # any answer that is not trouble: the host is alive and willing
    THROTTLED = "throttled"  # 429: slow down
    OVERLOADED = "overloaded"  # 503: slow down, and a sign of failing
    FAILED = "failed"  # no answer (refused, reset, timed out) or another 5xx

    @property
    def pauses(self) -> bool:
        return self in (Outcome.THROTTLED, Outcome.OVERLOADED)

    @property
    def fails(self) -> bool:
        return self in (Outcome.FAILED, Outcome.OVERLOADED)


@dataclass(eq=False, slots=True)
class HostState:
    """One host's queue of jobs and its politeness and health state (frontier-owned)."""

    key: str
    policy: HostLimits
    queue: deque[Job] = field(default_factory=deque)
    in_flight: int = 0
    next_start: float = 0.0  # earliest hand-out of the next request (start gap)
    paused_until: float = 0.0
    scheduled: bool = False  # already in the frontier's ready line or sleeping heap
    ready_mark: int = 0  # the sequence number of its live entry in the ready line, if any
    send_after: float = 0.0  # earliest moment the next request may actually be sent
    last_send: float = float("-inf")
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    failures: int = 0  # in a row
    throttles: int = 0  # in a row
    cut_off: str | None = None  # why the host gets no more requests

    def due(self) -> float:
        """When the host may start its next request (start gap and pause)."""
        return max(self.next_start, self.paused_until)

    def has_room(self) -> bool:
        return bool(self.queue) and self.in_flight < self.policy.per_host

    def note(
        self, outcome: Outcome, now: float, rules: HostRules, *, retry_after: float | None, why: str
    ) -> float:
        """Take in one request's outcome; returns the seconds the host is now paused for."""
        if outcome is Outcome.ANSWERED:
            self.failures = self.throttles = 0
            return 0.0
        if outcome.fails:
            self.failures += 1
            if rules.max_failures and self.failures >= rules.max_failures and not self.cut_off:
                self.cut_off = f"host cut off after {self.failures} failures in a row ({why})"
        if not outcome.pauses:
            return 0.0
        self.throttles += 1
        if retry_after is None:
            retry_after = rules.backoff * 2 ** (self.throttles - 1)
        pause = min(retry_after, rules.max_wait)
        self.paused_until = max(self.paused_until, now + pause)
        return pause
