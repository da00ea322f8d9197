"""Fault soak: many watches on the real local stack while things break, and a strict tally.

:func:`run_soak` starts its own :class:`~opwatch_local.stack.LocalStack` (it kills processes, so it
must not share one), then:

1. **Plans** ``watches`` watches from a seed (:func:`plan_watches`): operations that succeed or
   fail after 1-30 s, names that never exist (``NOT_FOUND`` after a short grace window), and
   operations that outlive their watch's timeout (``TIMED_OUT``). Each name gets one fault kind
   (``500``, ``503``, ``429`` with ``Retry-After``, ``429`` with ``RetryInfo``, ``slow`` -- longer
   than ``FETCH_TIMEOUT`` -- or a reset connection) at ``fault_rate`` of its GETs, so about that
   share of all GETs is faulted, evenly across the kinds.
2. **Publishes** them, with fast ``polling`` overrides so the run stays short.
3. **Kills** the check function's process group (SIGKILL, like a crash) once ``kill_at`` of the
   watches have finished, and starts it again: the Cloud Tasks emulator retries what failed.
4. **Takes Pub/Sub away** once ``outage_at`` of the watches have finished and every watch request
   has been handled: the functions lose their connection to Pub/Sub, the emulator is stopped for
   ``outage_seconds`` while operations keep finishing, then started again on the same port with
   its topics and subscriptions recreated (it keeps no state). Checks that cannot publish fail,
   and Cloud Tasks delivers them again until the notification is out.
5. **Waits** (bounded) until every watch has a notification, listens ``settle_seconds`` more for
   duplicates, and tallies (:class:`SoakReport`).

Why the functions reach Pub/Sub through a :class:`TcpGate`: the emulator forgets everything when
it stops, including notifications already published but not yet pulled, and a restarted emulator
drops what is published between the topic's and the subscription's creation. Neither would be
opwatch's loss (real Pub/Sub keeps both), but either would show as one. So the gate closes first
(the functions' connections are cut and new ones refused), the harness drains the subscription,
and the gate opens only after the subscription exists again. For opwatch the outage is the same:
Pub/Sub is unreachable, then back, empty but for the resources.

Why ``tasks_max_retries`` is raised (:data:`TASKS_MAX_RETRIES`): the Tasks emulator retries a
failing task about every 0.1 s, and drops it after ``--max-retries`` (the stack's default is 5).
Real Cloud Tasks backs off (0.1 s doubling up to an hour, 100 attempts by default), so it outlasts
a few seconds of outage by far; the emulator with 5 retries would drop checks within half a second
and report as lost what the real service would have delivered.

``python -m bench.soak`` runs the full size and writes the report; ``tests/test_soak.py`` runs the
CI size and asserts :meth:`SoakReport.problems` is empty.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from google.api_core import exceptions as gexc

from opwatch_local.procs import LOOPBACK, wait_until
from opwatch_local.stack import LocalStack, Notification, Ports, StackConfig

__all__ = [
    "FAULT_KINDS",
    "TASKS_MAX_RETRIES",
    "SoakConfig",
    "SoakReport",
    "TcpGate",
    "WatchPlan",
    "plan_watches",
    "run_soak",
]

SUCCEEDED, FAILED, NOT_FOUND, TIMED_OUT = "SUCCEEDED", "FAILED", "NOT_FOUND", "TIMED_OUT"
# Shares of the planned outcomes.
OUTCOME_MIX: Final = ((SUCCEEDED, 0.40), (FAILED, 0.25), (NOT_FOUND, 0.15), (TIMED_OUT, 0.20))
FAULT_KINDS: Final = ("500", "503", "429-retry-after", "429-retry-info", "slow", "reset")
# Far beyond what a few seconds of outage or a restart need (see the module docstring).
TASKS_MAX_RETRIES: Final = 10_000
PARENT: Final = "projects/opwatch-soak/locations/us-central1"


@dataclass(frozen=True)
class SoakConfig:
    """The size and the faults of one soak run.

    Attributes:
        watches: Number of watches.
        seed: Seeds the plan and the simulator's fault RNGs, so runs repeat.
        fault_rate: Share of each operation's GETs that get its fault kind.
        fetch_timeout: ``FETCH_TIMEOUT`` of the functions; a ``slow`` fault answers after twice it.
        kill_at: Share of finished watches at which the check function is killed and restarted.
        outage_at: Share of finished watches at which the Pub/Sub outage starts.
        outage_seconds: How long the functions cannot reach Pub/Sub (the emulator is down for
            all of it but the drain before and the resource creation after).
        settle_seconds: How long to keep listening for duplicates once every watch has ended.
        deadline: Seconds the run may take after publishing before it stops waiting.
        polling: ``polling`` of every watch request (fast, within the contract's bounds).
        tasks_max_retries: ``--max-retries`` of the Tasks emulator (see the module docstring).
    """

    watches: int = 100
    seed: int = 6
    fault_rate: float = 0.10
    fetch_timeout: float = 0.5
    kill_at: float = 0.15
    outage_at: float = 0.35
    # Longer than the function's 30 s bound on one publish (adapters.RPC_TIMEOUT), so the checks
    # that finish meanwhile answer 500 and Cloud Tasks' retry is exercised, not only the Pub/Sub
    # client's own retry (which bridges a shorter outage inside one call).
    outage_seconds: float = 35.0
    settle_seconds: float = 3.0
    deadline: float = 900.0
    polling: Mapping[str, Any] = field(
        default_factory=lambda: {"initial_delay": "1s", "max_delay": "5s", "multiplier": 1.5}
    )
    tasks_max_retries: int = TASKS_MAX_RETRIES


@dataclass(frozen=True)
class WatchPlan:
    """One planned watch: what the simulator is told, and the outcome that must come back."""

    watch_id: str
    operation: str
    expected: str
    duration: float | None  # None: the operation never exists
    fault: str
    request: Mapping[str, Any]
    ends_after: float  # seconds from creation to the outcome: duration, timeout or grace

    @property
    def error(self) -> dict[str, Any] | None:
        """The operation's error, for a planned failure."""
        if self.expected != FAILED:
            return None
        return {"code": 9, "message": f"soak failure of {self.watch_id}"}

    @property
    def response(self) -> dict[str, Any]:
        return {"@type": "type.googleapis.com/opwatch.soak.Result", "watch": self.watch_id}


def plan_watches(config: SoakConfig) -> list[WatchPlan]:
    """The seeded mix of watches (pure)."""
    rng = random.Random(config.seed)
    outcomes = [name for name, _ in OUTCOME_MIX]
    weights = [share for _, share in OUTCOME_MIX]
    plans = []
    for i in range(config.watches):
        expected = rng.choices(outcomes, weights)[0]
        watch_id = f"soak-{config.seed}-{i:05d}"
        operation = f"{PARENT}/operations/{watch_id}"
        polling = dict(config.polling)
        request: dict[str, Any] = {"operation": operation, "watch_id": watch_id}
        duration: float | None = round(rng.uniform(1.0, 30.0), 3)
        ends_after = duration or 0.0
        if expected == NOT_FOUND:
            duration, ends_after = None, round(rng.uniform(1.0, 10.0), 3)
            polling["not_found_grace"] = f"{ends_after:.3f}s"
        elif expected == TIMED_OUT:
            request["timeout"] = f"{duration:.3f}s"
            duration = 3600.0
        request["polling"] = polling
        request["labels"] = {"soak": str(config.seed), "expected": expected.lower()}
        plans.append(
            WatchPlan(
                watch_id, operation, expected, duration, FAULT_KINDS[i % 6], request, ends_after
            )
        )
    return plans


def _fault_spec(kind: str, config: SoakConfig) -> dict[str, Any]:
    if kind == "slow":
        return {"kind": kind, "seconds": 2 * config.fetch_timeout}
    if kind.startswith("429"):
        return {"kind": kind, "retry_after": 1}
    return {"kind": kind}


# --- a gate between the functions and Pub/Sub ---------------------------------------------------


class TcpGate:
    """A TCP forwarder on loopback that can be shut: :meth:`shut` cuts every connection and
    refuses new ones until :meth:`open`. See the module docstring for why the soak needs it.

    Args:
        upstream_port: The port on 127.0.0.1 to forward to.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server((LOOPBACK, 0))
        self._listener.settimeout(0.2)  # so the accept loop sees stop() within a bound
        self.port: int = self._listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept_loop, name="tcp-gate", daemon=True)
        self._thread.start()
        #: Connections refused while shut.
        self.refused = 0

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def shut(self) -> None:
        """Cut every forwarded connection and refuse new ones."""
        self._open.clear()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def open(self) -> None:
        """Forward new connections again."""
        self._open.set()

    def stop(self) -> None:
        """Stop accepting and cut everything (idempotent)."""
        self._stopping.set()
        self.shut()
        self._thread.join(timeout=5.0)
        self._listener.close()

    def __enter__(self) -> TcpGate:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._open.is_set():
                self.refused += 1
                client.close()
                continue
            try:
                upstream = socket.create_connection((LOOPBACK, self.upstream_port), timeout=2.0)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            with self._lock:
                self._sockets.difference_update((src, dst))


# --- collecting notifications -------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One notification as pulled, with when it arrived (monotonic seconds)."""

    watch_id: str
    outcome: str
    data: dict[str, Any]
    attributes: dict[str, str]
    arrived: float


class Collector:
    """Pulls notifications on a thread, until stopped; can be paused (for the outage)."""

    def __init__(self, stack: LocalStack) -> None:
        self._stack = stack
        self._lock = threading.Lock()
        self.received: list[Received] = []
        self.errors: list[str] = []
        self._run = threading.Event()
        self._run.set()
        self._idle = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="soak-collector", daemon=True)

    def start(self) -> Collector:
        self._thread.start()
        return self

    def finished(self) -> set[str]:
        with self._lock:
            return {r.watch_id for r in self.received}

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def pause(self, timeout: float = 30.0) -> None:
        """Stop pulling; returns once the pull in progress has returned."""
        self._run.clear()
        wait_until(self._idle.is_set, timeout, describe="collector paused")

    def resume(self) -> None:
        self._idle.clear()
        self._run.set()

    def drain(self, timeout: float = 1.0) -> int:
        """Pull on the caller's thread (collector paused) for ``timeout`` seconds."""
        got = self._stack.pull_notifications(count=1000, timeout=timeout)
        self._record(got)
        return len(got)

    def stop(self) -> None:
        self._stop.set()
        self._run.set()
        self._thread.join(timeout=30.0)

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self._run.is_set():
                self._idle.set()
                self._run.wait()
                continue
            try:
                got = self._stack.pull_notifications(count=100, timeout=0.5)
            except gexc.GoogleAPICallError as error:  # keep listening; reported at the end
                self.errors.append(f"{type(error).__name__}: {error}"[:300])
                self._stop.wait(0.2)
                continue
            self._record(got)

    def _record(self, messages: Sequence[Notification]) -> None:
        now = time.monotonic()
        parsed = []
        for message in messages:
            try:
                data = message.json()
            except ValueError:
                data = {"unparsable": message.data.decode(errors="replace")}
            parsed.append(
                Received(
                    watch_id=str(data.get("watch_id", message.attributes.get("watch_id", ""))),
                    outcome=str(data.get("outcome", "")),
                    data=data,
                    attributes=dict(message.attributes),
                    arrived=now,
                )
            )
        with self._lock:
            self.received.extend(parsed)


