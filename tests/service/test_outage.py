"""No watch is lost when Cloud Tasks stops retrying: day-long outages on the harness's clock.

A check task is retried by Cloud Tasks a bounded number of times, then dropped with no
dead-letter. The queue below plays those rules as Google documents them, the parked topic plays
a Pub/Sub push subscription, and the clock jumps from one delivery to the next, so a 24-hour
outage takes milliseconds.

- RetryConfig (max_attempts, max_retry_duration, min/max_backoff, max_doublings, and the task
  deleted once both limits are reached):
  https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues#RetryConfig
- ``X-CloudTasks-TaskRetryCount`` ("the number of times this task has been retried; for the
  first attempt, this value is 0"): https://cloud.google.com/tasks/docs/creating-http-target-tasks
- Push retry with exponential backoff (at most 600 s) for as long as the message is retained
  (7 days on the parked subscription): https://cloud.google.com/pubsub/docs/handling-failures
"""

from __future__ import annotations

import base64
import heapq
import itertools
import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from google.api_core import exceptions

from opwatch import checks
from opwatch.core import Fetched, FetchResult
from opwatch.envelope import PushedMessage
from opwatch.handlers import Handlers
from opwatch.notification import Notification
from opwatch.ports import QueuedTask
from opwatch.settings import Settings
from tests.fakes import OPERATION, RESULTS, T0, Clock, EventLog, pubsub_message

PARKED = "projects/test-project/topics/opwatch-parked-checks"
# The parked topic's attribute, as README ("Parked watches") documents it for a replay by hand:
# --attribute=opwatch=parked-check (not opwatch.envelope's own PARKED_ATTRIBUTE/PARKED_VALUE).
PARKED_ATTRIBUTE, PARKED_VALUE = "opwatch", "parked-check"
HOUR = 3600.0


@dataclass
class Outage:
    """A dependency that refuses every call between ``start`` and ``end``."""

    clock: Clock
    start: datetime | None = None
    end: datetime | None = None

    def check(self, what: str) -> None:
        if (
            self.start is not None
            and self.end is not None
            and self.start <= self.clock() < self.end
        ):
            raise exceptions.ServiceUnavailable(f"{what} is down")


@dataclass(order=True)
class Due:
    when: datetime
    seq: int
    kind: str = field(compare=False)
    payload: Any = field(compare=False)
    retries: int = field(compare=False, default=0)
    first_attempt: datetime | None = field(compare=False, default=None)


