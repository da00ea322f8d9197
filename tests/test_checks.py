"""Check task bodies: what opwatch writes it reads back; anything else is refused."""

from __future__ import annotations

import json
from dataclasses import replace
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
CHAIN = checks.chain_for_message("m-1")


def body(**changes: Any) -> bytes:
    data = json.loads(checks.encode(REQUEST, PROGRESS, T0, CHAIN).body)
    for path, value in changes.items():
        target = data
        *parents, leaf = path.split("__")
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return json.dumps(data).encode()


def test_round_trip() -> None:
    task = checks.encode(REQUEST, PROGRESS, T0 + timedelta(seconds=30), CHAIN)
    state = checks.decode(task.body)
    assert state.progress == PROGRESS
    assert state.request == REQUEST.to_json()
    assert state.chain == CHAIN
    assert task.when == T0 + timedelta(seconds=30)


def task_id(request: WatchRequest = REQUEST, chain: str = CHAIN, **progress: Any) -> str:
    return checks.encode(request, replace(PROGRESS, **progress), T0, chain).task_id


def test_task_ids_are_valid_deterministic_and_distinct_per_step() -> None:
    first, again, later, parked = task_id(), task_id(), task_id(polls=4), task_id(parks=1)
    assert first == again
    assert len({first, later, parked}) == 3
    # Cloud Tasks: "[A-Za-z0-9_-]", at most 500 characters.
    assert all(c.isalnum() or c in "-_" for c in first) and len(first) <= 500


def test_a_task_id_finds_its_operation_and_watch() -> None:
    name = checks.TaskName.parse(f"projects/p/locations/l/queues/q/tasks/{task_id(parks=2)}")
    assert name == checks.TaskName(
        checks.operation_key(REQUEST.api, OPERATION), checks.watch_key("w-1"), CHAIN, 3, 2
    )
    assert checks.TaskName.parse(str(name)) == name
    for foreign in ("w0123-1", "", f"{task_id()}x", task_id().replace("-3", "-0")):
        assert checks.TaskName.parse(foreign) is None


def test_reusing_a_watch_id_never_meets_an_earlier_watchs_names() -> None:
    """Cloud Tasks keeps a task's name taken for about 1 hour after it ran
    (https://cloud.google.com/tasks/docs/quotas) and up to 4 hours after it was deleted
    (https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues.tasks/create):
    a later watch with the same watch_id must not be refused as a duplicate of the earlier one."""
    other_operation = WatchRequest(operation=OPERATION + "0", watch_id="w-1")
    later_message = checks.chain_for_message("m-2")
    names = {task_id(), task_id(other_operation), task_id(chain=later_message)}
    assert len(names) == 3
    # Same operation, other watch: found by the operation key, told apart by the watch key.
    other_watch = checks.TaskName.parse(task_id(WatchRequest(operation=OPERATION, watch_id="w-2")))
    first = checks.TaskName.parse(task_id())
    assert first is not None and other_watch is not None
    assert first.operation_key == other_watch.operation_key
    assert first.watch_key != other_watch.watch_key


def test_the_last_error_travels_only_while_there_is_one() -> None:
    """A watch meeting errors carries the last one to its next check (``opwatch status`` shows
    it); every other body is byte for byte what earlier releases wrote and read."""
    failing = replace(PROGRESS, last_error="HTTP 409: Unable to queue the operation")
    state = checks.decode(checks.encode(REQUEST, failing, T0, CHAIN).body)
    assert state.progress == failing
    assert "last_error" not in json.loads(body())["progress"]


def test_version_1_bodies_left_in_a_queue_go_on_after_an_upgrade() -> None:
    legacy = json.loads(body())
    del legacy["chain"], legacy["seq"], legacy["progress"]["parks"]
    legacy["opwatch_check"] = 1
    state = checks.decode(json.dumps(legacy).encode())
    assert state.chain == checks.LEGACY_CHAIN
    assert state.progress == PROGRESS


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff",
        b"not json",
        b"[]",
        b"{}",
        json.dumps({"opwatch_check": 3}).encode(),
        body(chain="UPPER"),
        body(chain=""),
        body(progress__parks=-1),
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
        body(progress__last_error=409),
        body(progress__last_error="x" * 301),
        body(request__labels={"a": "\ud800"}),
    ],
)
def test_foreign_or_tampered_bodies_are_refused(raw: bytes) -> None:
    with pytest.raises(InvalidCheckBody):
        checks.decode(raw)


def test_version_2_bodies_left_in_a_queue_go_on_after_an_upgrade() -> None:
    """Version 2 named a step by its polls (no seq), and its cancels counted the look they
    prevented among the polls: read as what they meant."""
    look = json.loads(body())
    del look["seq"]
    look["opwatch_check"] = 2
    state = checks.decode(json.dumps(look).encode())
    assert (state.seq, state.progress) == (PROGRESS.polls, PROGRESS)
    cancel = {**look, "step": {"kind": "cancel", "reason": "by hand"}}
    state = checks.decode(json.dumps(cancel).encode())
    assert (state.step, state.seq, state.progress.polls) == (checks.Step.CANCEL, 3, 2)


def test_a_step_taken_without_a_look_runs_ahead_of_the_polls() -> None:
    """The fast path takes a chain's next step without looking: the step's place (which names
    the task) grows, the polls a subscriber is told of do not."""
    state = checks.decode(body())
    brought = checks.successor(state, T0, checks.Step.LOOK)
    again = checks.decode(brought.body)
    assert (again.seq, again.progress.polls) == (state.seq + 1, state.progress.polls)
    assert checks.TaskName.parse(brought.task_id).seq == state.seq + 1  # type: ignore[union-attr]
    with pytest.raises(InvalidCheckBody, match="seq"):
        checks.decode(body(seq=PROGRESS.polls - 1))


def test_a_claim_says_which_dispatch_made_it() -> None:
    claim = checks.successor(checks.decode(body()), T0, checks.Step.FINISHED, attempt=(1, 4))
    assert checks.decode(claim.body).attempt == (1, 4)
    for bad in ([1], [1, -1], "1,4", [True, 2]):
        tampered = json.loads(claim.body)
        tampered["step"]["attempt"] = bad
        with pytest.raises(InvalidCheckBody, match="step"):
            checks.decode(json.dumps(tampered).encode())
    look = json.loads(body())
    look["step"] = {"kind": "look", "reason": "", "attempt": [0, 0]}
    with pytest.raises(InvalidCheckBody, match="step"):
        checks.decode(json.dumps(look).encode())
