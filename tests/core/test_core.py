"""Branches of the decision core not already exercised by whole watches in test_service."""

from __future__ import annotations

from datetime import timedelta

import pytest

from opwatch.contracts import PollingOverride, WatchRequest
from opwatch.core import (
    CheckAgain,
    FetchFailed,
    Finish,
    Outcome,
    Progress,
    decide,
    describe_failure,
)
from opwatch.ports import utcnow
from opwatch.status import make_status
from tests.fakes import OPERATION, T0, Fetched, http_error

REQUEST = WatchRequest(operation=OPERATION, watch_id="w-1", timeout=3600.0)
START = Progress(started=T0, polls=1)
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


def test_done_without_response_or_error_is_a_success() -> None:
    decision = decide(REQUEST, START, Fetched({"name": OPERATION, "done": True}), T0)
    assert isinstance(decision, Finish)
    assert (decision.outcome, decision.error, decision.progress.polls) == (
        Outcome.SUCCEEDED,
        None,
        2,
    )


def test_done_must_be_literally_true() -> None:
    decision = decide(REQUEST, START, Fetched({"name": OPERATION, "done": "true"}), T0)
    assert isinstance(decision, CheckAgain)


@pytest.mark.parametrize(
    "details",
    [
        [{"@type": ERROR_INFO, "reason": "RATE_LIMIT_EXCEEDED"}],
        [{"@type": ERROR_INFO, "reason": "userRateLimitExceeded"}],
    ],
)
def test_403_for_a_rate_limit_is_transient(details: list[object]) -> None:
    decision = decide(REQUEST, START, http_error(403, 7, "slow down", details=details), T0)
    assert isinstance(decision, CheckAgain)
    assert decision.progress.transient_errors == 1


def test_403_resource_exhausted_is_transient() -> None:
    assert isinstance(decide(REQUEST, START, http_error(403, 8, "quota"), T0), CheckAgain)


@pytest.mark.parametrize("status", [302, 400, 409, 410, 501])
def test_other_answers_are_failures(status: int) -> None:
    decision = decide(REQUEST, START, http_error(status, 9, "no"), T0)
    assert isinstance(decision, Finish)
    assert decision.outcome is Outcome.FAILED


def test_a_good_answer_resets_the_error_count() -> None:
    after_errors = Progress(started=T0, polls=4, transient_errors=3)
    decision = decide(
        REQUEST, after_errors, Fetched({"name": OPERATION}), T0 + timedelta(seconds=60)
    )
    assert isinstance(decision, CheckAgain)
    assert (decision.progress.transient_errors, decision.progress.seen) == (0, True)


def test_the_last_check_is_never_past_the_deadline() -> None:
    decision = decide(REQUEST, START, Fetched({"name": OPERATION}), T0 + timedelta(seconds=3599))
    assert isinstance(decision, CheckAgain)
    assert decision.delay == pytest.approx(1.0)


def test_timed_out_mentions_the_last_failure() -> None:
    decision = decide(
        REQUEST, START, http_error(503, 14, "backend down"), T0 + timedelta(seconds=3600)
    )
    assert isinstance(decision, Finish)
    assert decision.outcome is Outcome.TIMED_OUT
    assert decision.error is not None and "backend down" in decision.error["message"]
    assert decision.operation is None


def test_clock_is_aware_utc() -> None:
    assert utcnow().utcoffset() == timedelta(0)


def pending_since(created: str | None) -> Fetched:
    metadata = {"createTime": created} if created is not None else {}
    return Fetched({"name": OPERATION, "done": False, "metadata": metadata})


