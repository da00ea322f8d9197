"""Whole watches, from watch message to notification, with Cloud Tasks played by the harness."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
from google.api_core import exceptions

from opwatch import checks
from opwatch.core import Fetched, FetchFailed, Outcome
from opwatch.handlers import Handlers
from opwatch.notification import Notification
from opwatch.status import make_status
from tests.fakes import (
    OPERATION,
    OTHER_TOPIC,
    RESULTS,
    T0,
    EventLog,
    FakeFetch,
    Harness,
    failed,
    http_error,
    pending,
    pubsub_message,
    succeeded,
)


def watch(harness: Harness, **request: object) -> Outcome | None:
    return harness.handlers.on_watch_message(pubsub_message({"operation": OPERATION, **request}))


def test_done_at_first_look_publishes_once_and_schedules_nothing(harness: Harness) -> None:
    harness.fetch.results = [succeeded()]
    assert watch(harness) is Outcome.SUCCEEDED
    assert harness.schedule.tasks == []
    [note] = harness.publish.received
    assert note["outcome"] == "SUCCEEDED"
    assert note["operation"] == succeeded().operation
    assert note["error"] is None
    assert note["polls"] == 1
    assert note["watch_id"] == "m-1"
    assert harness.publish.messages[0].topic == RESULTS


def test_pending_operation_is_rechecked_until_done(harness: Harness) -> None:
    harness.fetch.results = [pending(), pending(), pending(), succeeded()]
    assert watch(harness) is None
    assert len(harness.schedule.tasks) == 1
    harness.run_checks()
    [note] = harness.publish.received
    assert note["outcome"] == "SUCCEEDED"
    assert note["polls"] == 4
    assert len(harness.fetch.calls) == 4
    assert note["watch_started"] == "2026-11-27T12:00:00.000Z"
    assert note["observed_done"] > note["watch_started"]


def test_operation_error_is_failed_with_the_operations_own_error(harness: Harness) -> None:
    harness.fetch.results = [pending(), failed(9, "index build failed")]
    watch(harness)
    harness.run_checks()
    [note] = harness.publish.received
    assert note["outcome"] == "FAILED"
    assert note["error"] == {"code": 9, "message": "index build failed", "details": []}
    assert note["operation"]["error"]["message"] == "index build failed"


def test_timeout_ends_with_timed_out_at_the_deadline_and_the_last_operation(
    harness: Harness,
) -> None:
    harness.fetch.results = [pending()]
    watch(harness, timeout="300s")
    harness.run_checks()
    [note] = harness.publish.received
    assert note["outcome"] == "TIMED_OUT"
    assert note["error"]["code"] == 4
    assert note["operation"] == pending().operation
    assert harness.clock.now == T0 + timedelta(seconds=300), "the last look is at the deadline"


def test_404_is_not_yet_during_the_grace_window_then_not_found(harness: Harness) -> None:
    harness.fetch.results = [http_error(404, 5, "no such operation")]
    watch(harness, polling={"not_found_grace": "30s"})
    harness.run_checks()
    [note] = harness.publish.received
    assert note["outcome"] == "NOT_FOUND"
    assert note["error"]["message"] == "no such operation"
    assert harness.clock.now >= T0 + timedelta(seconds=30)
    assert len(harness.fetch.calls) > 1


def test_operation_that_appears_late_is_still_watched(harness: Harness) -> None:
    harness.fetch.results = [http_error(404, 5), http_error(404, 5), pending(), succeeded()]
    watch(harness)
    harness.run_checks()
    assert [n["outcome"] for n in harness.publish.received] == ["SUCCEEDED"]


def test_operation_that_disappears_after_being_seen_is_not_found_at_once(harness: Harness) -> None:
    harness.fetch.results = [pending(), http_error(404, 5)]
    watch(harness)
    harness.run_checks()
    [note] = harness.publish.received
    assert (note["outcome"], note["polls"]) == ("NOT_FOUND", 2)


@pytest.mark.parametrize("status", [401, 403])
def test_auth_errors_are_permission_denied(harness: Harness, status: int) -> None:
    harness.fetch.results = [http_error(status, 7, "caller lacks cloudaicompanion.operations.get")]
    watch(harness)
    [note] = harness.publish.received
    assert note["outcome"] == "PERMISSION_DENIED"
    assert note["error"]["message"] == "caller lacks cloudaicompanion.operations.get"


def test_transient_errors_are_retried_then_success(harness: Harness) -> None:
    unavailable = FetchFailed(None, make_status(14, "connection reset"))
    harness.fetch.results = [http_error(503, 14), unavailable, http_error(429, 8), succeeded()]
    watch(harness)
    harness.run_checks()
    [note] = harness.publish.received
    assert (note["outcome"], note["polls"]) == ("SUCCEEDED", 4)


def test_retry_after_is_honoured(harness: Harness) -> None:
    harness.fetch.results = [http_error(429, 8, retry_after="120")]
    watch(harness)
    [task] = harness.schedule.tasks
    assert task.when - T0 >= timedelta(seconds=120)


def test_other_client_errors_fail_with_the_apis_error(harness: Harness) -> None:
    harness.fetch.results = [http_error(400, 3, "bad operation id")]
    watch(harness)
    [note] = harness.publish.received
    assert note["outcome"] == "FAILED"
    assert note["operation"] is None
    assert note["error"]["message"] == "bad operation id"


def test_invalid_request_is_answered_not_fetched(harness: Harness) -> None:
    outcome = harness.handlers.on_watch_message(
        pubsub_message({"operation": "https://evil.example/x", "timout": "1s"}, "m-9")
    )
    assert outcome is Outcome.INVALID_REQUEST
    assert harness.fetch.calls == []
    [note] = harness.publish.received
    assert note["outcome"] == "INVALID_REQUEST"
    assert note["watch_id"] == "m-9"
    violations = note["error"]["details"][0]["fieldViolations"]
    assert {v["field"] for v in violations} == {"operation", "timout"}


def test_labels_and_notify_topic_reach_the_notification(harness: Harness) -> None:
    harness.fetch.results = [succeeded()]
    watch(harness, labels={"team": "search"}, notify_topic=OTHER_TOPIC, watch_id="w-42")
    [message] = harness.publish.messages
    assert message.topic == OTHER_TOPIC
    assert message.attributes["label_team"] == "search"
    assert message.attributes["watch_id"] == "w-42"
    assert message.to_json()["labels"] == {"team": "search"}


def test_a_redelivered_watch_message_never_starts_a_second_chain(harness: Harness) -> None:
    """Told by the queue's state and what the subscriber receives, not by a log line."""
    harness.fetch.results = [pending(), pending(), succeeded()]
    watch(harness)
    [first] = harness.schedule.created
    watch(harness)  # Pub/Sub delivers the same message (same messageId) again
    assert harness.schedule.created == [first], "Cloud Tasks refuses the second first task"
    assert [task.task_id for task in harness.schedule.tasks] == [first]
    harness.run_checks()
    assert [note["outcome"] for note in harness.publish.received] == ["SUCCEEDED"]
    assert harness.publish.received[0]["polls"] == 2, "the chain's looks, the redelivery's not"


