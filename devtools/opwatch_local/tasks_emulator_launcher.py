"""Launch gcloud-tasks-emulator 0.6.2 bound to loopback, with the task methods it lacks.

Run it with the emulator's own interpreter (it pins protobuf<5, so it lives in its own venv)::

    .venv-tasks-emulator/bin/python devtools/opwatch_local/tasks_emulator_launcher.py \\
        --port 9090 --queue projects/P/locations/L/queues/Q --max-retries 5

This file imports only what that venv has (the emulator, grpc, google-cloud-tasks); nothing from
opwatch. It changes the emulator's behaviour **at runtime only, never by editing its files**:

1. **Loopback bind.** The emulator hard-codes ``[::]:PORT`` (every interface). We wrap
   ``grpc.server(...)`` so that ``add_insecure_port`` binds ``127.0.0.1:PORT`` instead, with
   ``SO_REUSEPORT`` off (gRPC turns it on by default, which would let a second emulator silently
   share the port). A failed bind ends the process with exit code 3 and a clear message; the
   emulator would otherwise log a thread traceback and keep running without an API.
2. **Task-name dedup.** The real Cloud Tasks answers ``ALREADY_EXISTS`` to a CreateTask whose name
   was used before (for a while even after the task ran or was deleted). opwatch relies on that to
   keep one polling chain per watch when a request is delivered twice; the emulator accepts
   duplicates. We subclass the emulator's servicer (``server.Greeter``) and swap it in before
   ``main()`` builds the server, so a reused name answers ``ALREADY_EXISTS``. Names are remembered
   for the emulator's lifetime. Like the real service, a name must be
   ``{parent}/tasks/{ID}`` with ID of letters, digits, ``-`` or ``_`` (at most 500), else
   ``INVALID_ARGUMENT``.
3. **Bounded dispatch.** The emulator's ``urlopen`` has no timeout; one hung handler would block
   its queue forever. We set a socket default timeout (``--dispatch-timeout``, default 600 s, the
   real service's default dispatch deadline); a timed-out attempt counts as failed and is retried.

4. **Task methods as documented** (Cloud Tasks v2 RPC reference, ``CloudTasks`` service and the
   ``Task`` message). We swap the emulator's ``QueueState`` for a subclass that keeps every live
   task (scheduled, or dispatched and awaiting its response) in an index under one lock, and
   extend the servicer:

   - **GetTask** (emulator: UNIMPLEMENTED) returns a live task; ``NOT_FOUND`` for an unknown name
     and for a task that succeeded, permanently failed or was deleted.
   - **DeleteTask** (emulator: UNIMPLEMENTED) removes a scheduled or dispatched task, so it is not
     dispatched (again); ``NOT_FOUND`` as for GetTask. The name stays reserved (patch 2).
   - **ListTasks** (emulator: every queued task, bodies included, no paging; the task being
     dispatched was missing; an unknown queue answered ``UNKNOWN``): the live tasks of that queue
     in creation order, ``page_size`` 0 meaning and above 1000 coerced to 1000 (the documented
     maximum), an opaque ``page_token``/``next_page_token``, ``NOT_FOUND`` for an unknown queue,
     ``INVALID_ARGUMENT`` for a negative size or a foreign token.
   - **RunTask** (emulator: dispatched in the RPC thread, so the call waited for the target's
     answer, and a task already picked up by the queue thread made that thread die on
     ``NotFound``): dispatches now, on its own thread, even if the queue is PAUSED, the task is
     scheduled later or is already running; returns the task *after dispatch, before the target
     answers*. On success the task is gone; on failure its ``schedule_time`` becomes now (the
     emulator has no RetryConfig: its retry delay is its 0.1 s loop).
   - **Views.** Get, List, Run and Create honour ``response_view``: BASIC (the default) leaves out
     the request body, FULL includes it; ``Task.view`` says which was returned. (The View enum's
     reference names the body of an AppEngineHttpRequest; we also leave out an HttpRequest's.)
   - **Output fields.** ``create_time`` (truncated to the second), ``schedule_time`` (now if unset
     or past), ``dispatch_count`` (counted at dispatch, so it includes the attempt in flight),
     ``response_count`` (attempts answered with an HTTP status), ``first_attempt`` (only
     ``dispatch_time``) and ``last_attempt`` (``schedule_time``, ``dispatch_time``; once answered,
     ``response_time`` and ``response_status``, the HTTP status mapped to a ``google.rpc.Code`` as
     in ``code.proto``). A task in flight shows ``dispatch_count > response_count`` and a
     ``last_attempt`` without ``response_status``. A failed connection or a timeout is not a
     response: ``response_status`` UNAVAILABLE or DEADLINE_EXCEEDED, ``response_count`` unchanged.
   - Dispatch is as the emulator's: one task at a time per queue thread, due when
     ``schedule_time`` has passed, success = HTTP 2xx, dropped after ``--max-retries`` retries.

5. **Quotas as documented** (Cloud Tasks quotas page, https://cloud.google.com/tasks/docs/quotas):
   "List requests (ListTasks, ListQueues, ListLocations)" 600 a minute, and RunTask ("force
   run") 60 a minute, each answered ``RESOURCE_EXHAUSTED`` past its limit, in a sliding window
   (``--list-quota-per-minute``, ``--run-quota-per-minute``, ``--quota-window`` make them small
   for tests). A design that leans on those calls fails here first, as it would in production.
   GetQueue of an unknown queue answers ``NOT_FOUND`` (the emulator: ``UNKNOWN``).

``--max-retries`` is passed through so a failing task is not retried every 0.1 s forever.

Not like the real service even so: no queue rate limits or RetryConfig backoff, no dispatch deadline
per task (patch 3 bounds every attempt alike), page tokens do not expire after 2 hours, names
stay reserved for the emulator's lifetime (not ~1 hour), and no OIDC ``Authorization`` header.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import socket
import sys
import threading
import time
import urllib.error
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "DOCUMENTED_QUOTAS",
    "MAX_PAGE_SIZE",
    "Quota",
    "decode_page_token",
    "encode_page_token",
    "install_dedup",
    "install_loopback_bind",
    "install_quotas",
    "install_task_api",
    "main",
    "page_bounds",
    "rpc_code_for_http",
]

BIND_FAILED_EXIT = 3
_TASK_ID = re.compile(r"[A-Za-z0-9_-]{1,500}")


def install_loopback_bind(host: str, log: Callable[[str], None]) -> None:
    """Make every ``grpc.server()`` created from now on bind ``host`` instead of ``[::]``."""
    import grpc

    original_server = grpc.server

    def loopback_server(*args: Any, **kwargs: Any) -> Any:
        options = list(kwargs.pop("options", None) or [])
        options.append(("grpc.so_reuseport", 0))
        server = original_server(*args, options=options, **kwargs)
        original_add = server.add_insecure_port

        def add_insecure_port(address: str) -> int:
            port = address.rsplit(":", 1)[1]
            wanted = f"{host}:{port}"
            try:
                bound = int(original_add(wanted))
            except RuntimeError as exc:
                bound, reason = 0, str(exc)
            else:
                reason = "bind returned 0"
            if not bound:
                # The emulator binds in a thread; exiting the process is the only clear signal.
                log(f"tasks emulator: cannot bind {wanted} ({reason}); is the port in use?")
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(BIND_FAILED_EXIT)
            log(f"tasks emulator: API bound to {wanted} only (not [::])")
            return bound

        server.add_insecure_port = add_insecure_port
        return server

    grpc.server = loopback_server


def install_dedup(log: Callable[[str], None]) -> None:
    """Swap the emulator's servicer for one that answers ALREADY_EXISTS to a reused task name."""
    import grpc
    from gcloud_tasks_emulator import server as emulator  # type: ignore[import-not-found]

    base = emulator.Greeter

    class DedupServicer(base):  # type: ignore[misc, valid-type]
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
                    if not name.startswith(prefix) or not _TASK_ID.fullmatch(name[len(prefix) :]):
                        context.abort(
                            grpc.StatusCode.INVALID_ARGUMENT,
                            f"Task name must be {prefix}TASK_ID with TASK_ID of [A-Za-z0-9_-]"
                            f"{{1,500}}: {name}",
                        )
                    if name in self._seen:
                        context.abort(
                            grpc.StatusCode.ALREADY_EXISTS, "Requested entity already exists"
                        )
                task = super().CreateTask(request, context)
                if name:
                    # Only after success: a refused create must not reserve the name.
                    self._seen.add(name)
                return task

    emulator.Greeter = DedupServicer
    log("tasks emulator: task-name dedup enabled (ALREADY_EXISTS on a reused name)")


