"""When to look at an operation again: the polling policy.

Google APIs give no hint on a pending operation, so the delay comes from, in order:

1. the server's own hint on an error (``Retry-After``, ``google.rpc.RetryInfo.retryDelay``),
   a lower bound that nothing here shortens;
2. the watch's ``expected_duration``, else what opwatch learned of its kind (``learned``): one
   look at the start, then nothing until the window where the end is likely (around the expected
   duration; from the kind's 5th percentile to twice its 95th), dense looks through it (the delay
   a small fraction of the time elapsed), then back to the profile;
3. the API's profile, GAPIC ``LongRunning`` style (initial delay, multiplier, maximum delay): the
   delay grows with the time already elapsed, so the detection lag stays a bounded fraction of
   the operation's duration while the number of looks grows only logarithmically;
4. after consecutive transient errors, an exponential backoff on top.

Jitter only ever shortens a delay (like google-api-core's ``uniform(0, cap)``), so no bound on the
detection lag is lost. Everything is a pure function of its arguments and a seeded RNG: the same
watch at the same point always gets the same delay. RPC retry is not here: a failed fetch is just
an input to the next decision.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Final

from opwatch.contracts import POLLING_FIELDS, PollingOverride

NO_OVERRIDE: Final = PollingOverride()

MIN_DELAY: Final = 1.0
# A server asking for more than an hour is capped: the watch timeout still bounds everything.
MAX_SERVER_HINT: Final = 3600.0


@dataclass(frozen=True)
class Profile:
    """How to poll one API's operations when nothing better is known.

    Attributes:
        initial_delay: seconds before the second look (the first is immediate).
        multiplier: each delay is ``elapsed * (multiplier - 1)``, within the bounds below.
        max_delay: no delay is longer, whatever has elapsed.
        not_found_grace: how long a 404 counts as "not created yet" before it means NOT_FOUND.
        jitter: delays are shortened by up to this fraction, at random.
        error_initial_delay: first backoff after a transient error; doubles per consecutive error.
    """

    initial_delay: float
    multiplier: float
    max_delay: float
    not_found_grace: float = 60.0
    jitter: float = 0.1
    error_initial_delay: float = 2.0

    def with_overrides(self, override: PollingOverride) -> Profile:
        """This profile with a watch's own (already bounds-checked) settings applied."""
        if override == NO_OVERRIDE:
            return self  # most watches: nothing to apply, on every check
        changes = {
            name: value for name in POLLING_FIELDS if (value := getattr(override, name)) is not None
        }
        profile = replace(self, **changes)
        return replace(profile, max_delay=max(profile.max_delay, profile.initial_delay))


@dataclass(frozen=True)
class Hint:
    """How ``expected_duration`` shapes the schedule (fractions of the expected duration).

    Attributes:
        window_start: sparse until here: the one look in between lands exactly on it.
        window_end: dense until here, then the profile again.
        step: inside the window each delay is ``elapsed * step``.
    """

    window_start: float = 0.8
    window_end: float = 1.35
    step: float = 0.05


DEFAULT_HINT: Final = Hint()


@dataclass(frozen=True)
class Window:
    """Seconds into an operation where its end is likely: sparse before, dense inside (each
    delay ``elapsed * step``), the profile after."""

    start: float
    end: float
    step: float = DEFAULT_HINT.step

    @classmethod
    def around(cls, expected_duration: float, hint: Hint = DEFAULT_HINT) -> Window:
        """The window of a watch's own ``expected_duration``."""
        return cls(hint.window_start * expected_duration, hint.window_end * expected_duration)

    @classmethod
    def learned(cls, low: float, high: float) -> Window:
        """The window of a learned kind: from its 5th percentile to twice its 95th, a little
        sparser than a hinted one (bench/polling.py, "What opwatch learns": the kind's spread,
        not a per-watch guess, sets its width)."""
        return cls(low, LEARNED_END * high, LEARNED_STEP)


# A learned window ends this many times the kind's 95th percentile, and steps this fraction of
# the elapsed time: p95 lag within ~6 % of the duration on the bench's mix of kinds.
LEARNED_END: Final = 2.0
LEARNED_STEP: Final = 0.06


