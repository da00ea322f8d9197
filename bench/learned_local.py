"""Learned durations on the local stack: a batch of operations of one kind, then another.

The first batch is scheduled by the profile (nothing learned yet); each finish teaches the
kind's summary in the ledger (the stack's Firestore emulator); the second batch reads it at its
first look and polls as if it had a hint. Same kind: operations of one seeded duration mix
around ``--median`` seconds (±10 %), all watched from their start, no ``expected_duration``.
Targets (issue 17): the second batch takes ≤ 0.7x the first batch's GETs, and its p95 lag is
≤ 5 % of the duration + 1 s.

    python -m bench.learned_local [--batch 6] [--median 90] [--seed 3]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from opwatch.wire import parse_rfc3339
from opwatch_local.inbox import Inbox
from opwatch_local.percentile import percentile
from opwatch_local.procs import sigterm_as_exit
from opwatch_local.stack import LocalStack
from opwatch_local.stack_config import Ports, StackConfig

RESULTS = Path(__file__).parent / "results" / "learned_local.md"
GET_RATIO_TARGET = 0.7
LAG_TARGET_SHARE, LAG_TARGET_EXTRA = 0.05, 1.0


@dataclass(frozen=True)
class Batch:
    gets: int
    lags: list[float]
    shares: list[float]  # lag minus the allowed second, ÷ duration
    schedules: list[str]

    @property
    def p95_lag(self) -> float:
        return percentile(self.lags, 0.95)


def run_batch(
    stack: LocalStack, inbox: Inbox, kind: str, durations: list[float], tag: str
) -> Batch:
    sim = stack.client.simulator()
    names = {}
    for i, duration in enumerate(durations):
        watch_id = f"learn-{tag}-{kind}-{i}"
        names[watch_id] = sim.create_operation(duration=duration)
        stack.client.publish_watch_request({"operation": names[watch_id], "watch_id": watch_id})
    lags, shares, schedules, gets = [], [], [], 0
    for (watch_id, name), duration in zip(names.items(), durations, strict=True):
        [note] = inbox.wait(watch_id, timeout=duration * 3 + 120)
        ended = parse_rfc3339(note.data["operation"]["metadata"]["endTime"])
        seen = parse_rfc3339(note.data["observed_done"])
        assert ended is not None and seen is not None
        lag = max(0.0, (seen - ended).total_seconds())
        lags.append(lag)
        shares.append(max(0.0, lag - LAG_TARGET_EXTRA) / duration)
        schedules.append(str(note.data.get("schedule", {}).get("source")))
        gets += sim.stats(name).gets
    return Batch(gets, lags, shares, schedules)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=6)
    parser.add_argument("--median", type=float, default=90.0)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    first = [args.median * rng.uniform(0.9, 1.1) for _ in range(args.batch)]
    second = [args.median * rng.uniform(0.9, 1.1) for _ in range(args.batch)]
    environ = {k: v for k, v in os.environ.items() if k != "OPERATIONS_API_ENDPOINT"}
    kind = uuid.uuid4().hex[:6]  # a fresh stack learns nothing before; the tag keeps ids apart
    with (
        sigterm_as_exit(),
        LocalStack(StackConfig(ports=Ports.free()), environ=environ) as stack,
        Inbox(stack.client.pull_notifications) as inbox,
    ):
        before = run_batch(stack, inbox, kind, first, "first")
        after = run_batch(stack, inbox, kind, second, "second")
    ratio = after.gets / before.gets
    # Per watch: (lag - 1 s) / duration, so "p95 lag <= 5 % of the duration + 1 s".
    lag_ok = percentile(after.shares, 0.95) <= LAG_TARGET_SHARE
    lines = [
        "# Learned durations on the local stack",
        "",
        f"`python -m bench.learned_local --batch {args.batch} --median {args.median:g} "
        f"--seed {args.seed}`: {args.batch} operations of one kind (durations {args.median:g} s "
        "± 10 %), watched from their start with no hint; then as many again. Local stack with "
        "the ledger on the Firestore emulator; GETs counted by the operations simulator.",
        "",
        "| batch | schedule | GETs | GETs per watch | p95 lag | p95 (lag - 1 s) ÷ duration |",
        "|---|---|---|---|---|---|",
    ]
    for name, batch in (("first", before), ("second", after)):
        lines.append(
            f"| {name} | {', '.join(sorted(set(batch.schedules)))} | {batch.gets} | "
            f"{batch.gets / args.batch:.1f} | {batch.p95_lag:.2f} s | "
            f"{percentile(batch.shares, 0.95):.1%} |"
        )
    lines += [
        "",
        f"Second ÷ first batch GETs: **{ratio:.2f}x** (target ≤ {GET_RATIO_TARGET}x: "
        f"{'met' if ratio <= GET_RATIO_TARGET else 'NOT met'}); p95 lag of the second batch "
        f"≤ {LAG_TARGET_SHARE:.0%} of the duration + {LAG_TARGET_EXTRA:g} s: "
        f"{'met' if lag_ok else 'NOT met'}.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0 if ratio <= GET_RATIO_TARGET and lag_ok else 1


if __name__ == "__main__":
    sys.exit(main())
