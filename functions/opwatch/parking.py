"""Parking a watch on what may be Cloud Tasks' last try of its check, so that an outage longer
than the queue's retries does not drop it (docs/how-it-works.md, "Outages")."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Final

from opwatch import checks
from opwatch.checks import CheckState
from opwatch.contracts import WatchRequest
from opwatch.envelope import PARKED_ATTRIBUTE, PARKED_VALUE
from opwatch.logs import Event
from opwatch.notification import Notification
from opwatch.ports import Clock, Publish, TaskQueue
from opwatch.watchlog import WatchLog

# A parked check waits this long before it runs again, with a fresh retry budget.
PARK_DELAY: Final = 900


@dataclass(frozen=True)
class Parking:
    """Sets a watch aside: a later task, else the parked topic, else one log entry."""

    queue: TaskQueue
    publish: Publish
    clock: Clock
    parked_topic: str | None = None

    def park(self, request: WatchRequest, state: CheckState) -> None:
        """Set the watch aside on what may be Cloud Tasks' last try of this check.

        The same look is scheduled again after :data:`PARK_DELAY` (a new task with a fresh
        retry budget: this outlasts an outage of Pub/Sub or of the operations API). If not
        even a task can be created, the watch goes to the parked topic, whose push
        subscription brings it back to the watch function for up to 7 days. If that fails too,
        one ERROR entry holds the whole watch, to replay by hand (docs/how-it-works.md, "Outages").
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
        log = WatchLog.of(request).bind(polls=progress.polls, parks=progress.parks)
        with contextlib.suppress(Exception):
            self.queue.create(task)
            log.event(logging.WARNING, Event.WATCH_PARKED, parked_in="tasks")
            return
        if self.parked_topic is not None:
            with contextlib.suppress(Exception):
                self.publish(
                    Notification(
                        topic=self.parked_topic,
                        data=task.body,
                        attributes={PARKED_ATTRIBUTE: PARKED_VALUE, "watch_id": request.watch_id},
                    )
                )
                log.event(logging.WARNING, Event.WATCH_PARKED, parked_in="pubsub")
                return
        log.event(logging.ERROR, Event.WATCH_ABANDONED, check_body=task.body.decode())
