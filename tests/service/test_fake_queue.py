"""The harness's Cloud Tasks queue keeps task names as the service documents, on both sides.

- "another task with the same name can't be created for 1 hour after the original task was
  deleted or executed" (CreateTask, "Task De-duplication",
  https://cloud.google.com/python/docs/reference/cloudtasks/latest/google.cloud.tasks_v2.types.CreateTaskRequest;
  "about 1 hour" in https://cloud.google.com/tasks/docs/quotas);
- "up to 4 hours" before a deleted task's id is released (CreateTask REST reference,
  https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues.tasks/create).

The windows are the fake's constructor arguments (``dedup_window``, ``deleted_id_held``), with
those values as defaults, and run on the fake's clock. Before, the fake kept every name for ever
while two docstrings said "up to 24 h", so no test could see what opwatch does once a name is
free again, and a test relying on a name being taken for longer than Google says passed.
"""

from __future__ import annotations

from datetime import timedelta

from opwatch import checks
from tests.fakes import T0, Clock, FakeQueue


def task(task_id: str = "w-1") -> checks.CheckTask:
    return checks.CheckTask(task_id=task_id, body=b"{}", when=T0)


def test_a_queued_task_s_name_is_taken_however_long_it_waits() -> None:
    clock = Clock()
    queue = FakeQueue(clock=clock)
    assert queue.create(task())
    clock.advance(30 * 86400)
    assert not queue.create(task()), "a task that has not run keeps its name"
    assert queue.created == ["w-1"]


def test_a_name_is_taken_for_about_an_hour_after_its_task_ran_then_free() -> None:
    clock = Clock()
    queue = FakeQueue(clock=clock)
    first = task()
    assert queue.create(first)
    clock.advance(10)
    queue.answered(first)
    assert queue.tasks == []
    clock.advance(3600 - 1)
    assert not queue.create(task()), "inside the dedup window: ALREADY_EXISTS"
    clock.advance(1)
    assert queue.create(task()), "past the window the name can be used again"
    assert queue.created == ["w-1", "w-1"]


def test_a_deleted_task_s_id_is_held_4_hours_not_just_the_dedup_window() -> None:
    clock = Clock()
    queue = FakeQueue(clock=clock)
    assert queue.create(task())
    assert queue.delete("w-1")
    clock.advance(3600 + 1)
    assert not queue.create(task()), "past an hour a deleted id may still be held"
    clock.advance(3 * 3600 - 1)
    assert queue.create(task()), "4 hours after the delete it is released"


def test_a_task_deleted_while_it_ran_keeps_the_longer_hold() -> None:
    clock = Clock()
    queue = FakeQueue(clock=clock)
    first = task()
    assert queue.create(first)
    assert queue.delete("w-1")
    queue.answered(first)  # its dispatch answered after the delete: nothing to remove
    clock.advance(2 * 3600)
    assert not queue.create(task())


def test_without_a_clock_a_used_name_is_never_free() -> None:
    queue = FakeQueue()
    first = task()
    assert queue.create(first)
    queue.answered(first)
    assert queue.taken("w-1") and not queue.create(task())
    assert not queue.taken("other")


def test_the_default_windows_are_the_documented_hour_and_four_hours() -> None:
    queue = FakeQueue()
    assert queue.dedup_window == timedelta(seconds=3600), "Cloud Tasks: 1 hour after it ran"
    assert queue.deleted_id_held == timedelta(seconds=4 * 3600), "up to 4 hours after a delete"


def test_an_explicit_dedup_window_is_kept_on_the_fake_s_clock_on_both_sides() -> None:
    clock = Clock()
    queue = FakeQueue(clock=clock, dedup_window=timedelta(minutes=10))
    first = task()
    assert queue.create(first)
    queue.answered(first)
    clock.advance(600 - 1)
    assert not queue.create(task()), "recreated inside its window: ALREADY_EXISTS"
    clock.advance(1)
    assert queue.create(task()), "recreated once the window has passed: created"
    assert queue.created == ["w-1", "w-1"]


def test_an_explicit_hold_after_a_delete_is_kept_on_both_sides() -> None:
    clock = Clock()
    queue = FakeQueue(clock=clock, deleted_id_held=timedelta(minutes=30))
    assert queue.create(task())
    assert queue.delete("w-1")
    clock.advance(1800 - 1)
    assert not queue.create(task()), "recreated inside the hold: ALREADY_EXISTS"
    clock.advance(1)
    assert queue.create(task()), "recreated after the hold: created"
