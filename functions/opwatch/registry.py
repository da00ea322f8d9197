"""The Cloud Tasks queue as the registry of the watches in flight.

The queue is the truth of a pending watch: a watch that is not finished is exactly one pending
task on the queue (its next step), and the task's name says whose it is
(:class:`opwatch.checks.TaskName`). So:

- **finding** a watch's or an operation's pending checks: with the ledger
  (:mod:`opwatch.ledger`), one query for its chains, then each chain's step among the few names
  its record gives (GetTask); without one, a scan of task names in pages of up to 1,000 tasks
  (``ListTasks``), decoding only the bodies whose name matches;
- **cancelling** a watch takes the next step of its chain before the pending look can: a task
  of the step after the pending one is created, as a cancel, then the pending look is deleted.
  A look already running meets that name when it tries to go on (its next look, or the claim
  it makes before publishing) and stops, so the watch ends once, CANCELLED;
- **bringing a look forward** (the audit-log fast path) takes the next step the same way: a
  look of the step after the pending one is created, scheduled now, then the pending look is
  deleted. It is an ordinary CreateTask, dispatched within the queue's rate limits like every
  check; ``RunTask`` is never called (its quota, 60 a minute, is "meant for manual debugging").
  A look in flight is left alone: it is looking already.

:class:`Registry` does this over an injected :class:`TaskQueue`; the adapter is in
``adapters.py``, and a fake in the tests.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime

from opwatch import checks
from opwatch.checks import CheckState, Step, TaskName
from opwatch.errors import InvalidInput, LedgerUnavailable
from opwatch.ledger import Ledger, Record, State, probe_names
from opwatch.ports import QueuedTask, TaskQueue
from opwatch.steps import take_next

# A cancel that keeps meeting a new step (a check going on between the scan and the cancel)
# scans again, at most this often: each round means a check completed, so a few suffice.
MAX_CANCEL_ROUNDS = 5


@dataclass(frozen=True)
class PendingCheck:
    """One opwatch task found on the queue: its name, what it holds, and the task itself.

    ``state`` is None when the body cannot be read (``problem`` says why): listed, never fatal.
    """

    name: TaskName
    task: QueuedTask
    state: CheckState | None
    problem: str = ""

    @property
    def step(self) -> Step | None:
        return self.state.step if self.state is not None else None


@dataclass(frozen=True)
class CancelResult:
    """What a cancel did: the chains it cancelled, and those it found already finished."""

    watch_id: str
    cancelled: tuple[TaskName, ...] = ()
    already_finished: int = 0

    @property
    def found(self) -> bool:
        return bool(self.cancelled or self.already_finished)


def read(task: QueuedTask) -> PendingCheck | None:
    """The task as an opwatch check, or None if its name is not opwatch's."""
    name = TaskName.parse(task.task_id)
    return _named(name, task) if name is not None else None


def _named(name: TaskName, task: QueuedTask) -> PendingCheck:
    """The opwatch task ``name``, its body read (or why it cannot be)."""
    try:
        state = checks.decode(task.body)
    except InvalidInput as error:
        return PendingCheck(name, task, None, str(error))
    return PendingCheck(name, task, state)


def select(
    tasks: Iterable[QueuedTask],
    *,
    watch_id: str | None = None,
    operation_key: str | None = None,
) -> Iterator[PendingCheck]:
    """The opwatch tasks among ``tasks``, of one watch id and/or one operation if given.

    Names are compared before any body is decoded, so a scan costs a string comparison per task
    of other watches. A body whose watch id differs from the one asked (a hash collision, or a
    tampered body) is not that watch's.
    """
    wanted = checks.watch_key(watch_id) if watch_id is not None else None
    for task in tasks:
        name = TaskName.parse(task.task_id)
        if name is None or (wanted is not None and name.watch_key != wanted):
            continue
        if operation_key is not None and name.operation_key != operation_key:
            continue
        found = _named(name, task)
        if watch_id is not None and found.state is not None and found.state.watch_id != watch_id:
            continue
        yield found


def latest_by_chain(found: Iterable[PendingCheck]) -> dict[str, PendingCheck]:
    """The furthest step of each chain: the one that decides how that watch goes on."""
    latest: dict[str, PendingCheck] = {}
    for check in found:
        current = latest.get(check.name.chain)
        if current is None or (check.name.seq, check.name.parks) > (
            current.name.seq,
            current.name.parks,
        ):
            latest[check.name.chain] = check
    return latest


