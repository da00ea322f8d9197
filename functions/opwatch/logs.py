"""Structured logs: one JSON object per line, in the shape Cloud Logging reads.

``severity`` and ``message`` become the entry's severity and summary; every other key lands in
``jsonPayload``, so ``jsonPayload.watch_id="..."`` finds a whole watch. Pass fields with
``logger.info("...", extra={"fields": {...}})``.

Every line opwatch writes about a watch carries a stable ``event`` (:class:`Event`): metrics,
alerts, the soak and the tests select lines by it, never by the wording of ``message``.
"""

from __future__ import annotations

import enum
import json
import logging
import sys
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
