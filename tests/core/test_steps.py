"""The rules for who takes a chain's next step, and the log bound to a watch."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest

from opwatch import checks, steps
from opwatch.checks import Step
from opwatch.contracts import WatchRequest
from opwatch.core import Progress
from opwatch.logs import LOGGER_NAME, Event
from opwatch.ports import QueuedTask
from opwatch.watchlog import WatchLog
from tests.fakes import OPERATION, T0, EventLog


class HeldQueue:
    """A queue where every name is taken, by a task holding ``body``."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def list_tasks(self) -> list[QueuedTask]:
        return []

    def create(self, task: checks.CheckTask) -> bool:
        return False

    def get(self, task_id: str) -> QueuedTask | None:
        return QueuedTask(task_id, self.body)

    def delete(self, task_id: str) -> bool:
        return False

    def first(self, task_ids: Sequence[str]) -> QueuedTask | None:
        return None


def look(seq: int = 1) -> checks.CheckState:
    request = WatchRequest(operation=OPERATION, watch_id="w-1")
    task = checks.encode(request, Progress(started=T0, polls=1), T0, "c1", seq=seq)
    return checks.decode(task.body)


def test_a_step_held_by_an_unreadable_task_is_nobodys_claim() -> None:
    queue = HeldQueue(b"not a check body")
    assert steps.holder(queue, "any") is None
    claim = steps.claim_last(queue, look(), T0, (0, 1))
    assert (claim.ours, claim.holder) == (False, "gone")
    assert steps.own_claim(queue, "any", (0, 1)) is False


def test_an_earlier_attempts_claim_is_ours_and_a_later_ones_is_not() -> None:
    state = look()
    earlier_claim = checks.successor(state, T0, Step.FINISHED, attempt=(0, 1))
    queue = HeldQueue(earlier_claim.body)
    assert steps.claim_last(queue, state, T0, (0, 2)).ours is True
    assert steps.claim_last(queue, state, T0, (0, 1)).ours is False  # a twin dispatch
    assert steps.claim_last(queue, state, T0, (0, 0)).holder == Step.FINISHED.value


def test_a_claim_or_a_look_whose_attempt_is_not_known_counts_as_earlier() -> None:
    """A parked watch back over Pub/Sub has no attempt; a claim written before claims said
    theirs has none either: either way the claim is the look's own, as it always was."""
    assert steps.earlier(None, (0, 1)) is True
    assert steps.earlier((0, 1), None) is True
    assert steps.earlier(None, None) is True
    assert steps.earlier((0, 1), (0, 1)) is False
    assert steps.earlier((1, 0), (0, 5)) is False, "a step parked since is a later dispatch"


def test_a_cancel_that_meets_a_taken_name_takes_nothing() -> None:
    queue = HeldQueue(b"")
    assert steps.take_next(queue, look(), "t", T0, Step.CANCEL, "by hand") is None


def test_a_bound_log_puts_its_fields_on_every_line(event_log: EventLog) -> None:
    log = WatchLog({"watch_id": "w-1", "operation": OPERATION, "api": "x.googleapis.com"})
    bound = log.bind(polls=3)
    bound.event(logging.INFO, Event.CHECK_PENDING, delay_seconds=1.5)
    bound.bind(polls=4).event(logging.INFO, Event.CHECK_PENDING, delay_seconds=2)
    log.event(logging.INFO, Event.WATCH_STARTED)
    first, later, unbound = event_log.lines
    assert first == {
        "severity": "INFO",
        "watch_id": "w-1",
        "operation": OPERATION,
        "api": "x.googleapis.com",
        "polls": 3,
        "delay_seconds": 1.5,
        "event": "check.pending",
    }
    assert later["polls"] == 4, "a later value wins"
    assert "polls" not in unbound, "binding makes a new log; the old one is unchanged"


def test_a_line_below_the_loggers_level_is_not_written(event_log: EventLog) -> None:
    logging.getLogger(LOGGER_NAME).setLevel(logging.WARNING)  # the fixtures restore it
    WatchLog({"watch_id": "w-1"}).event(logging.INFO, Event.WATCH_RESUMED)
    assert event_log.lines == []
    logging.getLogger(LOGGER_NAME).setLevel(logging.INFO)
    WatchLog({"watch_id": "w-1"}).event(logging.INFO, Event.WATCH_RESUMED)
    assert event_log.events == ["watch.resumed"]


def test_a_failing_block_is_logged_and_raised(event_log: EventLog) -> None:
    log = WatchLog({"watch_id": "w-1"})
    with pytest.raises(RuntimeError), log.failing("publish the notification"):
        raise RuntimeError("down")
    [line] = event_log.lines
    assert line == {
        "severity": "ERROR",
        "watch_id": "w-1",
        "event": "delivery.failed",
        "action": "publish the notification",
        "error": "RuntimeError: down",
        "redelivered": True,
    }
