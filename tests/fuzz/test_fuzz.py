"""Malformed and hostile input, generated: both functions answer it, and nothing is fetched.

Hypothesis (derandomized, so CI is deterministic) drives ``on_watch_request`` and ``on_check``
in-process through functions-framework's own app, with the composition root replaced by the
fakes, as in ``tests/service/test_functions.py``. For every generated watch request that breaks
the contract: no exception escapes, the push is answered 2xx (Pub/Sub must not redeliver a poison
message), exactly one INVALID_REQUEST notification is published with a reason a person can act
on, nothing is fetched or scheduled, and the notification is strict JSON that validates against
``notification.json`` and fits Pub/Sub's limits. Generated valid requests are never refused, and
their check task round-trips. Check bodies opwatch did not write (garbage, wrong shapes, tampered
tasks) are refused without a fetch or a task, never with a 5xx.

The example counts add up to more than 10,000 cases (:data:`EXAMPLES`).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import functions_framework
import jsonschema
import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from opwatch import checks
from opwatch.contracts import (
    FIELDS,
    LABEL_KEY_PATTERN,
    MAX_TIMEOUT,
    validate_watch_request,
)
from opwatch.core import Progress
from opwatch.handlers import Handlers
from opwatch.logs import LOGGER_NAME, JsonFormatter
from opwatch.notification import Notification
from tests.fakes import (
    CHECK_URL,
    OTHER_TOPIC,
    QUEUE,
    RESULTS,
    T0,
    Clock,
    FakeFetch,
    FakeQueue,
    RecordingPublish,
    pending,
)

SOURCE = Path(__file__).resolve().parents[2] / "functions" / "main.py"
SCHEMAS = Path(__file__).resolve().parents[2] / "functions" / "opwatch" / "schemas"
PUSH_PATH = "/projects/test-project/topics/opwatch-watch-requests"
ALLOWED_APIS = ("cloudaicompanion.googleapis.com", "spanner.googleapis.com")
ENVIRONMENT = {
    "RESULTS_TOPIC": RESULTS,
    "TASKS_QUEUE": QUEUE,
    "CHECK_URL": CHECK_URL,
    "ALLOWED_APIS": ",".join(ALLOWED_APIS),
    "ALLOWED_NOTIFY_TOPICS": OTHER_TOPIC,
    "TASKS_INVOKER_SA": "opwatch-invoker@test-project.iam.gserviceaccount.com",
}
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
NOTIFICATION_SCHEMA = jsonschema.Draft202012Validator(
    json.loads((SCHEMAS / "notification.json").read_text())
)
# Pub/Sub's limits on one message.
MAX_MESSAGE_BYTES = 10 * 1000 * 1000
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_KEY_BYTES = 256
MAX_ATTRIBUTE_VALUE_BYTES = 1024

# Examples per test; the total is the number of generated cases (> 10,000).
EXAMPLES = {
    "random_bytes": 1200,
    "invalid_utf8": 500,
    "json_not_an_object": 800,
    "broken_requests": 4000,
    "huge_and_deep": 300,
    "valid_requests": 1200,
    "check_garbage": 800,
    "check_wrong_shapes": 800,
    "check_tampered": 1500,
}


def fuzz(name: str) -> Any:
    return settings(
        max_examples=EXAMPLES[name],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )


# --- the functions, loaded once for the module ----------------------------------------------


class Records(logging.Handler):
    """Keeps the opwatch log records, formatted as they would be written (so formatting runs)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.format(record)
        self.records.append(record)


