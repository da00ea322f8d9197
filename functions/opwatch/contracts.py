"""The watch request: opwatch's public input contract, and its validation.

A watch request is a JSON object in the data of a Pub/Sub message. ``schemas/watch-request.json``
publishes the same rules as a JSON Schema; this module enforces them (and the ones a schema cannot
express, like the allowlists) and explains every broken rule in words a person can act on.

Nothing here does I/O: the allowlists are passed in.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from opwatch.errors import InvalidWatchRequest, Violation
from opwatch.wire import format_duration, parse_duration

DEFAULT_API: Final = "cloudaicompanion.googleapis.com"
DEFAULT_API_VERSION: Final = "v1"
DEFAULT_TIMEOUT: Final = 24 * 3600.0
# Cloud Tasks schedules at most 30 days ahead, so no watch can outlive that.
MAX_TIMEOUT: Final = 30 * 24 * 3600.0
MAX_REQUEST_BYTES: Final = 64 * 1024
MAX_OPERATION_CHARS: Final = 512
MAX_LABELS: Final = 32
MAX_LABEL_VALUE_CHARS: Final = 256
MAX_API_VERSION_CHARS: Final = 20

FIELDS: Final = (
    "operation",
    "api",
    "api_version",
    "labels",
    "timeout",
    "expected_duration",
    "notify_topic",
    "watch_id",
    "kind",
    "warn_overdue",
    "polling",
)
MAX_KIND_CHARS: Final = 200
POLLING_FIELDS: Final = ("initial_delay", "max_delay", "multiplier", "not_found_grace")
# Per-watch overrides of the polling profile stay within these bounds, so a watch can neither
# hammer the operations API nor stall for longer than an operator would expect.
POLLING_BOUNDS: Final[Mapping[str, tuple[float, float]]] = MappingProxyType(
    {
        "initial_delay": (1.0, 3600.0),
        "max_delay": (1.0, 6 * 3600.0),
        "multiplier": (1.0, 4.0),
        "not_found_grace": (0.0, 3600.0),
    }
)

_SEGMENT = r"[A-Za-z0-9_~+=@()-][A-Za-z0-9._~+=@()-]*"
OPERATION_PATTERN: Final = rf"^(?:{_SEGMENT}/)+operations/{_SEGMENT}$"
_OPERATION_RE = re.compile(OPERATION_PATTERN)
_SEGMENT_CHAR_RE = re.compile(r"[A-Za-z0-9._~+=@()/-]")
API_VERSION_PATTERN: Final = r"^v[0-9]+(?:[a-z]+[0-9]*)*$"
LABEL_KEY_PATTERN: Final = r"^[a-z][a-z0-9_-]{0,62}$"
WATCH_ID_PATTERN: Final = r"^[!-~]{1,128}$"
_API_VERSION_RE = re.compile(API_VERSION_PATTERN)
_LABEL_KEY_RE = re.compile(LABEL_KEY_PATTERN)
_WATCH_ID_RE = re.compile(WATCH_ID_PATTERN)
LABEL_VALUE_PATTERN: Final = r"^[^\u0000-\u001f\u007f]*$"
_CONTROL_RE = re.compile(r"[\u0000-\u001f\u007f]")


@dataclass(frozen=True)
class PollingOverride:
    """Per-watch overrides of the API's polling profile (seconds; None keeps the profile's)."""

    initial_delay: float | None = None
    max_delay: float | None = None
    multiplier: float | None = None
    not_found_grace: float | None = None


@dataclass(frozen=True)
class WatchRequest:
    """A validated watch request: what opwatch understood the caller to ask for."""

    operation: str
    watch_id: str
    api: str = DEFAULT_API
    api_version: str = DEFAULT_API_VERSION
    labels: Mapping[str, str] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT
    expected_duration: float | None = None
    notify_topic: str | None = None
    polling: PollingOverride = field(default_factory=PollingOverride)
    kind: str | None = None
    warn_overdue: bool | None = None

    def to_json(self) -> dict[str, Any]:
        """The request as understood, in the contract's own JSON form (defaults filled in)."""
        polling = {
            name: format_duration(value) if name != "multiplier" else value
            for name in POLLING_FIELDS
            if (value := getattr(self.polling, name)) is not None
        }
        data: dict[str, Any] = {
            "operation": self.operation,
            "api": self.api,
            "api_version": self.api_version,
            "labels": dict(self.labels),
            "timeout": format_duration(self.timeout),
            "watch_id": self.watch_id,
        }
        if self.expected_duration is not None:
            data["expected_duration"] = format_duration(self.expected_duration)
        if self.notify_topic is not None:
            data["notify_topic"] = self.notify_topic
        if polling:
            data["polling"] = polling
        if self.kind is not None:
            data["kind"] = self.kind
        if self.warn_overdue is not None:
            data["warn_overdue"] = self.warn_overdue
        return data


