"""Reading a notification opwatch published, however it reached you.

- a pulled message (``google.cloud.pubsub_v1`` subscriber): :func:`from_pubsub_message`;
- a push request body (``{"message": {...}, "subscription": ...}``): :func:`parse_push`;
- an Eventarc / functions-framework CloudEvent's data (``{"message": {...}}``):
  :func:`parse_cloud_event`;
- raw data and attributes: :func:`parse_message`.

The data is validated against ``opwatch/schemas/notification.json``, the schema the functions
publish (read from the installed ``opwatch`` package, not copied). The attributes that repeat
the data (``outcome``, ``watch_id``) must agree with it.

A watch that asked ``warn_overdue`` may also get one **overdue** message first (CloudEvents type
``dev.opwatch.operation.v1.overdue``, no ``outcome`` attribute, ``schemas/overdue.json``): the
same functions return it as an :class:`Overdue`, so a subscriber tells the two apart with
``isinstance``; neither is ever mistaken for the other.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from opwatch.wire import parse_rfc3339

if TYPE_CHECKING:
    import jsonschema


class InvalidNotification(ValueError):
    """The message is not an opwatch notification (or not one this schema describes)."""


@cache
def notification_schema() -> dict[str, Any]:
    """The published JSON Schema of the notification data."""
    text = resources.files("opwatch").joinpath("schemas/notification.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator(name: str = "notification.json") -> jsonschema.Draft202012Validator:
    # Imported on first use: a publisher (the opwatch command among them) only builds requests
    # and should not pay for loading jsonschema at start.
    import jsonschema

    text = resources.files("opwatch").joinpath(f"schemas/{name}").read_text("utf-8")
    return jsonschema.Draft202012Validator(json.loads(text))


OVERDUE_TYPE = "dev.opwatch.operation.v1.overdue"


@dataclass(frozen=True)
class Overdue:
    """A watch's operation runs past what it should (its one overdue message); its
    notification follows when it ends."""

    watch_id: str
    operation_name: str
    api: str
    labels: Mapping[str, str]
    age_seconds: float
    overdue_after_seconds: float
    schedule: Mapping[str, Any]
    polls: int
    watch_started: datetime
    observed: datetime
    attributes: Mapping[str, str] = field(default_factory=dict)
    message_id: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Notification:
    """One finished watch, as opwatch told it.

    ``outcome`` is a string, not an enum: an outcome added to the contract later still parses
    (schema permitting). ``raw`` is the decoded data, for fields not lifted out here.
    """

    watch_id: str
    outcome: str
    operation_name: str
    operation: Mapping[str, Any] | None
    error: Mapping[str, Any] | None
    request: Mapping[str, Any] | None
    labels: Mapping[str, str]
    polls: int
    watch_started: datetime
    observed_done: datetime
    operation_truncated: bool
    attributes: Mapping[str, str] = field(default_factory=dict)
    message_id: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def succeeded(self) -> bool:
        return self.outcome == "SUCCEEDED"

    @property
    def error_message(self) -> str:
        """The error's message, or "" for SUCCEEDED."""
        return str(self.error.get("message", "")) if self.error else ""


def parse_message(
    data: bytes | str, attributes: Mapping[str, str] | None = None, message_id: str | None = None
) -> Notification | Overdue:
    """A notification (or a watch's overdue message) from the message's data and attributes.

    Raises:
        InvalidNotification: not JSON, not valid against the schema, or attributes disagree.
    """
    try:
        decoded = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidNotification(f"the data is not JSON: {error}") from None
    attributes = dict(attributes or {})
    if attributes.get("ce-type") == OVERDUE_TYPE:
        return _overdue(decoded, attributes, message_id)
    _validate(decoded, "notification.json", "notification")
    for key in ("watch_id", "outcome"):
        if key in attributes and attributes[key] != decoded[key]:
            raise InvalidNotification(
                f"attribute {key}={attributes[key]!r} disagrees with the data's {decoded[key]!r}"
            )
    request = decoded["request"]
    name = attributes.get("operation")
    if name is None and isinstance(request, dict) and isinstance(request.get("operation"), str):
        name = request["operation"]
    started = parse_rfc3339(decoded["watch_started"])
    done = parse_rfc3339(decoded["observed_done"])
    if started is None or done is None:
        raise InvalidNotification("watch_started and observed_done must be RFC 3339 times")
    return Notification(
        watch_id=decoded["watch_id"],
        outcome=decoded["outcome"],
        operation_name=name or "",
        operation=decoded["operation"],
        error=decoded["error"],
        request=request,
        labels=decoded["labels"],
        polls=decoded["polls"],
        watch_started=started,
        observed_done=done,
        operation_truncated=decoded["operation_truncated"],
        attributes=attributes,
        message_id=message_id,
        raw=decoded,
    )


def _validate(decoded: object, schema: str, what: str) -> None:
    errors = sorted(_validator(schema).iter_errors(decoded), key=lambda e: list(e.absolute_path))
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(root)"
        raise InvalidNotification(f"not an opwatch {what}: {where}: {errors[0].message}")


def _overdue(decoded: Any, attributes: dict[str, str], message_id: str | None) -> Overdue:
    _validate(decoded, "overdue.json", "overdue message")
    if attributes.get("watch_id", decoded["watch_id"]) != decoded["watch_id"]:
        raise InvalidNotification("attribute watch_id disagrees with the data's")
    started = parse_rfc3339(decoded["watch_started"])
    observed = parse_rfc3339(decoded["observed"])
    if started is None or observed is None:
        raise InvalidNotification("watch_started and observed must be RFC 3339 times")
    return Overdue(
        watch_id=decoded["watch_id"],
        operation_name=decoded["operation"],
        api=decoded["api"],
        labels=decoded["labels"],
        age_seconds=float(decoded["age_seconds"]),
        overdue_after_seconds=float(decoded["overdue_after_seconds"]),
        schedule=decoded["schedule"],
        polls=decoded["polls"],
        watch_started=started,
        observed=observed,
        attributes=attributes,
        message_id=message_id,
        raw=decoded,
    )


def _from_message_json(message: object) -> Notification | Overdue:
    if not isinstance(message, Mapping):
        raise InvalidNotification("expected a Pub/Sub message object")
    encoded = message.get("data")
    if not isinstance(encoded, str):
        raise InvalidNotification("the message has no data")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidNotification("the message data is not base64") from None
    attributes = message.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        raise InvalidNotification("the message attributes are not an object")
    message_id = message.get("messageId") or message.get("message_id")
    return parse_message(data, attributes, str(message_id) if message_id else None)


def parse_push(envelope: Mapping[str, Any]) -> Notification | Overdue:
    """A notification from a Pub/Sub push request body."""
    return _from_message_json(envelope.get("message"))


def parse_cloud_event(data: Mapping[str, Any]) -> Notification | Overdue:
    """A notification from the data of a ``google.cloud.pubsub.topic.v1.messagePublished``
    CloudEvent (Eventarc, or functions-framework's conversion of a push)."""
    return _from_message_json(data.get("message"))


def from_pubsub_message(message: Any) -> Notification | Overdue:
    """A notification from a message pulled with ``google.cloud.pubsub_v1`` (``.data``,
    ``.attributes``, ``.message_id``)."""
    return parse_message(message.data, dict(message.attributes), message.message_id)
