"""Who takes step n + 1 of a chain: the rules every writer of a watch's next step follows.

A chain's steps are tasks named by their number (:class:`opwatch.checks.TaskName`), and Cloud
Tasks creates a name once: whoever creates step n + 1 first owns how the watch goes on. Four
writers race for it, and each takes it the same way:

- a look that is **not done** creates step n + 1 as the next look;
- a look that **finishes** first claims step n + 1 (:func:`claim_last`), and publishes only if
  the claim is its own: a cancel or a look brought forward may have taken the step first;
- a **cancel** and the audit-log **fast path** take step n + 1 with a task due now and delete
  step n (:func:`take_next`), so the pending look never runs, or stops at the name if it is
  running already.

Cloud Tasks may dispatch a task more than once and retries it after a failure, so a writer
that meets its own earlier claim (an earlier attempt of the same look) goes on as its owner.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from opwatch import checks
from opwatch.checks import Attempt, CheckState, CheckTask, Step, TaskName
from opwatch.errors import InvalidInput
from opwatch.ports import TaskQueue

# A finishing look holds its watch's next step this long (longer than Cloud Tasks retries it),
# so a redelivery of it can tell its own claim from a cancel's.
CLAIM_HOLD: Final = 86400


@dataclass(frozen=True)
class Claim:
    """A finishing look's claim of its chain's next step: ``ours``, or held by ``holder`` (a
    step's name, or ``"gone"``)."""

    task: CheckTask
    ours: bool
    holder: str = ""


def claim_last(
    queue: TaskQueue, state: CheckState, now: datetime, attempt: Attempt | None
) -> Claim:
    """Hold the watch's next step for the look of ``state`` that saw the watch end.

    The claim is ours when the name was free, or when an earlier attempt of this look claimed
    it and failed to publish (this attempt publishes now). Anyone else holding it (a cancel, a
    look the fast path brought forward, or a twin dispatch of this very look at the same
    attempt) publishes, or has, itself.

    Raises:
        whatever the queue raises: the caller lets the platform deliver the look again.
    """
    claim = checks.successor(
        state, now + timedelta(seconds=CLAIM_HOLD), Step.FINISHED, attempt=attempt
    )
    if queue.create(claim):
        return Claim(claim, ours=True)
    held = holder(queue, claim.task_id)
    if held is not None and held.step is Step.FINISHED and earlier(held.attempt, attempt):
        return Claim(claim, ours=True)
    return Claim(claim, ours=False, holder=held.step.value if held is not None else "gone")


def own_claim(queue: TaskQueue, task_id: str, attempt: Attempt | None) -> bool:
    """Whether step ``task_id`` is held by the claim of an earlier attempt of this look: that
    attempt saw the watch end, then failed before its notification and its record were out (the
    claim is deleted only after both)."""
    held = holder(queue, task_id)
    return held is not None and held.step is Step.FINISHED and earlier(held.attempt, attempt)


def holder(queue: TaskQueue, task_id: str) -> CheckState | None:
    """What the task holding a step's name holds (None: it is gone, or unreadable)."""
    held = queue.get(task_id)
    if held is None:
        return None
    try:
        return checks.decode(held.body)
    except InvalidInput:
        return None


def earlier(claimed: Attempt | None, attempt: Attempt | None) -> bool:
    """Whether a claim made at dispatch ``claimed`` is an earlier dispatch of the look now at
    ``attempt`` (an earlier retry, or the step before it was parked). Unknown on either side
    (a parked watch back over Pub/Sub, or a claim written before claims said their attempt)
    counts as ours, as it always did."""
    return claimed is None or attempt is None or claimed < attempt


def take_next(
    queue: TaskQueue,
    state: CheckState,
    task_id: str,
    now: datetime,
    step: Step,
    reason: str,
) -> TaskName | None:
    """Take the step after ``state`` (the task ``task_id``) with a ``step`` task due now, and
    drop that task: how a cancel and the fast path take a chain.

    None if the step was taken first (by the look itself going on, or another taker).
    """
    task = checks.successor(state, now, step, reason)
    if not queue.create(task):
        return None
    # The pending look must not run now (if it is already running, it stops at the name).
    queue.delete(task_id)
    parsed = TaskName.parse(task.task_id)
    assert parsed is not None
    return parsed