@dataclass(frozen=True)
class Registry:
    """Find, cancel and bring forward watches in flight, over the queue.

    With a ledger, a watch's or an operation's chains are found there (one query), and each
    chain's pending step among the few names the ledger says it may have (:meth:`step_of`);
    without one, by a scan of the queue.
    """

    queue: TaskQueue
    clock: Callable[[], datetime]
    ledger: Ledger | None = None

    def step_of(self, record: Record) -> PendingCheck | None:
        """The furthest step of the chain ``record`` indexes, or None if none of the names it
        may have is on the queue (the chain finished, or its record is further behind)."""
        task = self.queue.first([str(name) for name in probe_names(record)])
        return read(task) if task is not None else None

    def pending(
        self, *, watch_id: str | None = None, operation_key: str | None = None
    ) -> list[PendingCheck]:
        """The watches in flight (their pending look, or cancel not yet run)."""
        found = select(self.queue.list_tasks(), watch_id=watch_id, operation_key=operation_key)
        return [check for check in found if check.step is not Step.FINISHED]

    def discovered_operations(self) -> set[str]:
        """The operation keys whose discovered watch has a step pending (one scan)."""
        return {
            check.name.operation_key
            for check in self.pending()
            if check.name.chain == checks.DISCOVERED_CHAIN
        }

    def cancel(self, watch_id: str, reason: str) -> CancelResult:
        """Cancel every chain of ``watch_id`` still in flight.

        After this returns, no look of the watch starts: each chain's next step is a cancel
        task, which publishes CANCELLED without fetching. A look already running when the
        cancel came may finish its one fetch, then meets the cancel's name and stops.
        """
        result = CancelResult(watch_id)
        for _ in range(MAX_CANCEL_ROUNDS):
            found, finished = self._chains_of(watch_id)
            raced = False
            for check in latest_by_chain(found).values():
                if check.state is None or check.step is Step.CANCEL:
                    continue
                if check.step is Step.FINISHED:
                    finished += 1  # counted per scan: a later scan sees the same chains again
                    continue
                outcome = self._take_next(check, Step.CANCEL, reason)
                if outcome is None:
                    raced = True
                else:
                    result = replace(result, cancelled=(*result.cancelled, outcome))
            result = replace(result, already_finished=finished)
            if not raced:
                return result
        return result

    def _chains_of(self, watch_id: str) -> tuple[list[PendingCheck], int]:
        """The steps of ``watch_id``'s chains, and how many chains the ledger knows finished.

        From the ledger when it accounts for every chain it holds; else (no ledger, Firestore
        not answering, or a pending chain whose step it cannot find) from a scan of the queue,
        which is the truth.
        """
        if self.ledger is not None:
            with contextlib.suppress(LedgerUnavailable):
                records = self.ledger.of_watch(watch_id)
                steps, finished = [], 0
                for record in records:
                    if record.state is State.FINISHED:
                        finished += 1
                        continue
                    step = self.step_of(record)
                    if step is None:
                        break
                    steps.append(step)
                else:
                    if records:
                        return steps, finished
        return list(select(self.queue.list_tasks(), watch_id=watch_id)), 0

    def advance(self, operation_key: str) -> Advanced:
        """Bring every pending look of an operation forward to now.

        Each chain's furthest step is taken as a cancel takes it (:func:`opwatch.steps.take_next`),
        with a look scheduled now: the look's own name claim keeps one writer, so two end entries of
        one operation, racing, bring each look forward once. A look in flight, a finished
        watch's claim and a cancel are left alone.

        Raises:
            QuotaExhausted: Cloud Tasks refused a call for quota; the looks not brought
                forward by then go on polling.
        """
        result = Advanced()
        if self.ledger is not None:
            steps = (self.step_of(r) for r in self.ledger.pending_of_operation(operation_key))
            found: Iterable[PendingCheck] = [step for step in steps if step is not None]
        else:
            found = select(self.queue.list_tasks(), operation_key=operation_key)
        for check in latest_by_chain(found).values():
            if check.state is None or check.step is not Step.LOOK:
                continue
            if check.task.in_flight:
                result = replace(result, in_flight=result.in_flight + 1)
                continue
            if self._take_next(check, Step.LOOK) is None:
                result = replace(result, taken=result.taken + 1)
            else:
                result = replace(result, advanced=result.advanced + 1)
        return result

    def _take_next(self, check: PendingCheck, step: Step, reason: str = "") -> TaskName | None:
        assert check.state is not None  # callers skip unreadable bodies
        return take_next(self.queue, check.state, check.task.task_id, self.clock(), step, reason)


@dataclass(frozen=True)
class Advanced:
    """What :meth:`Registry.advance` did, by chain: brought forward, left alone while in flight,
    or found already taken by someone else."""

    advanced: int = 0
    in_flight: int = 0
    taken: int = 0


def pages(fetch_page: Callable[[str], tuple[list[QueuedTask], str]]) -> Iterator[QueuedTask]:
    """Every task over ListTasks pages: ``fetch_page(token) -> (tasks, next token)``."""
    tasks, token = fetch_page("")
    yield from tasks
    while token:
        tasks, token = fetch_page(token)
        yield from tasks
