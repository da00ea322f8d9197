"""opwatch_client: the helper subscribers and publishers depend on (client/).

Notifications here are the ones the functions really publish (the service driven with the
conftest fakes), and watch requests are checked against the functions' own parser.
"""

from __future__ import annotations

import ast
import base64
import json
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import opwatch_client
from opwatch import contracts
from opwatch.errors import InvalidWatchRequest
from opwatch_client import (
    Deduplicator,
    InvalidNotification,
    Notification,
    Polling,
    WatchRequest,
    from_pubsub_message,
    notification_schema,
    parse_cloud_event,
    parse_message,
    parse_push,
    publish_watch_request,
)
from tests.fakes import OPERATION, Harness, failed, pending, pubsub_message, succeeded

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "client"
SCHEMAS = ROOT / "functions" / "opwatch" / "schemas"
WATCH_REQUEST_SCHEMA = jsonschema.Draft202012Validator(
    json.loads((SCHEMAS / "watch-request.json").read_text())
)


# --- building and publishing watch requests ---------------------------------------------------


def test_only_the_fields_set_are_sent() -> None:
    assert WatchRequest(OPERATION).to_json() == {"operation": OPERATION}
    assert WatchRequest(OPERATION, polling=Polling()).to_json() == {"operation": OPERATION}


def test_typed_fields_become_the_contract_json() -> None:
    request = WatchRequest(
        OPERATION,
        api="spanner.googleapis.com",
        api_version="v1",
        labels={"team": "search"},
        timeout=timedelta(hours=2),
        expected_duration=90,
        notify_topic="projects/p/topics/team-results",
        watch_id="build-42",
        polling=Polling(initial_delay=5, max_delay=timedelta(minutes=10), multiplier=1.5),
        kind="index builds",
        warn_overdue=True,
    )
    assert request.to_json() == {
        "operation": OPERATION,
        "api": "spanner.googleapis.com",
        "api_version": "v1",
        "notify_topic": "projects/p/topics/team-results",
        "watch_id": "build-42",
        "kind": "index builds",
        "warn_overdue": True,
        "labels": {"team": "search"},
        "timeout": "7200s",
        "expected_duration": "90s",
        "polling": {"initial_delay": "5s", "max_delay": "600s", "multiplier": 1.5},
    }
    assert json.loads(request.to_bytes()) == request.to_json()
    assert not list(WATCH_REQUEST_SCHEMA.iter_errors(request.to_json()))


def test_validate_returns_the_request_as_the_functions_read_it() -> None:
    """Checked against a fixed document, not against ``parse_watch_request(to_bytes())`` (which
    is what ``validate`` runs, so that comparison passed with any ``to_json``, e.g. one that
    dropped ``labels`` or wrote ``timeout`` in minutes)."""
    request = WatchRequest(OPERATION, labels={"team": "a"}, timeout=60, watch_id="w-1")
    expected = {
        "operation": OPERATION,
        "labels": {"team": "a"},
        "timeout": "60s",
        "watch_id": "w-1",
    }
    assert request.to_json() == expected
    assert not list(WATCH_REQUEST_SCHEMA.iter_errors(request.to_json()))
    understood = request.validate()
    assert understood == contracts.WatchRequest(
        operation=OPERATION, watch_id="w-1", labels={"team": "a"}, timeout=60.0
    )
    assert understood.to_json() == {
        **expected,
        "api": "cloudaicompanion.googleapis.com",
        "api_version": "v1",
    }


def test_validate_reports_every_broken_rule_like_the_functions() -> None:
    request = WatchRequest("not/an/op", timeout=-1, labels={"Bad": "x"})
    with pytest.raises(InvalidWatchRequest) as caught:
        request.validate()
    assert {v.field for v in caught.value.violations} == {"operation", "timeout", "labels"}


def test_allowlists_are_checked_when_given() -> None:
    request = WatchRequest(OPERATION, api="run.googleapis.com", notify_topic="projects/p/topics/t")
    request.validate()  # unknown allowlists: not checked
    with pytest.raises(InvalidWatchRequest) as caught:
        request.validate(allowed_apis={contracts.DEFAULT_API}, allowed_notify_topics=set())
    assert {v.field for v in caught.value.violations} == {"api", "notify_topic"}