class World:
    """Cloud Tasks (create with reserved names, dispatch, retry, drop) and Pub/Sub (results,
    and the parked topic pushed back to the watch function), on one simulated clock."""

    def __init__(self, settings: Settings, *, done_at: datetime) -> None:
        self.clock = Clock()
        self.tasks_down = Outage(self.clock)
        self.pubsub_down = Outage(self.clock)
        self.retry = {"max_attempts": 10, "max_duration": HOUR, "min": 10.0, "max": 300.0}
        self.queue: list[Due] = []
        self.names: set[str] = set()
        self.notifications: list[Notification] = []
        self.dropped: list[Due] = []
        # What the services hold: every task id Cloud Tasks accepted, every message on the parked
        # topic, and every push of one back to the watch function.
        self.created: list[str] = []
        self.parked: list[Notification] = []
        self.pushed_back: list[dict[str, Any]] = []
        self.gets = 0
        self._seq = itertools.count()
        self._done_at = done_at
        self.handlers = Handlers(
            settings,
            fetch=self.fetch,
            queue=self,
            publish=self.publish,
            clock=self.clock,
        )

    def fetch(self, _request: Any) -> FetchResult:
        self.gets += 1
        done = self.clock() >= self._done_at
        return Fetched({"name": OPERATION, "done": done, **({"response": {}} if done else {})})

    def create(self, task: checks.CheckTask) -> bool:
        self.tasks_down.check("Cloud Tasks")
        if task.task_id in self.names:
            return False
        self.names.add(task.task_id)
        self.created.append(task.task_id)
        self._push(Due(max(task.when, self.clock()), next(self._seq), "task", task))
        return True

    def _pending(self, task_id: str) -> Due | None:
        return next(
            (d for d in self.queue if d.kind == "task" and d.payload.task_id == task_id), None
        )

    def get(self, task_id: str) -> QueuedTask | None:
        due = self._pending(task_id)
        return QueuedTask(task_id, due.payload.body, due.when) if due else None

    def delete(self, task_id: str) -> bool:
        due = self._pending(task_id)
        if due is None:
            return False
        self.queue.remove(due)
        heapq.heapify(self.queue)
        return True

    def run(self, task_id: str) -> bool:  # pragma: no cover - no fast path in these tests
        raise AssertionError("not expected")

    def list_tasks(self) -> list[QueuedTask]:
        return [
            QueuedTask(d.payload.task_id, d.payload.body, d.when)
            for d in self.queue
            if d.kind == "task"
        ]

    def publish(self, message: Notification) -> None:
        self.pubsub_down.check("Pub/Sub")
        if message.topic == PARKED:
            self.parked.append(message)
            data = base64.b64encode(message.data).decode()
            push = {"data": data, "attributes": dict(message.attributes), "messageId": "p"}
            self._push(Due(self.clock(), next(self._seq), "push", push))
        else:
            self.notifications.append(message)

    def _push(self, due: Due) -> None:
        heapq.heappush(self.queue, due)

    def backoff(self, retries: int) -> float:
        """Cloud Tasks' interval before retry number ``retries`` (1-based), max_doublings 4."""
        doublings = 4
        k = retries - 1
        interval = self.retry["min"] * 2 ** min(k, doublings) * (1 + max(0, k - doublings))
        return float(min(self.retry["max"], interval))

    def advance(self, *, until: datetime, limit: int = 100_000) -> None:
        """Deliver what is due up to ``until``; more than ``limit`` deliveries fail the test
        (a chain or a redelivery that never ends would otherwise hang the suite)."""
        for _ in range(limit + 1):
            if not (self.queue and self.queue[0].when <= until):
                return
            due = heapq.heappop(self.queue)
            self.clock.now = due.when
            first = due.first_attempt or due.when
            try:
                if due.kind == "task":
                    state = checks.decode(due.payload.body)
                    self.handlers.on_check(state, retries=due.retries)
                else:
                    self.pushed_back.append(due.payload)
                    self.handlers.on_watch_message(PushedMessage.from_json(due.payload))
                continue
            except exceptions.GoogleAPICallError:
                pass
            retries = due.retries + 1
            if due.kind == "task":
                age = (self.clock() - first).total_seconds()
                if retries >= self.retry["max_attempts"] and age >= self.retry["max_duration"]:
                    self.dropped.append(due)  # Cloud Tasks deletes it: no dead-letter
                    continue
                delay = self.backoff(retries)
            else:
                delay = min(600.0, 10.0 * 2 ** min(retries, 10))
            self._push(
                replace(
                    due,
                    when=self.clock() + timedelta(seconds=delay),
                    retries=retries,
                    first_attempt=first,
                )
            )
        pytest.fail(f"still deliveries due after {limit}: a chain or a redelivery never ended")

    def start_watch(self) -> None:
        self.handlers.on_watch_message(pubsub_message({"operation": OPERATION, "watch_id": "w"}))


@pytest.fixture
def settings_with_parking(settings: Settings) -> Settings:
    return replace(settings, tasks=replace(settings.tasks, max_attempts=10), parked_topic=PARKED)


def outage_run(
    settings: Settings,
    *,
    done_after: timedelta,
    down: str,
    between: tuple[timedelta, timedelta],
    watch_until: timedelta,
) -> World:
    """One watch of an operation done ``done_after`` in, with ``down`` ("pubsub" or "tasks")
    refusing every call ``between`` (offsets from T0), played until ``watch_until``."""
    world = World(settings, done_at=T0 + done_after)
    outage = world.pubsub_down if down == "pubsub" else world.tasks_down
    outage.start, outage.end = T0 + between[0], T0 + between[1]
    world.start_watch()
    world.advance(until=T0 + watch_until)
    return world


def outcomes(world: World) -> list[str]:
    return [json.loads(message.data)["outcome"] for message in world.notifications]


def parked_steps(world: World) -> list[str]:
    """The tasks Cloud Tasks accepted that re-run a step set aside (``p{parks}`` names)."""
    names = [checks.TaskName.parse(task_id) for task_id in world.created]
    return [str(name) for name in names if name is not None and name.parks > 0]


