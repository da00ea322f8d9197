"""Fault soak at full size on the local stack: every watch ends once, correctly, despite faults.

The scenario and the tally are the package :mod:`opwatch_local.soak` (shared with
``tests/e2e/test_soak.py``, which runs it at CI size): mixed outcomes and durations (1-30 s), ~10 %
of GETs faulted across every fault kind, the check function killed and restarted once, the
ledger's Firestore killed for 60 s (its data kept) and restarted, and Pub/Sub unreachable for a
while (its emulator stopped and restarted) as operations finish. Afterwards every watch's
ledger document must say FINISHED, with the outcome its subscriber received.

    python -m bench.soak [--watches 1000] [--seed 6] [--out bench/results/soak.md]

Exits 1 if any watch was lost, answered wrongly, or answered with two different outcomes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from opwatch_local.procs import sigterm_as_exit
from opwatch_local.soak import FAULT_KINDS, SoakConfig, SoakReport, run_soak

OUT = Path(__file__).parent / "results" / "soak.md"


def markdown(report: SoakReport, command: str) -> str:
    """The report as Markdown."""
    f = report.figures()
    c = report.config
    t = report.timings
    lines = [
        "# Fault soak",
        "",
        f"`{command}` on {datetime.now(UTC):%Y-%m-%d}, on the local stack (real Pub/Sub, Cloud "
        "Tasks and Firestore emulators, functions-framework processes, the operations "
        "simulator), on a shared 2-core machine.",
        "",
        "## Result",
        "",
        "| | |",
        "|---|---|",
        f"| watches | {f['watches']} |",
        f"| lost | **{f['lost']}** |",
        f"| wrong or conflicting outcomes | **{f['problems'] - f['lost']}** |",
        f"| notifications received | {f['notifications']} |",
        f"| watches the ledger shows FINISHED with the outcome received | "
        f"**{f['ledger_watches_finished_as_received']}** of {f['watches']} "
        f"({f['ledger_documents']} documents; {f['ledger_problems']} ledger problems) |",
        f"| duplicates (same watch id and outcome) | {f['duplicates']} "
        f"(on {f['watches_with_duplicates']} watches) |",
        f"| wall time, first publish to last notification + {c.settle_seconds:g} s settle | "
        f"{f['wall_seconds']:.0f} s |",
        "",
        "| outcome | planned | received (distinct per watch) |",
        "|---|---|---|",
    ]
    for outcome in ("SUCCEEDED", "FAILED", "NOT_FOUND", "TIMED_OUT"):
        lines.append(
            f"| {outcome} | {f['expected'].get(outcome, 0)} | "
            f"{f['received_distinct'].get(outcome, 0)} |"
        )
    lines += [
        "",
        "## Polls per watch (GETs the simulator saw, faulted ones included)",
        "",
        f"mean {f['polls_mean']:.2f}, median {f['polls_median']}, p95 {f['polls_p95']}, "
        f"max {f['polls_max']} (polling `{dict(c.polling)}`; not-found grace 1-10 s).",
        "",
        "| planned outcome | mean | max |",
        "|---|---|---|",
    ]
    for outcome, (mean, most) in report.polls_by_outcome().items():
        lines.append(f"| {outcome} | {mean:.2f} | {most} |")
    lines += [
        "",
        "## Faults",
        "",
        f"{f['faulted_gets']} of {f['gets']} GETs faulted ({f['faulted_share']:.1%}); "
        f"each operation had one kind at {c.fault_rate:.0%} of its GETs, the kinds in turn "
        f"({', '.join(FAULT_KINDS)}); `slow` answers after {2 * c.fetch_timeout:g} s, "
        f"beyond `FETCH_TIMEOUT={c.fetch_timeout:g}`.",
        "",
        "| kind | GETs |",
        "|---|---|",
        *(f"| {kind} | {count} |" for kind, count in f["faults"].items()),
        "",
        "- Check function: SIGKILL to its process group once "
        f"{c.kill_at:.0%} of the watches had ended; back (ready) after "
        f"{t.get('check_down', 0):.1f} s.",
        f"- Firestore (the ledger): unreachable for the functions for "
        f"{t.get('firestore_outage', 0):.1f} s once {c.firestore_outage_at:.0%} had ended: the "
        f"emulator killed (SIGKILL) after exporting its data, restarted "
        f"{c.firestore_outage_seconds:g} s later on the same port importing it (ready after "
        f"{t.get('firestore_ready_in', 0):.1f} s), as production's Firestore keeps its data "
        f"through an outage. Ledger writes Firestore did not take (`ledger.write_failed`, the "
        f"watch went on): {f['ledger_writes_failed']}; finishes left to a record task "
        f"(`ledger.behind`, written 60 s later): {f['ledger_finishes_to_record_tasks']}; "
        f"finishes only logged (a record task on its last attempt): "
        f"{f['ledger_finishes_only_logged']}.",
        f"- Pub/Sub: unreachable for the functions for {t.get('outage', 0):.1f} s once "
        f"{c.outage_at:.0%} had ended, the emulator stopped and restarted on the same port, "
        "topics and subscriptions recreated before the functions could reach it again. "
        f"{f['ended_in_outage_then_arrived']} watches ended during the outage and were "
        "notified after it.",
        f"- Deliveries that failed and were retried by the platform (log event "
        f"`delivery.failed`: a publish or a CreateTask; the function answered 500): "
        f"{f['delivery_failures_logged']}. Failed task dispatches the Tasks emulator retried "
        f"(crash, outage): {f['task_dispatch_failures']}.",
        "",
        "## Timeline",
        "",
        "```",
        *report.events,
        "```",
        "",
        "## Emulator caveats",
        "",
        "- The Tasks emulator dispatches one task at a time per queue, so one check blocked on a "
        "publish holds all the others back; real Cloud Tasks dispatches concurrently.",
        f"- It retries a failed task about every 0.1 s and drops it after `--max-retries`; the "
        f"soak sets {c.tasks_max_retries} (the stack's default is 5), since real Cloud Tasks backs "
        "off up to an hour and would not drop a check over a restart or an outage.",
        "- The Pub/Sub emulator keeps no state across a restart; the functions reach it through a "
        "gate the soak shuts before stopping it and opens after recreating the subscriptions, so "
        "the harness does not lose notifications real Pub/Sub would have kept.",
        "- The Firestore emulator keeps its data in memory only; the soak exports it before the "
        "kill and imports it at the restart, behind a gate shut first, so no write the "
        "functions saw succeed is lost between the export and the kill. The functions' "
        f"`TASKS_MAX_ATTEMPTS` is the emulator's {c.tasks_max_retries} retries + 1, as "
        "Terraform sets it to the queue's in production.",
    ]
    problems = report.problems()
    if problems:
        lines += ["", "## Problems", "", *(f"- {p}" for p in problems[:100])]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watches", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    config = SoakConfig(watches=args.watches, seed=args.seed)
    with sigterm_as_exit():
        report = run_soak(config, log=lambda line: print(line, file=sys.stderr, flush=True))
    command = f"python -m bench.soak --watches {args.watches} --seed {args.seed}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(report, command))
    print(f"wrote {args.out}", file=sys.stderr)
    for problem in report.problems()[:20]:
        print(problem, file=sys.stderr)
    return 1 if report.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
