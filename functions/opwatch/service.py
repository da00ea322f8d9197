"""One watch message, or one check task, carried out end to end over three injected ports.

:class:`Notifier` is what both Cloud Functions call. It parses, fetches once, lets the pure core
decide, and either publishes the terminal notification or schedules the next check. The ports
(fetch, schedule, publish) and the clock are plain callables, so tests pass fakes and
``main.py`` passes the real adapters.

Failure rules, which keep "nothing lost" true:
- bad input (a watch request breaking the contract) is answered with an INVALID_REQUEST
  notification and acknowledged: retrying cannot fix it;
- a failure to schedule or to publish propagates, so the platform (Pub/Sub or Cloud Tasks)
  delivers the same input again; task names are deterministic, so a redelivery never starts a
  second polling chain;
- on what may be Cloud Tasks' last attempt of a check, a failure parks the watch instead (a new
  task later, else the parked topic, else one ERROR log entry holding it), so an outage longer
  than the queue's retries does not drop it; a parked watch comes back as a message.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

from google.rpc import code_pb2

from opwatch import audit, checks, kinds, notification, registry
from opwatch import sweep as sweeping
from opwatch.checks import Step
from opwatch.contracts import (
    CancelRequest,
    PollingOverride,
    WatchRequest,
    decode_pubsub_data,
    parse_watch_message,
    validate_watch_request,
)
from opwatch.core import (
    CheckAgain,
    Fetched,
    FetchFailed,
    FetchResult,
    Finish,
    Outcome,
    Progress,
    decide,
    operation_age,
    overdue_after,
)
from opwatch.errors import (
    FinishPending,
    InvalidInput,
    InvalidWatchRequest,
    LedgerUnavailable,
    QuotaExhausted,
)
from opwatch.learned import Expectation, Sample
from opwatch.ledger import Ledger, Record, due
from opwatch.logs import LOGGER_NAME, Event
from opwatch.notification import Notification
from opwatch.registry import CancelResult, Registry, TaskQueue
from opwatch.settings import Settings
from opwatch.status import make_status
from opwatch.wire import parse_rfc3339

log = logging.getLogger(LOGGER_NAME)

# A parked check waits this long before it runs again, with a fresh retry budget.
PARK_DELAY: Final = 900
# A finishing check holds its watch's next step this long (longer than Cloud Tasks retries it),
# so a redelivery of it can tell its own claim from a cancel's.
CLAIM_HOLD: Final = 86400
# The attribute that marks a parked watch on the parked topic (or replayed by hand).
PARKED_ATTRIBUTE: Final = "opwatch"
PARKED_VALUE: Final = "parked-check"
# A finish the ledger did not take is written again this long after, from a task.
RECORD_DELAY: Final = 60


class Fetch(Protocol):
    """Fetches the watched operation once; never raises for an API or network error."""

    def __call__(self, request: WatchRequest) -> FetchResult: ...


class Publish(Protocol):
    """Publishes the notification and waits for the server's acknowledgement; raises on failure.
    Returns the message id Pub/Sub gave it, when known."""

    def __call__(self, message: Notification) -> str | None: ...


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Notifier:
    """The behaviour of both functions, over injected ports."""

    settings: Settings
    fetch: Fetch
    queue: TaskQueue
    publish: Publish
    clock: Callable[[], datetime] = utcnow
    ledger: Ledger | None = None

    @property
    def registry(self) -> Registry:
        return Registry(self.queue, self.clock, self.ledger)

    def on_watch_message(self, message: Mapping[str, Any]) -> Outcome | None:
        """Handle one Pub/Sub message: a watch request, a cancel request, or a parked watch.

        Args:
            message: the PubsubMessage in its JSON form (``data`` base64, ``attributes``,
                ``messageId``).

        Returns:
            The outcome published, or None when a check was scheduled instead.
        """
        started = self.clock()
        message_id = str(message.get("messageId") or message.get("message_id") or "")
        attributes = message.get("attributes")
        if isinstance(attributes, dict) and attributes.get(PARKED_ATTRIBUTE) == PARKED_VALUE:
            return self._resume(message, message_id, started)
        try:
            request = parse_watch_message(
                decode_pubsub_data(message),
                default_watch_id=message_id,
                allowed_apis=self.settings.allowed_apis,
                allowed_notify_topics=self.settings.allowed_notify_topics,
            )
        except InvalidWatchRequest as error:
            return self._reject(error, Progress(started=started), default_watch_id=message_id)
        if isinstance(request, CancelRequest):
            self.cancel(request)
            return None
        log.info(
            "watching %s",
            request.operation,
            extra={"fields": {"event": Event.WATCH_STARTED, **_watch_fields(request)}},
        )
        return self._look(request, Progress(started=started), checks.chain_for_message(message_id))

    def on_check(self, state: checks.CheckState, *, retries: int | None = None) -> Outcome | None:
        """Handle one check task whose body was decoded with :func:`checks.decode`.

        Args:
            state: the decoded body.
            retries: how often Cloud Tasks already retried this task (its
                ``X-CloudTasks-TaskRetryCount``); None when the check did not come from Cloud
                Tasks (a parked watch back over Pub/Sub). On what may be the queue's last
                attempts, a failure parks the watch rather than letting Cloud Tasks drop it;
                a finishing look's claim records it, so a later attempt knows its own claim.
        """
        watch_id = state.watch_id
        if state.step is Step.FINISHED:
            # The watch finished a while ago; this task only held the name of its next step.
            return None
        if state.step is Step.RECORD:
            self._catch_up(state, retries)
            return None
        try:
            request = validate_watch_request(
                state.request,
                default_watch_id=watch_id,
                allowed_apis=self.settings.allowed_apis,
                allowed_notify_topics=self.settings.allowed_notify_topics,
            )
        except InvalidWatchRequest as error:
            # Valid when scheduled, so the allowlists changed since: tell the subscriber.
            outcome = self._reject(error, state.progress, default_watch_id=watch_id)
            if self.ledger is not None:
                rejected = self._state_record(state, state.seq)
                self._put(
                    rejected.finish(outcome.value, self.clock(), state.progress.polls, None),
                    {"watch_id": watch_id},
                )
            return outcome
        try:
            if state.step is Step.CANCEL:
                return self._cancelled(request, state)
            attempt = (state.progress.parks, retries) if retries is not None else None
            return self._look(request, state.progress, state.chain, state, attempt)
        except Exception:
            if retries is None or not self.settings.on_last_attempts(retries):
                raise
        self._park(request, state)
        return None

    def cancel(self, request: CancelRequest) -> CancelResult:
        """Cancel a watch (see :meth:`Registry.cancel`); its CANCELLED notification follows."""
        result = self.registry.cancel(request.watch_id, request.reason)
        log.info(
            "cancel of %s: %d in flight cancelled, %d already finished",
            request.watch_id,
            len(result.cancelled),
            result.already_finished,
            extra={
                "fields": {
                    "event": Event.WATCH_CANCEL_REQUESTED,
                    "watch_id": request.watch_id,
                    "cancelled": len(result.cancelled),
                    "already_finished": result.already_finished,
                }
            },
        )
        return result

    def _cancelled(self, request: WatchRequest, state: checks.CheckState) -> Outcome:
        """A cancel holds this step: tell the subscriber, without looking at the operation."""
        reason = f": {state.reason}" if state.reason else ""
        error = make_status(code_pb2.CANCELLED, f"the watch was cancelled{reason}")
        finish = Finish(Outcome.CANCELLED, None, error, state.progress)
        fields = _watch_fields(request)
        return self._finish(request, finish, self.clock(), fields, None, state.chain, state)

    def _look(
        self,
        request: WatchRequest,
        progress: Progress,
        chain: str,
        state: checks.CheckState | None = None,
        attempt: checks.Attempt | None = None,
    ) -> Outcome | None:
        """Fetch once and carry the decision out; ``state`` is the check's (None: first look),
        ``attempt`` which dispatch of it this is (None: not known)."""
        result = self.fetch(request)
        now = self.clock()
        event_driven = request.api in self.settings.event_driven_apis
        expected = state.learned if state is not None else self._expect(request, result)
        decision = decide(
            request, progress, result, now, event_driven=event_driven, learned=expected
        )
        fields: dict[str, Any] = {**_watch_fields(request), "polls": decision.progress.polls}
        event = Event.CHECK_PENDING
        if isinstance(result, FetchFailed):
            event = Event.CHECK_TRANSIENT_ERROR
            fields["http_status"] = result.http_status
            fields["fetch_error"] = result.error
        if isinstance(decision, CheckAgain):
            when = now + timedelta(seconds=decision.delay)
            # The next step's name is the same whether this step was parked or not.
            following = decision.progress
            if following.parks:
                following = replace(following, parks=0)
            seq = (state.seq if state is not None else 0) + 1
            recorded = state.recorded if state is not None else 0
            if self.ledger is not None and due(recorded, seq):
                pending = _record(
                    request, chain, following, seq, now, self.settings.results_topic, next_look=when
                )
                recorded = seq if self._put(pending, fields) else recorded
            warned = state.warned if state is not None else False
            if not warned and self._overdue(request, decision, expected, now):
                warned = self._warn(request, decision, expected, now, fields)
            task = checks.encode(
                request,
                following,
                when,
                chain,
                seq=seq,
                recorded=recorded,
                learned=expected,
                warned=warned,
            )
            with _logged_failure("could not schedule the next check", fields):
                created = self.queue.create(task)
                if not created and state is not None and self._own_claim(task.task_id, attempt):
                    raise FinishPending(
                        "an earlier attempt of this look saw the watch end and holds its next "
                        "step, but may not have told the subscriber or the ledger: a look that "
                        "finishes must, so this one is tried again"
                    )
            log.info(
                "not done yet; next check in %.1fs%s",
                decision.delay,
                "" if created else " (it existed: this input was delivered again)",
                extra={
                    "fields": {
                        **fields,
                        "event": event if created else Event.CHECK_DUPLICATE,
                        "delay_seconds": round(decision.delay, 3),
                    }
                },
            )
            return None
        claim = None
        if state is not None:
            # Take the next step's name before telling anyone: if a cancel took it first, the
            # watch is cancelled, and its CANCELLED is the one notification.
            claim = checks.successor(
                state, now + timedelta(seconds=CLAIM_HOLD), Step.FINISHED, attempt=attempt
            )
            if not self._claim(claim, attempt, fields):
                return None
        return self._finish(request, decision, now, fields, claim, chain, state)

    def _claim(
        self, claim: checks.CheckTask, attempt: checks.Attempt | None, fields: Mapping[str, Any]
    ) -> bool:
        """Hold the watch's next step for this finishing look; False if someone else holds it.

        The name is taken when an earlier attempt of this look claimed it and failed to
        publish (publish now), or when another writer took the step: a cancel, a look the fast
        path brought forward, or a twin dispatch of this very look (Cloud Tasks' rare duplicate
        execution) at the same attempt. Those publish, or have, themselves.
        """
        with _logged_failure("could not claim the watch's last step", fields):
            if self.queue.create(claim):
                return True
            state = self._holder(claim.task_id)
        if state is not None and state.step is Step.FINISHED and _earlier(state.attempt, attempt):
            return True  # this look's own claim: it runs again after a failed publish
        log.info(
            "another step holds the watch's next step (%s); this check publishes nothing",
            state.step.value if state is not None else "gone",
            extra={"fields": {**fields, "event": Event.CHECK_SUPERSEDED}},
        )
        return False

    def _holder(self, task_id: str) -> checks.CheckState | None:
        """What the task holding a step's name holds (None: it is gone, or unreadable)."""
        held = self.queue.get(task_id)
        found = registry.read(held) if held is not None else None
        return found.state if found is not None else None

    def _own_claim(self, task_id: str, attempt: checks.Attempt | None) -> bool:
        """Whether the step ``task_id`` is held by the claim of an earlier attempt of this look:
        that attempt saw the watch end, then failed before its notification and its record were
        out (the claim is deleted only after both)."""
        state = self._holder(task_id)
        return (
            state is not None and state.step is Step.FINISHED and _earlier(state.attempt, attempt)
        )

    def _finish(
        self,
        request: WatchRequest,
        decision: Finish,
        now: datetime,
        fields: dict[str, Any],
        claim: checks.CheckTask | None,
        chain: str,
        state: checks.CheckState | None,
    ) -> Outcome:
        message = notification.finished(
            request,
            decision,
            now=now,
            results_topic=self.settings.results_topic,
            learned=state.learned if state is not None else None,
        )
        with _logged_failure("could not publish the notification", fields):
            message_id = self.publish(message)
        if self.ledger is not None:
            self._record_finish(request, decision, now, chain, state, message_id, fields)
        if claim is not None:
            # Its name stays reserved; the task itself is no longer needed (it is a no-op). Only
            # now: until the finish is recorded, a retry of this look must find its claim.
            with contextlib.suppress(Exception):
                self.queue.delete(claim.task_id)
        if self.ledger is not None:
            self._learn(request, decision, now, fields, seen_pending=state is not None)
        if (lag := _detection_lag(decision.operation, now)) is not None:
            fields["detection_lag_seconds"] = lag
        log.info(
            "watch finished: %s",
            decision.outcome.value,
            extra={
                "fields": {
                    **fields,
                    "event": Event.WATCH_FINISHED,
                    "outcome": decision.outcome.value,
                }
            },
        )
        return decision.outcome

    def _overdue(
        self,
        request: WatchRequest,
        decision: CheckAgain,
        expected: Expectation | None,
        now: datetime,
    ) -> bool:
        """Whether the watch asked to be warned and its operation runs past what it should."""
        asked = request.warn_overdue
        if not (asked if asked is not None else self.settings.warn_overdue):
            return False
        limit = overdue_after(request, expected)
        age = operation_age(decision.operation, decision.progress, now)
        return limit is not None and age > limit

    def _warn(
        self,
        request: WatchRequest,
        decision: CheckAgain,
        expected: Expectation | None,
        now: datetime,
        fields: Mapping[str, Any],
    ) -> bool:
        """Publish the watch's one overdue message; True once it went out. A failure is logged
        and the next look tries again: a warning is never worth a retry of the check."""
        age = operation_age(decision.operation, decision.progress, now)
        message = notification.overdue(
            request,
            decision.progress,
            age=age,
            limit=overdue_after(request, expected) or 0.0,
            learned=expected,
            now=now,
            results_topic=self.settings.results_topic,
        )
        try:
            self.publish(message)
        except Exception as error:
            log.warning(
                "could not publish the overdue message (%s); the next look tries again",
                error,
                extra={"fields": {**fields, "event": Event.DELIVERY_FAILED}},
            )
            return False
        log.info(
            "the operation is overdue: %.0fs old",
            age,
            extra={"fields": {**fields, "event": Event.WATCH_OVERDUE, "age_seconds": round(age)}},
        )
        return True

    def _expect(self, request: WatchRequest, result: FetchResult) -> Expectation | None:
        """At a watch's first look: what was learned of its operation's kind, if enough (one
        read of the ledger per watch, never per look; None without a ledger, with a watch's
        own ``expected_duration`` or ``polling``, once the operation is done, or if Firestore
        does not answer)."""
        if (
            self.ledger is None
            or request.expected_duration is not None
            or request.polling != PollingOverride()  # the request chose its own schedule
            or not isinstance(result, Fetched)
            or result.operation.get("done") is True
        ):
            return None
        kind = kinds.of_operation(request.api, result.operation, request.kind, _method(request))
        try:
            summary = self.ledger.summary(kind)
        except Exception as error:  # LedgerUnavailable, or anything else the client raises
            log.warning(
                "the ledger did not answer for the operation's kind (%s); the profile schedules",
                error,
                extra={"fields": {**_watch_fields(request), "event": Event.LEDGER_READ_FAILED}},
            )
            return None
        return summary.expectation(self.settings.learn_min_samples)

    def _learn(
        self,
        request: WatchRequest,
        decision: Finish,
        now: datetime,
        fields: Mapping[str, Any],
        *,
        seen_pending: bool,
    ) -> None:
        """At a finish whose duration is known, add it to the kind's summary: the operation's
        ``createTime`` to ``endTime`` (exact), else, if an earlier look saw it pending, the
        watch's first look to this one (less exact)."""
        if decision.outcome not in (Outcome.SUCCEEDED, Outcome.FAILED) or not decision.operation:
            return
        assert self.ledger is not None
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
        sample = Sample(kind, seconds, now, exact)
        try:
            self.ledger.learn(sample)
        except Exception as error:
            log.warning(
                "the ledger did not take what this operation teaches (%s)",
                error,
                extra={"fields": {**fields, "event": Event.LEDGER_WRITE_FAILED}},
            )

    def _put(self, record: Record, fields: Mapping[str, Any]) -> bool:
        """Write ``record`` to the ledger; False (logged) if Firestore did not take it. Never
        raises: the watch goes on whatever the ledger does."""
        assert self.ledger is not None
        try:
            self.ledger.put(record)
        except Exception as error:  # LedgerUnavailable, or anything else the client raises
            log.warning(
                "the ledger did not take the watch's record (%s); the watch goes on",
                error,
                extra={"fields": {**fields, "event": Event.LEDGER_WRITE_FAILED}},
            )
            return False
        return True

    def _record_finish(
        self,
        request: WatchRequest,
        decision: Finish,
        now: datetime,
        chain: str,
        state: checks.CheckState | None,
        message_id: str | None,
        fields: Mapping[str, Any],
    ) -> None:
        """Record the finish; if Firestore does not take it, a record task writes it later,
        so the ledger never keeps showing a finished watch as pending."""
        seq = state.seq if state is not None else 0
        end = checks.Finish(decision.outcome.value, now, message_id)
        record = _record(
            request, chain, decision.progress, max(seq, 1), now, self.settings.results_topic
        ).finish(end.outcome, now, decision.progress.polls, message_id)
        if self._put(record, fields):
            return
        # The step after the claim (seq + 1) is this chain's next free name.
        task = checks.encode(
            request,
            decision.progress,
            now + timedelta(seconds=RECORD_DELAY),
            chain,
            seq=seq + 2,
            step=Step.RECORD,
            recorded=state.recorded if state is not None else 0,
            finish=end,
        )
        created = False
        with contextlib.suppress(Exception):
            self.queue.create(task)
            created = True
        log.warning(
            "the watch's finish is left to a record task"
            if created
            else "the watch's finish could not be recorded; it is here",
            extra={
                "fields": {
                    **fields,
                    "event": Event.LEDGER_BEHIND,
                    "record_task": created,
                    "record": record.to_json(),
                }
            },
        )

    def _catch_up(self, state: checks.CheckState, retries: int | None) -> None:
        """A record task: write the finish the ledger did not take when the watch finished.
        A failure answers 500 (Cloud Tasks tries again, with backoff), until what may be the
        queue's last attempts: then the record is logged, and the ledger keeps it pending."""
        assert state.finish is not None  # checks.read requires it of a record step
        if self.ledger is None:
            return
        end = state.finish
        record = self._state_record(state, state.seq - 2).finish(
            end.outcome, end.finished, state.progress.polls, end.message_id
        )
        fields = {"watch_id": record.watch_id, "operation": record.operation, "api": record.api}
        try:
            self.ledger.put(record)
        except Exception:
            if retries is None or not self.settings.on_last_attempts(retries):
                raise
            log.error(
                "the ledger did not take a watch's finish before the queue gave up; it is here",
                extra={
                    "fields": {**fields, "event": Event.LEDGER_BEHIND, "record": record.to_json()}
                },
            )

    def _state_record(self, state: checks.CheckState, seq: int) -> Record:
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
            results_topic=str(request.get("notify_topic") or self.settings.results_topic),
        )

    def _park(self, request: WatchRequest, state: checks.CheckState) -> None:
        """Set the watch aside on what may be Cloud Tasks' last try of this check.

        The same look is scheduled again after :data:`PARK_DELAY` (a new task with a fresh
        retry budget: this outlasts an outage of Pub/Sub or of the operations API). If not
        even a task can be created, the watch goes to the parked topic, whose push
        subscription brings it back to the watch function for up to 7 days. If that fails too,
        one ERROR entry holds the whole watch, to replay by hand (README, "Parked watches").
        """
        progress = replace(state.progress, parks=state.progress.parks + 1)
        when = self.clock() + timedelta(seconds=PARK_DELAY)
        task = checks.encode(
            request,
            progress,
            when,
            state.chain,
            seq=state.seq,
            step=state.step,
            reason=state.reason,
            learned=state.learned,
            warned=state.warned,
        )
        fields = {**_watch_fields(request), "polls": progress.polls, "parks": progress.parks}
        with contextlib.suppress(Exception):
            self.queue.create(task)
            log.warning(
                "repeated failures; the same check runs again in %ds",
                PARK_DELAY,
                extra={"fields": {**fields, "event": Event.WATCH_PARKED, "parked_in": "tasks"}},
            )
            return
        if self.settings.parked_topic is not None:
            with contextlib.suppress(Exception):
                self.publish(
                    Notification(
                        topic=self.settings.parked_topic,
                        data=task.body,
                        attributes={PARKED_ATTRIBUTE: PARKED_VALUE, "watch_id": request.watch_id},
                    )
                )
                log.warning(
                    "repeated failures and no task could be created; parked on Pub/Sub",
                    extra={
                        "fields": {**fields, "event": Event.WATCH_PARKED, "parked_in": "pubsub"}
                    },
                )
                return
        log.error(
            "nothing could be written: the watch is abandoned; replay check_body to resume it",
            extra={
                "fields": {
                    **fields,
                    "event": Event.WATCH_ABANDONED,
                    "check_body": task.body.decode(),
                }
            },
        )

    def _resume(
        self, message: Mapping[str, Any], message_id: str, started: datetime
    ) -> Outcome | None:
        """A parked watch is back: look again, as its check would have."""
        try:
            state = checks.decode(decode_pubsub_data(message))
        except InvalidInput as error:
            rejected = InvalidWatchRequest(error.violations)
            return self._reject(rejected, Progress(started=started), default_watch_id=message_id)
        log.info(
            "a parked watch is back",
            extra={"fields": {"event": Event.WATCH_RESUMED, "watch_id": state.request["watch_id"]}},
        )
        # No parking from here: Pub/Sub redelivers (for days) whatever fails.
        return self.on_check(state)

    def _reject(
        self, error: InvalidWatchRequest, progress: Progress, *, default_watch_id: str
    ) -> Outcome:
        error.watch_id = error.watch_id or default_watch_id
        message = notification.invalid_request(
            error,
            started=progress.started,
            now=self.clock(),
            polls=progress.polls,
            results_topic=self.settings.results_topic,
        )
        with _logged_failure("could not publish the notification", {"watch_id": error.watch_id}):
            self.publish(message)
        log.warning(
            "invalid watch request: %s",
            error,
            extra={
                "fields": {
                    "event": Event.REQUEST_INVALID,
                    "watch_id": error.watch_id,
                    "outcome": Outcome.INVALID_REQUEST.value,
                }
            },
        )
        return Outcome.INVALID_REQUEST

    # --- discovery: audit entries of long-running operations ------------------------------------

    def on_audit_message(self, message: Mapping[str, Any]) -> Outcome | None:
        """Handle one audit entry a Logging sink published (README, "Discovery").

        The first entry of an operation starts a watch with a watch id derived from the API and
        the operation, on the fixed :data:`checks.DISCOVERED_CHAIN`: a duplicated entry, or a
        second discovery, meets the same task names (ALREADY_EXISTS), so it stays one watch.
        The last entry goes to :meth:`_on_operation_ended`. Anything else is logged
        (``audit.ignored``) and acknowledged: no notification, nothing to redeliver.

        Args:
            message: the PubsubMessage in its JSON form; its data is the LogEntry JSON.

        Returns:
            The outcome published, or None (a check was scheduled, or nothing was to be done).
        """
        message_id = str(message.get("messageId") or message.get("message_id") or "")
        try:
            entry = audit.parse_entry(decode_pubsub_data(message))
        except InvalidWatchRequest as error:  # no data, or not base64
            entry = audit.Ignored(str(error))
        if isinstance(entry, audit.Ignored):
            self._ignore_audit(entry.reason, message_id)
            return None
        if entry.api not in self.settings.allowed_apis:
            reason = f"{entry.api} is not in ALLOWED_APIS; add it there to watch its operations"
            self._ignore_audit(reason, message_id, operation=entry.operation)
            return None
        if not entry.first:
            return self._on_operation_ended(entry)
        labels = audit.discovery_labels(entry, self.settings.discovery_include_caller)
        found = {"method": entry.method, "name_source": entry.name_source, "message_id": message_id}
        try:
            return self.discover(entry.api, entry.operation, labels, found)
        except InvalidWatchRequest as error:  # pragma: no cover - parse_entry admits none
            self._ignore_audit(str(error), message_id, operation=entry.operation)
            return None

    def discover(
        self, api: str, operation: str, labels: Mapping[str, str], found: Mapping[str, Any]
    ) -> Outcome | None:
        """Start the discovered watch of an operation nobody asked to watch (README, "Discovery").

        Its watch id is derived from the API and the operation, on the fixed
        :data:`checks.DISCOVERED_CHAIN`: whoever discovers it again (a duplicated audit entry,
        the sweep) meets the same task names, so it stays one watch.

        Args:
            api: the operation's API host.
            operation: its full name.
            labels: the watch's labels.
            found: how it was found, for the log line (``method``, ``source``, ...).

        Raises:
            InvalidWatchRequest: the name or labels are not a valid watch (the caller ignores).
        """
        watch_id = audit.discovered_watch_id(api, operation)
        raw = {"operation": operation, "api": api, "watch_id": watch_id, "labels": dict(labels)}
        request = validate_watch_request(
            raw,
            default_watch_id=watch_id,
            allowed_apis=self.settings.allowed_apis,
            allowed_notify_topics=self.settings.allowed_notify_topics,
        )
        log.info(
            "discovered %s (%s)",
            request.operation,
            found.get("method") or found.get("source"),
            extra={"fields": {"event": Event.WATCH_DISCOVERED, **_watch_fields(request), **found}},
        )
        return self._look(request, Progress(started=self.clock()), checks.DISCOVERED_CHAIN)

    def sweep_all(
        self, parents: Iterable[sweeping.Parent], list_page: sweeping.ListPage
    ) -> tuple[list[dict[str, Any]], bool]:
        """Sweep each parent (one failing does not stop the others); what each found or why it
        failed, and whether any failed."""
        results, failed = [], False
        for parent in parents:
            try:
                results.append(self.sweep(parent, list_page).to_json())
            except sweeping.SweepFailed as error:
                log.error(
                    "%s",
                    error,
                    extra={
                        "fields": {
                            "event": Event.SWEEP_FAILED,
                            "reason": str(error),
                            "parent": parent.name,
                            "api": parent.api,
                        }
                    },
                )
                results.append({"parent": parent.name, "api": parent.api, "error": str(error)})
                failed = True
        return results, failed

    def sweep(self, parent: sweeping.Parent, list_page: sweeping.ListPage) -> sweeping.SweepResult:
        """Watch the pending operations of ``parent`` that no discovered watch covers yet.

        See :mod:`opwatch.sweep`. One queue scan finds the operations already watched.

        Raises:
            SweepFailed: the API did not list them; nothing was started from that parent.
        """
        watched = self.registry.discovered_operations
        result = sweeping.sweep(
            parent, list_page=list_page, watched=watched, discover=self.discover
        )
        log.info(
            "swept %s on %s: %d pending, %d already watched, %d watches started",
            parent.name,
            parent.api,
            result.pending,
            result.already_watched,
            result.started,
            extra={"fields": {"event": Event.SWEEP_DONE, **result.to_json()}},
        )
        return result

    def _on_operation_ended(self, entry: audit.AuditEntry) -> Outcome | None:
        """The last audit entry of an operation: bring every pending look of it forward to now.

        The look, not the entry, decides the outcome (and publishes it, once, on its chain):
        the entry is only a hint that now is the time to look. Watches of the operation that
        are not pending (finished, or not started yet) are left to their chains, and so is a
        look in flight. When Cloud Tasks refuses for quota, the watches go on polling: an end
        entry is a hint, never worth a redelivery or a dead letter.
        """
        key = checks.operation_key(entry.api, entry.operation)
        fields = {"operation": entry.operation, "api": entry.api, "method": entry.method}
        try:
            advanced = self.registry.advance(key)
        except LedgerUnavailable as error:
            log.warning(
                "an audit entry says %s ended, but the ledger did not answer (%s); its watches "
                "go on polling",
                entry.operation,
                error,
                extra={"fields": {**fields, "event": Event.AUDIT_LEDGER_UNAVAILABLE}},
            )
            return None
        except QuotaExhausted as error:
            log.warning(
                "an audit entry says %s ended, but Cloud Tasks refused for quota (%s); its "
                "watches go on polling",
                entry.operation,
                error,
                extra={"fields": {**fields, "event": Event.AUDIT_QUOTA_EXHAUSTED}},
            )
            return None
        log.info(
            "an audit entry says %s ended: %d pending look(s) brought forward",
            entry.operation,
            advanced.advanced,
            extra={
                "fields": {
                    **fields,
                    "event": Event.AUDIT_OPERATION_ENDED,
                    "checks_run": advanced.advanced,
                    "in_flight": advanced.in_flight,
                    "already_taken": advanced.taken,
                }
            },
        )
        return None

    def _ignore_audit(self, reason: str, message_id: str, **fields: str) -> None:
        log.info(
            "ignored an audit entry: %s",
            reason,
            extra={
                "fields": {
                    "event": Event.AUDIT_IGNORED,
                    "reason": reason,
                    "message_id": message_id,
                    **fields,
                }
            },
        )