def loads_strict(text: str) -> Any:
    """``json.loads`` refusing what JSON itself forbids but Python accepts.

    ``NaN``/``Infinity`` and escaped lone surrogates (``"\\ud800"``) decode in Python, but cannot
    be echoed back as JSON or Pub/Sub attributes; refusing them here keeps every later step
    total.

    Raises:
        ValueError: naming what is wrong (RecursionError for absurd nesting).
    """
    value = json.loads(text, parse_constant=_no_constant)
    if "\\u" not in text:
        return value  # no escape, so no lone surrogate: skip the re-encoding on the hot path
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("it escapes a lone surrogate like \\ud800; send valid Unicode") from None
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


@dataclass(frozen=True)
class CancelRequest:
    """A request, on the watch topic, to cancel a watch: ``{"cancel": ID, "reason": TEXT}``."""

    watch_id: str
    reason: str = ""


CANCEL_FIELDS: Final = ("cancel", "reason")
MAX_REASON_CHARS: Final = 1024


def parse_watch_message(
    data: bytes,
    *,
    default_watch_id: str,
    allowed_apis: Collection[str],
    allowed_notify_topics: Collection[str],
) -> WatchRequest | CancelRequest:
    """Parse the data of a message on the watch topic: a watch request, or a cancel request
    (an object with ``cancel``). Arguments and errors as :func:`parse_watch_request`."""
    decoded = _decode_json(data, default_watch_id)
    if isinstance(decoded, dict) and "cancel" in decoded:
        return validate_cancel_request(decoded, default_watch_id=default_watch_id)
    return validate_watch_request(
        decoded,
        default_watch_id=default_watch_id,
        allowed_apis=allowed_apis,
        allowed_notify_topics=allowed_notify_topics,
    )


def validate_cancel_request(value: dict[str, Any], *, default_watch_id: str) -> CancelRequest:
    """Validate ``{"cancel": WATCH_ID, "reason": TEXT}`` (reason optional).

    Raises:
        InvalidWatchRequest: listing every broken rule.
    """
    violations = [
        Violation(name[:64], f"unknown field; a cancel request has only {', '.join(CANCEL_FIELDS)}")
        for name in sorted(set(value) - set(CANCEL_FIELDS))
    ]
    watch_id, reason = value.get("cancel"), value.get("reason", "")
    if not isinstance(watch_id, str) or not _WATCH_ID_RE.match(watch_id):
        violations.append(
            Violation("cancel", "the watch_id to cancel: 1-128 printable ASCII characters")
        )
    if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS or _CONTROL_RE.search(reason):
        violations.append(
            Violation(
                "reason",
                f"a string of at most {MAX_REASON_CHARS} characters without control characters",
            )
        )
    if violations:
        raise InvalidWatchRequest(violations, raw=value, watch_id=default_watch_id)
    assert isinstance(watch_id, str) and isinstance(reason, str)
    return CancelRequest(watch_id, reason)


def parse_watch_request(
    data: bytes,
    *,
    default_watch_id: str,
    allowed_apis: Collection[str],
    allowed_notify_topics: Collection[str],
) -> WatchRequest:
    """Parse and validate the JSON bytes of a watch request.

    Args:
        data: the Pub/Sub message data.
        default_watch_id: the id to use when the request names none (the Pub/Sub message id).
        allowed_apis: API hosts a watch may name.
        allowed_notify_topics: full topic paths a watch may name as ``notify_topic``.

    Raises:
        InvalidWatchRequest: listing every broken rule, with as much of the request as was read.
    """
    return validate_watch_request(
        _decode_json(data, default_watch_id),
        default_watch_id=default_watch_id,
        allowed_apis=allowed_apis,
        allowed_notify_topics=allowed_notify_topics,
    )