DURATIONS = st.one_of(st.none(), st.integers(-5, 3_000_000), st.floats(-1, 1e7, allow_nan=False))


def contract_document(
    operation: str,
    api: str | None,
    labels: dict[str, str],
    timeout: float | None,
    watch_id: str | None,
    multiplier: float | None,
) -> dict[str, Any]:
    """The watch request's JSON written from the contract (schemas/watch-request.json), not by
    the helper: durations are protobuf-JSON strings of seconds, unset fields are left out."""
    document: dict[str, Any] = {"operation": operation}
    if api is not None:
        document["api"] = api
    if watch_id is not None:
        document["watch_id"] = watch_id
    if labels:
        document["labels"] = labels
    if timeout is not None:
        document["timeout"] = f"{float(timeout):.9f}".rstrip("0").rstrip(".") + "s"
    if multiplier is not None:
        document["polling"] = {"multiplier": multiplier}
    return document


@settings(max_examples=200, deadline=None)
@given(
    operation=st.one_of(st.just(OPERATION), st.text(max_size=40)),
    api=st.one_of(st.none(), st.sampled_from(["spanner.googleapis.com", "evil.example.com"])),
    labels=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
    timeout=DURATIONS,
    watch_id=st.one_of(st.none(), st.text(max_size=10)),
    multiplier=st.one_of(st.none(), st.floats(0, 6, allow_nan=False)),
)
def test_the_helper_accepts_exactly_what_the_functions_accept(
    operation: str,
    api: str | None,
    labels: dict[str, str],
    timeout: float | None,
    watch_id: str | None,
    multiplier: float | None,
) -> None:
    """The functions parse the document the contract describes (built here, independently of
    ``to_json``); the helper must send that document and give the same verdict. Whatever the
    functions accept is also valid against the published JSON Schema."""
    request = WatchRequest(
        operation,
        api=api,
        labels=labels,
        timeout=timeout,
        watch_id=watch_id,
        polling=Polling(multiplier=multiplier),
    )
    document = contract_document(operation, api, labels, timeout, watch_id, multiplier)
    assert request.to_json() == document
    allowed = {contracts.DEFAULT_API, "spanner.googleapis.com"}
    try:
        ours: Any = request.validate(allowed_apis=allowed, allowed_notify_topics=set())
    except InvalidWatchRequest as error:
        ours = sorted((v.field, v.description) for v in error.violations)
    try:
        theirs: Any = contracts.parse_watch_request(
            json.dumps(document).encode(),
            default_watch_id=watch_id or "unpublished",
            allowed_apis=allowed,
            allowed_notify_topics=set(),
        )
    except InvalidWatchRequest as error:
        theirs = sorted((v.field, v.description) for v in error.violations)
    else:
        assert not list(WATCH_REQUEST_SCHEMA.iter_errors(document))
    assert ours == theirs


@dataclass
class FakePublisher:
    sent: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)

    def publish(self, topic: str, data: bytes, **attributes: str) -> Any:
        self.sent.append((topic, data, attributes))
        return SimpleNamespace(result=lambda timeout=None: f"id-{len(self.sent)}")


def test_publish_sends_the_validated_request() -> None:
    publisher = FakePublisher()
    topic = "projects/p/topics/opwatch-watch-requests"
    message_id = publish_watch_request(
        publisher, topic, WatchRequest(OPERATION, watch_id="w"), attributes={"trace": "t"}
    )
    assert message_id == "id-1"
    ((sent_topic, data, attributes),) = publisher.sent
    assert sent_topic == topic and attributes == {"trace": "t"}
    assert json.loads(data) == {"operation": OPERATION, "watch_id": "w"}


def test_publish_sends_nothing_invalid() -> None:
    publisher = FakePublisher()
    with pytest.raises(InvalidWatchRequest):
        publish_watch_request(publisher, "projects/p/topics/t", WatchRequest("x"))
    assert publisher.sent == []


# --- parsing notifications ----------------------------------------------------------------------


def published(harness: Harness, request: Any, *results: Any) -> Any:
    """The notification the service publishes for ``request`` given fetch ``results``."""
    harness.fetch.results = list(results)
    harness.handlers.on_watch_message(pubsub_message(request))
    harness.run_checks()
    (message,) = harness.publish.messages
    return message


