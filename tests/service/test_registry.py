"""The queue as the registry: list, cancel and bring forward the watches in flight, no store.

Cloud Tasks refuses a second task of a name (ALREADY_EXISTS), even after the first ran or was
deleted (CreateTask reference,
https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues.tasks/create):
each step of a watch has one name, so whoever takes it first decides. The harness's queue
keeps every name for ever, like the real one within its reservation window.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from google.api_core import exceptions

from opwatch import checks, registry
from opwatch.checks import Step
from opwatch.contracts import CancelRequest, WatchRequest
from opwatch.core import FetchResult, Progress
from opwatch.errors import QuotaExhausted
from opwatch.handlers import Handlers
from opwatch.ports import QueuedTask
from opwatch.registry import Registry
from opwatch.settings import Settings
from tests.fakes import (
    OPERATION,
    T0,
    Clock,
    EventLog,
    FakeFetch,
    FakeLedger,
    FakeQueue,
    Harness,
    RecordingPublish,
    make_harness,
    pending,
    pubsub_message,
    succeeded,
)


def start(harness: Harness, watch_id: str = "w-1", message_id: str = "m-1", **extra: Any) -> None:
    request = {"operation": OPERATION, "watch_id": watch_id, **extra}
    harness.handlers.on_watch_message(pubsub_message(request, message_id))


def outcomes(harness: Harness) -> list[tuple[str, str]]:
    return [(n["watch_id"], n["outcome"]) for n in harness.publish.received]


def registry_of(harness: Harness) -> Registry:
    return Registry(harness.schedule, harness.clock)


def test_a_pending_watch_is_listed_with_its_state(harness: Harness) -> None:
    harness.fetch.results = [pending()]
    start(harness, "w-1", "m-1", labels={"team": "search"})
    start(harness, "w-2", "m-2")
    [found] = registry_of(harness).pending(watch_id="w-1")
    assert found.state is not None
    assert found.state.request["labels"] == {"team": "search"}
    assert (found.state.progress.polls, found.step) == (1, Step.LOOK)
    by_operation = registry_of(harness).pending(
        operation_key=checks.operation_key("cloudaicompanion.googleapis.com", OPERATION)
    )
    assert {check.state.watch_id for check in by_operation if check.state} == {"w-1", "w-2"}


def test_a_body_that_cannot_be_read_is_listed_not_fatal(harness: Harness) -> None:
    harness.fetch.results = [pending()]
    start(harness)
    [task] = harness.schedule.tasks
    harness.schedule.tasks[0] = checks.CheckTask(task.task_id, b"{garbage", task.when)
    foreign = QueuedTask("not-an-opwatch-task", b"")
    [found] = registry.select([*harness.schedule.list_tasks(), foreign])
    assert found.state is None and "not JSON" in found.problem


def test_cancel_stops_the_watch_and_publishes_cancelled_once(harness: Harness) -> None:
    harness.fetch.results = [pending()]
    start(harness)
    result = harness.handlers.cancel(CancelRequest("w-1", "not needed any more"))
    assert result.found and len(result.cancelled) == 1
    gets = len(harness.fetch.calls)
    harness.run_checks()
    assert outcomes(harness) == [("w-1", "CANCELLED")]
    assert len(harness.fetch.calls) == gets, "no look after the cancel"
    [note] = harness.publish.received
    assert note["error"]["code"] == 1
    assert note["error"]["message"] == "the watch was cancelled: not needed any more"
    assert note["polls"] == 1
    assert harness.publish.messages[0].attributes["outcome"] == "CANCELLED"


def test_a_cancel_while_a_check_is_running_wins_over_its_next_look(harness: Harness) -> None:
    def cancel_meanwhile() -> FetchResult:
        harness.handlers.cancel(CancelRequest("w-1"))
        return pending()

    harness.fetch.results = [pending(), cancel_meanwhile, pending()]
    start(harness)
    harness.run_checks()
    assert outcomes(harness) == [("w-1", "CANCELLED")]
    assert len(harness.fetch.calls) == 2, "the running check made its one GET, then none"
    # The queue says it, not a log line: the first look and the cancel's step were created; the
    # running check's next look met the cancel's name and was refused.
    assert len(harness.schedule.created) == 2
    assert harness.schedule.tasks == []


def test_a_cancel_while_a_check_sees_the_end_still_ends_the_watch_cancelled(
    harness: Harness,
) -> None:
    def cancel_meanwhile() -> FetchResult:
        harness.handlers.cancel(CancelRequest("w-1"))
        return succeeded()

    harness.fetch.results = [pending(), cancel_meanwhile]
    start(harness)
    harness.run_checks()
    assert outcomes(harness) == [("w-1", "CANCELLED")], "exactly one notification"
    # The queue says the check that saw the end was superseded, not a check.superseded line:
    # its claim on the next step met the cancel's task of that name.
    _, cancel_step = harness.schedule.created
    assert harness.schedule.refused == [cancel_step]
    assert len(harness.fetch.calls) == 2 and harness.schedule.tasks == []


def test_a_finished_watch_has_nothing_to_cancel(harness: Harness) -> None:
    harness.fetch.results = [pending(), succeeded()]
    start(harness)
    harness.run_checks()
    result = harness.handlers.cancel(CancelRequest("w-1"))
    assert not result.found
    harness.run_checks()
    assert outcomes(harness) == [("w-1", "SUCCEEDED")]


def test_a_finishing_check_delivered_again_after_a_failed_publish_still_publishes(
    harness: Harness,
) -> None:
    harness.fetch.results = [pending(), succeeded()]
    start(harness)
    [task] = harness.schedule.tasks
    harness.publish.fail_with = exceptions.ServiceUnavailable("pubsub down")
    state = checks.decode(task.body)
    with pytest.raises(exceptions.ServiceUnavailable):
        harness.handlers.on_check(state)
    # Meanwhile a cancel finds the watch finishing: its step is held by the claim.
    assert harness.handlers.cancel(CancelRequest("w-1")).already_finished == 1
    harness.publish.fail_with = None
    harness.handlers.on_check(state)  # Cloud Tasks retries the same task
    harness.schedule.tasks.remove(task)  # answered 2xx: Cloud Tasks deletes it
    assert outcomes(harness) == [("w-1", "SUCCEEDED")]
    assert registry_of(harness).pending(watch_id="w-1") == []


def test_every_chain_of_a_reused_watch_id_is_cancelled(harness: Harness) -> None:
    harness.fetch.results = [pending()]
    start(harness, "nightly", "m-1")
    start(harness, "nightly", "m-2")
    result = harness.handlers.cancel(CancelRequest("nightly"))
    assert len(result.cancelled) == 2
    harness.run_checks()
    assert outcomes(harness) == [("nightly", "CANCELLED")] * 2


def test_a_cancel_request_on_the_watch_topic_cancels(harness: Harness) -> None:
    harness.fetch.results = [pending()]
    start(harness)
    message = pubsub_message({"cancel": "w-1", "reason": "by hand"}, "m-9")
    assert harness.handlers.on_watch_message(message) is None
    harness.run_checks()
    assert outcomes(harness) == [("w-1", "CANCELLED")]
    # The queue says what the cancel did: the pending look deleted, the cancel's step created
    # and run, and no GET of the operation after the cancel.
    first, _ = harness.schedule.created
    assert harness.schedule.deleted == [first]
    assert len(harness.fetch.calls) == 1 and harness.schedule.tasks == []


def test_a_malformed_cancel_request_is_answered_invalid(harness: Harness) -> None:
    message = pubsub_message({"cancel": "w 1", "reason": 5, "extra": True}, "m-9")
    harness.handlers.on_watch_message(message)
    [note] = harness.publish.received
    assert (note["watch_id"], note["outcome"]) == ("m-9", "INVALID_REQUEST")
    fields = {v["field"] for v in note["error"]["details"][0]["fieldViolations"]}
    assert fields == {"cancel", "reason", "extra"}


def test_cancel_scans_again_when_a_check_took_the_next_step_meanwhile(harness: Harness) -> None:
    harness.fetch.results = [pending()]
    start(harness)
    [first] = harness.schedule.tasks
    real_list = harness.schedule.list_tasks
    stale = real_list()

    def list_once_stale() -> list[QueuedTask]:
        # The scan saw step 1; meanwhile step 1 ran and created step 2.
        if stale:
            listed = list(stale)
            stale.clear()
            harness.clock.advance(10)
            harness.handlers.on_check(checks.decode(first.body))
            harness.schedule.tasks.remove(first)
            return listed
        return real_list()

    harness.schedule.list_tasks = list_once_stale  # type: ignore[method-assign]
    result = registry_of(harness).cancel("w-1", "")
    assert [name.seq for name in result.cancelled] == [3]
    harness.run_checks()
    assert outcomes(harness) == [("w-1", "CANCELLED")]


KEY = checks.operation_key("cloudaicompanion.googleapis.com", OPERATION)


def test_advance_brings_every_pending_look_of_an_operation_forward(harness: Harness) -> None:
    """The fast path takes each chain's next step with a look due now, as a cancel takes it,
    and drops the pending look: a CreateTask and a DeleteTask, never RunTask, whose quota is
    60 a minute "meant for manual debugging" (https://cloud.google.com/tasks/docs/quotas)."""
    harness.fetch.results = [pending()]
    start(harness, "w-1", "m-1")
    start(harness, "w-2", "m-2")
    harness.clock.advance(1)
    before = {task.task_id: task for task in harness.schedule.tasks}
    assert all(task.when > harness.clock.now for task in before.values())

    assert registry_of(harness).advance(KEY) == registry.Advanced(advanced=2)

    assert sorted(harness.schedule.deleted) == sorted(before)
    brought = harness.schedule.tasks
    assert [task.when for task in brought] == [harness.clock.now] * 2
    for task in brought:
        state = checks.decode(task.body)
        assert (state.step, state.seq, state.progress.polls) == (Step.LOOK, 2, 1)
    harness.fetch.results, harness.fetch.calls = [succeeded()], []
    harness.run_checks()
    assert sorted(outcomes(harness)) == [("w-1", "SUCCEEDED"), ("w-2", "SUCCEEDED")]
    # One look each, and the subscriber hears of one, not two: taking a step is no look.
    assert len(harness.fetch.calls) == 2
    assert {n["polls"] for n in harness.publish.received} == {2}


def test_advance_leaves_a_look_in_flight_alone(harness: Harness) -> None:
    """A look already dispatched and not answered yet will see the end itself."""
    harness.fetch.results = [pending()]
    start(harness)
    [look] = harness.schedule.tasks
    harness.schedule.in_flight.add(look.task_id)
    assert registry_of(harness).advance(KEY) == registry.Advanced(in_flight=1)
    assert harness.schedule.tasks == [look] and harness.schedule.deleted == []


def test_two_advances_of_one_look_bring_it_forward_once(harness: Harness) -> None:
    """A duplicated end entry (sinks deliver at least once) scans twice, back to back, and both
    scans see the same pending look: the second meets the name the first took."""
    harness.fetch.results = [pending()]
    start(harness)
    stale = harness.schedule.list_tasks()
    first = registry_of(harness).advance(KEY)
    harness.schedule.list_tasks = lambda: stale  # type: ignore[method-assign]
    second = registry_of(harness).advance(KEY)
    assert (first, second) == (registry.Advanced(advanced=1), registry.Advanced(taken=1))
    assert len(harness.schedule.tasks) == 1


def test_advance_leaves_finished_and_cancelled_chains_alone(harness: Harness) -> None:
    harness.fetch.results = [pending()]
    start(harness, "w-1", "m-1")
    start(harness, "w-2", "m-2")
    harness.handlers.cancel(CancelRequest("w-2"))
    claim = checks.successor(
        checks.decode(harness.schedule.tasks[0].body), harness.clock.now, Step.FINISHED
    )
    harness.schedule.create(claim)
    harness.schedule.tasks.append(checks.CheckTask("not-opwatch", b"", harness.clock.now))
    created = list(harness.schedule.created)
    assert registry_of(harness).advance(KEY) == registry.Advanced()
    assert harness.schedule.created == created


def test_a_finished_claim_does_nothing_when_it_runs(harness: Harness) -> None:
    harness.fetch.results = [pending(), succeeded()]
    start(harness)
    [task] = harness.schedule.tasks
    claim = checks.successor(checks.decode(task.body), harness.clock.now, Step.FINISHED)
    gets = len(harness.fetch.calls)
    assert harness.handlers.on_check(checks.decode(claim.body)) is None
    assert (len(harness.fetch.calls), harness.publish.messages) == (gets, [])


def test_pages_follow_the_token_to_the_end() -> None:
    book = {"": ([QueuedTask("a", b"")], "t1"), "t1": ([QueuedTask("b", b"")], "")}
    assert [task.task_id for task in registry.pages(lambda token: book[token])] == ["a", "b"]


def test_cancel_and_claim_bodies_round_trip_and_are_refused_when_tampered() -> None:
    request = {"operation": OPERATION, "watch_id": "w", "api": "cloudaicompanion.googleapis.com"}
    base = checks.encode(
        checks.WatchRequest(operation=OPERATION, watch_id="w"),
        checks.Progress(started=harness_time(), polls=2),
        harness_time(),
        "c0",
        step=Step.CANCEL,
        reason="because",
    )
    state = checks.decode(base.body)
    assert (state.step, state.reason) == (Step.CANCEL, "because")
    assert state.request["watch_id"] == request["watch_id"]
    body = json.loads(base.body)
    for bad in ({"kind": "explode", "reason": ""}, {"kind": "cancel"}, "cancel", None):
        body["step"] = bad
        try:
            checks.decode(json.dumps(body).encode())
        except checks.InvalidCheckBody:
            continue
        raise AssertionError(f"accepted step {bad!r}")


def harness_time() -> Any:
    from tests.fakes import T0

    return T0 + timedelta(seconds=1)


def test_cancelling_twice_or_an_unreadable_task_changes_nothing(harness: Harness) -> None:
    harness.fetch.results = [pending()]
    start(harness)
    assert len(harness.handlers.cancel(CancelRequest("w-1")).cancelled) == 1
    again = harness.handlers.cancel(CancelRequest("w-1"))
    assert again.cancelled == () and not again.found
    [task] = harness.schedule.tasks
    harness.schedule.tasks[0] = checks.CheckTask(task.task_id, b"{garbage", task.when)
    assert not harness.handlers.cancel(CancelRequest("w-1")).found
    [listed] = registry_of(harness).pending(watch_id="w-1")
    assert listed.step is None


def test_a_body_naming_another_watch_than_its_task_name_is_not_that_watch(
    harness: Harness,
) -> None:
    harness.fetch.results = [pending()]
    start(harness, "w-2")
    [task] = harness.schedule.tasks
    forged = task.task_id.replace(checks.watch_key("w-2"), checks.watch_key("w-1"))
    harness.schedule.tasks.append(checks.CheckTask(forged, task.body, task.when))
    assert registry_of(harness).pending(watch_id="w-1") == []
    other = checks.operation_key("cloudaicompanion.googleapis.com", OPERATION + "x")
    assert registry_of(harness).pending(operation_key=other) == []


def test_the_furthest_step_of_a_chain_decides(harness: Harness) -> None:
    harness.fetch.results = [pending()]
    start(harness)
    [first] = harness.schedule.tasks
    harness.clock.advance(10)
    harness.handlers.on_check(checks.decode(first.body))  # step 2 created; step 1 still listed
    earlier, later = registry.select(harness.schedule.list_tasks(), watch_id="w-1")
    [latest] = registry.latest_by_chain([later, earlier]).values()
    assert latest.name.seq == 2


def test_a_cancel_that_keeps_losing_the_race_gives_up_after_a_few_scans(
    harness: Harness,
) -> None:
    harness.fetch.results = [pending()]
    start(harness)
    scans = []
    real_list = harness.schedule.list_tasks

    def counting() -> list[QueuedTask]:
        scans.append(1)
        return real_list()

    harness.schedule.list_tasks = counting  # type: ignore[method-assign]
    harness.schedule.create = lambda task: False  # type: ignore[method-assign]
    result = registry_of(harness).cancel("w-1", "")
    assert result.cancelled == () and len(scans) == registry.MAX_CANCEL_ROUNDS


def test_advance_stops_at_a_quota_and_leaves_the_rest_polling(harness: Harness) -> None:
    harness.fetch.results = [pending()]
    start(harness, "w-1", "m-1")
    start(harness, "w-2", "m-2")
    real_create, allowed = harness.schedule.create, [1]

    def one_then_quota(task: checks.CheckTask) -> bool:
        if not allowed:
            raise QuotaExhausted("CreateTask: quota exceeded")
        allowed.pop()
        return real_create(task)

    harness.schedule.create = one_then_quota  # type: ignore[method-assign]
    with pytest.raises(QuotaExhausted):
        registry_of(harness).advance(KEY)
    # One chain was brought forward, the other still has its pending look: each has one step.
    chains = {checks.TaskName.parse(t.task_id).chain for t in harness.schedule.tasks}  # type: ignore[union-attr]
    assert len(harness.schedule.tasks) == len(chains) == 2


def test_a_task_is_in_flight_between_a_dispatch_and_its_answer() -> None:
    assert registry.read(QueuedTask("not-opwatch", b"")) is None
    assert QueuedTask("t", b"", dispatch_count=2, response_count=1).in_flight
    assert not QueuedTask("t", b"", dispatch_count=1, response_count=1).in_flight


def test_a_rescan_counts_finished_chains_once(harness: Harness) -> None:
    harness.fetch.results = [pending(), succeeded()]
    start(harness, "w-1", "m-1")
    [finishing] = harness.schedule.tasks
    harness.publish.fail_with = exceptions.ServiceUnavailable("pubsub down")
    with pytest.raises(exceptions.ServiceUnavailable):
        harness.handlers.on_check(checks.decode(finishing.body))  # its claim stays
    harness.publish.fail_with = None
    harness.fetch.results, harness.fetch.calls = [pending()], []
    start(harness, "w-1", "m-2")  # a second chain, pending
    real_create, refusals = harness.schedule.create, [1]

    def refuse_once(task: checks.CheckTask) -> bool:
        if refusals and checks.decode(task.body).step is Step.CANCEL:
            refusals.pop()
            return False  # as if a check took that step between the scan and the cancel
        return real_create(task)

    harness.schedule.create = refuse_once  # type: ignore[method-assign]
    result = registry_of(harness).cancel("w-1", "")
    assert (len(result.cancelled), result.already_finished) == (1, 1)


def test_a_step_parked_during_a_cancel_still_meets_the_cancel(settings: Settings) -> None:
    """A check that fails on the queue's last attempt re-runs its step as a new task (parked);
    every re-run of step n leads to the same step n + 1, which the cancel holds."""
    clock, fetch, queue, publish = Clock(), FakeFetch(), FakeQueue(), RecordingPublish()
    handlers = Handlers(
        replace(settings, tasks=replace(settings.tasks, max_attempts=1)),
        fetch=fetch,
        queue=queue,
        publish=publish,
        clock=clock,
    )
    fetch.results = [pending()]
    handlers.on_watch_message(pubsub_message({"operation": OPERATION, "watch_id": "w-1"}))
    [first] = queue.tasks
    real_create, failures = queue.create, [1]

    def cancel_meanwhile() -> FetchResult:
        handlers.cancel(CancelRequest("w-1"))
        return pending()

    def flaky(task: checks.CheckTask) -> bool:
        if failures and checks.decode(task.body).step is Step.LOOK:
            failures.pop()
            raise exceptions.ServiceUnavailable("tasks hiccup")
        return real_create(task)

    queue.create = flaky  # type: ignore[method-assign]
    fetch.results, fetch.calls = [cancel_meanwhile, pending(), succeeded()], []
    handlers.on_check(checks.decode(first.body), retries=0)  # fails, then parks its step
    assert any(task.task_id.endswith("-1p1") for task in queue.tasks)
    for _ in range(1000):  # bounded: a chain that never ends fails instead of hanging
        if not queue.tasks:
            break
        task = queue.tasks.pop(0)
        clock.now = max(clock.now, task.when)
        handlers.on_check(checks.decode(task.body))
    else:
        pytest.fail("the polling chain did not end within 1000 checks")
    assert [(n["watch_id"], n["outcome"]) for n in publish.received] == [("w-1", "CANCELLED")]


def test_a_cancel_ends_only_the_watch_it_names(harness: Harness, event_log: EventLog) -> None:
    harness.fetch.results = [pending()]
    start(harness, "w-1", "m-1")
    start(harness, "w-2", "m-2")
    harness.handlers.on_watch_message(pubsub_message({"cancel": "w-1"}, "m-3"))
    [line] = [line for line in event_log.lines if line["event"] == "watch.cancel_requested"]
    assert line["watch_id"] == "w-1"
    harness.fetch = replace(harness.fetch, results=[succeeded()])
    harness.handlers = replace(harness.handlers, fetch=harness.fetch)
    harness.schedule.tasks.sort(key=lambda task: task.when)  # the cancel's step is due now
    harness.run_checks()
    assert sorted(outcomes(harness)) == [("w-1", "CANCELLED"), ("w-2", "SUCCEEDED")]
    [cancelled] = [n for n in harness.publish.received if n["watch_id"] == "w-1"]
    assert cancelled["error"]["message"] == "the watch was cancelled", "no reason given"


# --- one chain's state never stops the scan of the others --------------------------------------


def chain_task(
    watch_id: str, chain: str, *, operation: str = OPERATION, step: Step = Step.LOOK
) -> checks.CheckTask:
    """Step 2 of ``chain``: a pending look, or a claim (FINISHED) or cancel taken after step 1."""
    request = WatchRequest(operation=operation, watch_id=watch_id)
    if step is Step.LOOK:
        return checks.encode(request, Progress(started=T0, polls=1), T0, chain, seq=2)
    first = checks.encode(request, Progress(started=T0, polls=1), T0, chain, seq=1)
    return checks.successor(checks.decode(first.body), T0, step)


def test_a_scan_passes_over_every_task_that_is_not_the_one_asked_for() -> None:
    """Whatever comes first on the queue (another system's task, another watch's, another
    operation's, an unreadable body, a body that is not the watch its name says), the scan goes
    on to the watch asked for; and an unreadable task of another watch is not listed as this
    one's (its name says whose it is)."""
    mine = chain_task("w-1", "c1")
    tampered = chain_task("w-1", "c2")
    other_operation = chain_task("w-1", "c3", operation=OPERATION + "x")
    tasks = [
        QueuedTask("not-an-opwatch-task", b""),
        QueuedTask(chain_task("w-2", "c1").task_id, b"{garbage"),
        QueuedTask(tampered.task_id, chain_task("w-2", "c2").body),
        QueuedTask(other_operation.task_id, other_operation.body),
        QueuedTask(mine.task_id, mine.body),
    ]
    by_watch = registry.select(tasks, watch_id="w-1")
    assert [found.task.task_id for found in by_watch] == [other_operation.task_id, mine.task_id]
    key = checks.operation_key("cloudaicompanion.googleapis.com", OPERATION)
    by_operation = [found.task.task_id for found in registry.select(tasks, operation_key=key)]
    assert by_operation == [tasks[1].task_id, tampered.task_id, mine.task_id]
    [unreadable] = registry.select(tasks[1:2])
    assert (unreadable.state, unreadable.task) == (None, tasks[1]), "listed with its task"


def queue_of(*tasks: checks.CheckTask) -> Registry:
    return Registry(FakeQueue(tasks=list(tasks)), Clock())


def test_a_cancel_goes_past_a_chain_already_cancelled_and_counts_every_finished_one() -> None:
    found = queue_of(
        chain_task("w-1", "c1", step=Step.CANCEL),
        chain_task("w-1", "c2", step=Step.FINISHED),
        chain_task("w-1", "c3", step=Step.FINISHED),
        chain_task("w-1", "c4"),
    )
    result = found.cancel("w-1", "by hand")
    assert result.watch_id == "w-1"
    assert [name.chain for name in result.cancelled] == ["c4"]
    assert result.already_finished == 2


def test_the_fast_path_goes_past_chains_it_must_leave_alone() -> None:
    """A cancel's or a claim's step, and a look in flight, are left alone; the looks after them
    are still brought forward."""
    in_flight = chain_task("w-1", "c3")
    queue = FakeQueue(
        tasks=[
            chain_task("w-1", "c1", step=Step.CANCEL),
            chain_task("w-1", "c2", step=Step.FINISHED),
            in_flight,
            chain_task("w-1", "c4"),
        ],
        in_flight={in_flight.task_id},
    )
    key = checks.operation_key("cloudaicompanion.googleapis.com", OPERATION)
    advanced = Registry(queue, Clock()).advance(key)
    assert (advanced.advanced, advanced.in_flight, advanced.taken) == (1, 1, 0)


def test_a_cancel_counts_every_chain_the_ledger_says_finished(settings: Settings) -> None:
    store = FakeLedger()
    harness = make_harness(settings, store)
    harness.fetch.results = [succeeded()]
    start(harness, "nightly", "m-1")
    start(harness, "nightly", "m-2")
    harness.fetch.results = [pending()]
    start(harness, "nightly", "m-3")
    result = harness.handlers.cancel(CancelRequest("nightly"))
    assert (len(result.cancelled), result.already_finished) == (1, 2)