@dataclass
class Functions:
    watch: FlaskClient
    check: FlaskClient
    fetch: FakeFetch
    schedule: FakeQueue
    publish: RecordingPublish
    logs: Records

    def reset(self) -> None:
        self.fetch.calls.clear()
        self.fetch.results = [pending()]
        self.schedule.tasks.clear()
        self.schedule.names.clear()
        self.publish.messages.clear()
        self.logs.records.clear()

    def push(self, data: Any, *, attributes: dict[str, str] | None = None) -> TestResponse:
        """POST a Pub/Sub push whose message data is ``data`` (bytes are base64-encoded)."""
        message: dict[str, Any] = {
            "messageId": "fuzz-message-1",
            "message_id": "fuzz-message-1",
            "publishTime": "2026-11-27T12:00:00.000Z",
            "publish_time": "2026-11-27T12:00:00.000Z",
        }
        if isinstance(data, bytes):
            message["data"] = base64.b64encode(data).decode()
        elif data is not None:
            message["data"] = data
        if attributes:
            message["attributes"] = attributes
        body = {"subscription": "projects/test-project/subscriptions/push", "message": message}
        return self.watch.post(PUSH_PATH, json=body)

    def deliver(self, body: bytes) -> TestResponse:
        """POST a check body as Cloud Tasks would, from the configured queue."""
        headers = {"X-CloudTasks-TaskName": "w0123-1", "X-CloudTasks-QueueName": QUEUE}
        return self.check.post("/", data=body, content_type="application/json", headers=headers)


@pytest.fixture(scope="module")
def functions() -> Iterator[Functions]:
    logger = logging.getLogger(LOGGER_NAME)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in ENVIRONMENT.items():
            patch.setenv(name, value)
        patch.setattr(sys, "path", [*sys.path])
        patch.setattr(logger, "handlers", [])
        patch.setattr(logger, "propagate", logger.propagate)
        patch.setattr(logger, "level", logger.level)
        fetch, schedule, publish = FakeFetch([pending()]), FakeQueue(), RecordingPublish()
        clients = []
        for target in ("on_watch_request", "on_check"):
            app = functions_framework.create_app(target, source=str(SOURCE))
            module = sys.modules["main"]
            module.HANDLERS = Handlers(
                module.SETTINGS, fetch=fetch, queue=schedule, publish=publish, clock=Clock()
            )
            clients.append(app.test_client())
        records = Records()
        logger.handlers = [records]  # instead of stdout: thousands of lines, and checked below
        yield Functions(*clients, fetch, schedule, publish, records)
        sys.modules.pop("main", None)


# --- what every answer must satisfy -----------------------------------------------------------


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(data: bytes) -> Any:
    """Parse as RFC 8259 JSON: UTF-8, and no NaN or Infinity (other languages refuse them)."""
    return json.loads(data.decode("utf-8"), parse_constant=_no_constant)


def assert_fits_pubsub(message: Notification) -> None:
    attributes = message.attributes
    size = len(message.data) + sum(len(k.encode()) + len(v.encode()) for k, v in attributes.items())
    assert size <= MAX_MESSAGE_BYTES
    assert len(attributes) <= MAX_ATTRIBUTES
    for key, value in attributes.items():
        assert 0 < len(key.encode("utf-8")) <= MAX_ATTRIBUTE_KEY_BYTES, key
        assert not key.startswith("goog"), key
        assert len(value.encode("utf-8")) <= MAX_ATTRIBUTE_VALUE_BYTES, key


def assert_valid_notification(message: Notification) -> dict[str, Any]:
    assert_fits_pubsub(message)
    data: dict[str, Any] = strict_json(message.data)
    NOTIFICATION_SCHEMA.validate(data)
    assert message.attributes["outcome"] == data["outcome"]
    assert message.attributes["watch_id"] == data["watch_id"]
    return data


def assert_answered_invalid(functions: Functions, response: TestResponse) -> dict[str, Any]:
    """One INVALID_REQUEST with human reasons, acknowledged, nothing fetched or scheduled."""
    assert 200 <= response.status_code < 300, (response.status_code, response.data[:500])
    assert functions.fetch.calls == []
    assert functions.schedule.tasks == []
    [message] = functions.publish.messages
    assert message.topic == RESULTS, "an invalid request's notify_topic is not trusted"
    data = assert_valid_notification(message)
    assert data["outcome"] == "INVALID_REQUEST"
    assert data["error"]["code"] == 3
    violations = [
        violation
        for detail in data["error"]["details"]
        if detail.get("@type") == BAD_REQUEST
        for violation in detail["fieldViolations"]
    ]
    assert violations
    for violation in violations:
        description = violation["description"]
        assert re.search(r"[A-Za-z]{3,}.*[A-Za-z]{3,}", description), violation
        assert "Traceback" not in description
    return data


