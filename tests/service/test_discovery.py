"""Discovery: an audit entry of a long-running operation starts a watch, once (README, Discovery).

Driven through :meth:`Handlers.on_audit_message` with the conftest fakes: what a subscriber
would receive and which tasks were created, refused or deleted. Log lines are checked only for
the events the README documents (``check.duplicate``, ``audit.quota_exhausted``,
``audit.ignored``, and the fields of a log line itself).
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any

import pytest

from opwatch import checks
from opwatch.audit import discovered_watch_id
from opwatch.contracts import discovered_request, validate_watch_request
from opwatch.envelope import PushedMessage
from opwatch.errors import InvalidWatchRequest, QuotaExhausted
from opwatch.handlers import Handlers
from opwatch.logs import Event
from tests.fakes import EventLog, Harness, load, pending, pubsub_message, succeeded

SPANNER = load("audit-spanner-create-instance-first.json")
INDEX = load("audit-cloudaicompanion-create-index-first.json")
INDEX_OPERATION = INDEX["protoPayload"]["response"]["name"]
INDEX_WATCH_ID = discovered_watch_id("cloudaicompanion.googleapis.com", INDEX_OPERATION)
INDEX_METHOD = INDEX["protoPayload"]["methodName"]


def last_of(entry: dict[str, Any]) -> dict[str, Any]:
    """The operation's last entry: same operation, ``last`` instead of ``first``."""
    ended = copy.deepcopy(entry)
    del ended["operation"]["first"]
    ended["operation"]["last"] = True
    return ended


def test_a_first_entry_starts_a_watch_on_the_discovered_chain(harness: Harness) -> None:
    harness.fetch.results = [pending(INDEX_OPERATION)]

    assert harness.handlers.on_audit_message(pubsub_message(INDEX, "m-1")) is None

    [request] = harness.fetch.calls
    assert request.operation == INDEX_OPERATION
    assert request.api == "cloudaicompanion.googleapis.com"
    assert request.watch_id == INDEX_WATCH_ID
    assert dict(request.labels) == {
        "service": "cloudaicompanion.googleapis.com",
        "method": INDEX["protoPayload"]["methodName"],
        "resource": INDEX["protoPayload"]["resourceName"],
    }
    assert request.notify_topic is None  # the results topic
    [task] = harness.schedule.tasks
    name = checks.TaskName.parse(task.task_id)
    assert name is not None and name.chain == checks.DISCOVERED_CHAIN
    assert name.operation_key == checks.operation_key(request.api, INDEX_OPERATION)
    assert harness.schedule.created == [task.task_id] and harness.schedule.refused == []
    assert checks.decode(task.body).request["operation"] == INDEX_OPERATION
    assert harness.publish.messages == [], "pending: nothing for the subscriber yet"


def test_a_discovered_watch_ends_in_one_notification_with_its_labels(harness: Harness) -> None:
    harness.fetch.results = [pending(INDEX_OPERATION), succeeded(INDEX_OPERATION)]
    harness.handlers.on_audit_message(pubsub_message(INDEX))
    harness.run_checks()
    [note] = harness.publish.received
    assert (note["outcome"], note["watch_id"]) == ("SUCCEEDED", INDEX_WATCH_ID)
    assert note["labels"]["service"] == "cloudaicompanion.googleapis.com"
    assert "caller" not in note["labels"]


def test_a_duplicated_entry_or_a_second_discovery_is_the_same_watch(
    harness: Harness, event_log: EventLog
) -> None:
    harness.fetch.results = [pending(INDEX_OPERATION)]
    harness.handlers.on_audit_message(pubsub_message(INDEX, "m-1"))
    # The same entry delivered again, and published again under another message id.
    harness.handlers.on_audit_message(pubsub_message(INDEX, "m-1"))
    harness.handlers.on_audit_message(pubsub_message(INDEX, "m-2"))
    [task] = harness.schedule.tasks
    assert harness.schedule.created == [task.task_id]
    assert event_log.events.count(Event.CHECK_DUPLICATE) == 2  # the opwatch-checks metric's
    harness.fetch.results = [succeeded(INDEX_OPERATION)]
    harness.run_checks()
    assert len(harness.publish.messages) == 1


