"""Polling policy benchmark: polls per operation and detection lag, opwatch against the references.

Each policy watches the same seeded mix of operations (durations log-uniform between 10 s and 2 h,
plus the single case of a 90-minute Gemini code-repository-index build). Time is simulated: a
policy is a generator of poll times; the first poll at or after the operation's end detects it.
opwatch runs through its real decision code (``opwatch.core.decide``, which calls the policy),
fed a fetch that answers "done" once the simulated clock passes the duration.

    python -m bench.polling [--operations 10000] [--seed 7]

A second mix measures what opwatch learns (``opwatch.learned``): kinds of operations, each
log-normal around its own median (medians log-uniform 30 s to 2 h, spreads from tight to 2x
wide); each kind's watches get no hint and are scheduled from its summary after 0, 5, 20 and
100 finished operations of it, against the same watches hinted with their own duration ±25 %.

writes the table to ``bench/results/polling.md`` and a picture of it to
``bench/results/polling.png``: mean polls against p95 lag ÷ duration for every policy, with the
Pareto frontier (the picture needs matplotlib: ``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from opwatch.contracts import WatchRequest
from opwatch.core import CheckAgain, Fetched, Finish, Progress, decide
from opwatch.learned import Expectation, Sample, Summary
from opwatch.wire import rfc3339
from opwatch_local.percentile import percentile

RESULTS = Path(__file__).parent / "results"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
GEMINI_INDEX_BUILD = 90 * 60.0
HINT_ERROR = 0.25


@dataclass(frozen=True)
class Result:
    polls: int
    lag: float  # seconds from the end to the detecting poll; inf if never detected


PollTimes = Callable[[float, random.Random], Iterator[float]]


def exponential(
    initial: float, multiplier: float, maximum: float, timeout: float = math.inf
) -> PollTimes:
    """Immediate first poll, then sleeps of initial x multiplier^k, capped (GAPIC / Workflows)."""

    def times(_duration: float, _rng: random.Random) -> Iterator[float]:
        t, delay = 0.0, initial
        while t <= timeout:
            yield t
            t += delay
            delay = min(delay * multiplier, maximum)

    return times


def api_core_default(_duration: float, rng: random.Random) -> Iterator[float]:
    """google-api-core DEFAULT_POLLING: sleeps uniform(0, cap), cap 1 s x1.5 up to 20 s, 900 s."""
    t, cap = 0.0, 1.0
    while t <= 900.0:
        yield t
        t += rng.uniform(0.0, cap)
        cap = min(cap * 1.5, 20.0)


def fixed(interval: float) -> PollTimes:
    def times(_duration: float, _rng: random.Random) -> Iterator[float]:
        t = 0.0
        while True:
            yield t
            t += interval

    return times


def run_reference(policy: PollTimes, duration: float, rng: random.Random) -> Result:
    polls = 0
    for t in policy(duration, rng):
        polls += 1
        if t >= duration:
            return Result(polls, t - duration)
    return Result(polls, math.inf)


def run_opwatch(
    duration: float,
    index: int,
    expected: float | None,
    *,
    joined_at: float = 0.0,
    create_time: bool = False,
    learned: Expectation | None = None,
) -> Result:
    """One watch through opwatch's real decision code, on a simulated clock.

    The watch starts ``joined_at`` seconds into the operation's life; with ``create_time`` the
    operation's metadata says when it was created, as Google's OperationMetadata does.
    """
    request = WatchRequest(
        operation=f"projects/p/locations/us-central1/operations/op-{index}",
        watch_id=f"bench-{index}",
        expected_duration=expected,
        timeout=30 * 86400.0,
    )
    metadata = {"createTime": rfc3339(T0 - timedelta(seconds=joined_at))} if create_time else {}
    remaining = duration - joined_at
    progress, elapsed = Progress(started=T0), 0.0
    while True:
        operation = {"name": request.operation, "done": elapsed >= remaining, "metadata": metadata}
        now = T0 + timedelta(seconds=elapsed)
        decision = decide(request, progress, Fetched(operation), now, learned=learned)
        if isinstance(decision, Finish):
            return Result(decision.progress.polls, elapsed - remaining)
        assert isinstance(decision, CheckAgain)
        progress, elapsed = decision.progress, elapsed + decision.delay


@dataclass(frozen=True)
class Row:
    name: str
    mean_polls: float
    p95_polls: float
    p50_lag: float
    p95_lag: float
    p95_lag_ratio: float
    undetected: float
    gemini_polls: int
    gemini_lag: float


def summarize(name: str, durations: list[float], results: list[Result], gemini: Result) -> Row:
    polls = [float(r.polls) for r in results]
    lags = [r.lag for r in results]
    ratios = [r.lag / d for r, d in zip(results, durations, strict=True)]
    return Row(
        name,
        statistics.fmean(polls),
        percentile(polls, 0.95),
        percentile(lags, 0.50),
        percentile(lags, 0.95),
        percentile(ratios, 0.95),
        sum(math.isinf(lag) for lag in lags) / len(lags),
        gemini.polls,
        gemini.lag,
    )


REFERENCES: dict[str, PollTimes] = {
    "google-api-core DEFAULT_POLLING": api_core_default,
    "GAPIC LRO default (5s x1.5 to 45s)": exponential(5.0, 1.5, 45.0),
    "Workflows connectors (1s x1.25 to 60s)": exponential(1.0, 1.25, 60.0),
    "Terraform google provider (10s)": fixed(10.0),
}
OPWATCH = "opwatch cloudaicompanion profile"
OPWATCH_HINT = "opwatch + expected_duration (±25 %)"
LATE_WATCH_CLOCK = "the watch's start (no createTime)"
LATE_OPERATION_CLOCK = "the operation's createTime"


def benchmark(operations: int, seed: int) -> list[Row]:
    """Every policy on the same seeded durations; the rows of the table."""
    rng = random.Random(seed)
    durations = [math.exp(rng.uniform(math.log(10.0), math.log(7200.0))) for _ in range(operations)]
    hints = [d * (1.0 + rng.uniform(-HINT_ERROR, HINT_ERROR)) for d in durations]
    rows = []
    for name, policy in REFERENCES.items():
        jitter = random.Random(seed + 1)
        results = [run_reference(policy, d, jitter) for d in durations]
        rows.append(
            summarize(name, durations, results, run_reference(policy, GEMINI_INDEX_BUILD, jitter))
        )
    plain = [run_opwatch(d, i, None) for i, d in enumerate(durations)]
    rows.append(summarize(OPWATCH, durations, plain, run_opwatch(GEMINI_INDEX_BUILD, -1, None)))
    hinted = [run_opwatch(d, i, h) for i, (d, h) in enumerate(zip(durations, hints, strict=True))]
    gemini_hint = GEMINI_INDEX_BUILD * (1 + HINT_ERROR / 2)
    rows.append(
        summarize(OPWATCH_HINT, durations, hinted, run_opwatch(GEMINI_INDEX_BUILD, -1, gemini_hint))
    )
    return rows


def late_watches(operations: int, seed: int) -> list[Row]:
    """Watches that join their operation at a random point of its life (a late request, or a
    discovery through the audit log), with and without the operation's createTime."""
    rng = random.Random(seed + 2)
    durations = [math.exp(rng.uniform(math.log(10.0), math.log(7200.0))) for _ in range(operations)]
    joined = [d * rng.uniform(0.0, 0.9) for d in durations]
    rows = []
    for name, create_time in ((LATE_WATCH_CLOCK, False), (LATE_OPERATION_CLOCK, True)):
        results = [
            run_opwatch(d, i, None, joined_at=j, create_time=create_time)
            for i, (d, j) in enumerate(zip(durations, joined, strict=True))
        ]
        gemini = run_opwatch(
            GEMINI_INDEX_BUILD, -1, None, joined_at=GEMINI_INDEX_BUILD / 2, create_time=create_time
        )
        rows.append(summarize(name, durations, results, gemini))
    return rows