def assert_check_refused(functions: Functions, response: TestResponse) -> None:
    """Refused without a fetch or a task, never a 5xx; an echo (if any) is a valid notification."""
    assert response.status_code < 500, (response.status_code, response.data[:500])
    assert functions.fetch.calls == []
    assert functions.schedule.tasks == []
    for message in functions.publish.messages:
        assert assert_valid_notification(message)["outcome"] == "INVALID_REQUEST"
    assert functions.logs.records, "a refused check is logged"


# --- strategies -----------------------------------------------------------------------------

# Built from alphabets rather than st.from_regex: several times faster to generate.
_FIRST = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_~+=@()-"
SEGMENT = st.builds(
    str.__add__, st.sampled_from(_FIRST), st.text(alphabet=_FIRST + ".", max_size=15)
)
LABEL_KEYS = st.builds(
    str.__add__,
    st.sampled_from("abcdefghijklmnopqrstuvwxyz"),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", max_size=62),
)
WATCH_IDS = st.text(alphabet=[chr(c) for c in range(0x21, 0x7F)], min_size=1, max_size=128)
API_VERSIONS = st.sampled_from(["v1", "v2", "v1beta", "v1beta1", "v1alpha2", "v22", "v3p1beta1"])


@st.composite
def operation_names(draw: st.DrawFn) -> str:
    parents = draw(st.lists(SEGMENT, min_size=1, max_size=5))
    name = "/".join([*parents, "operations", draw(SEGMENT)])
    return name.replace("..", "._")


def durations(low: float, high: float) -> st.SearchStrategy[str]:
    whole = st.integers(int(max(low, 1)), int(high)).map(lambda n: f"{n}s")
    fraction = st.integers(round(low * 1000), round(high * 1000)).map(
        lambda ms: f"{ms // 1000}.{ms % 1000:03d}s"
    )
    return st.one_of(whole, fraction)


LABEL_VALUES = st.one_of(
    st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=256),
    st.just("\U0001f600" * 256),  # 1024 UTF-8 bytes: Pub/Sub's attribute value limit exactly
)
LABELS = st.dictionaries(LABEL_KEYS, LABEL_VALUES, max_size=32)


@st.composite
def pollings(draw: st.DrawFn) -> dict[str, Any]:
    polling: dict[str, Any] = {}
    initial = draw(st.none() | st.integers(1, 3600))
    if initial is not None:
        polling["initial_delay"] = f"{initial}s"
    if draw(st.booleans()):
        polling["max_delay"] = f"{draw(st.integers(max(initial or 1, 1), 6 * 3600))}s"
    if draw(st.booleans()):
        polling["multiplier"] = draw(
            st.floats(1.0, 4.0, allow_nan=False, allow_infinity=False) | st.integers(1, 4)
        )
    if draw(st.booleans()):
        polling["not_found_grace"] = draw(durations(0.0, 3600.0) | st.just("0s"))
    return polling


# Built once: building them per draw was most of the fuzz tests' time.
OPERATION_NAMES = operation_names()
OPTIONAL_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "api": st.sampled_from(ALLOWED_APIS).map(lambda h: h.upper() if len(h) % 2 else h),
    "api_version": API_VERSIONS,
    "labels": LABELS,
    "timeout": durations(0.001, MAX_TIMEOUT),
    "expected_duration": durations(0.001, MAX_TIMEOUT),
    "notify_topic": st.sampled_from([RESULTS, OTHER_TOPIC]),
    "watch_id": WATCH_IDS,
    # Printable ASCII and a few wider characters: no control character, which a kind refuses.
    "kind": st.text(
        st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from("éß中文🙂"),
        min_size=1,
        max_size=200,
    ),
    "warn_overdue": st.booleans(),
    "polling": pollings(),
}


