"""The Firestore ledger adapter against the local stack's Firestore emulator.

Each test writes to a database of its own (the emulator keeps named databases apart), so what
other end-to-end tests record does not show in its queries. What the emulator does not do
(enforce composite indexes, apply TTL) is held against Google's documentation elsewhere
(tests/infra/test_ledger_infra.py, README "Local stack and CLI").
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from opwatch import ledger
from opwatch.adapters import FirestoreLedger
from opwatch.errors import LedgerUnavailable
from opwatch.ledger import Record, State
from opwatch_local.procs import free_port
from opwatch_local.stack import LocalStack

pytestmark = pytest.mark.e2e

OPERATION = "projects/p/locations/us-central1/operations/op-ledger"
API = "cloudaicompanion.googleapis.com"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def name() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(local_stack: LocalStack, name: str) -> Iterator[FirestoreLedger]:
    database = f"projects/{local_stack.config.project}/databases/{name}"
    yield FirestoreLedger(database, 30, lambda: local_stack.firestore.client(name))


def record(watch_id: str, minutes: int = 0, operation: str = OPERATION, **extra: object) -> Record:
    started = T0 + timedelta(minutes=minutes)
    return Record(watch_id, operation, API, "c1", started, 1, 1, started, **extra)  # type: ignore[arg-type]


def test_a_record_reads_back_as_written(store: FirestoreLedger) -> None:
    pending = record("w-1", labels={"team": "search"}, next_look=T0 + timedelta(seconds=5))
    store.put(pending)
    assert store.of_watch("w-1") == [pending]
    assert store.pending_of_operation(pending.operation_key) == [pending]

    done = pending.finish("SUCCEEDED", T0 + timedelta(minutes=3), 7, "4711")
    store.put(done)
    assert store.of_watch("w-1") == [done]
    assert store.pending_of_operation(pending.operation_key) == []


def test_a_late_pending_write_leaves_the_finish(store: FirestoreLedger) -> None:
    pending = record("w-2")
    store.put(pending.finish("FAILED", T0 + timedelta(minutes=1), 3, "1"))
    store.put(pending)  # merged: it sets state PENDING again, but never clears the outcome

    [found] = store.of_watch("w-2")
    assert found.state is State.FINISHED and found.outcome == "FAILED"
    assert store.pending_of_operation(pending.operation_key) == []
    assert store.page(State.PENDING, None, 10, None) == ([], None)


def test_pages_go_newest_first_by_state_and_since(store: FirestoreLedger) -> None:
    for n in range(5):
        store.put(record(f"p-{n}", minutes=n))
    store.put(record("f-0", minutes=10).finish("SUCCEEDED", T0 + timedelta(minutes=11), 2, "9"))

    first, token = store.page(State.PENDING, None, 3, None)
    rest, end = store.page(State.PENDING, None, 3, token)
    assert [r.watch_id for r in first + rest] == ["p-4", "p-3", "p-2", "p-1", "p-0"]
    assert token is not None and end is None
    everything, _ = store.page(None, None, 10, None)
    assert [r.watch_id for r in everything][:2] == ["f-0", "p-4"]
    recent, _ = store.page(None, T0 + timedelta(minutes=3), 10, None)
    assert {r.watch_id for r in recent} == {"f-0", "p-4", "p-3"}
    finished, _ = store.page(State.FINISHED, None, 10, None)
    assert [r.watch_id for r in finished] == ["f-0"]
    # A cursor whose document is gone (expired) starts again from the newest.
    again, _ = store.page(State.PENDING, None, 2, "no-such-document")
    assert [r.watch_id for r in again] == ["p-4", "p-3"]


def test_a_document_opwatch_did_not_write_is_skipped(
    store: FirestoreLedger, local_stack: LocalStack, name: str
) -> None:
    client = local_stack.firestore.client(name)
    client.collection(ledger.COLLECTION).document("stray").set({"watch_id": "stray"})
    store.put(record("w-3"))
    assert [r.watch_id for r in store.page(None, None, 10, None)[0]] == ["w-3"]
    assert store.of_watch("stray") == []


def test_a_ledger_that_does_not_answer_fails_fast_and_named() -> None:
    """Nothing listens on the port: every call raises LedgerUnavailable within the deadline."""
    port = free_port()
    database = "projects/p/databases/nobody"

    def client() -> object:
        from google.cloud import firestore

        with pytest.MonkeyPatch.context() as env:
            env.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{port}")
            return firestore.Client(project="p", database="nobody")

    store = FirestoreLedger(database, 30, client)
    began = time.monotonic()
    with pytest.raises(LedgerUnavailable, match="Firestore Commit"):
        store.put(record("w-4"))
    with pytest.raises(LedgerUnavailable, match="Firestore RunQuery"):
        store.of_watch("w-4")
    with pytest.raises(LedgerUnavailable, match="Firestore RunQuery"):
        store.page(None, None, 10, "after-this")
    assert time.monotonic() - began < 3 * 5 + 5  # three calls, each within its deadline
