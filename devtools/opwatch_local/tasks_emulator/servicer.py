"""Patches 2, 4 and 5: the emulator's servicer with the real service's task-name rules, the task
methods it lacks, and the documented quotas (see the package docstring)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import grpc
from gcloud_tasks_emulator import server as emulator  # type: ignore[import-not-found]
from google.api_core.exceptions import GoogleAPICallError, NotFound
from google.cloud import tasks_v2
from google.protobuf import empty_pb2  # type: ignore[import-untyped]

from .rules import QUOTA_METHODS, TASK_ID, Quota
from .state import TaskState, viewed


class DedupServicer(emulator.Greeter):  # type: ignore[misc]
    """The emulator's servicer plus the real service's task-name rules (see module doc)."""

    def __init__(self, state: Any) -> None:
        super().__init__(state)
        self._seen: set[str] = set()
        # The gRPC pool has several workers: check-and-create must be atomic.
        self._lock = threading.Lock()

    def CreateTask(self, request: Any, context: Any) -> Any:
        name = request.task.name
        with self._lock:
            if name:
                prefix = f"{request.parent}/tasks/"
                if not name.startswith(prefix) or not TASK_ID.fullmatch(name[len(prefix) :]):
                    context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"Task name must be {prefix}TASK_ID with TASK_ID of [A-Za-z0-9_-]"
                        f"{{1,500}}: {name}",
                    )
                if name in self._seen:
                    context.abort(grpc.StatusCode.ALREADY_EXISTS, "Requested entity already exists")
            task = super().CreateTask(request, context)
            if name:
                # Only after success: a refused create must not reserve the name.
                self._seen.add(name)
            return task


class TaskServicer(DedupServicer):
    """The servicer with GetTask, DeleteTask, paged ListTasks, async RunTask and views."""

    _state: TaskState

    def _abort(self, context: Any, err: Exception) -> None:
        if isinstance(err, GoogleAPICallError):
            context.abort(err.grpc_status_code, err.message)
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))

    def CreateTask(self, request: Any, context: Any) -> Any:
        task = super().CreateTask(request, context)
        return viewed(self._state.copy_task(task), request.response_view)

    def GetTask(self, request: Any, context: Any) -> Any:
        try:
            return viewed(self._state.get_task(request.name), request.response_view)
        except NotFound as err:
            self._abort(context, err)

    def DeleteTask(self, request: Any, context: Any) -> Any:
        try:
            self._state.delete_task(request.name)
        except NotFound as err:
            self._abort(context, err)
        return empty_pb2.Empty()

    def ListTasks(self, request: Any, context: Any) -> Any:
        try:
            tasks, token = self._state.list_page(
                request.parent, request.page_size, request.page_token
            )
        except (NotFound, ValueError) as err:
            self._abort(context, err)
        return tasks_v2.ListTasksResponse(
            tasks=[viewed(t, request.response_view) for t in tasks], next_page_token=token
        )

    def RunTask(self, request: Any, context: Any) -> Any:
        try:
            return viewed(self._state.run_task(request.name), request.response_view)
        except NotFound as err:
            self._abort(context, err)


def with_quotas(limits: dict[str, int], window: float, log: Callable[[str], None]) -> type:
    """:class:`TaskServicer` refusing, with RESOURCE_EXHAUSTED, the calls past each quota."""
    quotas = {name: Quota(name, limit, window) for name, limit in limits.items()}
    base = TaskServicer

    def limited(method: str, quota: Quota) -> Callable[..., Any]:
        inner = getattr(base, method)

        def call(self: Any, request: Any, context: Any) -> Any:
            if not quota.take():
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, quota.refusal())
            # One line per call, so a benchmark can count what a design spends of the quota.
            log(f"tasks emulator: {method} counted against {quota.name}")
            return inner(self, request, context)

        return call

    def get_queue(self: Any, request: Any, context: Any) -> Any:
        if request.name not in self._state.queue_names():
            context.abort(grpc.StatusCode.NOT_FOUND, "Requested entity was not found.")
        return base.GetQueue(self, request, context)

    methods: dict[str, Any] = {"GetQueue": get_queue}
    for name, quota in quotas.items():
        for method in QUOTA_METHODS[name]:
            if hasattr(base, method):  # the emulator has no ListLocations
                methods[method] = limited(method, quota)
    described = ", ".join(f"{q.name} {q.limit} per {window:g}s" for q in quotas.values())
    log(f"tasks emulator: quotas enforced: {described}")
    return type("QuotaServicer", (base,), methods)