def test_an_operation_done_at_the_first_look_is_notified_at_once(harness: Harness) -> None:
    name = SPANNER["operation"]["id"]
    harness.fetch.results = [succeeded(name)]
    outcome = harness.handlers.on_audit_message(pubsub_message(SPANNER))
    assert outcome is not None and outcome.value == "SUCCEEDED"
    assert harness.publish.received[0]["watch_id"] == discovered_watch_id(
        "spanner.googleapis.com", name
    )
    assert harness.schedule.tasks == []


def test_the_caller_is_a_label_only_when_the_setting_allows(harness: Harness) -> None:
    handlers = Handlers(
        replace(harness.handlers.settings, discovery_include_caller=True),
        fetch=harness.fetch,
        queue=harness.schedule,
        publish=harness.publish,
        clock=harness.clock,
    )
    harness.fetch.results = [pending(INDEX_OPERATION)]
    handlers.on_audit_message(pubsub_message(INDEX))
    assert harness.fetch.calls[0].labels["caller"] == "dana@example.com"


def test_a_last_entry_brings_every_pending_look_of_the_operation_forward(
    harness: Harness, event_log: EventLog
) -> None:
    """Discovered and requested watches of one operation: the end entry brings each one's
    pending look forward to now (a new step, never RunTask); it publishes, once, on its chain."""
    harness.fetch.results = [pending(INDEX_OPERATION)]
    harness.handlers.on_audit_message(pubsub_message(INDEX, "m-1"))
    request = {"operation": INDEX_OPERATION, "watch_id": "requested"}
    harness.handlers.on_watch_message(pubsub_message(request, "m-2"))
    unrelated = {"operation": INDEX_OPERATION + "x", "watch_id": "other"}
    harness.handlers.on_watch_message(pubsub_message(unrelated, "m-3"))
    pending_looks = {task.task_id: task for task in harness.schedule.tasks}

    assert harness.handlers.on_audit_message(pubsub_message(last_of(INDEX))) is None

    assert len(harness.fetch.calls) == 3, "the entry itself fetches nothing"
    [ended] = [line for line in event_log.lines if line["event"] == Event.AUDIT_OPERATION_ENDED]
    assert ended == {
        "severity": "INFO",
        "operation": INDEX_OPERATION,
        "api": "cloudaicompanion.googleapis.com",
        "method": INDEX_METHOD,
        "event": "audit.operation_ended",
        "checks_run": 2,
        "in_flight": 0,
        "already_taken": 0,
    }
    brought = [pending_looks[task_id] for task_id in harness.schedule.deleted]
    assert sorted(checks.decode(t.body).watch_id for t in brought) == sorted(
        [INDEX_WATCH_ID, "requested"]
    )
    due_now = [t for t in harness.schedule.tasks if t.when == harness.clock.now]
    assert len(due_now) == 2 and len(harness.schedule.deleted) == 2
    assert sorted(checks.decode(t.body).watch_id for t in due_now) == sorted(
        [INDEX_WATCH_ID, "requested"]
    )
    assert harness.publish.messages == [], "the looks brought forward have not run yet"


def test_a_look_brought_forward_that_still_sees_pending_goes_on_polling(
    harness: Harness, event_log: EventLog
) -> None:
    """The end entry may come before the operation's GET says done (two services): the look
    brought forward then schedules the step after its own, and the watch ends in one
    notification. Taking a step is no look, so a chain's step is not its poll count."""
    op = INDEX_OPERATION
    harness.fetch.results = [pending(op), pending(op), succeeded(op)]
    harness.handlers.on_audit_message(pubsub_message(INDEX, "m-1"))
    harness.handlers.on_audit_message(pubsub_message(last_of(INDEX), "m-2"))

    harness.run_checks()

    assert [(n["watch_id"], n["outcome"]) for n in harness.publish.received] == [
        (INDEX_WATCH_ID, "SUCCEEDED")
    ]
    assert [n["polls"] for n in harness.publish.received] == [3]
    steps = [checks.TaskName.parse(name) for name in harness.schedule.created]
    # The first look's next step, the step brought forward, its next one, and the finish's claim.
    assert [step.seq for step in steps if step is not None] == [1, 2, 3, 4]
    assert harness.schedule.refused == [] and "check.duplicate" not in event_log.events


