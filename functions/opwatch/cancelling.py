"""Cancelling a watch: its chains' next steps taken by cancel tasks (:meth:`Registry.cancel`),
and each cancel task, when it runs, publishing the watch's one CANCELLED notification."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from google.rpc import code_pb2

from opwatch.checks import CheckState
from opwatch.contracts import CancelRequest, WatchRequest
from opwatch.core import Finish, Outcome
from opwatch.logs import Event
from opwatch.registry import CancelResult, Registry
from opwatch.status import make_status
from opwatch.watching import Watching
from opwatch.watchlog import WatchLog


@dataclass(frozen=True)
class Cancelling:
    registry: Registry
    watching: Watching

    def cancel(self, request: CancelRequest) -> CancelResult:
        """Cancel a watch (see :meth:`Registry.cancel`); its CANCELLED notification follows."""
        result = self.registry.cancel(request.watch_id, request.reason)
        WatchLog({"watch_id": request.watch_id}).event(
            logging.INFO,
            Event.WATCH_CANCEL_REQUESTED,
            cancelled=len(result.cancelled),
            already_finished=result.already_finished,
        )
        return result

    def carry_out(self, request: WatchRequest, state: CheckState) -> Outcome:
        """A cancel holds this step: tell the subscriber, without looking at the operation."""
        reason = f": {state.reason}" if state.reason else ""
        error = make_status(code_pb2.CANCELLED, f"the watch was cancelled{reason}")
        finish = Finish(Outcome.CANCELLED, None, error, state.progress)
        now = self.watching.clock()
        log = WatchLog.of(request).bind(polls=state.progress.polls)
        return self.watching.finish(request, finish, now, log, state.chain, state)
