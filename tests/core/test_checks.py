"""Check task bodies: what opwatch writes it reads back; anything else is refused."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from opwatch import checks
from opwatch.contracts import WatchRequest
from opwatch.core import Progress
from opwatch.errors import InvalidCheckBody
from opwatch.learned import Expectation
from tests.fakes import OPERATION, T0

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


# What a refused body is told: the field and the rule it broke (the check function's answer and
# its log line), one violation per refusal.
def _refusal(raw: bytes) -> tuple[str, str]:
    with pytest.raises(InvalidCheckBody) as refused:
        checks.decode(raw)
    (violation,) = refused.value.violations
    return violation.field, violation.description


_FIELDS_V3 = "chain, opwatch_check, progress, request, seq"
_PROGRESS_V3 = "parks, polls, seen, started, transient_errors"
_STEP_RULE = (
    "must be {kind: look, finished, cancel, record; reason: a string; attempt: [parks, retries]}"
)


@pytest.mark.parametrize(
    ("raw", "field", "description"),
    [
        (
            b"x" * (checks.MAX_BODY_BYTES + 1),
            "",
            "the body is 102401 bytes; opwatch writes at most 102400",
        ),
        (b"not json", "", "the body is not JSON; only opwatch's own tasks may call this function"),
        (b"[]", "opwatch_check", "not an opwatch check body of version 3"),
        (body(opwatch_check=7), "opwatch_check", "not an opwatch check body of version 3"),
        (body(opwatch_check=True), "opwatch_check", "not an opwatch check body of version 3"),
        (body(endpoint="x"), "", f"an opwatch check body has exactly {_FIELDS_V3}"),
        (body(chain="UPPER"), "chain", "must be 1-32 lowercase letters or digits"),
        (body(request="x"), "request", "missing, not an object, or without a watch_id"),
        (
            body(progress=[]),
            "progress",
            f"must be an object with exactly {_PROGRESS_V3} (last_error optional)",
        ),
        (
            body(progress__started=5),
            "progress.started",
            "missing or not an RFC 3339 time with a zone",
        ),
        (body(progress__polls=0), "progress.polls", "must be a positive integer"),
        (
            body(progress__transient_errors=-1),
            "progress.transient_errors",
            "must be a non-negative integer",
        ),
        (body(progress__seen="yes"), "progress.seen", "must be a boolean"),
        (body(progress__parks=-1), "progress.parks", "must be a non-negative integer"),
        (body(seq="9"), "seq", "must be an integer no smaller than progress.polls"),
        (body(seq=True), "seq", "must be an integer no smaller than progress.polls"),
        (
            body(progress__last_error=409),
            "progress.last_error",
            "must be a string of 300 characters at most",
        ),
        (body(recorded=-1), "recorded", "must be an integer no larger than seq"),
        (body(recorded=PROGRESS.polls + 1), "recorded", "must be an integer no larger than seq"),
        (body(warned=False), "warned", "is true when present"),
        (body(warned="yes"), "warned", "is true when present"),
        (
            body(step={"kind": "nap", "reason": ""}),
            "step",
            _STEP_RULE,
        ),
        (
            body(step={"kind": "cancel", "reason": 5}),
            "step",
            _STEP_RULE,
        ),
    ],
)
def test_each_refusal_names_the_field_and_the_rule(
    raw: bytes, field: str, description: str
) -> None:
    assert _refusal(raw) == (field, description)


def test_a_body_at_each_limit_is_read() -> None:
    """Exactly the largest body, reason and last error opwatch writes are read back."""
    padded = body() + b" " * (checks.MAX_BODY_BYTES - len(body()))
    assert len(padded) == checks.MAX_BODY_BYTES
    assert checks.decode(padded).progress == PROGRESS
    longest = "x" * 300  # MAX_LAST_ERROR_CHARS, as documented on Progress.last_error
    assert checks.decode(body(progress__last_error=longest)).progress.last_error == longest
    reason = "r" * 1024  # the contract's cancel-reason limit
    assert checks.decode(body(step={"kind": "cancel", "reason": reason})).reason == reason
    assert checks.decode(body(recorded=PROGRESS.polls)).recorded == PROGRESS.polls


def test_a_plain_look_reads_with_the_defaults() -> None:
    state = checks.decode(body())
    assert (state.step, state.reason, state.attempt) == (checks.Step.LOOK, "", None)
    assert (state.recorded, state.finish, state.learned, state.warned) == (0, None, None, False)
    assert set(json.loads(body())) == {"opwatch_check", "chain", "seq", "request", "progress"}


def test_the_body_is_compact_utf8_json() -> None:
    """UTF-8 rather than escapes, no spaces: the body is counted against the 100 KB task size."""
    task = checks.encode(REQUEST, PROGRESS, T0, CHAIN, step=checks.Step.CANCEL, reason="ok 🚀")
    assert b'"reason":"ok \xf0\x9f\x9a\x80"' in task.body
    assert b", " not in task.body and b'": ' not in task.body


def test_the_steps_carry_what_the_ledger_learned_and_recorded() -> None:
    """The ledger's step, the learned expectation and the overdue mark go from look to look."""
    learned = Expectation("run.jobs", 12, 30.0, 60.0, 120.0)
    task = checks.encode(
        REQUEST, PROGRESS, T0, CHAIN, seq=5, recorded=2, learned=learned, warned=True
    )
    data = json.loads(task.body)
    assert (data["seq"], data["recorded"], data["warned"]) == (5, 2, True)
    assert data["learned"] == {
        "kind": "run.jobs",
        "samples": 12,
        "low": 30.0,
        "median": 60.0,
        "high": 120.0,
    }
    assert checks.TaskName.parse(task.task_id).seq == 5  # type: ignore[union-attr]
    state = checks.decode(task.body)
    assert (state.seq, state.recorded, state.learned, state.warned) == (5, 2, learned, True)
    parked = replace(state, progress=replace(state.progress, parks=2))
    cancel = checks.successor(parked, T0, checks.Step.CANCEL)
    after = checks.decode(cancel.body)
    assert (after.seq, after.recorded, after.learned, after.warned) == (6, 2, learned, True)
    assert (after.step, after.reason, after.progress.parks) == (checks.Step.CANCEL, "", 0)
    assert checks.TaskName.parse(cancel.task_id) == checks.TaskName(  # type: ignore[comparison-overlap]
        checks.operation_key(REQUEST.api, OPERATION), checks.watch_key("w-1"), CHAIN, 6, 0
    )
    cancelled = checks.encode(REQUEST, PROGRESS, T0, CHAIN, step=checks.Step.CANCEL)
    assert json.loads(cancelled.body)["step"] == {"kind": "cancel", "reason": ""}