def test_a_watch_id_reused_by_a_later_message_is_a_new_watch_with_its_own_notification(
    harness: Harness,
) -> None:
    """Task names stay taken about 1 hour after the task ran
    (https://cloud.google.com/tasks/docs/quotas) and up to 4 hours after it was deleted
    (https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues.tasks/create).
    The watches come within the first's window (the harness's queue holds the names on its
    clock), so a collision with an earlier watch's names would show here."""
    other = OPERATION.replace("operation-123", "operation-456")
    harness.fetch.results = [pending(), succeeded()]
    watch(harness, watch_id="nightly")
    harness.run_checks()
    harness.fetch.results, harness.fetch.calls = [pending(), succeeded(other)], []
    harness.clock.advance(600)
    # The next night: same watch_id, another operation, another message.
    harness.handlers.on_watch_message(
        pubsub_message({"operation": other, "watch_id": "nightly"}, message_id="m-2")
    )
    harness.run_checks()
    harness.fetch.results, harness.fetch.calls = [pending(), succeeded()], []
    # And once more for the first operation (a re-watch after the first one ended).
    harness.handlers.on_watch_message(
        pubsub_message({"operation": OPERATION, "watch_id": "nightly"}, message_id="m-3")
    )
    harness.run_checks()
    notes = harness.publish.received
    assert [(n["watch_id"], n["outcome"]) for n in notes] == [("nightly", "SUCCEEDED")] * 3
    assert [n["request"]["operation"] for n in notes] == [OPERATION, other, OPERATION]


