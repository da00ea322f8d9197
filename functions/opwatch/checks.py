"""The body of a check task: a watch and its progress, since nothing else remembers them.

Cloud Tasks carries this JSON from one look to the next. It is opwatch's private format, but the
check function is reachable by anyone holding the invoker role, so it is read as untrusted input:
the embedded watch request is validated again against the current allowlists.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from opwatch.contracts import WatchRequest, loads_strict
from opwatch.core import Progress
from opwatch.errors import InvalidCheckBody, Violation
from opwatch.wire import rfc3339

VERSION: Final = 1
MAX_BODY_BYTES: Final = 100 * 1024
_BODY_FIELDS: Final = frozenset({"opwatch_check", "request", "progress"})
_PROGRESS_FIELDS: Final = frozenset({"started", "polls", "transient_errors", "seen"})


@dataclass(frozen=True)
class CheckTask:
    """A re-check to schedule: Cloud Tasks calls the check function with ``body`` at ``when``.

    ``task_id`` is derived from the watch and how far it got, so a redelivered watch message or a
    retried check creates the same task, which Cloud Tasks refuses as ALREADY_EXISTS: one chain.
    """

    task_id: str
    body: bytes
    when: datetime


@dataclass(frozen=True)
class CheckState:
    """A decoded check body: the watch request (still to validate) and its progress."""

    request: dict[str, Any]
    progress: Progress


def task_id(watch_id: str, polls: int) -> str:
    """Cloud Tasks ids allow only ``[A-Za-z0-9_-]``; a hash also spreads names across shards."""
    return f"w{hashlib.sha256(watch_id.encode()).hexdigest()[:32]}-{polls}"


def encode(request: WatchRequest, progress: Progress, when: datetime) -> CheckTask:
    """The task that looks at ``request`` again at ``when``."""
    body = {
        "opwatch_check": VERSION,
        "request": request.to_json(),
        "progress": {
            "started": rfc3339(progress.started),
            "polls": progress.polls,
            "transient_errors": progress.transient_errors,
            "seen": progress.seen,
        },
    }
    data = json.dumps(body, separators=(",", ":")).encode()
    return CheckTask(task_id=task_id(request.watch_id, progress.polls), body=data, when=when)


def decode(body: bytes) -> CheckState:
    """Read a check body written by :func:`encode`.

    Raises:
        InvalidCheckBody: the body is not one opwatch wrote (garbage, tampered, other version).
    """
    if len(body) > MAX_BODY_BYTES:
        raise _invalid(
            "", f"the body is {len(body)} bytes; opwatch writes at most {MAX_BODY_BYTES}"
        )
    try:
        data = loads_strict(body.decode("utf-8"))
    except (ValueError, RecursionError):
        raise _invalid(
            "", "the body is not JSON; only opwatch's own tasks may call this function"
        ) from None
    # JSON true and 1.0 equal 1 in Python, but they are not what opwatch wrote.
    version = data.get("opwatch_check") if isinstance(data, dict) else None
    if not isinstance(data, dict) or type(version) is not int or version != VERSION:
        raise _invalid("opwatch_check", f"not an opwatch check body of version {VERSION}")
    if set(data) != _BODY_FIELDS:
        raise _invalid("", f"an opwatch check body has exactly {', '.join(sorted(_BODY_FIELDS))}")
    request, progress = data.get("request"), data.get("progress")
    if not isinstance(request, dict) or not isinstance(request.get("watch_id"), str):
        raise _invalid("request", "missing, not an object, or without a watch_id")
    if not isinstance(progress, dict) or set(progress) != _PROGRESS_FIELDS:
        fields = ", ".join(sorted(_PROGRESS_FIELDS))
        raise _invalid("progress", f"must be an object with exactly {fields}")
    started = progress.get("started")
    polls, errors, seen = (
        progress.get("polls"),
        progress.get("transient_errors"),
        progress.get("seen"),
    )
    try:
        started_at = datetime.fromisoformat(started) if isinstance(started, str) else None
    except ValueError:
        started_at = None
    if started_at is None or started_at.tzinfo is None:
        raise _invalid("progress.started", "missing or not an RFC 3339 time with a zone")
    if not isinstance(polls, int) or not _count(polls) or polls < 1:
        raise _invalid("progress.polls", "must be a positive integer")
    if not isinstance(errors, int) or not _count(errors):
        raise _invalid("progress.transient_errors", "must be a non-negative integer")
    if not isinstance(seen, bool):
        raise _invalid("progress.seen", "must be a boolean")
    return CheckState(request, Progress(started_at.astimezone(UTC), polls, errors, seen))


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _invalid(field: str, description: str) -> InvalidCheckBody:
    return InvalidCheckBody([Violation(field, description)])
