"""The polling policy: bounded, growing, honouring server hints, reproducible."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opwatch import policy
from opwatch.contracts import PollingOverride
from opwatch.policy import next_delay, profile_for, schedule_delay

CAI = profile_for("cloudaicompanion.googleapis.com")
elapsed_s = st.floats(min_value=0, max_value=30 * 86400, allow_nan=False)
expected_s = st.none() | st.floats(min_value=1, max_value=30 * 86400, allow_nan=False)
errors_s = st.integers(min_value=0, max_value=200)
hint_s = st.none() | st.floats(min_value=0, max_value=1e9, allow_nan=False)
seeds = st.integers(min_value=0, max_value=2**32)

# The documented bounds, written out (docs/how-it-works.md, "When it looks again" and
# "Outages"): no look sooner than 1 s after the last (initial_delay's lower bound), the
# cloudaicompanion profile's max delay of 5 min, a server hint honoured up to 1 h, and a
# hinted watch's jump to 80 % of its expected duration. Comparing with policy.MIN_DELAY,
# MAX_SERVER_HINT or DEFAULT_HINT let a wrong constant pass.
DOCUMENTED_MIN_DELAY = 1.0
DOCUMENTED_CAI_MAX_DELAY = 300.0
DOCUMENTED_MAX_SERVER_HINT = 3600.0
DOCUMENTED_WINDOW_START = 0.8


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
    assert delay >= DOCUMENTED_MIN_DELAY
    # The profile caps the schedule, except to reach a hinted window or honour a server hint.
    ceiling = max(DOCUMENTED_CAI_MAX_DELAY, DOCUMENTED_MAX_SERVER_HINT if hint is not None else 0)
    if expected is not None and elapsed < DOCUMENTED_WINDOW_START * expected:
        ceiling = max(ceiling, DOCUMENTED_WINDOW_START * expected - elapsed)
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


@given(elapsed_s, st.floats(min_value=0, max_value=DOCUMENTED_MAX_SERVER_HINT), seeds)
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
    # README: jitter shortens a delay by up to 10 %.
    assert max(DOCUMENTED_MIN_DELAY, base * (1 - 0.1)) - 1e-9 <= delay <= base


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


class NoJitter(random.Random):
    """An RNG whose draws are 0: the delay before jitter, exactly."""

    def random(self) -> float:
        return 0.0


class FullJitter(random.Random):
    def random(self) -> float:
        return 1.0


def test_the_profiles_are_the_documented_ones() -> None:
    """The values of README's polling table (section "Polling"), written out: comparing with
    ``policy.DEFAULT_PROFILE`` or ``profile_for(...)`` itself let a tenfold max delay pass."""
    cai = profile_for("cloudaicompanion.googleapis.com")
    other = profile_for("spanner.googleapis.com")
    assert (cai.initial_delay, cai.multiplier, cai.max_delay, cai.not_found_grace) == (
        5.0,
        1.25,
        300.0,
        60.0,
    )
    assert (other.initial_delay, other.multiplier, other.max_delay, other.not_found_grace) == (
        5.0,
        1.25,
        120.0,
        60.0,
    )
    # "Jitter only ever shortens a delay" by at most 10 % (policy's Profile.jitter docstring).
    assert next_delay(elapsed=0, profile=cai, rng=FullJitter()) == pytest.approx(4.5)
    assert next_delay(elapsed=400, profile=cai, rng=NoJitter()) == 100.0  # 400 x 0.25
    assert next_delay(elapsed=4000, profile=cai, rng=NoJitter()) == 300.0
    assert next_delay(elapsed=4000, profile=other, rng=NoJitter()) == 120.0


@pytest.mark.parametrize(
    ("errors", "expected"),
    [(1, 5.0), (2, 5.0), (3, 8.0), (4, 16.0), (6, 64.0), (9, 300.0), (200, 300.0)],
)
def test_errors_back_off_2_4_8_up_to_the_max_delay(errors: int, expected: float) -> None:
    """README: "Consecutive transient errors add an exponential backoff (2 s, 4 s, … up to the
    max delay)", on top of the schedule (5 s at the start). Caught: no backoff, a first backoff
    of 20 s, a backoff that is not capped."""
    cai = profile_for("cloudaicompanion.googleapis.com")
    delay = next_delay(elapsed=0, profile=cai, rng=NoJitter(), transient_errors=errors)
    assert delay == expected


def test_a_server_hint_is_honoured_up_to_an_hour() -> None:
    """Retry-After / RetryInfo are a lower bound, even above the max delay; more than an hour is
    capped there (policy.MAX_SERVER_HINT's comment: the watch's timeout bounds the rest)."""
    cai = profile_for("cloudaicompanion.googleapis.com")

    def hinted(hint: float) -> float:
        return next_delay(elapsed=0, profile=cai, rng=FullJitter(), server_hint=hint)

    assert hinted(1.0) == pytest.approx(4.5), "below the schedule: the schedule"
    assert hinted(1000.0) == 1000.0, "above the max delay: still honoured, never jittered"
    assert hinted(7200.0) == 3600.0


def test_a_hinted_watch_jumps_to_80_percent_then_every_5_percent_until_135() -> None:
    """README: with expected_duration, "looks once at the start, then not again until 80 % of
    it, then densely (every 5 % of the elapsed time) until 135 %"; the jump is not jittered."""
    cai = profile_for("cloudaicompanion.googleapis.com")

    def delay(elapsed: float, rng: random.Random | None = None) -> float:
        return next_delay(
            elapsed=elapsed, profile=cai, rng=rng or NoJitter(), expected_duration=400
        )

    assert delay(0, FullJitter()) == 320.0
    assert delay(100, FullJitter()) == 220.0, "before the window: not jittered"
    assert delay(320) == 16.0
    assert delay(320, FullJitter()) == pytest.approx(14.4), "at the window's start: jittered"
    assert delay(530) == pytest.approx(26.5)
    assert delay(540) == 135.0, "past 135 %: the profile's 25 % of the elapsed time"
    assert next_delay(elapsed=10, profile=cai, rng=NoJitter(), expected_duration=10.5) == 1.0


def test_with_a_one_second_first_delay_the_first_error_backs_off_2_seconds() -> None:
    """With ``initial_delay`` overridden to 1 s (the contract's lower bound), the schedule is
    shorter than the first backoff: no error looks after 1 s, the first error after 2 s, the
    second after 4 s (README: "2 s, 4 s, … up to the max delay"). Caught: a default of one
    error, ``transient_errors >= 0`` or ``> 1``."""
    fast = profile_for("cloudaicompanion.googleapis.com", PollingOverride(initial_delay=1.0))

    def after(errors: int) -> float:
        return next_delay(elapsed=0, profile=fast, rng=NoJitter(), transient_errors=errors)

    assert next_delay(elapsed=0, profile=fast, rng=NoJitter()) == 1.0
    assert [after(0), after(1), after(2), after(3)] == [1.0, 2.0, 4.0, 8.0]


def test_a_learned_window_spans_p5_to_twice_p95_in_steps_of_6_percent() -> None:
    """docs/how-it-works.md, "Learned durations": the window of a learned kind is its 5th
    percentile to twice its 95th, each delay 6 % of the elapsed time; a hint's is 0.8x to 1.35x
    of it, in steps of 5 %."""
    assert policy.Window.learned(100.0, 500.0) == policy.Window(100.0, 1000.0, 0.06)
    assert policy.Window.around(1000.0) == policy.Window(800.0, 1350.0, 0.05)