@st.composite
def valid_requests(draw: st.DrawFn) -> dict[str, Any]:
    request: dict[str, Any] = {"operation": draw(OPERATION_NAMES)}
    for name, strategy in OPTIONAL_FIELDS.items():
        if draw(st.booleans()):
            request[name] = draw(strategy)
    return request


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)

# Inserted anywhere in a valid name, each makes it invalid (path tricks, URL parts, whitespace,
# control characters, and characters that look like ASCII but are not).
NAME_BREAKERS = [
    "..",
    "//",
    "?",
    "?alt=media",
    "#",
    "#frag",
    "%2F",
    "%2e%2e",
    "\r\n",
    "\n",
    "\r",
    " ",
    "\t",
    "\x00",
    "\x7f",
    "\u00a0",
    "\u2028",
    "\u200b",
    "\u2215",  # division slash
    "\uff0f",  # fullwidth solidus
    "\u2024",  # one dot leader
    "\uff0e",  # fullwidth full stop
    "\u0430",  # Cyrillic a
    "\u0455",  # Cyrillic dze, like s
    "https://",
    "file:",
    "http://169.254.169.254/",
    # "@evil.example/" alone is a valid first segment (it stays in the path); with the port's
    # colon it cannot be anywhere in a name.
    "@evil.example:443/",
    "\\",
]
SCHEMES = ["https://", "http://", "file:", "file:///", "gs://", "//", "/", "javascript:"]
EVIL_HOSTS = [
    "evil.example",
    "googleapis.com.evil.example",
    "cloudaicompanion.googleapis.com.evil.example",
    "cloudaicompanion.googleapis.com.",
    "cloudaicompanion.googleapis.com:443",
    "cloudaicompanion.googleapis.com@evil.example",
    "cloudaicompanion.googleapis.com/..",
    "evil.example#cloudaicompanion.googleapis.com",
    "169.254.169.254",
    "metadata.google.internal",
    "localhost",
    "127.0.0.1",
    "[::1]",
    "\uff43loudaicompanion.googleapis.com",  # fullwidth c
    "cloudaicompanion.googleapis.com\x00.evil.example",
    " cloudaicompanion.googleapis.com",
    "",
]
EVIL_TOPICS = [
    "projects/attacker/topics/opwatch-results",
    "projects/test-project/topics/opwatch-results-copy",
    f"{RESULTS} ",
    f"{RESULTS}/",
    f"//pubsub.googleapis.com/{RESULTS}",
    RESULTS.upper(),
    "projects/test-project/topics/../topics/opwatch-results",
    "",
]
BAD_DURATIONS = [
    "-1s",
    "-0.5s",
    "0s",
    "-0s",
    "0.000s",
    "2592000.001s",
    "2592001s",
    "9999999999s",
    "99999999999s",
    "3600",
    "1h",
    "PT1H",
    "1e3s",
    " 3600s",
    "3600s ",
    "3600 s",
    "NaNs",
    "infs",
    "0x10s",
    "",
]


def _insert(text: str, piece: str, at: int) -> str:
    at = at % (len(text) + 1)
    return text[:at] + piece + text[at:]


@st.composite
def bad_operations(draw: st.DrawFn) -> Any:
    name = draw(operation_names())
    how = draw(st.integers(0, 5))
    if how == 0:
        return _insert(name, draw(st.sampled_from(NAME_BREAKERS)), draw(st.integers(0, 600)))
    if how == 1:
        return draw(st.sampled_from(SCHEMES)) + name
    if how == 2:  # a parent only, or no parent
        return draw(st.sampled_from([name.rsplit("/operations/", 1)[0], "operations/x", ""]))
    if how == 3:  # too long
        return name + "x" * draw(st.integers(513, 5000))
    if how == 4:  # random text that is not a valid name
        return draw(st.text(min_size=0, max_size=80).filter(lambda t: "/operations/" not in t))
    return draw(JSON_VALUES.filter(lambda v: not isinstance(v, str)))


