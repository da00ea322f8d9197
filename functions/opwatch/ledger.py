"""The ledger: one Firestore document per watch chain, which finds watches and remembers them.

The queue stays the truth of a pending watch (its next step is a task); the ledger is an index
of it, written by the functions on the side and never waited on:

- a chain's document is written when the watch starts, by a look at least every
  :data:`RECORD_EVERY` steps, when it is parked, and when it finishes (with the outcome and the
  published notification's message id). A look in between writes nothing, so the warm check
  costs no ledger call;
- so the document names a step at most :data:`RECORD_EVERY` steps behind the pending one, and
  :func:`probe_names` lists the few task names that the pending step must be among: the fast
  path and a cancel find it with as many GetTask calls, never a ListTasks scan;
- a write that fails is logged and dropped, except a finish: that one is retried from a task
  (``Step.RECORD``), so once Firestore is back the ledger never shows a finished watch as
  pending.

Pure: documents in, documents out; the Firestore adapter is in ``adapters.py``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from opwatch import checks
from opwatch.checks import TaskName
from opwatch.contracts import MAX_TIMEOUT
from opwatch.learned import Sample, Summary
from opwatch.policy import SAFETY_NET
from opwatch.wire import parse_rfc3339, rfc3339

COLLECTION: Final = "watches"
# A look records its chain's step when the ledger's is this many steps behind: 1 write in 16
# looks (a write costs about half a minimal check's CPU, bench/results/check_cost.md), and a
# reader finds the pending step among 17 names, asked at once.
RECORD_EVERY: Final = 16
# Firestore's own limit on a query page is far above this; a page of the CLI's list.
MAX_PAGE: Final = 300
# The longest step between looks (the safety net's): a pending record not written again
# RECORD_EVERY such steps after its look was due is overdue.
LONGEST_STEP: Final = timedelta(seconds=SAFETY_NET.max_delay)


class State(enum.StrEnum):
    PENDING = "PENDING"
    FINISHED = "FINISHED"


@dataclass(frozen=True)
class Record:
    """What the ledger holds of one chain of one watch.

    Attributes:
        watch_id: the watch's id.
        operation: the operation's full name.
        api: the API host.
        chain: the chain (one per watch request message; ``discovered`` for discovery).
        started: when the watch started.
        polls: fetches made when this was written.
        seq: the chain's step this was written at (the pending one while pending).
        labels: the watch's labels.
        results_topic: where its notification goes (the results topic, or its notify topic).
        next_look: while pending, when the recorded step is due.
        outcome: once finished, the outcome published.
        finished: once finished, when.
        message_id: once finished, the Pub/Sub message id of the notification (None when not
            known: a record written again after a failure keeps the one it had).
        updated: when this was written.
    """

    watch_id: str
    operation: str
    api: str
    chain: str
    started: datetime
    polls: int
    seq: int
    updated: datetime
    labels: Mapping[str, str] = field(default_factory=dict)
    results_topic: str = ""
    next_look: datetime | None = None
    outcome: str | None = None
    finished: datetime | None = None
    message_id: str | None = None

    @property
    def state(self) -> State:
        # A finish is final: a late pending write (merged, it never clears the outcome) cannot
        # make a finished watch pending again.
        return State.FINISHED if self.outcome is not None else State.PENDING

    @property
    def operation_key(self) -> str:
        return checks.operation_key(self.api, self.operation)

    @property
    def doc_id(self) -> str:
        """The chain's task names without their step: ``{operation key}-{watch key}-{chain}``."""
        return document_id(self.api, self.operation, self.watch_id, self.chain)

    def overdue(self, now: datetime) -> bool:
        """Pending, and not written again long after its chain should have: the ledger may be
        behind for it (Firestore was down, or is), so the queue knows better."""
        if self.state is State.FINISHED or self.next_look is None:
            return False
        return now > self.next_look + RECORD_EVERY * LONGEST_STEP

    def finish(self, outcome: str, when: datetime, polls: int, message_id: str | None) -> Record:
        return replace(
            self,
            outcome=outcome,
            finished=when,
            polls=polls,
            message_id=message_id,
            next_look=None,
            updated=when,
        )

    def to_json(self) -> dict[str, Any]:
        """The record as ``opwatch list --json`` and ``status --json`` print it
        (schemas/watch-record.json)."""
        return {
            "watch_id": self.watch_id,
            "state": self.state.value,
            "outcome": self.outcome,
            "operation": self.operation,
            "api": self.api,
            "chain": self.chain,
            "polls": self.polls,
            "started": rfc3339(self.started),
            "finished": rfc3339(self.finished) if self.finished else None,
            "next_look": rfc3339(self.next_look) if self.next_look else None,
            "labels": dict(self.labels),
            "results_topic": self.results_topic,
            "message_id": self.message_id,
            "updated": rfc3339(self.updated),
        }


