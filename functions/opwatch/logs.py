"""Structured logs: one JSON object per line, in the shape Cloud Logging reads.

``severity`` and ``message`` become the entry's severity and summary; every other key lands in
``jsonPayload``, so ``jsonPayload.watch_id="..."`` finds a whole watch. Pass fields with
``logger.info("...", extra={"fields": {...}})``.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, Final

LOGGER_NAME: Final = "opwatch"


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
    """Send opwatch's logs to stdout as JSON lines (idempotent)."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    if not any(getattr(handler, "opwatch", False) for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
        handler.opwatch = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.propagate = False
    return logger