def test_each_check_names_a_new_task(harness: Harness) -> None:
    """Bounded: a 600 s watch with a 5 s first delay growing by a quarter looks about 20 times
    (a mutant that never ended the chain hung this loop before it had a bound)."""
    harness.fetch.results = [pending()]
    watch(harness, timeout="600s")
    names = []
    for _ in range(100):
        if not harness.schedule.tasks:
            break
        task = harness.schedule.tasks.pop(0)
        names.append(task.task_id)
        harness.clock.now = task.when
        harness.handlers.on_check(checks.decode(task.body))
    assert harness.schedule.tasks == [], "the chain did not end within 100 looks"
    assert len(names) == len(set(names)) > 3
    assert harness.clock.now == T0 + timedelta(seconds=600)


def test_failure_to_schedule_propagates_so_the_platform_retries(harness: Harness) -> None:
    harness.fetch.results = [pending()]
    harness.schedule.fail_with = exceptions.ServiceUnavailable("queue unavailable")
    with pytest.raises(exceptions.ServiceUnavailable):
        watch(harness)
    assert harness.publish.messages == []


def test_failure_to_publish_propagates_so_the_platform_retries(harness: Harness) -> None:
    harness.fetch.results = [succeeded()]
    harness.publish.fail_with = exceptions.ServiceUnavailable("pubsub unavailable")
    with pytest.raises(exceptions.ServiceUnavailable):
        watch(harness)


def test_check_for_an_api_no_longer_allowed_is_answered_invalid(harness: Harness) -> None:
    harness.fetch.results = [pending()]
    watch(harness, api="spanner.googleapis.com", watch_id="w-7")
    [task] = harness.schedule.tasks
    state = checks.decode(task.body)
    state.request["api"] = "evil.example"
    assert harness.handlers.on_check(state) is Outcome.INVALID_REQUEST
    assert len(harness.fetch.calls) == 1
    [note] = harness.publish.received
    assert (note["watch_id"], note["polls"]) == ("w-7", 1)


def test_every_line_names_its_event(harness: Harness, event_log: EventLog) -> None:
    harness.fetch.results = [pending(), http_error(503, 14), pending(), succeeded()]
    watch(harness)
    harness.run_checks()
    assert event_log.events == [
        "watch.started",
        "check.pending",
        "check.transient_error",
        "check.pending",
        "watch.finished",
    ]
    assert event_log.lines[2]["http_status"] == 503
    assert event_log.lines[-1]["outcome"] == "SUCCEEDED"
    assert {line["watch_id"] for line in event_log.lines} == {"m-1"}


def test_invalid_request_and_failed_delivery_have_their_events(
    harness: Harness, event_log: EventLog
) -> None:
    harness.handlers.on_watch_message(pubsub_message({"operation": "nope"}))
    harness.publish.fail_with = exceptions.ServiceUnavailable("pubsub down")
    harness.fetch.results = [succeeded()]
    with pytest.raises(exceptions.ServiceUnavailable):
        watch(harness)
    assert event_log.events == ["request.invalid", "watch.started", "delivery.failed"]
    assert event_log.lines[-1]["severity"] == "ERROR"


