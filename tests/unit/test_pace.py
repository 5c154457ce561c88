from __future__ import annotations

import pytest

from urlfleet.politeness.health import Outcome
from urlfleet.politeness.pace import THROTTLED_AT_LEAST, next_delay


def step(current: float, outcome: Outcome, status: int | None = 200, **kw: float) -> float:
    settings: dict[str, float] = {"latency": 0.2, "per_host": 2, "floor": 0.0, "ceiling": 10.0}
    settings.update(kw)
    return next_delay(current, status=status, outcome=outcome, **settings)  # type: ignore[arg-type]


def test_a_2xx_moves_halfway_to_latency_over_per_host() -> None:
    assert step(1.0, Outcome.ANSWERED) == pytest.approx((1.0 + 0.1) / 2)


def test_throttling_at_least_doubles() -> None:
    assert step(0.0, Outcome.THROTTLED, 429) == THROTTLED_AT_LEAST
    assert step(1.0, Outcome.OVERLOADED, 503) == 2.0
    assert step(8.0, Outcome.THROTTLED, 429) == 10.0  # capped by the ceiling


def test_error_pages_never_lower_the_delay() -> None:
    assert step(1.0, Outcome.ANSWERED, 404) == 1.0
    assert step(0.0, Outcome.ANSWERED, 404) == pytest.approx(0.05)


def test_never_below_the_floor_and_failures_change_nothing() -> None:
    assert step(0.5, Outcome.ANSWERED, floor=0.4) == 0.4
    assert step(0.7, Outcome.FAILED, None) == 0.7
