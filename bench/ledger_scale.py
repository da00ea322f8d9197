"""The ledger at scale: the audit-log fast path, ``opwatch status`` and ``opwatch list`` against
N pending watches.

**On the local stack** (N = 1,000 and 10,000; the ledger is the stack's Firestore emulator,
the queue its Tasks emulator), one stack grown from the smaller N to the larger:

1. **Seed** N background watches as the functions leave them (``bench.ledger_harness.
   background_watch``): a check task of step 1-40 of its chain with ``recorded`` in its body
   (``CloudTasksQueue.create``), and the ledger's record of the step last recorded
   (``FirestoreLedger.put``), two watches an operation, their next look 2-3 hours away so none
   is dispatched during the run; a thread pool writes them.
2. **Measure** M short operations (durations uniform 5-20 s, seeded) whose audit entries the
   simulator writes to the audit topic after 0.5 s, each watched twice as with discovery on (a
   watch request, and the watch its first entry discovers), ``EVENT_DRIVEN_APIS`` set (as
   ``bench/fast_path.py`` runs), learning off (``LEARN_MIN_SAMPLES`` out of reach: else the
   larger N's watches would be scheduled from what the smaller N's operations taught, and see
   the end by polling). Per operation: from its last audit entry's publication to each
   look after its end (the simulator's GET records), and the Tasks emulator's ListTasks and
   RunTask calls during the round (one ``counted against`` line per call in its log).
3. **Operators**: ``opwatch status WATCH_ID`` of a pending background watch and the first page
   of ``opwatch list`` (100 pending watches, newest first), each through the CLI's ``main()``
   in this process (new clients every call, as a fresh command makes; no interpreter start),
   ``--runs`` times: median and max; plus one subprocess run of each (with the interpreter's
   start and imports), for scale.

**On the in-process harness** (N = 100,000; ``bench.ledger_harness.run_harness``): counting
fakes of the ledger (indexed by operation key, as Firestore's composite index serves the
query) and of the queue, the functions' own ``Handlers``: calls per end entry (queries,
GetTask, ListTasks) and CPU per end entry, with the ledger and, for contrast, without it.

    python -m bench.ledger_scale [--sizes 1000,10000] [--operations 50] [--harness 100000]
        [--runs 7] [--seed 16] [--only stack|harness]

Targets (issue 16): at N = 10,000 on the local stack, p95 from end entry to the look that sees
done ≤ 1 s, 0 ListTasks and 0 RunTask per end entry, ``status`` ≤ 0.5 s, first page of ``list``
≤ 2 s.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.ledger_harness import HarnessResult, background_watch, quota_calls, run_harness
from bench.stats import Summary, median, verdict
from opwatch.adapters import CloudTasksQueue, FirestoreLedger
from opwatch.audit import discovered_watch_id
from opwatch.contracts import DEFAULT_API
from opwatch.ledger import RECORD_EVERY, probe_names
from opwatch.logs import Event
from opwatch_local import cli
from opwatch_local.audit_log import AuditOptions
from opwatch_local.inbox import Inbox
from opwatch_local.procs import sigterm_as_exit
from opwatch_local.stack import LocalStack
from opwatch_local.stack_config import Ports, StackConfig
from opwatch_local.watches import operator_tasks

RESULTS = Path(__file__).parent / "results" / "ledger_scale.md"
AUDIT_LATENCY = 0.5
TARGET_LAG = 1.0
TARGET_STATUS = 0.5
TARGET_LIST = 2.0
SEED_THREADS = 16
# Watches per operation among the measured ones: the requested one and the discovered one.
CHAINS = 2
NEVER_LEARNED = 10**6  # LEARN_MIN_SAMPLES's largest value


@dataclass
class StackRound:
    """What one size measured on the local stack."""

    pending: int
    seed_seconds: float
    operations: int
    expected: int
    missing: int
    duplicates: int
    lags: list[float]
    entries: int
    quota: Counter[str]
    advanced: Counter[str]
    cli_quota: Counter[str]
    status: list[float] = field(default_factory=list)
    listing: list[float] = field(default_factory=list)
    status_subprocess: float | None = None
    list_subprocess: float | None = None
    status_rows: int = 0
    list_rows: int = 0
    query: list[float] = field(default_factory=list)
    probe: list[float] = field(default_factory=list)
    load: tuple[float, float] = (0.0, 0.0)


class LogCursor:
    """The text appended to a log file since the last read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.is_file() else 0

    def read(self) -> str:
        if not self.path.is_file():
            return ""
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        self.offset += len(data)
        return data.decode(errors="replace")