def document_id(api: str, operation: str, watch_id: str, chain: str) -> str:
    return f"{checks.operation_key(api, operation)}-{checks.watch_key(watch_id)}-{chain}"


def to_document(record: Record, *, retention: timedelta) -> dict[str, Any]:
    """The Firestore fields of ``record``; ``expire_at`` is what the TTL policy deletes by.

    A finished watch expires ``retention`` after it finished; a pending one ``retention`` after
    the longest timeout a watch may have, so a chain whose finish was never recorded still goes.
    """
    finished = record.state is State.FINISHED
    longest = timedelta(seconds=MAX_TIMEOUT)
    base = record.finished if finished and record.finished else record.started + longest
    fields: dict[str, Any] = {
        "watch_id": record.watch_id,
        "operation": record.operation,
        "api": record.api,
        "chain": record.chain,
        "operation_key": record.operation_key,
        "state": record.state.value,
        "started": record.started,
        "polls": record.polls,
        "seq": record.seq,
        "labels": dict(record.labels),
        "results_topic": record.results_topic,
        "next_look": record.next_look,
        "updated": record.updated,
        "expire_at": base + retention,
    }
    if finished:
        fields |= {
            "outcome": record.outcome,
            "finished": record.finished,
            "message_id": record.message_id,
        }
    return fields


def from_document(fields: Mapping[str, Any]) -> Record:
    """A record from a document :func:`to_document` wrote (timestamps as datetimes).

    Raises:
        ValueError: the document is not one opwatch wrote.
    """
    try:
        return Record(
            watch_id=str(fields["watch_id"]),
            operation=str(fields["operation"]),
            api=str(fields["api"]),
            chain=str(fields["chain"]),
            started=_moment(fields["started"]),
            polls=int(fields["polls"]),
            seq=int(fields["seq"]),
            updated=_moment(fields["updated"]),
            labels={str(k): str(v) for k, v in (fields.get("labels") or {}).items()},
            results_topic=str(fields.get("results_topic") or ""),
            next_look=_optional_moment(fields.get("next_look")),
            outcome=fields.get("outcome"),
            finished=_optional_moment(fields.get("finished")),
            message_id=fields.get("message_id"),
        )
    except (KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"not a ledger document opwatch wrote: {error!r}") from None


def _moment(value: Any) -> datetime:
    found = _optional_moment(value)
    if found is None:
        raise TypeError(f"not a timestamp: {value!r}")
    return found


def _optional_moment(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    return parse_rfc3339(value)


def due(recorded: int, seq: int) -> bool:
    """Whether the look creating step ``seq`` records it, the ledger holding step ``recorded``
    (0: none, e.g. its start was not recorded, or the body is older than the ledger)."""
    return recorded == 0 or seq - recorded >= RECORD_EVERY


def probe_names(record: Record) -> list[TaskName]:
    """The names the chain's furthest step may have, furthest first.

    Steps after the recorded one were created by looks that did not record (at most
    ``RECORD_EVERY - 1`` of them), then the step that holds the chain's next (a claim, a
    cancel, a look brought forward, or the look that is about to record).
    """
    base = TaskName.parse(f"{record.doc_id}-{max(record.seq, 1)}")
    assert base is not None  # doc_id is a task name's prefix
    return [replace(base, seq=base.seq + n) for n in range(RECORD_EVERY, -1, -1)]


class Ledger(Protocol):
    """The ledger's storage; every call raises :class:`opwatch.errors.LedgerUnavailable` when
    Firestore does not answer in time."""

    def put(self, record: Record) -> None:
        """Write ``record`` over its chain's document (merged: a finish is never undone)."""
        ...

    def pending_of_operation(self, operation_key: str) -> list[Record]:
        """The pending chains of one operation, whoever watches it (one query)."""
        ...

    def of_watch(self, watch_id: str) -> list[Record]:
        """Every chain of one watch id, pending or finished (one query)."""
        ...

    def learn(self, sample: Sample) -> None:
        """Add a finished operation to its kind's summary (:mod:`opwatch.learned`)."""
        ...

    def summary(self, kind: str) -> Summary:
        """A kind's summary, its shards added up."""
        ...

    def page(
        self, state: State | None, since: datetime | None, limit: int, after: str | None
    ) -> tuple[list[Record], str | None]:
        """Records newest started first, of ``state`` (None: any) started at ``since`` or
        later; ``after`` is the cursor the previous page returned (None: the first page)."""
        ...