def test_the_schedule_follows_the_operations_own_age() -> None:
    """A watch joining a 2-hour-old operation polls as the operation's age says (the profile's
    5-minute ceiling), not as a fresh watch would (5 s); the timeout still counts from the
    watch's start."""
    long_ago = (T0 - timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    request = WatchRequest(operation=OPERATION, watch_id="w-late", timeout=600.0)
    late = decide(request, Progress(started=T0), pending_since(long_ago), T0)
    fresh = decide(request, Progress(started=T0), pending_since(None), T0)
    assert isinstance(late, CheckAgain) and isinstance(fresh, CheckAgain)
    assert fresh.delay <= 5.0
    assert 270.0 <= late.delay <= 300.0
    at_deadline = decide(
        request, Progress(started=T0), pending_since(long_ago), T0 + timedelta(seconds=600)
    )
    assert isinstance(at_deadline, Finish) and at_deadline.outcome is Outcome.TIMED_OUT


@pytest.mark.parametrize("created", ["2026-11-27T13:00:00Z", "yesterday", 12345])
def test_a_create_time_in_the_future_or_unreadable_is_not_believed(created: object) -> None:
    operation = Fetched({"name": OPERATION, "done": False, "metadata": {"createTime": created}})
    decision = decide(REQUEST, Progress(started=T0), operation, T0)
    assert isinstance(decision, CheckAgain) and decision.delay <= 5.0


def test_an_event_driven_api_polls_only_as_a_safety_net() -> None:
    """Delay = the time elapsed (at least 15 s): a lost end event is still seen within the
    operation's age, with about half the looks of the default profile."""
    request = WatchRequest(operation=OPERATION, watch_id="w-ev", timeout=86400.0)
    for minutes, low in ((0, 13.5), (10, 540.0), (120, 1620.0)):
        now = T0 + timedelta(minutes=minutes)
        decision = decide(
            request, Progress(started=T0), pending_since(None), now, event_driven=True
        )
        assert isinstance(decision, CheckAgain)
        assert low <= decision.delay <= max(15.0, min(minutes * 60.0, 1800.0))


# --- survivors of ./run mutants (tests/mutants.py core), each killed here ----------------------


def test_a_watch_s_polling_override_shapes_its_schedule() -> None:
    """Caught: ``decide`` reading the API's profile without the watch's ``polling``."""
    slow = WatchRequest(
        operation=OPERATION,
        watch_id="w-slow",
        timeout=3600.0,
        polling=PollingOverride(initial_delay=600.0),
    )
    decision = decide(slow, Progress(started=T0), pending_since(None), T0)
    assert isinstance(decision, CheckAgain)
    assert 540.0 <= decision.delay <= 600.0


def test_a_404_at_the_end_of_the_grace_is_not_found() -> None:
    """README: a 404 is "not created yet, during the grace window", 60 s by default; at 60 s the
    window is over. Caught: ``elapsed > not_found_grace``."""
    at_grace = decide(REQUEST, START, http_error(404, 5), T0 + timedelta(seconds=60))
    assert isinstance(at_grace, Finish) and at_grace.outcome is Outcome.NOT_FOUND
    inside = decide(REQUEST, START, http_error(404, 5), T0 + timedelta(seconds=59))
    assert isinstance(inside, CheckAgain)


def test_timed_out_during_the_grace_mentions_the_404() -> None:
    """Caught: a 404 not kept as the last error, so TIMED_OUT lost why the last look failed."""
    short = WatchRequest(operation=OPERATION, watch_id="w-short", timeout=30.0)
    decision = decide(short, START, http_error(404, 5, "no such op"), T0 + timedelta(seconds=30))
    assert isinstance(decision, Finish) and decision.outcome is Outcome.TIMED_OUT
    assert decision.error is not None
    assert decision.error["message"].endswith("; the last check failed: no such op")


def test_a_failure_is_described_once_with_its_status() -> None:
    """Caught: ``or`` for ``and`` (no answer would read "HTTP None: …", and a message that
    already says its status would say it twice), and a made-up message when there is none."""
    assert describe_failure(FetchFailed(None, make_status(14, "reset"))) == "reset"
    assert describe_failure(http_error(409, 10, "HTTP 409 busy")) == "HTTP 409 busy"
    assert describe_failure(http_error(409, 10, "busy")) == "HTTP 409: busy"
    assert describe_failure(FetchFailed(503, {"code": 14})) == "HTTP 503: "


def test_timed_out_after_an_error_without_a_message_adds_nothing_made_up() -> None:
    decision = decide(REQUEST, START, FetchFailed(503, {"code": 14}), T0 + timedelta(seconds=3600))
    assert isinstance(decision, Finish) and decision.error is not None
    assert decision.error["message"].endswith("; the last check failed: ")


def test_a_hinted_watch_s_first_look_waits_until_80_percent_of_the_hint() -> None:
    """README: with expected_duration opwatch "looks once at the start, then not again until
    80 % of it". Caught: the hint not passed to the policy, an elapsed time of at least 1 s."""
    hinted = WatchRequest(
        operation=OPERATION, watch_id="w-h", timeout=3600.0, expected_duration=400.0
    )
    decision = decide(hinted, Progress(started=T0), pending_since(None), T0)
    assert isinstance(decision, CheckAgain)
    assert decision.delay == 320.0


def test_the_next_look_carries_the_pending_operation_and_a_404_s_reason() -> None:
    """Caught: CheckAgain without the operation just seen (TIMED_OUT reports the last one),
    and a 404 inside the grace not kept as the watch's last error (opwatch status shows it)."""
    seen = pending_since(None)
    decision = decide(REQUEST, START, seen, T0)
    assert isinstance(decision, CheckAgain) and decision.operation == seen.operation
    missing = decide(REQUEST, START, http_error(404, 5, "no such op"), T0 + timedelta(seconds=5))
    assert isinstance(missing, CheckAgain)
    assert missing.progress.last_error == "HTTP 404: no such op"


def test_a_retry_after_date_is_honoured() -> None:
    """Retry-After may be an HTTP date (RFC 9110 §10.2.3). Caught: the date read without now."""
    busy = http_error(429, 8, "slow down", retry_after="Fri, 27 Nov 2026 12:10:00 GMT")
    decision = decide(REQUEST, START, busy, T0)
    assert isinstance(decision, CheckAgain)
    assert decision.delay == 600.0


def test_a_learned_kind_schedules_the_looks_in_its_window() -> None:
    """A kind learned to end between 10 and 20 minutes: the first look waits for its 5th
    percentile (not the default 5 s), and inside the window the looks step 6 % of the age."""
    from opwatch.learned import Expectation

    learned = Expectation("run.jobs", 40, 600.0, 900.0, 1200.0)
    pending = Fetched({"name": OPERATION, "done": False})
    first = decide(REQUEST, Progress(started=T0), pending, T0, learned=learned)
    plain = decide(REQUEST, Progress(started=T0), pending, T0)
    assert isinstance(first, CheckAgain) and isinstance(plain, CheckAgain)
    assert plain.delay <= 5.0
    assert 500.0 <= first.delay <= 600.0
    inside = decide(
        REQUEST, Progress(started=T0), pending, T0 + timedelta(seconds=1000), learned=learned
    )
    assert isinstance(inside, CheckAgain) and 40.0 <= inside.delay <= 60.0


def test_overdue_after_the_hint_or_the_learned_95th_percentile() -> None:
    """1.5 x expected_duration (issue 17), else the kind's 95th percentile, else never."""
    from opwatch.core import overdue_after
    from opwatch.learned import Expectation

    learned = Expectation("run.jobs", 40, 600.0, 900.0, 1200.0)
    hinted = WatchRequest(operation=OPERATION, watch_id="w-1", expected_duration=100.0)
    assert overdue_after(hinted, learned) == 150.0
    assert overdue_after(hinted, None) == 150.0
    assert overdue_after(REQUEST, learned) == 1200.0
    assert overdue_after(REQUEST, None) is None


def test_operation_age_counts_from_create_time_else_the_watch_start() -> None:
    from opwatch.core import operation_age

    two_hours_ago = {"metadata": {"createTime": "2026-11-27T10:00:00Z"}}
    later = T0 + timedelta(seconds=30)
    assert operation_age(two_hours_ago, Progress(started=T0), later) == 7230.0
    assert operation_age({"metadata": {}}, Progress(started=T0), later) == 30.0
    assert operation_age(None, Progress(started=T0), later) == 30.0
    assert operation_age(None, Progress(started=later), T0) == 0.0  # a clock behind the start
