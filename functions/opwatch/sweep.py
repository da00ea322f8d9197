"""The sweep: watch the pending operations that no audit entry announced.

Discovery from audit entries needs one first entry per operation. An entry can be lost, some
methods write none (Gemini's settings and setting-binding methods return operations but are not
on its audit-logging page), and an operation may have started before discovery was switched on.
The sweep closes those gaps: for each configured parent (``projects/P/locations/L`` of one API)
it lists the operations (google.longrunning ListOperations, every page), keeps the pending
ones, and starts the discovered watch of each that has none yet.

An operation found by an audit entry and by the sweep is one watch: both start it as the same
discovered watch (same watch id, same chain, so Cloud Tasks refuses a second first task), and
the sweep first skips every operation whose discovered chain has a pending step on the queue
(one scan per sweep). A requested watch of it stays its own, as with audit discovery.

``filter=done=false`` is asked for first; an API that refuses the filter (400) is listed whole,
and the done operations are skipped here. Every wait is bounded: at most :data:`MAX_PAGES`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from opwatch import checks
from opwatch.core import Fetched, FetchResult, Outcome
from opwatch.errors import ConfigurationError, InvalidWatchRequest, OpwatchError

PENDING_FILTER: Final = "done=false"
# A page holds up to the API's page size (the simulator: 100); this bounds one sweep of a parent.
MAX_PAGES: Final = 1000
_PARENT_RE: Final = re.compile(r"^projects/[a-z0-9-]{1,63}/locations/[a-z0-9-]{1,63}$")


class SweepFailed(OpwatchError):
    """Listing a parent's operations failed; the next sweep tries again."""


@dataclass(frozen=True)
class Parent:
    """Where to list operations: one API's ``projects/P/locations/L``."""

    api: str
    name: str
    api_version: str = "v1"

    @classmethod
    def parse(cls, text: str, default_api: str) -> Parent:
        """``[API=]projects/P/locations/L``, as ``SWEEP_PARENTS`` and ``opwatch sweep`` take it.

        Raises:
            ConfigurationError: not a parent of that shape.
        """
        api, _, name = text.strip().rpartition("=")
        parent = cls(api or default_api, name)
        if not _PARENT_RE.match(name):
            raise ConfigurationError(
                f"{text!r} is not a parent to sweep: write projects/PROJECT/locations/LOCATION, "
                "optionally after API= (e.g. cloudaicompanion.googleapis.com=projects/p/"
                "locations/global)"
            )
        return parent


@dataclass(frozen=True)
class SweepResult:
    """What one sweep of a parent found and did."""

    parent: Parent
    pages: int = 0
    listed: int = 0
    pending: int = 0
    already_watched: int = 0
    started: int = 0
    skipped: int = 0  # names that are no valid watch (reported, never fatal)
    filtered: bool = True  # False: the API refused the done filter, all were listed

    def to_json(self) -> dict[str, Any]:
        fields = ("pages", "listed", "pending", "already_watched", "started", "skipped")
        return {
            "parent": self.parent.name,
            "api": self.parent.api,
            **{name: getattr(self, name) for name in fields},
            "filtered": self.filtered,
        }


class ListPage(Protocol):
    """One ListOperations page: a :class:`Fetched` ListOperationsResponse, or a failure."""

    def __call__(
        self, api: str, api_version: str, parent: str, page_token: str, filter_: str
    ) -> FetchResult: ...


Discover = Callable[[str, str, Mapping[str, str], Mapping[str, Any]], Outcome | None]


def sweep(
    parent: Parent,
    *,
    list_page: ListPage,
    watched: Callable[[], set[str]],
    discover: Discover,
) -> SweepResult:
    """List ``parent``'s operations and start a discovered watch for each pending one not
    watched yet.

    Args:
        parent: what to list.
        list_page: the ListOperations port.
        watched: the operation keys (:func:`checks.operation_key`) whose discovered chain has a
            pending step; called once, and only if a pending operation was listed.
        discover: starts a discovered watch (``Discovery.discover``).

    Raises:
        SweepFailed: a page could not be listed (the API's error, or more than MAX_PAGES).
    """
    pending, pages, filtered, listed = _pending(parent, list_page)
    result = SweepResult(parent, pages, listed, len(pending), filtered=filtered)
    if not pending:
        return result
    keys = watched()
    already = started = skipped = 0
    labels = {"service": parent.api, "method": "sweep", "resource": parent.name}
    for name in pending:
        if checks.operation_key(parent.api, name) in keys:
            already += 1
            continue
        try:
            discover(parent.api, name, labels, {"source": "sweep", "parent": parent.name})
        except InvalidWatchRequest:
            skipped += 1
            continue
        started += 1
    return SweepResult(
        parent, pages, listed, len(pending), already, started, skipped, filtered=filtered
    )


def _pending(parent: Parent, list_page: ListPage) -> tuple[list[str], int, bool, int]:
    """The pending operations' names, the pages read, whether filtered, how many listed."""
    filter_, token, names, pages, listed = PENDING_FILTER, "", [], 0, 0
    while pages < MAX_PAGES:
        result = list_page(parent.api, parent.api_version, parent.name, token, filter_)
        if not isinstance(result, Fetched):
            if filter_ and result.http_status == 400 and not token:
                filter_ = ""  # this API takes no filter: list everything, skip the done ones
                continue
            raise SweepFailed(
                f"could not list the operations of {parent.name} on {parent.api}: "
                f"{result.error.get('message', '')}"
            )
        pages += 1
        operations = result.operation.get("operations") or []
        for operation in operations if isinstance(operations, list) else []:
            listed += 1
            name = operation.get("name") if isinstance(operation, dict) else None
            if isinstance(name, str) and operation.get("done") is not True:
                names.append(name)
        token = str(result.operation.get("nextPageToken") or "")
        if not token:
            return names, pages, bool(filter_), listed
    raise SweepFailed(f"{parent.name} on {parent.api}: more than {MAX_PAGES} pages")
