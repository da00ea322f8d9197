"""One soak run on a stack of its own: publish the plan, break things on cue, tally.

The phases are methods of :class:`_SoakRun`, which holds what they share (the stack, the gates,
the inbox, the plan, the deadline, the timings and the timeline).

The functions reach Pub/Sub and the ledger's Firestore each through a :class:`TcpGate`: an
outage shuts the gate first, so that nothing the functions believe written is lost in the
emulator's stop (Firestore's export and kill, Pub/Sub's drain and stop); then the emulator goes
down and comes back, and the gate opens once it serves again. For the functions that is one
outage, as production has: unreachable, then back with what it held.

The soak reads the functions' logs only by their ``event`` field (:class:`opwatch.logs.Event`),
never by the wording of a message. The Tasks emulator's own log is third-party text: its
``Error submitting task`` line is the one string matched by wording (:data:`TASKS_DISPATCH_FAILED`).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from opwatch import ledger
from opwatch.logs import Event
from opwatch_local.inbox import Arrival, Inbox
from opwatch_local.procs import wait_until
from opwatch_local.soak.gate import TcpGate
from opwatch_local.soak.plan import SoakConfig, WatchPlan, fault_spec, plan_watches
from opwatch_local.soak.report import SoakReport
from opwatch_local.stack import LocalStack
from opwatch_local.stack_config import Ports, StackConfig

__all__ = ["TASKS_DISPATCH_FAILED", "handled_watches", "log_events", "run_soak"]

# Events after which the watch function is done with a watch request (first check scheduled, or
# the notification published): the Pub/Sub emulator may be stopped without losing it.
HANDLED: Final = frozenset(
    {Event.CHECK_PENDING, Event.CHECK_TRANSIENT_ERROR, Event.WATCH_FINISHED, Event.REQUEST_INVALID}
)
# What gcloud-tasks-emulator 0.6.2 logs when a dispatch fails (it retries it).
TASKS_DISPATCH_FAILED: Final = "Error submitting task"


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
    base = dict(os.environ if environ is None else environ)
    base.pop("OPERATIONS_API_ENDPOINT", None)
    ports = Ports.free()
    began = time.monotonic()
    events: list[str] = []

    def event(text: str) -> None:
        line = f"{time.monotonic() - began:7.1f}s {text}"
        events.append(line)
        log(line)

    with TcpGate(ports.pubsub) as gate, TcpGate(ports.firestore) as ledger_gate:
        stack_config = StackConfig(
            ports=ports,
            run_dir=run_dir,
            tasks_max_retries=config.tasks_max_retries,
            function_env={
                "FETCH_TIMEOUT": f"{config.fetch_timeout:g}",
                "LOG_LEVEL": "INFO",
                # The functions reach Pub/Sub and Firestore through the gates; the harness
                # goes direct.
                "PUBSUB_EMULATOR_HOST": gate.address,
                "FIRESTORE_EMULATOR_HOST": ledger_gate.address,
                # The functions' last-attempt rule must know the queue's real retry budget, as
                # Terraform tells them in production: else a record task retried every 0.1 s
                # through an outage would give up after 100 tries, where Cloud Tasks' backoff
                # spans an hour.
                "TASKS_MAX_ATTEMPTS": str(config.tasks_max_retries + 1),
            },
        )
        with LocalStack(stack_config, environ=base) as stack:
            event(f"stack ready in {stack.timings['total']:.1f}s; run dir {stack.run_dir}")
            gates = _Gates(gate, ledger_gate)
            return _SoakRun(config, stack, gates, plan_watches(config), events, event).run()


class _Gates:
    """The functions' ways to Pub/Sub and to the ledger's Firestore."""

    def __init__(self, pubsub: TcpGate, firestore: TcpGate) -> None:
        self.pubsub, self.firestore = pubsub, firestore


class _SoakRun:
    """The phases of one run, over what they share."""

    def __init__(
        self,
        config: SoakConfig,
        stack: LocalStack,
        gates: _Gates,
        plans: list[WatchPlan],
        events: list[str],
        event: Callable[[str], None],
    ) -> None:
        self.config, self.stack, self.plans = config, stack, plans
        self.gate, self.ledger_gate = gates.pubsub, gates.firestore
        self.events, self.event = events, event  # the timeline, and how a line is added to it
        self.inbox = Inbox(stack.client.pull_notifications)
        self.timings: dict[str, float] = {}
        self.created: dict[str, float] = {}  # watch id -> monotonic time its operation was made
        self.deadline = 0.0

    def run(self) -> SoakReport:
        config, stack = self.config, self.stack
        with self.inbox:
            started = time.monotonic()
            self.publish()
            self.timings["publish"] = time.monotonic() - started
            self.event(f"published {len(self.plans)} watches in {self.timings['publish']:.1f}s")
            self.deadline = started + config.deadline
            self.kill_check_function()
            # Firestore's outage runs beside Pub/Sub's (they may overlap), so that it does not
            # push the rest of the run back by its length.
            with _beside(self.firestore_outage, self.remaining()):
                self.pubsub_outage()
            self.wait_all()
            self.event(f"every watch ended; listening {config.settle_seconds:g}s for duplicates")
            time.sleep(config.settle_seconds)  # an observation window, not a wait for state
            self.timings["wall"] = time.monotonic() - started
        received = self.inbox.arrivals()
        recorded = self.ledger_caught_up(received)
        counters = log_counters(stack.run_dir)
        counters["collector_errors"] = len(self.inbox.errors)
        counters["gate_refused_connections"] = self.gate.refused
        counters["ledger_gate_refused_connections"] = self.ledger_gate.refused
        counters["ended_in_outage_then_arrived"] = self.arrived_after_outage(received)
        gets: dict[str, list[dict[str, Any]]] = {}
        for record in stack.client.simulator().requests():
            gets.setdefault(record["name"], []).append(record)
        report = SoakReport(
            config,
            self.plans,
            received,
            gets,
            self.timings,
            self.events,
            counters,
            self.created,
            recorded,
        )
        self.event(f"done: {len(received)} notifications, {len(report.problems())} problems")
        return report

    # --- the phases ------------------------------------------------------------------------------

    def publish(self) -> None:
        """Create, fault and publish each watch, noting when each operation was created."""
        sim = self.stack.client.simulator()
        for i, plan in enumerate(self.plans):
            sim.set_faults(
                plan.operation,
                probability=self.config.fault_rate,
                fault=fault_spec(plan.fault, self.config),
                seed=self.config.seed * 1_000_003 + i,
            )
            if plan.duration is not None:
                sim.create_operation(
                    plan.operation, duration=plan.duration, response=plan.response, error=plan.error
                )
            self.created[plan.watch_id] = time.monotonic()
            self.stack.client.publish_watch_request(plan.request)

    def kill_check_function(self) -> None:
        """SIGKILL the check function once ``kill_at`` of the watches ended; start it again."""
        self.wait_share(self.config.kill_at)
        self.event(f"{self.done_share():.0%} finished: SIGKILL to the check function")
        began = time.monotonic()
        self.timings["check_killed_in"] = self.stack.stop_process("check", kill=True)
        self.timings["check_ready_in"] = self.stack.start_process("check")
        self.timings["check_down"] = time.monotonic() - began
        self.event(f"check function back after {self.timings['check_down']:.1f}s")

    def firestore_outage(self) -> None:
        """Take the ledger's Firestore away once ``firestore_outage_at`` of the watches ended:
        the gate shuts, the emulator is killed with its data kept (production's Firestore
        keeps it through an outage), and after ``firestore_outage_seconds`` it is restarted on
        the same port and the gate opens."""
        stack, timings = self.stack, self.timings
        self.wait_share(self.config.firestore_outage_at)
        self.event(f"{self.done_share():.0%} finished: Firestore outage begins")
        timings["firestore_start"] = time.monotonic()
        self.ledger_gate.shut()
        timings["firestore_killed_in"] = stack.firestore.kill(keep_data=True)
        time.sleep(
            max(
                0.0,
                self.config.firestore_outage_seconds
                - (time.monotonic() - timings["firestore_start"]),
            )
        )
        timings["firestore_ready_in"] = stack.firestore.restart()
        self.ledger_gate.open()
        timings["firestore_end"] = time.monotonic()
        timings["firestore_outage"] = timings["firestore_end"] - timings["firestore_start"]
        self.event(
            f"Firestore back after {timings['firestore_outage']:.1f}s (its data kept; ready "
            f"{timings['firestore_ready_in']:.1f}s after the restart began)"
        )

    def ledger_caught_up(self, received: Sequence[Arrival]) -> dict[str, list[tuple[str, str]]]:
        """What the ledger says of each watch, once it says every notified watch finished with
        the outcome its subscriber received, or ``ledger_wait`` seconds have passed."""
        outcomes = {r.watch_id: r.outcome for r in received}
        client = self.stack.firestore.client()
        seen: dict[str, list[tuple[str, str]]] = {}

        def caught_up() -> bool:
            nonlocal seen
            try:
                seen = read_ledger(client)
            except Exception:  # the emulator hiccuped: look again, within the bound
                return False
            return all(
                seen.get(watch_id) and all(doc == (FINISHED, outcome) for doc in seen[watch_id])
                for watch_id, outcome in outcomes.items()
            )

        began = time.monotonic()
        try:
            wait_until(
                caught_up,
                self.config.ledger_wait,
                interval=2.0,
                describe="the ledger to say every watch finished",
            )
            self.event(f"the ledger says every watch finished ({time.monotonic() - began:.1f}s)")
        except TimeoutError:
            self.event(f"the ledger still disagrees after {self.config.ledger_wait:g}s")
        finally:
            client.close()
        return seen

    def pubsub_outage(self) -> None:
        """Take Pub/Sub away once ``outage_at`` ended and every request was handled."""
        stack, timings = self.stack, self.timings
        self.wait_share(self.config.outage_at)
        # Every watch request must be handled first: the emulator would forget unacked ones.
        planned = {p.watch_id for p in self.plans}
        wait_until(
            lambda: planned <= handled_watches(stack.run_dir / "watch.log"),
            self.remaining(),
            describe="every watch request handled",
            interval=0.2,
        )
        self.event(f"{self.done_share():.0%} finished: Pub/Sub outage begins")
        timings["outage_start"] = time.monotonic()
        self.gate.shut()
        self.inbox.pause()
        drained = 0
        while got := self.inbox.poll(1.0):
            drained += len(got)
        timings["pubsub_stopped_in"] = stack.stop_process("pubsub")
        self.event(f"Pub/Sub emulator stopped ({drained} notifications drained first)")
        time.sleep(
            max(0.0, self.config.outage_seconds - (time.monotonic() - timings["outage_start"]))
        )
        timings["pubsub_ready_in"] = stack.start_process("pubsub")
        stack.create_resources()
        self.gate.open()
        timings["outage_end"] = time.monotonic()
        timings["outage"] = timings["outage_end"] - timings["outage_start"]
        self.inbox.resume()
        self.event(
            f"Pub/Sub back after {timings['outage']:.1f}s, topics and subscriptions recreated"
        )

    def wait_all(self) -> None:
        with contextlib.suppress(TimeoutError):  # the report names the lost ones
            self.wait_share(1.0)
            return
        self.event(f"deadline passed with {self.done_share():.1%} finished")

    # --- helpers ---------------------------------------------------------------------------------

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def done_share(self) -> float:
        return len(self.inbox.watch_ids()) / max(1, len(self.plans))

    def wait_share(self, share: float) -> None:
        wait_until(
            lambda: self.done_share() >= share,
            self.remaining(),
            describe=f"{share:.0%} finished",
            interval=0.1,
        )

    def arrived_after_outage(self, received: Sequence[Arrival]) -> int:
        """Watches that ended (operation done, timeout or grace passed) while Pub/Sub was away
        and whose notification arrived after it was back."""
        start, end = self.timings.get("outage_start"), self.timings.get("outage_end")
        if start is None or end is None:
            return 0
        arrived = {r.watch_id for r in received if r.monotonic >= end}
        return sum(
            1
            for plan in self.plans
            if plan.watch_id in arrived
            and start <= self.created[plan.watch_id] + plan.ends_after <= end
        )


FINISHED: Final = ledger.State.FINISHED.value


def read_ledger(client: Any) -> dict[str, list[tuple[str, str]]]:
    """Every watch's documents in the ledger, as (state, outcome) per chain (one query)."""
    found: dict[str, list[tuple[str, str]]] = {}
    for snapshot in client.collection(ledger.COLLECTION).stream(timeout=30):
        with contextlib.suppress(ValueError):
            record = ledger.from_document(snapshot.to_dict() or {})
            found.setdefault(record.watch_id, []).append((record.state.value, record.outcome or ""))
    return found