def test_a_24_hour_publish_outage_ends_in_exactly_one_notification(
    settings_with_parking: Settings, event_log: EventLog
) -> None:
    world = outage_run(
        settings_with_parking,
        done_after=timedelta(minutes=30),
        down="pubsub",
        between=(timedelta(minutes=20), timedelta(hours=24, minutes=20)),
        watch_until=timedelta(days=3),
    )

    assert outcomes(world) == ["SUCCEEDED"]
    assert world.notifications[0].topic == RESULTS
    assert world.dropped == [], "no check reached Cloud Tasks' last attempt unparked"
    assert world.queue == []
    # Parked in Cloud Tasks (Pub/Sub is what is down): a re-run of the step, nothing on the
    # parked topic. The log events are the documented contract of parking (README, "Outages").
    assert parked_steps(world) != [] and world.parked == []
    assert "watch.parked" in event_log.events and "watch.abandoned" not in event_log.events
    # Parking keeps looks sparse through the outage (one retry budget per park, not a storm).
    assert world.gets < 24 * 20


def test_a_24_hour_create_task_outage_ends_in_exactly_one_notification(
    settings_with_parking: Settings, event_log: EventLog
) -> None:
    world = outage_run(
        settings_with_parking,
        done_after=timedelta(hours=2),
        down="tasks",
        between=(timedelta(minutes=10), timedelta(hours=24, minutes=10)),
        watch_until=timedelta(days=3),
    )

    assert outcomes(world) == ["SUCCEEDED"]
    assert world.dropped == []
    # Cloud Tasks down: parked once on the parked topic, pushed back (redelivered while Cloud
    # Tasks still refused) until the watch resumed, and no step re-run could be created.
    [parked] = world.parked
    assert parked.attributes[PARKED_ATTRIBUTE] == PARKED_VALUE
    assert checks.decode(parked.data).request["operation"] == OPERATION
    assert world.pushed_back
    assert all(push["attributes"][PARKED_ATTRIBUTE] == PARKED_VALUE for push in world.pushed_back)
    assert world.pushed_back[-1]["data"] == base64.b64encode(parked.data).decode()
    assert parked_steps(world) == []
    # The documented event says where it was parked (README, "Outages").
    parked_lines = [line for line in event_log.lines if line.get("event") == "watch.parked"]
    assert [line["parked_in"] for line in parked_lines] == ["pubsub"]


def test_without_a_parked_topic_a_create_task_outage_is_logged_with_the_whole_watch(
    settings: Settings, event_log: EventLog
) -> None:
    """When nothing can be written, one ERROR entry holds the watch; replaying its check_body
    on the parked topic (README, "Parked watches") brings the watch back to its notification."""
    world = outage_run(
        replace(settings, tasks=replace(settings.tasks, max_attempts=10)),
        done_after=timedelta(hours=2),
        down="tasks",
        between=(timedelta(minutes=10), timedelta(hours=24)),
        watch_until=timedelta(days=2),
    )
    assert world.notifications == []

    [abandoned] = [line for line in event_log.lines if line.get("event") == "watch.abandoned"]
    assert abandoned["severity"] == "ERROR"
    assert abandoned["watch_id"] == "w"
    body = abandoned["check_body"].encode()
    assert checks.decode(body).request["operation"] == OPERATION

    replay = {
        "data": base64.b64encode(body).decode(),
        "attributes": {PARKED_ATTRIBUTE: PARKED_VALUE},
        "messageId": "replay-1",
    }
    world.clock.now = T0 + timedelta(days=2)  # an operator replays it after the outage
    world.handlers.on_watch_message(PushedMessage.from_json(replay))
    [resumed] = [line for line in event_log.lines if line.get("event") == "watch.resumed"]
    assert resumed["watch_id"] == "w"
    world.advance(until=world.clock() + timedelta(days=1))
    assert outcomes(world) == ["SUCCEEDED"]


def test_a_short_outage_is_retried_by_cloud_tasks_without_parking(
    settings_with_parking: Settings, event_log: EventLog
) -> None:
    world = outage_run(
        settings_with_parking,
        done_after=timedelta(minutes=30),
        down="pubsub",
        between=(timedelta(minutes=20), timedelta(minutes=40)),
        watch_until=timedelta(days=1),
    )
    assert outcomes(world) == ["SUCCEEDED"]
    assert parked_steps(world) == [] and world.parked == []
    assert "watch.parked" not in event_log.events


