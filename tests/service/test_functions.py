"""Both Cloud Functions, driven in-process through functions-framework's own app.

The HTTP and CloudEvent handling in ``functions/main.py`` stays real; the one seam is the
composition root: the loaded module's ``HANDLERS`` is replaced by a Handlers over the shared fakes,
and the tests assert on what those fakes received (what a subscriber would see).
"""

from __future__ import annotations

import base64
import json
import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import flask
import functions_framework
import pytest
from flask.testing import FlaskClient
from google.api_core import exceptions as api_exceptions
from werkzeug.test import TestResponse

from opwatch import checks
from opwatch.contracts import WatchRequest
from opwatch.core import FetchFailed, Progress
from opwatch.errors import ConfigurationError
from opwatch.handlers import Handlers
from opwatch.logs import LOGGER_NAME
from tests.fakes import (
    CHECK_URL,
    OPERATION,
    QUEUE,
    RESULTS,
    T0,
    Clock,
    FakeFetch,
    FakeQueue,
    Fetched,
    RecordingPublish,
    load,
)

SOURCE = Path(__file__).resolve().parents[2] / "functions" / "main.py"
# The body the Pub/Sub emulator POSTed to a push endpoint (Content-Type: application/json).
PUSH = Path(__file__).parents[1] / "data" / "pubsub-push-watch-request.json"
# The emulator pushes to the subscription's push endpoint; with this path functions-framework
# gives the CloudEvent the topic as its source, as on Google Cloud.
PUSH_PATH = "/projects/test-project/topics/opwatch-watch-requests"
ENVIRONMENT = {
    "RESULTS_TOPIC": RESULTS,
    "TASKS_QUEUE": QUEUE,
    "CHECK_URL": CHECK_URL,
    "ALLOWED_APIS": "cloudaicompanion.googleapis.com,spanner.googleapis.com",
    "TASKS_INVOKER_SA": "opwatch-invoker@test-project.iam.gserviceaccount.com",
}
WATCH_ID = "index-build-42"  # the watch_id inside the captured push
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)


LoadFunction = Callable[[str], tuple[flask.Flask, ModuleType]]


@pytest.fixture
def load_function(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoadFunction]:
    """``create_app`` for a target, putting back the process state that loading touches.

    functions-framework appends the source folder to sys.path and registers the module as
    ``main``; importing main.py sets up the opwatch logger on the current stdout.
    """
    monkeypatch.setattr(sys, "path", [*sys.path])
    logger = logging.getLogger(LOGGER_NAME)
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "propagate", logger.propagate)
    monkeypatch.setattr(logger, "level", logger.level)

    def load(target: str) -> tuple[flask.Flask, ModuleType]:
        app = functions_framework.create_app(target, source=str(SOURCE))
        return app, sys.modules["main"]

    yield load
    sys.modules.pop("main", None)


@dataclass
class Deployment:
    """Both functions, as served, wired to the conftest fakes."""

    watch: FlaskClient
    check: FlaskClient
    clock: Clock
    fetch: FakeFetch
    schedule: FakeQueue
    publish: RecordingPublish

    def push(self, data: str | None = None) -> TestResponse:
        """POST the Pub/Sub emulator's push as captured, or with other message data (base64)."""
        body = PUSH.read_bytes()
        if data is not None:
            push = json.loads(body)
            push["message"]["data"] = data
            body = json.dumps(push).encode()
        return self.watch.post(PUSH_PATH, data=body, content_type="application/json")

    def deliver(
        self,
        body: bytes,
        task_name: str = "w0123456789abcdef-1",
        queue: str | None = QUEUE,
        retries: str = "0",
    ) -> TestResponse:
        """POST a check body as Cloud Tasks does (the queue header names the queue's path)."""
        headers = {"X-CloudTasks-TaskName": task_name, "X-CloudTasks-TaskRetryCount": retries}
        if queue is not None:
            headers["X-CloudTasks-QueueName"] = queue
        return self.check.post("/", data=body, content_type="application/json", headers=headers)


