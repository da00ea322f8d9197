"""The ledger: what it records of a watch and when, and what finds watches through it.

The promises held here (README, "The ledger"): the queue stays the truth of a pending watch
and a watch never waits on the ledger (Firestore down: the watch ends in its notification all
the same); a chain's record names a step at most RECORD_EVERY behind the pending one, so the
fast path and a cancel find it without a ListTasks scan; once Firestore is back, the ledger
never shows a finished watch as pending.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from opwatch import checks, ledger
from opwatch.errors import FinishPending, LedgerUnavailable
from opwatch.handlers import Handlers
from opwatch.ledger import Record, State
from opwatch.logs import Event
from opwatch.ports import QueuedTask
from opwatch.settings import Settings
from opwatch.wire import rfc3339
from opwatch_local import watches
from tests.fakes import (
    OPERATION,
    OTHER_TOPIC,
    RESULTS,
    T0,
    Clock,
    EventLog,
    FakeFetch,
    FakeLedger,
    FakeQueue,
    Harness,
    RecordingPublish,
    http_error,
    load,
    make_harness,
    pending,
    pubsub_message,
    succeeded,
)

SCHEMA = json.loads(
    (Path(__file__).parents[2] / "functions/opwatch/schemas/watch-record.json").read_text()
)
INDEX = load("audit-cloudaicompanion-create-index-first.json")
INDEX_OPERATION = INDEX["protoPayload"]["response"]["name"]


# The documented values, written out (README): a chain is recorded "every 16th step", and a
# finish whose write failed is left to a record task "60 s later". Comparing with the ledger's
# RECORD_EVERY or the service's RECORD_DELAY let a wrong constant pass.
RECORD_EVERY = 16
RECORD_DELAY = 60


@pytest.fixture
def harness(settings: Settings, store: FakeLedger) -> Harness:
    return make_harness(settings, store)


def start(harness: Harness, watch_id: str = "w-1", message_id: str = "m-1", **extra: Any) -> None:
    request = {"operation": OPERATION, "watch_id": watch_id, **extra}
    harness.handlers.on_watch_message(pubsub_message(request, message_id))


def deliver(harness: Harness, count: int) -> None:
    """Run the next ``count`` checks, as Cloud Tasks would."""
    for _ in range(count):
        task = harness.schedule.tasks[0]
        harness.clock.now = max(harness.clock.now, task.when)
        harness.handlers.on_check(checks.decode(task.body), retries=0)
        harness.schedule.answered(task)


def test_a_watch_is_recorded_when_it_starts_and_when_it_finishes(
    harness: Harness, store: FakeLedger
) -> None:
    harness.fetch.results = [pending(), pending(), pending(), succeeded()]
    start(harness, labels={"team": "search"})
    started = store.record("w-1")
    assert (started.state, started.polls, started.seq, started.outcome) == (
        State.PENDING,
        1,
        1,
        None,
    )
    assert started.next_look == harness.schedule.tasks[0].when
    assert started.labels == {"team": "search"}

    harness.run_checks()

    [received] = harness.publish.received
    done = store.record("w-1")
    assert done.state is State.FINISHED
    assert (
        (done.outcome, done.polls) == (received["outcome"], received["polls"]) == ("SUCCEEDED", 4)
    )
    assert done.message_id == "1", "the id Pub/Sub gave the notification"
    assert done.started == started.started and done.finished == harness.clock.now
    assert done.next_look is None
    assert store.writes == 2, "a start and a finish; the looks between wrote nothing"


def test_the_pending_step_is_always_among_the_names_the_record_gives(
    harness: Harness, store: FakeLedger
) -> None:
    """However long the chain, a reader finds its pending step among probe_names (never a
    scan), while a look writes only one time in RECORD_EVERY."""
    looks = 3 * RECORD_EVERY + 2
    harness.fetch.results = [pending()] * looks + [succeeded()]
    start(harness)
    for _ in range(looks):
        [task] = harness.schedule.tasks
        names = [str(name) for name in ledger.probe_names(store.record("w-1"))]
        assert task.task_id in names
        deliver(harness, 1)
    assert harness.publish.received[0]["polls"] == looks + 1
    # The start, then a look every RECORD_EVERY steps, then the finish.
    assert store.writes == 1 + (looks + 1 - 1) // RECORD_EVERY + 1


def test_the_fast_path_finds_an_operations_chains_in_the_ledger_without_a_scan(
    harness: Harness, store: FakeLedger
) -> None:
    harness.fetch.results = [pending(INDEX_OPERATION)] * 11
    harness.handlers.on_audit_message(pubsub_message(INDEX, "m-1"))
    requested = {"operation": INDEX_OPERATION, "watch_id": "requested"}
    harness.handlers.on_watch_message(pubsub_message(requested, "m-2"))
    other = {"operation": INDEX_OPERATION + "x", "watch_id": "other"}
    harness.handlers.on_watch_message(pubsub_message(other, "m-3"))
    deliver(harness, 9)  # the records are now some steps behind the pending looks

    harness.fetch.results = [succeeded(INDEX_OPERATION)]
    end = json.loads(json.dumps(INDEX))
    del end["operation"]["first"]
    end["operation"]["last"] = True
    harness.handlers.on_audit_message(pubsub_message(end, "m-4"))

    assert harness.schedule.scans == 0, "no ListTasks"
    due_now = [t for t in harness.schedule.tasks if t.when == harness.clock.now]
    assert sorted(checks.decode(t.body).watch_id for t in due_now) == sorted(
        _watch_ids(store, INDEX_OPERATION)
    )
    assert len(due_now) == 2
    for task in due_now:
        harness.schedule.tasks.remove(task)
        harness.handlers.on_check(checks.decode(task.body), retries=0)
    assert sorted(n["watch_id"] for n in harness.publish.received) == sorted(
        _watch_ids(store, INDEX_OPERATION)
    )
    assert {r.state for r in store.records() if r.operation == INDEX_OPERATION} == {State.FINISHED}


def _watch_ids(store: FakeLedger, operation: str) -> list[str]:
    return [r.watch_id for r in store.records() if r.operation == operation]


def test_the_fast_path_leaves_the_watches_polling_when_the_ledger_does_not_answer(
    harness: Harness, store: FakeLedger, event_log: EventLog
) -> None:
    harness.fetch.results = [pending(INDEX_OPERATION)]
    harness.handlers.on_audit_message(pubsub_message(INDEX, "m-1"))
    [look] = harness.schedule.tasks
    store.fail_with = LedgerUnavailable("Firestore RunQuery: 503")
    end = json.loads(json.dumps(INDEX))
    del end["operation"]["first"]
    end["operation"]["last"] = True

    assert harness.handlers.on_audit_message(pubsub_message(end, "m-2")) is None

    assert harness.schedule.tasks == [look], "the pending look is left to run as planned"
    [line] = [line for line in event_log.lines if line["event"] == Event.AUDIT_LEDGER_UNAVAILABLE]
    assert line["error"] == "LedgerUnavailable: Firestore RunQuery: 503"
    assert harness.schedule.scans == 0


def test_a_cancel_finds_the_chain_in_the_ledger(harness: Harness, store: FakeLedger) -> None:
    harness.fetch.results = [pending()]
    start(harness)
    deliver(harness, 5)

    result = harness.handlers.registry.cancel("w-1", "not needed")
    harness.run_checks()

    assert harness.schedule.scans == 0
    assert len(result.cancelled) == 1
    [received] = harness.publish.received
    assert received["outcome"] == "CANCELLED"
    assert store.record("w-1").outcome == "CANCELLED"


def test_a_cancel_counts_the_chains_the_ledger_knows_finished(
    harness: Harness, store: FakeLedger
) -> None:
    harness.fetch.results = [succeeded()]
    start(harness)

    result = harness.handlers.registry.cancel("w-1", "late")

    assert (result.cancelled, result.already_finished) == ((), 1)
    assert harness.schedule.scans == 0


@pytest.mark.parametrize("ledger_fault", ["down", "astray"])
def test_a_cancel_scans_the_queue_when_the_ledger_cannot_account_for_a_chain(
    harness: Harness, store: FakeLedger, ledger_fault: str
) -> None:
    harness.fetch.results = [pending()]
    start(harness)
    deliver(harness, 3)
    if ledger_fault == "down":
        store.fail_with = LedgerUnavailable("Firestore RunQuery: deadline")
    else:  # a record naming steps the chain is not at: none of its names is on the queue
        [doc] = store.documents.values()
        doc["seq"] = 50

    result = harness.handlers.registry.cancel("w-1", "stop")

    assert harness.schedule.scans >= 1
    assert len(result.cancelled) == 1
    store.fail_with = None
    harness.run_checks()
    assert [n["outcome"] for n in harness.publish.received] == ["CANCELLED"]


def test_a_watch_never_waits_on_the_ledger_and_the_ledger_catches_up(
    harness: Harness, store: FakeLedger, event_log: EventLog
) -> None:
    """Firestore down for the whole watch: it ends in its notification as ever; its finish is
    left to a record task, which writes it once Firestore answers again."""
    store.fail_with = LedgerUnavailable("Firestore Commit: 503 unavailable")
    harness.fetch.results = [pending(), pending(), succeeded()]
    start(harness)
    deliver(harness, 2)
    [received] = harness.publish.received
    assert received["outcome"] == "SUCCEEDED"
    [record_task] = harness.schedule.tasks
    assert checks.decode(record_task.body).step is checks.Step.RECORD
    assert record_task.when == harness.clock.now + timedelta(seconds=RECORD_DELAY)
    assert store.documents == {}
    write_failed = [line for line in event_log.lines if line["event"] == Event.LEDGER_WRITE_FAILED]
    assert {(line["document"], line["error"]) for line in write_failed} == {
        ("watch record", "LedgerUnavailable: Firestore Commit: 503 unavailable"),
        ("kind summary", "LedgerUnavailable: Firestore Commit: 503 unavailable"),
    }
    [behind] = [line for line in event_log.lines if line["event"] == Event.LEDGER_BEHIND]
    assert (behind["severity"], behind["record_task"]) == ("WARNING", True)
    assert behind["record"]["outcome"] == "SUCCEEDED"

    # Still down when the record task runs: it fails, so Cloud Tasks tries it again later.
    harness.clock.now = record_task.when
    with pytest.raises(LedgerUnavailable):
        harness.handlers.on_check(checks.decode(record_task.body), retries=0)

    store.fail_with = None
    harness.handlers.on_check(checks.decode(record_task.body), retries=1)
    done = store.record("w-1")
    assert (done.state, done.outcome, done.polls) == (State.FINISHED, "SUCCEEDED", 3)
    assert done.message_id == "1"
    assert len(harness.publish.received) == 1, "catching up publishes nothing"


def test_a_record_task_on_its_last_attempt_logs_the_finish(
    settings: Settings, store: FakeLedger, event_log: EventLog
) -> None:
    clock, queue, publish = Clock(), FakeQueue(), RecordingPublish()
    fetch = FakeFetch(results=[succeeded()])
    limited = replace(settings, tasks=replace(settings.tasks, max_attempts=3))
    handlers = Handlers(limited, fetch=fetch, queue=queue, publish=publish, clock=clock)
    body = {"operation": OPERATION, "watch_id": "w-1"}
    store.fail_with = LedgerUnavailable("down")
    handlers = replace(handlers, ledger=store)
    handlers.on_watch_message(pubsub_message(body, "m-1"))
    [task] = queue.tasks

    assert handlers.on_check(checks.decode(task.body), retries=2) is None

    [line] = [
        line for line in event_log.lines if line.get("record") and line["severity"] == "ERROR"
    ]
    assert line["record"]["outcome"] == "SUCCEEDED"
    assert line["record_task"] is False, "the queue gives up on it: only this line holds it"


def test_a_late_pending_write_never_makes_a_finished_watch_pending(store: FakeLedger) -> None:
    pending_record = Record("w", OPERATION, "a.googleapis.com", "c1", T0, 3, 3, T0)
    finished = pending_record.finish("SUCCEEDED", T0 + timedelta(minutes=5), 9, "m")
    store.put(finished)
    store.put(replace(pending_record, updated=T0 + timedelta(minutes=6)))

    assert store.record("w").state is State.FINISHED
    assert store.pending_of_operation(pending_record.operation_key) == []


def test_a_body_older_than_the_ledger_records_at_its_next_look(
    harness: Harness, store: FakeLedger
) -> None:
    harness.fetch.results = [pending()]
    start(harness)
    [task] = harness.schedule.tasks
    old = json.loads(task.body)
    del old["recorded"]
    store.documents.clear()
    harness.schedule.tasks = [replace(task, body=json.dumps(old).encode())]

    deliver(harness, 1)

    assert store.record("w-1").seq == 2


def test_records_match_their_schema_and_read_back(store: FakeLedger) -> None:
    record = Record(
        "w",
        OPERATION,
        "a.googleapis.com",
        "c1",
        T0,
        3,
        3,
        T0,
        labels={"team": "x"},
        results_topic="projects/p/topics/t",
        next_look=T0 + timedelta(seconds=30),
    )
    for each in (record, record.finish("FAILED", T0 + timedelta(hours=1), 9, "123")):
        jsonschema.validate(each.to_json(), SCHEMA)
        store.put(each)
        assert store.record("w") == each
    assert ledger.to_document(record, retention=timedelta(days=1))["expire_at"] > T0


def test_a_document_opwatch_did_not_write_is_refused() -> None:
    with pytest.raises(ValueError, match="not a ledger document"):
        ledger.from_document({"watch_id": "w"})
    with pytest.raises(ValueError, match="not a ledger document"):
        ledger.from_document(
            {
                "watch_id": "w",
                "operation": "o",
                "api": "a",
                "chain": "c",
                "started": "yesterday",
                "polls": 1,
                "seq": 1,
                "updated": T0,
            }
        )


def test_the_step_to_record_comes_every_record_every_steps() -> None:
    assert ledger.due(0, 5), "never recorded: record now"
    assert not ledger.due(1, RECORD_EVERY)
    assert ledger.due(1, RECORD_EVERY + 1)
    names = ledger.probe_names(Record("w", OPERATION, "a.b", "c1", T0, 1, 4, T0))
    assert [n.seq for n in names] == list(range(4 + RECORD_EVERY, 3, -1))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"recorded": 99}, "recorded"),
        ({"recorded": -1}, "recorded"),
        ({"finish": {"outcome": "SUCCEEDED", "finished": "2026-01-01T00:00:00Z"}}, "finish"),
    ],
)
def test_a_body_with_a_bad_record_field_is_refused(
    harness: Harness, change: dict[str, Any], field: str
) -> None:
    harness.fetch.results = [pending()]
    start(harness)
    body = {**json.loads(harness.schedule.tasks[0].body), **change}
    with pytest.raises(checks.InvalidCheckBody) as raised:
        checks.decode(json.dumps(body).encode())
    assert raised.value.violations[0].field == field


FINISH = {"outcome": "SUCCEEDED", "finished": "2026-01-01T00:00:00Z", "message_id": "7"}


@pytest.mark.parametrize(
    "finish",
    [
        None,
        {**FINISH, "outcome": ""},
        {**FINISH, "outcome": 3},
        {**FINISH, "finished": "yesterday"},
        {**FINISH, "message_id": 7},
        {**FINISH, "extra": 1},
    ],
)
def test_a_record_step_needs_its_finish(harness: Harness, finish: Any) -> None:
    harness.fetch.results = [pending()]
    start(harness)
    body = json.loads(harness.schedule.tasks[0].body)
    body["step"] = {"kind": "record", "reason": ""}
    if finish is not None:
        body["finish"] = finish
    with pytest.raises(checks.InvalidCheckBody) as raised:
        checks.decode(json.dumps(body).encode())
    assert raised.value.violations[0].field == "finish"
    body["finish"] = {**FINISH, "message_id": None}
    assert checks.decode(json.dumps(body).encode()).finish == checks.Finish(
        "SUCCEEDED", datetime(2026, 1, 1, tzinfo=UTC), None
    )


def test_a_record_task_without_a_ledger_configured_does_nothing(
    settings: Settings, store: FakeLedger
) -> None:
    """The ledger was switched off after the task was written: nothing to catch up."""
    queue, publish = FakeQueue(), RecordingPublish()
    store.fail_with = LedgerUnavailable("down")
    handlers = Handlers(
        settings, fetch=FakeFetch([succeeded()]), queue=queue, publish=publish, ledger=store
    )
    handlers.on_watch_message(pubsub_message({"operation": OPERATION, "watch_id": "w"}, "m"))
    [task] = queue.tasks
    without = replace(handlers, ledger=None)
    assert without.on_check(checks.decode(task.body), retries=0) is None
    assert store.documents == {} and len(publish.messages) == 1


def test_a_finish_neither_ledger_nor_queue_takes_is_logged_whole(
    settings: Settings, store: FakeLedger, event_log: EventLog
) -> None:
    queue = FakeQueue()
    store.fail_with = LedgerUnavailable("down")
    handlers = Handlers(
        settings,
        fetch=FakeFetch([succeeded()]),
        queue=queue,
        publish=RecordingPublish(),
        ledger=store,
    )
    queue.fail_with = RuntimeError("cloud tasks down too")
    handlers.on_watch_message(pubsub_message({"operation": OPERATION, "watch_id": "w"}, "m"))
    [line] = [line for line in event_log.lines if line["event"] == Event.LEDGER_BEHIND]
    assert line["record_task"] is False
    assert (line["record"]["watch_id"], line["record"]["outcome"]) == ("w", "SUCCEEDED")


def test_a_cancel_of_a_watch_the_ledger_never_heard_of_scans_the_queue(
    harness: Harness, store: FakeLedger
) -> None:
    store.fail_with = LedgerUnavailable("down at the start")
    harness.fetch.results = [pending()]
    start(harness)
    store.fail_with = None

    result = harness.handlers.registry.cancel("w-1", "x")

    assert harness.schedule.scans == 1 and len(result.cancelled) == 1


# --- what operators see: opwatch list and status over the ledger --------------------------------


def test_list_pages_through_the_ledger_newest_first(harness: Harness, store: FakeLedger) -> None:
    harness.fetch.results = [pending()]
    for n in range(5):
        start(harness, f"w-{n}", f"m-{n}", labels={"n": str(n)})
        harness.clock.advance(1)
    harness.fetch.results = [succeeded()]
    start(harness, "done", "m-done")
    now = harness.clock.now

    first, token = watches.recorded_rows(
        store, State.PENDING, None, watches.Filters(), now, limit=3
    )
    rest, end = watches.recorded_rows(
        store, State.PENDING, None, watches.Filters(), now, limit=3, after=token
    )

    assert [row["watch_id"] for row in first + rest] == ["w-4", "w-3", "w-2", "w-1", "w-0"]
    assert token is not None and end is None
    for row in first + rest:
        jsonschema.validate({k: v for k, v in row.items() if k != "overdue"}, SCHEMA)
        assert row["state"] == "PENDING" and row["overdue"] is False
    finished, _ = watches.recorded_rows(
        store, State.FINISHED, None, watches.Filters(), now, limit=9
    )
    assert [(row["watch_id"], row["outcome"]) for row in finished] == [("done", "SUCCEEDED")]
    labelled, _ = watches.recorded_rows(
        store, None, None, watches.Filters(labels={"n": "2"}), now, limit=9
    )
    assert [row["watch_id"] for row in labelled] == ["w-2"]
    recent, _ = watches.recorded_rows(
        store, None, now - timedelta(seconds=1.5), watches.Filters(), now, limit=9
    )
    assert {row["watch_id"] for row in recent} == {"w-4", "done"}
    assert "w-4" in watches.record_table(first)


def test_status_shows_the_pending_step_as_the_queue_holds_it_now(
    harness: Harness, store: FakeLedger
) -> None:
    harness.fetch.results = [pending()]
    start(harness)
    deliver(harness, 3)  # the record still names step 1; the queue holds step 4
    [task] = harness.schedule.tasks

    [row] = watches.recorded_status(harness.handlers.registry, "w-1", harness.clock.now)

    assert row["state"] == "PENDING"
    assert row["pending_step"]["task"] == task.task_id
    assert row["pending_step"]["next_check"] == rfc3339(task.when)
    assert row["polls"] == 4, "the live count, not the recorded one"
    assert harness.schedule.scans == 0
    assert rfc3339(task.when) in watches.record_table([row])


def test_status_of_a_finished_watch_and_of_a_record_the_queue_does_not_back(
    harness: Harness, store: FakeLedger
) -> None:
    harness.fetch.results = [pending()]
    start(harness, "lost", "m-1")
    harness.schedule.tasks.clear()  # as if its step were lost: the record says pending
    harness.fetch.results = [succeeded()]
    start(harness, "done", "m-2")
    registry, now = harness.handlers.registry, harness.clock.now

    [done] = watches.recorded_status(registry, "done", now)
    [lost] = watches.recorded_status(registry, "lost", now)

    assert (done["state"], done["outcome"], done["finished"]) == (
        "FINISHED",
        "SUCCEEDED",
        rfc3339(now),
    )
    assert "pending_step" not in done
    assert lost["pending_step"] is None
    assert "not on the queue where recorded" in watches.record_table([lost])


def test_a_record_long_unwritten_is_overdue() -> None:
    record = Record("w", OPERATION, "a.b", "c1", T0, 1, 1, T0, next_look=T0)
    late = T0 + ledger.RECORD_EVERY * ledger.LONGEST_STEP
    assert not record.overdue(late)
    assert record.overdue(late + timedelta(seconds=1))
    assert not record.finish("SUCCEEDED", T0, 1, None).overdue(late + timedelta(days=9))
    assert watches.record_row(record, late + timedelta(seconds=1))["overdue"] is True
    assert "(overdue)" in watches.record_table(
        [watches.record_row(record, late + timedelta(days=1))]
    )


def pending_then_disallowed(harness: Harness, settings: Settings) -> tuple[Handlers, QueuedTask]:
    """A pending spanner watch and its check task, and the handlers after ALLOWED_APIS dropped
    spanner (the allowlists changed under it)."""
    harness.fetch.results = [pending()]
    start(harness, api="spanner.googleapis.com")
    [task] = harness.schedule.tasks
    apis = frozenset({"cloudaicompanion.googleapis.com"})
    narrowed = replace(settings, allowlists=replace(settings.allowlists, apis=apis))
    return replace(harness.handlers, settings=narrowed), task


def test_a_watch_refused_at_a_check_is_recorded_finished(
    harness: Harness, store: FakeLedger, settings: Settings
) -> None:
    """The allowlists changed under a pending watch: its INVALID_REQUEST is its finish."""
    handlers, task = pending_then_disallowed(harness, settings)

    assert handlers.on_check(checks.decode(task.body), retries=0).value == "INVALID_REQUEST"

    record = store.record("w-1")
    assert (record.state, record.outcome) == (State.FINISHED, "INVALID_REQUEST")


class _Crash(BaseException):
    """The function's process dying mid-check (a SIGKILL): nothing of opwatch catches it."""


