"""Watching an operation: one look (fetch once, let the pure core decide), then either the next
look scheduled or the watch's one notification published.

Failure rules, which keep "nothing lost" true: a failure to schedule or to publish propagates,
so the platform (Pub/Sub or Cloud Tasks) delivers the same input again; task names are
deterministic, so a redelivery never starts a second polling chain (:mod:`opwatch.steps`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from opwatch import checks, notification, steps
from opwatch.checks import Attempt, CheckState
from opwatch.contracts import WatchRequest
from opwatch.core import (
    CheckAgain,
    FetchFailed,
    FetchResult,
    Finish,
    Outcome,
    Progress,
    decide,
    operation_age,
    overdue_after,
)
from opwatch.errors import FinishPending
from opwatch.learned import Expectation
from opwatch.logs import Event, error_field
from opwatch.ports import Clock, Fetch, Publish, TaskQueue
from opwatch.recording import Recorder
from opwatch.settings import WatchConfig
from opwatch.watchlog import WatchLog
from opwatch.wire import parse_rfc3339


@dataclass(frozen=True)
class Watching:
    """Looks at watched operations and carries out what the core decides."""

    config: WatchConfig
    fetch: Fetch
    queue: TaskQueue
    publish: Publish
    clock: Clock
    recorder: Recorder | None = None  # None: no ledger

    def first_look(self, request: WatchRequest, started: datetime, chain: str) -> Outcome | None:
        """The first look of a watch on ``chain``: what was learned of its kind is read here."""
        result = self.fetch(request)
        learned = self.recorder.expect(request, result) if self.recorder is not None else None
        return self._carry_out(request, Progress(started=started), result, chain, learned)

    def look_again(
        self, request: WatchRequest, previous: CheckState, attempt: Attempt | None
    ) -> Outcome | None:
        """The look a check task holds; ``attempt`` is which dispatch of it this is (None: not
        known, a parked watch back over Pub/Sub)."""
        result = self.fetch(request)
        return self._carry_out(
            request, previous.progress, result, previous.chain, previous.learned, previous, attempt
        )

    def _carry_out(
        self,
        request: WatchRequest,
        progress: Progress,
        result: FetchResult,
        chain: str,
        learned: Expectation | None,
        previous: CheckState | None = None,
        attempt: Attempt | None = None,
    ) -> Outcome | None:
        now = self.clock()
        event_driven = request.api in self.config.event_driven_apis
        decision = decide(
            request, progress, result, now, event_driven=event_driven, learned=learned
        )
        log = WatchLog.of(request).bind(polls=decision.progress.polls)
        event = Event.CHECK_PENDING
        if isinstance(result, FetchFailed):
            event = Event.CHECK_TRANSIENT_ERROR
            log = log.bind(http_status=result.http_status, fetch_error=result.error)
        if isinstance(decision, CheckAgain):
            self._schedule(request, decision, now, chain, learned, previous, attempt, event, log)
            return None
        claim = None
        if previous is not None:
            # Take the next step's name before telling anyone: if a cancel took it first, the
            # watch is cancelled, and its CANCELLED is the one notification.
            with log.failing("claim the watch's last step"):
                claim = steps.claim_last(self.queue, previous, now, attempt)
            if not claim.ours:
                log.event(logging.INFO, Event.CHECK_SUPERSEDED, holder=claim.holder)
                return None
        return self.finish(request, decision, now, log, chain, previous, claim)

    def _schedule(
        self,
        request: WatchRequest,
        decision: CheckAgain,
        now: datetime,
        chain: str,
        learned: Expectation | None,
        previous: CheckState | None,
        attempt: Attempt | None,
        event: Event,
        log: WatchLog,
    ) -> None:
        """Create the next look: step n + 1 of the chain, due after the decided delay."""
        when = now + timedelta(seconds=decision.delay)
        # The next step's name is the same whether this step was parked or not.
        following = decision.progress
        if following.parks:
            following = replace(following, parks=0)
        seq = (previous.seq if previous is not None else 0) + 1
        recorded = previous.recorded if previous is not None else 0
        if self.recorder is not None:
            recorded = self.recorder.pending(
                request, chain, following, seq, recorded, now, when, log
            )
        warned = previous.warned if previous is not None else False
        if not warned and self._overdue(request, decision, learned, now):
            warned = self._warn(request, decision, learned, now, log)
        task = checks.encode(
            request,
            following,
            when,
            chain,
            seq=seq,
            recorded=recorded,
            learned=learned,
            warned=warned,
        )
        with log.failing("schedule the next check"):
            created = self.queue.create(task)
            if (
                not created
                and previous is not None
                and steps.own_claim(self.queue, task.task_id, attempt)
            ):
                raise FinishPending
        log.event(
            logging.INFO,
            event if created else Event.CHECK_DUPLICATE,
            delay_seconds=round(decision.delay, 3),
        )

    def finish(
        self,
        request: WatchRequest,
        decision: Finish,
        now: datetime,
        log: WatchLog,
        chain: str,
        previous: CheckState | None,
        claim: steps.Claim | None = None,
    ) -> Outcome:
        """Publish the watch's one notification, record it, and let go of the claim."""
        message = notification.finished(
            request,
            decision,
            now=now,
            results_topic=self.config.results_topic,
            learned=previous.learned if previous is not None else None,
        )
        with log.failing("publish the notification"):
            message_id = self.publish(message)
        if self.recorder is not None:
            self.recorder.finished(request, decision, now, chain, previous, message_id, log)
        if claim is not None:
            # Its name stays reserved; the task itself is no longer needed (it is a no-op). Only
            # now: until the finish is recorded, a retry of this look must find its claim.
            with contextlib.suppress(Exception):
                self.queue.delete(claim.task.task_id)
        if self.recorder is not None:
            self.recorder.learn(request, decision, now, log, seen_pending=previous is not None)
        lag = _detection_lag(decision.operation, now)
        log.event(
            logging.INFO,
            Event.WATCH_FINISHED,
            outcome=decision.outcome.value,
            **({"detection_lag_seconds": lag} if lag is not None else {}),
        )
        return decision.outcome

    def _overdue(
        self,
        request: WatchRequest,
        decision: CheckAgain,
        learned: Expectation | None,
        now: datetime,
    ) -> bool:
        """Whether the watch asked to be warned and its operation runs past what it should."""
        asked = request.warn_overdue
        if not (asked if asked is not None else self.config.warn_overdue):
            return False
        limit = overdue_after(request, learned)
        age = operation_age(decision.operation, decision.progress, now)
        return limit is not None and age > limit

    def _warn(
        self,
        request: WatchRequest,
        decision: CheckAgain,
        learned: Expectation | None,
        now: datetime,
        log: WatchLog,
    ) -> bool:
        """Publish the watch's one overdue message; True once it went out. A failure is logged
        and the next look tries again: a warning is never worth a retry of the check."""
        age = operation_age(decision.operation, decision.progress, now)
        message = notification.overdue(
            request,
            decision.progress,
            age=age,
            limit=overdue_after(request, learned) or 0.0,
            learned=learned,
            now=now,
            results_topic=self.config.results_topic,
        )
        try:
            self.publish(message)
        except Exception as error:
            log.event(
                logging.WARNING,
                Event.DELIVERY_FAILED,
                action="publish the overdue message",
                error=error_field(error),
                redelivered=False,  # the next look tries again
            )
            return False
        log.event(logging.INFO, Event.WATCH_OVERDUE, age_seconds=round(age))
        return True


def _detection_lag(operation: Mapping[str, Any] | None, now: datetime) -> float | None:
    """Seconds from the operation's own ``metadata.endTime`` to now, when it says one."""
    metadata = operation.get("metadata") if operation else None
    ended = parse_rfc3339(metadata.get("endTime")) if isinstance(metadata, dict) else None
    return round(max(0.0, (now - ended).total_seconds()), 3) if ended else None
