"""The sweep: pending operations that no audit entry announced get one discovered watch each.

ListOperations (google.longrunning, https://cloud.google.com/python/docs/reference/
cloudaicompanion/latest and the Operations API's ListOperationsRequest: ``name``, ``filter``,
``page_size``, ``page_token``; the response's ``operations`` and ``next_page_token``) is played
by pages of JSON, as the REST API answers them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from opwatch import checks, sweep
from opwatch.audit import discovered_watch_id
from opwatch.contracts import DEFAULT_API
from opwatch.core import Fetched, FetchFailed, FetchResult
from opwatch.errors import ConfigurationError
from opwatch.logs import Event
from tests.fakes import EventLog, Harness, http_error, pending, pubsub_message, succeeded

PARENT = sweep.Parent(DEFAULT_API, "projects/p/locations/us-central1")


def op(n: int, *, done: bool = False) -> dict[str, Any]:
    return {"name": f"{PARENT.name}/operations/op-{n}", "done": done}


@dataclass
class FakeList:
    """Pages by token; ``refuse_filter`` answers 400 to a filtered call, like an API without
    filters."""

    pages: dict[str, dict[str, Any]]
    refuse_filter: bool = False
    calls: list[tuple[str, str]] = field(default_factory=list)

    def __call__(
        self, api: str, api_version: str, parent: str, page_token: str, filter_: str
    ) -> FetchResult:
        assert (api, api_version, parent) == (PARENT.api, "v1", PARENT.name)
        self.calls.append((page_token, filter_))
        if filter_ and self.refuse_filter:
            return http_error(400, 3, "filter is not supported")
        page = dict(self.pages[page_token])
        if filter_ == "done=false":
            page["operations"] = [o for o in page.get("operations", []) if not o.get("done")]
        return Fetched(page)


def watch_ids(harness: Harness) -> list[str]:
    return sorted(checks.decode(task.body).watch_id for task in harness.schedule.tasks)


def test_each_pending_operation_gets_a_discovered_watch(harness: Harness) -> None:
    harness.fetch.results = [pending()]
    listing = FakeList(
        {
            "": {"operations": [op(1), op(2, done=True)], "nextPageToken": "t2"},
            "t2": {"operations": [op(3)]},
        }
    )
    result = harness.handlers.sweep(PARENT, listing)
    assert (result.pages, result.pending, result.started) == (2, 2, 2)
    assert listing.calls == [("", "done=false"), ("t2", "done=false")]
    assert watch_ids(harness) == sorted(
        discovered_watch_id(DEFAULT_API, o["name"]) for o in (op(1), op(3))
    )
    labels = harness.fetch.calls[0].labels
    assert labels == {"service": DEFAULT_API, "method": "sweep", "resource": PARENT.name}


def test_an_operation_the_audit_entries_found_is_not_watched_twice(harness: Harness) -> None:
    """Found by its first audit entry, then by the sweep: one watch (and one GET)."""
    harness.fetch.results = [pending(op(1)["name"])]
    entry = {
        "logName": "projects/p/logs/cloudaudit.googleapis.com%2Factivity",
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "serviceName": DEFAULT_API,
            "methodName": "google.cloud.cloudaicompanion.v1.CodeRepositoryIndexManagementService."
            "CreateCodeRepositoryIndex",
            "resourceName": "projects/p/locations/us-central1/codeRepositoryIndexes/i",
        },
        "operation": {"id": op(1)["name"], "producer": DEFAULT_API, "first": True},
    }
    harness.handlers.on_audit_message(pubsub_message(entry))
    assert len(harness.schedule.tasks) == 1
    result = harness.handlers.sweep(PARENT, FakeList({"": {"operations": [op(1)]}}))
    assert (result.already_watched, result.started) == (1, 0)
    assert len(harness.schedule.tasks) == 1 and len(harness.fetch.calls) == 1


def test_a_requested_watch_of_the_operation_stays_its_own(harness: Harness) -> None:
    harness.fetch.results = [pending(op(1)["name"])]
    harness.handlers.on_watch_message(
        pubsub_message({"operation": op(1)["name"], "watch_id": "mine"})
    )
    result = harness.handlers.sweep(PARENT, FakeList({"": {"operations": [op(1)]}}))
    assert result.started == 1
    assert watch_ids(harness) == sorted(["mine", discovered_watch_id(DEFAULT_API, op(1)["name"])])


def test_an_api_that_refuses_the_filter_is_listed_whole(harness: Harness) -> None:
    harness.fetch.results = [succeeded(op(1)["name"])]
    listing = FakeList({"": {"operations": [op(1), op(2, done=True)]}}, refuse_filter=True)
    result = harness.handlers.sweep(PARENT, listing)
    assert listing.calls == [("", "done=false"), ("", "")]
    assert (result.filtered, result.listed, result.pending, result.started) == (False, 2, 1, 1)
    # The operation is done by its first look: the discovered watch publishes at once.
    assert [n["outcome"] for n in harness.publish.received] == ["SUCCEEDED"]


def test_nothing_pending_scans_no_queue(harness: Harness) -> None:
    harness.schedule.list_fails_with = AssertionError("the queue was scanned")
    result = harness.handlers.sweep(PARENT, FakeList({"": {}}))
    assert (result.listed, result.pending, result.started) == (0, 0, 0)


def test_a_name_that_is_no_watch_is_skipped(harness: Harness) -> None:
    harness.fetch.results = [pending()]
    bad = {"name": "projects/p/locations/us-central1/operations/../x", "done": False}
    result = harness.handlers.sweep(PARENT, FakeList({"": {"operations": [bad, op(1)]}}))
    assert (result.skipped, result.started) == (1, 1)


@pytest.mark.parametrize(
    "answer",
    [http_error(403, 7, "permission denied"), FetchFailed(None, {"code": 14, "message": "x"})],
)
def test_a_listing_failure_is_reported_and_the_other_parents_are_swept(
    harness: Harness, event_log: EventLog, answer: FetchFailed
) -> None:
    other = sweep.Parent(DEFAULT_API, "projects/q/locations/global")

    def list_page(api: str, version: str, parent: str, token: str, filter_: str) -> FetchResult:
        return answer if parent == PARENT.name else Fetched({})

    results, failed = harness.handlers.sweep_all([PARENT, other], list_page)
    assert failed
    assert [r.get("error") is None for r in results] == [False, True]
    assert (results[0]["parent"], results[0]["api"]) == (PARENT.name, PARENT.api), "which failed"
    assert [line["event"] for line in event_log.lines] == [Event.SWEEP_FAILED, Event.SWEEP_DONE]
    failed_line, done_line = event_log.lines
    assert (failed_line["parent"], failed_line["api"]) == (PARENT.name, PARENT.api)
    assert failed_line["reason"] == results[0]["error"]
    assert (done_line["parent"], done_line["pending"]) == (other.name, 0)


def test_every_page_is_bounded(harness: Harness) -> None:
    def forever(api: str, version: str, parent: str, token: str, filter_: str) -> FetchResult:
        return Fetched({"operations": [], "nextPageToken": "again"})

    with pytest.raises(sweep.SweepFailed, match="pages"):
        harness.handlers.sweep(PARENT, forever)


@pytest.mark.parametrize(
    ("text", "parent"),
    [
        ("projects/p/locations/global", sweep.Parent(DEFAULT_API, "projects/p/locations/global")),
        (
            "spanner.googleapis.com=projects/p/locations/us-east1",
            sweep.Parent("spanner.googleapis.com", "projects/p/locations/us-east1"),
        ),
    ],
)
def test_parents_are_read_with_an_optional_api(text: str, parent: sweep.Parent) -> None:
    assert sweep.Parent.parse(text, DEFAULT_API) == parent


@pytest.mark.parametrize(
    "text", ["", "projects/p", "projects/p/locations/l/operations", "projects/P/locations/l"]
)
def test_a_malformed_parent_says_what_to_write(text: str) -> None:
    with pytest.raises(ConfigurationError, match="projects/PROJECT/locations/LOCATION"):
        sweep.Parent.parse(text, DEFAULT_API)


def test_the_result_reads_as_json() -> None:
    result = sweep.SweepResult(PARENT, 1, 3, 2, 1, 1, filtered=True)
    assert result.to_json() == {
        "parent": PARENT.name,
        "api": DEFAULT_API,
        "pages": 1,
        "listed": 3,
        "pending": 2,
        "already_watched": 1,
        "started": 1,
        "skipped": 0,
        "filtered": True,
    }