# --- the report ---------------------------------------------------------------------------------


@dataclass
class SoakReport:
    """What happened, and what went wrong (:meth:`problems`)."""

    config: SoakConfig
    plans: list[WatchPlan]
    received: list[Received]
    gets: dict[str, list[dict[str, Any]]]
    timings: dict[str, float]
    events: list[str]
    counters: dict[str, int]
    created: dict[str, float]  # watch id -> monotonic time its operation was created

    def by_watch(self) -> dict[str, list[Received]]:
        out: dict[str, list[Received]] = {}
        for r in self.received:
            out.setdefault(r.watch_id, []).append(r)
        return out

    def wrong(self, plan: WatchPlan, note: Received) -> str | None:
        """Why ``note`` does not match what the simulator was told, or None."""
        data = note.data
        if note.outcome != plan.expected or note.attributes.get("outcome") != plan.expected:
            return f"outcome {note.outcome} (attribute {note.attributes.get('outcome')})"
        operation = data.get("operation") or {}
        if plan.expected == SUCCEEDED and operation.get("response") != plan.response:
            return f"response {operation.get('response')!r}"
        if plan.expected == FAILED and (data.get("error") or {}).get("message") != (
            plan.error or {}
        ).get("message"):
            return f"error {data.get('error')!r}"
        if data.get("labels") != plan.request["labels"]:
            return f"labels {data.get('labels')!r}"
        return None

    def problems(self) -> list[str]:
        """Every lost, wrong, unexpected or conflicting notification, in words."""
        found = []
        by_watch = self.by_watch()
        planned = {p.watch_id: p for p in self.plans}
        for plan in self.plans:
            notes = by_watch.get(plan.watch_id, [])
            if not notes:
                found.append(f"lost: {plan.watch_id} (expected {plan.expected})")
                continue
            if len({n.outcome for n in notes}) > 1:
                found.append(f"conflicting: {plan.watch_id} got {[n.outcome for n in notes]}")
            for note in notes:
                if why := self.wrong(plan, note):
                    found.append(f"wrong: {plan.watch_id} expected {plan.expected}, got {why}")
                    break
        found += [f"unexpected notification for {w!r}" for w in by_watch if w not in planned]
        return found

    def polls(self) -> list[int]:
        """GETs per watch, as the simulator saw them (faulted ones included)."""
        return [len(self.gets.get(p.operation, [])) for p in self.plans]

    def fault_counts(self) -> Counter[str]:
        return Counter(g["fault"] or "none" for gets in self.gets.values() for g in gets)

    def figures(self) -> dict[str, Any]:
        """The headline numbers."""
        by_watch = self.by_watch()
        polls = self.polls()
        faults = self.fault_counts()
        total_gets = sum(faults.values())
        faulted = total_gets - faults.get("none", 0)
        return {
            "watches": len(self.plans),
            "expected": dict(Counter(p.expected for p in self.plans)),
            "received_distinct": dict(Counter(notes[0].outcome for notes in by_watch.values())),
            "notifications": len(self.received),
            "duplicates": len(self.received) - len(by_watch),
            "watches_with_duplicates": sum(1 for notes in by_watch.values() if len(notes) > 1),
            "lost": sum(1 for p in self.plans if p.watch_id not in by_watch),
            "problems": len(self.problems()),
            "gets": total_gets,
            "faulted_gets": faulted,
            "faulted_share": faulted / total_gets if total_gets else 0.0,
            "faults": {k: v for k, v in sorted(faults.items()) if k != "none"},
            "polls_mean": statistics.fmean(polls) if polls else 0.0,
            "polls_median": statistics.median(polls) if polls else 0,
            "polls_p95": _quantile(polls, 0.95),
            "polls_max": max(polls, default=0),
            "wall_seconds": self.timings.get("wall", 0.0),
            **self.counters,
        }

    def polls_by_outcome(self) -> dict[str, tuple[float, int]]:
        """Mean and max GETs per watch for each planned outcome."""
        out = {}
        for outcome, _ in OUTCOME_MIX:
            polls = [
                len(self.gets.get(p.operation, [])) for p in self.plans if p.expected == outcome
            ]
            if polls:
                out[outcome] = (statistics.fmean(polls), max(polls))
        return out


