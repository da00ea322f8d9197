"""Operator commands: ``opwatch list``, ``status`` and ``cancel``.

With a ledger (``--ledger`` or ``OPWATCH_LEDGER_DATABASE``), watches are found there: pending
and finished alike, one query, paged (:func:`recorded_rows`); ``status`` adds each pending
chain's step as the queue holds it now, found among the few names its record gives. Without
one (or with ``--from-queue``), the queue is scanned (:mod:`opwatch.registry`): every watch in
flight is one pending task, whose body the check function would read. Both decode with the
functions' own code, so what they show is what the next check will do. They work on the local
stack (the emulators' hosts) and on a real project (Application Default Credentials), with the
queue from ``--queue`` or ``OPWATCH_TASKS_QUEUE``.

Formatting is pure (:func:`rows`, :func:`table`); the queue comes in as an argument.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from opwatch import checks
from opwatch.adapters import (
    CloudTasksQueue,
    FirestoreLedger,
    NotificationPublisher,
    OperationFetcher,
    default_firestore_client,
    default_publisher_client,
    with_environment,
)
from opwatch.checks import Step
from opwatch.contracts import CancelRequest
from opwatch.core import OVERDUE_FACTOR
from opwatch.handlers import Handlers
from opwatch.ledger import Record, State
from opwatch.permissions import calls
from opwatch.registry import CancelResult, PendingCheck, Registry
from opwatch.settings import Allowlists, FetchConfig, Settings, TasksConfig, WatchConfig
from opwatch.wire import parse_duration, rfc3339

COLUMNS = (
    "watch_id",
    "operation",
    "labels",
    "polls",
    "age",
    "next_check",
    "state",
    "expected",
    "last_error",
)


@dataclass(frozen=True)
class Filters:
    """Which watches to show: all given conditions hold."""

    operation: str | None = None
    api: str | None = None
    labels: Mapping[str, str] | None = None

    def match(self, check: PendingCheck) -> bool:
        if check.state is None:
            return self.operation is None and self.api is None and not self.labels
        request = check.state.request
        if self.operation is not None and request.get("operation") != self.operation:
            return False
        if self.api is not None and request.get("api") != self.api:
            return False
        labels = request.get("labels") or {}
        return all(labels.get(key) == value for key, value in (self.labels or {}).items())

    def match_record(self, record: Record) -> bool:
        if self.operation is not None and record.operation != self.operation:
            return False
        if self.api is not None and record.api != self.api:
            return False
        labels = record.labels
        return all(labels.get(key) == value for key, value in (self.labels or {}).items())


def operator_ledger(database: str, env: Mapping[str, str]) -> FirestoreLedger:
    """The ledger, as the CLI reads it: the emulator when ``FIRESTORE_EMULATOR_HOST`` is set in
    ``env``, else Firestore with Application Default Credentials."""
    host = env.get("FIRESTORE_EMULATOR_HOST", "").strip() or None
    return FirestoreLedger(  # the CLI writes nothing, so the retention is never used
        database, 1, functools.partial(default_firestore_client, database, host)
    )


def operator_queue(queue: str, env: Mapping[str, str]) -> CloudTasksQueue:
    """The queue, as the CLI reaches it: the emulator if configured, else Cloud Tasks (ADC).

    Cancel tasks must reach the check function like the functions' own tasks: its URL
    (``OPWATCH_CHECK_URL``) and, in production, the invoker account's OIDC token
    (``OPWATCH_TASKS_INVOKER_SA``, which needs iam.serviceAccounts.actAs on it).
    """
    return CloudTasksQueue(operator_tasks(env, queue))


def operator_tasks(env: Mapping[str, str], queue: str) -> TasksConfig:
    """The queue's configuration as the CLI has it; without ``OPWATCH_CHECK_URL`` it reads the
    queue and creates no task (a cancel says which variable is missing)."""
    return TasksConfig(
        queue=queue,
        check_url=_get(env, "OPWATCH_CHECK_URL"),
        invoker_service_account=_get(env, "OPWATCH_TASKS_INVOKER_SA"),
        emulator_host=_get(env, "CLOUD_TASKS_EMULATOR_HOST"),
    )


def operator_fetch(env: Mapping[str, str]) -> FetchConfig:
    """How the CLI fetches operations: a local endpoint (``OPWATCH_OPERATIONS_ENDPOINT``), else
    each API with ADC."""
    return FetchConfig(endpoint=_get(env, "OPWATCH_OPERATIONS_ENDPOINT"))


def _get(env: Mapping[str, str], name: str) -> str | None:
    return env.get(name, "").strip() or None


def sweeper(
    env: Mapping[str, str], queue: str, results_topic: str, api: str
) -> tuple[Handlers, OperationFetcher]:
    """What ``opwatch sweep`` runs: the functions' handlers over the real adapters, allowed to
    watch ``api`` and to publish to ``results_topic`` (an operation done by its first look)."""
    tasks = operator_tasks(env, queue)
    settings = Settings(
        watch=WatchConfig(results_topic=results_topic),
        tasks=tasks,
        allowlists=Allowlists(apis=frozenset({api}), notify_topics=frozenset({results_topic})),
    )
    fetcher = OperationFetcher(operator_fetch(env))
    database = _get(env, "OPWATCH_LEDGER_DATABASE")
    handlers = Handlers(
        settings,
        fetch=fetcher,
        queue=CloudTasksQueue(tasks),
        publish=NotificationPublisher(functools.partial(_publisher_client, env)),
        # The watches it starts are recorded as the functions' are.
        ledger=operator_ledger(database, env) if database else None,
    )
    return handlers, fetcher


def _publisher_client(env: Mapping[str, str]) -> Any:
    """The Pub/Sub publisher of ``env``'s emulator (``PUBSUB_EMULATOR_HOST``), or Pub/Sub.

    The client reads the variable from the process environment when it is created; it is put
    there for that moment only, like the ledger's (adapters.default_firestore_client)."""
    host = env.get("PUBSUB_EMULATOR_HOST", "").strip() or None
    return with_environment("PUBSUB_EMULATOR_HOST", host, default_publisher_client)


