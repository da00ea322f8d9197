"""A logger bound to one watch: every line it writes carries the watch's fields.

A use case binds it once (:meth:`WatchLog.of`), adds what it learns (:meth:`WatchLog.bind`: the
polls, a fetch error) and hands it on; nobody threads a dict of fields along or changes one.
Lines name their :class:`opwatch.logs.Event`, the vocabulary metrics and alerts select by, and
carry that event's fields (docs/logs.md).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from opwatch.contracts import WatchRequest
from opwatch.logs import LOGGER_NAME, Event, error_field, summary

_LOGGER = logging.getLogger(LOGGER_NAME)


class WatchLog:
    """The watch's fields (``jsonPayload``), put on every line written through it."""

    __slots__ = ("fields",)

    def __init__(self, fields: Mapping[str, Any] | None = None) -> None:
        self.fields: Mapping[str, Any] = dict(fields or {})

    @classmethod
    def of(cls, request: WatchRequest) -> WatchLog:
        return cls(
            {"watch_id": request.watch_id, "operation": request.operation, "api": request.api}
        )

    def bind(self, **fields: Any) -> WatchLog:
        """This log with more fields (a later value wins)."""
        return WatchLog({**self.fields, **fields})

    def event(self, level: int, event: Event, **fields: Any) -> None:
        """One line saying ``event``, with the bound fields and ``fields`` (``exc_info=True``
        adds the exception being handled); its message is the event's summary of them."""
        if _LOGGER.isEnabledFor(level):
            exc_info = fields.pop("exc_info", False)
            line = {**self.fields, **fields, "event": event}
            _LOGGER.log(level, summary(event, line), exc_info=exc_info, extra={"fields": line})

    @contextlib.contextmanager
    def failing(self, action: str) -> Iterator[None]:
        """Log a failure to ``action`` in the block (a ``delivery.failed`` line), then let it
        propagate: the platform (Pub/Sub or Cloud Tasks) delivers the input again."""
        try:
            yield
        except Exception as error:
            self.event(
                logging.ERROR,
                Event.DELIVERY_FAILED,
                action=action,
                error=error_field(error),
                redelivered=True,
                exc_info=True,
            )
            raise