def seed(
    ledger: FirestoreLedger, queue: CloudTasksQueue, start: int, stop: int, results_topic: str
) -> float:
    """Write background watches ``start`` to ``stop - 1``; seconds it took."""
    now = datetime.now(UTC)

    def one(i: int) -> None:
        task, record = background_watch(i, now, results_topic)
        ledger.put(record)
        if not queue.create(task):
            raise RuntimeError(f"background task {task.task_id} existed already")

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=SEED_THREADS) as pool:
        for _ in pool.map(one, range(start, stop)):
            pass
    return time.perf_counter() - began


def measure_fast_path(
    stack: LocalStack, inbox: Inbox, pending: int, operations: int, rng: random.Random
) -> tuple[int, int, int, list[float], int, Counter[str], Counter[str]]:
    """One round of ``operations`` measured operations; see the module docstring."""
    sim = stack.client.simulator()
    tasks_log = LogCursor(stack.run_dir / "tasks.log")
    audit_log = LogCursor(stack.run_dir / "audit.log")
    names: list[str] = []
    expected: set[str] = set()
    for j in range(operations):
        audit = AuditOptions(latency=AUDIT_LATENCY, seed=pending * 1000 + j)
        operation = sim.create_operation(duration=rng.uniform(5.0, 20.0), audit=audit)
        watch_id = f"scale-{pending}-{j:03d}"
        stack.client.publish_watch_request({"operation": operation, "watch_id": watch_id})
        names.append(operation)
        expected |= {watch_id, discovered_watch_id(DEFAULT_API, operation)}
    missing = inbox.wait_all(expected, timeout=120.0)
    # The last looks' claims and finishes are written by now; let the audit log flush.
    time.sleep(1.0)
    quota = quota_calls(tasks_log.read())
    wanted = set(names)
    ends: dict[str, float] = {}  # operation -> when its last entry was published
    end_times: dict[str, float] = {}
    for delivery in sim.audit_deliveries():
        if delivery["operation"] in wanted and delivery["kind"] == "last" and delivery["delays"]:
            ends[delivery["operation"]] = delivery["time"] + delivery["delays"][0]
            end_times[delivery["operation"]] = delivery["time"]
    gets: dict[str, list[float]] = {}
    for record in sim.requests():
        if record["name"] in wanted:
            gets.setdefault(record["name"], []).append(record["time"])
    lags = []
    for operation, entry in ends.items():
        after = sorted(t for t in gets.get(operation, []) if t >= end_times[operation])
        lags += [t - entry for t in after[:CHAINS]]
    advanced = fast_path_events(audit_log.read(), wanted)
    duplicates = sum(max(0, len(inbox.of(w)) - 1) for w in expected)
    return len(expected), len(missing), duplicates, lags, len(ends), quota, advanced


def fast_path_events(text: str, operations: set[str]) -> Counter[str]:
    """What the audit function logged of the end entries of ``operations`` (JSON lines, read by
    ``event``): entries acted on, looks brought forward, left in flight, already taken, and
    entries the ledger did not answer for."""
    found: Counter[str] = Counter()
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if not isinstance(entry, dict) or entry.get("operation") not in operations:
                continue
            if entry.get("event") == Event.AUDIT_OPERATION_ENDED:
                counts = {
                    "brought forward": int(entry.get("checks_run", 0)),
                    "in flight": int(entry.get("in_flight", 0)),
                    "already taken": int(entry.get("already_taken", 0)),
                }
                found.update(counts)
                found["entries"] += 1
                found["found none"] += not any(counts.values())
            elif entry.get("event") == Event.AUDIT_LEDGER_UNAVAILABLE:
                found["ledger unavailable"] += 1
    return +found  # without the zero counts


