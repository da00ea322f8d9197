"""What the in-memory ledgers of the tests and the benchmarks share: a page of records, as
:meth:`opwatch.adapters.FirestoreLedger.page` returns one (newest started first)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from opwatch.ledger import Record, State


def page(
    records: Iterable[Record],
    state: State | None,
    since: datetime | None,
    limit: int,
    after: str | None,
) -> tuple[list[Record], str | None]:
    """The records of ``state`` (None: any) started at ``since`` or later, newest first, after
    the document ``after`` (a cursor whose document is gone starts again from the newest); and
    the next page's cursor, or None on the last page."""
    found = sorted(
        (
            r
            for r in records
            if (state is None or r.state is state) and (since is None or r.started >= since)
        ),
        key=lambda r: (r.started, r.doc_id),
        reverse=True,
    )
    if after is not None:
        ids = [r.doc_id for r in found]
        found = found[ids.index(after) + 1 :] if after in ids else found
    shown = found[:limit]
    return shown, (shown[-1].doc_id if len(found) > limit else None)