def test_a_record_step_carries_the_finish_and_only_it_does() -> None:
    finish = checks.Finish("DONE", T0 + timedelta(minutes=5), "m-9")
    task = checks.encode(REQUEST, PROGRESS, T0, CHAIN, step=checks.Step.RECORD, finish=finish)
    data = json.loads(task.body)
    assert data["finish"] == {
        "outcome": "DONE",
        "finished": "2026-11-27T12:05:00.000Z",
        "message_id": "m-9",
    }
    assert checks.decode(task.body).finish == finish
    unsent = replace(finish, message_id=None)
    again = checks.encode(REQUEST, PROGRESS, T0, CHAIN, step=checks.Step.RECORD, finish=unsent)
    assert checks.decode(again.body).finish == unsent
    look = checks.encode(REQUEST, PROGRESS, T0, CHAIN, finish=finish)  # a look carries none
    assert "finish" not in json.loads(look.body)
    rule = "a record step, and only one, carries {outcome, finished: RFC 3339, message_id}"
    record = json.loads(task.body)
    good = record["finish"]
    for bad in (
        None,
        "DONE",
        {**good, "extra": 1},
        {k: v for k, v in good.items() if k != "message_id"},
        {**good, "outcome": ""},
        {**good, "outcome": 5},
        {**good, "finished": "soon"},
        {**good, "message_id": 5},
    ):
        tampered = {**record, "finish": bad}
        if bad is None:
            del tampered["finish"]
        assert _refusal(json.dumps(tampered).encode()) == ("finish", rule), bad
    assert _refusal(body(finish=good)) == ("finish", rule)


def _learned_body(**changes: Any) -> bytes:
    learned = {"kind": "run.jobs", "samples": 12, "low": 30, "median": 60, "high": 120.5}
    return body(learned={**learned, **changes})


def test_what_was_learned_is_read_only_when_it_makes_sense() -> None:
    state = checks.decode(_learned_body())
    assert state.learned == Expectation("run.jobs", 12, 30.0, 60.0, 120.5)
    assert isinstance(state.learned.low, float)  # type: ignore[union-attr]
    assert checks.decode(_learned_body(low=60, high=60)).learned == Expectation(
        "run.jobs", 12, 60.0, 60.0, 60.0
    )
    assert checks.decode(_learned_body(kind="k" * 300, samples=0)).learned is not None
    rule = "must be {kind, samples, low, median, high} with 0 < low <= median <= high"
    for bad in (
        {"kind": 5},
        {"kind": "k" * 301},
        {"samples": -1},
        {"samples": True},
        {"samples": 1.5},
        {"low": "30"},
        {"median": True},
        {"high": None},
        {"low": 0},
        {"low": 61},
        {"high": 59},
        {"extra": 1},
    ):
        assert _refusal(_learned_body(**bad)) == ("learned", rule), bad
    assert _refusal(body(learned=None)) == ("learned", rule)
    assert _refusal(body(learned=[])) == ("learned", rule)


def test_task_names_of_any_watch_id_and_queue_path() -> None:
    """A watch id is any string the contract lets through, a lone surrogate too: its key is
    still made (``surrogatepass``), and a full task name parses by its last segment."""
    key = checks.watch_key("w-\ud800")
    assert len(key) == 16 and key != checks.watch_key("w-")
    assert len(checks.chain_for_message("m-1")) == 12
    name = task_id()
    assert checks.TaskName.parse(f"a/b/{name}") == checks.TaskName.parse(name) is not None


def test_the_start_is_read_in_utc_whatever_the_machine_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        state = checks.decode(body(progress__started="2026-11-27T14:00:00+02:00"))
        assert state.progress.started.utcoffset() == timedelta(0)
        assert (
            json.loads(checks.successor(state, T0, checks.Step.LOOK).body)["progress"]["started"]
            == "2026-11-27T12:00:00.000Z"
        )
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_kind_learned_to_end_within_a_second_is_read() -> None:
    """0 < low is the rule, not 1 <= low: a kind whose operations end in half a second."""
    assert checks.decode(_learned_body(low=0.5, median=0.8, high=1)).learned == Expectation(
        "run.jobs", 12, 0.5, 0.8, 1.0
    )


def test_a_boolean_seq_is_refused_even_where_it_would_compare_as_the_polls() -> None:
    """JSON true equals 1 in Python; a first look (polls 1) with seq true is still not opwatch's."""
    first = body(progress__polls=1, seq=True)
    assert _refusal(first) == ("seq", "must be an integer no smaller than progress.polls")
    assert checks.decode(body(progress__polls=1, seq=1)).seq == 1
