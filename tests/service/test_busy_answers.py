"""Gemini for Google Cloud's "busy" 409s: the watch waits them out; they are no failure.

The google provider retries two 409 answers of cloudaicompanion.googleapis.com, and it does so
on the operation GET itself: ``GeminiOperationWaiter.QueryOp`` passes
``IsCodeRepositoryIndexUnreadyError`` and ``IsRepositoryGroupQueueError`` as its retry
predicates (hashicorp/terraform-provider-google, ``google/services/gemini/gemini_operation.go``).
Their match rules (``google/transport/error_retry_predicates.go``):

- ``IsRepositoryGroupQueueError``: code 409 and ``strings.ToLower(body)`` contains "unable to
  queue the operation" ("Waiting for other enqueued operations to finish");
- ``IsCodeRepositoryIndexUnreadyError``: code 409 and the body contains "parent resource not in
  ready state", as written ("CodeRepositoryIndex not ready").

Here the functions' real fetch adapter polls the operations simulator in-process, which answers
those 409s for a while (``busy_for``); the queue and Pub/Sub are the harness's fakes and time is
one injected clock shared by both sides, so an hour takes milliseconds. What is asserted is what
a subscriber and an operator see: the notification, the number of GETs, ``opwatch status``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from opwatch import checks
from opwatch.adapters import OperationFetcher
from opwatch.contracts import WatchRequest
from opwatch.core import Outcome, Progress, decide
from opwatch.handlers import Handlers
from opwatch.registry import Registry
from opwatch.settings import FetchConfig, Settings
from opwatch_local import watches
from opwatch_local.simulator import Busy, OperationStats, Simulator, SimulatorServer
from tests.fakes import (
    OPERATION,
    T0,
    Clock,
    FakeQueue,
    RecordingPublish,
    http_error,
    pubsub_message,
)

MINUTE = 60.0
REQUEST = WatchRequest(operation=OPERATION, watch_id="w-1", timeout=3600.0)


@dataclass
class Rig:
    """The watch function over the real fetch adapter, against the simulator."""

    handlers: Handlers
    clock: Clock
    queue: FakeQueue
    publish: RecordingPublish
    simulator: Simulator

    def watch(self, **request: Any) -> None:
        body = {"operation": OPERATION, "watch_id": "w-1", **request}
        self.handlers.on_watch_message(pubsub_message(body))

    def run_checks(self, until: float | None = None) -> None:
        """Play Cloud Tasks: run each check at its time (stop before ``until`` s from T0)."""
        for _ in range(1000):  # bounded: a chain that never ends fails instead of hanging
            if not self.queue.tasks:
                return
            task = self.queue.tasks[0]
            if until is not None and (task.when - T0).total_seconds() >= until:
                return
            self.clock.now = task.when
            self.handlers.on_check(checks.decode(task.body))
            self.queue.tasks.remove(task)
        pytest.fail("the polling chain did not end within 1000 checks")

    def gets(self) -> OperationStats:
        return self.simulator.stats(OPERATION)

    def status(self) -> list[dict[str, Any]]:
        return watches.status(Registry(self.queue, self.clock), "w-1", self.clock.now)


@pytest.fixture
def rig(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    clock = Clock()
    simulator = Simulator(clock=lambda: clock.now.timestamp())
    with SimulatorServer(0, simulator=simulator) as server:
        fetch = FetchConfig(endpoint=server.url, timeout=5.0)
        queue, publish = FakeQueue(), RecordingPublish()
        handlers = Handlers(
            settings, fetch=OperationFetcher(fetch), queue=queue, publish=publish, clock=clock
        )
        yield Rig(handlers, clock, queue, publish, simulator)


@pytest.mark.parametrize("busy", list(Busy))
def test_a_busy_answer_is_waited_out_and_the_subscriber_hears_the_success(
    rig: Rig, busy: Busy
) -> None:
    """Main answered the first 409 with FAILED: the subscriber heard that a build failed
    which then succeeded (issue 18, §1)."""
    rig.simulator.create_operation(OPERATION, duration=20 * MINUTE, busy_for=5 * MINUTE, busy=busy)

    rig.watch()
    rig.run_checks()

    [notification] = rig.publish.received
    assert notification["outcome"] == Outcome.SUCCEEDED.value
    gets = rig.gets()
    busy_gets = [t for t, s in zip(gets.times, gets.statuses, strict=True) if s == 409]
    assert len(busy_gets) >= 3 and gets.statuses[-1] == 200
    # Backoff, as for other transient errors: each wait at least as long as the one before.
    gaps = [b - a for a, b in itertools.pairwise(busy_gets)]
    assert gaps == sorted(gaps) and gaps[-1] > gaps[0]
    # Five minutes of 409s cost a handful of GETs, not one every few seconds.
    assert len(busy_gets) <= 10


def test_a_watch_that_only_meets_busy_answers_times_out_and_says_why(rig: Rig) -> None:
    """The watch's timeout still bounds the waiting; the TIMED_OUT names the last 409."""
    rig.simulator.create_operation(OPERATION, duration=MINUTE, busy_for=24 * 3600, busy=Busy.QUEUE)

    rig.watch(timeout="1800s")
    rig.run_checks()

    [notification] = rig.publish.received
    assert notification["outcome"] == Outcome.TIMED_OUT.value
    message = notification["error"]["message"]
    assert "not done after 1800s" in message
    assert "the last check failed: Unable to queue the operation" in message
    gets = rig.gets()
    assert set(gets.statuses) == {409}
    assert gets.times[-1] - gets.times[0] == pytest.approx(1800.0)
    assert notification["polls"] == gets.gets <= 15