def test_a_duplicated_last_entry_gives_one_notification_per_watch(harness: Harness) -> None:
    """Sinks deliver at least once (https://cloud.google.com/logging/docs/export/pubsub): the
    same end entry twice, back to back, brings each look forward once, and each watch ends in
    one notification."""
    harness.fetch.results = [pending(INDEX_OPERATION)]
    harness.handlers.on_audit_message(pubsub_message(INDEX, "m-1"))
    harness.handlers.on_watch_message(
        pubsub_message({"operation": INDEX_OPERATION, "watch_id": "requested"}, "m-2")
    )
    harness.fetch.results = [succeeded(INDEX_OPERATION)]
    for _ in range(2):
        harness.handlers.on_audit_message(pubsub_message(last_of(INDEX), "m-3"))
    harness.run_checks()
    received = sorted((n["watch_id"], n["outcome"]) for n in harness.publish.received)
    assert received == sorted([(INDEX_WATCH_ID, "SUCCEEDED"), ("requested", "SUCCEEDED")])


@pytest.mark.parametrize("refused", ["ListTasks", "CreateTask"])
def test_a_quota_on_the_fast_path_is_acknowledged_and_the_watch_goes_on_polling(
    harness: Harness, event_log: EventLog, refused: str
) -> None:
    """Cloud Tasks' List quota (600 a minute for a region) or any other answering
    RESOURCE_EXHAUSTED (https://cloud.google.com/tasks/docs/quotas) must not dead-letter an end
    entry: it is acknowledged, and the watch ends by its own polling."""
    harness.fetch.results = [pending(INDEX_OPERATION)]
    harness.handlers.on_audit_message(pubsub_message(INDEX, "m-1"))
    [look] = harness.schedule.tasks
    quota = QuotaExhausted(f"{refused}: Quota exceeded")
    if refused == "ListTasks":
        harness.schedule.list_fails_with = quota
    else:
        harness.schedule.fail_with = quota
    assert harness.handlers.on_audit_message(pubsub_message(last_of(INDEX), "m-2")) is None
    assert harness.schedule.tasks == [look]
    [line] = [line for line in event_log.lines if line["event"] == Event.AUDIT_QUOTA_EXHAUSTED]
    assert line["error"] == f"QuotaExhausted: {refused}: Quota exceeded"
    assert (line["operation"], line["method"]) == (INDEX_OPERATION, INDEX_METHOD)
    harness.schedule.list_fails_with = harness.schedule.fail_with = None
    harness.fetch.results = [succeeded(INDEX_OPERATION)]
    harness.run_checks()
    assert [(n["watch_id"], n["outcome"]) for n in harness.publish.received] == [
        (INDEX_WATCH_ID, "SUCCEEDED")
    ]


def test_a_last_entry_for_an_operation_nobody_watches_runs_nothing(harness: Harness) -> None:
    assert harness.handlers.on_audit_message(pubsub_message(last_of(INDEX))) is None
    assert harness.fetch.calls == [] and harness.publish.messages == []
    assert harness.schedule.created == [] and harness.schedule.deleted == []
    assert harness.schedule.refused == []


def test_an_entry_both_first_and_last_starts_a_watch(harness: Harness) -> None:
    both = copy.deepcopy(INDEX)
    both["operation"]["last"] = True
    harness.fetch.results = [succeeded(INDEX_OPERATION)]
    outcome = harness.handlers.on_audit_message(pubsub_message(both))
    assert outcome is not None and outcome.value == "SUCCEEDED"


def ignored_reasons(event_log: EventLog) -> list[str]:
    return [line["reason"] for line in event_log.lines if line["event"] == Event.AUDIT_IGNORED]


SPLITS = {
    "spanner": [load(f"audit-spanner-create-instance-first-split-{i}.json") for i in (0, 1)],
    "index": [load(f"audit-cloudaicompanion-create-index-first-split-{i}.json") for i in (0, 1)],
}