def test_the_finished_line_carries_the_detection_lag_when_the_operation_says_its_end(
    harness: Harness, event_log: EventLog
) -> None:
    ended = {"endTime": "2026-11-27T11:59:57.500Z", "createTime": "2026-11-27T11:00:00Z"}
    done = Fetched({"name": OPERATION, "done": True, "metadata": ended, "response": {}})
    harness.fetch.results = [done]
    watch(harness)
    harness.fetch.results = [succeeded()]  # no metadata: no lag to report
    harness.handlers.on_watch_message(pubsub_message({"operation": OPERATION}, "m-2"))
    finished = [line for line in event_log.lines if line["event"] == "watch.finished"]
    assert finished[0]["detection_lag_seconds"] == 2.5
    assert "detection_lag_seconds" not in finished[1]


# --- one writer per step: a finishing look's claim ------------------------------------------


def finishing_look(harness: Harness) -> checks.CheckState:
    """A watch whose one pending look will see the operation done."""
    harness.fetch.results = [pending()]
    watch(harness, watch_id="w-1")
    [task] = harness.schedule.tasks
    harness.fetch.results = [succeeded()]
    return checks.decode(task.body)


def with_a_twin(
    harness: Harness, state: checks.CheckState, twin: Handlers
) -> tuple[Outcome | None, Outcome | None]:
    """Run the look of ``state``; while it publishes, ``twin`` runs the same look at the same
    attempt (a duplicate dispatch). What each returned."""
    twin_outcomes: list[Outcome | None] = []

    def twin_runs_while_the_first_publishes(message: Notification) -> None:
        if not twin_outcomes:
            twin_outcomes.append(twin.on_check(state, retries=0))
        harness.publish(message)

    first = replace(harness.handlers, publish=twin_runs_while_the_first_publishes)
    outcome = first.on_check(state, retries=0)
    [twin_outcome] = twin_outcomes
    return outcome, twin_outcome


def test_twin_dispatches_of_one_look_publish_once(harness: Harness) -> None:
    """Cloud Tasks executes "more than 99.999 % of tasks" once
    (https://cloud.google.com/tasks/docs/common-pitfalls#duplicate_execution), so two dispatches
    of one look at the same attempt can both see ``done``: the second meets the first's claim,
    which says the same attempt, so it is a twin's, not its own earlier try: it publishes
    nothing. On main before the claims said their attempt, both published."""
    state = finishing_look(harness)
    assert with_a_twin(harness, state, harness.handlers) == (Outcome.SUCCEEDED, None)
    assert [n["outcome"] for n in harness.publish.received] == ["SUCCEEDED"]


def test_a_twin_whose_look_fails_while_the_first_publishes_leaves_the_watch_to_it(
    harness: Harness, event_log: EventLog
) -> None:
    """The twin's GET fails, so it schedules the next look, whose name the first's claim holds,
    made at the same attempt: the first publishes, so the twin is acknowledged as a duplicate
    rather than failed (its retries, one attempt later, would take the claim for their own and
    publish again)."""
    state = finishing_look(harness)
    twin = replace(harness.handlers, fetch=FakeFetch([http_error(503, 14, "unavailable")]))
    assert with_a_twin(harness, state, twin) == (Outcome.SUCCEEDED, None)
    assert "check.duplicate" in event_log.events
    assert [n["outcome"] for n in harness.publish.received] == ["SUCCEEDED"]


def test_a_retry_after_a_failed_publish_knows_its_own_claim(harness: Harness) -> None:
    """The claim stays when the publish fails; Cloud Tasks retries the look (its
    X-CloudTasks-TaskRetryCount one higher), which meets that claim and publishes."""
    state = finishing_look(harness)
    harness.publish.fail_with = exceptions.ServiceUnavailable("pubsub unavailable")
    with pytest.raises(exceptions.ServiceUnavailable):
        harness.handlers.on_check(state, retries=0)
    harness.publish.fail_with = None
    assert harness.handlers.on_check(state, retries=1) is Outcome.SUCCEEDED
    assert [n["outcome"] for n in harness.publish.received] == ["SUCCEEDED"]


