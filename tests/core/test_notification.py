"""The notification contract: data valid against the schema, attributes subscribers filter on."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonschema
import pytest

from opwatch import notification
from opwatch.contracts import WatchRequest
from opwatch.core import Finish, Outcome, Progress
from opwatch.errors import InvalidWatchRequest, Violation
from opwatch.status import make_status
from tests.fakes import OPERATION, RESULTS, T0

SCHEMA = json.loads(resources.files("opwatch").joinpath("schemas/notification.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
REQUEST = WatchRequest(operation=OPERATION, watch_id="w-1", labels={"team": "search"})
DONE = {"name": OPERATION, "done": True, "response": {"ok": True}}


def finished(
    outcome: Outcome, operation: dict[str, Any] | None, error: Any = None
) -> notification.Notification:
    finish = Finish(outcome, operation, error, Progress(started=T0, polls=3))
    return notification.finished(REQUEST, finish, now=T0, results_topic=RESULTS)


@pytest.mark.parametrize(
    ("outcome", "operation", "error"),
    [
        (Outcome.SUCCEEDED, DONE, None),
        (Outcome.FAILED, {**DONE, "error": {"code": 9, "message": "x"}}, make_status(9, "x")),
        (Outcome.TIMED_OUT, {"name": OPERATION, "done": False}, make_status(4, "late")),
        (Outcome.NOT_FOUND, None, make_status(5, "gone")),
        (Outcome.PERMISSION_DENIED, None, make_status(7, "denied")),
    ],
)
def test_every_outcome_matches_the_schema(outcome: Outcome, operation: Any, error: Any) -> None:
    message = finished(outcome, operation, error)
    VALIDATOR.validate(message.to_json())
    assert message.to_json()["outcome"] == outcome.value


def test_invalid_request_matches_the_schema_and_explains() -> None:
    error = InvalidWatchRequest(
        [Violation("api", "not allowed")], raw={"api": "evil.example"}, watch_id="m-1"
    )
    message = notification.invalid_request(
        error, started=T0, now=T0, polls=0, results_topic=RESULTS
    )
    data = message.to_json()
    VALIDATOR.validate(data)
    assert data["error"]["code"] == 3
    assert data["error"]["details"][0]["fieldViolations"] == [
        {"field": "api", "description": "not allowed"}
    ]
    assert data["request"] == {"api": "evil.example"}
    assert message.attributes["outcome"] == "INVALID_REQUEST"
    assert "operation" not in message.attributes, "empty attributes are left out"


def test_schema_refuses_a_success_with_an_error() -> None:
    data = finished(Outcome.SUCCEEDED, DONE).to_json()
    assert not VALIDATOR.is_valid({**data, "error": make_status(2, "x")})
    assert not VALIDATOR.is_valid({**data, "outcome": "DONE"})


def test_attributes_carry_filters_labels_and_cloudevents_binding() -> None:
    attributes = finished(Outcome.SUCCEEDED, DONE).attributes
    assert attributes == {
        "outcome": "SUCCEEDED",
        "operation": OPERATION,
        "api": "cloudaicompanion.googleapis.com",
        "watch_id": "w-1",
        "label_team": "search",
        "ce-specversion": "1.0",
        "ce-type": "dev.opwatch.operation.v1.finished",
        "ce-source": f"//cloudaicompanion.googleapis.com/{OPERATION}",
        "ce-id": "w-1",
        "ce-time": "2026-11-27T12:00:00.000Z",
        "content-type": "application/json",
    }


def test_oversized_response_is_dropped_with_a_flag_not_the_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    huge = {
        **DONE,
        "metadata": {"target": "t"},
        "response": {"blob": "x" * (notification.MAX_DATA_BYTES + 10)},
    }
    data = finished(Outcome.SUCCEEDED, huge)
    assert len(data.data) <= notification.MAX_DATA_BYTES
    decoded = data.to_json()
    assert decoded["operation_truncated"] is True
    assert decoded["operation"] == {"name": OPERATION, "done": True, "metadata": {"target": "t"}}


def test_oversized_everything_keeps_the_verdict() -> None:
    huge = {**DONE, "name": "n" * (notification.MAX_DATA_BYTES + 10)}
    error = make_status(9, "failed", [{"blob": "y" * 100}])
    decoded = finished(Outcome.FAILED, huge, error).to_json()
    assert decoded["operation"] == {"done": True}
    assert decoded["error"] == make_status(9, "failed")
    assert decoded["operation_truncated"] is True


def test_small_notification_is_not_flagged() -> None:
    assert finished(Outcome.SUCCEEDED, DONE).to_json()["operation_truncated"] is False


def test_attribute_values_fit_pubsub_limits() -> None:
    error = InvalidWatchRequest(
        [Violation("operation", "bad")], raw={"operation": "é" * 2000}, watch_id="m"
    )
    message = notification.invalid_request(
        error, started=T0, now=T0, polls=0, results_topic=RESULTS
    )
    assert all(len(value.encode()) <= 1024 for value in message.attributes.values())


def test_oversized_success_keeps_the_verdict_without_an_error() -> None:
    huge = {**DONE, "name": "n" * (notification.MAX_DATA_BYTES + 10)}
    decoded = finished(Outcome.SUCCEEDED, huge).to_json()
    assert (decoded["operation"], decoded["error"]) == ({"done": True}, None)


# --- survivors of ./run mutants (tests/mutants.py notification), each killed here --------------


def invalid(raw: dict[str, Any] | None, description: str = "bad") -> notification.Notification:
    error = InvalidWatchRequest([Violation("operation", description)], raw=raw, watch_id="m-1")
    return notification.invalid_request(error, started=T0, now=T0, polls=0, results_topic=RESULTS)


def test_an_invalid_request_echoes_what_could_be_read_of_it() -> None:
    """Caught: the request's api or operation not read, a topic other than the results
    topic, and the fallbacks for fields of the wrong type or missing."""
    echoed = invalid({"api": "spanner.googleapis.com", "operation": "nope"})
    assert echoed.topic == RESULTS
    assert echoed.attributes["operation"] == "nope"
    assert echoed.attributes["ce-source"] == "//spanner.googleapis.com/nope"
    wrong_types = invalid({"api": 5, "operation": ["x"]})
    assert "operation" not in wrong_types.attributes
    assert wrong_types.attributes["ce-source"] == "//cloudaicompanion.googleapis.com"
    assert invalid(None).attributes["ce-source"] == "//cloudaicompanion.googleapis.com"


def test_an_invalid_request_s_message_is_cut_at_2000_characters() -> None:
    message = invalid({"operation": "x"}, description="d" * 5000)
    assert len(message.to_json()["error"]["message"]) == 2000


def test_the_data_is_compact_utf_8_json() -> None:
    """Caught: default separators (a larger message) and ASCII escapes."""
    request = WatchRequest(operation=OPERATION, watch_id="w-1", labels={"team": "équipe"})
    finish = Finish(Outcome.SUCCEEDED, DONE, None, Progress(started=T0, polls=3))
    message = notification.finished(request, finish, now=T0, results_topic=RESULTS)
    assert b'"outcome":"SUCCEEDED"' in message.data
    assert "équipe".encode() in message.data and b"\\u00e9" not in message.data


def test_an_attribute_cut_inside_a_character_drops_that_character() -> None:
    """Pub/Sub attribute values are at most 1,024 bytes
    (https://cloud.google.com/pubsub/quotas#resource_limits): a cut in the middle of a
    two-byte character drops it rather than failing. Caught: a strict decode."""
    message = invalid({"operation": "a" + "é" * 2000})
    value = message.attributes["operation"]
    assert value == "a" + "é" * 511 and len(value.encode()) == 1023


def test_a_message_of_exactly_the_pubsub_limit_is_sent_whole() -> None:
    """Pub/Sub takes a message of up to 10 MB; opwatch's limit is MAX_DATA_BYTES inclusive: a
    message that size is not trimmed, nor is one that fits once the response is dropped."""

    def whole(blob: int) -> notification.Notification:
        return finished(Outcome.SUCCEEDED, {**DONE, "response": {"blob": "x" * blob}})

    exact = whole(notification.MAX_DATA_BYTES - len(whole(0).data))
    assert len(exact.data) == notification.MAX_DATA_BYTES
    assert exact.to_json()["operation_truncated"] is False
    assert len(exact.to_json()["operation"]["response"]["blob"]) > 0

    def without_response(blob: int) -> notification.Notification:
        huge = {
            **DONE,
            "response": {"blob": "x" * (notification.MAX_DATA_BYTES + 10)},
            "metadata": {"blob": "y" * blob},
        }
        return finished(Outcome.SUCCEEDED, huge)

    fits = without_response(notification.MAX_DATA_BYTES - len(without_response(0).data))
    assert len(fits.data) == notification.MAX_DATA_BYTES
    decoded = fits.to_json()
    assert decoded["operation_truncated"] is True
    assert "response" not in decoded["operation"]
    assert len(decoded["operation"]["metadata"]["blob"]) > 0


def test_the_overdue_message_says_what_runs_late_and_where_to() -> None:
    """schemas/overdue.json's message, as a subscriber reads it: the data and the attributes,
    its own CloudEvents type and id, and no outcome (an outcome filter never sees it)."""
    from datetime import timedelta

    from opwatch.learned import Expectation

    learned = Expectation("run.jobs", 40, 600.0, 900.0, 1200.0)
    message = notification.overdue(
        REQUEST,
        Progress(started=T0, polls=7),
        age=1800.12345,
        limit=1200.00049,
        learned=learned,
        now=T0 + timedelta(minutes=30),
        results_topic=RESULTS,
    )
    assert message.topic == RESULTS
    overdue_schema = json.loads(
        resources.files("opwatch").joinpath("schemas/overdue.json").read_text()
    )
    jsonschema.Draft202012Validator(overdue_schema).validate(json.loads(message.data))
    assert json.loads(message.data) == {
        "watch_id": "w-1",
        "operation": OPERATION,
        "api": REQUEST.api,
        "labels": {"team": "search"},
        "age_seconds": 1800.123,
        "overdue_after_seconds": 1200.0,
        "schedule": {"source": "learned", "kind": "run.jobs", "samples": 40},
        "polls": 7,
        "watch_started": "2026-11-27T12:00:00.000Z",
        "observed": "2026-11-27T12:30:00.000Z",
    }
    assert message.attributes == {
        "overdue": "true",
        "operation": OPERATION,
        "api": REQUEST.api,
        "watch_id": "w-1",
        "label_team": "search",
        "ce-specversion": "1.0",
        "ce-type": "dev.opwatch.operation.v1.overdue",
        "ce-source": f"//{REQUEST.api}/{OPERATION}",
        "ce-id": "w-1/overdue",
        "ce-time": "2026-11-27T12:30:00.000Z",
        "content-type": "application/json",
    }
    own = WatchRequest(operation=OPERATION, watch_id="w-2", notify_topic="projects/p/topics/mine")
    mine = notification.overdue(
        own, Progress(started=T0), age=1.0, limit=1.0, learned=None, now=T0, results_topic=RESULTS
    )
    assert mine.topic == "projects/p/topics/mine"
    assert json.loads(mine.data)["schedule"] == {"source": "profile"}
    assert "label_team" not in mine.attributes


def test_the_notification_says_which_schedule_the_looks_followed() -> None:
    from opwatch.learned import Expectation

    learned = Expectation("run.jobs", 40, 600.0, 900.0, 1200.0)
    hinted = WatchRequest(operation=OPERATION, watch_id="w-1", expected_duration=60.0)

    def schedule(request: WatchRequest, kind: Expectation | None) -> Any:
        finish = Finish(Outcome.SUCCEEDED, DONE, None, Progress(started=T0, polls=3))
        sent = notification.finished(request, finish, now=T0, results_topic=RESULTS, learned=kind)
        return sent.to_json()["schedule"]

    assert schedule(hinted, learned) == {"source": "hint"}
    assert schedule(REQUEST, learned) == {"source": "learned", "kind": "run.jobs", "samples": 40}
    assert schedule(REQUEST, None) == {"source": "profile"}


def test_the_overdue_limit_keeps_its_milliseconds() -> None:
    """A limit of 1.5 x a 1,000.3 s hint is 1,500.45 s: said to the millisecond, not rounded to
    whole seconds (schemas/overdue.json: overdue_after_seconds is a number of seconds)."""
    message = notification.overdue(
        REQUEST,
        Progress(started=T0, polls=3),
        age=1600.0,
        limit=1500.4504,
        learned=None,
        now=T0,
        results_topic=RESULTS,
    )
    assert json.loads(message.data)["overdue_after_seconds"] == 1500.45