@st.composite
def bad_labels(draw: st.DrawFn) -> Any:
    how = draw(st.integers(0, 6))
    key = draw(LABEL_KEYS)
    if how == 0:  # key breaking the rule (and, at 64+ chars, Pub/Sub's key limit with label_)
        bad_key = draw(
            st.sampled_from(["", "A", "Team", "1team", "_x", "-x", "team name", "t\u00e9am"])
            | st.just("k" * draw(st.integers(64, 400)))
            | st.text(max_size=20).filter(lambda k: not re.fullmatch(LABEL_KEY_PATTERN, k))
        )
        return {bad_key: "v"}
    if how == 1:  # value beyond 256 characters (and Pub/Sub's 1024 bytes)
        return {
            key: draw(st.sampled_from(["v", "\u00e9", "\U0001f600"])) * draw(st.integers(257, 3000))
        }
    if how == 2:  # control characters
        return {
            key: _insert("value", draw(st.sampled_from(["\n", "\r", "\x00", "\x1b", "\x7f"])), 2)
        }
    if how == 3:  # not a string
        return {key: draw(JSON_VALUES.filter(lambda v: not isinstance(v, str)))}
    if how == 4:  # too many
        count = draw(st.integers(33, 200))
        return {f"k{i}": "v" for i in range(count)}
    if how == 5:  # not an object
        return draw(JSON_VALUES.filter(lambda v: not isinstance(v, dict)))
    return {key: "v", "UPPER": "v"}


@st.composite
def bad_pollings(draw: st.DrawFn) -> Any:
    how = draw(st.integers(0, 5))
    if how == 0:
        return {"initial_delay": draw(st.sampled_from(["0s", "0.5s", "3601s", *BAD_DURATIONS]))}
    if how == 1:
        return {"max_delay": draw(st.sampled_from(["0s", "21601s", *BAD_DURATIONS]))}
    if how == 2:
        return {
            "multiplier": draw(
                st.sampled_from([0, 0.99, 4.01, 1e308, -1, True, "1.5", None, [1.5]])
                | st.floats().filter(lambda f: not 1.0 <= f <= 4.0)
            )
        }
    if how == 3:
        return {"initial_delay": "60s", "max_delay": "30s"}
    if how == 4:
        return {draw(st.text(max_size=10).filter(lambda k: k not in _POLLING)): "1s"}
    return draw(JSON_VALUES.filter(lambda v: not isinstance(v, dict)))


_POLLING = {"initial_delay", "max_delay", "multiplier", "not_found_grace"}


def bad_durations() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(BAD_DURATIONS),
        st.integers(-(10**10), 0).map(lambda n: f"{n}s"),
        st.integers(int(MAX_TIMEOUT) + 1, 10**10 - 1).map(lambda n: f"{n}s"),
        JSON_VALUES.filter(lambda v: not isinstance(v, str)),
    )


