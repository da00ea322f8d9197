"""One watch message, or one check task, carried out end to end over three injected ports.

:class:`Notifier` is what both Cloud Functions call. It parses, fetches once, lets the pure core
decide, and either publishes the terminal notification or schedules the next check. The ports
(fetch, schedule, publish) and the clock are plain callables, so tests pass fakes and
``main.py`` passes the real adapters.

Failure rules, which keep "nothing lost" true:
- bad input (a watch request breaking the contract) is answered with an INVALID_REQUEST
  notification and acknowledged: retrying cannot fix it;
- a failure to schedule or to publish propagates, so the platform (Pub/Sub or Cloud Tasks)
  delivers the same input again; task ids are deterministic, so a redelivery never starts a
  second polling chain.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from opwatch import checks, notification
from opwatch.contracts import (
    WatchRequest,
    decode_pubsub_data,
    parse_watch_request,
    validate_watch_request,
)
from opwatch.core import CheckAgain, FetchFailed, FetchResult, Outcome, Progress, decide
from opwatch.errors import InvalidWatchRequest
from opwatch.logs import LOGGER_NAME, Event
from opwatch.notification import Notification
from opwatch.settings import Settings

log = logging.getLogger(LOGGER_NAME)


class Fetch(Protocol):
    """Fetches the watched operation once; never raises for an API or network error."""

    def __call__(self, request: WatchRequest) -> FetchResult: ...


class Schedule(Protocol):
    """Creates the check task; treats ALREADY_EXISTS as success; raises on other failures."""

    def __call__(self, task: checks.CheckTask) -> None: ...


class Publish(Protocol):
    """Publishes the notification and waits for the server's acknowledgement; raises on failure."""

    def __call__(self, message: Notification) -> None: ...


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Notifier:
    """The behaviour of both functions, over injected ports."""

    settings: Settings
    fetch: Fetch
    schedule: Schedule
    publish: Publish
    clock: Callable[[], datetime] = utcnow

    def on_watch_message(self, message: Mapping[str, Any]) -> Outcome | None:
        """Handle one Pub/Sub message carrying a watch request (the PubsubMessage JSON).

        Returns:
            The outcome published, or None when a check was scheduled instead.
        """
        started = self.clock()
        message_id = str(message.get("messageId") or message.get("message_id") or "")
        try:
            request = parse_watch_request(
                decode_pubsub_data(message),
                default_watch_id=message_id,
                allowed_apis=self.settings.allowed_apis,
                allowed_notify_topics=self.settings.allowed_notify_topics,
            )
        except InvalidWatchRequest as error:
            return self._reject(error, Progress(started=started), default_watch_id=message_id)
        log.info(
            "watching %s",
            request.operation,
            extra={"fields": {"event": Event.WATCH_STARTED, **_watch_fields(request)}},
        )
        return self._look(request, Progress(started=started))

    def on_check(self, state: checks.CheckState) -> Outcome | None:
        """Handle one check task whose body was decoded with :func:`checks.decode`."""
        watch_id = str(state.request["watch_id"])
        try:
            request = validate_watch_request(
                state.request,
                default_watch_id=watch_id,
                allowed_apis=self.settings.allowed_apis,
                allowed_notify_topics=self.settings.allowed_notify_topics,
            )
        except InvalidWatchRequest as error:
            # Valid when scheduled, so the allowlists changed since: tell the subscriber.
            return self._reject(error, state.progress, default_watch_id=watch_id)
        return self._look(request, state.progress)

    def _look(self, request: WatchRequest, progress: Progress) -> Outcome | None:
        result = self.fetch(request)
        now = self.clock()
        decision = decide(request, progress, result, now)
        fields: dict[str, Any] = {**_watch_fields(request), "polls": decision.progress.polls}
        event = Event.CHECK_PENDING
        if isinstance(result, FetchFailed):
            event = Event.CHECK_TRANSIENT_ERROR
            fields["http_status"] = result.http_status
            fields["fetch_error"] = result.error
        if isinstance(decision, CheckAgain):
            when = now + timedelta(seconds=decision.delay)
            with _logged_failure("could not schedule the next check", fields):
                self.schedule(checks.encode(request, decision.progress, when))
            log.info(
                "not done yet; next check in %.1fs",
                decision.delay,
                extra={
                    "fields": {**fields, "event": event, "delay_seconds": round(decision.delay, 3)}
                },
            )
            return None
        message = notification.finished(
            request, decision, now=now, results_topic=self.settings.results_topic
        )
        with _logged_failure("could not publish the notification", fields):
            self.publish(message)
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


def _watch_fields(request: WatchRequest) -> dict[str, Any]:
    return {"watch_id": request.watch_id, "operation": request.operation, "api": request.api}