def _decode_json(data: bytes, default_watch_id: str) -> Any:
    if len(data) > MAX_REQUEST_BYTES:
        raise InvalidWatchRequest(
            [Violation("", f"the request is {len(data)} bytes; the limit is {MAX_REQUEST_BYTES}")],
            watch_id=default_watch_id,
        )
    try:
        decoded = loads_strict(data.decode("utf-8"))
    except UnicodeDecodeError:
        reason = "the request is not UTF-8 text; publish it as a JSON object"
        raise InvalidWatchRequest([Violation("", reason)], watch_id=default_watch_id) from None
    except RecursionError:
        reason = "the request is nested too deeply; a watch request is a flat JSON object"
        raise InvalidWatchRequest([Violation("", reason)], watch_id=default_watch_id) from None
    except ValueError as error:
        reason = f"the request is not valid JSON ({str(error)[:120]}); publish a JSON object"
        raise InvalidWatchRequest([Violation("", reason)], watch_id=default_watch_id) from None
    return decoded


def validate_watch_request(
    value: object,
    *,
    default_watch_id: str,
    allowed_apis: Collection[str],
    allowed_notify_topics: Collection[str],
) -> WatchRequest:
    """Validate an already-decoded watch request; see :func:`parse_watch_request`."""
    if not isinstance(value, dict):
        kind = type(value).__name__ if value is not None else "null"
        raise InvalidWatchRequest(
            [Violation("", f"the request must be a JSON object, not {kind}")],
            watch_id=default_watch_id,
        )
    violations: list[Violation] = []
    raw: dict[str, Any] = value

    def check(name: str, reader: Any, *args: Any) -> Any:
        return _read(violations, name, reader, raw[name], *args) if name in raw else None

    for name in sorted(set(raw) - set(FIELDS)):
        violations.append(
            Violation(name[:64], f"unknown field; a watch request has only {', '.join(FIELDS)}")
        )
    if "operation" not in raw:
        violations.append(
            Violation(
                "operation",
                "required: the operation's full name, like projects/p/locations/l/operations/o",
            )
        )
    operation = check("operation", _operation)
    api = check("api", _api, allowed_apis)
    api_version = check("api_version", _api_version)
    labels = check("labels", _labels)
    timeout = check("timeout", _positive_duration, MAX_TIMEOUT)
    expected = check("expected_duration", _positive_duration, MAX_TIMEOUT)
    notify_topic = check("notify_topic", _notify_topic, allowed_notify_topics)
    watch_id = check("watch_id", _watch_id)
    polling = check("polling", _polling, violations)
    kind = check("kind", _kind)
    warn_overdue = check("warn_overdue", _boolean)
    if violations:
        reported_id = watch_id if watch_id is not None else default_watch_id
        raise InvalidWatchRequest(violations, raw=raw, watch_id=reported_id)
    return WatchRequest(
        operation=operation,
        watch_id=watch_id if watch_id is not None else default_watch_id,
        api=api if api is not None else DEFAULT_API,
        api_version=api_version if api_version is not None else DEFAULT_API_VERSION,
        labels=MappingProxyType(labels if labels is not None else {}),
        timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
        expected_duration=expected,
        notify_topic=notify_topic,
        polling=polling if polling is not None else PollingOverride(),
        kind=kind,
        warn_overdue=warn_overdue,
    )


def discovered_request(
    operation: str,
    *,
    api: str,
    watch_id: str,
    labels: Mapping[str, str],
    allowed_apis: Collection[str],
) -> WatchRequest:
    """The request of a watch opwatch starts itself (from an audit entry or a sweep), built
    directly and held to the rules a published request is, every other field at its default.

    Raises:
        InvalidWatchRequest: the name, API, id or labels break a rule; the caller skips it.
    """
    violations: list[Violation] = []
    name = _read(violations, "operation", _operation, operation)
    host = _read(violations, "api", _api, api, allowed_apis)
    valid_id = _read(violations, "watch_id", _watch_id, watch_id)
    valid_labels = _read(violations, "labels", _labels, dict(labels))
    if violations:
        raise InvalidWatchRequest(violations, watch_id=watch_id)
    return WatchRequest(name, valid_id, api=host, labels=MappingProxyType(valid_labels))


