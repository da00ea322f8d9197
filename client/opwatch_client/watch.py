"""Building and publishing a watch request.

:class:`WatchRequest` holds typed fields (durations as seconds or ``timedelta``) and writes the
contract's JSON. :meth:`WatchRequest.validate` runs ``opwatch.contracts.validate_watch_request``,
the very function ``on_watch_request`` runs, so a request that validates here is not answered
INVALID_REQUEST there (except for the deployment's allowlists, which only it knows: pass them
to check those too).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from opwatch import contracts
from opwatch.wire import format_duration

Seconds = float | int | timedelta


def _seconds(value: Seconds) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


@dataclass(frozen=True)
class Polling:
    """Per-watch overrides of the polling profile (None keeps the deployment's)."""

    initial_delay: Seconds | None = None
    max_delay: Seconds | None = None
    multiplier: float | None = None
    not_found_grace: Seconds | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name in ("initial_delay", "max_delay", "not_found_grace"):
            value = getattr(self, name)
            if value is not None:
                data[name] = format_duration(_seconds(value))
        if self.multiplier is not None:
            data["multiplier"] = self.multiplier
        return data


@dataclass(frozen=True)
class WatchRequest:
    """A watch request to publish; only the fields set are sent (opwatch fills in defaults).

    Attributes:
        operation: full name, like ``projects/p/locations/l/operations/o``.
        api: API host serving the operation (default ``cloudaicompanion.googleapis.com``).
        api_version: e.g. ``v1``.
        labels: echoed on the notification and as ``label_<key>`` attributes.
        timeout: give up (TIMED_OUT) after this long.
        expected_duration: hint of the operation's total duration.
        notify_topic: topic for this watch's notification (must be allowed by the deployment).
        watch_id: names the watch; defaults to the Pub/Sub message id.
        polling: overrides of the polling profile.
        kind: what kind of operation it is, for what opwatch learns of durations (by default
            derived from the operation's metadata).
        warn_overdue: get one overdue message (:class:`opwatch_client.Overdue`) if the
            operation runs past what it should (default: the deployment's).
    """

    operation: str
    api: str | None = None
    api_version: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    timeout: Seconds | None = None
    expected_duration: Seconds | None = None
    notify_topic: str | None = None
    watch_id: str | None = None
    polling: Polling | None = None
    kind: str | None = None
    warn_overdue: bool | None = None

    def to_json(self) -> dict[str, Any]:
        """The request in the contract's JSON form (``schemas/watch-request.json``)."""
        data: dict[str, Any] = {"operation": self.operation}
        for name in ("api", "api_version", "notify_topic", "watch_id", "kind", "warn_overdue"):
            if (value := getattr(self, name)) is not None:
                data[name] = value
        if self.labels:
            data["labels"] = dict(self.labels)
        for name in ("timeout", "expected_duration"):
            if (value := getattr(self, name)) is not None:
                data[name] = format_duration(_seconds(value))
        if self.polling is not None and (polling := self.polling.to_json()):
            data["polling"] = polling
        return data

    def to_bytes(self) -> bytes:
        """The Pub/Sub message data."""
        return json.dumps(self.to_json(), separators=(",", ":")).encode("utf-8")

    def validate(
        self,
        *,
        allowed_apis: Collection[str] | None = None,
        allowed_notify_topics: Collection[str] | None = None,
    ) -> contracts.WatchRequest:
        """Check the request with the functions' own rules; returns it as opwatch reads it.

        Args:
            allowed_apis: the deployment's ALLOWED_APIS; None skips that check.
            allowed_notify_topics: the deployment's allowed topics; None skips that check.

        Raises:
            opwatch.errors.InvalidWatchRequest: listing every broken rule.
        """
        data = self.to_json()
        apis = allowed_apis
        if apis is None:
            apis = {str(data.get("api", contracts.DEFAULT_API)).lower()}
        topics = allowed_notify_topics
        if topics is None:
            topics = {self.notify_topic} if self.notify_topic is not None else set()
        return contracts.parse_watch_request(
            self.to_bytes(),
            default_watch_id=self.watch_id or "unpublished",
            allowed_apis=apis,
            allowed_notify_topics=topics,
        )


class _Future(Protocol):
    def result(self, timeout: float | None = None) -> Any: ...


class Publisher(Protocol):
    """What is used of ``google.cloud.pubsub_v1.PublisherClient``."""

    def publish(self, topic: str, data: bytes, **attributes: str) -> _Future: ...


def publish_watch_request(
    publisher: Publisher,
    topic: str,
    request: WatchRequest,
    *,
    attributes: Mapping[str, str] | None = None,
    allowed_apis: Collection[str] | None = None,
    allowed_notify_topics: Collection[str] | None = None,
    timeout: float = 60.0,
) -> str:
    """Validate ``request``, publish it to the watch-requests ``topic``, return the message id.

    Args:
        publisher: a ``pubsub_v1.PublisherClient`` (create it once and reuse it).
        topic: ``projects/P/topics/T``, the deployment's ``watch_requests_topic_id``.
        request: what to watch.
        attributes: message attributes (opwatch ignores them; useful for your own tracing).
        allowed_apis, allowed_notify_topics: see :meth:`WatchRequest.validate`.
        timeout: seconds to wait for Pub/Sub to accept the message.

    Raises:
        opwatch.errors.InvalidWatchRequest: the request breaks the contract (nothing is sent).
    """
    request.validate(allowed_apis=allowed_apis, allowed_notify_topics=allowed_notify_topics)
    future = publisher.publish(topic, request.to_bytes(), **dict(attributes or {}))
    return str(future.result(timeout=timeout))
