"""The ledger's side of a watch: its record written on the side, and what its kind teaches.

Nothing here ever makes a watch wait or fail: a write Firestore does not take is logged and
the watch goes on (a finish is written again later, from a record task). The queue stays the
truth of a pending watch (docs/how-it-works.md, "The ledger").
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from opwatch import checks, kinds
from opwatch.checks import Step
from opwatch.contracts import PollingOverride, WatchRequest
from opwatch.core import Fetched, FetchResult, Finish, Outcome, Progress
from opwatch.learned import Expectation, Sample
from opwatch.ledger import Ledger, Record, due
from opwatch.logs import Event, error_field
from opwatch.ports import Clock, TaskQueue
from opwatch.watchlog import WatchLog
from opwatch.wire import parse_rfc3339

# A finish the ledger did not take is written again this long after, from a task.
RECORD_DELAY: Final = 60


@dataclass(frozen=True)
class Recorder:
    """Writes a watch's chain to the ledger and reads and feeds what its kind has taught."""

    ledger: Ledger
    queue: TaskQueue
    clock: Clock
    results_topic: str
    learn_min_samples: int

    def pending(
        self,
        request: WatchRequest,
        chain: str,
        progress: Progress,
        seq: int,
        recorded: int,
        now: datetime,
        next_look: datetime,
        log: WatchLog,
    ) -> int:
        """Record the chain at step ``seq`` when its record is due (every
        :data:`opwatch.ledger.RECORD_EVERY` steps); the step the record now says."""
        if not due(recorded, seq):
            return recorded
        record = self._record(request, chain, progress, seq, now, next_look=next_look)
        return seq if self.put(record, log) else recorded

    def finished(
        self,
        request: WatchRequest,
        decision: Finish,
        now: datetime,
        chain: str,
        previous: checks.CheckState | None,
        message_id: str | None,
        log: WatchLog,
    ) -> None:
        """Record the finish; if Firestore does not take it, a record task writes it later,
        so the ledger never keeps showing a finished watch as pending."""
        seq = previous.seq if previous is not None else 0
        end = checks.Finish(decision.outcome.value, now, message_id)
        record = self._record(request, chain, decision.progress, max(seq, 1), now).finish(
            end.outcome, now, decision.progress.polls, message_id
        )
        if self.put(record, log):
            return
        # The step after the claim (seq + 1) is this chain's next free name.
        task = checks.encode(
            request,
            decision.progress,
            now + timedelta(seconds=RECORD_DELAY),
            chain,
            seq=seq + 2,
            step=Step.RECORD,
            recorded=previous.recorded if previous is not None else 0,
            finish=end,
        )
        created = False
        with contextlib.suppress(Exception):
            self.queue.create(task)
            created = True
        log.event(
            logging.WARNING, Event.LEDGER_BEHIND, record_task=created, record=record.to_json()
        )

    def rejected(self, state: checks.CheckState, outcome: Outcome) -> None:
        """Record a chain whose request the allowlists refuse now as finished with ``outcome``."""
        record = self.of_state(state, state.seq)
        self.put(
            record.finish(outcome.value, self.clock(), state.progress.polls, None),
            WatchLog({"watch_id": state.watch_id}),
        )

    def catch_up(self, state: checks.CheckState, *, last_attempt: bool) -> None:
        """A record task: write the finish the ledger did not take when the watch finished.

        Raises:
            whatever the ledger raises, so Cloud Tasks tries again with backoff; on what may
            be the queue's ``last_attempt``, the record is logged instead and the ledger keeps
            the watch pending.
        """
        assert state.finish is not None  # checks.read requires it of a record step
        end = state.finish
        record = self.of_state(state, state.seq - 2).finish(
            end.outcome, end.finished, state.progress.polls, end.message_id
        )
        try:
            self.ledger.put(record)
        except Exception:
            if not last_attempt:
                raise
            log = WatchLog(
                {"watch_id": record.watch_id, "operation": record.operation, "api": record.api}
            )
            # The queue gives up on this task: nothing but this line will hold the finish.
            log.event(
                logging.ERROR, Event.LEDGER_BEHIND, record_task=False, record=record.to_json()
            )

    def put(self, record: Record, log: WatchLog) -> bool:
        """Write ``record``; False (logged) if Firestore did not take it. Never raises: the
        watch goes on whatever the ledger does."""
        try:
            self.ledger.put(record)
        except Exception as error:  # LedgerUnavailable, or anything else the client raises
            log.event(
                logging.WARNING,
                Event.LEDGER_WRITE_FAILED,
                document="watch record",
                error=error_field(error),
            )
            return False
        return True

    def expect(self, request: WatchRequest, result: FetchResult) -> Expectation | None:
        """At a watch's first look: what was learned of its operation's kind, if enough (one
        read of the ledger per watch, never per look; None with a watch's own
        ``expected_duration`` or ``polling``, once the operation is done, or if Firestore does
        not answer)."""
        if (
            request.expected_duration is not None
            or request.polling != PollingOverride()  # the request chose its own schedule
            or not isinstance(result, Fetched)
            or result.operation.get("done") is True
        ):
            return None
        kind = kinds.of_operation(request.api, result.operation, request.kind, _method(request))
        try:
            summary = self.ledger.summary(kind)
        except Exception as error:  # LedgerUnavailable, or anything else the client raises
            WatchLog.of(request).event(
                logging.WARNING, Event.LEDGER_READ_FAILED, error=error_field(error)
            )
            return None
        return summary.expectation(self.learn_min_samples)

    def learn(
        self,
        request: WatchRequest,
        decision: Finish,
        now: datetime,
        log: WatchLog,
        *,
        seen_pending: bool,
    ) -> None:
        """At a finish whose duration is known, add it to the kind's summary: the operation's
        ``createTime`` to ``endTime`` (exact), else, if an earlier look saw it pending, the
        watch's first look to this one (less exact)."""
        if decision.outcome not in (Outcome.SUCCEEDED, Outcome.FAILED) or not decision.operation:
            return
        metadata = decision.operation.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        created, ended = (
            parse_rfc3339(metadata.get("createTime")),
            parse_rfc3339(metadata.get("endTime")),
        )
        exact = created is not None and ended is not None and ended > created
        if not exact and not seen_pending:
            return  # done at the first look: how long it ran is not known
        seconds = (
            (ended - created).total_seconds()
            if exact and created and ended
            else (now - decision.progress.started).total_seconds()
        )
        kind = kinds.of_operation(request.api, decision.operation, request.kind, _method(request))
        try:
            self.ledger.learn(Sample(kind, seconds, now, exact))
        except Exception as error:
            log.event(
                logging.WARNING,
                Event.LEDGER_WRITE_FAILED,
                document="kind summary",
                error=error_field(error),
            )

    def of_state(self, state: checks.CheckState, seq: int) -> Record:
        """The record of a check's chain from its body alone (its request not validated)."""
        request = state.request
        return Record(
            watch_id=state.watch_id,
            operation=str(request.get("operation")),
            api=str(request.get("api")),
            chain=state.chain,
            started=state.progress.started,
            polls=state.progress.polls,
            seq=max(seq, 1),
            updated=self.clock(),
            labels={str(k): str(v) for k, v in dict(request.get("labels") or {}).items()},
            results_topic=str(request.get("notify_topic") or self.results_topic),
        )

    def _record(
        self,
        request: WatchRequest,
        chain: str,
        progress: Progress,
        seq: int,
        now: datetime,
        *,
        next_look: datetime | None = None,
    ) -> Record:
        """The record of ``request``'s chain at step ``seq``."""
        return Record(
            watch_id=request.watch_id,
            operation=request.operation,
            api=request.api,
            chain=chain,
            started=progress.started,
            polls=progress.polls,
            seq=seq,
            updated=now,
            labels=dict(request.labels),
            results_topic=request.notify_topic or self.results_topic,
            next_look=next_look,
        )


def _method(request: WatchRequest) -> str | None:
    """The audit method that announced a discovered watch's operation (its ``method`` label;
    a sweep's is no method)."""
    method = request.labels.get("method")
    return method if method and method != "sweep" else None