def test_a_retry_that_meets_its_own_claim_fails_until_a_look_finishes_the_watch(
    harness: Harness, store: FakeLedger
) -> None:
    """A look saw the end, claimed the next step and could not publish (Pub/Sub down); Cloud
    Tasks retries it, and this time the GET fails. That retry must not take the claim for a
    duplicate delivery and end the chain (the watch would be lost, and shown pending): it fails,
    so the task is tried again, until a look finishes the watch."""
    harness.fetch.results = [pending()]
    start(harness)
    [task] = harness.schedule.tasks
    state = checks.decode(task.body)
    harness.fetch.results = [succeeded()]
    harness.publish.fail_with = RuntimeError("Pub/Sub is down")
    with pytest.raises(RuntimeError):
        harness.handlers.on_check(state, retries=0)

    harness.publish.fail_with = None
    harness.fetch.results = [http_error(503, 14, "unavailable")]
    with pytest.raises(FinishPending):
        harness.handlers.on_check(state, retries=1)
    assert harness.publish.received == []

    harness.fetch.results = [succeeded()]
    assert harness.handlers.on_check(state, retries=2).value == "SUCCEEDED"
    assert [m["outcome"] for m in harness.publish.received] == ["SUCCEEDED"]
    assert store.record("w-1").state is State.FINISHED


