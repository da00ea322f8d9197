"""Structured logs: one JSON object per line, in the shape Cloud Logging reads.

``severity`` and ``message`` become the entry's severity and summary; every other key lands in
``jsonPayload``, so ``jsonPayload.watch_id="..."`` finds a whole watch. Lines are written by
:meth:`opwatch.watchlog.WatchLog.event`, which hands them over as ``extra={"fields": ...}``.

Every line opwatch writes carries a stable ``event`` (:class:`Event`) and the fields that
``schemas/log-entry.json`` gives that event (docs/logs.md): metrics, alerts, the soak and the tests
select lines by them. ``message`` is only a summary of those fields for a person reading
(:data:`SUMMARIES`): it holds nothing a field does not, so nobody needs to parse it.
"""

from __future__ import annotations

import enum
import json
import logging
import sys
from collections.abc import Mapping
from typing import Any, Final

LOGGER_NAME: Final = "opwatch"


class Event(enum.StrEnum):
    """What a log line reports: the value of its ``event`` field (``jsonPayload.event``)."""

    WATCH_STARTED = "watch.started"  # a valid watch request was accepted; its first look follows
    CHECK_PENDING = "check.pending"  # looked, not done: the next check is scheduled
    CHECK_TRANSIENT_ERROR = "check.transient_error"  # the look failed (http_status); again later
    CHECK_DUPLICATE = "check.duplicate"  # the next check already existed: a redelivery, one chain
    CHECK_REFUSED = "check.refused"  # a call to on_check that opwatch's queue did not make
    CHECK_SUPERSEDED = "check.superseded"  # the watch was cancelled while this check ran
    WATCH_FINISHED = "watch.finished"  # the notification was published (outcome)
    WATCH_OVERDUE = "watch.overdue"  # the one overdue message was published (age_seconds)
    REQUEST_INVALID = "request.invalid"  # answered with an INVALID_REQUEST notification
    DELIVERY_FAILED = "delivery.failed"  # scheduling or publishing failed: the platform retries
    WATCH_PARKED = "watch.parked"  # repeated failures: the watch waits out the outage
    WATCH_RESUMED = "watch.resumed"  # a parked watch came back and goes on
    WATCH_ABANDONED = "watch.abandoned"  # nothing could be written: the whole watch is here
    WATCH_CANCEL_REQUESTED = "watch.cancel_requested"  # a cancel took the watch's next steps
    AUDIT_IGNORED = "audit.ignored"  # an audit entry opwatch does not act on (reason); acked
    WATCH_DISCOVERED = "watch.discovered"  # an audit entry started a watch (or met its chain)
    AUDIT_OPERATION_ENDED = "audit.operation_ended"  # an audit entry said an operation ended
    AUDIT_QUOTA_EXHAUSTED = "audit.quota_exhausted"  # Cloud Tasks refused the fast path: polling
    SWEEP_DONE = "sweep.done"  # a parent's operations were listed; unwatched pending ones watched
    SWEEP_FAILED = "sweep.failed"  # a sweep was refused (bad parents) or a parent not listed
    LEDGER_WRITE_FAILED = "ledger.write_failed"  # Firestore did not take a record; watch goes on
    LEDGER_READ_FAILED = "ledger.read_failed"  # no learned kind at a start: the profile schedules
    LEDGER_BEHIND = "ledger.behind"  # a finish is left to a record task (or, failing, this entry)
    AUDIT_LEDGER_UNAVAILABLE = "audit.ledger_unavailable"  # no query for the fast path: polling


# The ``message`` of each event's line, formatted from the line's fields (``str.format_map``;
# a field a line lacks shows as "?" instead of failing the call that logs it).
SUMMARIES: Final[Mapping[Event, str]] = {
    Event.WATCH_STARTED: "watching {operation}",
    Event.CHECK_PENDING: "not done yet; next check in {delay_seconds}s",
    Event.CHECK_TRANSIENT_ERROR: "the look failed (HTTP {http_status}); again in {delay_seconds}s",
    Event.CHECK_DUPLICATE: "the next check existed already: this input was delivered again",
    Event.CHECK_REFUSED: "refused a check: {reason}",
    Event.CHECK_SUPERSEDED: "{holder} holds the watch's next step; this check publishes nothing",
    Event.WATCH_FINISHED: "watch finished: {outcome}",
    Event.WATCH_OVERDUE: "the operation is overdue: {age_seconds}s old",
    Event.REQUEST_INVALID: "invalid watch request: {reason}",
    Event.DELIVERY_FAILED: "could not {action} ({error})",
    Event.WATCH_PARKED: "repeated failures: the watch is parked in {parked_in} (park {parks})",
    Event.WATCH_RESUMED: "a parked watch is back",
    Event.WATCH_ABANDONED: "nothing could be written: replay check_body to resume the watch",
    Event.WATCH_CANCEL_REQUESTED: (
        "cancel of {watch_id}: {cancelled} in flight cancelled, {already_finished} already finished"
    ),
    Event.AUDIT_IGNORED: "ignored an audit entry: {reason}",
    Event.WATCH_DISCOVERED: "discovered {operation}",
    Event.AUDIT_OPERATION_ENDED: (
        "an audit entry says {operation} ended: {checks_run} pending look(s) brought forward"
    ),
    Event.AUDIT_QUOTA_EXHAUSTED: (
        "an audit entry says {operation} ended, but Cloud Tasks refused ({error}); its watches "
        "go on polling"
    ),
    Event.SWEEP_DONE: (
        "swept {parent} on {api}: {pending} pending, {already_watched} already watched, "
        "{started} watches started"
    ),
    Event.SWEEP_FAILED: "a sweep failed: {reason}",
    Event.LEDGER_WRITE_FAILED: (
        "the ledger did not take the {document} ({error}); the watch goes on"
    ),
    Event.LEDGER_READ_FAILED: (
        "the ledger did not answer for the operation's kind ({error}); the profile schedules"
    ),
    Event.LEDGER_BEHIND: "the ledger does not hold the watch's finish; its record is here",
    Event.AUDIT_LEDGER_UNAVAILABLE: (
        "an audit entry says {operation} ended, but the ledger did not answer ({error}); its "
        "watches go on polling"
    ),
}


class _Line(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def summary(event: Event, fields: Mapping[str, Any]) -> str:
    """The ``message`` of a line saying ``event`` with ``fields``."""
    return SUMMARIES[event].format_map(_Line(fields))


def error_field(error: BaseException) -> str:
    """An ``error`` field: the exception's type and what it says (some say nothing)."""
    return f"{type(error).__name__}: {error}"


class JsonFormatter(logging.Formatter):
    """Formats a record as a Cloud Logging structured entry."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(level: str) -> logging.Logger:
    """Send opwatch's logs to stdout as JSON lines (idempotent).

    The entries carry none of what a record gathers by default about its caller, thread and
    process, so that is switched off (the logging HOWTO's "Optimization" section): one INFO
    line per check is on the hot path.
    """
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # no sys._getframe() per record
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    if not any(getattr(handler, "opwatch", False) for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
        handler.opwatch = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.propagate = False
    return logger
