"""The adaptive pace (``--auto-throttle``): each host's delay follows how it is answering.

Like Scrapy's AutoThrottle, the target delay is the host's latency divided by the requests
it may have in flight (``per_host``): at that pace the host sees about ``per_host`` requests
at a time, however fast or slow it is. Each answer moves the delay halfway to the target.
Unlike AutoThrottle, a 429 or 503 at least doubles the delay at once. Only a 2xx answer may
lower it (an error page is fast and says nothing of the host's load), and it never goes below
the host's own ``--delay`` (or Crawl-delay), nor above ``--max-wait``.
"""

from __future__ import annotations

from urlfleet.politeness.health import Outcome

THROTTLED_AT_LEAST = 0.25  # seconds: where doubling starts from a delay of zero


def next_delay(
    current: float,
    *,
    latency: float,
    status: int | None,
    outcome: Outcome,
    per_host: int,
    floor: float,
    ceiling: float,
) -> float:
    """The host's delay after one more answer."""
    if outcome.pauses:
        wanted = max(2 * current, latency, THROTTLED_AT_LEAST)
    elif outcome is Outcome.ANSWERED and status is not None and 200 <= status < 300:
        wanted = (current + latency / per_host) / 2
    elif outcome is Outcome.ANSWERED:
        wanted = max(current, (current + latency / per_host) / 2)
    else:
        return current
    return min(max(wanted, floor), ceiling)
