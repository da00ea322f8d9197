"""The log contract: docs/logs.md, schemas/log-entry.json and opwatch.logs say the same thing.

What opwatch writes is checked against the schema by every test (tests/log_contract.py); here,
that the schema is what the docs promise, and that a summary only shows fields a line has.
"""

from __future__ import annotations

import logging
import re
import string
from typing import Any

import pytest

from opwatch.logs import SUMMARIES, Event, summary
from tests.docs import section
from tests.log_contract import LOG_ENTRY, LogContract, violations

ENVELOPE = {"severity", "message", "logger", "event", "stack_trace"}
_ROW = re.compile(r"\| `([a-z_.]+)` \| ([A-Z, ]+) \| (.*?) \| [^|]+ \|")
_FIELD = re.compile(r"`([a-z_]+)`(\??)")


def documented_events() -> dict[str, tuple[set[str], set[str], set[str]]]:
    """docs/logs.md's events table: event → (severities, required fields, optional fields)."""
    events = {}
    for line in section("Events").splitlines():
        row = _ROW.fullmatch(line)
        if row:
            fields = _FIELD.findall(row.group(3))
            events[row.group(1)] = (
                {s.strip() for s in row.group(2).split(",")},
                {name for name, optional in fields if not optional},
                {name for name, optional in fields if optional},
            )
    return events


def schema_events() -> dict[str, tuple[set[str], set[str], set[str]]]:
    """The schema's branches: event → (severities, required fields, optional fields)."""
    events = {}
    for branch in LOG_ENTRY["allOf"]:
        then = branch["then"]
        severity = then["properties"]["severity"]
        required = set(then["required"])
        allowed = set(then["propertyNames"]["enum"]) - ENVELOPE
        events[branch["if"]["properties"]["event"]["const"]] = (
            set(severity.get("enum", [severity.get("const")])),
            required,
            allowed - required,
        )
    return events


def test_every_event_is_in_the_schema_the_docs_and_the_summaries() -> None:
    names = {event.value for event in Event}
    assert set(LOG_ENTRY["properties"]["event"]["enum"]) == names
    assert set(schema_events()) == names
    assert set(documented_events()) == names
    assert set(SUMMARIES) == set(Event)


def test_the_docs_give_each_event_the_schemas_severities_and_fields() -> None:
    documented, schema = documented_events(), schema_events()
    for event in sorted(schema):
        # stack_trace may come with any line that logs an exception; the docs name it once.
        severities, required, optional = documented[event]
        assert (severities, required, optional - {"stack_trace"}) == (
            schema[event][0],
            schema[event][1],
            schema[event][2] - {"stack_trace"},
        ), event


def test_the_fields_table_describes_every_field_of_the_schema() -> None:
    described = set()
    for line in section("Fields").splitlines():
        if line.startswith("| `"):
            described |= {name for name, _ in _FIELD.findall(line.split(" | ")[0])}
    assert described == set(LOG_ENTRY["properties"]) - (ENVELOPE - {"stack_trace"})


@pytest.mark.parametrize("event", list(Event))
def test_a_summary_only_names_fields_its_event_always_has(event: Event) -> None:
    """So that no valid line's message shows a "?" for a field it lacks."""
    names = {field for _, field, _, _ in string.Formatter().parse(SUMMARIES[event]) if field}
    assert names <= schema_events()[event.value][1] | {"event"}


def test_a_summary_is_formatted_from_the_fields_and_never_fails() -> None:
    line = {"watch_id": "w-1", "operation": "projects/p/locations/l/operations/o"}
    assert summary(Event.WATCH_STARTED, line) == "watching projects/p/locations/l/operations/o"
    assert summary(Event.WATCH_FINISHED, {}) == "watch finished: ?"
    assert summary(Event.AUDIT_IGNORED, {"reason": "{operation} in braces"}) == (
        "ignored an audit entry: {operation} in braces"
    )


def printed(**fields: Any) -> dict[str, Any]:
    return {"severity": "INFO", "message": "m", "logger": "opwatch", **fields}


def test_the_schema_refuses_a_missing_a_foreign_and_a_mistyped_field() -> None:
    started = {"event": "watch.started", "watch_id": "w", "operation": "o", "api": "a"}
    assert violations(printed(**started)) == []
    assert violations(printed(**started | {"api": None})) == [
        "'watch.started' line: None is not of type 'string' (at /api)"
    ]
    missing = {k: v for k, v in started.items() if k != "api"}
    assert violations(printed(**missing)) == [
        "'watch.started' line: 'api' is a required property (at /)"
    ]
    assert violations(printed(**started, polls=1)), "polls is not a field of watch.started"
    assert violations(printed(**started | {"watch_id": 3}))
    assert violations(printed(event="watch.resumed", watch_id="w", severity="ERROR"))
    assert violations(printed(watch_id="w")), "a line without an event"


def test_the_contract_reports_a_broken_line_where_it_was_written() -> None:
    contract = LogContract()
    logger = logging.getLogger("opwatch.test_logs")
    logger.addHandler(contract)
    logger.propagate = False
    try:
        fields = {"event": Event.WATCH_PARKED, "watch_id": "w", "parked_in": "TASKS"}
        logger.warning("parked", extra={"fields": fields})
    finally:
        logger.removeHandler(contract)
    assert any("'TASKS' is not one of ['tasks', 'pubsub']" in line for line in contract.broken)
    assert any("'parks' is a required property" in line for line in contract.broken)
