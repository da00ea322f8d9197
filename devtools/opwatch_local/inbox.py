"""The one collector of notifications, shared by the demo, the soak, the benchmarks and the tests.

An :class:`Inbox` pulls from the results subscription (through any ``pull(count, timeout)``
function, usually :meth:`opwatch_local.stack_client.StackClient.pull_notifications`), stamps each
message when it arrives, and keeps every one: in arrival order and by watch id, duplicates
included, since counting duplicates is part of what the callers check.

Two ways to drive it:

- **on the caller's thread**: :meth:`Inbox.poll` pulls once, bounded; :meth:`Inbox.wait` and
  :meth:`Inbox.settle` pull until a condition or a quiet period (tests, the demo);
- **on a thread of its own**: :meth:`Inbox.start` ... :meth:`Inbox.stop`, with
  :meth:`Inbox.pause` / :meth:`Inbox.resume` around an outage (the soak, the benchmarks).
  ``wait`` and ``settle`` then wait for that thread instead of pulling.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc

from opwatch_local.procs import wait_until
from opwatch_local.pubsub import PulledMessage

__all__ = ["Arrival", "Inbox", "Pull"]

# A pull returns when its batch is full or its time is up, and arrivals are stamped when it
# returns: short pulls keep the stamps within ~0.1 s of the real arrival (the emulator answers an
# empty pull at once, so this costs a few cheap RPCs per second).
SHORT_PULL = 0.05

Pull = Callable[[int, float], list[PulledMessage]]
"""``pull(count, timeout)``: up to ``count`` messages within ``timeout`` seconds, acked."""


@dataclass(frozen=True)
class Arrival:
    """One notification as it arrived.

    Attributes:
        message: The message as pulled.
        data: Its payload as JSON (``{"unparsable": text}`` when it is not JSON).
        at: Wall-clock time of arrival (``time.time()``, comparable with other processes').
        monotonic: ``time.monotonic()`` at arrival (comparable with this process's timers).
    """

    message: PulledMessage
    data: dict[str, Any]
    at: float
    monotonic: float

    @property
    def watch_id(self) -> str:
        return str(self.data.get("watch_id", self.message.attributes.get("watch_id", "")))

    @property
    def outcome(self) -> str:
        return str(self.data.get("outcome", ""))

    @property
    def attributes(self) -> dict[str, str]:
        return self.message.attributes


def _arrival(message: PulledMessage, at: float, monotonic: float) -> Arrival:
    try:
        data = message.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        data = {"unparsable": message.data.decode(errors="replace")}
    return Arrival(message, data, at, monotonic)


class Inbox:
    """Notifications pulled with ``pull``, kept in arrival order and by watch id.

    Args:
        pull: How to pull (see :data:`Pull`).
        batch: Most messages per pull.
    """

    def __init__(self, pull: Pull, *, batch: int = 100) -> None:
        self._pull = pull
        self._batch = batch
        self._changed = threading.Condition()
        self._arrivals: list[Arrival] = []
        self._by_watch: dict[str, list[Arrival]] = {}
        #: Pull errors the background thread survived (it keeps listening).
        self.errors: list[str] = []
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self._idle = threading.Event()
        self._stopping = threading.Event()

    # --- what arrived ----------------------------------------------------------------------------

    def arrivals(self) -> list[Arrival]:
        """Every arrival so far, in order."""
        with self._changed:
            return list(self._arrivals)

    def of(self, watch_id: str) -> list[Arrival]:
        """The arrivals of one watch, in order (more than one: duplicates)."""
        with self._changed:
            return list(self._by_watch.get(watch_id, []))

    def watch_ids(self) -> set[str]:
        """Every watch id that got at least one notification."""
        with self._changed:
            return set(self._by_watch)

    # --- pulling on the caller's thread ----------------------------------------------------------

    def poll(self, timeout: float) -> list[Arrival]:
        """Pull once (at most ``timeout`` seconds); returns what arrived, already recorded."""
        return self._record(self._pull(self._batch, timeout))

    def wait(self, watch_id: str, *, count: int = 1, timeout: float = 60.0) -> list[Arrival]:
        """The arrivals of ``watch_id`` once ``count`` arrived.

        Raises:
            TimeoutError: Fewer than ``count`` within ``timeout`` seconds.
        """
        if not self._until(lambda: len(self._by_watch.get(watch_id, [])) >= count, timeout):
            raise TimeoutError(f"no notification for watch {watch_id!r} within {timeout:.0f}s")
        return self.of(watch_id)

    def wait_all(self, watch_ids: Collection[str], timeout: float) -> set[str]:
        """Wait (bounded) until every one of ``watch_ids`` got a notification; returns the ids
        still missing."""
        self._until(lambda: set(watch_ids) <= self._by_watch.keys(), timeout)
        return set(watch_ids) - self.watch_ids()

    def settle(self, watch_id: str, seconds: float) -> list[Arrival]:
        """The arrivals of ``watch_id`` after ``seconds`` more of listening (to prove that
        nothing more came)."""
        self._until(lambda: False, seconds)
        return self.of(watch_id)

    def _until(self, done: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            with self._changed:
                if done():
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                if self._thread is not None:
                    self._changed.wait(min(remaining, 1.0))
                    continue
            self.poll(min(remaining, SHORT_PULL))

    def _record(self, messages: Iterable[PulledMessage]) -> list[Arrival]:
        at, monotonic = time.time(), time.monotonic()
        new = [_arrival(message, at, monotonic) for message in messages]
        with self._changed:
            for arrival in new:
                self._arrivals.append(arrival)
                self._by_watch.setdefault(arrival.watch_id, []).append(arrival)
            self._changed.notify_all()
        return new

    # --- pulling on a thread of its own ----------------------------------------------------------

    def start(self) -> Inbox:
        """Pull on a background thread until :meth:`stop`."""
        self._running.set()
        self._thread = threading.Thread(target=self._loop, name="inbox", daemon=True)
        self._thread.start()
        return self

    def pause(self, timeout: float = 30.0) -> None:
        """Stop pulling; returns once the pull in progress has returned."""
        self._idle.clear()
        self._running.clear()
        wait_until(self._idle.is_set, timeout, describe="inbox paused")

    def resume(self) -> None:
        """Pull again after :meth:`pause`."""
        self._running.set()

    def stop(self) -> None:
        """Stop the background thread (idempotent)."""
        self._stopping.set()
        self._running.set()
        if self._thread is not None:
            self._thread.join(timeout=30.0)
            self._thread = None

    def __enter__(self) -> Inbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            if not self._running.is_set():
                self._idle.set()
                self._running.wait()
                continue
            try:
                self.poll(SHORT_PULL)
            except gexc.GoogleAPICallError as error:  # keep listening; the caller counts them
                self.errors.append(f"{type(error).__name__}: {error}"[:300])
                self._stopping.wait(0.2)
