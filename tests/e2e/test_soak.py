"""The fault soak at CI size: every watch ends once, with the outcome the simulator was told.

The scenario is :mod:`opwatch_local.soak` (``python -m bench.soak`` runs it at full size): about
100 watches of mixed outcomes and durations, ~10 % of GETs faulted across every fault kind, the
check function killed and restarted once, the ledger's Firestore down for a few seconds (killed,
its data kept, restarted), and Pub/Sub away (its emulator stopped and restarted) while
operations finish; then every watch's ledger document must say it finished, with the outcome its
subscriber received. The soak starts its own stack on free ports, since it kills processes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opwatch_local.inbox import Arrival
from opwatch_local.pubsub import PulledMessage
from opwatch_local.soak import (
    FAULT_KINDS,
    SoakConfig,
    SoakReport,
    WatchPlan,
    plan_watches,
    run_soak,
)
from opwatch_local.soak.run import handled_watches, log_counters

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> SoakReport:
    run_dir: Path = tmp_path_factory.mktemp("soak")
    config = SoakConfig(watches=100, seed=6, deadline=150.0, firestore_outage_seconds=5.0)
    return run_soak(config, run_dir=run_dir)


def test_every_watch_ends_once_with_the_outcome_it_was_given(report: SoakReport) -> None:
    assert report.problems() == []
    figures = report.figures()
    assert figures["lost"] == 0
    assert figures["received_distinct"] == figures["expected"]
    assert set(figures["expected"]) == {"SUCCEEDED", "FAILED", "NOT_FOUND", "TIMED_OUT"}


def test_every_fault_kind_was_injected_at_about_ten_percent(report: SoakReport) -> None:
    figures = report.figures()
    assert set(figures["faults"]) == set(FAULT_KINDS)
    assert 0.05 <= figures["faulted_share"] <= 0.2


def test_the_crash_and_the_outage_really_happened(report: SoakReport) -> None:
    figures = report.figures()
    assert report.timings["check_down"] > 0
    assert report.timings["outage"] >= report.config.outage_seconds
    # Checks that could not publish answered 500 (event delivery.failed) and Cloud Tasks
    # delivered them again.
    assert figures["delivery_failures_logged"] >= 1
    assert figures["task_dispatch_failures"] >= 1
    assert figures["ended_in_outage_then_arrived"] >= 1


def test_the_ledger_says_every_watch_finished_with_the_outcome_received(
    report: SoakReport,
) -> None:
    figures = report.figures()
    assert report.timings["firestore_outage"] >= report.config.firestore_outage_seconds
    # The outage was felt: writes Firestore did not take, the watches going on meanwhile.
    assert figures["ledger_writes_failed"] + figures["ledger_finishes_to_record_tasks"] >= 1
    assert report.ledger_problems() == []
    assert figures["ledger_watches_finished_as_received"] == figures["watches"]


def test_the_soak_reads_the_functions_logs_by_event_only(tmp_path: Path) -> None:
    lines = [
        {"event": "check.pending", "watch_id": "a", "message": "reworded: still running"},
        {"event": "watch.finished", "watch_id": "b", "message": "anything"},
        {"event": "watch.started", "watch_id": "c", "message": "not done yet; watch finished"},
        {"event": "delivery.failed", "watch_id": "b", "message": "could not schedule"},
        {"event": "ledger.write_failed", "watch_id": "a", "message": "anything"},
        {"event": "ledger.behind", "watch_id": "b", "record_task": True},
        {"event": "ledger.behind", "watch_id": "c", "message": "the queue gave up"},
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\nnot json: watch finished\n"
    (tmp_path / "watch.log").write_text(text)
    (tmp_path / "tasks.log").write_text("Error submitting task x\nok\n")
    assert handled_watches(tmp_path / "watch.log") == {"a", "b"}
    assert log_counters(tmp_path) == {
        "delivery_failures_logged": 1,
        "task_dispatch_failures": 1,
        "ledger_writes_failed": 1,
        "ledger_finishes_to_record_tasks": 1,
        "ledger_finishes_only_logged": 1,
    }


def test_the_ledger_check_names_every_watch_it_does_not_show_finished_as_received() -> None:
    config = SoakConfig(watches=4, seed=6)
    plans = plan_watches(config)
    sent = datetime(2026, 12, 1, tzinfo=UTC)

    def arrival(plan: WatchPlan) -> Arrival:
        data = {"watch_id": plan.watch_id, "outcome": plan.expected}
        message = PulledMessage("1", json.dumps(data).encode(), {"outcome": plan.expected}, sent)
        return Arrival(message, data, 0.0, 0.0)

    a, b, c, d = plans
    received = [arrival(a), arrival(b), arrival(c)]  # d was lost: a problem of its own
    ledger = {
        a.watch_id: [("FINISHED", a.expected)],
        b.watch_id: [("PENDING", "")],
        c.watch_id: [("FINISHED", "CANCELLED")],
    }
    report = SoakReport(config, plans, received, {}, {}, [], {}, {}, ledger)
    assert report.ledger_problems() == [
        f"ledger: {b.watch_id} is PENDING (received {b.expected})",
        f"ledger: {c.watch_id} says CANCELLED, received {c.expected}",
    ]
    del ledger[a.watch_id]
    assert f"ledger: no document for {a.watch_id} (received {a.expected})" in report.problems()
    assert f"lost: {d.watch_id} (expected {d.expected})" in report.problems()
    assert report.figures()["ledger_watches_finished_as_received"] == 0
