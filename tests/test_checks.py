"""Check task bodies: what opwatch writes it reads back; anything else is refused."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from opwatch import checks
from opwatch.contracts import WatchRequest
from opwatch.core import Progress
from opwatch.errors import InvalidCheckBody

from .conftest import OPERATION, T0

REQUEST = WatchRequest(operation=OPERATION, watch_id="w-1")
PROGRESS = Progress(started=T0, polls=3, transient_errors=1, seen=True)


def body(**changes: Any) -> bytes:
    data = json.loads(checks.encode(REQUEST, PROGRESS, T0).body)
    for path, value in changes.items():
        target = data
        *parents, leaf = path.split("__")
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return json.dumps(data).encode()


def test_round_trip() -> None:
    task = checks.encode(REQUEST, PROGRESS, T0 + timedelta(seconds=30))
    state = checks.decode(task.body)
    assert state.progress == PROGRESS
    assert state.request == REQUEST.to_json()
    assert task.when == T0 + timedelta(seconds=30)


def test_task_ids_are_valid_deterministic_and_distinct_per_step() -> None:
    first, again, later = (
        checks.task_id("w/1 ?", 1),
        checks.task_id("w/1 ?", 1),
        checks.task_id("w/1 ?", 2),
    )
    assert first == again != later
    assert all(c.isalnum() or c in "-_" for c in first)
    assert checks.task_id("other", 1) != first


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff",
        b"not json",
        b"[]",
        b"{}",
        json.dumps({"opwatch_check": 2}).encode(),
        b"x" * (checks.MAX_BODY_BYTES + 1),
        body(request="x"),
        body(request={"operation": OPERATION}),
        body(progress=[]),
        body(progress__started="yesterday"),
        body(progress__started="2026-11-27T12:00:00"),
        body(progress__polls=0),
        body(progress__polls=True),
        body(progress__transient_errors=-1),
        body(progress__seen="yes"),
        body(opwatch_check=True),
        body(opwatch_check=1.0),
        body(endpoint="https://evil.example"),
        body(progress__deadline="later"),
        body(request__labels={"a": "\ud800"}),
    ],
)
def test_foreign_or_tampered_bodies_are_refused(raw: bytes) -> None:
    with pytest.raises(InvalidCheckBody):
        checks.decode(raw)