def rows(found: Iterable[PendingCheck], now: datetime) -> list[dict[str, Any]]:
    """One row per watch in flight (finished watches' held steps left out)."""
    out: list[dict[str, Any]] = []
    for check in found:
        if check.step is Step.FINISHED:
            continue
        when = check.task.schedule_time
        if check.state is None:
            out.append(
                {
                    "watch_id": "?",
                    "operation": "?",
                    "labels": {},
                    "polls": None,  # unknown: the body says it, and it is unreadable
                    "age": None,
                    "next_check": rfc3339(when) if when else None,
                    "state": f"unreadable: {check.problem[:80]}",
                    "expected": None,
                    "last_error": None,
                    "task": check.task.task_id,
                }
            )
            continue
        state, request = check.state, check.state.request
        started = state.progress.started
        out.append(
            {
                "watch_id": state.watch_id,
                "operation": request.get("operation"),
                "labels": request.get("labels") or {},
                "polls": state.progress.polls,
                "age": round((now - started).total_seconds(), 1),
                "next_check": rfc3339(when) if when else None,
                "state": _state(check),
                "expected": expected_end(state),
                # Set while the watch keeps meeting errors (a 409 "unable to queue the
                # operation", a 503, ...): the watch goes on, and this says why it is slow.
                "last_error": state.progress.last_error,
                "task": check.task.task_id,
            }
        )
    return sorted(out, key=lambda row: (str(row["watch_id"]), str(row["task"])))


def expected_end(state: checks.CheckState) -> dict[str, Any] | None:
    """When the watch's operation should end, and why: its own ``expected_duration`` (overdue
    past 1.5 x), or what was learned of its kind (median, and the 95th percentile past which it
    is overdue); counted from the watch's start. None when nothing says."""
    started = state.progress.started
    hinted = state.request.get("expected_duration")
    if isinstance(hinted, str):
        seconds = parse_duration(hinted)
        return {
            "median": rfc3339(started + timedelta(seconds=seconds)),
            "high": rfc3339(started + timedelta(seconds=OVERDUE_FACTOR * seconds)),
            "why": f"expected_duration {hinted}",
        }
    if state.learned is not None:
        learned = state.learned
        return {
            "median": rfc3339(started + timedelta(seconds=learned.median)),
            "high": rfc3339(started + timedelta(seconds=learned.high)),
            "why": f"learned from {learned.samples} operations of {learned.kind}",
        }
    return None


def _expected_text(expected: Mapping[str, Any] | None) -> str:
    if not expected:
        return ""
    return f"~{expected['median']} (by {expected['high']}; {expected['why']})"


def _state(check: PendingCheck) -> str:
    if check.step is Step.CANCEL:
        return "cancelling"
    if check.task.in_flight:
        return "checking now"
    return "parked" if check.name.parks else "waiting"


