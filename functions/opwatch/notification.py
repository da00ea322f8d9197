"""The terminal notification: opwatch's public output contract.

One Pub/Sub message per finished watch. The data is JSON (``schemas/notification.json``); the
attributes repeat what subscribers filter on (``attributes.outcome = "FAILED"``) and carry the
CloudEvents Pub/Sub binding (``ce-*``), so CloudEvents-aware consumers can read it as an event.
``ce-id`` is the watch id: a redelivered notification is the same event, and dedups as such.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from google.rpc import code_pb2

from opwatch.contracts import DEFAULT_API, WatchRequest
from opwatch.core import Finish, Outcome, Progress
from opwatch.errors import InvalidWatchRequest
from opwatch.learned import Expectation
from opwatch.status import Status, make_status
from opwatch.wire import rfc3339

CLOUDEVENT_TYPE: Final = "dev.opwatch.operation.v1.finished"
OVERDUE_TYPE: Final = "dev.opwatch.operation.v1.overdue"
# Pub/Sub takes 10 MB per message, attributes included; leave room for them.
MAX_DATA_BYTES: Final = 9 * 1024 * 1024
MAX_ATTRIBUTE_BYTES: Final = 1024
# Fields of an oversized Operation dropped first, in this order, until the message fits.
_DROPPABLE: Final = ("response", "metadata")


@dataclass(frozen=True)
class Notification:
    """A message ready to publish."""

    topic: str
    data: bytes
    attributes: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        """The data, decoded (for logs and tests)."""
        decoded: dict[str, Any] = json.loads(self.data)
        return decoded


def finished(
    request: WatchRequest,
    finish: Finish,
    *,
    now: datetime,
    results_topic: str,
    learned: Expectation | None = None,
) -> Notification:
    """The notification for a watch that ended (any outcome but INVALID_REQUEST); ``learned``
    is what its looks were scheduled from, if it was learned of the operation's kind."""
    return _build(
        schedule=schedule_of(request, learned),
        topic=request.notify_topic or results_topic,
        watch_id=request.watch_id,
        outcome=finish.outcome,
        operation=finish.operation,
        error=finish.error,
        request=request.to_json(),
        labels=request.labels,
        polls=finish.progress.polls,
        started=finish.progress.started,
        now=now,
        api=request.api,
        operation_name=request.operation,
    )


def invalid_request(
    error: InvalidWatchRequest, *, started: datetime, now: datetime, polls: int, results_topic: str
) -> Notification:
    """The notification for a watch request that broke the contract.

    It goes to the results topic (a notify_topic is not trusted from an invalid request) and
    echoes whatever of the request could be read, with every violation as a
    google.rpc.BadRequest field violation.
    """
    raw = error.raw or {}
    detail = {
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [violation.to_json() for violation in error.violations],
    }
    api, operation = raw.get("api"), raw.get("operation")
    return _build(
        topic=results_topic,
        watch_id=error.watch_id,
        outcome=Outcome.INVALID_REQUEST,
        operation=None,
        error=make_status(
            code_pb2.INVALID_ARGUMENT, f"invalid watch request: {error}"[:2000], [detail]
        ),
        request=error.raw,
        labels={},
        polls=polls,
        started=started,
        now=now,
        api=api if isinstance(api, str) else DEFAULT_API,
        operation_name=operation if isinstance(operation, str) else "",
    )


def overdue(
    request: WatchRequest,
    progress: Progress,
    *,
    age: float,
    limit: float,
    learned: Expectation | None,
    now: datetime,
    results_topic: str,
) -> Notification:
    """The one overdue message of a watch (``schemas/overdue.json``): the operation runs past
    what it should. Its attributes have no ``outcome``, so a subscription filtered on outcomes
    never sees it; ``ce-id`` is ``{watch_id}/overdue``, apart from the notification's."""
    observed = rfc3339(now)
    data = {
        "watch_id": request.watch_id,
        "operation": request.operation,
        "api": request.api,
        "labels": dict(request.labels),
        "age_seconds": round(age, 3),
        "overdue_after_seconds": round(limit, 3),
        "schedule": schedule_of(request, learned),
        "polls": progress.polls,
        "watch_started": rfc3339(progress.started),
        "observed": observed,
    }
    attributes = {
        "overdue": "true",
        "operation": request.operation,
        "api": request.api,
        "watch_id": request.watch_id,
        **{f"label_{key}": value for key, value in request.labels.items()},
        "ce-specversion": "1.0",
        "ce-type": OVERDUE_TYPE,
        "ce-source": f"//{request.api}/{request.operation}",
        "ce-id": f"{request.watch_id}/overdue",
        "ce-time": observed,
        "content-type": "application/json",
    }
    clean = {key: _clip(value) for key, value in attributes.items() if value}
    return Notification(request.notify_topic or results_topic, _dumps(data), clean)


def schedule_of(request: WatchRequest, learned: Expectation | None) -> dict[str, Any]:
    """Which schedule the watch's looks followed: its own ``expected_duration`` (``hint``),
    what was learned of the operation's kind (``learned``: the kind and its sample count), or
    the API's polling profile."""
    if request.expected_duration is not None:
        return {"source": "hint"}
    if learned is not None:
        return {"source": "learned", "kind": learned.kind, "samples": learned.samples}
    return {"source": "profile"}


def _build(
    *,
    schedule: dict[str, Any] | None = None,
    topic: str,
    watch_id: str,
    outcome: Outcome,
    operation: dict[str, Any] | None,
    error: Status | None,
    request: Mapping[str, Any] | None,
    labels: Mapping[str, str],
    polls: int,
    started: datetime,
    now: datetime,
    api: str,
    operation_name: str,
) -> Notification:
    observed = rfc3339(now)
    data: dict[str, Any] = {
        "watch_id": watch_id,
        "outcome": outcome.value,
        "operation": operation,
        "operation_truncated": False,
        "error": error,
        "request": dict(request) if request is not None else None,
        "labels": dict(labels),
        "polls": polls,
        "watch_started": rfc3339(started),
        "observed_done": observed,
    }
    if schedule is not None:
        data["schedule"] = schedule
    attributes = {
        "outcome": outcome.value,
        "operation": operation_name,
        "api": api,
        "watch_id": watch_id,
        **{f"label_{key}": value for key, value in labels.items()},
        "ce-specversion": "1.0",
        "ce-type": CLOUDEVENT_TYPE,
        "ce-source": f"//{api}/{operation_name}" if operation_name else f"//{api}",
        "ce-id": watch_id,
        "ce-time": observed,
        "content-type": "application/json",
    }
    clean = {key: _clip(value) for key, value in attributes.items() if value}
    return Notification(topic=topic, data=_fit(data), attributes=clean)


def _fit(data: dict[str, Any]) -> bytes:
    """Serialize, dropping bulky operation fields (flagged) until the message fits Pub/Sub."""
    body = _dumps(data)
    operation = data["operation"]
    if len(body) <= MAX_DATA_BYTES or operation is None:
        return body
    reduced = dict(operation)
    data = {**data, "operation": reduced, "operation_truncated": True}
    for key in _DROPPABLE:
        reduced.pop(key, None)
        body = _dumps(data)
        if len(body) <= MAX_DATA_BYTES:
            return body
    # Still too big (a huge error or name): keep the verdict and the error's message only.
    data["operation"] = {"done": operation.get("done")}
    if data["error"] is not None:
        data["error"] = {**data["error"], "details": []}
    return _dumps(data)


def _dumps(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _clip(value: str) -> str:
    encoded = value.encode("utf-8")[:MAX_ATTRIBUTE_BYTES]
    return encoded.decode("utf-8", "ignore")