def test_a_look_killed_after_publishing_keeps_its_claim_until_its_finish_is_recorded(
    harness: Harness, store: FakeLedger
) -> None:
    """The process died between the publish and the ledger's write: the claim is still there, so
    the retry knows its watch ended (even when its own GET fails) and records the finish, at the
    price of a second notification (delivery is at least once)."""
    harness.fetch.results = [pending()]
    start(harness)
    [task] = harness.schedule.tasks
    state = checks.decode(task.body)
    claim = checks.successor(state, harness.clock.now, checks.Step.FINISHED).task_id
    harness.fetch.results = [succeeded()]
    store.fail_with = _Crash()
    with pytest.raises(_Crash):
        harness.handlers.on_check(state, retries=0)
    assert len(harness.publish.received) == 1
    assert claim in [t.task_id for t in harness.schedule.tasks], "not deleted before the record"

    store.fail_with = None
    harness.fetch.results = [http_error(503, 14, "unavailable")]
    with pytest.raises(FinishPending):
        harness.handlers.on_check(state, retries=1)
    assert store.record("w-1").state is State.PENDING

    harness.fetch.results = [succeeded()]
    harness.handlers.on_check(state, retries=2)
    assert [m["outcome"] for m in harness.publish.received] == ["SUCCEEDED", "SUCCEEDED"]
    assert store.record("w-1").outcome == "SUCCEEDED"
    assert claim not in [t.task_id for t in harness.schedule.tasks]


