"""What opwatch's functions do with their input: each input handed to its use case.

- a message on the watch topic: a watch request (:mod:`opwatch.watching`), a cancel request
  (:mod:`opwatch.cancelling`), a parked watch coming back (:mod:`opwatch.parking`), or bad input
  (:mod:`opwatch.rejecting`);
- a check task: the look it holds, its cancel, or a finish the ledger still has to take;
- an audit entry or a sweep (:mod:`opwatch.discovery`).

Bad input is answered with an INVALID_REQUEST notification and acknowledged; a failure to
schedule or to publish propagates, so the platform delivers the input again; on what may be
Cloud Tasks' last attempt of a check, a failure parks the watch instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from opwatch import checks
from opwatch.checks import Step
from opwatch.contracts import CancelRequest, parse_watch_message, validate_watch_request
from opwatch.core import Outcome
from opwatch.envelope import PushedMessage
from opwatch.errors import InvalidInput, InvalidWatchRequest
from opwatch.learned import DEFAULT_MIN_SAMPLES
from opwatch.ledger import Ledger
from opwatch.logs import Event
from opwatch.ports import Clock, Fetch, Publish, TaskQueue, utcnow
from opwatch.recording import Recorder
from opwatch.settings import Settings
from opwatch.watching import Watching
from opwatch.watchlog import WatchLog

if TYPE_CHECKING:  # the use cases off the look path (discovery, the registry, cancelling,
    # parking, rejecting) are imported on first use: most instances never need them, and a
    # cold start should not pay for them.
    from opwatch import sweep as sweeping
    from opwatch.cancelling import Cancelling
    from opwatch.discovery import Discovery
    from opwatch.parking import Parking
    from opwatch.registry import CancelResult, Registry
    from opwatch.rejecting import Rejecting


@dataclass(frozen=True)
class Handlers:
    """The functions' behaviour, over injected ports (fakes in the tests, the real adapters in
    ``main.py``). Each use case is made on first use, with only the ports it uses."""

    settings: Settings
    fetch: Fetch
    queue: TaskQueue
    publish: Publish
    clock: Clock = utcnow
    ledger: Ledger | None = None

    @cached_property
    def recorder(self) -> Recorder | None:
        if self.ledger is None:
            return None
        config = self.settings.ledger
        min_samples = config.learn_min_samples if config is not None else DEFAULT_MIN_SAMPLES
        return Recorder(
            self.ledger, self.queue, self.clock, self.settings.watch.results_topic, min_samples
        )

    @cached_property
    def registry(self) -> Registry:
        from opwatch.registry import Registry

        return Registry(self.queue, self.clock, self.ledger)

    @cached_property
    def watching(self) -> Watching:
        return Watching(
            self.settings.watch, self.fetch, self.queue, self.publish, self.clock, self.recorder
        )

    @cached_property
    def parking(self) -> Parking:
        from opwatch.parking import Parking

        return Parking(self.queue, self.publish, self.clock, self.settings.parked_topic)

    @cached_property
    def rejecting(self) -> Rejecting:
        from opwatch.rejecting import Rejecting

        return Rejecting(self.publish, self.clock, self.settings.watch.results_topic)

    @cached_property
    def cancelling(self) -> Cancelling:
        from opwatch.cancelling import Cancelling

        return Cancelling(self.registry, self.watching)

    @cached_property
    def discovery(self) -> Discovery:
        from opwatch.discovery import Discovery

        settings = self.settings
        return Discovery(
            self.watching, self.registry, settings.allowlists, settings.discovery_include_caller
        )

    def on_audit_message(self, message: PushedMessage) -> Outcome | None:
        """An audit entry a Logging sink published (:meth:`Discovery.on_entry`)."""
        return self.discovery.on_entry(message)

    def sweep_all(
        self, parents: Iterable[sweeping.Parent], list_page: sweeping.ListPage
    ) -> tuple[list[dict[str, Any]], bool]:
        """Sweep each parent a scheduler named (:meth:`Discovery.sweep_all`)."""
        return self.discovery.sweep_all(parents, list_page)

    def sweep(self, parent: sweeping.Parent, list_page: sweeping.ListPage) -> sweeping.SweepResult:
        """Sweep one parent (:meth:`Discovery.sweep`)."""
        return self.discovery.sweep(parent, list_page)

    def cancel(self, request: CancelRequest) -> CancelResult:
        """Cancel a watch (:meth:`Cancelling.cancel`)."""
        return self.cancelling.cancel(request)

    def on_watch_message(self, message: PushedMessage) -> Outcome | None:
        """A message on the watch topic: a watch request, a cancel request, or a parked watch.

        Returns:
            The outcome published, or None when a check was scheduled instead.
        """
        started = self.clock()
        if message.is_parked:
            return self._resume(message, started)
        allowed = self.settings.allowlists
        try:
            request = parse_watch_message(
                message.payload(),
                default_watch_id=message.message_id,
                allowed_apis=allowed.apis,
                allowed_notify_topics=allowed.notify_topics,
            )
        except InvalidWatchRequest as error:
            return self.rejecting.reject(
                error, started=started, default_watch_id=message.message_id
            )
        if isinstance(request, CancelRequest):
            self.cancelling.cancel(request)
            return None
        WatchLog.of(request).event(logging.INFO, Event.WATCH_STARTED)
        chain = checks.chain_for_message(message.message_id)
        return self.watching.first_look(request, started, chain)

    def on_check(self, state: checks.CheckState, *, retries: int | None = None) -> Outcome | None:
        """One check task whose body was decoded with :func:`checks.decode`.

        Args:
            state: the decoded body.
            retries: how often Cloud Tasks already retried this task (its
                ``X-CloudTasks-TaskRetryCount``); None when the check did not come from Cloud
                Tasks (a parked watch back over Pub/Sub). On what may be the queue's last
                attempts, a failure parks the watch rather than letting Cloud Tasks drop it;
                a finishing look's claim records it, so a later attempt knows its own claim.
        """
        if state.step is Step.FINISHED:
            # The watch finished a while ago; this task only held the name of its next step.
            return None
        last_attempt = retries is not None and self.settings.tasks.on_last_attempts(retries)
        if state.step is Step.RECORD:
            if self.recorder is not None:
                self.recorder.catch_up(state, last_attempt=last_attempt)
            return None
        allowed = self.settings.allowlists
        try:
            request = validate_watch_request(
                state.request,
                default_watch_id=state.watch_id,
                allowed_apis=allowed.apis,
                allowed_notify_topics=allowed.notify_topics,
            )
        except InvalidWatchRequest as error:
            # Valid when scheduled, so the allowlists changed since: tell the subscriber.
            outcome = self.rejecting.reject(
                error,
                started=state.progress.started,
                polls=state.progress.polls,
                default_watch_id=state.watch_id,
            )
            if self.recorder is not None:
                self.recorder.rejected(state, outcome)
            return outcome
        try:
            if state.step is Step.CANCEL:
                return self.cancelling.carry_out(request, state)
            attempt = (state.progress.parks, retries) if retries is not None else None
            return self.watching.look_again(request, state, attempt)
        except Exception:
            if not last_attempt:
                raise
        self.parking.park(request, state)
        return None

    def _resume(self, message: PushedMessage, started: datetime) -> Outcome | None:
        """A parked watch is back: look again, as its check would have."""
        try:
            state = checks.decode(message.payload())
        except InvalidInput as error:
            rejected = InvalidWatchRequest(error.violations)
            return self.rejecting.reject(
                rejected, started=started, default_watch_id=message.message_id
            )
        WatchLog({"watch_id": state.request["watch_id"]}).event(logging.INFO, Event.WATCH_RESUMED)
        # No parking from here: Pub/Sub redelivers (for days) whatever fails.
        return self.on_check(state)