KINDS = 40
LEARNED = "opwatch learned (kinds mix)"
LEARNED_AFTER = (0, 5, 20, 100)
# Each kind's spread, as the ratio of its 95th to its 5th percentile: tight to 2x wide.
WIDTHS = (1.1, 1.25, 1.5, 2.0)
SPREADS = tuple(math.log(w) / (2 * 1.645) for w in WIDTHS)  # sigma of log(duration)
LEARNED_GOAL_POLLS, LEARNED_GOAL_LAG, LEARNED_GOAL_VS_HINT = 10.0, 0.06, 1.15


def learned_rows(operations: int, seed: int) -> list[Row]:
    """Watches of kinds, scheduled from what was learned of each after n finished operations,
    and the same watches with their own hint (their duration ±25 %)."""
    rng = random.Random(seed + 3)
    kinds = [
        (math.exp(rng.uniform(math.log(30.0), math.log(7200.0))), SPREADS[k % len(SPREADS)])
        for k in range(KINDS)
    ]
    per_kind = max(1, operations // KINDS)
    draws = {
        k: [median * math.exp(rng.gauss(0.0, spread)) for _ in range(per_kind)]
        for k, (median, spread) in enumerate(kinds)
    }
    history = {
        k: [median * math.exp(rng.gauss(0.0, spread)) for _ in range(max(LEARNED_AFTER))]
        for k, (median, spread) in enumerate(kinds)
    }
    durations = [d for k in range(KINDS) for d in draws[k]]
    rows = []
    for n in LEARNED_AFTER:
        results = []
        for k in range(KINDS):
            summary = Summary(f"kind-{k}")
            for seconds in history[k][:n]:
                summary.add(Sample(summary.kind, seconds, T0, True))
            expectation = summary.expectation()
            results += [
                run_opwatch(d, i, None, learned=expectation) for i, d in enumerate(draws[k])
            ]
        gemini = run_opwatch(GEMINI_INDEX_BUILD, -1, None)
        rows.append(summarize(f"{LEARNED} after {n}", durations, results, gemini))
    hinted = [
        run_opwatch(d, i, d * (1.0 + rng.uniform(-HINT_ERROR, HINT_ERROR)))
        for i, d in enumerate(durations)
    ]
    rows.append(summarize(OPWATCH_HINT, durations, hinted, run_opwatch(GEMINI_INDEX_BUILD, -1, 1)))
    return rows


def learned_table(rows: list[Row]) -> str:
    after = {r.name: r for r in rows}
    twenty, hinted = after[f"{LEARNED} after 20"], after[OPWATCH_HINT]
    met = (
        twenty.mean_polls <= LEARNED_GOAL_POLLS
        and twenty.p95_lag_ratio <= LEARNED_GOAL_LAG
        and twenty.mean_polls <= LEARNED_GOAL_VS_HINT * hinted.mean_polls
    )
    lines = [
        "",
        f"What opwatch learns: {KINDS} kinds, each log-normal around its own median (medians "
        "log-uniform 30 s to 2 h; its 95th percentile 1.1, 1.25, 1.5 or 2 times its 5th), no "
        "hint, "
        "scheduled from the kind's summary after n finished operations of it (fewer than 5: the "
        "profile):",
        "",
        "| schedule | mean polls | p95 polls | p50 lag | p95 lag | p95 lag ÷ duration |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.mean_polls:.1f} | {r.p95_polls:.0f} | {r.p50_lag:.1f} s | "
            f"{r.p95_lag:.1f} s | {r.p95_lag_ratio:.3f} |"
        )
    lines += [
        "",
        f"Target after 20: mean polls ≤ {LEARNED_GOAL_POLLS:g}, p95 lag ≤ "
        f"{LEARNED_GOAL_LAG:.0%} of the duration, and polls within "
        f"{LEARNED_GOAL_VS_HINT - 1:.0%} of the hinted policy's ({hinted.mean_polls:.1f}): "
        f"{twenty.mean_polls:.1f} polls, {twenty.p95_lag_ratio:.1%} — "
        f"{'met' if met else 'NOT met'}.",
    ]
    return "\n".join(lines) + "\n"


def late_table(rows: list[Row]) -> str:
    lines = [
        "",
        "Watches that start at a random point of their operation's life (uniform over the first",
        "90 %; same duration mix; lag ÷ the operation's whole duration; the 90-minute build",
        "joined at 45 minutes):",
        "",
        "| schedule measured from | mean polls | p95 polls | p50 lag | p95 lag "
        "| p95 lag ÷ duration | 90-min build: polls | 90-min build: lag |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.mean_polls:.1f} | {r.p95_polls:.0f} | {r.p50_lag:.1f} s | "
            f"{r.p95_lag:.1f} s | {r.p95_lag_ratio:.3f} | {r.gemini_polls} | {r.gemini_lag:.1f} s |"
        )
    return "\n".join(lines) + "\n"


def dominated_by(rows: list[Row], name: str) -> list[str]:
    """References with both fewer mean polls and a lower p95 lag/duration than ``name``."""
    ours = next(row for row in rows if row.name == name)
    return [
        row.name
        for row in rows
        if row.name in REFERENCES
        and row.mean_polls < ours.mean_polls
        and row.p95_lag_ratio < ours.p95_lag_ratio
    ]


def table(rows: list[Row], operations: int, seed: int) -> str:
    def seconds(value: float) -> str:
        return "never (timeout)" if math.isinf(value) else f"{value:.1f} s"

    lines = [
        f"{operations} operations, durations log-uniform 10 s to 2 h, seed {seed}; "
        "first poll at the start for every policy.",
        "",
        "| policy | mean polls | p95 polls | p50 lag | p95 lag | p95 lag ÷ duration "
        "| not detected | 90-min build: polls | 90-min build: lag |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = "∞" if math.isinf(r.p95_lag_ratio) else f"{r.p95_lag_ratio:.3f}"
        lines.append(
            f"| {r.name} | {r.mean_polls:.1f} | {r.p95_polls:.0f} | {seconds(r.p50_lag)} | "
            f"{seconds(r.p95_lag)} | {ratio} | {r.undetected:.1%} | {r.gemini_polls} "
            f"| {seconds(r.gemini_lag)} |"
        )
    return "\n".join(lines) + "\n"


def frontier(rows: list[Row]) -> list[Row]:
    """The rows no other row beats on both mean polls and p95 lag ÷ duration, by mean polls."""
    finite = [r for r in rows if math.isfinite(r.p95_lag_ratio)]
    return sorted(
        (
            r
            for r in finite
            if not any(
                o.mean_polls <= r.mean_polls
                and o.p95_lag_ratio <= r.p95_lag_ratio
                and (o.mean_polls, o.p95_lag_ratio) != (r.mean_polls, r.p95_lag_ratio)
                for o in finite
            )
        ),
        key=lambda r: r.mean_polls,
    )


def plot(rows: list[Row], path: Path, operations: int, seed: int) -> None:
    """Mean polls against p95 lag ÷ duration, one point per policy. The frontier is drawn over
    the policies that get no hint (the references and opwatch's default); the region it
    dominates is shaded, and the hinted run is shown beside it."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    fig, ax = pyplot.subplots(figsize=(9, 5.5), dpi=100)
    top = max(r.p95_lag_ratio for r in rows if math.isfinite(r.p95_lag_ratio)) * 1.5
    right = max(r.mean_polls for r in rows) * 2.5
    # The frontier of the policies that get no hint, on the main mix (the learned row is of
    # the kinds mix, shown beside it like the hinted run).
    best = frontier([r for r in rows if r.name != OPWATCH_HINT and not r.name.startswith(LEARNED)])
    xs, ys = [best[0].mean_polls], [top]
    for r in best:
        xs += [r.mean_polls, r.mean_polls]
        ys += [ys[-1], r.p95_lag_ratio]
    xs.append(right)
    ys.append(ys[-1])
    ax.plot(xs, ys, color="tab:blue", linestyle="--", linewidth=1, label="Pareto frontier, no hint")
    ax.fill_between(xs, ys, top, color="tab:blue", alpha=0.06, label="dominated by it")
    for r in rows:
        ours = "opwatch" in r.name
        finite = math.isfinite(r.p95_lag_ratio)
        y = r.p95_lag_ratio if finite else top * 0.93
        ax.scatter(
            r.mean_polls,
            y,
            s=90 if ours else 60,
            marker=("o" if ours else "s") if finite else "^",
            color="tab:blue" if ours else "tab:gray",
            zorder=3,
        )
        label = r.name if finite else f"{r.name}: gives up after 900 s (∞)"
        left = r.mean_polls > 40 or r.name == OPWATCH  # keep clear of the frame and neighbours
        ax.annotate(
            label,
            (r.mean_polls, y),
            xytext=(
                -8 if left else 8,
                -13 if r.name.startswith(("Workflows", LEARNED)) else 4,
            ),
            textcoords="offset points",
            ha="right" if left else "left",
            fontsize=8,
        )
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator([5, 10, 20, 50, 100, 200]))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(min(r.mean_polls for r in rows) / 1.5, right)
    ax.set_ylim(0, top)
    ax.set_xlabel("mean polls per operation (log scale; fewer is better)")
    ax.set_ylabel("p95 detection lag ÷ operation duration (lower is better)")
    ax.set_title(f"Polling policies on {operations:,} operations of 10 s to 2 h (seed {seed})")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"Software": None})  # no version stamp: reruns compare equal
    pyplot.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS / "polling.md", help="the table")
    parser.add_argument("--png", type=Path, default=RESULTS / "polling.png", help="the picture")
    args = parser.parse_args(argv)
    rows = benchmark(args.operations, args.seed)
    text = table(rows, args.operations, args.seed)
    beaten = dominated_by(rows, OPWATCH)
    hinted = next(row for row in rows if row.name == OPWATCH_HINT)
    verdict_a = "met" if not beaten else "NOT met: " + ", ".join(beaten)
    text += (
        f"\nTarget (a), no hint, on the Pareto frontier: {verdict_a}."
        f"\nTarget (b), with the hint, ≤ 8 mean polls and p95 lag ≤ 5 % of the duration: "
        f"{hinted.mean_polls:.2f} polls, {hinted.p95_lag_ratio:.2%}"
        f" — {'met' if hinted.mean_polls <= 8 and hinted.p95_lag_ratio <= 0.05 else 'NOT met'}.\n"
    )
    text += late_table(late_watches(args.operations, args.seed))
    learned = learned_rows(args.operations, args.seed)
    text += learned_table(learned)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    try:
        plot(rows + learned[2:3], args.png, args.operations, args.seed)
    except ImportError:
        print("no picture: matplotlib is missing; pip install -e '.[bench]'", file=sys.stderr)
        return 1
    print(f"wrote {args.out} and {args.png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