# --- what the ledger ends up saying when Firestore missed a write ---------------------------------


def twin(settings: Settings) -> tuple[Harness, FakeLedger]:
    other = FakeLedger()
    return make_harness(settings, other), other


@pytest.mark.parametrize(
    ("looks", "finish_seq", "record_task_seq", "recorded"),
    [(0, 1, 2, 0), (3, 3, 5, 1)],
)
def test_a_finish_left_to_a_record_task_lands_as_the_ledger_would_have_taken_it(
    harness: Harness,
    store: FakeLedger,
    settings: Settings,
    looks: int,
    finish_seq: int,
    record_task_seq: int,
    recorded: int,
) -> None:
    """Firestore missed the finish of a watch that ended after ``looks`` looks: the record task
    (named after the claim on the next step, so a step of its own) writes the very record a
    ledger that answered would hold."""
    healthy, healthy_store = twin(settings)
    extra = {"labels": {"team": "search"}, "notify_topic": OTHER_TOPIC}
    for each in (harness, healthy):
        each.fetch.results = [pending()] * looks + [succeeded()]
    if looks == 0:
        store.fail_with = LedgerUnavailable("down")
    start(harness, **extra)
    start(healthy, **extra)
    deliver(harness, max(looks - 1, 0))
    deliver(healthy, looks)
    store.fail_with = LedgerUnavailable("down")
    if looks:
        deliver(harness, 1)

    [record_task] = harness.schedule.tasks
    body = checks.decode(record_task.body)
    assert body.step is checks.Step.RECORD
    assert record_task.task_id.endswith(f"-{record_task_seq}")
    assert body.recorded == recorded, "the step the ledger last took"
    store.fail_with = None
    harness.clock.now = record_task.when
    harness.handlers.on_check(body, retries=0)

    caught_up, expected = store.record("w-1"), healthy_store.record("w-1")
    assert caught_up.seq == finish_seq
    assert (caught_up.labels, caught_up.results_topic) == ({"team": "search"}, OTHER_TOPIC)
    assert replace(caught_up, updated=T0, finished=T0) == replace(expected, updated=T0, finished=T0)


