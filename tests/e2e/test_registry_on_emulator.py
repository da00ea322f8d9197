"""The registry over the real adapter and the Cloud Tasks emulator (with the launcher's
GetTask, DeleteTask, paged ListTasks and GetQueue, see tests/e2e/test_tasks_emulator.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from google.cloud import tasks_v2

from opwatch import checks
from opwatch.adapters import CloudTasksQueue
from opwatch.checks import Step
from opwatch.contracts import WatchRequest
from opwatch.core import Progress
from opwatch.errors import QueueUnavailable
from opwatch.registry import Registry
from opwatch.settings import TasksConfig
from tests.e2e.tasks_emulator import Target, new_queue

pytestmark = pytest.mark.e2e

OPERATION = "projects/p/locations/us-central1/operations/registry-1"


def queue_for(client: tasks_v2.CloudTasksClient, target: Target) -> CloudTasksQueue:
    config = TasksConfig(queue=new_queue(client), check_url=target.url)
    return CloudTasksQueue(config, client_factory=lambda: client)


def look(watch_id: str, polls: int, *, hours: float = 1) -> checks.CheckTask:
    now = datetime.now(UTC)
    request = WatchRequest(operation=OPERATION, watch_id=watch_id)
    progress = Progress(started=now, polls=polls, seen=True)
    return checks.encode(request, progress, now + timedelta(hours=hours), "c0")


def test_list_get_delete_on_the_queue(client: tasks_v2.CloudTasksClient, target: Target) -> None:
    queue = queue_for(client, target)
    tasks = [look(f"w-{i}", 1) for i in range(3)]
    assert all(queue.create(task) for task in tasks)
    assert not queue.create(tasks[0]), "the name is taken"

    listed = {task.task_id: task for task in queue.list_tasks()}
    assert set(listed) == {task.task_id for task in tasks}
    assert listed[tasks[1].task_id].body == tasks[1].body, "listed with the full view"
    got = queue.get(tasks[2].task_id)
    assert got is not None and got.body == tasks[2].body and not got.in_flight
    assert got.schedule_time is not None

    assert queue.delete(tasks[2].task_id)
    assert queue.get(tasks[2].task_id) is None
    assert not queue.delete(tasks[2].task_id)


def test_first_asks_for_several_names_at_once(
    client: tasks_v2.CloudTasksClient,
    target: Target,
) -> None:
    """The ledger's reader: the first of a chain's candidate names that is on the queue."""
    queue = queue_for(client, target)
    steps = [look("w-first", polls) for polls in (1, 2, 3)]
    assert queue.create(steps[0]) and queue.create(steps[1])
    names = [step.task_id for step in reversed(steps)]  # furthest first, as probe_names gives

    found = queue.first(names)

    assert found is not None and found.task_id == steps[1].task_id
    assert queue.first([steps[2].task_id]) is None
    assert queue.first([]) is None


def test_a_queue_that_is_not_there_is_never_a_missing_task(
    client: tasks_v2.CloudTasksClient,
    target: Target,
) -> None:
    """GetTask and GetQueue both NOT_FOUND: the queue is missing (or re-activating, Queue state
    reference), so the adapter raises rather than answer "no such task"."""
    config = TasksConfig(queue=new_queue(client) + "-never-created", check_url=target.url)
    with pytest.raises(QueueUnavailable):
        CloudTasksQueue(config, client_factory=lambda: client).get("t-1")
    with pytest.raises(QueueUnavailable):
        CloudTasksQueue(config, client_factory=lambda: client).first(["t-1", "t-2"])


def test_cancel_and_advance_over_the_emulator(
    client: tasks_v2.CloudTasksClient,
    target: Target,
) -> None:
    queue = queue_for(client, target)
    queue.create(look("keep", 2))
    queue.create(look("stop", 3))
    registry = Registry(queue, lambda: datetime.now(UTC))

    result = registry.cancel("stop", "done with it")
    [name] = result.cancelled
    assert name.seq == 4
    target.wait_for(1)
    [(_, _, body)] = target.seen
    state = checks.decode(body)
    assert (state.step, state.reason, state.watch_id) == (Step.CANCEL, "done with it", "stop")

    key = checks.operation_key("cloudaicompanion.googleapis.com", OPERATION)
    assert registry.advance(key).advanced == 1
    target.wait_for(2)
    brought = checks.decode(target.seen[1][2])
    assert (brought.watch_id, brought.step, brought.seq, brought.progress.polls) == (
        "keep",
        Step.LOOK,
        3,
        2,
    )
    assert registry.pending() == []


def test_listing_pages_through_more_than_a_thousand_tasks(
    client: tasks_v2.CloudTasksClient,
    target: Target,
) -> None:
    queue = queue_for(client, target)
    created = [
        replace(look(f"w-{i}", 1), when=datetime.now(UTC) + timedelta(hours=2)) for i in range(1001)
    ]
    for task in created:
        queue.create(task)
    assert len(list(queue.list_tasks())) == 1001
