"""Structured logs: one JSON object per line, the shape Cloud Logging reads."""

from __future__ import annotations

import json
import logging
import sys

from opwatch.logs import JsonFormatter


def record(**extra: object) -> logging.LogRecord:
    entry = logging.LogRecord(
        "opwatch", logging.WARNING, __file__, 1, "looked %d times", (3,), None
    )
    entry.__dict__.update(extra)
    return entry


def test_fields_become_top_level_keys() -> None:
    line = JsonFormatter().format(record(fields={"watch_id": "w-1", "polls": 3}))
    assert json.loads(line) == {
        "severity": "WARNING",
        "message": "looked 3 times",
        "logger": "opwatch",
        "watch_id": "w-1",
        "polls": 3,
    }


def test_malformed_fields_are_ignored_not_fatal() -> None:
    assert "fields" not in json.loads(JsonFormatter().format(record(fields="oops")))


def test_exceptions_are_kept_in_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        entry = logging.LogRecord(
            "opwatch", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    line = JsonFormatter().format(entry)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["stack_trace"]