def test_a_record_names_the_results_topic_its_notification_goes_to(
    harness: Harness, store: FakeLedger
) -> None:
    harness.fetch.results = [pending()]
    start(harness, "own", "m-1", notify_topic=OTHER_TOPIC)
    start(harness, "default", "m-2")
    assert store.record("own").results_topic == OTHER_TOPIC
    assert store.record("default").results_topic == RESULTS


def test_a_record_firestore_did_not_take_is_written_at_the_next_look(
    harness: Harness, store: FakeLedger, event_log: EventLog
) -> None:
    store.fail_with = LedgerUnavailable("Firestore Commit: 503")
    harness.fetch.results = [pending()]
    start(harness)
    assert store.documents == {}
    assert [e for e in event_log.events if e.startswith("ledger.")] == [
        "ledger.read_failed",  # what was learned of its kind
        "ledger.write_failed",  # its record
    ]

    store.fail_with = None
    deliver(harness, 1)

    assert (store.record("w-1").seq, store.writes) == (2, 1)


def test_a_refused_watch_whose_record_fails_is_logged_under_its_watch_id(
    harness: Harness, store: FakeLedger, settings: Settings, event_log: EventLog
) -> None:
    handlers, task = pending_then_disallowed(harness, settings)
    store.fail_with = LedgerUnavailable("down")

    handlers.on_check(checks.decode(task.body), retries=0)

    [line] = [line for line in event_log.lines if line["event"] == "ledger.write_failed"]
    assert line["watch_id"] == "w-1"


def test_the_last_attempt_of_a_record_task_logs_the_watch_it_holds(
    harness: Harness, store: FakeLedger, settings: Settings, event_log: EventLog
) -> None:
    store.fail_with = LedgerUnavailable("down")
    harness.fetch.results = [succeeded()]
    start(harness)
    [record_task] = harness.schedule.tasks
    limited = replace(settings, tasks=replace(settings.tasks, max_attempts=3))
    handlers = replace(harness.handlers, settings=limited)

    assert handlers.on_check(checks.decode(record_task.body), retries=2) is None

    [line] = [line for line in event_log.lines if line["severity"] == "ERROR"]
    assert (line["event"], line["watch_id"], line["operation"]) == (
        "ledger.behind",
        "w-1",
        OPERATION,
    )
