"""Discovery on the local stack: the simulator writes audit entries as a Logging sink would.

Pub/Sub emulator (audit topic) -> on_audit_entry (functions-framework process) -> operations
simulator -> Cloud Tasks emulator -> on_check -> results topic. No watch request is published.
"""

from __future__ import annotations

import json
import time

import pytest

from opwatch.audit import discovered_watch_id
from opwatch.sweep import Parent
from opwatch.wire import parse_rfc3339
from opwatch_local.audit_log import DEFAULT_API, DEFAULT_METHOD, AuditOptions
from opwatch_local.inbox import Inbox
from opwatch_local.stack import LocalStack

pytestmark = pytest.mark.e2e


def audit_log_lines(stack: LocalStack, event: str) -> list[dict[str, object]]:
    """The audit function's JSON log lines with ``event``."""
    lines = []
    for raw in stack.process("audit").log_path.read_text(errors="replace").splitlines():
        if raw.startswith("{"):
            line = json.loads(raw)
            if line.get("event") == event:
                lines.append(line)
    return lines


@pytest.mark.parametrize("name_in", ["operation", "response"])
def test_an_operation_nobody_watched_is_discovered_and_notified_once(
    local_stack: LocalStack, inbox: Inbox, name_in: str
) -> None:
    sim = local_stack.client.simulator()
    name = sim.create_operation(
        duration=2,
        response={"@type": "type.googleapis.com/x.Index"},
        audit=AuditOptions(name_in=name_in),  # type: ignore[arg-type]
    )
    watch_id = discovered_watch_id(DEFAULT_API, name)
    [arrival] = inbox.wait(watch_id, timeout=60)
    data = arrival.data
    assert (data["outcome"], data["watch_id"]) == ("SUCCEEDED", watch_id)
    assert data["labels"] == {
        "service": DEFAULT_API,
        "method": DEFAULT_METHOD,
        "resource": name.rsplit("/operations/", 1)[0],
    }
    assert arrival.attributes["label_service"] == DEFAULT_API
    assert inbox.settle(watch_id, 2.0) == [arrival]


def test_a_duplicated_first_entry_is_still_one_watch(local_stack: LocalStack, inbox: Inbox) -> None:
    sim = local_stack.client.simulator()
    name = sim.create_operation(duration=3, audit=AuditOptions(duplicates=1.0, latency=0.2))
    watch_id = discovered_watch_id(DEFAULT_API, name)
    inbox.wait(watch_id, timeout=60)
    assert len(inbox.settle(watch_id, 3.0)) == 1
    delivered = [d for d in sim.audit_deliveries() if d["operation"] == name]
    assert [len(d["delays"]) for d in delivered if d["kind"] == "first"] == [2]


def test_a_malformed_entry_is_acknowledged_without_a_notification(
    local_stack: LocalStack, inbox: Inbox
) -> None:
    message_id = local_stack.client.publish_audit_entry(b"{this is not a log entry")
    deadline = time.monotonic() + 20
    while not any(
        line.get("message_id") == message_id
        for line in audit_log_lines(local_stack, "audit.ignored")
    ):
        assert time.monotonic() < deadline, "the audit function never saw the entry"
        time.sleep(0.2)
    # A non-2xx answer would be redelivered about every second: it was answered once.
    assert inbox.settle(message_id, 3.0) == []
    seen = [
        line
        for line in audit_log_lines(local_stack, "audit.ignored")
        if line.get("message_id") == message_id
    ]
    assert len(seen) == 1
    assert local_stack.process("audit").alive()


def test_the_end_entry_brings_every_pending_look_of_the_operation_forward(
    local_stack: LocalStack, inbox: Inbox
) -> None:
    """A requested watch that would not look again for 10 minutes, and the watch discovered
    for the same operation, both end within about a second of the end entry: the fast path brought
    each one's pending look forward (no RunTask); each publishes once, on its own chain."""
    sim = local_stack.client.simulator()
    name = sim.create_operation(duration=6, audit=AuditOptions(latency=0.3, duplicates=1.0))
    request = {
        "operation": name,
        "watch_id": "e2e-fast-requested",
        "polling": {"initial_delay": "600s", "max_delay": "600s"},
    }
    local_stack.client.publish_watch_request(request)
    discovered = discovered_watch_id(DEFAULT_API, name)
    [requested] = inbox.wait("e2e-fast-requested", timeout=60)
    [found] = inbox.wait(discovered, timeout=60)
    for arrival in (requested, found):
        assert arrival.outcome == "SUCCEEDED"
        ended = parse_rfc3339(arrival.data["operation"]["metadata"]["endTime"])
        seen = parse_rfc3339(arrival.data["observed_done"])
        assert ended is not None and seen is not None
        lag = (seen - ended).total_seconds()
        assert lag <= 3.0, f"{arrival.watch_id} saw the end {lag:.1f}s late"
    assert requested.data["polls"] == 2, "its first look, then the look the end entry ran"
    assert len(inbox.settle("e2e-fast-requested", 2.0)) == 1
    assert len(inbox.settle(discovered, 0.1)) == 1


