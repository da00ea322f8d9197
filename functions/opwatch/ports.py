"""The ports opwatch's use cases are written against: fetch, queue, publish and the clock.

The real adapters are in :mod:`opwatch.adapters`, the fakes in the tests; the ledger's port is
:class:`opwatch.ledger.Ledger`. Each use case takes only the ports it uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from opwatch.checks import CheckTask
from opwatch.contracts import WatchRequest
from opwatch.core import FetchResult
from opwatch.notification import Notification

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


class Fetch(Protocol):
    """Fetches the watched operation once; never raises for an API or network error."""

    def __call__(self, request: WatchRequest) -> FetchResult: ...


class Publish(Protocol):
    """Publishes the notification and waits for the server's acknowledgement; raises on failure.
    Returns the message id Pub/Sub gave it, when known."""

    def __call__(self, message: Notification) -> str | None: ...


@dataclass(frozen=True)
class QueuedTask:
    """A task as the queue lists it (full view)."""

    task_id: str
    body: bytes
    schedule_time: datetime | None = None
    dispatch_count: int = 0
    response_count: int = 0

    @property
    def in_flight(self) -> bool:
        """A dispatch was made and has not been answered yet."""
        return self.dispatch_count > self.response_count


class TaskQueue(Protocol):
    """The operations of the Cloud Tasks queue that opwatch needs."""

    def list_tasks(self) -> Iterable[QueuedTask]:
        """Every task of the queue, page after page."""
        ...

    def create(self, task: CheckTask) -> bool:
        """Create ``task``: True, or False if its name is taken (ALREADY_EXISTS)."""
        ...

    def get(self, task_id: str) -> QueuedTask | None:
        """The task, or None if it is gone (ran, deleted) or never was."""
        ...

    def delete(self, task_id: str) -> bool:
        """Delete the task: True, or False if it was already gone."""
        ...

    def first(self, task_ids: Sequence[str]) -> QueuedTask | None:
        """The first of ``task_ids`` that is on the queue (all are asked at once), or None."""
        ...
