"""How a host has been answering: what one answer means, and when a host is paused or cut off.

A host that says "slow down" (429, 503) is paused as a whole: for its Retry-After when it
sends one, else for a backoff that doubles with each throttling answer in a row and resets
after a success. A host that keeps failing (refused connections, timeouts, 5xx) is cut off
after ``max_failures`` failures in a row, so its remaining URLs fail at once instead of each
burning every retry.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from urlfleet.config import DEFAULT_HOST_BACKOFF, DEFAULT_MAX_FAILURES, THROTTLE_STATUSES


class HostRules(NamedTuple):
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


# A failed attempt's ``error_kind`` that speaks against its host, towards its cut-off: it
# gave no valid answer (its name gone, refused, reset, a broken handshake, garbage), or was
# too slow, or cut its body short. The rest are answers, or our own doing: a body refused
# (--accept-type) or too long (--max-bytes), a bad redirect, the user's retry_if.
NO_ANSWER = frozenset({"dns", "connect", "tls", "timeout", "deadline", "http"})
BROKEN_ANSWER = frozenset({"connect", "timeout", "deadline", "body"})  # after the status line


def outcome_of(status: int | None, *, error_kind: str | None = None) -> Outcome:
    """What an attempt says of its host: willing, throttling, or failing; from the facts it
    carries, its final status (None: no answer) and the kind of error that ended it."""
    if status in THROTTLE_STATUSES:  # a 5xx among them also says the host is struggling
        return Outcome.OVERLOADED if status >= 500 else Outcome.THROTTLED
    if status is not None and status >= 500:
        return Outcome.FAILED
    failing = NO_ANSWER if status is None else BROKEN_ANSWER
    return Outcome.FAILED if error_kind in failing else Outcome.ANSWERED


class HostHealth:
    """One host's answers in a row, its pause, and whether it is cut off."""

    __slots__ = ("paused_until", "failures", "throttles", "cut_off")

    def __init__(self) -> None:
        self.paused_until = 0.0
        self.failures = 0  # in a row
        self.throttles = 0  # in a row
        self.cut_off: str | None = None  # why the host gets no more requests

    def note(self, outcome: Outcome, now: float, rules: HostRules, *,
             retry_after: float | None, why: str) -> float:  # fmt: skip
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