def test_end_entries_delivered_twice_back_to_back_give_one_notification_per_watch(
    local_stack: LocalStack, inbox: Inbox
) -> None:
    """Sinks deliver at least once (https://cloud.google.com/logging/docs/export/pubsub): every
    entry here arrives twice with no gap, so two fast paths of one operation run at once, each
    scanning the same pending looks. Each watch, requested or discovered, ends in exactly one
    notification: the look is brought forward once, and a finishing look that meets a twin's
    claim publishes nothing."""
    sim = local_stack.client.simulator()
    twice = AuditOptions(latency=0.3, duplicates=1.0, duplicate_gap=0.0)
    watch_ids = []
    for i in range(8):
        name = sim.create_operation(duration=3 + i % 3, audit=twice)
        requested = f"e2e-twice-{i}"
        local_stack.client.publish_watch_request(
            {"operation": name, "watch_id": requested, "polling": {"initial_delay": "600s"}}
        )
        watch_ids += [requested, discovered_watch_id(DEFAULT_API, name)]
    assert inbox.wait_all(watch_ids, timeout=90) == set()
    inbox.settle(watch_ids[-1], 3.0)  # bounded: any second copy would have come by now
    counts = {w: len(inbox.of(w)) for w in watch_ids}
    assert counts == dict.fromkeys(watch_ids, 1)
    assert all(inbox.of(w)[0].outcome == "SUCCEEDED" for w in watch_ids)


def test_opwatch_sweep_watches_what_no_audit_entry_announced(
    local_stack: LocalStack, inbox: Inbox, capsys: pytest.CaptureFixture[str]
) -> None:
    """Operations that wrote no audit entry (lost, a method the audit-logging page does not
    list, or started before discovery): `opwatch sweep` lists the parent's operations on the
    simulator (ListOperations, done=false, every page), starts one discovered watch per pending
    one, and a second sweep starts none. Each ends in one notification; the done one gets
    none."""
    from opwatch_local.cli import main

    sim = local_stack.client.simulator()
    parent = "projects/opwatch-sweep/locations/us-central1"
    names = [sim.create_operation(f"{parent}/operations/sweep-{i}", duration=4) for i in range(3)]
    sim.create_operation(f"{parent}/operations/sweep-done", duration=0)
    env = local_stack.env()
    argv = ["sweep", "--parent", parent, "--json"]

    assert main(argv, env) == 0
    [first] = json.loads(capsys.readouterr().out)
    assert (first["listed"], first["pending"], first["started"]) == (3, 3, 3)
    assert main(argv, env) == 0
    [again] = json.loads(capsys.readouterr().out)
    assert (again["already_watched"], again["started"]) == (3, 0)

    discovered = [discovered_watch_id(DEFAULT_API, name) for name in names]
    assert inbox.wait_all(discovered, timeout=60) == set()
    assert [len(inbox.settle(w, 0.5)) for w in discovered] == [1, 1, 1]
    assert all(inbox.of(w)[0].outcome == "SUCCEEDED" for w in discovered)
    assert inbox.of(discovered_watch_id(DEFAULT_API, f"{parent}/operations/sweep-done")) == []


def test_local_up_sweeps_periodically_and_records_what_it_starts(
    local_stack: LocalStack, inbox: Inbox, capsys: pytest.CaptureFixture[str]
) -> None:
    """`opwatch local up --sweep PARENT --sweep-every D` runs the same sweep at once and then
    every D, as the Cloud Scheduler job does in production; the watches it starts are in the
    ledger like the functions' own. (The loop is driven here over the session's stack, with a
    short tick, until the stack has been swept twice.)"""
    from opwatch_local import watches
    from opwatch_local.cli import local

    sim = local_stack.client.simulator()
    parent = "projects/opwatch-periodic/locations/us-central1"
    name = sim.create_operation(f"{parent}/operations/periodic-0", duration=3)
    sweep = local.periodic_sweep(local_stack, {}, [Parent.parse(parent, DEFAULT_API)])
    swept: list[None] = []

    class Process:  # exits after the second sweep
        name, log_path, popen = "fake", "-", type("Popen", (), {"poll": lambda self: 0})()

        def alive(self) -> bool:
            return len(swept) < 2

        def log_tail(self, lines: int) -> str:
            return ""

    class Stack:
        def __init__(self) -> None:
            self.processes = [Process()]

    def counted() -> None:
        sweep()
        swept.append(None)

    stack: LocalStack = Stack()  # type: ignore[assignment]
    assert local.stay_up(stack, sweep=counted, every=0.05, tick_seconds=0.01) == 1
    out = capsys.readouterr().out
    assert out.count(f"# sweep {parent} on {DEFAULT_API}:") == 2
    assert "1 pending, 1 watches started" in out and "1 pending, 0 watches started" in out
    watch_id = discovered_watch_id(DEFAULT_API, name)
    [note] = inbox.wait(watch_id, timeout=60)
    assert note.outcome == "SUCCEEDED"
    ledger = watches.operator_ledger(local_stack.firestore.database, local_stack.env())
    assert [r.chain for r in ledger.of_watch(watch_id)] == ["discovered"]
