"""Fakes at opwatch's three boundaries (fetch, schedule, publish), an injected clock, and the
builders the tests share (messages, fetch results, a wired harness)."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opwatch import checks, learned, ledger
from opwatch.contracts import WatchRequest
from opwatch.core import Fetched, FetchFailed, FetchResult
from opwatch.envelope import PushedMessage
from opwatch.handlers import Handlers
from opwatch.notification import Notification
from opwatch.ports import QueuedTask
from opwatch.settings import Allowlists, Settings, TasksConfig, WatchConfig
from opwatch.status import make_status
from opwatch_local import memory_ledger

DATA = Path(__file__).parent / "data"
T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
RESULTS = "projects/test-project/topics/opwatch-results"
OTHER_TOPIC = "projects/test-project/topics/team-b-results"
QUEUE = "projects/test-project/locations/us-central1/queues/opwatch-checks"
CHECK_URL = "https://opwatch-on-check-123456789012.us-central1.run.app"
OPERATION = "projects/p/locations/us-central1/operations/operation-123"


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def pubsub_json(data: Any, message_id: str = "m-1", *, raw: bytes | None = None) -> dict[str, Any]:
    """A PubsubMessage in its JSON form, as a push envelope holds it."""
    payload = raw if raw is not None else json.dumps(data).encode()
    return {"data": base64.b64encode(payload).decode(), "messageId": message_id}


def pubsub_message(
    data: Any, message_id: str = "m-1", *, raw: bytes | None = None
) -> PushedMessage:
    """A PubsubMessage as the functions are handed it (read from its JSON form)."""
    return PushedMessage.from_json(pubsub_json(data, message_id, raw=raw))


class Clock:
    """Time that moves only when a test says so."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class FakeFetch:
    """Answers each fetch with the next scripted result (the last one repeats)."""

    results: list[FetchResult | Callable[[], FetchResult]] = field(default_factory=list)
    calls: list[WatchRequest] = field(default_factory=list)

    def __call__(self, request: WatchRequest) -> FetchResult:
        self.calls.append(request)
        result = self.results[min(len(self.calls), len(self.results)) - 1]
        return result() if callable(result) else result


# Cloud Tasks keeps a task's name taken after the task is gone. CreateTask's "Task
# De-duplication" (Python client reference,
# https://cloud.google.com/python/docs/reference/cloudtasks/latest/google.cloud.tasks_v2.types.CreateTaskRequest):
# "another task with the same name can't be created for 1 hour after the original task was
# deleted or executed" (also "about 1 hour", https://cloud.google.com/tasks/docs/quotas). The REST
# reference of the same call
# (https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues.tasks/create)
# adds that a deleted task's ID "can take up to 4 hours" to be released. FakeQueue's defaults.
DEDUP_WINDOW = timedelta(hours=1)
DELETED_ID_HELD = timedelta(hours=4)


