"""Bounded memory of the watch ids already handled.

opwatch publishes each notification at least once; a redelivery carries the same ``watch_id``
(and ``ce-id``). A subscriber keeps the ids it handled for a while and skips repeats. The window
is bounded both by count (memory) and by age (redeliveries come within minutes; Pub/Sub retains
unacknowledged messages up to 7 days, so pick ``max_age`` to match your subscription).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta


class Deduplicator:
    """Remembers up to ``max_entries`` watch ids, each for ``max_age``; thread-safe.

    Args:
        max_entries: ids kept at most; the oldest are forgotten first.
        max_age: how long an id is remembered (seconds or timedelta).
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        max_entries: int = 10_000,
        max_age: float | timedelta = 3600.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        age = max_age.total_seconds() if isinstance(max_age, timedelta) else float(max_age)
        if max_entries < 1 or age <= 0:
            raise ValueError("max_entries must be at least 1 and max_age positive")
        self.max_entries = max_entries
        self.max_age = age
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, watch_id: str) -> bool:
        """True the first time ``watch_id`` is offered within the window (and remembers it)."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            if watch_id in self._seen:
                return False
            self._seen[watch_id] = now
            while len(self._seen) > self.max_entries:
                self._seen.popitem(last=False)
            return True

    def forget(self, watch_id: str) -> None:
        """Drop ``watch_id``, e.g. when handling it failed and a redelivery should be handled."""
        with self._lock:
            self._seen.pop(watch_id, None)

    def __contains__(self, watch_id: object) -> bool:
        with self._lock:
            self._expire(self._clock())
            return watch_id in self._seen

    def __len__(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._seen)

    def _expire(self, now: float) -> None:
        # Insertion order is time order: the oldest entries are at the front.
        while self._seen:
            watch_id, seen = next(iter(self._seen.items()))
            if now - seen < self.max_age:
                break
            del self._seen[watch_id]