@st.composite
def broken_requests(draw: st.DrawFn) -> tuple[str, Any]:
    """A valid request with one rule broken; returns (what was broken, the request or raw text)."""
    request = draw(valid_requests())
    field = draw(
        st.sampled_from(
            [
                "operation",
                "missing-operation",
                "api",
                "api_version",
                "labels",
                "timeout",
                "expected_duration",
                "notify_topic",
                "watch_id",
                "polling",
                "unknown-field",
                "non-finite",
                "surrogate",
            ]
        )
    )
    if field == "operation":
        request["operation"] = draw(bad_operations())
    elif field == "missing-operation":
        del request["operation"]
    elif field == "api":
        request["api"] = draw(
            st.sampled_from(EVIL_HOSTS)
            | st.text(max_size=60).filter(lambda h: h.lower() not in ALLOWED_APIS)
            | JSON_VALUES.filter(lambda v: not isinstance(v, str))
        )
    elif field == "api_version":
        request["api_version"] = draw(
            st.sampled_from(["", "1", "V1", "v1/../v2", "v1?x", "v" + "1" * 30])
            | JSON_VALUES.filter(lambda v: not isinstance(v, str))
        )
    elif field == "labels":
        request["labels"] = draw(bad_labels())
    elif field in ("timeout", "expected_duration"):
        request[field] = draw(bad_durations())
    elif field == "notify_topic":
        request["notify_topic"] = draw(
            st.sampled_from(EVIL_TOPICS)
            | st.text(max_size=80).filter(lambda t: t not in (RESULTS, OTHER_TOPIC))
            | JSON_VALUES.filter(lambda v: not isinstance(v, str))
        )
    elif field == "watch_id":
        request["watch_id"] = draw(
            st.sampled_from(["", " ", "a b", "x" * 129, "caf\u00e9", "line\nbreak", "\x00"])
            | JSON_VALUES.filter(lambda v: not isinstance(v, str))
        )
    elif field == "polling":
        request["polling"] = draw(bad_pollings())
    elif field == "unknown-field":
        name = draw(
            st.sampled_from(["timout", "Operation", "notify-topic", "__proto__", ""])
            | st.text(max_size=20)
        )
        if name in request or name in {"api", "labels", "timeout", "polling", "watch_id"}:
            name = f"x-{name}"
        request[name] = draw(JSON_VALUES)
    elif field == "non-finite":
        # Python's json reads NaN and Infinity; they must be refused, not echoed as non-JSON.
        target = draw(st.sampled_from(["timeout", "multiplier", "labels"]))
        constant = draw(st.sampled_from(["NaN", "Infinity", "-Infinity"]))
        text = json.dumps({**request, target: "@@"}).replace('"@@"', constant)
        if target == "multiplier":
            text = json.dumps({**request, "polling": {"multiplier": "@@"}}).replace(
                '"@@"', constant
            )
        return field, text
    else:  # a lone surrogate, escaped: valid JSON syntax, not encodable text
        target = draw(st.sampled_from(["operation", "watch_id", "labels", "api", "timeout"]))
        surrogate = draw(st.integers(0xD800, 0xDFFF)).__format__("04x")
        value: Any = f"x\\u{surrogate}y"
        text = json.dumps({**request, target: "@@"})
        if target == "labels":
            return field, text.replace('"@@"', '{"team": "@@"}').replace("@@", value)
        return field, text.replace("@@", value)
    return field, request


# Fields whose violation names the field itself (the operation rule is checked on its own).
NAMED_FIELDS = set(FIELDS) - {"operation"}


# --- on_watch_request -----------------------------------------------------------------------


@fuzz("random_bytes")
@given(data=st.binary(max_size=3000))
def test_random_bytes_are_answered_as_invalid(functions: Functions, data: bytes) -> None:
    functions.reset()
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        value = None
    if isinstance(value, dict):  # astronomically rare; a dict is judged by the other tests
        return
    assert_answered_invalid(functions, functions.push(data))