def _read(violations: list[Violation], name: str, reader: Any, value: object, *args: Any) -> Any:
    """``reader(value, *args)``, or None with its refusal added to ``violations``."""
    try:
        return reader(value, *args)
    except ValueError as error:
        violations.append(Violation(name, str(error)))
        return None


def _kind(value: object) -> str:
    text = _string(value, "what kind of operation this is, e.g. index-build")
    if not 0 < len(text) <= MAX_KIND_CHARS or _CONTROL_RE.search(text):
        raise ValueError(f"must be 1-{MAX_KIND_CHARS} characters without control characters")
    return text


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {_json_type(value)}")
    return value


def _string(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string ({what}), not {_json_type(value)}")
    return value


def check_operation_name(value: object) -> str:
    """``value`` if it is an operation name a watch request may carry.

    Raises:
        ValueError: saying why it is not (the same words a watch request's violation gives).
    """
    return _operation(value)


def _operation(value: object) -> str:
    name = _string(value, "the operation's full resource name")
    # A valid name passes in one match (the pattern admits no space, control character, ':',
    # '?', '#', '%' or '//'); the checks below only say what is wrong with one that does not.
    if len(name) <= MAX_OPERATION_CHARS and ".." not in name and _OPERATION_RE.match(name):
        return name
    example = "like projects/p/locations/l/operations/o"
    if not name:
        raise ValueError(f"must not be empty; give the operation's full name, {example}")
    if len(name) > MAX_OPERATION_CHARS:
        raise ValueError(f"is {len(name)} characters; the limit is {MAX_OPERATION_CHARS}")
    if any(char.isspace() for char in name) or _CONTROL_RE.search(name):
        raise ValueError("must not contain spaces, tabs, line breaks or control characters")
    if ":" in name:
        raise ValueError(f"must be a relative resource name, {example}, not a URL")
    if bad := sorted({char for char in "?#%" if char in name}):
        raise ValueError(f"must not contain {' or '.join(bad)}: give the bare name, not a URL part")
    if ".." in name:
        raise ValueError("must not contain '..'")
    if name.startswith("/") or name.endswith("/") or "//" in name:
        raise ValueError(f"must not start or end with '/' or contain '//'; {example}")
    if bad := sorted({char for char in name if not _SEGMENT_CHAR_RE.match(char)}):
        shown = " ".join(repr(char) for char in bad[:5])
        raise ValueError(f"contains characters a resource name cannot have: {shown}")
    # Every other rule holds, so the pattern is what it misses.
    raise ValueError(f"must end in '/operations/<id>' below a parent, {example}")


def _api(value: object, allowed: Collection[str]) -> str:
    host = _string(value, "an API host like cloudaicompanion.googleapis.com").lower()
    if host not in allowed:
        shown = host[:100].encode("unicode_escape").decode("ascii")
        raise ValueError(
            f"{shown!r} is not an allowed API host (allowed: {', '.join(sorted(allowed))}); "
            "ask the operator to add it to ALLOWED_APIS"
        )
    return host


def _api_version(value: object) -> str:
    version = _string(value, "an API version like v1")
    if len(version) > MAX_API_VERSION_CHARS or not _API_VERSION_RE.match(version):
        shown = version[:MAX_API_VERSION_CHARS]
        raise ValueError(f"{shown!r} is not an API version; write it like v1 or v1beta")
    return version


def _labels(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError(
            f"must be an object of string keys to string values, not {_json_type(value)}"
        )
    if len(value) > MAX_LABELS:
        raise ValueError(f"has {len(value)} labels; the limit is {MAX_LABELS}")
    for key, label in value.items():
        if not _LABEL_KEY_RE.match(key):
            raise ValueError(
                f"key {key[:64]!r} must be 1-63 lowercase letters, digits, '_' or '-', "
                "starting with a letter"
            )
        if not isinstance(label, str):
            raise ValueError(f"value of {key!r} must be a string, not {_json_type(label)}")
        if len(label) > MAX_LABEL_VALUE_CHARS or _CONTROL_RE.search(label):
            raise ValueError(
                f"value of {key!r} must be at most {MAX_LABEL_VALUE_CHARS} characters "
                "without line breaks or control characters"
            )
    return dict(value)


def _positive_duration(value: object, maximum: float) -> float:
    seconds = parse_duration(_string(value, "a duration like '3600s'"))
    if seconds <= 0:
        raise ValueError(f"must be positive, like '3600s', not {value!r}")
    if seconds > maximum:
        raise ValueError(f"must be at most {format_duration(maximum)} (30 days), not {value!r}")
    return seconds


def _bounded(name: str, value: object) -> float:
    low, high = POLLING_BOUNDS[name]
    if name == "multiplier":
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError(f"multiplier must be a number, not {_json_type(value)}")
        number = float(value)
        shown = f"{number:g}"
        bounds = f"{low:g} and {high:g}"
    else:
        number = parse_duration(_string(value, "a duration like '10s'"))
        shown, bounds = str(value), f"{format_duration(low)} and {format_duration(high)}"
    if not low <= number <= high:
        raise ValueError(f"{name} must be between {bounds}, not {shown}")
    return number


def _polling(value: object, violations: list[Violation]) -> PollingOverride:
    if not isinstance(value, dict):
        raise ValueError(
            f"must be an object with {', '.join(POLLING_FIELDS)}, not {_json_type(value)}"
        )
    for name in sorted(set(value) - set(POLLING_FIELDS)):
        violations.append(
            Violation(f"polling.{name[:64]}", f"unknown; use {', '.join(POLLING_FIELDS)}")
        )
    numbers: dict[str, float] = {}
    for name in POLLING_FIELDS:
        if name in value:
            try:
                numbers[name] = _bounded(name, value[name])
            except ValueError as error:
                violations.append(Violation(f"polling.{name}", str(error)))
    initial, maximum = numbers.get("initial_delay"), numbers.get("max_delay")
    if initial is not None and maximum is not None and maximum < initial:
        violations.append(Violation("polling.max_delay", "must not be shorter than initial_delay"))
    return PollingOverride(**numbers)


def _notify_topic(value: object, allowed: Collection[str]) -> str:
    topic = _string(value, "a full topic path like projects/p/topics/t")
    if topic not in allowed:
        shown = topic[:300].encode("unicode_escape").decode("ascii")
        raise ValueError(
            f"{shown!r} is not an allowed topic; use a full path projects/<p>/topics/<t> "
            "listed in ALLOWED_NOTIFY_TOPICS, or leave it out to use the results topic"
        )
    return topic


def _watch_id(value: object) -> str:
    watch_id = _string(value, "an idempotency key")
    if not _WATCH_ID_RE.match(watch_id):
        raise ValueError("must be 1-128 printable ASCII characters without spaces")
    return watch_id


def _json_type(value: object) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    names.update({list: "an array", dict: "an object", type(None): "null"})
    return names.get(type(value), type(value).__name__)


# --- the published JSON Schema, generated from the rules above ---------------------------------

SCHEMA_ID: Final = "https://opwatch.dev/schemas/watch-request.json"
DURATION_PATTERN: Final = r"^[0-9]{1,10}(?:\.[0-9]{1,9})?s$"
_DAYS = f"{format_duration(MAX_TIMEOUT)} ({MAX_TIMEOUT / 86400:g} days)"


def json_schema() -> dict[str, Any]:
    """The watch request as a JSON Schema (draft 2020-12): ``schemas/watch-request.json``.

    Built from the same constants the validation above uses, so the two cannot drift; a test
    compares it with the published file (regenerate: ``python -m opwatch.contracts``). Rules a
    schema cannot express (allowlists, duration bounds, max_delay >= initial_delay) are named
    in the descriptions.
    """

    def duration(description: str) -> dict[str, Any]:
        return {"$ref": "#/$defs/duration", "description": description}

    def bounds(name: str) -> str:
        low, high = POLLING_BOUNDS[name]
        return f"{format_duration(low)} to {format_duration(high)}"

    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "opwatch watch request",
        "description": (
            "The JSON object published to the watch-request topic to be told when a "
            "google.longrunning Operation finishes. Rules a schema cannot express (the "
            "allowlists, the bounds of durations) are enforced by opwatch and listed in each "
            f"description. At most {MAX_REQUEST_BYTES} bytes."
        ),
        "type": "object",
        "additionalProperties": False,
        "required": ["operation"],
        "properties": {
            "operation": {
                "description": (
                    "Full relative resource name of the Operation, ending in /operations/<id> "
                    "below a parent. No scheme, no '..', no '?', '#', '%', whitespace or "
                    "control characters."
                ),
                "type": "string",
                "maxLength": MAX_OPERATION_CHARS,
                "pattern": OPERATION_PATTERN,
                "not": {"pattern": r"\.\."},
                "examples": ["projects/my-project/locations/us-central1/operations/operation-123"],
            },
            "api": {
                "description": (
                    "API host serving the operation; must be in the deployment's ALLOWED_APIS "
                    "(compared in lower case)."
                ),
                "type": "string",
                "default": DEFAULT_API,
            },
            "api_version": {
                "description": (
                    "API version in the fetch URL GET https://{api}/{api_version}/{operation}."
                ),
                "type": "string",
                "maxLength": MAX_API_VERSION_CHARS,
                "pattern": API_VERSION_PATTERN,
                "default": DEFAULT_API_VERSION,
            },
            "labels": {
                "description": "Echoed on the notification, and as attributes label_<key>.",
                "type": "object",
                "maxProperties": MAX_LABELS,
                "propertyNames": {"pattern": LABEL_KEY_PATTERN},
                "additionalProperties": {
                    "type": "string",
                    "maxLength": MAX_LABEL_VALUE_CHARS,
                    "pattern": LABEL_VALUE_PATTERN,
                },
            },
            "timeout": {
                **duration(
                    f"Give up (TIMED_OUT) after this long; positive, at most {_DAYS}. "
                    f"Default {format_duration(DEFAULT_TIMEOUT)}."
                ),
                "default": format_duration(DEFAULT_TIMEOUT),
            },
            "expected_duration": duration(
                "Hint of the operation's total duration: opwatch looks sparsely before it and "
                f"densely around it. Positive, at most {_DAYS}."
            ),
            "notify_topic": {
                "description": (
                    "Full path of the topic for this watch's notification; must be the results "
                    "topic or in ALLOWED_NOTIFY_TOPICS."
                ),
                "type": "string",
                "pattern": r"^projects/[^/]+/topics/[^/]+$",
            },
            "watch_id": {
                "description": (
                    "Names the watch: echoed on the notification (and its ce-id), defaults to "
                    "the Pub/Sub message id. Redeliveries of one message are one watch; another "
                    "message with the same watch_id is another watch, with its own notification "
                    "(docs/how-it-works.md: One watch per message)."
                ),
                "type": "string",
                "pattern": WATCH_ID_PATTERN,
            },
            "kind": {
                "description": (
                    "What kind of operation this is, for what opwatch learns of how long "
                    "operations of a kind take (docs/how-it-works.md: Learned durations); by "
                    "default derived from the API and the operation's metadata (@type, verb, "
                    "target)."
                ),
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_KIND_CHARS,
                "pattern": LABEL_VALUE_PATTERN,
            },
            "warn_overdue": {
                "description": (
                    "Publish one overdue message (CloudEvents type "
                    "dev.opwatch.operation.v1.overdue) on the watch's topic once the operation "
                    "runs past the 95th percentile of its kind, or 1.5 x expected_duration; "
                    "default: the deployment's WARN_OVERDUE."
                ),
                "type": "boolean",
            },
            "polling": {
                "description": "Overrides of the API's polling profile, within bounds.",
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "initial_delay": duration(f"{bounds('initial_delay')}."),
                    "max_delay": duration(
                        f"{bounds('max_delay')}, and not shorter than initial_delay."
                    ),
                    "multiplier": {
                        "type": "number",
                        "minimum": POLLING_BOUNDS["multiplier"][0],
                        "maximum": POLLING_BOUNDS["multiplier"][1],
                    },
                    "not_found_grace": duration(
                        f"{bounds('not_found_grace')}: how long a 404 means 'not created yet'."
                    ),
                },
            },
        },
        "$defs": {
            "duration": {
                "description": "A protobuf-JSON Duration: seconds with an 's' suffix.",
                "type": "string",
                "pattern": DURATION_PATTERN,
                "examples": ["3600s", "1.5s"],
            }
        },
    }


if __name__ == "__main__":
    print(json.dumps(json_schema(), indent=2, ensure_ascii=False))