def test_a_parked_message_that_opwatch_did_not_write_is_answered_invalid(
    settings_with_parking: Settings,
) -> None:
    world = World(settings_with_parking, done_at=T0)
    world.handlers.on_watch_message(
        PushedMessage.from_json(
            {
                "data": base64.b64encode(b'{"opwatch_check": 2}').decode(),
                "attributes": {PARKED_ATTRIBUTE: PARKED_VALUE},
                "messageId": "forged-1",
            }
        )
    )
    assert outcomes(world) == ["INVALID_REQUEST"]
    assert json.loads(world.notifications[0].data)["watch_id"] == "forged-1"
    assert world.gets == 0


def test_a_parked_step_is_the_same_step_with_one_more_park(
    settings_with_parking: Settings, event_log: EventLog
) -> None:
    """What the step carries (its place in the chain, its kind and reason, what was learned,
    whether the overdue message went out) survives the park; only ``parks`` grows."""
    from opwatch.contracts import validate_watch_request
    from opwatch.learned import Expectation
    from tests.fakes import FakeFetch, FakeQueue, RecordingPublish, pending

    clock, queue, publish = Clock(), FakeQueue(), RecordingPublish()
    handlers = Handlers(
        settings_with_parking,
        fetch=FakeFetch([pending()]),
        queue=queue,
        publish=publish,
        clock=clock,
    )
    handlers.on_watch_message(pubsub_message({"operation": OPERATION, "watch_id": "w"}, "m"))
    [task] = queue.tasks
    learned = Expectation("k", 5, 60.0, 120.0, 600.0)
    state = replace(
        checks.decode(task.body),
        seq=7,
        step=checks.Step.CANCEL,
        reason="not needed",
        learned=learned,
        warned=True,
    )
    allowed = settings_with_parking.allowlists
    request = validate_watch_request(
        state.request,
        default_watch_id="w",
        allowed_apis=allowed.apis,
        allowed_notify_topics=allowed.notify_topics,
    )
    queue.tasks.clear()

    handlers.parking.park(request, state)

    [parked] = queue.tasks
    again = checks.decode(parked.body)
    assert (again.seq, again.step, again.reason, again.learned, again.warned) == (
        7,
        checks.Step.CANCEL,
        "not needed",
        learned,
        True,
    )
    assert again.progress.parks == state.progress.parks + 1
    assert parked.when == clock.now + timedelta(seconds=900)
    [line] = [line for line in event_log.lines if line["event"] == "watch.parked"]
    assert (line["watch_id"], line["polls"]) == ("w", 1)

    queue.fail_with = exceptions.ServiceUnavailable("Cloud Tasks down")
    handlers.parking.park(request, state)
    [message] = publish.messages
    assert (message.topic, message.attributes["watch_id"]) == (PARKED, "w")

    publish.fail_with = RuntimeError("Pub/Sub down too")
    handlers.parking.park(request, state)
    assert [line["event"] for line in event_log.lines][-1] == "watch.abandoned"


def test_a_look_rerun_from_its_park_and_the_original_meet_at_one_next_step(
    settings_with_parking: Settings, event_log: EventLog
) -> None:
    """The next step's name does not say whether the look before it was parked: a parked re-run
    and a late dispatch of the original both schedule ``seq + 1``, so the watch stays one chain."""
    from tests.fakes import FakeFetch, FakeQueue, RecordingPublish, pending

    clock, queue = Clock(), FakeQueue()
    handlers = Handlers(
        settings_with_parking,
        fetch=FakeFetch([pending(), pending(), pending()]),
        queue=queue,
        publish=RecordingPublish(),
        clock=clock,
    )
    handlers.on_watch_message(pubsub_message({"operation": OPERATION, "watch_id": "w"}, "m"))
    [task] = queue.tasks
    look = checks.decode(task.body)
    rerun = replace(look, progress=replace(look.progress, parks=2))

    handlers.on_check(rerun, retries=0)
    handlers.on_check(look, retries=0)

    [first, following] = queue.created
    assert checks.TaskName.parse(following) == replace(
        checks.TaskName.parse(first), seq=look.seq + 1
    )
    [scheduled] = [queued for queued in queue.tasks if queued.task_id == following]
    assert checks.decode(scheduled.body).progress.parks == 0
    assert event_log.events[-2:] == ["check.pending", "check.duplicate"]
