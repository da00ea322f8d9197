"""The simulator's audit entries: real field names, both name placements, seeded delivery."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest

from opwatch.audit import AuditEntry, parse_entry
from opwatch_local.audit_log import AuditOptions, AuditWriter, audit_entry, delivery_plan
from opwatch_local.simulator import Simulator, SimulatorError

NAME = "projects/opwatch-local/locations/us-central1/operations/op-1"


@pytest.mark.parametrize(
    ("name_in", "source"),
    [("operation", "operation.id"), ("response", "protoPayload.response.name")],
)
def test_entries_parse_with_the_name_where_asked(name_in: Any, source: str) -> None:
    options = AuditOptions(name_in=name_in)
    for kind in ("first", "last"):
        entry = audit_entry(
            name=NAME, kind=kind, options=options, at=0.0, target="t", insert_id="i"
        )
        assert entry["protoPayload"]["@type"] == "type.googleapis.com/google.cloud.audit.AuditLog"
        assert entry["operation"][kind] is True
        parsed = parse_entry(json.dumps(entry).encode())
        assert isinstance(parsed, AuditEntry)
        assert (parsed.operation, parsed.name_source) == (NAME, source)
        assert (parsed.first, parsed.last) == (kind == "first", kind == "last")
    if name_in == "response":
        assert entry["operation"]["id"] == "op-1"


def test_a_failed_operation_ends_with_its_status() -> None:
    error = {"code": 9, "message": "index build failed"}
    entry = audit_entry(
        name=NAME, kind="last", options=AuditOptions(), at=0, target="t", error=error, insert_id="i"
    )
    assert entry["protoPayload"]["status"] == error
    assert entry["severity"] == "ERROR"


def test_the_delivery_plan_is_seeded_and_follows_the_probabilities() -> None:
    assert delivery_plan(AuditOptions(loss=1.0), random.Random(1)) == ()
    assert delivery_plan(AuditOptions(latency=2, duplicates=1.0), random.Random(1)) == (2, 2.2)
    assert delivery_plan(AuditOptions(latency=2), random.Random(1)) == (2,)
    plans = [delivery_plan(AuditOptions(loss=0.3), random.Random(seed)) for seed in range(1000)]
    assert 200 < plans.count(()) < 400


@pytest.mark.parametrize(
    "raw", [{"loss": 2}, {"latency": -1}, {"name_in": "elsewhere"}, {"colour": "red"}]
)
def test_bad_options_are_refused(raw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        AuditOptions.from_json(raw)


class Later:
    def __init__(self) -> None:
        self.pending: list[tuple[float, Callable[[], None]]] = []

    def __call__(self, delay: float, action: Callable[[], None]) -> None:
        self.pending.append((delay, action))

    def run(self) -> None:
        for _ in range(1000):  # bounded: an action that schedules another for ever fails
            if not self.pending:
                return
            self.pending.sort(key=lambda p: p[0])
            _, action = self.pending.pop(0)
            action()
        pytest.fail("Later.run: still actions pending after 1000")


def test_the_simulator_writes_first_now_and_last_at_the_end() -> None:
    published: list[dict[str, Any]] = []
    later = Later()
    writer = AuditWriter(
        publish=lambda d: published.append(json.loads(d)), clock=lambda: 100.0, later=later
    )
    sim = Simulator(clock=lambda: 100.0, audit=writer)
    sim.create_operation(NAME, duration=5, audit={"latency": 1, "duplicates": 1.0})
    assert sorted(d for d, _ in later.pending) == [1.0, 1.2, 5]  # two copies; then the end
    assert [(d.kind, d.delays) for d in writer.deliveries] == [("first", (1.0, 1.2))]
    later.run()
    assert [next(k for k in ("first", "last") if k in e["operation"]) for e in published] == [
        "first",
        "first",
        "last",
        "last",
    ]
    assert published[0]["insertId"] == published[1]["insertId"]  # a duplicate, not a new entry


def test_a_failed_publish_is_a_lost_entry() -> None:
    def fail(data: bytes) -> None:
        raise RuntimeError("emulator down")

    later = Later()
    writer = AuditWriter(publish=fail, clock=lambda: 0.0, later=later)
    writer.operation_started(NAME, AuditOptions(), duration=1, target="t")
    later.run()
    assert len(writer.failures) == 2 and "emulator down" in writer.failures[0]


def test_audit_options_need_a_writer_and_valid_values() -> None:
    with pytest.raises(SimulatorError, match="no audit topic"):
        Simulator().create_operation(NAME, audit={})
    sim = Simulator(audit=AuditWriter(publish=lambda d: None, clock=lambda: 0.0, later=Later()))
    with pytest.raises(SimulatorError, match="invalid audit options"):
        sim.create_operation(NAME, audit={"loss": 5})
