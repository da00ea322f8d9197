"""The log contract, checked on every line a test makes opwatch write.

Each line is formatted exactly as the functions print it (:class:`opwatch.logs.JsonFormatter`)
and validated against ``schemas/log-entry.json``: the event's fields, each of its type, and no
other (docs/logs.md). A line is never rejected where it is written, since a use case may
suppress what its logging raises; what broke is reported when the test ends.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from opwatch.logs import JsonFormatter

SCHEMAS = Path(__file__).resolve().parents[1] / "functions" / "opwatch" / "schemas"


def _schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / name).read_text())
    return loaded


LOG_ENTRY = _schema("log-entry.json")
VALIDATOR = Draft202012Validator(
    LOG_ENTRY,
    registry=Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema))
        for schema in (LOG_ENTRY, _schema("watch-record.json"))
    ),
)


def violations(entry: dict[str, Any]) -> list[str]:
    """How ``entry`` (one printed line, parsed) breaks the schema; empty if it does not."""
    return [
        f"{entry.get('event')!r} line: {error.message} (at /{'/'.join(map(str, error.path))})"
        for error in VALIDATOR.iter_errors(entry)
    ]


def printed_violations(output: str) -> list[str]:
    """How the JSON lines of a function's output break the schema (other lines are the
    server's own)."""
    return [
        problem
        for line in output.splitlines()
        if line.startswith("{")
        for problem in violations(json.loads(line))
    ]


class LogContract(logging.Handler):
    """Collects what the lines written to it break of the log contract."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.broken: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.broken += violations(json.loads(self.format(record)))
