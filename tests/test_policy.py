"""The polling policy: bounded, growing, honouring server hints, reproducible."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opwatch import policy
from opwatch.contracts import PollingOverride
from opwatch.policy import MAX_SERVER_HINT, MIN_DELAY, next_delay, profile_for, schedule_delay

CAI = profile_for("cloudaicompanion.googleapis.com")
elapsed_s = st.floats(min_value=0, max_value=30 * 86400, allow_nan=False)
expected_s = st.none() | st.floats(min_value=1, max_value=30 * 86400, allow_nan=False)
errors_s = st.integers(min_value=0, max_value=200)
hint_s = st.none() | st.floats(min_value=0, max_value=1e9, allow_nan=False)
seeds = st.integers(min_value=0, max_value=2**32)


@given(elapsed_s, expected_s, errors_s, hint_s, seeds)
def test_delay_is_bounded(
    elapsed: float, expected: float | None, errors: int, hint: float | None, seed: int
) -> None:
    delay = next_delay(
        elapsed=elapsed,
        profile=CAI,
        rng=random.Random(seed),
        expected_duration=expected,
        transient_errors=errors,
        server_hint=hint,
    )
    assert delay >= MIN_DELAY
    # The profile caps the schedule, except to reach a hinted window or honour a server hint.
    ceiling = max(CAI.max_delay, MAX_SERVER_HINT if hint is not None else 0.0)
    if expected is not None and elapsed < policy.DEFAULT_HINT.window_start * expected:
        ceiling = max(ceiling, policy.DEFAULT_HINT.window_start * expected - elapsed)
    assert delay <= ceiling + 1e-6


@given(elapsed_s, elapsed_s)
def test_schedule_never_shrinks_as_time_passes(a: float, b: float) -> None:
    early, late = sorted((a, b))
    assert schedule_delay(early, CAI) <= schedule_delay(late, CAI)


@given(elapsed_s, st.integers(min_value=0, max_value=50), seeds)
def test_more_consecutive_errors_never_mean_a_shorter_backoff(
    elapsed: float, errors: int, seed: int
) -> None:
    def at(count: int) -> float:
        return next_delay(
            elapsed=elapsed, profile=CAI, rng=random.Random(seed), transient_errors=count
        )

    assert at(errors) <= at(errors + 1)


@given(elapsed_s, st.floats(min_value=0, max_value=MAX_SERVER_HINT), seeds)
def test_server_hint_is_a_lower_bound(elapsed: float, hint: float, seed: int) -> None:
    delay = next_delay(
        elapsed=elapsed, profile=CAI, rng=random.Random(seed), transient_errors=1, server_hint=hint
    )
    assert delay >= hint


@given(elapsed_s, expected_s, errors_s)
def test_same_watch_and_step_give_the_same_delay(
    elapsed: float, expected: float | None, errors: int
) -> None:
    def once() -> float:
        rng = policy.rng_for("watch-1", 7)
        return next_delay(
            elapsed=elapsed,
            profile=CAI,
            rng=rng,
            expected_duration=expected,
            transient_errors=errors,
        )

    assert once() == once()


@given(elapsed_s, seeds)
def test_jitter_only_shortens(elapsed: float, seed: int) -> None:
    delay = next_delay(elapsed=elapsed, profile=CAI, rng=random.Random(seed))
    base = schedule_delay(elapsed, CAI)
    assert max(MIN_DELAY, base * (1 - CAI.jitter)) - 1e-9 <= delay <= base


@given(st.floats(min_value=60, max_value=86400))
def test_detection_lag_stays_a_bounded_fraction_of_elapsed(elapsed: float) -> None:
    # The next look comes at most (multiplier - 1) x elapsed later, once past the initial delay.
    assert schedule_delay(elapsed, CAI) <= max(CAI.initial_delay, elapsed * (CAI.multiplier - 1))


def test_expected_duration_waits_for_the_window_then_polls_densely() -> None:
    expected = 3600.0
    assert schedule_delay(0, CAI, expected) == 0.8 * expected
    inside = schedule_delay(0.9 * expected, CAI, expected)
    assert inside == pytest.approx(0.05 * 0.9 * expected)
    assert schedule_delay(2 * expected, CAI, expected) == schedule_delay(2 * expected, CAI)


def test_unknown_api_gets_the_default_profile_and_overrides_apply() -> None:
    assert profile_for("spanner.googleapis.com") == policy.DEFAULT_PROFILE
    tuned = profile_for(
        "cloudaicompanion.googleapis.com", PollingOverride(initial_delay=600.0, multiplier=2.0)
    )
    assert (tuned.initial_delay, tuned.multiplier) == (600.0, 2.0)
    assert tuned.max_delay == 600.0, "max_delay grows to the initial delay"
    assert schedule_delay(0, tuned) == 600.0