def emulator_calls(
    ledger: FirestoreLedger, queue: CloudTasksQueue, pending: int, count: int
) -> tuple[list[float], list[float]]:
    """Seconds of the fast path's two reads on the emulators, ``count`` times each, for
    background watches spread over the N: the ledger's query of one operation's pending
    chains, and the 17 concurrent GetTask of one chain's names."""
    now = datetime.now(UTC)
    records = [background_watch(i, now)[1] for i in range(0, pending, max(1, pending // count))]
    query, probe = [], []
    for record in records[:count]:
        began = time.perf_counter()
        ledger.pending_of_operation(record.operation_key)
        query.append(time.perf_counter() - began)
        began = time.perf_counter()
        queue.first([str(name) for name in probe_names(record)])
        probe.append(time.perf_counter() - began)
    return query, probe


def timed_cli(argv: list[str], env: Mapping[str, str], runs: int) -> tuple[list[float], str]:
    """Wall seconds of ``opwatch ARGV`` through ``cli.main`` in this process, ``runs`` times,
    and the last run's output."""
    times, out = [], ""
    for _ in range(runs):
        buffer, errors = io.StringIO(), io.StringIO()
        began = time.perf_counter()
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(errors):
            code = cli.main(argv, environ=env)
        times.append(time.perf_counter() - began)
        if code != 0:
            raise RuntimeError(f"opwatch {' '.join(argv)} exited {code}: {errors.getvalue()}")
        out = buffer.getvalue()
    return times, out


def subprocess_cli(argv: list[str], env: Mapping[str, str]) -> float:
    """Wall seconds of one ``opwatch ARGV`` as a new process (interpreter start included)."""
    opwatch = Path(sys.executable).with_name("opwatch")
    began = time.perf_counter()
    subprocess.run(
        [str(opwatch), *argv],
        env=dict(env),
        check=True,
        capture_output=True,
        timeout=120,
    )
    return time.perf_counter() - began


def run_stack(
    sizes: list[int], operations: int, runs: int, seed_value: int, log: Callable[[str], None]
) -> list[StackRound]:
    rng = random.Random(seed_value)
    environ = {k: v for k, v in os.environ.items() if k != "OPERATIONS_API_ENDPOINT"}
    config = StackConfig(
        ports=Ports.free(),
        function_env={
            "EVENT_DRIVEN_APIS": "cloudaicompanion.googleapis.com",
            # Nothing learned of the operations' kind: a later round's watches would be
            # scheduled from the earlier rounds' durations and see the end by polling.
            "LEARN_MIN_SAMPLES": str(NEVER_LEARNED),
        },
    )
    rounds = []
    with (
        sigterm_as_exit(),
        LocalStack(config, environ=environ) as stack,
        Inbox(stack.client.pull_notifications) as inbox,
    ):
        log(f"stack ready in {stack.timings['total']:.1f}s; run dir {stack.run_dir}")
        env = stack.env() | {
            "OPWATCH_LEDGER_DATABASE": stack.firestore.database,
            "PATH": environ.get("PATH", ""),
        }
        # google-cloud-firestore reads the emulator's host from this process's environment.
        os.environ["FIRESTORE_EMULATOR_HOST"] = stack.firestore.host
        ledger = FirestoreLedger(stack.firestore.database, 30, stack.firestore.client)
        queue = CloudTasksQueue(operator_tasks(env, config.queue_path))
        seeded = 0
        for pending in sorted(sizes):
            seconds = seed(ledger, queue, seeded, pending, config.results_topic_path)
            log(f"seeded {pending - seeded} background watches in {seconds:.1f}s ({pending} now)")
            seeded = pending
            round_load = os.getloadavg()[0]
            expected, missing, dups, lags, entries, quota, advanced = measure_fast_path(
                stack, inbox, pending, operations, rng
            )
            log(
                f"N={pending}: {entries} end entries, p95 lag "
                f"{Summary.of(lags).p95 if lags else float('nan'):.2f}s, quota calls {dict(quota)}"
            )
            load_before = os.getloadavg()[0]
            query, probe = emulator_calls(ledger, queue, pending, 15)
            cli_log = LogCursor(stack.run_dir / "tasks.log")
            watch_id = f"bg-{(pending - 1):07d}"
            status_argv = ["status", watch_id]
            list_argv = ["list"]
            status, status_out = timed_cli(status_argv, env, runs)
            listing, list_out = timed_cli(list_argv, env, runs)
            round_ = StackRound(
                pending=pending,
                seed_seconds=seconds,
                operations=operations,
                expected=expected,
                missing=missing,
                duplicates=dups,
                lags=lags,
                entries=entries,
                quota=quota,
                advanced=advanced,
                cli_quota=Counter(),
                status=status,
                listing=listing,
                status_rows=max(0, len(status_out.strip().splitlines()) - 1),
                list_rows=max(0, len(list_out.strip().splitlines()) - 1),
                query=query,
                probe=probe,
                load=(round_load, load_before),
            )
            round_.status_subprocess = subprocess_cli(status_argv, env | _emulator_env(stack))
            round_.list_subprocess = subprocess_cli(list_argv, env | _emulator_env(stack))
            round_.cli_quota = quota_calls(cli_log.read())
            log(
                f"N={pending}: status median {median(status):.3f}s, list median "
                f"{median(listing):.3f}s, quota calls {dict(round_.cli_quota)}"
            )
            rounds.append(round_)
    return rounds


def _emulator_env(stack: LocalStack) -> dict[str, str]:
    return {"FIRESTORE_EMULATOR_HOST": stack.firestore.host}


# --- report --------------------------------------------------------------------------------------


def _per_entry(count: int, entries: int) -> str:
    return f"{count / entries:g}" if entries else "-"


def report(
    rounds: list[StackRound],
    harness: list[HarnessResult],
    args: argparse.Namespace,
) -> str:
    lines = [
        "# The ledger at scale: fast path, status and list against N pending watches",
        "",
        f"`python -m bench.ledger_scale {' '.join(args.argv)}`".replace(" `", "`"),
        "",
        f"Run once at this size on {datetime.now(UTC):%Y-%m-%d}, on a shared 2-core machine "
        "(others' work ran beside it): absolute times are noisy.",
        "",
    ]
    if rounds:
        lines += [
            "## Local stack (Firestore and Cloud Tasks emulators)",
            "",
            f"Background watches seeded as the functions leave them (2 an operation, step 1-40 "
            f"of their chain, the ledger's record at most {RECORD_EVERY - 1} steps behind, next "
            f"look 2-3 h away). Then {args.operations} operations of 5-20 s (seed {args.seed}), "
            f"end entries {AUDIT_LATENCY:g} s after the end, each operation watched twice (a "
            "requested and a discovered watch); `EVENT_DRIVEN_APIS` set. Lag = the simulator's "
            "GET after the operation's end minus the publication of its last audit entry. "
            "ListTasks "
            "and RunTask: the Tasks emulator's `counted against` lines during the round. "
            f"`status` / `list`: `cli.main()` in this process, {args.runs} runs, new clients "
            "each run; the subprocess column is one run of `.venv/bin/opwatch` (interpreter "
            "and imports included).",
            "",
            "| pending (N) | end entries | looks after the end | lag p50 | **lag p95** | max "
            "| ListTasks per end entry | RunTask per end entry | lost / duplicate notifications "
            "| looks brought forward / in flight / taken | entries finding none |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rounds:
            lag = Summary.of(r.lags) if r.lags else None
            lines.append(
                f"| {r.pending:,} | {r.entries} | {len(r.lags)} | "
                + (
                    f"{lag.p50:.2f} s | **{lag.p95:.2f} s** | {lag.max:.2f} s"
                    if lag
                    else "- | - | -"
                )
                + f" | **{_per_entry(r.quota['ListTasks'], r.entries)}** "
                f"| **{_per_entry(r.quota['RunTask'], r.entries)}** "
                f"| {r.missing} / {r.duplicates} "
                f"| {r.advanced['brought forward']} / {r.advanced['in flight']} / "
                f"{r.advanced['already taken']} | {r.advanced['found none']} |"
            )
        lines += [
            "",
            "| pending (N) | `status` median | max | subprocess | `list` first page median "
            "| max | subprocess | rows (status / list) | ListTasks / RunTask by both | seeding |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        timing_rows = [
            "",
            "What the emulators take for the fast path's two reads at each N (15 background "
            "watches spread over the N, from this process): the ledger's query of an "
            "operation's pending chains, and the 17 concurrent GetTask of a chain's names. The "
            "Firestore emulator defines no indexes and scans the collection, so its query "
            "grows with N; Firestore serves the same query from its composite index "
            "(`infra/ledger.tf`). Load = the machine's 1-minute load average when the round "
            "began / when the operators' commands ran (2 cores).",
            "",
            "| pending (N) | ledger query median | p95 | 17 GetTask median | p95 | load |",
            "|---|---|---|---|---|---|",
        ]
        for r in rounds:
            lines.append(
                f"| {r.pending:,} | **{median(r.status):.3f} s** | {max(r.status):.3f} s "
                f"| {r.status_subprocess or 0:.2f} s "
                f"| **{median(r.listing):.3f} s** | {max(r.listing):.3f} s "
                f"| {r.list_subprocess or 0:.2f} s | {r.status_rows} / {r.list_rows} "
                f"| {r.cli_quota['ListTasks']} / {r.cli_quota['RunTask']} "
                f"| {r.seed_seconds:.0f} s |"
            )
            if r.query:
                q, g = Summary.of(r.query), Summary.of(r.probe)
                timing_rows.append(
                    f"| {r.pending:,} | {q.p50 * 1000:.0f} ms | {q.p95 * 1000:.0f} ms "
                    f"| {g.p50 * 1000:.0f} ms | {g.p95 * 1000:.0f} ms "
                    f"| {r.load[0]:.1f} / {r.load[1]:.1f} |"
                )
        lines += timing_rows
        lines.append("")
        largest = max(rounds, key=lambda r: r.pending)
        if largest.lags:
            p95 = Summary.of(largest.lags).p95
            zero = largest.quota["ListTasks"] == 0 and largest.quota["RunTask"] == 0
            lines += [
                f"At N = {largest.pending:,}: lag p95 {p95:.2f} s (target ≤ {TARGET_LAG:g} s: "
                f"{verdict(p95 <= TARGET_LAG)}); ListTasks {largest.quota['ListTasks']}, RunTask "
                f"{largest.quota['RunTask']} over {largest.entries} end entries (target 0 / 0: "
                f"{verdict(zero)}); `status` median {median(largest.status):.3f} s (target ≤ "
                f"{TARGET_STATUS:g} s: {verdict(median(largest.status) <= TARGET_STATUS)}); "
                f"`list` first page median {median(largest.listing):.3f} s (target ≤ "
                f"{TARGET_LIST:g} s: {verdict(median(largest.listing) <= TARGET_LIST)}).",
                "",
            ]
    if harness:
        lines += [
            "## In-process harness (counting fakes, the functions' own Handlers)",
            "",
            "Each end entry's calls, as the real adapters would make them (`first` of 17 names = "
            "17 GetTask; `list_tasks` = one ListTasks a page of 1,000). CPU = this thread's time "
            "in `on_audit_message` (parse the entry, query, probe, bring forward). Each "
            "operation has 2 watches, each having looked 0-11 times before the end.",
            "",
            "| pending (N) | ledger | end entries | queries | GetTask | GetQueue | ListTasks "
            "| RunTask | CreateTask | DeleteTask | CPU p50 | CPU p95 | notified |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for h in harness:
            cpu = Summary.of(h.cpu)
            lines.append(
                f"| {h.background:,} | {'yes' if h.with_ledger else 'no (scan)'} "
                f"| {h.operations} | {h.calls('RunQuery').p50:g} | {h.calls('GetTask').p50:g} "
                f"| {h.calls('GetQueue').p50:g} | {h.calls('ListTasks').p50:g} | 0 "
                f"| {h.calls('CreateTask').p50:g} | {h.calls('DeleteTask').p50:g} "
                f"| {cpu.p50 * 1000:.2f} ms | {cpu.p95 * 1000:.2f} ms "
                f"| {h.notified}/{h.measured} |"
            )
        notes = []
        for h in harness:
            kinds = sorted({k for c in h.per_entry for k in c})
            spread = {
                k: (min(c[k] for c in h.per_entry), max(c[k] for c in h.per_entry)) for k in kinds
            }
            uneven = {k: v for k, v in spread.items() if v[0] != v[1]}
            which = f"{h.background:,} {'with' if h.with_ledger else 'without'} the ledger"
            notes.append(
                f"- {which}: every end entry made exactly these calls."
                if not uneven
                else f"- {which}: calls varied between entries: "
                + ", ".join(f"{k} {a}-{b}" for k, (a, b) in uneven.items())
                + "."
            )
        lines += [
            "",
            "Calls are medians per end entry; RunTask is not among the queue's operations the "
            "registry can call.",
            *notes,
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="pending watches on the stack")
    parser.add_argument("--operations", type=int, default=50, help="measured operations a size")
    parser.add_argument("--harness", type=int, default=100_000, help="pending on the harness")
    parser.add_argument("--harness-operations", type=int, default=50)
    parser.add_argument("--runs", type=int, default=7, help="runs of status and list")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--only", choices=("stack", "harness"), default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    rounds: list[StackRound] = []
    harness: list[HarnessResult] = []
    if args.only in (None, "harness"):
        harness.append(run_harness(args.harness, args.harness_operations, progress=log))
        # Without a ledger the scan is the cost: fewer entries suffice.
        harness.append(run_harness(args.harness, 10, with_ledger=False, progress=log))
    if args.only in (None, "stack"):
        sizes = [int(s) for s in args.sizes.split(",") if s]
        rounds = run_stack(sizes, args.operations, args.runs, args.seed, log)
    text = report(rounds, harness, args)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