@pytest.fixture
def deploy(environment: None, load_function: LoadFunction) -> Callable[[], Deployment]:
    """Load both functions, each with its composition root replaced by the shared fakes."""

    def deploy() -> Deployment:
        clock, fetch = Clock(), FakeFetch()
        schedule, publish = FakeQueue(), RecordingPublish()
        clients = []
        for target in ("on_watch_request", "on_check"):
            app, module = load_function(target)
            # Each create_app executes main.py afresh: replace the composition root of each.
            module.HANDLERS = Handlers(
                module.SETTINGS, fetch=fetch, queue=schedule, publish=publish, clock=clock
            )
            clients.append(app.test_client())
        watch, check = clients
        return Deployment(watch, check, clock, fetch, schedule, publish)

    return deploy


@pytest.fixture
def deployment(deploy: Callable[[], Deployment]) -> Deployment:
    return deploy()


def is_2xx(response: TestResponse) -> bool:
    return 200 <= response.status_code < 300


def test_a_watch_for_a_done_operation_publishes_one_succeeded_notification(
    deployment: Deployment,
) -> None:
    operation = load("operation-done-response.json")
    deployment.fetch.results = [Fetched(operation)]

    response = deployment.push()

    assert is_2xx(response)
    [notification] = deployment.publish.received
    assert notification["outcome"] == "SUCCEEDED"
    assert notification["watch_id"] == WATCH_ID
    assert notification["operation"] == operation
    assert deployment.publish.messages[0].topic == RESULTS
    assert deployment.schedule.tasks == []


def test_a_binary_cloudevent_as_eventarc_delivers_it_is_handled_the_same(
    deployment: Deployment,
) -> None:
    operation = load("operation-done-response.json")
    deployment.fetch.results = [Fetched(operation)]
    push = json.loads(PUSH.read_bytes())
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-source": "//pubsub.googleapis.com/projects/test-project/topics/opwatch-watch-requests",
        "ce-id": push["message"]["messageId"],
        "ce-time": push["message"]["publishTime"],
    }

    response = deployment.watch.post("/", json=push, headers=headers)

    assert is_2xx(response)
    [notification] = deployment.publish.received
    assert (notification["outcome"], notification["watch_id"]) == ("SUCCEEDED", WATCH_ID)
    assert notification["operation"] == operation


@pytest.mark.parametrize(
    "message",
    [
        {"attributes": {"team": "search"}, "messageId": "77"},
        {"data": "", "attributes": {"team": "search"}, "messageId": "77"},
        {"messageId": "77", "publishTime": "2026-11-27T12:00:00Z"},
    ],
    ids=["attributes-only", "empty-data", "bare"],
)
def test_a_message_without_data_gets_its_invalid_request_answer(
    deployment: Deployment, message: dict[str, Any]
) -> None:
    """functions-framework turns a push into a CloudEvent only when ``message.data`` is present
    and answers 400 otherwise, before the function runs (functions_framework/event_conversion.py),
    so Pub/Sub would redeliver such a message until it is dead-lettered, and nobody told."""
    envelope = {"message": message, "subscription": "projects/test-project/subscriptions/s"}

    response = deployment.watch.post(PUSH_PATH, json=envelope)

    assert is_2xx(response)
    [notification] = deployment.publish.received
    assert (notification["outcome"], notification["watch_id"]) == ("INVALID_REQUEST", "77")
    assert deployment.fetch.calls == []


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"subscription": "s"}', b'{"message": "x"}', b"\xff"]
)
def test_a_request_that_is_not_a_pubsub_push_is_refused(
    deployment: Deployment, body: bytes
) -> None:
    """Pub/Sub always pushes a JSON envelope with a message; anything else came from elsewhere
    and names no message to answer."""
    response = deployment.watch.post(PUSH_PATH, data=body, content_type="application/json")

    assert response.status_code == 400
    assert deployment.publish.messages == []
    assert deployment.fetch.calls == []


def test_a_pending_operation_is_checked_again_by_a_task_until_done(
    deployment: Deployment,
) -> None:
    deployment.fetch.results = [
        Fetched(load("operation-pending.json")),
        Fetched(load("operation-done-response.json")),
    ]

    assert is_2xx(deployment.push())
    [task] = deployment.schedule.tasks
    assert deployment.publish.messages == []

    deployment.clock.now = task.when
    response = deployment.deliver(task.body, task.task_id)

    assert is_2xx(response)
    [notification] = deployment.publish.received
    assert (notification["outcome"], notification["polls"]) == ("SUCCEEDED", 2)
    assert notification["operation"] == load("operation-done-response.json")
    assert len(deployment.schedule.tasks) == 1


