"""The ledger at scale, in process: background watches as the functions leave them, counting
fakes of the ledger and the queue, and the audit-log fast path run over them.

Shared by ``bench/ledger_scale.py`` (which seeds the local stack with the same background
watches, and runs this harness at 100,000) and ``tests/tools/test_bench_tools.py`` (small N, no
timing asserted):

- :func:`background_watch` is the i-th pending watch as the functions would have left it: a
  check task of step ``seq`` of its chain (``checks.encode``, with ``recorded``), and the
  ledger's record of the step it last recorded (at most ``RECORD_EVERY - 1`` behind), its next
  look hours away;
- :class:`IndexedLedger` holds records indexed by operation key and watch id (as Firestore's
  indexes serve the queries), :class:`CountingQueue` tasks by name; both count the calls the
  real adapters would make (``first`` of 17 names is 17 GetTask calls, ``list_tasks`` one
  ListTasks per page of 1,000);
- :func:`run_harness` seeds N of them, starts M measured watches through the functions' own
  :class:`~opwatch.handlers.Handlers` (a requested and a discovered watch per operation, a few
  looks each), then delivers each operation's last audit entry and counts what the fast path
  spent on it, and the CPU time it took.

:func:`quota_calls` counts the Tasks emulator's "counted against" lines (one per call against
a quota), which is how the local-stack run counts ListTasks and RunTask.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from bench.stats import Summary
from opwatch import checks, learned, ledger
from opwatch.audit import discovered_watch_id
from opwatch.checks import CheckTask, TaskName
from opwatch.contracts import DEFAULT_API, WatchRequest
from opwatch.core import Fetched, FetchResult, Progress
from opwatch.envelope import PushedMessage
from opwatch.handlers import Handlers
from opwatch.ledger import RECORD_EVERY, Record, State
from opwatch.notification import Notification
from opwatch.ports import QueuedTask
from opwatch.registry import pages
from opwatch.settings import Allowlists, LedgerConfig, Settings, TasksConfig, WatchConfig
from opwatch_local import memory_ledger
from opwatch_local.audit_log import AuditOptions, audit_entry

__all__ = [
    "BACKGROUND_PARENT",
    "CountingQueue",
    "HarnessResult",
    "IndexedLedger",
    "background_watch",
    "quota_calls",
    "run_harness",
]

BACKGROUND_PARENT: Final = "projects/opwatch-scale/locations/us-central1"
MEASURED_PARENT: Final = "projects/opwatch-scale/locations/europe-west1"
# Background watches per operation: several watchers of one operation, as with discovery on.
PER_OPERATION: Final = 2
# How far along its chain a background watch is: steps 1 to this.
LONGEST_CHAIN: Final = 40
LABELS: Final = {"bench": "ledger-scale"}
RESULTS: Final = "projects/opwatch-scale/topics/opwatch-results"
QUEUE: Final = "projects/opwatch-scale/locations/us-central1/queues/opwatch-checks"
# ListTasks returns at most 1,000 tasks a page (ListTasksRequest.page_size reference).
LIST_PAGE: Final = 1000
QUOTA_LINE: Final = re.compile(r"tasks emulator: (\w+) counted against ")


def background_watch(
    i: int, now: datetime, results_topic: str = RESULTS
) -> tuple[CheckTask, Record]:
    """The ``i``-th background watch: its pending check task and its ledger record.

    Its operation is shared with :data:`PER_OPERATION` - 1 other background watches; its chain
    is at step 1 to :data:`LONGEST_CHAIN`, the ledger holding the step ``i % RECORD_EVERY``
    before it (never before step 1), as a look that records every ``RECORD_EVERY`` steps
    leaves it; its next look is 2-3 hours away, so it is never dispatched during a run.
    """
    operation = f"{BACKGROUND_PARENT}/operations/bg-{i // PER_OPERATION:07d}"
    watch_id = f"bg-{i:07d}"
    chain = checks.chain_for_message(f"bench-background-{i}")
    request = WatchRequest(operation=operation, watch_id=watch_id, labels=LABELS)
    seq = 1 + i % LONGEST_CHAIN
    recorded = max(1, seq - i % RECORD_EVERY)
    started = now - timedelta(minutes=5 * seq + i % 60)
    when = now + timedelta(hours=2, seconds=i % 3600)
    progress = Progress(started=started, polls=seq, seen=True)
    task = checks.encode(request, progress, when, chain, seq=seq, recorded=recorded)
    record = Record(
        watch_id=watch_id,
        operation=operation,
        api=request.api,
        chain=chain,
        started=started,
        polls=recorded,
        seq=recorded,
        updated=now,
        labels=dict(LABELS),
        results_topic=results_topic,
        # When the recorded step was due: then, or a few looks ago.
        next_look=when if recorded == seq else now - timedelta(minutes=5 * (seq - recorded)),
    )
    return task, record


def quota_calls(text: str) -> Counter[str]:
    """Calls counted against a Cloud Tasks quota, by method, from the Tasks emulator's log
    (``tasks emulator: ListTasks counted against List requests``, one line per call)."""
    return Counter(match.group(1) for match in QUOTA_LINE.finditer(text))


# --- counting fakes ------------------------------------------------------------------------------


@dataclass
class IndexedLedger:
    """The ledger in memory, merged as ``set(merge=True)`` merges, with the two indexes its
    queries need (Firestore serves them from composite indexes: no scan); counts Commit,
    RunQuery and BatchGetDocuments (a kind's summary) calls. Learns nothing."""

    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_operation: dict[str, set[str]] = field(default_factory=dict)
    by_watch: dict[str, set[str]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    retention: timedelta = timedelta(days=30)

    def put(self, record: Record) -> None:
        self.calls["Commit"] += 1
        self.seed(record)

    def seed(self, record: Record) -> None:
        """Write ``record`` without counting the call (the background, written beforehand)."""
        fields = ledger.to_document(record, retention=self.retention)
        self.documents.setdefault(record.doc_id, {}).update(fields)
        self.by_operation.setdefault(record.operation_key, set()).add(record.doc_id)
        self.by_watch.setdefault(record.watch_id, set()).add(record.doc_id)

    def _records(self, ids: Iterable[str]) -> list[Record]:
        return [ledger.from_document(self.documents[doc]) for doc in sorted(ids)]

    def pending_of_operation(self, operation_key: str) -> list[Record]:
        self.calls["RunQuery"] += 1
        found = self._records(self.by_operation.get(operation_key, ()))
        return [r for r in found if r.state is State.PENDING][: ledger.MAX_PAGE]

    def of_watch(self, watch_id: str) -> list[Record]:
        self.calls["RunQuery"] += 1
        return self._records(self.by_watch.get(watch_id, ()))[: ledger.MAX_PAGE]

    def learn(self, sample: learned.Sample) -> None:
        """A finish's duration, added to its kind (counted; nothing is learned here, so every
        watch is scheduled by its profile, as on the stack with learning off)."""
        self.calls["Commit"] += 1

    def summary(self, kind: str) -> learned.Summary:
        self.calls["BatchGetDocuments"] += 1
        return learned.Summary(kind)

    def page(
        self, state: State | None, since: datetime | None, limit: int, after: str | None
    ) -> tuple[list[Record], str | None]:
        self.calls["RunQuery"] += 1
        return memory_ledger.page(self._records(self.documents), state, since, limit, after)


@dataclass
class CountingQueue:
    """The Cloud Tasks queue in memory, by name; counts the calls the real adapter makes.

    A name once used stays taken (create answers False, ALREADY_EXISTS). ``first`` asks for
    every name at once, as the adapter does: one GetTask per name, and a GetQueue when none is
    there. ``list_tasks`` pages by 1,000, one ListTasks a page. There is no RunTask: the
    registry has no call that could make one.
    """

    tasks: dict[str, CheckTask] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)
    by_operation: dict[str, set[str]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)

    def seed(self, task: CheckTask) -> None:
        """Queue ``task`` without counting the call."""
        self.names.add(task.task_id)
        self.tasks[task.task_id] = task
        self.by_operation.setdefault(task.task_id.split("-", 1)[0], set()).add(task.task_id)

    def _remove(self, task_id: str) -> CheckTask | None:
        task = self.tasks.pop(task_id, None)
        if task is not None:
            self.by_operation[task_id.split("-", 1)[0]].discard(task_id)
        return task

    def create(self, task: CheckTask) -> bool:
        self.calls["CreateTask"] += 1
        if task.task_id in self.names:
            return False
        self.seed(task)
        return True

    def _queued(self, task: CheckTask) -> QueuedTask:
        return QueuedTask(task.task_id, task.body, task.when)

    def get(self, task_id: str) -> QueuedTask | None:
        self.calls["GetTask"] += 1
        task = self.tasks.get(task_id)
        return self._queued(task) if task is not None else None

    def first(self, task_ids: Sequence[str]) -> QueuedTask | None:
        self.calls["GetTask"] += len(task_ids)
        for task_id in task_ids:
            if (task := self.tasks.get(task_id)) is not None:
                return self._queued(task)
        self.calls["GetQueue"] += 1
        return None

    def delete(self, task_id: str) -> bool:
        self.calls["DeleteTask"] += 1
        return self._remove(task_id) is not None

    def list_tasks(self) -> Iterator[QueuedTask]:
        def page(token: str) -> tuple[list[QueuedTask], str]:
            self.calls["ListTasks"] += 1
            start = int(token or 0)
            rows = list(self.tasks.values())[start : start + LIST_PAGE]
            more = start + LIST_PAGE < len(self.tasks)
            return [self._queued(t) for t in rows], str(start + LIST_PAGE) if more else ""

        return pages(page)

    def dispatch(self, operation_key: str, by: datetime | None = None) -> list[CheckTask]:
        """Take the operation's tasks due by ``by`` (None: all of them), oldest first, as Cloud
        Tasks dispatches them (and removes them once answered)."""
        due = [
            self.tasks[t]
            for t in self.by_operation.get(operation_key, ())
            if by is None or self.tasks[t].when <= by
        ]
        for task in due:
            self._remove(task.task_id)
        return sorted(due, key=lambda t: t.when)


# --- the run -------------------------------------------------------------------------------------


class _Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class _Operations:
    """The fetch port: each operation pending until it is marked done."""

    done: set[str] = field(default_factory=set)
    gets: int = 0

    def __call__(self, request: WatchRequest) -> FetchResult:
        self.gets += 1
        finished = request.operation in self.done
        body: dict[str, Any] = {"name": request.operation, "done": finished}
        if finished:
            body["response"] = {"@type": "type.googleapis.com/google.protobuf.Empty"}
        return Fetched(body)


@dataclass
class _Published:
    messages: list[Notification] = field(default_factory=list)

    def __call__(self, message: Notification) -> str:
        self.messages.append(message)
        return str(len(self.messages))


@dataclass(frozen=True)
class HarnessResult:
    """What the fast path spent per end entry over ``background`` pending watches.

    ``per_entry`` holds the calls of each end entry (RunQuery, GetTask, GetQueue, ListTasks,
    CreateTask, DeleteTask; RunTask is never possible), ``cpu`` its CPU seconds (this thread's),
    ``chains`` the watches each operation had, ``notified`` the measured watches that ended in
    one notification after their end entry, out of ``measured``.
    """

    background: int
    with_ledger: bool
    operations: int
    chains: int
    per_entry: list[Counter[str]]
    cpu: list[float]
    measured: int
    notified: int
    seed_seconds: float

    def calls(self, method: str) -> Summary:
        return Summary.of(float(c[method]) for c in self.per_entry)


def _pushed(data: dict[str, Any], message_id: str) -> PushedMessage:
    payload = base64.b64encode(json.dumps(data).encode()).decode()
    return PushedMessage.from_json({"data": payload, "messageId": message_id})


def run_harness(
    background: int,
    operations: int,
    *,
    with_ledger: bool = True,
    looks_before_end: Callable[[int], int] = lambda j: j % 12,
    progress: Callable[[str], None] = lambda line: None,
) -> HarnessResult:
    """Seed ``background`` pending watches, then end ``operations`` measured operations.

    Each measured operation is watched twice, as with discovery on: a watch request (its own
    chain) and the watch its first audit entry discovers. Both look ``looks_before_end(j)``
    times while it is pending (so their steps are anywhere among the names a record gives),
    then it ends, its last audit entry is delivered (measured: calls and CPU), and the looks
    it brought forward run and publish.

    Args:
        background: pending watches already on the queue and in the ledger.
        operations: measured operations (end entries).
        with_ledger: False measures the same without a ledger (the queue is scanned).
        looks_before_end: looks each watch of operation ``j`` makes before it ends.
        progress: lines for a person watching.
    """
    clock = _Clock(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    settings = Settings(
        watch=WatchConfig(results_topic=RESULTS, event_driven_apis=frozenset({DEFAULT_API})),
        tasks=TasksConfig(queue=QUEUE, check_url="https://opwatch-on-check.example.run.app/"),
        allowlists=Allowlists(apis=frozenset({DEFAULT_API}), notify_topics=frozenset({RESULTS})),
        ledger=LedgerConfig("projects/opwatch-scale/databases/opwatch-ledger")
        if with_ledger
        else None,
    )
    store, queue = IndexedLedger(), CountingQueue()
    fetch, published = _Operations(), _Published()
    handlers = Handlers(
        settings,
        fetch=fetch,
        queue=queue,
        publish=published,
        clock=clock,
        ledger=store if with_ledger else None,
    )
    began = time.perf_counter()
    for i in range(background):
        task, record = background_watch(i, clock.now)
        queue.seed(task)
        if with_ledger:
            store.seed(record)
    seed_seconds = time.perf_counter() - began
    progress(f"harness: {background} background watches seeded in {seed_seconds:.1f}s")

    per_entry: list[Counter[str]] = []
    cpu: list[float] = []
    notified = 0
    for j in range(operations):
        operation = f"{MEASURED_PARENT}/operations/measured-{j:05d}"
        key = checks.operation_key(DEFAULT_API, operation)
        requested = f"measured-{j:05d}"
        options = AuditOptions()
        first = audit_entry(
            name=operation, kind="first", options=options, at=clock.now.timestamp(),
            target=operation, insert_id=f"first-{j}",
        )  # fmt: skip
        handlers.on_watch_message(_pushed({"operation": operation, "watch_id": requested}, f"m{j}"))
        handlers.on_audit_message(_pushed(first, f"a{j}"))
        for _ in range(looks_before_end(j)):
            for task in queue.dispatch(key):
                clock.now = max(clock.now, task.when)
                handlers.on_check(checks.decode(task.body), retries=0)
        fetch.done.add(operation)
        last = audit_entry(
            name=operation, kind="last", options=options, at=clock.now.timestamp(),
            target=operation, insert_id=f"last-{j}",
        )  # fmt: skip
        before = queue.calls + store.calls
        started = time.thread_time()
        handlers.on_audit_message(_pushed(last, f"z{j}"))
        cpu.append(time.thread_time() - started)
        spent = queue.calls + store.calls
        spent.subtract(before)
        per_entry.append(+spent)
        # The looks it brought forward are due now: they see done and publish.
        sent = len(published.messages)
        for task in queue.dispatch(key, by=clock.now):
            handlers.on_check(checks.decode(task.body), retries=0)
        ids = {m.attributes.get("watch_id") for m in published.messages[sent:]}
        notified += len(ids & {requested, discovered_watch_id(DEFAULT_API, operation)})
    return HarnessResult(
        background=background,
        with_ledger=with_ledger,
        operations=operations,
        chains=2,
        per_entry=per_entry,
        cpu=cpu,
        measured=2 * operations,
        notified=notified,
        seed_seconds=seed_seconds,
    )


def probe_finds(task: CheckTask, record: Record) -> bool:
    """Whether the record's probe names include the task's name (the fast path finds it)."""
    name = TaskName.parse(task.task_id)
    return name is not None and name in ledger.probe_names(record)
