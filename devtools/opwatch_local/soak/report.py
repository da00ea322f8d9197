"""The soak's tally: what arrived against what was planned, and every problem in words.

:meth:`SoakReport.problems` is empty when every watch ended exactly once with the outcome the
simulator was told (duplicates of the same outcome are counted, not problems: delivery is at
least once), and the ledger says of every such watch that it finished, with the outcome its
subscriber received. :meth:`SoakReport.figures` are the headline numbers ``python -m bench.soak``
prints.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any

from opwatch_local.inbox import Arrival
from opwatch_local.percentile import percentile
from opwatch_local.soak.plan import FAILED, OUTCOME_MIX, SUCCEEDED, SoakConfig, WatchPlan

__all__ = ["SoakReport"]


@dataclass
class SoakReport:
    """What happened, and what went wrong (:meth:`problems`)."""

    config: SoakConfig
    plans: list[WatchPlan]
    received: list[Arrival]
    gets: dict[str, list[dict[str, Any]]]
    timings: dict[str, float]
    events: list[str]
    counters: dict[str, int]
    created: dict[str, float]  # watch id -> monotonic time its operation was created
    # watch id -> (state, outcome) of each of its ledger documents; None: the ledger not read
    ledger: dict[str, list[tuple[str, str]]] | None = None

    def by_watch(self) -> dict[str, list[Arrival]]:
        out: dict[str, list[Arrival]] = {}
        for r in self.received:
            out.setdefault(r.watch_id, []).append(r)
        return out

    def wrong(self, plan: WatchPlan, note: Arrival) -> str | None:
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
        return found + self.ledger_problems()

    def ledger_problems(self) -> list[str]:
        """Every notified watch the ledger does not show finished with the outcome its
        subscriber received (a watch with no notification is a problem already)."""
        if self.ledger is None:
            return []
        found = []
        for watch_id, notes in self.by_watch().items():
            docs = self.ledger.get(watch_id, [])
            received = notes[0].outcome
            if not docs:
                found.append(f"ledger: no document for {watch_id} (received {received})")
            for state, outcome in docs:
                if state != "FINISHED":
                    found.append(f"ledger: {watch_id} is {state} (received {received})")
                elif outcome != received:
                    found.append(f"ledger: {watch_id} says {outcome}, received {received}")
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
            "polls_p95": percentile(polls, 0.95) if polls else 0,
            "polls_max": max(polls, default=0),
            "wall_seconds": self.timings.get("wall", 0.0),
            "ledger_documents": sum(len(d) for d in (self.ledger or {}).values()),
            "ledger_watches_finished_as_received": sum(
                1
                for watch_id, notes in by_watch.items()
                if (docs := (self.ledger or {}).get(watch_id))
                and all(doc == ("FINISHED", notes[0].outcome) for doc in docs)
            ),
            "ledger_problems": len(self.ledger_problems()),
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
