from __future__ import annotations

import email.utils
import time

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from urlfleet.config import RETRY_STATUSES, FetchConfig
from urlfleet.errors import RetryableStatus, SaveError
from urlfleet.fetching.retrying import (
    build_retrying,
    new_attempts,
    next_wait,
    parse_retry_after,
)


def test_retry_statuses_are_the_contracts() -> None:
    assert RETRY_STATUSES == {408, 425, 429, 500, 502, 503, 504}


@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120.0), ("0", 0.0), ("", None), (None, None), ("soon", None), ("-5", None)],
)
def test_parse_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    now = time.time()
    header = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(header, now=now) == pytest.approx(30, abs=1)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0


def waits(config: FetchConfig, errors: list[BaseException]) -> list[float | None]:
    retrying = build_retrying(config)
    state = new_attempts(retrying)
    return [next_wait(retrying, state, error) for error in errors]


def test_retries_count_after_the_first_attempt() -> None:
    errors: list[BaseException] = [requests.ConnectionError("x")] * 4
    result = waits(FetchConfig(retries=2, backoff=0.1), errors[:3])
    assert [w is not None for w in result] == [True, True, False]


def test_backoff_is_full_jitter_and_capped() -> None:
    config = FetchConfig(retries=20, backoff=1.0, max_wait=4.0)
    result = waits(config, [requests.Timeout("t")] * 20)
    assert all(w is not None and 0 <= w <= 4.0 for w in result)


def test_retry_after_sets_the_wait_capped_by_max_wait() -> None:
    config = FetchConfig(retries=3, max_wait=10)
    assert waits(config, [RetryableStatus(429, 7.0)]) == [7.0]
    assert waits(config, [RetryableStatus(503, 600.0)]) == [10.0]


@pytest.mark.parametrize(
    "error", [SaveError("x"), requests.exceptions.InvalidURL("x"), ValueError("x")]
)
def test_final_errors_are_not_retried(error: BaseException) -> None:
    assert waits(FetchConfig(retries=5), [error]) == [None]


def test_success_is_final() -> None:
    assert waits(FetchConfig(), [None]) == [None]  # type: ignore[list-item]


def test_attempt_number_tracks_attempts() -> None:
    retrying = build_retrying(FetchConfig(retries=3, backoff=0))
    state = new_attempts(retrying)
    for _ in range(3):
        next_wait(retrying, state, requests.ConnectionError("x"))
    assert state.attempt_number == 4
    assert next_wait(retrying, state, requests.ConnectionError("x")) is None
    assert state.attempt_number == 4


@given(st.one_of(st.text(max_size=60), st.from_regex(r"\s*\d{1,400}\s*", fullmatch=True),
                 st.builds(lambda d: email.utils.formatdate(d, usegmt=True),
                           st.floats(min_value=-6e10, max_value=2.5e11))))  # fmt: skip
@settings(max_examples=300, deadline=None)
def test_any_retry_after_value_is_a_wait_or_none(value: str) -> None:
    # A header is the server's to write: nothing in it may raise.
    wait = parse_retry_after(value, now=1e9)
    assert wait is None or wait >= 0


@given(st.text(max_size=30))
@settings(max_examples=200, deadline=None)
def test_a_retry_after_of_any_text_never_exceeds_max_wait(value: str) -> None:
    retrying = build_retrying(FetchConfig(retries=2, max_wait=5.0, backoff=0.01))
    state = new_attempts(retrying)
    wait = next_wait(retrying, state, RetryableStatus(429, parse_retry_after(value, now=0.0)))
    assert wait is not None and 0 <= wait <= 5.0