@dataclass
class FakeQueue:
    """Plays the Cloud Tasks queue: pending tasks in ``tasks``. A task whose id is in
    ``in_flight`` is listed as dispatched and not answered yet.

    A name is taken (create answers ALREADY_EXISTS) while its task is queued or running, for
    ``dedup_window`` after it ran (:meth:`answered`; default :data:`DEDUP_WINDOW`, Cloud Tasks'
    documented 1 hour) and for ``deleted_id_held`` after it was deleted (default
    :data:`DELETED_ID_HELD`, 4 hours), on ``clock`` (the harness's). ``names`` maps each name used
    to when it is free again (None: not known yet, so taken); without a clock a used name is
    never free again.
    """

    tasks: list[checks.CheckTask] = field(default_factory=list)
    fail_with: Exception | None = None
    list_fails_with: Exception | None = None
    names: dict[str, datetime | None] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    in_flight: set[str] = field(default_factory=set)
    created: list[str] = field(default_factory=list)
    # Each create answered ALREADY_EXISTS, by name.
    refused: list[str] = field(default_factory=list)
    clock: Callable[[], datetime] | None = None
    dedup_window: timedelta = DEDUP_WINDOW
    deleted_id_held: timedelta = DELETED_ID_HELD
    # Each call of first(): the names a reader asked for at once; and ListTasks scans.
    probes: list[list[str]] = field(default_factory=list)
    scans: int = 0

    def taken(self, task_id: str) -> bool:
        """Whether a task named ``task_id`` would be refused now."""
        if task_id not in self.names:
            return False
        free_at = self.names[task_id]
        return free_at is None or self.clock is None or self.clock() < free_at

    def _hold(self, task_id: str, hold: timedelta) -> None:
        if self.clock is None:
            return
        free_at = self.clock() + hold
        previous = self.names.get(task_id)
        self.names[task_id] = free_at if previous is None else max(previous, free_at)

    def answered(self, task: checks.CheckTask) -> None:
        """The task's dispatch answered 2xx: Cloud Tasks removes it; its name stays taken for
        the dedup window."""
        if task in self.tasks:
            self.tasks.remove(task)
            self._hold(task.task_id, self.dedup_window)

    def create(self, task: checks.CheckTask) -> bool:
        if self.fail_with is not None:
            raise self.fail_with
        if self.taken(task.task_id):
            self.refused.append(task.task_id)
            return False
        self.names[task.task_id] = None
        self.tasks.append(task)
        self.created.append(task.task_id)
        return True

    def _find(self, task_id: str) -> checks.CheckTask | None:
        return next((task for task in self.tasks if task.task_id == task_id), None)

    def _queued(self, task: checks.CheckTask) -> QueuedTask:
        running = task.task_id in self.in_flight
        return QueuedTask(task.task_id, task.body, task.when, dispatch_count=int(running))

    def get(self, task_id: str) -> QueuedTask | None:
        task = self._find(task_id)
        return self._queued(task) if task else None

    def first(self, task_ids: Sequence[str]) -> QueuedTask | None:
        self.probes.append(list(task_ids))
        return next((t for t in map(self.get, task_ids) if t is not None), None)

    def delete(self, task_id: str) -> bool:
        task = self._find(task_id)
        if task is None:
            return False
        self.tasks.remove(task)
        self.deleted.append(task_id)
        self._hold(task_id, self.deleted_id_held)
        return True

    def list_tasks(self) -> list[QueuedTask]:
        self.scans += 1
        if self.list_fails_with is not None:
            raise self.list_fails_with
        return [self._queued(task) for task in self.tasks]