@contextlib.contextmanager
def _beside(phase: Callable[[], None], timeout: float) -> Iterator[None]:
    """Run ``phase`` on a thread of its own while the block runs; then wait for it (at most
    ``timeout`` seconds) and raise what it raised."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            phase()
        except BaseException as exc:  # handed to the caller's thread below
            failed.append(exc)

    thread = threading.Thread(target=run, name="soak-phase", daemon=True)
    thread.start()
    yield
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"{phase.__name__} did not end within {timeout:.0f}s")
    if failed:
        raise failed[0]


def log_events(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON lines of one process's log that carry an ``event`` (other lines are skipped)."""
    with contextlib.suppress(FileNotFoundError), path.open(errors="replace") as handle:
        for line in handle:
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and "event" in entry:
                    yield entry


def handled_watches(watch_log: Path) -> set[str]:
    """Watch ids the watch function is done with (see :data:`HANDLED`)."""
    return {str(e.get("watch_id")) for e in log_events(watch_log) if e["event"] in HANDLED}


def log_counters(run_dir: Path) -> dict[str, int]:
    """Counts from the processes' logs: deliveries the functions failed (scheduling or
    publishing; the platform retried each), the Tasks emulator's failed dispatches, ledger
    writes Firestore did not take, and finishes left to a record task (or only logged)."""
    events = Counter(
        (entry["event"], bool(entry.get("record_task")))
        for name in ("watch", "check")
        for entry in log_events(run_dir / f"{name}.log")
    )
    failed = events[(Event.DELIVERY_FAILED, False)]
    tasks_log = run_dir / "tasks.log"
    dispatch_failures = 0
    if tasks_log.is_file():
        with tasks_log.open(errors="replace") as handle:
            dispatch_failures = sum(1 for line in handle if TASKS_DISPATCH_FAILED in line)
    return {
        "delivery_failures_logged": failed,
        "task_dispatch_failures": dispatch_failures,
        "ledger_writes_failed": events[(Event.LEDGER_WRITE_FAILED, False)],
        "ledger_finishes_to_record_tasks": events[(Event.LEDGER_BEHIND, True)],
        "ledger_finishes_only_logged": events[(Event.LEDGER_BEHIND, False)],
    }