def test_a_succeeded_notification(harness: Harness) -> None:
    message = published(
        harness, {"operation": OPERATION, "labels": {"team": "a"}}, pending(), succeeded()
    )
    notification = parse_message(message.data, message.attributes, "123")
    assert notification.succeeded and notification.outcome == "SUCCEEDED"
    assert notification.watch_id == "m-1" and notification.message_id == "123"
    assert notification.operation_name == OPERATION
    assert notification.labels == {"team": "a"} and notification.polls == 2
    assert notification.operation is not None and notification.operation["done"] is True
    assert notification.error is None and notification.error_message == ""
    assert notification.observed_done >= notification.watch_started
    assert notification.attributes["label_team"] == "a"
    assert not notification.operation_truncated


def test_a_failed_notification(harness: Harness) -> None:
    message = published(harness, {"operation": OPERATION}, failed(message="boom"))
    notification = parse_message(message.data, message.attributes)
    assert notification.outcome == "FAILED" and not notification.succeeded
    assert notification.error_message == "boom"


def test_an_invalid_request_notification(harness: Harness) -> None:
    message = published(harness, {"operation": "nope", "labels": 3})
    notification = parse_message(message.data)  # attributes are optional
    assert notification.outcome == "INVALID_REQUEST"
    assert notification.operation_name == "nope"  # from the echoed request
    assert "BadRequest" in json.dumps(notification.error)


def test_a_notification_of_an_unreadable_request_has_no_operation(harness: Harness) -> None:
    harness.handlers.on_watch_message(pubsub_message(None, raw=b"[]"))
    (message,) = harness.publish.messages
    assert parse_message(message.data).operation_name == ""


def test_every_transport_gives_the_same_notification(harness: Harness) -> None:
    message = published(harness, {"operation": OPERATION}, succeeded())
    wire = {
        "data": base64.b64encode(message.data).decode(),
        "attributes": dict(message.attributes),
        "messageId": "77",
    }
    direct = parse_message(message.data, message.attributes, "77")
    pushed = parse_push({"message": wire, "subscription": "projects/p/subscriptions/s"})
    event = parse_cloud_event({"message": {**wire, "message_id": "77"}})
    pulled = from_pubsub_message(
        SimpleNamespace(data=message.data, attributes=message.attributes, message_id="77")
    )
    assert direct == pushed == event == pulled


@pytest.mark.parametrize(
    ("envelope", "reason"),
    [
        ({}, "expected a Pub/Sub message object"),
        ({"message": {"attributes": {}}}, "no data"),
        ({"message": {"data": "***"}}, "not base64"),
        ({"message": {"data": base64.b64encode(b"{").decode()}}, "not JSON"),
        ({"message": {"data": "e30=", "attributes": ["x"]}}, "attributes are not an object"),
        ({"message": {"data": "e30="}}, "not an opwatch notification"),
    ],
)
def test_what_is_not_a_notification(envelope: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidNotification, match=reason):
        parse_push(envelope)


def test_data_must_match_the_schema_and_the_attributes(harness: Harness) -> None:
    message = published(harness, {"operation": OPERATION}, succeeded())
    data = json.loads(message.data)
    for broken, reason in (
        ({**data, "polls": -1}, "polls"),
        ({**data, "outcome": "MAYBE"}, "not an opwatch notification"),
        ({**data, "extra": 1}, "extra"),
        ({**data, "error": {"code": 2}}, "error"),
        ({**data, "watch_started": "yesterdayZ"}, "RFC 3339"),
    ):
        with pytest.raises(InvalidNotification, match=reason):
            parse_message(json.dumps(broken))
    with pytest.raises(InvalidNotification, match="attribute outcome"):
        parse_message(message.data, {**message.attributes, "outcome": "FAILED"})
    with pytest.raises(InvalidNotification, match="attribute watch_id"):
        parse_message(message.data, {**message.attributes, "watch_id": "other"})


def test_the_schema_is_the_published_file_itself() -> None:
    # Read from the opwatch package (the same file the functions ship), never a copy.
    assert notification_schema() == json.loads((SCHEMAS / "notification.json").read_text())
    copies = list((CLIENT / "opwatch_client").rglob("*.json"))
    assert copies == [], f"the client must not carry its own schema copy: {copies}"


