"""Discovery: watching operations nobody registered, found in audit entries or by a sweep
(docs/discovery.md).

The first audit entry of an operation, or a sweep that lists it pending, starts a watch whose
id is derived from the API and the operation, on the fixed :data:`checks.DISCOVERED_CHAIN`:
whoever discovers it again meets the same task names (ALREADY_EXISTS), so it stays one watch.
The last entry of an operation brings its pending looks forward. Anything else is logged
(``audit.ignored``) and acknowledged: no notification, nothing to redeliver.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from opwatch import audit, checks
from opwatch import sweep as sweeping
from opwatch.contracts import discovered_request
from opwatch.core import Outcome
from opwatch.envelope import PushedMessage
from opwatch.errors import InvalidWatchRequest, LedgerUnavailable, QuotaExhausted
from opwatch.logs import Event, error_field
from opwatch.registry import Registry
from opwatch.settings import Allowlists
from opwatch.watching import Watching
from opwatch.watchlog import WatchLog


@dataclass(frozen=True)
class Discovery:
    watching: Watching
    registry: Registry
    allowlists: Allowlists
    include_caller: bool = False  # label discovered watches with the caller's email

    def on_entry(self, message: PushedMessage) -> Outcome | None:
        """Handle one audit entry a Logging sink published (its data is the LogEntry JSON).

        Returns:
            The outcome published, or None (a check was scheduled, or nothing was to be done).
        """
        try:
            entry = audit.parse_entry(message.payload())
        except InvalidWatchRequest as error:  # no data, or not base64
            entry = audit.Ignored(str(error))
        if isinstance(entry, audit.Ignored):
            _ignore(entry.reason, message.message_id)
            return None
        if entry.api not in self.allowlists.apis:
            reason = f"{entry.api} is not in ALLOWED_APIS; add it there to watch its operations"
            _ignore(reason, message.message_id, operation=entry.operation)
            return None
        if not entry.first:
            return self._operation_ended(entry)
        labels = audit.discovery_labels(entry, self.include_caller)
        found = {
            "source": "audit",
            "method": entry.method,
            "name_source": entry.name_source,
            "message_id": message.message_id,
        }
        try:
            return self.discover(entry.api, entry.operation, labels, found)
        except InvalidWatchRequest as error:  # pragma: no cover - parse_entry admits none
            # Unreachable as the line above says, so no mutant of it can be killed.
            _ignore(str(error), message.message_id, operation=entry.operation)  # pragma: no mutate
            return None

    def discover(
        self, api: str, operation: str, labels: Mapping[str, str], found: Mapping[str, Any]
    ) -> Outcome | None:
        """Start the discovered watch of an operation nobody asked to watch.

        Args:
            api: the operation's API host.
            operation: its full name.
            labels: the watch's labels.
            found: how it was found, for the log line (``source``, ``method``, ...: docs/logs.md).

        Raises:
            InvalidWatchRequest: the name or labels are not a valid watch (the caller ignores).
        """
        request = discovered_request(
            operation,
            api=api,
            watch_id=audit.discovered_watch_id(api, operation),
            labels=labels,
            allowed_apis=self.allowlists.apis,
        )
        WatchLog.of(request).event(logging.INFO, Event.WATCH_DISCOVERED, **found)
        clock = self.watching.clock
        return self.watching.first_look(request, clock(), checks.DISCOVERED_CHAIN)

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
                WatchLog().event(
                    logging.ERROR,
                    Event.SWEEP_FAILED,
                    reason=str(error),
                    parent=parent.name,
                    api=parent.api,
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
        WatchLog().event(logging.INFO, Event.SWEEP_DONE, **result.to_json())
        return result

    def _operation_ended(self, entry: audit.AuditEntry) -> Outcome | None:
        """The last audit entry of an operation: bring every pending look of it forward to now.

        The look, not the entry, decides the outcome (and publishes it, once, on its chain):
        the entry is only a hint that now is the time to look. Watches of the operation that
        are not pending (finished, or not started yet) are left to their chains, and so is a
        look in flight. When Cloud Tasks refuses for quota, the watches go on polling: an end
        entry is a hint, never worth a redelivery or a dead letter.
        """
        key = checks.operation_key(entry.api, entry.operation)
        log = WatchLog({"operation": entry.operation, "api": entry.api, "method": entry.method})
        try:
            advanced = self.registry.advance(key)
        except LedgerUnavailable as error:
            log.event(logging.WARNING, Event.AUDIT_LEDGER_UNAVAILABLE, error=error_field(error))
            return None
        except QuotaExhausted as error:
            log.event(logging.WARNING, Event.AUDIT_QUOTA_EXHAUSTED, error=error_field(error))
            return None
        log.event(
            logging.INFO,
            Event.AUDIT_OPERATION_ENDED,
            checks_run=advanced.advanced,
            in_flight=advanced.in_flight,
            already_taken=advanced.taken,
        )
        return None


def _ignore(reason: str, message_id: str, **fields: str) -> None:
    WatchLog().event(
        logging.INFO, Event.AUDIT_IGNORED, reason=reason, message_id=message_id, **fields
    )
