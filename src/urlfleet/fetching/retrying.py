"""When to try a URL again, and how long to wait first: tenacity's pieces, composed once.

urlfleet does not sleep between attempts inside a worker thread: a URL waiting to be retried
must not hold a thread that another host could use. So the policy is asked one question after
each attempt (``next_wait``) and the scheduler re-queues the URL for that moment. Tenacity makes
every decision (stop, retry, wait); only the sleeping is replaced.
"""

from __future__ import annotations

import email.utils
import time

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.wait import wait_base

from urlfleet.config import FetchConfig
from urlfleet.errors import DeadlineExceeded, RetryableStatus, RetryRequested
from urlfleet.fetching.failures import is_permanent

# Failures of the connection, not of the request: refused, reset, dropped mid-body, timed out.
# ConnectTimeout is both a ConnectionError and a Timeout; either way it is retried.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    DeadlineExceeded,  # a tarpit, or a link too slow this time: like curl --retry, try again
    RetryableStatus,
    RetryRequested,
)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None.

    >>> parse_retry_after("120")
    120.0
    """
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²" and "١٢" are digits to str.isdigit
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
        stamp = when.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive one is read as such
        return None
    return max(0.0, stamp - (time.time() if now is None else now))


class wait_retry_after(wait_base):  # noqa: N801 - tenacity's waits are lower-case by design
    """Wait what the server asked for (Retry-After), else the fallback; never more than ``cap``."""

    def __init__(self, fallback: wait_base, cap: float) -> None:
        self.fallback = fallback
        self.cap = cap

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None and outcome.failed else None
        asked = error.retry_after if isinstance(error, RetryableStatus) else None
        return min(self.cap, asked if asked is not None else self.fallback(retry_state))


def build_retrying(config: FetchConfig) -> Retrying:
    """The retry policy of a run, shared by every thread (tenacity keeps per-call state apart)."""
    return Retrying(
        stop=stop_after_attempt(config.retries + 1),  # --retries counts attempts after the first
        # Full jitter (AWS's "exponential backoff and jitter"): uniform(0, backoff * 2**n), capped.
        wait=wait_retry_after(
            wait_random_exponential(multiplier=config.backoff, max=config.max_wait),
            cap=config.max_wait,
        ),
        retry=retry_if_exception(may_heal),
        reraise=True,
    )


def may_heal(error: BaseException | None) -> bool:
    """Whether a failure may pass, so is worth a retry. A bad certificate or an unknown name
    fails every time (see failures.is_permanent). What a failure says of its host (towards
    its cut-off) is the politeness rules' to decide, from the attempt's error_kind."""
    return isinstance(error, TRANSIENT_ERRORS) and not is_permanent(error)


def new_attempts(retrying: Retrying) -> RetryCallState:
    """Fresh per-URL retry state; the first attempt is always allowed."""
    return RetryCallState(retrying, fn=None, args=(), kwargs={})


def next_wait(
    retrying: Retrying, state: RetryCallState, error: BaseException | None
) -> float | None:
    """After an attempt that raised ``error`` (None: it succeeded), seconds until the next one.

    None means the outcome is final: a success, an error that is not worth retrying, or the
    last allowed attempt. ``state`` then holds the final attempt number.
    """
    if error is None:
        return None
    state.set_exception((type(error), error, error.__traceback__))
    if "idle_for" not in retrying.statistics:  # tenacity's per-thread stats start in begin()
        retrying.begin()
    try:
        action = retrying.iter(state)
    except BaseException as final:  # reraise=True hands back the last error when it is final
        if final is not error:
            raise
        return None
    if isinstance(action, float):  # tenacity's DoSleep
        state.prepare_for_next_attempt()
        return float(action)
    return None