def test_opwatch_status_shows_the_busy_answer_while_the_watch_waits(rig: Rig) -> None:
    """``opwatch status`` reads the pending check task: its body carries the last error."""
    rig.simulator.create_operation(
        OPERATION, duration=20 * MINUTE, busy_for=5 * MINUTE, busy=Busy.UNREADY
    )

    rig.watch()
    rig.run_checks(until=2 * MINUTE)
    [row] = rig.status()
    assert row["state"] == "waiting"
    assert row["last_error"] == (
        "HTTP 409: The request cannot be served: parent resource not in ready state."
    )
    assert "parent resource not in ready state" in watches.table([row])

    rig.run_checks(until=10 * MINUTE)  # the operation answers again, still pending
    [row] = rig.status()
    assert row["last_error"] is None


@pytest.mark.parametrize(
    ("api", "message", "transient"),
    [
        # IsRepositoryGroupQueueError lower-cases the body: any case matches.
        ("cloudaicompanion.googleapis.com", "UNABLE TO QUEUE THE OPERATION", True),
        # IsCodeRepositoryIndexUnreadyError does not: only the phrase as written.
        ("cloudaicompanion.googleapis.com", "Parent Resource Not In Ready State", False),
        ("cloudaicompanion.googleapis.com", "another 409: the resource is locked", False),
        # The provider retries them for Gemini's operations only.
        ("spanner.googleapis.com", "unable to queue the operation", False),
    ],
)
def test_only_the_providers_phrases_for_its_api_are_busy(
    api: str, message: str, transient: bool
) -> None:
    """error_retry_predicates.go: the match rules, which gemini_operation.go applies to
    cloudaicompanion's operation GET."""
    decision = decide(
        replace(REQUEST, api=api), Progress(started=T0, polls=1), http_error(409, 10, message), T0
    )
    outcome = getattr(decision, "outcome", None)
    assert outcome is (None if transient else Outcome.FAILED)


def test_the_phrase_may_be_in_the_details_as_in_the_body_the_provider_reads() -> None:
    """The provider searches the whole response body, details included."""
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "Unable to queue the operation",
        }
    ]
    failed = http_error(409, 10, "Conflict", details=details)
    decision = decide(REQUEST, Progress(started=T0, polls=1), failed, T0)
    assert not hasattr(decision, "outcome")
    assert decision.progress.last_error == "HTTP 409: Conflict"


def test_the_last_error_is_one_short_line() -> None:
    """``opwatch status`` prints it in a table row: no line breaks, at most 300 characters."""
    failed = http_error(409, 10, "Unable to queue the operation:\n\t" + "x" * 400)
    decision = decide(REQUEST, Progress(started=T0, polls=1), failed, T0)
    last = decision.progress.last_error
    assert last is not None and last.startswith("HTTP 409: Unable to queue the operation: xx")
    assert len(last) == 300