@pytest.mark.parametrize("sample", sorted(SPLITS))
@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_a_split_entry_starts_one_watch_and_its_end_runs_the_fast_path_once(
    harness: Harness, event_log: EventLog, sample: str, order: tuple[int, int]
) -> None:
    """Each part of a split entry is its own LogEntry, published as its own message
    (https://cloud.google.com/logging/docs/audit/split-logs). One part acts: one look at the
    operation (main looked once per part), one watch; the end's parts run its look once (main
    ran it once per part: the duplicate runs of issue 15, §4)."""
    parts = SPLITS[sample]
    operation = parts[0]["operation"]["id"] if sample == "spanner" else INDEX_OPERATION
    harness.fetch.results = [pending(operation)]

    for index in order:
        harness.handlers.on_audit_message(pubsub_message(parts[index], f"m-{index}"))
    for index in order:
        harness.handlers.on_audit_message(pubsub_message(last_of(parts[index]), f"e-{index}"))

    [request] = harness.fetch.calls
    assert request.operation == operation
    assert len(harness.schedule.tasks) == 1
    assert len(harness.schedule.deleted) == 1, "one look brought forward, once"
    assert len(harness.schedule.created) == 2, "the watch's look, and that look brought forward"
    assert harness.schedule.refused == [], "one part acted: no second create of the same step"
    assert not any("no operation name like" in reason for reason in ignored_reasons(event_log))


@pytest.mark.parametrize(
    ("message", "says"),
    [
        (PushedMessage.from_json({"messageId": "m-1"}), "no data"),
        (PushedMessage.from_json({"data": "%%%", "messageId": "m-1"}), "not base64"),
        (pubsub_message(None, raw=b"{not json"), "not JSON"),
        (pubsub_message({"textPayload": "hello"}), "not one of the Cloud Audit Logs"),
        (pubsub_message(load("audit-gke-delete-cluster-last.json")), "no operation name"),
    ],
)
def test_odd_messages_are_logged_and_acknowledged_without_a_notification(
    harness: Harness, event_log: EventLog, message: PushedMessage, says: str
) -> None:
    assert harness.handlers.on_audit_message(message) is None
    [reason] = ignored_reasons(event_log)
    assert says in reason
    assert harness.fetch.calls == [] and harness.publish.messages == []
    assert harness.schedule.tasks == []


# Each contains "cloudaudit.googleapis.com", so the sink's logName:"cloudaudit.googleapis.com"
# filter (":" is a substring match in the query language) let them all through.
LOOK_ALIKE_LOGS = [
    "projects/example-project/logs/cloudaudit.googleapis.com",
    "projects/example-project/logs/cloudaudit.googleapis.com%2Factivity-copy",
    "projects/example-project/logs/my-cloudaudit.googleapis.com%2Factivity",
    "projects/example-project/logs/cloudaudit.googleapis.com%2Fdata_access%2Fx",
    "projects/example-project/logs/cloudaudit.googleapis.com%2factivity",
    "projects/example-project/logs/cloudaudit.googleapis.com/activity",
    "projects/example-project/logs/fake/cloudaudit.googleapis.com%2Factivity",
    "cloudaudit.googleapis.com%2Factivity",
]


@pytest.mark.parametrize("log_name", LOOK_ALIKE_LOGS)
def test_an_audit_shaped_entry_in_a_user_written_log_starts_nothing(
    harness: Harness, event_log: EventLog, log_name: str
) -> None:
    """Issue 15, section 5. Cloud Audit Logs are exactly
    ``{projects,folders,billingAccounts,organizations}/ID/logs/cloudaudit.googleapis.com%2F``
    ``{activity,data_access,system_event,policy}`` ("Log name",
    https://cloud.google.com/logging/docs/audit/understanding-audit-logs); any holder of
    ``logging.logEntries.create`` can write an AuditLog-shaped payload to a log of their own
    (entries.write reference). Whether Logging refuses a user's write to the audit logs' own
    names was not confirmed here: this closes the look-alike names."""
    forged = {**INDEX, "logName": log_name}
    harness.fetch.results = [pending(INDEX_OPERATION)]
    request = {"operation": INDEX_OPERATION, "watch_id": "requested"}
    harness.handlers.on_watch_message(pubsub_message(request, "m-0"))
    fetched, tasks = len(harness.fetch.calls), list(harness.schedule.tasks)

    assert harness.handlers.on_audit_message(pubsub_message(forged, "m-1")) is None
    assert harness.handlers.on_audit_message(pubsub_message(last_of(forged), "m-2")) is None

    assert len(harness.fetch.calls) == fetched, "no watch of its own: nothing fetched"
    assert harness.schedule.tasks == tasks and harness.schedule.deleted == [], "no fast path"
    assert harness.publish.messages == []
    assert all("not one of the Cloud Audit Logs" in r for r in ignored_reasons(event_log))
    assert len(ignored_reasons(event_log)) == 2