def table(found: Sequence[Mapping[str, Any]]) -> str:
    """A plain-text table of :func:`rows`."""
    lines = [list(COLUMNS)]
    for row in found:
        labels = ",".join(f"{k}={v}" for k, v in sorted(row["labels"].items()))
        age = "" if row["age"] is None else _human(float(row["age"]))
        lines.append(
            [
                str(row["watch_id"]),
                str(row["operation"]),
                labels,
                str(row["polls"]),
                age,
                str(row["next_check"] or ""),
                str(row["state"]),
                _expected_text(row["expected"]),
                str(row["last_error"] or ""),
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def list_watches(registry: Registry, filters: Filters, now: datetime) -> list[dict[str, Any]]:
    """The watches in flight that match ``filters``."""
    key = None
    if filters.operation is not None and filters.api is not None:
        key = checks.operation_key(filters.api, filters.operation)  # names alone select them
    return rows(
        (check for check in registry.pending(operation_key=key) if filters.match(check)), now
    )


def status(registry: Registry, watch_id: str, now: datetime) -> list[dict[str, Any]]:
    """The pending step(s) of one watch id (one per chain; usually one)."""
    return rows(registry.pending(watch_id=watch_id), now)


def cancel(registry: Registry, watch_id: str, reason: str) -> CancelResult:
    """Cancel every chain of ``watch_id`` in flight (see :meth:`Registry.cancel`)."""
    request = CancelRequest(watch_id, reason)
    return registry.cancel(request.watch_id, request.reason)


def operations_of(registry: Registry, watch_id: str) -> set[tuple[str, str, str]]:
    """``(api, api_version, operation)`` of each chain of ``watch_id`` in flight."""
    found = set()
    for check in registry.pending(watch_id=watch_id):
        if check.state is not None:
            request = check.state.request
            found.add((str(request["api"]), str(request["api_version"]), str(request["operation"])))
    return found


@calls("google.longrunning.Operations.CancelOperation", project=("{service}.operations.cancel",))
def cancel_operation(
    session: Any, endpoint: str | None, api: str, version: str, operation: str
) -> str:
    """``POST {api}/{version}/{operation}:cancel`` (google.longrunning CancelOperation).

    Returns:
        "" when the API accepted it, else what it answered.
    """
    base = endpoint.rstrip("/") if endpoint else f"https://{api}"
    reply = session.post(
        f"{base}/{version}/{operation}:cancel", json={}, timeout=30, allow_redirects=False
    )
    return "" if 200 <= reply.status_code < 300 else f"HTTP {reply.status_code}: {reply.text[:300]}"


RECORD_COLUMNS = (
    "watch_id",
    "state",
    "outcome",
    "operation",
    "labels",
    "polls",
    "started",
    "at",
    "expected",
)


def record_row(record: Record, now: datetime) -> dict[str, Any]:
    """A record as ``list`` shows it: its JSON (schemas/watch-record.json), and whether it is
    overdue (the ledger may be behind for it: Firestore was down)."""
    return {**record.to_json(), "overdue": record.overdue(now)}


def recorded_rows(
    store: FirestoreLedger | Any,
    state: State | None,
    since: datetime | None,
    filters: Filters,
    now: datetime,
    *,
    limit: int,
    after: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the ledger, newest first, and the token of the next (None: the last)."""
    records, token = store.page(state, since, limit, after)
    return [record_row(r, now) for r in records if filters.match_record(r)], token


def recorded_status(registry: Registry, watch_id: str, now: datetime) -> list[dict[str, Any]]:
    """Each chain of ``watch_id`` as the ledger has it; a pending one with its step as the queue
    holds it now (``pending_step``: its time, polls and state; None if it is not where the
    record says, so the ledger is behind)."""
    assert registry.ledger is not None
    out = []
    for record in registry.ledger.of_watch(watch_id):
        row = record_row(record, now)
        if record.state is State.PENDING:
            step = registry.step_of(record)
            live = rows([step], now) if step is not None else []
            row["pending_step"] = (
                {
                    "task": live[0]["task"],
                    "next_check": live[0]["next_check"],
                    "polls": live[0]["polls"],
                    "state": live[0]["state"],
                    "expected": live[0]["expected"],
                    "last_error": live[0]["last_error"],
                }
                if live
                else None
            )
            if live and live[0]["polls"] is not None:
                row["polls"] = live[0]["polls"]
        out.append(row)
    return sorted(out, key=lambda row: str(row["started"]))


def record_table(found: Sequence[Mapping[str, Any]]) -> str:
    """A plain-text table of :func:`record_row` rows; ``at`` is when it finished, or the next
    look's time while pending."""
    lines = [list(RECORD_COLUMNS)]
    for row in found:
        step = row.get("pending_step")
        at = row["finished"] or (step["next_check"] if step else row["next_look"]) or ""
        state = row["state"] + (" (overdue)" if row["overdue"] else "")
        if row["state"] == State.PENDING.value and "pending_step" in row and step is None:
            state += " (not on the queue where recorded)"
        lines.append(
            [
                str(row["watch_id"]),
                state,
                str(row["outcome"] or ""),
                str(row["operation"]),
                ",".join(f"{k}={v}" for k, v in sorted(row["labels"].items())),
                str(row["polls"]),
                str(row["started"]),
                str(at),
                _expected_text(step["expected"]) if step else "",
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(RECORD_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def dumps(found: Sequence[Mapping[str, Any]]) -> str:
    """``--json``: one JSON array."""
    return json.dumps(list(found), ensure_ascii=False, indent=1)