@contextlib.contextmanager
def _logged_failure(what: str, fields: Mapping[str, Any]) -> Iterator[None]:
    """Log a failure with the watch's fields, then let it propagate so the platform retries."""
    try:
        yield
    except Exception:
        log.exception(
            "%s; the platform will deliver this input again",
            what,
            extra={"fields": {**fields, "event": Event.DELIVERY_FAILED}},
        )
        raise


def _earlier(claimed: checks.Attempt | None, attempt: checks.Attempt | None) -> bool:
    """Whether a claim made at dispatch ``claimed`` is an earlier dispatch of the look now at
    ``attempt`` (an earlier retry, or the step before it was parked). Unknown on either side
    (a parked watch back over Pub/Sub, or a claim written before claims said their attempt)
    counts as ours, as it always did."""
    return claimed is None or attempt is None or claimed < attempt


def _detection_lag(operation: Mapping[str, Any] | None, now: datetime) -> float | None:
    """Seconds from the operation's own ``metadata.endTime`` to now, when it says one."""
    metadata = operation.get("metadata") if operation else None
    ended = parse_rfc3339(metadata.get("endTime")) if isinstance(metadata, dict) else None
    return round(max(0.0, (now - ended).total_seconds()), 3) if ended else None


def _record(
    request: WatchRequest,
    chain: str,
    progress: Progress,
    seq: int,
    now: datetime,
    results_topic: str,
    *,
    next_look: datetime | None = None,
) -> Record:
    """The ledger's record of ``request``'s chain at step ``seq``."""
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
        results_topic=request.notify_topic or results_topic,
        next_look=next_look,
    )


def _method(request: WatchRequest) -> str | None:
    """The audit method that announced a discovered watch's operation (its ``method`` label;
    a sweep's is no method)."""
    method = request.labels.get("method")
    return method if method and method != "sweep" else None


def _watch_fields(request: WatchRequest) -> dict[str, Any]:
    return {"watch_id": request.watch_id, "operation": request.operation, "api": request.api}