@fuzz("invalid_utf8")
@given(
    request=valid_requests(),
    garbage=st.sampled_from(
        [b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80"]
    ),
    at=st.integers(0, 10_000),
)
def test_invalid_utf8_is_answered_as_invalid(
    functions: Functions, request: dict[str, Any], garbage: bytes, at: int
) -> None:
    functions.reset()
    text = json.dumps(request, ensure_ascii=False).encode()
    at = at % (len(text) + 1)
    data = assert_answered_invalid(functions, functions.push(text[:at] + garbage + text[at:]))
    assert "UTF-8" in data["error"]["message"] or "JSON" in data["error"]["message"]


@fuzz("json_not_an_object")
@given(value=JSON_VALUES.filter(lambda v: not isinstance(v, dict)))
def test_json_that_is_not_an_object_is_answered_as_invalid(
    functions: Functions, value: Any
) -> None:
    functions.reset()
    data = assert_answered_invalid(functions, functions.push(json.dumps(value).encode()))
    assert "JSON object" in data["error"]["message"]


@fuzz("broken_requests")
@given(case=broken_requests(), attributes=st.dictionaries(st.text(max_size=8), st.text(max_size=8)))
def test_a_request_breaking_one_rule_is_answered_with_the_reason(
    functions: Functions, case: tuple[str, Any], attributes: dict[str, str]
) -> None:
    functions.reset()
    broken, request = case
    raw = request.encode() if isinstance(request, str) else json.dumps(request).encode()
    data = assert_answered_invalid(
        functions, functions.push(raw, attributes={k: v for k, v in attributes.items() if k})
    )
    fields = {
        violation["field"].split(".")[0]
        for detail in data["error"]["details"]
        for violation in detail.get("fieldViolations", [])
    }
    if broken in ("operation", "missing-operation"):
        assert "operation" in fields
    elif broken in NAMED_FIELDS:
        assert broken in fields


@fuzz("huge_and_deep")
@given(
    request=valid_requests(),
    how=st.sampled_from(["huge-operation", "huge-field", "huge-request", "deep", "deep-array"]),
    size=st.integers(0, 200_000),
)
def test_huge_and_deeply_nested_requests_are_answered_as_invalid(
    functions: Functions, request: dict[str, Any], how: str, size: int
) -> None:
    functions.reset()
    if how == "huge-operation":
        raw = json.dumps({**request, "operation": "o/" * (300 + size % 30_000)}).encode()
    elif how == "huge-field":
        raw = json.dumps({**request, "labels": {"big": "v" * (257 + size % 60_000)}}).encode()
    elif how == "huge-request":
        raw = json.dumps({**request, "operation": "x" * (66_000 + size)}).encode()
    elif how == "deep":
        depth = 1 + size % 3000
        raw = json.dumps({**request, "labels": "@@"}).encode()
        raw = raw.replace(b'"@@"', b'{"a":' * depth + b"1" + b"}" * depth)
    else:
        depth = 1 + size % 50_000
        raw = b"[" * depth + b"]" * depth
    assert_answered_invalid(functions, functions.push(raw))


@fuzz("valid_requests")
@given(request=valid_requests())
def test_valid_requests_are_watched_and_their_task_round_trips(
    functions: Functions, request: dict[str, Any]
) -> None:
    functions.reset()
    response = functions.push(json.dumps(request).encode())
    assert 200 <= response.status_code < 300
    assert not functions.publish.messages, [m.to_json() for m in functions.publish.messages]
    assert len(functions.fetch.calls) == 1
    [task] = functions.schedule.tasks
    assert len(task.body) <= checks.MAX_BODY_BYTES
    # The task opwatch wrote is accepted by the check function, which looks again.
    functions.schedule.tasks.clear()
    response = functions.deliver(task.body)
    assert response.status_code == 200, response.data[:300]
    assert len(functions.fetch.calls) == 2
    assert len(functions.schedule.tasks) == 1
    assert not functions.publish.messages


# --- on_check -------------------------------------------------------------------------------


@fuzz("check_garbage")
@given(body=st.binary(max_size=3000) | st.text(max_size=500).map(str.encode))
def test_garbage_check_bodies_are_refused(functions: Functions, body: bytes) -> None:
    functions.reset()
    assert_check_refused(functions, functions.deliver(body))


@fuzz("check_wrong_shapes")
@given(
    body=st.one_of(
        JSON_VALUES,
        st.fixed_dictionaries(
            {"opwatch_check": st.just(1)},
            optional={"request": JSON_VALUES, "progress": JSON_VALUES},
        ),
        st.fixed_dictionaries(
            {
                "opwatch_check": JSON_VALUES,
                "request": st.fixed_dictionaries({"watch_id": JSON_VALUES}),
                "progress": st.dictionaries(
                    st.sampled_from(["started", "polls", "transient_errors", "seen", "parks"]),
                    JSON_VALUES,
                ),
            }
        ),
    )
)
def test_check_bodies_of_the_wrong_shape_are_refused(functions: Functions, body: Any) -> None:
    functions.reset()
    assert_check_refused(functions, functions.deliver(json.dumps(body).encode()))


def _encoded(request: dict[str, Any], polls: int) -> dict[str, Any]:
    watch = validate_watch_request(
        request,
        default_watch_id="fuzz-message-1",
        allowed_apis=ALLOWED_APIS,
        allowed_notify_topics=(RESULTS, OTHER_TOPIC),
    )
    task = checks.encode(watch, Progress(T0, polls, 0, False), T0 + timedelta(seconds=5), "c0")
    body: dict[str, Any] = json.loads(task.body)
    return body


TAMPERINGS = [
    "api",
    "operation",
    "request-extra",
    "top-extra",
    "progress-extra",
    "polls",
    "started",
    "transient_errors",
    "seen",
    "version",
    "chain",
    "seq",
    "parks",
    "watch_id",
    "truncated",
    "oversized",
]


@fuzz("check_tampered")
@given(
    request=valid_requests(),
    polls=st.integers(1, 50),
    tampering=st.sampled_from(TAMPERINGS),
    data=st.data(),
)
def test_tampered_check_bodies_are_refused_without_fetching(
    functions: Functions, request: dict[str, Any], polls: int, tampering: str, data: st.DataObject
) -> None:
    functions.reset()
    body = _encoded(request, polls)
    progress = body["progress"]
    if tampering == "api":
        body["request"]["api"] = data.draw(st.sampled_from(EVIL_HOSTS))
    elif tampering == "operation":
        body["request"]["operation"] = data.draw(bad_operations())
    elif tampering == "request-extra":
        body["request"][data.draw(st.sampled_from(["endpoint", "url", "headers", "token"]))] = (
            "https://evil.example/"
        )
    elif tampering == "top-extra":
        body[data.draw(st.sampled_from(["endpoint", "url", "fetch_url", "x"]))] = data.draw(
            JSON_VALUES
        )
    elif tampering == "progress-extra":
        progress[data.draw(st.sampled_from(["deadline", "next", "x"]))] = data.draw(JSON_VALUES)
    elif tampering == "polls":
        progress["polls"] = data.draw(
            st.integers(-(2**64), 0) | st.sampled_from([1.5, "3", True, None, [1]])
        )
    elif tampering == "started":
        progress["started"] = data.draw(
            st.sampled_from(
                ["yesterday", "", "2026-11-27T12:00:00", "2026-13-01T00:00:00Z", "now", "0"]
            )
            | JSON_VALUES.filter(lambda v: not isinstance(v, str))
        )
    elif tampering == "transient_errors":
        progress["transient_errors"] = data.draw(
            st.integers(-(2**64), -1) | st.sampled_from([0.5, "0", True, None])
        )
    elif tampering == "seen":
        progress["seen"] = data.draw(st.sampled_from([0, 1, "true", None, []]))
    elif tampering == "version":
        body["opwatch_check"] = data.draw(
            st.sampled_from([0, checks.VERSION + 1, "1", True, None, 1.5])
            | st.integers(checks.VERSION + 1, 2**40)
        )
    elif tampering == "seq":
        # Below the polls a step could not be: each look is a step, some steps are no look.
        body["seq"] = data.draw(
            st.integers(-(2**64), polls - 1) | st.sampled_from([1.5, "3", True, None, [1]])
        )
    elif tampering == "chain":
        body["chain"] = data.draw(
            st.sampled_from(["", "UPPER", "a-b", "x" * 33, "../x"])
            | JSON_VALUES.filter(lambda v: not isinstance(v, str))
        )
    elif tampering == "parks":
        progress["parks"] = data.draw(
            st.integers(-(2**64), -1) | st.sampled_from([0.5, "0", True, None])
        )
    elif tampering == "watch_id":
        body["request"]["watch_id"] = data.draw(
            JSON_VALUES.filter(lambda v: not isinstance(v, str))
        )
    raw = json.dumps(body).encode()
    if tampering == "truncated":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif tampering == "oversized":
        raw = raw[:-1] + b',"pad":"' + b"x" * (checks.MAX_BODY_BYTES + 1) + b'"}'
    assert_check_refused(functions, functions.deliver(raw))