def test_a_failed_operation_is_published_with_its_own_error(deployment: Deployment) -> None:
    operation = load("operation-done-error.json")
    deployment.fetch.results = [Fetched(operation)]

    assert is_2xx(deployment.push())

    [notification] = deployment.publish.received
    assert notification["outcome"] == "FAILED"
    assert notification["error"] == operation["error"]


MALFORMED = {
    "not-json": (b64(b"operation=projects/p/locations/l/operations/o"), "", "not valid JSON"),
    "not-base64": ("this is not base64!", "", "not base64"),
    "json-array": (b64(b'["projects/p/locations/l/operations/o"]'), "", "not list"),
    "unknown-field": (
        b64(b'{"operation": "projects/p/locations/l/operations/o", "colour": "blue"}'),
        "colour",
        "unknown field",
    ),
    "api-off-the-allowlist": (
        b64(b'{"operation": "projects/p/locations/l/operations/o", "api": "collector.example"}'),
        "api",
        "not an allowed API host",
    ),
}


@pytest.mark.parametrize(("data", "field", "reason"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_watch_request_is_acknowledged_and_answered_as_invalid(
    deployment: Deployment, data: str, field: str, reason: str
) -> None:
    response = deployment.push(data)

    assert is_2xx(response)  # so Pub/Sub does not deliver it again
    [notification] = deployment.publish.received
    assert notification["outcome"] == "INVALID_REQUEST"
    assert notification["watch_id"] == "1"  # the Pub/Sub message id, as nothing better was read
    [bad_request] = [d for d in notification["error"]["details"] if d["@type"] == BAD_REQUEST]
    violations = {v["field"]: v["description"] for v in bad_request["fieldViolations"]}
    assert reason in violations[field]
    assert deployment.fetch.calls == []
    assert deployment.schedule.tasks == []


@pytest.mark.parametrize("data", [None, b64(b"[]")], ids=["valid-request", "invalid-request"])
def test_a_failed_publish_is_not_acknowledged(deployment: Deployment, data: str | None) -> None:
    deployment.fetch.results = [Fetched(load("operation-done-response.json"))]
    deployment.publish.fail_with = api_exceptions.ServiceUnavailable("Pub/Sub is unavailable")

    response = deployment.push(data)

    assert not is_2xx(response)  # so Pub/Sub delivers it again


def test_a_failed_schedule_is_not_acknowledged(deployment: Deployment) -> None:
    deployment.fetch.results = [Fetched(load("operation-pending.json"))]
    deployment.schedule.fail_with = api_exceptions.ServiceUnavailable("Cloud Tasks is unavailable")

    assert not is_2xx(deployment.push())


def test_a_check_whose_publish_fails_is_retried_by_cloud_tasks(deployment: Deployment) -> None:
    deployment.fetch.results = [
        Fetched(load("operation-pending.json")),
        Fetched(load("operation-done-response.json")),
    ]
    deployment.push()
    [task] = deployment.schedule.tasks
    deployment.publish.fail_with = api_exceptions.ServiceUnavailable("Pub/Sub is unavailable")

    assert not is_2xx(deployment.deliver(task.body, task.task_id))


@pytest.mark.parametrize(("retries", "parked"), [("98", False), ("99", True), ("x", False)])
def test_a_check_on_the_queues_last_attempt_parks_its_watch_instead_of_failing(
    deployment: Deployment, retries: str, parked: bool
) -> None:
    """Cloud Tasks drops a task once max_attempts (100 by default, TASKS_MAX_ATTEMPTS) are used
    (RetryConfig, https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues);
    the retry count comes in X-CloudTasks-TaskRetryCount, 0 on the first attempt."""
    deployment.fetch.results = [Fetched(load("operation-done-response.json"))]
    deployment.publish.fail_with = api_exceptions.ServiceUnavailable("Pub/Sub is unavailable")
    body = checks.encode(
        WatchRequest(operation=OPERATION, watch_id=WATCH_ID),
        Progress(started=T0, polls=1),
        T0,
        "c0",
    ).body

    response = deployment.deliver(body, retries=retries)

    assert is_2xx(response) is parked
    if parked:
        # The finishing look holds its watch's next step, then parks: the same look, later.
        claim, task = deployment.schedule.tasks
        assert checks.decode(claim.body).step is checks.Step.FINISHED
        assert task.task_id.endswith("-1p1"), "the same look, parked once, in a new task"
        assert checks.decode(task.body).progress.parks == 1


def test_a_garbage_check_body_from_the_queue_is_dropped_without_side_effects(
    deployment: Deployment,
) -> None:
    response = deployment.deliver(b"{not an opwatch check")

    assert response.status_code == 204, "2xx: Cloud Tasks must not retry what cannot be fixed"
    assert deployment.fetch.calls == []
    assert deployment.publish.messages == []
    assert deployment.schedule.tasks == []


@pytest.mark.parametrize(
    "queue", [None, "", "other-queue", "projects/x/locations/y/queues/opwatch-checks"]
)
def test_a_check_not_from_the_configured_queue_is_refused(
    deployment: Deployment, queue: str | None
) -> None:
    deployment.fetch.results = [Fetched(load("operation-done-response.json"))]
    body = checks.encode(
        WatchRequest(operation=OPERATION, watch_id=WATCH_ID),
        Progress(started=T0, polls=1),
        T0,
        "c0",
    ).body

    response = deployment.deliver(body, queue=queue)

    assert response.status_code == 403
    assert deployment.fetch.calls == []
    assert deployment.publish.messages == []


def test_the_queue_may_be_named_by_its_id_as_cloud_tasks_does(deployment: Deployment) -> None:
    deployment.fetch.results = [Fetched(load("operation-done-response.json"))]
    body = checks.encode(
        WatchRequest(operation=OPERATION, watch_id=WATCH_ID),
        Progress(started=T0, polls=1),
        T0,
        "c0",
    ).body

    response = deployment.deliver(body, queue="opwatch-checks")

    assert response.status_code == 200
    assert [n["outcome"] for n in deployment.publish.received] == ["SUCCEEDED"]


@pytest.mark.parametrize("name", ["RESULTS_TOPIC", "TASKS_QUEUE", "CHECK_URL"])
def test_a_missing_setting_stops_the_function_naming_it(
    environment: None, load_function: LoadFunction, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.delenv(name)

    with pytest.raises(ConfigurationError, match=name):
        load_function("on_watch_request")


def test_logs_are_json_lines_with_severity_and_watch_id(
    deploy: Callable[[], Deployment], capsys: pytest.CaptureFixture[str]
) -> None:
    # Deployed in the test itself: main.py's log handler keeps the stdout of its import, and
    # capsys captures a test's call phase with a stream of its own.
    deployment = deploy()
    deployment.fetch.results = [
        Fetched(load("operation-pending.json")),
        Fetched(load("operation-done-response.json")),
    ]
    deployment.push()
    [task] = deployment.schedule.tasks
    deployment.deliver(task.body, task.task_id)

    lines = capsys.readouterr().out.splitlines()

    entries: list[dict[str, Any]] = [json.loads(line) for line in lines]
    assert [entry["event"] for entry in entries] == [
        "watch.started",
        "check.pending",
        "watch.finished",
    ]
    for entry in entries:
        assert entry["severity"] == "INFO"
        assert entry["watch_id"] == WATCH_ID


# --- on_audit_entry: discovery ----------------------------------------------------------------

AUDIT_PATH = "/projects/test-project/topics/opwatch-audit"


@pytest.fixture
def audit_deployment(environment: None, load_function: LoadFunction) -> Deployment:
    """on_audit_entry as served (in the ``watch`` slot), wired to the shared fakes."""
    clock, fetch = Clock(), FakeFetch()
    schedule, publish = FakeQueue(), RecordingPublish()
    app, module = load_function("on_audit_entry")
    module.HANDLERS = Handlers(
        module.SETTINGS, fetch=fetch, queue=schedule, publish=publish, clock=clock
    )
    client = app.test_client()
    return Deployment(client, client, clock, fetch, schedule, publish)


def audit_push(deployment: Deployment, data: bytes | None) -> TestResponse:
    push = json.loads(PUSH.read_bytes())
    if data is None:
        del push["message"]["data"]
    else:
        push["message"]["data"] = b64(data)
    return deployment.watch.post(AUDIT_PATH, json=push)


def test_an_audit_entry_starts_a_watch(audit_deployment: Deployment) -> None:
    entry = load("audit-spanner-create-instance-first.json")
    name = entry["operation"]["id"]
    audit_deployment.fetch.results = [Fetched({"name": name, "done": False})]
    response = audit_push(audit_deployment, json.dumps(entry).encode())
    assert is_2xx(response)
    [request] = audit_deployment.fetch.calls
    assert request.operation == name
    [task] = audit_deployment.schedule.tasks
    parsed = checks.TaskName.parse(task.task_id)
    assert parsed is not None and parsed.chain == checks.DISCOVERED_CHAIN


@pytest.mark.parametrize("data", [None, b"", b"{not json", b"[]", b'{"operation": 1}'])
def test_odd_audit_messages_are_acknowledged_and_nothing_is_published(
    audit_deployment: Deployment, data: bytes | None
) -> None:
    response = audit_push(audit_deployment, data)
    assert response.status_code == 200
    assert audit_deployment.publish.messages == [] and audit_deployment.fetch.calls == []


def test_a_request_that_is_not_a_push_is_refused_by_on_audit_entry(
    audit_deployment: Deployment,
) -> None:
    response = audit_deployment.watch.post(AUDIT_PATH, data=b"hello")
    assert response.status_code == 400
    assert audit_deployment.publish.messages == []


# --- on_sweep ---------------------------------------------------------------------------------


@dataclass
class SweepDeployment:
    client: FlaskClient
    schedule: FakeQueue
    pages: dict[str, Any]


@pytest.fixture
def sweeping(environment: None, load_function: LoadFunction) -> SweepDeployment:
    """on_sweep as served, its handlers on the fakes and its lister answering ``pages`` by
    parent (a parent missing from it answers 503)."""
    app, module = load_function("on_sweep")
    schedule, fetch = FakeQueue(), FakeFetch([Fetched({"name": "x", "done": False})])
    module.HANDLERS = Handlers(
        module.SETTINGS, fetch=fetch, queue=schedule, publish=RecordingPublish(), clock=Clock()
    )
    pages: dict[str, Any] = {}

    class Lister:
        def list_page(self, api: str, version: str, parent: str, token: str, f: str) -> Any:
            if parent in pages:
                return Fetched(pages[parent])
            return FetchFailed(503, {"code": 14, "message": "unavailable", "details": []})

    module.FETCHER = Lister()
    return SweepDeployment(app.test_client(), schedule, pages)


def test_a_sweep_watches_the_pending_operations_of_each_parent(
    sweeping: SweepDeployment,
) -> None:
    parent = "projects/p/locations/global"
    sweeping.pages[parent] = {"operations": [{"name": f"{parent}/operations/o1", "done": False}]}
    response = sweeping.client.post("/", json={"parents": [parent]})
    assert response.status_code == 200
    [result] = json.loads(response.get_data())
    assert (result["parent"], result["pending"], result["started"]) == (parent, 1, 1)
    assert len(sweeping.schedule.tasks) == 1


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({}, "expected"),
        ({"parents": []}, "expected"),
        ({"parents": [7]}, "expected"),
        ({"parents": ["projects/p"]}, "projects/PROJECT/locations/LOCATION"),
        ({"parents": ["container.googleapis.com=projects/p/locations/l"]}, "ALLOWED_APIS"),
    ],
)
def test_a_sweep_naming_no_valid_parent_is_refused_without_a_retry_loop(
    sweeping: SweepDeployment, body: dict[str, Any], says: str
) -> None:
    response = sweeping.client.post("/", json=body)
    assert response.status_code == 400 and says in response.get_data(as_text=True)
    assert sweeping.schedule.tasks == []


def test_a_parent_that_cannot_be_listed_answers_500_after_the_others(
    sweeping: SweepDeployment,
) -> None:
    good = "projects/p/locations/global"
    sweeping.pages[good] = {}
    response = sweeping.client.post("/", json={"parents": ["projects/q/locations/l", good]})
    assert response.status_code == 500
    failed, swept = json.loads(response.get_data())
    assert "unavailable" in failed["error"] and swept["parent"] == good