def _quantile(values: Sequence[int], q: float) -> int:
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- the run ------------------------------------------------------------------------------------


def run_soak(
    config: SoakConfig,
    *,
    run_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> SoakReport:
    """Run one soak on a stack of its own (free ports) and return the tally.

    Args:
        config: Size and faults.
        run_dir: Where the stack's logs go (default: the stack's own run directory).
        environ: Base environment of the stack (default: ``os.environ`` without
            ``OPERATIONS_API_ENDPOINT``: the soak needs its own simulator).
        log: Progress lines, for a person watching.
    """
    import os

    base = dict(os.environ if environ is None else environ)
    base.pop("OPERATIONS_API_ENDPOINT", None)
    ports = Ports.free()
    plans = plan_watches(config)
    events: list[str] = []
    timings: dict[str, float] = {}
    began = time.monotonic()

    def event(text: str) -> None:
        line = f"{time.monotonic() - began:7.1f}s {text}"
        events.append(line)
        log(line)

    with TcpGate(ports.pubsub) as gate:
        stack_config = StackConfig(
            ports=ports,
            run_dir=run_dir,
            tasks_max_retries=config.tasks_max_retries,
            function_env={
                "FETCH_TIMEOUT": f"{config.fetch_timeout:g}",
                "LOG_LEVEL": "INFO",
                # The functions reach Pub/Sub through the gate; the harness goes direct.
                "PUBSUB_EMULATOR_HOST": gate.address,
            },
        )
        with LocalStack(stack_config, environ=base) as stack:
            event(f"stack ready in {stack.timings['total']:.1f}s; run dir {stack.run_dir}")
            collector = Collector(stack).start()
            try:
                started = time.monotonic()
                created = _publish(stack, plans, config)
                timings["publish"] = time.monotonic() - started
                event(f"published {len(plans)} watches in {timings['publish']:.1f}s")
                deadline = started + config.deadline
                _kill_check_function(stack, collector, plans, config, deadline, timings, event)
                _pubsub_outage(stack, gate, collector, plans, config, deadline, timings, event)
                _wait_all(collector, plans, deadline, event)
                event(f"every watch ended; listening {config.settle_seconds:g}s for duplicates")
                time.sleep(config.settle_seconds)  # an observation window, not a wait for state
                timings["wall"] = time.monotonic() - started
            finally:
                collector.stop()
            gets = _gets_by_operation(stack)
            counters = _log_counters(stack.run_dir)
            counters["collector_errors"] = len(collector.errors)
            counters["gate_refused_connections"] = gate.refused
            received = collector.snapshot()
            counters["ended_in_outage_then_arrived"] = _arrived_after_outage(
                received, plans, created, timings
            )
    report = SoakReport(config, plans, received, gets, timings, events, counters, created)
    event(f"done: {len(received)} notifications, {len(report.problems())} problems")
    return report


def _publish(stack: LocalStack, plans: Sequence[WatchPlan], config: SoakConfig) -> dict[str, float]:
    """Create, fault and publish each watch; returns when each operation was created."""
    sim = stack.simulator()
    created = {}
    for i, plan in enumerate(plans):
        sim.set_faults(
            plan.operation,
            probability=config.fault_rate,
            fault=_fault_spec(plan.fault, config),
            seed=config.seed * 1_000_003 + i,
        )
        if plan.duration is not None:
            sim.create_operation(
                plan.operation, duration=plan.duration, response=plan.response, error=plan.error
            )
        created[plan.watch_id] = time.monotonic()
        stack.publish_watch_request(plan.request)
    return created


def _done_share(collector: Collector, plans: Sequence[WatchPlan]) -> float:
    return len(collector.finished()) / max(1, len(plans))


def _wait_share(
    collector: Collector, plans: Sequence[WatchPlan], share: float, deadline: float, what: str
) -> None:
    wait_until(
        lambda: _done_share(collector, plans) >= share,
        max(0.0, deadline - time.monotonic()),
        describe=what,
        interval=0.1,
    )


def _kill_check_function(
    stack: LocalStack,
    collector: Collector,
    plans: Sequence[WatchPlan],
    config: SoakConfig,
    deadline: float,
    timings: dict[str, float],
    event: Callable[[str], None],
) -> None:
    _wait_share(collector, plans, config.kill_at, deadline, f"{config.kill_at:.0%} finished")
    event(f"{_done_share(collector, plans):.0%} finished: SIGKILL to the check function")
    began = time.monotonic()
    timings["check_killed_in"] = stack.stop_process("check", kill=True)
    timings["check_ready_in"] = stack.start_process("check")
    timings["check_down"] = time.monotonic() - began
    event(f"check function back after {timings['check_down']:.1f}s")


def _pubsub_outage(
    stack: LocalStack,
    gate: TcpGate,
    collector: Collector,
    plans: Sequence[WatchPlan],
    config: SoakConfig,
    deadline: float,
    timings: dict[str, float],
    event: Callable[[str], None],
) -> None:
    _wait_share(collector, plans, config.outage_at, deadline, f"{config.outage_at:.0%} finished")
    # Every watch request must be handled first: the emulator would forget unacked ones. The
    # watch function logs each watch once it has scheduled the first check or published.
    watch_log = stack.run_dir / "watch.log"

    def requests_handled() -> bool:
        return {p.watch_id for p in plans} <= _handled_watches(watch_log)

    wait_until(
        requests_handled,
        max(0.0, deadline - time.monotonic()),
        describe="every watch request handled",
        interval=0.2,
    )
    event(f"{_done_share(collector, plans):.0%} finished: Pub/Sub outage begins")
    timings["outage_start"] = time.monotonic()
    gate.shut()
    collector.pause()
    drained = collector.drain(timeout=1.0)
    timings["pubsub_stopped_in"] = stack.stop_process("pubsub")
    event(f"Pub/Sub emulator stopped ({drained} notifications drained first)")
    time.sleep(max(0.0, config.outage_seconds - (time.monotonic() - timings["outage_start"])))
    timings["pubsub_ready_in"] = stack.start_process("pubsub")
    stack.create_resources()
    gate.open()
    timings["outage_end"] = time.monotonic()
    timings["outage"] = timings["outage_end"] - timings["outage_start"]
    collector.resume()
    event(f"Pub/Sub back after {timings['outage']:.1f}s, topics and subscriptions recreated")


def _wait_all(
    collector: Collector,
    plans: Sequence[WatchPlan],
    deadline: float,
    event: Callable[[str], None],
) -> None:
    with contextlib.suppress(TimeoutError):  # the report names the lost ones
        _wait_share(collector, plans, 1.0, deadline, "every watch finished")
        return
    event(f"deadline passed with {_done_share(collector, plans):.1%} finished")


def _handled_watches(watch_log: Path) -> set[str]:
    """Watch ids the watch function has finished with (first check scheduled, or published)."""
    handled = set()
    with contextlib.suppress(FileNotFoundError), watch_log.open(errors="replace") as handle:
        for line in handle:
            if '"not done yet' not in line and '"watch finished' not in line:
                continue
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                handled.add(str(entry.get("watch_id")))
    return handled


def _gets_by_operation(stack: LocalStack) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for record in stack.simulator().requests():
        out.setdefault(record["name"], []).append(record)
    return out


def _log_counters(run_dir: Path) -> dict[str, int]:
    """Counts from the processes' logs: failed publishes and the Tasks emulator's failed
    dispatches (each one a retry)."""

    def lines(name: str) -> Iterator[str]:
        path = run_dir / f"{name}.log"
        if path.is_file():
            with path.open(errors="replace") as handle:
                yield from handle

    publish_failures = 0
    for name in ("watch", "check"):
        for line in lines(name):
            if "could not publish the notification" in line:
                publish_failures += 1
    failed_dispatches = sum(1 for line in lines("tasks") if "Error submitting task" in line)
    return {
        "publish_failures_logged": publish_failures,
        "task_dispatch_failures": failed_dispatches,
    }


def _arrived_after_outage(
    received: Sequence[Received],
    plans: Sequence[WatchPlan],
    created: Mapping[str, float],
    timings: Mapping[str, float],
) -> int:
    """Watches that ended (operation done, timeout or grace passed) while Pub/Sub was away and
    whose notification arrived after it was back."""
    start, end = timings.get("outage_start"), timings.get("outage_end")
    if start is None or end is None:
        return 0
    arrived = {r.watch_id for r in received if r.arrived >= end}
    return sum(
        1
        for plan in plans
        if plan.watch_id in arrived and start <= created[plan.watch_id] + plan.ends_after <= end
    )


def to_json(report: SoakReport) -> str:
    """The figures as JSON (for machines)."""
    return json.dumps(report.figures(), indent=2, sort_keys=True)