@dataclass
class FakeLedger:
    """Plays the Firestore ledger: documents by id, written as :func:`ledger.to_document` makes
    them and merged as ``set(merge=True)`` merges; queries filter them as Firestore would.
    ``fail_with`` makes every call raise (Firestore down)."""

    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_with: Exception | None = None
    writes: int = 0
    queries: int = 0
    retention: timedelta = timedelta(days=30)
    samples: list[learned.Sample] = field(default_factory=list)

    def _check(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    def put(self, record: ledger.Record) -> None:
        self._check()
        self.writes += 1
        fields = ledger.to_document(record, retention=self.retention)
        self.documents.setdefault(record.doc_id, {}).update(fields)

    def learn(self, sample: learned.Sample) -> None:
        self._check()
        self.samples.append(sample)  # a write of its own, not counted among the records'.

    def summary(self, kind: str) -> learned.Summary:
        self._check()
        self.queries += 1
        summary = learned.Summary(kind)
        for sample in self.samples:
            if sample.kind == kind:
                summary.add(sample)
        return summary

    def records(self) -> list[ledger.Record]:
        return [ledger.from_document(fields) for fields in self.documents.values()]

    def record(self, watch_id: str) -> ledger.Record:
        [found] = [r for r in self.records() if r.watch_id == watch_id]
        return found

    def pending_of_operation(self, operation_key: str) -> list[ledger.Record]:
        self._check()
        self.queries += 1
        return [
            r
            for r in self.records()
            if r.operation_key == operation_key and r.state is ledger.State.PENDING
        ]

    def of_watch(self, watch_id: str) -> list[ledger.Record]:
        self._check()
        self.queries += 1
        return [r for r in self.records() if r.watch_id == watch_id]

    def page(
        self,
        state: ledger.State | None,
        since: datetime | None,
        limit: int,
        after: str | None,
    ) -> tuple[list[ledger.Record], str | None]:
        self._check()
        self.queries += 1
        return memory_ledger.page(self.records(), state, since, limit, after)


@dataclass
class RecordingPublish:
    messages: list[Notification] = field(default_factory=list)
    fail_with: Exception | None = None

    def __call__(self, message: Notification) -> str:
        if self.fail_with is not None:
            raise self.fail_with
        self.messages.append(message)
        return str(len(self.messages))

    @property
    def received(self) -> list[dict[str, Any]]:
        return [message.to_json() for message in self.messages]


def pending(name: str = OPERATION) -> Fetched:
    return Fetched({"name": name, "done": False, "metadata": {"verb": "create"}})


def succeeded(name: str = OPERATION, response: Any = None) -> Fetched:
    body = response if response is not None else {"@type": "type.googleapis.com/x.Thing", "id": 7}
    return Fetched({"name": name, "done": True, "response": body})


def failed(code: int = 9, message: str = "index build failed") -> Fetched:
    return Fetched({"name": OPERATION, "done": True, "error": {"code": code, "message": message}})


def http_error(status: int, code: int, message: str = "boom", **kwargs: Any) -> FetchFailed:
    return FetchFailed(status, make_status(code, message, kwargs.pop("details", None)), **kwargs)


def make_settings() -> Settings:
    """A deployment's settings as the service tests assume them (two APIs, two topics)."""
    return Settings(
        watch=WatchConfig(results_topic=RESULTS),
        tasks=TasksConfig(
            queue=QUEUE,
            check_url=CHECK_URL,
            invoker_service_account="opwatch-invoker@test-project.iam.gserviceaccount.com",
        ),
        allowlists=Allowlists(
            apis=frozenset({"cloudaicompanion.googleapis.com", "spanner.googleapis.com"}),
            notify_topics=frozenset({RESULTS, OTHER_TOPIC}),
        ),
    )


@dataclass
class Harness:
    """A Handlers wired to fakes, plus a driver that plays Cloud Tasks."""

    handlers: Handlers
    clock: Clock
    fetch: FakeFetch
    schedule: FakeQueue
    publish: RecordingPublish

    def run_checks(self, limit: int = 1000) -> None:
        """Deliver scheduled tasks in order, at their time, until none is left.

        Like Cloud Tasks, a task stays listed while it runs and is removed once it answered.
        """
        delivered = 0
        while self.schedule.tasks:
            task = self.schedule.tasks[0]
            assert task.when >= self.clock.now, "a check was scheduled in the past"
            self.clock.now = task.when
            self.schedule.in_flight.add(task.task_id)
            try:
                self.handlers.on_check(checks.decode(task.body), retries=0)
            finally:
                self.schedule.in_flight.discard(task.task_id)
            self.schedule.answered(task)
            delivered += 1
            assert delivered <= limit, "the polling chain did not end"


def make_harness(settings: Settings, ledger: FakeLedger | None = None) -> Harness:
    """A Handlers over fakes (with ``ledger``, if given) and its driver."""
    clock, fetch = Clock(), FakeFetch()
    schedule, publish = FakeQueue(clock=clock), RecordingPublish()
    handlers = Handlers(
        settings, fetch=fetch, queue=schedule, publish=publish, clock=clock, ledger=ledger
    )
    return Harness(handlers, clock, fetch, schedule, publish)


class EventLog(logging.Handler):
    """The ``event`` and fields of every line opwatch logs (what metrics and alerts select on)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "fields", {})
        self.lines.append({"severity": record.levelname, **fields})

    @property
    def events(self) -> list[str]:
        return [str(line.get("event")) for line in self.lines]