# --- patch 4: the task methods ------------------------------------------------------------------

MAX_PAGE_SIZE = 1000  # ListTasksRequest.page_size: "The maximum page size is 1000."
# google.rpc.Code for an HTTP status, as code.proto maps them (Cloud Tasks does not document it).
_HTTP_TO_RPC = {
    400: 3,
    401: 16,
    403: 7,
    404: 5,
    409: 10,
    429: 8,
    499: 1,
    500: 13,
    501: 12,
    503: 14,
    504: 4,
}
_UNKNOWN, _DEADLINE_EXCEEDED, _FAILED_PRECONDITION, _UNAVAILABLE = 2, 4, 9, 14


def rpc_code_for_http(status: int) -> int:
    """The ``google.rpc.Code`` that ``code.proto`` pairs with an HTTP status (0 for 2xx)."""
    if 200 <= status < 300:
        return 0
    if status in _HTTP_TO_RPC:
        return _HTTP_TO_RPC[status]
    return _FAILED_PRECONDITION if 400 <= status < 500 else _UNKNOWN


def encode_page_token(queue: str, after: int) -> str:
    """An opaque token: the queue it belongs to and the last sequence number returned."""
    raw = json.dumps({"queue": queue, "after": after}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_page_token(queue: str, token: str) -> int:
    """The sequence number a token continues after; ValueError if it is not one of ours."""
    if not token:
        return -1
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        after = data["after"]
        ok = data["queue"] == queue and isinstance(after, int)
    except (ValueError, TypeError, KeyError):
        ok = False
    if not ok:
        raise ValueError(f"Invalid page_token for {queue}")
    return int(after)


def page_bounds(page_size: int) -> int:
    """Tasks per page: 0 means the maximum, larger asks are coerced to it (AIP-158)."""
    if page_size < 0:
        raise ValueError("page_size must not be negative")
    return min(page_size or MAX_PAGE_SIZE, MAX_PAGE_SIZE)


@dataclass(eq=False)
class _Live:
    """A task the service still holds: scheduled, or dispatched and awaiting its response."""

    task: Any  # tasks_v2.Task, owned by the state; read and written under its lock only
    queue: str
    seq: int  # creation order: ListTasks pages follow it
    due: float  # schedule_time, epoch seconds
    running: int = 0  # attempts dispatched and not answered yet
    attempts: int = 0  # attempts started, to tell the latest one from an older one


@dataclass(frozen=True)
class _Outcome:
    code: int  # google.rpc.Code
    message: str
    responded: bool  # an HTTP status came back (a failed connection or a timeout did not)
    ok: bool  # 2xx: the task is done


def install_task_api(log: Callable[[str], None]) -> None:
    """Give the emulator GetTask, DeleteTask, paged ListTasks, RunTask and the Task output fields.

    Wraps whatever servicer ``server.Greeter`` is at call time (so call it after
    :func:`install_dedup`) and swaps ``server.QueueState``; see patch 4 in the module docstring.
    """
    import grpc
    from gcloud_tasks_emulator import server as emulator
    from google.api_core.exceptions import GoogleAPICallError, NotFound
    from google.cloud import tasks_v2
    from google.protobuf import empty_pb2  # type: ignore[import-untyped]

    full_view = tasks_v2.Task.View.FULL

    def now() -> datetime:
        return datetime.now(UTC)

    def not_found() -> Exception:
        # The real service's wording; gRPC NOT_FOUND via GoogleAPICallError.grpc_status_code.
        return NotFound("Requested entity was not found.")  # type: ignore[no-untyped-call]

    def copy_of(task: Any) -> Any:
        pb = type(tasks_v2.Task.pb(task))()
        pb.CopyFrom(tasks_v2.Task.pb(task))
        return pb

    def viewed(pb: Any, view: Any) -> Any:
        """``pb`` (a copy) as a Task in ``view``: BASIC (or unset) drops the request body."""
        if view == full_view:
            pb.view = full_view
        else:
            pb.view = tasks_v2.Task.View.BASIC
            for field in ("http_request", "app_engine_http_request"):
                if pb.HasField(field):
                    getattr(pb, field).ClearField("body")
        return tasks_v2.Task.wrap(pb)

    class TaskState(emulator.QueueState):  # type: ignore[misc]
        """The emulator's queue state plus an index of live tasks, all under one lock."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # The gRPC workers, one dispatch thread per queue and RunTask's threads share it.
            self._lock = threading.RLock()
            self._live: dict[str, _Live] = {}
            self._names: set[str] = set()  # every name ever used, for generated names
            self._seq = 0

        # -- creating and forgetting ----------------------------------------------------------

        def create_task(self, queue: str, task: Any) -> Any:
            with self._lock:
                pb = tasks_v2.Task.pb(task)
                if not pb.name and queue in self._queue_tasks:
                    pb.name = self._new_name(queue)
                created = now()
                for field in ("dispatch_count", "response_count", "first_attempt", "last_attempt"):
                    pb.ClearField(field)  # output only: whatever the client sent is ignored
                pb.create_time.FromDatetime(created.replace(microsecond=0))
                if not pb.HasField("schedule_time") or _epoch(pb.schedule_time) < _epoch_of(
                    created
                ):
                    pb.schedule_time.FromDatetime(created)
                pb.view = full_view  # what we keep; responses are cut to the requested view
                task = super().create_task(queue, task)  # FailedPrecondition: no such queue
                self._seq += 1
                self._names.add(pb.name)
                self._live[pb.name] = _Live(task, queue, self._seq, _epoch(pb.schedule_time))
                return task

        def _new_name(self, queue: str) -> str:
            n = int(time.time() * 1_000_000)
            while f"{queue}/tasks/{n}" in self._names:
                n += 1
            return f"{queue}/tasks/{n}"

        def _forget(self, live: _Live) -> None:
            del self._live[live.task.name]
            tasks = self._queue_tasks.get(live.queue)
            if tasks is not None:
                tasks[:] = [t for t in tasks if t is not live.task]

        def _forget_queue(self, queue: str) -> None:
            for live in [x for x in self._live.values() if x.queue == queue]:
                del self._live[live.task.name]

        def purge_queue(self, queue_name: str) -> Any:
            with self._lock:
                self._forget_queue(queue_name)
                return super().purge_queue(queue_name)

        def delete_queue(self, name: str) -> None:
            with self._lock:
                self._forget_queue(name)
                super().delete_queue(name)

        # -- the RPCs' work -------------------------------------------------------------------

        def _find(self, name: str) -> _Live:
            live = self._live.get(name)
            if live is None:
                raise not_found()
            return live

        def get_task(self, name: str) -> Any:
            with self._lock:
                return copy_of(self._find(name).task)

        def copy_task(self, task: Any) -> Any:
            with self._lock:
                return copy_of(task)

        def delete_task(self, name: str) -> None:
            with self._lock:
                self._forget(self._find(name))  # an attempt in flight finds it gone

        def list_page(self, queue: str, page_size: int, token: str) -> tuple[list[Any], str]:
            size = page_bounds(page_size)
            with self._lock:
                if queue not in self._queues:
                    raise not_found()
                after = decode_page_token(queue, token)
                rows = sorted(
                    (x for x in self._live.values() if x.queue == queue and x.seq > after),
                    key=lambda x: x.seq,
                )
                page = rows[:size]
                more = len(rows) > size
                next_token = encode_page_token(queue, page[-1].seq) if more else ""
                return [copy_of(x.task) for x in page], next_token

        def run_task(self, name: str) -> Any:
            with self._lock:
                live = self._find(name)
                attempt, snapshot = self._begin(live)
                dispatched = copy_of(live.task)
            threading.Thread(
                target=self._finish,
                args=(live, attempt, snapshot),
                name=f"run-task-{name.rsplit('/', 1)[-1]}",
                daemon=True,
            ).start()
            return dispatched

        # -- dispatch -------------------------------------------------------------------------

        def submit_task(self, task_name: str, force_run: bool = False) -> Any:
            """The emulator's per-queue thread calls this for each task it holds, every 0.1 s."""
            if force_run:
                return self.run_task(task_name)
            with self._lock:
                live = self._live.get(task_name)  # None: deleted or done since the thread looked
                if live is None or live.running or live.due > time.time():
                    return None
                queue = self._queues.get(live.queue)
                if queue is None or queue.state != emulator.Queue.State.RUNNING:
                    return None
                attempt, snapshot = self._begin(live)
            self._finish(live, attempt, snapshot)  # one at a time per queue, like the emulator
            return None

        def _begin(self, live: _Live) -> tuple[int, Any]:
            pb = tasks_v2.Task.pb(live.task)
            dispatched = now()
            pb.dispatch_count += 1
            if not pb.HasField("first_attempt"):
                pb.first_attempt.dispatch_time.FromDatetime(dispatched)
            pb.last_attempt.Clear()
            pb.last_attempt.schedule_time.CopyFrom(pb.schedule_time)
            pb.last_attempt.dispatch_time.FromDatetime(dispatched)
            live.running += 1
            live.attempts += 1
            return live.attempts, tasks_v2.Task.wrap(copy_of(live.task))

        def _finish(self, live: _Live, attempt: int, snapshot: Any) -> None:
            outcome = self._send(live.queue, snapshot)
            with self._lock:
                live.running -= 1
                if self._live.get(snapshot.name) is not live:
                    return  # deleted while in flight
                pb = tasks_v2.Task.pb(live.task)
                answered = now()
                if outcome.responded:
                    pb.response_count += 1
                if attempt == live.attempts:  # an older concurrent attempt does not overwrite
                    if outcome.responded:
                        pb.last_attempt.response_time.FromDatetime(answered)
                    pb.last_attempt.response_status.code = outcome.code
                    pb.last_attempt.response_status.message = outcome.message
                if outcome.ok:
                    self._forget(live)
                elif 0 <= self._max_retries < pb.dispatch_count:
                    emulator.logger.info("[TASKS] Giving up failed task %s", snapshot.name)
                    self._forget(live)
                elif not live.running:
                    pb.schedule_time.FromDatetime(answered)  # RunTask: "reset to the time ..."
                    live.due = _epoch(pb.schedule_time)

        def _send(self, queue: str, snapshot: Any) -> _Outcome:
            try:
                response = emulator._make_task_request(
                    queue, snapshot, self._target_host, self._target_port
                )
            except urllib.error.HTTPError as exc:
                status = exc.code
                exc.close()
                # The emulator's own wording for a failed attempt (the soak counts these lines).
                emulator.logger.error(
                    "[TASKS] Error submitting task %s, reason: HTTP %s", snapshot.name, status
                )
            except Exception as exc:  # the thread must live on: an attempt failed, no more
                reason = getattr(exc, "reason", exc)
                timed_out = isinstance(exc, TimeoutError) or isinstance(reason, TimeoutError)
                emulator.logger.error(
                    "[TASKS] Error submitting task %s, reason: no response: %r", snapshot.name, exc
                )
                code = _DEADLINE_EXCEEDED if timed_out else _UNAVAILABLE
                return _Outcome(code, f"{type(exc).__name__}: {exc}", False, False)
            else:
                status = response.status
                response.close()
            return _Outcome(rpc_code_for_http(status), f"HTTP {status}", True, 200 <= status < 300)

    base = emulator.Greeter

    class TaskServicer(base):  # type: ignore[misc, valid-type]
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

    emulator.QueueState = TaskState
    emulator.Greeter = TaskServicer
    log("tasks emulator: GetTask, DeleteTask, paged ListTasks, RunTask and views enabled")


# Requests a minute, by quota, and the methods that count against it (quotas page).
DOCUMENTED_QUOTAS: dict[str, int] = {"List requests": 600, "Force run requests": 60}
_QUOTA_METHODS: dict[str, tuple[str, ...]] = {
    "List requests": ("ListTasks", "ListQueues", "ListLocations"),
    "Force run requests": ("RunTask",),
}


class Quota:
    """At most ``limit`` calls in any ``window`` seconds; ``clock`` is injectable for tests."""

    def __init__(
        self, name: str, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name, self.limit, self.window, self._clock = name, limit, window, clock
        self._calls: list[float] = []
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Count one call: False (and not counted) if the limit is reached."""
        with self._lock:
            now = self._clock()
            self._calls = [t for t in self._calls if t > now - self.window]
            if len(self._calls) >= self.limit:
                return False
            self._calls.append(now)
            return True

    def refusal(self) -> str:
        return (
            f"Quota exceeded for quota metric '{self.name}' and limit '{self.name} per minute' "
            "of service 'cloudtasks.googleapis.com'"
        )


def install_quotas(limits: dict[str, int], window: float, log: Callable[[str], None]) -> None:
    """Refuse, with RESOURCE_EXHAUSTED, the calls past each quota (patch 5).

    Wraps whatever servicer ``server.Greeter`` is at call time (so call it last).
    """
    import grpc
    from gcloud_tasks_emulator import server as emulator

    quotas = {name: Quota(name, limit, window) for name, limit in limits.items()}
    base = emulator.Greeter

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
        for method in _QUOTA_METHODS[name]:
            if hasattr(base, method):  # the emulator has no ListLocations
                methods[method] = limited(method, quota)
    emulator.Greeter = type("QuotaServicer", (base,), methods)
    described = ", ".join(f"{q.name} {q.limit} per {window:g}s" for q in quotas.values())
    log(f"tasks emulator: quotas enforced: {described}")


def _epoch(ts: Any) -> float:
    return float(ts.seconds + ts.nanos / 1e9)


def _epoch_of(moment: datetime) -> float:
    return moment.timestamp()


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="bind address (loopback)")
    parser.add_argument("--port", type=int, default=9090)
    parser.add_argument(
        "--queue", action="append", default=[], help="projects/P/locations/L/queues/Q (repeatable)"
    )
    parser.add_argument("--max-retries", type=int, default=5)
    parser.add_argument("--dispatch-timeout", type=float, default=600.0)
    parser.add_argument(
        "--list-quota-per-minute", type=int, default=DOCUMENTED_QUOTAS["List requests"]
    )
    parser.add_argument(
        "--run-quota-per-minute", type=int, default=DOCUMENTED_QUOTAS["Force run requests"]
    )
    parser.add_argument(
        "--quota-window", type=float, default=60.0, help="seconds a quota counts over (tests)"
    )
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Install the runtime changes, then hand over to the emulator's own ``main()``."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.host not in {"127.0.0.1", "localhost", "::1"}:
        sys.exit(f"tasks emulator launcher binds loopback only, not {args.host!r}")

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    install_loopback_bind(args.host, log)
    install_dedup(log)
    install_task_api(log)
    limits = {
        "List requests": args.list_quota_per_minute,
        "Force run requests": args.run_quota_per_minute,
    }
    install_quotas(limits, args.quota_window, log)
    socket.setdefaulttimeout(args.dispatch_timeout)

    from gcloud_tasks_emulator.__main__ import (  # type: ignore[import-not-found]
        main as emulator_main,
    )

    emulator_argv = ["gcloud-tasks-emulator", "start", f"--port={args.port}"]
    emulator_argv += [f"--default-queue={q}" for q in args.queue]
    emulator_argv += [f"--max-retries={args.max_retries}"]
    if args.quiet:
        emulator_argv.append("--quiet")
    sys.argv = emulator_argv
    emulator_main()


if __name__ == "__main__":
    main()