def test_notification_is_reexported() -> None:
    assert opwatch_client.Notification is Notification
    assert set(opwatch_client.__all__) <= set(dir(opwatch_client))


# --- deduplication ------------------------------------------------------------------------------


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_repeats_are_caught_within_the_window() -> None:
    clock = Ticks()
    seen = Deduplicator(max_entries=10, max_age=timedelta(seconds=60), clock=clock)
    assert seen.first_time("a") and not seen.first_time("a")
    assert "a" in seen and len(seen) == 1
    clock.now = 59.9
    assert not seen.first_time("a")
    clock.now = 60.0
    assert "a" not in seen and seen.first_time("a")


def test_the_oldest_are_forgotten_beyond_the_count() -> None:
    seen = Deduplicator(max_entries=2, max_age=3600, clock=Ticks())
    assert seen.first_time("a") and seen.first_time("b") and seen.first_time("c")
    assert len(seen) == 2 and "a" not in seen and "b" in seen
    seen.forget("b")
    seen.forget("never")
    assert seen.first_time("b")


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError):
        Deduplicator(max_entries=0)
    with pytest.raises(ValueError):
        Deduplicator(max_age=0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("abcdef"), st.floats(0, 30)), max_size=40),
    st.integers(1, 4),
    st.floats(1, 60),
)
def test_matches_a_reference_model(
    offers: list[tuple[str, float]], max_entries: int, max_age: float
) -> None:
    clock = Ticks()
    seen = Deduplicator(max_entries=max_entries, max_age=max_age, clock=clock)
    model: list[tuple[str, float]] = []  # (id, time) oldest first
    for watch_id, step in offers:
        clock.now += step
        model = [(i, t) for i, t in model if clock.now - t < max_age]
        expected = watch_id not in {i for i, _ in model}
        if expected:
            model = [*model, (watch_id, clock.now)][-max_entries:]
        assert seen.first_time(watch_id) is expected
        assert len(seen) == len(model) <= max_entries


def test_concurrent_offers_let_one_through() -> None:
    seen = Deduplicator()
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda: results.append(seen.first_time("w"))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(results) == [False] * 7 + [True]


# --- no functions runtime -----------------------------------------------------------------------

HEAVY = ("functions_framework", "flask", "google.auth", "google.cloud.tasks_v2", "google.rpc")


def test_importing_the_helper_pulls_in_no_functions_runtime() -> None:
    code = (
        "import sys, opwatch_client\n"
        "print(sorted(m for m in sys.modules if m == 'opwatch' or m.startswith('opwatch.')))\n"
        f"print(sorted(m for m in sys.modules if m.startswith({HEAVY!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    shared, heavy = (ast.literal_eval(line) for line in result.stdout.splitlines())
    assert heavy == []
    # Exactly what client/setup.py ships of the functions' package.
    setup = (CLIENT / "setup.py").read_text()
    declared = ast.literal_eval(setup.split("SHARED_MODULES = ", 1)[1].splitlines()[0])
    assert {m.removeprefix("opwatch.") for m in shared} == (declared - {"__init__"}) | {"opwatch"}


def test_building_a_request_does_not_load_the_notification_validator() -> None:
    """The opwatch command builds its watch requests here; its start stays as quick as before."""
    code = (
        "import sys, opwatch_client\n"
        "opwatch_client.WatchRequest('projects/p/locations/l/operations/o', timeout=60).to_json()\n"
        "print('jsonschema' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "False"


def test_the_shared_modules_import_only_the_standard_library_and_each_other() -> None:
    setup = (CLIENT / "setup.py").read_text()
    declared = ast.literal_eval(setup.split("SHARED_MODULES = ", 1)[1].splitlines()[0])
    for name in declared:
        tree = ast.parse((ROOT / "functions" / "opwatch" / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                top = node.module.split(".")[0]
                if top == "opwatch":
                    assert node.module.removeprefix("opwatch.") in declared, node.module
                else:
                    assert top in sys.stdlib_module_names or top == "__future__", node.module
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] in sys.stdlib_module_names, alias.name
