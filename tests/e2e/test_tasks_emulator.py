"""The Cloud Tasks methods the launcher adds to gcloud-tasks-emulator, on the running emulator.

Each test names the Cloud Tasks v2 reference page it follows (``projects.locations.queues.tasks``
methods and the ``Task`` resource, https://cloud.google.com/tasks/docs/reference/rest/v2/). The
launcher runs alone here (no Pub/Sub, no functions), with a loopback HTTP server as the tasks'
target. Each test uses its own queue; every wait is bounded.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from google.api_core.exceptions import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from google.cloud import tasks_v2

from opwatch_local.procs import free_port, wait_until
from tests.e2e.tasks_emulator import PARENT, Target, new_queue

pytestmark = pytest.mark.e2e

DOCS = "https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues.tasks"
BASIC, FULL = tasks_v2.Task.View.BASIC, tasks_v2.Task.View.FULL


def create(
    client: tasks_v2.CloudTasksClient,
    queue: str,
    task_id: str,
    url: str,
    *,
    body: bytes = b'{"n": 1}',
    schedule: datetime | None = None,
    view: tasks_v2.Task.View = tasks_v2.Task.View.VIEW_UNSPECIFIED,
) -> tasks_v2.Task:
    task = tasks_v2.Task(
        name=f"{queue}/tasks/{task_id}",
        http_request=tasks_v2.HttpRequest(
            url=url,
            http_method=tasks_v2.HttpMethod.POST,
            headers={"Content-Type": "application/json"},
            body=body,
        ),
        schedule_time=schedule,
    )
    request = tasks_v2.CreateTaskRequest(parent=queue, task=task, response_view=view)
    return client.create_task(request=request, timeout=10)


def get(
    client: tasks_v2.CloudTasksClient, name: str, view: tasks_v2.Task.View = BASIC
) -> tasks_v2.Task:
    return client.get_task(request=tasks_v2.GetTaskRequest(name=name, response_view=view))


def gone(client: tasks_v2.CloudTasksClient, name: str) -> bool:
    try:
        get(client, name)
    except NotFound:
        return True
    return False


def in_an_hour() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


# --- GetTask -------------------------------------------------------------------------------------


def test_get_task_returns_basic_by_default_full_on_request(
    client: tasks_v2.CloudTasksClient,
) -> None:
    """GetTask and the Task resource (``.../get``, ``Task``, ``Task.View``).

    "By default response_view is BASIC; not all information is retrieved by default because some
    data, such as payloads, might be desirable to return only when needed"; FULL: "All information
    is returned". ``create_time`` "will be truncated to the nearest second"; ``view`` says which
    subset was returned. CreateTask takes the same ``response_view`` and keeps ``schedule_time``
    (``.../create``: "If schedule_time is not set or is in the past then Cloud Tasks will set it
    to the current time").
    """
    queue = new_queue(client)
    schedule = in_an_hour()
    before = datetime.now(UTC).replace(microsecond=0)
    created = create(client, queue, "get-1", "http://127.0.0.1:9/", schedule=schedule)
    assert (created.view, created.http_request.body) == (BASIC, b"")
    full_create = create(client, queue, "get-2", "http://127.0.0.1:9/", view=FULL)
    assert (full_create.view, full_create.http_request.body) == (FULL, b'{"n": 1}')
    assert before <= full_create.schedule_time <= datetime.now(UTC)  # unset: now

    basic = get(client, created.name, tasks_v2.Task.View.VIEW_UNSPECIFIED)
    full = get(client, created.name, FULL)
    assert (basic.view, basic.http_request.body) == (BASIC, b"")
    assert (full.view, full.http_request.body) == (FULL, b'{"n": 1}')
    assert basic.http_request.url == "http://127.0.0.1:9/"
    assert basic.http_request.headers["Content-Type"] == "application/json"
    assert basic.schedule_time == schedule
    assert before <= basic.create_time <= datetime.now(UTC)
    assert basic.create_time.microsecond == 0
    assert (basic.dispatch_count, basic.response_count) == (0, 0)
    assert "first_attempt" not in basic and "last_attempt" not in basic


def test_get_task_is_not_found_for_unknown_and_completed_tasks(
    client: tasks_v2.CloudTasksClient, target: Target
) -> None:
    """GetTask (``.../get``): a task that executed successfully is deleted by the service
    (``.../run``: "If Cloud Tasks receives a successful response from the task's target, then the
    task will be deleted"), so, like a name never used, it answers NOT_FOUND."""
    queue = new_queue(client)
    with pytest.raises(NotFound):
        get(client, f"{queue}/tasks/never-created")
    with pytest.raises(NotFound):
        get(client, f"{PARENT}/queues/no-such-queue/tasks/x")
    task = create(client, queue, "done-1", target.url)
    target.wait_for(1)
    wait_until(lambda: gone(client, task.name), 5, describe="completed task gone")


# --- DeleteTask ----------------------------------------------------------------------------------


def test_deleted_task_is_not_dispatched_and_its_name_stays_reserved(
    client: tasks_v2.CloudTasksClient, target: Target
) -> None:
    """DeleteTask (``.../delete``): "A task can be deleted if it is scheduled or dispatched. A task
    cannot be deleted if it has executed successfully or permanently failed." (NOT_FOUND). The name
    stays reserved (``.../create``: "another task with the same name can't be created for ~1hour
    after the original task was deleted or executed"): CreateTask answers ALREADY_EXISTS."""
    queue = new_queue(client)
    due = datetime.now(UTC) + timedelta(seconds=1)
    task = create(client, queue, "del-1", target.url, schedule=due)
    client.delete_task(request=tasks_v2.DeleteTaskRequest(name=task.name), timeout=10)
    assert gone(client, task.name)
    time.sleep(2)  # a second past its schedule_time
    assert target.seen == []
    with pytest.raises(NotFound):
        client.delete_task(request=tasks_v2.DeleteTaskRequest(name=task.name), timeout=10)
    with pytest.raises(NotFound):
        client.delete_task(name=f"{queue}/tasks/never-created", timeout=10)
    with pytest.raises(AlreadyExists):
        create(client, queue, "del-1", target.url)

    done = create(client, queue, "del-done", target.url)
    target.wait_for(1)
    wait_until(lambda: gone(client, done.name), 5, describe="completed task gone")
    with pytest.raises(NotFound):
        client.delete_task(name=done.name, timeout=10)


def test_a_task_deleted_while_dispatched_is_not_retried(
    client: tasks_v2.CloudTasksClient, target: Target
) -> None:
    """DeleteTask on a dispatched task (``.../delete``: deletable "if it is scheduled or
    dispatched"): its attempt fails, yet it is not dispatched again."""
    target.status, target.hold = 500, threading.Event()
    queue = new_queue(client)
    task = create(client, queue, "del-flight", target.url)
    target.wait_for(1)
    client.delete_task(name=task.name, timeout=10)
    target.hold.set()
    time.sleep(1)  # the emulator would retry a failed task after ~0.1 s
    assert target.names() == ["del-flight"]
    assert gone(client, task.name)


# --- ListTasks -----------------------------------------------------------------------------------


def test_list_tasks_pages_of_at_most_1000(client: tasks_v2.CloudTasksClient) -> None:
    """ListTasks (``.../list``): page_size "The maximum page size is 1000. If unspecified, the page
    size will be the maximum"; more tasks are signalled by ``next_page_token``, which the next call
    passes as ``page_token``. Larger sizes are coerced to the maximum (AIP-158; the Cloud Tasks
    page does not say whether it refuses them); a negative size or a foreign token is
    INVALID_ARGUMENT (AIP-158 too)."""
    queue = new_queue(client, paused=True)  # nothing is dispatched meanwhile
    names = {create(client, queue, f"page-{i}", "http://127.0.0.1:9/").name for i in range(1001)}

    first = client.list_tasks(request=tasks_v2.ListTasksRequest(parent=queue))
    assert len(first.tasks) == 1000 and first.next_page_token
    second = client.list_tasks(
        request=tasks_v2.ListTasksRequest(parent=queue, page_token=first.next_page_token)
    )
    assert len(second.tasks) == 1 and not second.next_page_token
    assert {t.name for t in [*first.tasks, *second.tasks]} == names

    sizes, seen, token = [], [], ""
    for _ in range(100):  # bounded: a token that never runs out fails instead of hanging
        page = client.list_tasks(
            request=tasks_v2.ListTasksRequest(parent=queue, page_size=400, page_token=token)
        )
        sizes.append(len(page.tasks))
        seen += [t.name for t in page.tasks]
        token = page.next_page_token
        if not token:
            break
    else:
        pytest.fail("ListTasks still had a next_page_token after 100 pages")
    assert sizes == [400, 400, 201]
    assert len(seen) == len(set(seen)) and set(seen) == names
    # The client's pager follows the tokens too.
    assert len(list(client.list_tasks(parent=queue))) == 1001

    huge = client.list_tasks(request=tasks_v2.ListTasksRequest(parent=queue, page_size=5000))
    assert len(huge.tasks) == 1000
    with pytest.raises(InvalidArgument):
        client.list_tasks(request=tasks_v2.ListTasksRequest(parent=queue, page_size=-1))
    other = new_queue(client)
    with pytest.raises(InvalidArgument):
        client.list_tasks(
            request=tasks_v2.ListTasksRequest(parent=other, page_token=first.next_page_token)
        )
    with pytest.raises(InvalidArgument):
        client.list_tasks(request=tasks_v2.ListTasksRequest(parent=queue, page_token="junk"))
    with pytest.raises(NotFound):
        client.list_tasks(request=tasks_v2.ListTasksRequest(parent=f"{PARENT}/queues/nope"))


def test_list_tasks_views_and_which_tasks(
    client: tasks_v2.CloudTasksClient, target: Target
) -> None:
    """ListTasks (``.../list``): "Lists the tasks in a queue"; "By default response_view is BASIC"
    (no body), FULL returns all. Listed are the tasks the queue still holds: scheduled ones and one
    being dispatched (``Task.dispatch_count`` "includes attempts which have been dispatched but
    haven't received a response"), not those that succeeded (deleted, ``.../run``)."""
    target.hold = threading.Event()
    queue, other = new_queue(client), new_queue(client)
    create(client, queue, "list-later", target.url, schedule=in_an_hour())
    create(client, other, "list-elsewhere", target.url, schedule=in_an_hour())
    create(client, queue, "list-flight", target.url)
    create(client, queue, "list-done", target.url, schedule=in_an_hour())
    client.run_task(name=f"{queue}/tasks/list-done", timeout=10)
    target.wait_for(2)  # both held by the target now

    def listed(view: tasks_v2.Task.View) -> dict[str, tasks_v2.Task]:
        tasks = client.list_tasks(
            request=tasks_v2.ListTasksRequest(parent=queue, response_view=view)
        )
        return {t.name.rsplit("/", 1)[1]: t for t in tasks}

    basic = listed(tasks_v2.Task.View.VIEW_UNSPECIFIED)
    assert set(basic) == {"list-later", "list-flight", "list-done"}
    assert {(t.view, t.http_request.body) for t in basic.values()} == {(BASIC, b"")}
    assert basic["list-flight"].dispatch_count == 1
    assert basic["list-flight"].response_count == 0
    full = listed(FULL)
    assert {(t.view, t.http_request.body) for t in full.values()} == {(FULL, b'{"n": 1}')}

    target.hold.set()
    wait_until(lambda: set(listed(BASIC)) == {"list-later"}, 5, describe="done tasks unlisted")


# --- RunTask -------------------------------------------------------------------------------------


def test_run_task_dispatches_a_later_task_now_and_once(
    client: tasks_v2.CloudTasksClient, target: Target
) -> None:
    """RunTask (``.../run``): "Forces a task to run now ... even if ... the queue has reached its
    RateLimits or is PAUSED"; "The dispatched task is returned ... after the task is dispatched but
    before the task is received by its target"; after a successful response "the task will be
    deleted"; NOT_FOUND "when it is called on a task that has already succeeded". The name stays
    reserved (``.../create``)."""
    target.hold = threading.Event()
    queue = new_queue(client, paused=True)
    task = create(client, queue, "run-1", target.url, schedule=in_an_hour())
    started = time.monotonic()
    ran = client.run_task(request=tasks_v2.RunTaskRequest(name=task.name), timeout=10)
    assert ran.name == task.name and ran.view == BASIC and ran.http_request.body == b""
    assert (ran.dispatch_count, ran.response_count) == (1, 0)  # returned before the answer
    target.wait_for(1, timeout=5)
    assert target.seen[0][0] - started < 2, "RunTask did not dispatch within 2 s"
    assert target.seen[0][1:] == ("run-1", b'{"n": 1}')

    in_flight = get(client, task.name)  # the target holds the request: in flight
    assert (in_flight.dispatch_count, in_flight.response_count) == (1, 0)
    assert "response_status" not in in_flight.last_attempt

    target.hold.set()
    wait_until(lambda: gone(client, task.name), 5, describe="task gone after success")
    with pytest.raises(NotFound):
        client.run_task(name=task.name, timeout=10)
    with pytest.raises(NotFound):
        client.run_task(name=f"{queue}/tasks/never-created", timeout=10)
    with pytest.raises(AlreadyExists):
        create(client, queue, "run-1", target.url)


def test_run_task_is_not_dispatched_again_at_its_schedule_time(
    client: tasks_v2.CloudTasksClient, target: Target
) -> None:
    """RunTask (``.../run``): once its target answered 2xx "the task will be deleted", so its
    original ``schedule_time`` passes without a second dispatch (here on a running queue)."""
    queue = new_queue(client)
    task = create(
        client, queue, "run-once", target.url, schedule=datetime.now(UTC) + timedelta(seconds=2)
    )
    client.run_task(name=task.name, timeout=10)
    target.wait_for(1, timeout=5)
    time.sleep(3)  # a second past the schedule_time
    assert target.names() == ["run-once"]


def test_attempt_fields_after_a_failed_run(
    client: tasks_v2.CloudTasksClient, target: Target
) -> None:
    """Task fields (``Task``, ``Attempt``): ``dispatch_count``, ``response_count``;
    ``first_attempt`` "Only dispatch_time will be set"; ``last_attempt`` with ``response_time`` and
    ``response_status``. RunTask (``.../run``): on failure "the task's schedule_time will be reset
    to the time that RunTask was called plus the retry delay" (the emulator has none). A task that
    exhausts its retries is dropped: NOT_FOUND."""
    target.status = 500
    queue = new_queue(client, paused=True)  # only RunTask dispatches
    task = create(client, queue, "fail-1", target.url, schedule=in_an_hour())
    client.run_task(name=task.name, timeout=10)
    target.wait_for(1)

    def answered(count: int) -> tasks_v2.Task:
        wait_until(lambda: get(client, task.name).response_count == count, 5, describe="answer")
        return get(client, task.name)

    after_one = answered(1)
    assert after_one.dispatch_count == 1
    first = after_one.first_attempt
    assert "dispatch_time" in first and "response_time" not in first
    last = after_one.last_attempt
    assert last.dispatch_time == first.dispatch_time
    assert last.schedule_time == task.schedule_time
    assert last.dispatch_time <= last.response_time
    assert (last.response_status.code, last.response_status.message) == (13, "HTTP 500")
    assert after_one.schedule_time < task.schedule_time - timedelta(minutes=59)

    client.run_task(name=task.name, timeout=10)
    after_two = answered(2)
    assert after_two.dispatch_count == 2
    assert after_two.first_attempt == first
    assert after_two.last_attempt.dispatch_time > first.dispatch_time

    client.run_task(name=task.name, timeout=10)  # attempt 3 = 1 + MAX_RETRIES: the last
    target.wait_for(3)
    wait_until(lambda: gone(client, task.name), 5, describe="dropped after its retries")


def test_an_unreachable_target_is_no_response(client: tasks_v2.CloudTasksClient) -> None:
    """``Task.response_count``: "The number of attempts which have received a response"; a refused
    connection is none, and ``last_attempt.response_status`` says UNAVAILABLE (14)."""
    queue = new_queue(client, paused=True)
    task = create(client, queue, "refused", f"http://127.0.0.1:{free_port()}/")
    client.run_task(name=task.name, timeout=10)
    wait_until(lambda: "response_status" in get(client, task.name).last_attempt, 5, describe="end")
    got = get(client, task.name)
    assert (got.dispatch_count, got.response_count) == (1, 0)
    assert got.last_attempt.response_status.code == 14
    assert "response_time" not in got.last_attempt


# --- the emulator's own dispatch thread ----------------------------------------------------------


def test_queue_keeps_dispatching_when_tasks_vanish_under_its_thread(
    client: tasks_v2.CloudTasksClient, target: Target
) -> None:
    """Thread safety: tasks deleted or run by RPCs while the queue's dispatch thread holds its
    snapshot of them must not stop that thread (the emulator's raised NotFound and died)."""
    queue = new_queue(client)
    due = datetime.now(UTC) + timedelta(seconds=1)
    names = [create(client, queue, f"race-{i}", target.url, schedule=due).name for i in range(30)]
    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
    for i, name in enumerate(names):
        try:
            if i % 2:
                client.delete_task(name=name, timeout=10)
            else:
                client.run_task(name=name, timeout=10)
        except NotFound:
            pass  # already dispatched and done
    wait_until(lambda: all(gone(client, n) for n in names), 10, describe="all settled")
    create(client, queue, "race-after", target.url)
    wait_until(lambda: "race-after" in target.names(), 5, describe="the queue still dispatches")


# --- quotas (https://cloud.google.com/tasks/docs/quotas) ----------------------------------------


def test_list_requests_past_the_quota_are_resource_exhausted(
    small_quotas: tasks_v2.CloudTasksClient,
) -> None:
    """The quotas page: "List requests (ListTasks, ListQueues, ListLocations)" share one
    per-minute quota (600 by default; 3 here): the next list of either kind is refused."""
    queue = new_queue(small_quotas)
    small_quotas.list_tasks(parent=queue)
    small_quotas.list_queues(parent=PARENT)
    small_quotas.list_tasks(parent=queue)
    for refused in (
        lambda: small_quotas.list_tasks(parent=queue),
        lambda: small_quotas.list_queues(parent=PARENT),
    ):
        with pytest.raises(ResourceExhausted, match="List requests"):
            refused()
    # Other methods are not List requests: creating and reading a task still works.
    name = create(small_quotas, queue, "t-1", "http://127.0.0.1:9/", schedule=in_an_hour()).name
    assert get(small_quotas, name).name == name


def test_force_runs_past_their_quota_are_resource_exhausted(
    small_quotas: tasks_v2.CloudTasksClient, target: Target
) -> None:
    """The quotas page: RunTask ("force run") 60 a minute (2 here), "meant for manual
    debugging"."""
    queue = new_queue(small_quotas)
    names = [
        create(small_quotas, queue, f"t-{n}", target.url, schedule=in_an_hour()).name
        for n in range(3)
    ]
    small_quotas.run_task(name=names[0])
    small_quotas.run_task(name=names[1])
    with pytest.raises(ResourceExhausted, match="Force run"):
        small_quotas.run_task(name=names[2])


def test_get_queue_of_an_unknown_queue_is_not_found(client: tasks_v2.CloudTasksClient) -> None:
    """GetQueue answers NOT_FOUND for a queue that is not there (projects.locations.queues/get):
    how the adapter tells a missing queue from a missing task."""
    assert client.get_queue(name=new_queue(client)).name
    with pytest.raises(NotFound):
        client.get_queue(name=f"{PARENT}/queues/never-created")