def test_a_parked_rerun_after_a_failed_publish_knows_its_own_claim(harness: Harness) -> None:
    """A look that claimed on the queue's last attempts, failed to publish and was parked runs
    again as a new task (retries from 0): parked later, it is a later dispatch of that look."""
    state = finishing_look(harness)
    harness.publish.fail_with = exceptions.ServiceUnavailable("pubsub unavailable")
    with pytest.raises(exceptions.ServiceUnavailable):
        harness.handlers.on_check(state, retries=3)
    harness.publish.fail_with = None
    parked = checks.CheckState(
        state.request,
        replace(state.progress, parks=1),
        state.chain,
        state.seq,
    )
    assert harness.handlers.on_check(parked, retries=0) is Outcome.SUCCEEDED
    assert len(harness.publish.received) == 1


def test_a_look_brought_forward_publishes_and_the_one_it_replaced_does_not(
    harness: Harness,
) -> None:
    """The fast path took the look's next step while the look ran: the look meets a look, not
    a claim, and leaves the watch to it."""
    state = finishing_look(harness)
    brought = checks.successor(state, harness.clock.now, checks.Step.LOOK)
    assert harness.schedule.create(brought)
    assert harness.handlers.on_check(state, retries=0) is None
    assert harness.handlers.on_check(checks.decode(brought.body), retries=0) is Outcome.SUCCEEDED
    assert len(harness.publish.received) == 1


# --- what a look tells: the schedule, the log fields the metrics read, overdue and lag ------------


def _with_watch(harness: Harness, **changes: object) -> None:
    settings = harness.handlers.settings
    watch = replace(settings.watch, **changes)  # type: ignore[arg-type]
    harness.handlers = replace(harness.handlers, settings=replace(settings, watch=watch))


def test_an_event_driven_api_is_polled_only_as_a_safety_net(harness: Harness) -> None:
    """EVENT_DRIVEN_APIS (docs/configuration.md): "delay = time elapsed, 15 s to 30 min"."""
    _with_watch(harness, event_driven_apis=frozenset({"spanner.googleapis.com"}))
    harness.fetch.results = [pending()]
    request = {"operation": OPERATION, "watch_id": "w-e", "api": "spanner.googleapis.com"}
    harness.handlers.on_watch_message(pubsub_message(request, "m-e"))
    [task] = harness.schedule.tasks
    # 15 s, shortened by the schedule's jitter (up to a tenth) so that watches spread out.
    assert 13.5 <= (task.when - harness.clock.now).total_seconds() <= 15.0
    polled = {"operation": OPERATION, "watch_id": "w-p"}
    harness.handlers.on_watch_message(pubsub_message(polled, "m-p"))
    _, other = harness.schedule.tasks
    assert (other.when - harness.clock.now).total_seconds() <= 5.0, "polled: 5 s at first"


def test_a_pending_look_logs_its_polls_and_the_delay_it_scheduled(
    harness: Harness, event_log: EventLog
) -> None:
    harness.fetch.results = [pending()]
    harness.handlers.on_watch_message(pubsub_message({"operation": OPERATION, "watch_id": "w"}))
    [task] = harness.schedule.tasks
    [line] = [line for line in event_log.lines if line["event"] == "check.pending"]
    delay = (task.when - harness.clock.now).total_seconds()
    assert (line["polls"], line["delay_seconds"]) == (1, round(delay, 3))


def test_the_detection_lag_is_logged_to_the_millisecond(
    harness: Harness, event_log: EventLog
) -> None:
    ended = harness.clock.now - timedelta(seconds=0.2504)
    done = {
        "name": OPERATION,
        "done": True,
        "metadata": {"endTime": ended.isoformat()},
        "response": {},
    }
    harness.fetch.results = [Fetched(done)]
    harness.handlers.on_watch_message(pubsub_message({"operation": OPERATION, "watch_id": "w"}))
    [line] = [line for line in event_log.lines if line["event"] == "watch.finished"]
    assert (line["outcome"], line["detection_lag_seconds"]) == ("SUCCEEDED", 0.25)


