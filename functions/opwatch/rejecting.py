"""Answering a watch request that breaks the contract: one INVALID_REQUEST notification, and
the input acknowledged (retrying cannot fix it)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from opwatch import notification
from opwatch.core import Outcome
from opwatch.errors import InvalidWatchRequest
from opwatch.logs import Event
from opwatch.ports import Clock, Publish
from opwatch.watchlog import WatchLog


@dataclass(frozen=True)
class Rejecting:
    publish: Publish
    clock: Clock
    results_topic: str

    def reject(
        self,
        error: InvalidWatchRequest,
        *,
        started: datetime,
        polls: int = 0,
        default_watch_id: str,
    ) -> Outcome:
        """Tell the subscriber why the request is not a watch (under its own watch id when it
        could be read, else ``default_watch_id``).

        Raises:
            whatever publishing raises: the platform delivers the input again.
        """
        error.watch_id = error.watch_id or default_watch_id
        message = notification.invalid_request(
            error,
            started=started,
            now=self.clock(),
            polls=polls,
            results_topic=self.results_topic,
        )
        log = WatchLog({"watch_id": error.watch_id})
        with log.failing("publish the notification"):
            self.publish(message)
        log.event(
            logging.WARNING,
            Event.REQUEST_INVALID,
            reason=str(error),
            outcome=Outcome.INVALID_REQUEST.value,
        )
        return Outcome.INVALID_REQUEST
