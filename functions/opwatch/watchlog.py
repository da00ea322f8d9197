"""A logger bound to one watch: every line it writes carries the watch's fields.

A use case binds it once (:meth:`WatchLog.of`), adds what it learns (:meth:`WatchLog.bind`: the
polls, a fetch error) and hands it on; nobody threads a dict of fields along or changes one.
Lines name their :class:`opwatch.logs.Event`, the vocabulary metrics and alerts select by.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from opwatch.contracts import WatchRequest
from opwatch.logs import LOGGER_NAME, Event

_LOGGER = logging.getLogger(LOGGER_NAME)


class WatchLog(logging.LoggerAdapter[logging.Logger]):
    """:mod:`logging` with the watch's fields (``jsonPayload``) on every line."""

    def __init__(self, fields: Mapping[str, Any] | None = None) -> None:
        super().__init__(_LOGGER, dict(fields or {}))

    @classmethod
    def of(cls, request: WatchRequest) -> WatchLog:
        return cls(
            {"watch_id": request.watch_id, "operation": request.operation, "api": request.api}
        )

    @property
    def fields(self) -> Mapping[str, Any]:
        return self.extra or {}

    def bind(self, **fields: Any) -> WatchLog:
        """This log with more fields (a later value wins)."""
        return WatchLog({**self.fields, **fields})

    def event(self, level: int, event: Event, message: str, *args: object, **fields: Any) -> None:
        """One line saying ``event``, with the bound fields and ``fields``."""
        if _LOGGER.isEnabledFor(level):
            exc_info = fields.pop("exc_info", False)
            extra = {"fields": {**self.fields, **fields, "event": event}}
            _LOGGER.log(level, message, *args, exc_info=exc_info, extra=extra)

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        extra = kwargs.get("extra") or {}
        kwargs["extra"] = {**extra, "fields": {**self.fields, **extra.get("fields", {})}}
        return msg, kwargs

    @contextlib.contextmanager
    def failing(self, what: str) -> Iterator[None]:
        """Log a failure in the block with the watch's fields, then let it propagate: the
        platform (Pub/Sub or Cloud Tasks) delivers the input again."""
        try:
            yield
        except Exception:
            self.event(
                logging.ERROR,
                Event.DELIVERY_FAILED,
                "%s; the platform will deliver this input again",
                what,
                exc_info=True,
            )
            raise