def _old_operation(harness: Harness) -> Fetched:
    created = harness.clock.now - timedelta(hours=2)
    return Fetched(
        {"name": OPERATION, "done": False, "metadata": {"createTime": created.isoformat()}}
    )


OVERDUE_REQUEST = {
    "operation": OPERATION,
    "watch_id": "w-o",
    "expected_duration": "600s",
    "warn_overdue": True,
}


def test_an_operation_older_than_its_limit_is_overdue_at_the_first_look(
    harness: Harness, event_log: EventLog
) -> None:
    """The age is the operation's own (createTime), not the watch's: joined two hours in, a
    watch of a 600 s hint is overdue (past 900 s) at once."""
    harness.fetch.results = [_old_operation(harness)]
    harness.handlers.on_watch_message(pubsub_message(OVERDUE_REQUEST, "m-o"))
    [message] = harness.publish.messages
    assert message.attributes.get("overdue") == "true"
    assert message.topic == RESULTS
    data = json.loads(message.data)
    assert (data["age_seconds"], data["overdue_after_seconds"]) == (7200, 900)
    assert "watch.overdue" in event_log.events


def test_an_overdue_message_that_fails_is_logged_and_the_watch_goes_on(
    harness: Harness, event_log: EventLog
) -> None:
    harness.publish.fail_with = RuntimeError("Pub/Sub hiccup")
    harness.fetch.results = [_old_operation(harness)]
    assert harness.handlers.on_watch_message(pubsub_message(OVERDUE_REQUEST, "m-o")) is None
    assert len(harness.schedule.tasks) == 1, "the next look is scheduled all the same"
    [line] = [line for line in event_log.lines if line["event"] == "delivery.failed"]
    assert line["severity"] == "WARNING"
    assert "watch.overdue" not in event_log.events


def test_a_claim_that_cannot_be_deleted_does_not_undo_the_finish(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.fetch.results = [pending(), succeeded()]
    harness.handlers.on_watch_message(pubsub_message({"operation": OPERATION, "watch_id": "w"}))

    def refuse(task_id: str) -> bool:
        raise exceptions.ServiceUnavailable("Cloud Tasks DeleteTask: 503")

    monkeypatch.setattr(harness.schedule, "delete", refuse)
    [task] = harness.schedule.tasks
    assert harness.handlers.on_check(checks.decode(task.body), retries=0) is Outcome.SUCCEEDED
    assert [m["outcome"] for m in harness.publish.received] == ["SUCCEEDED"]


def test_an_invalid_request_is_answered_on_the_results_topic_and_logged_as_such(
    harness: Harness, event_log: EventLog
) -> None:
    harness.handlers.on_watch_message(
        pubsub_message({"operation": "https://evil.example/x", "watch_id": "w-bad"}, "m-9")
    )
    [message] = harness.publish.messages
    assert message.topic == RESULTS
    assert message.to_json()["polls"] == 0, "nothing was looked at"
    [line] = [line for line in event_log.lines if line["event"] == "request.invalid"]
    assert (line["watch_id"], line["outcome"]) == ("w-bad", "INVALID_REQUEST")
    # The line says why, as the subscriber's notification does.
    assert f"invalid watch request: {line['reason']}" == message.to_json()["error"]["message"]
    assert line["reason"].startswith("operation: must be a relative resource name")


def test_an_invalid_request_whose_answer_cannot_be_published_is_delivered_again(
    harness: Harness, event_log: EventLog
) -> None:
    harness.publish.fail_with = exceptions.ServiceUnavailable("pubsub down")
    with pytest.raises(exceptions.ServiceUnavailable):
        harness.handlers.on_watch_message(pubsub_message({"operation": "nope", "watch_id": "w-x"}))
    [line] = event_log.lines
    assert line == {
        "severity": "ERROR",
        "watch_id": "w-x",
        "event": "delivery.failed",
        "action": "publish the notification",
        "error": "ServiceUnavailable: 503 pubsub down",
        "redelivered": True,
    }
