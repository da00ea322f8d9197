"""Patches 4 and 6: the emulator's queue state with an index of live tasks under one lock, and a
dispatch thread that takes only the tasks due (see the package docstring)."""

from __future__ import annotations

import heapq
import threading
import time
import urllib.error
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gcloud_tasks_emulator import server as emulator  # type: ignore[import-not-found]
from google.api_core.exceptions import NotFound
from google.cloud import tasks_v2

from .rules import (
    DEADLINE_EXCEEDED,
    UNAVAILABLE,
    decode_page_token,
    encode_page_token,
    page_bounds,
    rpc_code_for_http,
)

full_view = tasks_v2.Task.View.FULL


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
        # Per queue, (due, seq, name) of every live task, a heap; an entry whose task is
        # gone or whose due time changed since is stale and skipped (patch 6).
        self._due: dict[str, list[tuple[float, int, str]]] = {}

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
            if not pb.HasField("schedule_time") or _epoch(pb.schedule_time) < _epoch_of(created):
                pb.schedule_time.FromDatetime(created)
            pb.view = full_view  # what we keep; responses are cut to the requested view
            task = super().create_task(queue, task)  # FailedPrecondition: no such queue
            self._seq += 1
            self._names.add(pb.name)
            live = _Live(task, queue, self._seq, 0.0)
            self._live[pb.name] = live
            self._set_due(live, _epoch(pb.schedule_time))
            return task

    def _set_due(self, live: _Live, due: float) -> None:
        live.due = due
        heapq.heappush(self._due.setdefault(live.queue, []), (due, live.seq, live.task.name))

    def due_names(self, queue: str, moment: float) -> list[str]:
        """Take the names of the queue's tasks due by ``moment``, earliest first."""
        with self._lock:
            heap, names = self._due.get(queue, []), []
            while heap and heap[0][0] <= moment:
                due, _, name = heapq.heappop(heap)
                live = self._live.get(name)
                if live is not None and live.queue == queue and live.due == due:
                    names.append(name)
            return names

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
        self._due.pop(queue, None)

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
        """The queue's thread calls this for each task due (:func:`process_queue`)."""
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
                self._set_due(live, _epoch(pb.schedule_time))

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
            code = DEADLINE_EXCEEDED if timed_out else UNAVAILABLE
            return _Outcome(code, f"{type(exc).__name__}: {exc}", False, False)
        else:
            status = response.status
            response.close()
        return _Outcome(rpc_code_for_http(status), f"HTTP {status}", True, 200 <= status < 300)


def process_queue(self: Any, queue: str) -> None:
    """The queue's dispatch thread: every ~0.1 s, the tasks due, earliest first, one at a
    time (the emulator's thread went through every task it held instead)."""
    state: TaskState = self._state
    while self._is_running.is_set():
        if queue not in state._queues or queue not in state._queue_tasks:
            break  # the queue was deleted
        if state.queue(queue).state == emulator.Queue.State.RUNNING:
            for name in state.due_names(queue, time.time()):
                emulator.logger.info("[TASKS] Processing next task %s", name)
                state.submit_task(name)
        time.sleep(emulator._LOOP_SLEEP_TIME)


def _epoch(ts: Any) -> float:
    return float(ts.seconds + ts.nanos / 1e9)


def _epoch_of(moment: datetime) -> float:
    return moment.timestamp()