def test_an_api_not_allowed_is_ignored(harness: Harness, event_log: EventLog) -> None:
    gke = load("audit-gke-delete-cluster-first.json")
    assert harness.handlers.on_audit_message(pubsub_message(gke, "m-gke")) is None
    [reason] = ignored_reasons(event_log)
    assert "container.googleapis.com is not in ALLOWED_APIS" in reason
    [line] = event_log.lines
    assert line["message_id"] == "m-gke"
    assert line["operation"] == (
        "projects/746960230895/zones/us-central1-c/operations/operation-1594396544137-1d558f93"
    )
    assert harness.fetch.calls == [] and harness.publish.messages == []


def test_a_failure_to_schedule_propagates_so_pubsub_redelivers(harness: Harness) -> None:
    harness.fetch.results = [pending(INDEX_OPERATION)]
    harness.schedule.fail_with = RuntimeError("Cloud Tasks is down")
    with pytest.raises(RuntimeError):
        harness.handlers.on_audit_message(pubsub_message(INDEX))


def test_the_message_id_is_read_in_either_spelling(harness: Harness, event_log: EventLog) -> None:
    harness.handlers.on_audit_message(PushedMessage.from_json({"message_id": "m-9", "data": ""}))
    assert event_log.lines[0]["message_id"] == "m-9"
    assert json.dumps(event_log.lines)  # every field is JSON, as the log formatter needs


# --- the request of a discovered watch ------------------------------------------------------

ALLOWED = frozenset({"cloudaicompanion.googleapis.com"})


def test_a_discovered_request_is_the_published_request_with_the_same_fields() -> None:
    """Built directly, with no JSON in between, by the same rules and defaults (docs/contracts.md:
    api_version v1, 24 h timeout, no notify_topic, the profile's polling)."""
    labels = {"service": "cloudaicompanion.googleapis.com", "method": "CreateIndex"}
    built = discovered_request(
        INDEX_OPERATION,
        api="CloudAICompanion.googleapis.com",
        watch_id=INDEX_WATCH_ID,
        labels=labels,
        allowed_apis=ALLOWED,
    )
    published = {"operation": INDEX_OPERATION, "api": "cloudaicompanion.googleapis.com"}
    assert built == validate_watch_request(
        {**published, "watch_id": INDEX_WATCH_ID, "labels": labels},
        default_watch_id="unused",
        allowed_apis=ALLOWED,
        allowed_notify_topics=frozenset(),
    )
    assert built.to_json() == {
        **published,
        "api_version": "v1",
        "labels": labels,
        "timeout": "86400s",
        "watch_id": INDEX_WATCH_ID,
    }


def test_a_discovered_request_breaking_the_rules_names_every_field() -> None:
    with pytest.raises(InvalidWatchRequest) as caught:
        discovered_request(
            "projects/p/locations/l/jobs/j",
            api="spanner.googleapis.com",
            watch_id="audit/with space",
            labels={"Bad": "x"},
            allowed_apis=ALLOWED,
        )
    assert caught.value.watch_id == "audit/with space"
    assert {v.field: v.description for v in caught.value.violations} == {
        "operation": "must end in '/operations/<id>' below a parent, like "
        "projects/p/locations/l/operations/o",
        "api": "'spanner.googleapis.com' is not an allowed API host (allowed: "
        "cloudaicompanion.googleapis.com); ask the operator to add it to ALLOWED_APIS",
        "watch_id": "must be 1-128 printable ASCII characters without spaces",
        "labels": "key 'Bad' must be 1-63 lowercase letters, digits, '_' or '-', starting with "
        "a letter",
    }
