"""The soak's plan: its size and faults (:class:`SoakConfig`) and the seeded mix of watches.

Pure: :func:`plan_watches` turns a config into :class:`WatchPlan` s, each an operation the
simulator is told about, the fault kind its GETs get, and the outcome that must come back.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "FAULT_KINDS",
    "OUTCOME_MIX",
    "TASKS_MAX_RETRIES",
    "SoakConfig",
    "WatchPlan",
    "fault_spec",
    "plan_watches",
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
        firestore_outage_at: Share of finished watches at which the ledger's Firestore goes
            down (after the check function's crash; its outage runs beside Pub/Sub's).
        firestore_outage_seconds: How long its emulator is down (killed, its data kept, then
            restarted; the functions cannot reach it for that and the restart).
        ledger_wait: Seconds to wait, once every watch has ended, for the ledger to say so
            (a finish Firestore did not take is written by a record task 60 s later).
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
    firestore_outage_at: float = 0.2
    firestore_outage_seconds: float = 60.0
    ledger_wait: float = 150.0
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


def fault_spec(kind: str, config: SoakConfig) -> dict[str, Any]:
    """The simulator's fault for one kind (a ``slow`` one outlasts ``FETCH_TIMEOUT``)."""
    if kind == "slow":
        return {"kind": kind, "seconds": 2 * config.fetch_timeout}
    if kind.startswith("429"):
        return {"kind": kind, "retry_after": 1}
    return {"kind": kind}