# Gemini for Google Cloud: code repository indexes, repository groups and setting bindings take
# minutes up to ~90 minutes. Growing the delay to a quarter of the elapsed time (5 s at first, at
# most 5 minutes) sees the end within ~25 % of an operation's age: on bench/polling.py's mix this
# takes fewer polls *and* less relative lag than the GAPIC, Workflows and Terraform defaults
# (a 90-minute build: ~40 looks, at most 5 minutes late).
PROFILES: Final = MappingProxyType(
    {
        "cloudaicompanion.googleapis.com": Profile(
            initial_delay=5.0, multiplier=1.25, max_delay=300.0
        ),
    }
)
DEFAULT_PROFILE: Final = Profile(initial_delay=5.0, multiplier=1.25, max_delay=120.0)
# For an API whose operations' ends are heard from Cloud Audit Logs (the fast path runs the
# pending check when the end entry arrives), polling is only the safety net for a lost or late
# entry: the delay equals the time elapsed (at least 15 s, at most 30 min), so a lost event is
# still seen within the operation's age again, with about half the looks.
SAFETY_NET: Final = Profile(initial_delay=15.0, multiplier=2.0, max_delay=1800.0)


def profile_for(
    api: str, override: PollingOverride | None = None, *, event_driven: bool = False
) -> Profile:
    """The polling profile of ``api``, with a watch's overrides applied.

    Args:
        api: the API host.
        override: the watch's own ``polling`` settings.
        event_driven: the deployment hears this API's operations end from the audit log.
    """
    profile = SAFETY_NET if event_driven else PROFILES.get(api, DEFAULT_PROFILE)
    return profile.with_overrides(override) if override is not None else profile


def rng_for(watch_id: str, polls: int) -> random.Random:
    """The RNG for one decision: seeded by the watch and how far it got, so replays agree."""
    return random.Random(f"{watch_id}/{polls}")


def schedule_delay(
    elapsed: float,
    profile: Profile,
    expected_duration: float | None = None,
    window: Window | None = None,
) -> float:
    """The delay, before jitter, from ``elapsed`` seconds into a watch to the next look; the
    window is ``expected_duration``'s, else ``window`` (learned)."""
    window = _window(expected_duration, window)
    if window is not None:
        if elapsed < window.start:
            return window.start - elapsed
        if elapsed < window.end:
            return max(MIN_DELAY, min(elapsed * window.step, profile.max_delay))
    grown = elapsed * (profile.multiplier - 1.0)
    return max(MIN_DELAY, profile.initial_delay, min(grown, profile.max_delay))


def next_delay(
    *,
    elapsed: float,
    profile: Profile,
    rng: random.Random,
    expected_duration: float | None = None,
    window: Window | None = None,
    transient_errors: int = 0,
    server_hint: float | None = None,
) -> float:
    """Seconds to wait before the next look; see the module docstring for the rules.

    Args:
        elapsed: seconds since the watch started.
        profile: the API's profile (with the watch's overrides).
        rng: source of jitter; use :func:`rng_for` so the result is reproducible.
        expected_duration: the watch's hint of the operation's total duration, if any.
        window: where a learned kind's operations end (used without ``expected_duration``).
        transient_errors: consecutive transient errors, the one just seen included.
        server_hint: seconds the server asked to wait (Retry-After / RetryInfo), if any.

    Returns:
        A delay of at least :data:`MIN_DELAY` seconds. It is not clipped to the watch's timeout:
        the caller does that, because only the caller knows the deadline.
    """
    chosen = _window(expected_duration, window)
    delay = schedule_delay(elapsed, profile, window=chosen)
    # The jump to the window is not jittered: landing early would only add looks.
    jitter = profile.jitter if chosen is None or elapsed >= chosen.start else 0.0
    if transient_errors > 0:
        backoff = profile.error_initial_delay * 2.0 ** min(transient_errors - 1, 30)
        delay = max(delay, min(backoff, profile.max_delay))
    delay *= 1.0 - jitter * rng.random()
    if server_hint is not None:
        delay = max(delay, min(server_hint, MAX_SERVER_HINT))
    return max(MIN_DELAY, delay)


def _window(expected_duration: float | None, window: Window | None) -> Window | None:
    # A watch's own hint wins over what was learned of its kind.
    return Window.around(expected_duration) if expected_duration is not None else window
