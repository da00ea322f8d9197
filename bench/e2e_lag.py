"""End-to-end lag on the local stack: polls, detection lag and notification delivery, plus the
rate of checks the stack sustains beside the Cloud Tasks emulator's own ceiling.

Everything runs on a :class:`opwatch_local.stack.LocalStack` on free loopback ports: the real
Pub/Sub emulator, the Cloud Tasks emulator, the operations simulator and both functions as
functions-framework processes. Times are the machine's wall clock (``time.time``), which every
process here shares: the simulator stamps each GET, the operation's ``endTime`` comes from the
simulator, and the arrival of a notification is stamped by the tools' shared
:class:`opwatch_local.inbox.Inbox`, pulling on a thread of its own.

Lag scenario (per scenario, all watches started within a few seconds and run concurrently):

- operations of seeded uniform durations (default 200 of 5-60 s), one watch each, default policy
  (no ``polling`` override); optionally a second scenario with ``expected_duration`` off by up to
  ±25 % (``--hint``);
- polls per operation: the simulator's GET count for the operation;
- detection lag: the first GET that saw ``done`` minus the operation's ``endTime``;
- delivery: arrival at the pull subscriber minus that GET (split at Pub/Sub's ``publishTime``).

Throughput (``--rounds`` rounds, alternating): the queue is paused, ``--burst`` tasks are created,
the queue is resumed, and the dispatch rate is measured while the burst drains:

- empty handler: tasks whose target is a tiny loopback ``http.server`` answering 200 (the
  emulator's own ceiling, stamped at the handler);
- opwatch: real check tasks (``opwatch.checks.encode``) for a pending operation, so each runs
  fetch → decide → create the next task; stamped by the simulator's GETs. The follow-up tasks are
  an hour out and the queue is purged after each round, so they never run.

    python -m bench.e2e_lag [--operations 200] [--hint] [--burst 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from google.cloud import tasks_v2  # type: ignore[attr-defined]

from bench.stats import Summary, median, peak_rate, rate, ratio, verdict
from opwatch import checks
from opwatch.contracts import PollingOverride, WatchRequest
from opwatch.core import Progress
from opwatch.wire import parse_rfc3339
from opwatch_local.inbox import Inbox
from opwatch_local.procs import LOOPBACK, sigterm_as_exit
from opwatch_local.stack import LocalStack
from opwatch_local.stack_config import Ports, StackConfig

RESULTS = Path(__file__).parent / "results" / "e2e_lag.md"
DELIVERY_TARGET_P95 = 1.0
RPC_TIMEOUT = 10.0


@dataclass(frozen=True)
class LagResult:
    name: str
    watches: int
    start_span: float
    wall: float
    polls: Summary
    lag: Summary
    lag_ratio: Summary
    to_publish: Summary
    publish_to_arrival: Summary
    delivery: Summary
    peak_gets: float
    missing: int
    duplicates: int
    outcomes: dict[str, int]


def run_lag(
    stack: LocalStack,
    inbox: Inbox,
    *,
    name: str,
    prefix: str,
    durations: list[float],
    hints: list[float] | None,
    timeout: float,
) -> LagResult:
    sim = stack.client.simulator()
    watches: list[tuple[str, str]] = []
    began = time.time()
    for i, duration in enumerate(durations):
        operation = sim.create_operation(duration=duration)
        watch_id = f"{prefix}-{i:04d}"
        request: dict[str, Any] = {"operation": operation, "watch_id": watch_id}
        if hints is not None:
            request["expected_duration"] = f"{hints[i]:.3f}s"
        stack.client.publish_watch_request(request)
        watches.append((watch_id, operation))
    start_span = time.time() - began
    missing = inbox.wait_all({w for w, _ in watches}, timeout)
    wall = time.time() - began

    polls, lags, lag_ratios, to_publish, to_arrival, delivery = [], [], [], [], [], []
    outcomes: dict[str, int] = {}
    get_times: list[float] = []
    for (watch_id, operation), duration in zip(watches, durations, strict=True):
        stats = sim.stats(operation)
        get_times.extend(stats.times)
        arrivals = inbox.of(watch_id)
        if not arrivals:
            continue
        arrival = arrivals[0]
        outcomes[arrival.outcome or "?"] = outcomes.get(arrival.outcome or "?", 0) + 1
        end_time = parse_rfc3339(
            ((arrival.data.get("operation") or {}).get("metadata") or {}).get("endTime")
        )
        if arrival.outcome != "SUCCEEDED" or end_time is None:
            continue
        # endTime has milliseconds: the first GET that saw "done" is the first 200 at or after it.
        end = end_time.timestamp()
        seen = next(
            t for t, s in zip(stats.times, stats.statuses, strict=True) if s == 200 and t >= end
        )
        publish_time = arrival.message.publish_time.timestamp()
        polls.append(float(stats.gets))
        lags.append(seen - end)
        lag_ratios.append((seen - end) / duration)
        to_publish.append(publish_time - seen)
        to_arrival.append(arrival.at - publish_time)
        delivery.append(arrival.at - seen)
    return LagResult(
        name=name,
        watches=len(watches),
        start_span=start_span,
        wall=wall,
        polls=Summary.of(polls),
        lag=Summary.of(lags),
        lag_ratio=Summary.of(lag_ratios),
        to_publish=Summary.of(to_publish),
        publish_to_arrival=Summary.of(to_arrival),
        delivery=Summary.of(delivery),
        peak_gets=peak_rate(get_times, 5.0),
        missing=len(missing),
        duplicates=sum(len(inbox.of(w)) - 1 for w, _ in watches if inbox.of(w)),
        outcomes=outcomes,
    )


class _EmptyHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        at = time.time()
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
        server: Any = self.server
        with server.lock:
            server.arrivals.append(at)


class EmptyTarget:
    """A loopback HTTP server that answers every POST with an empty 200 and stamps it."""

    def __init__(self) -> None:
        self._httpd: Any = ThreadingHTTPServer((LOOPBACK, 0), _EmptyHandler)
        self._httpd.arrivals = []
        self._httpd.lock = threading.Lock()
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._httpd.server_address[1]}/"

    def arrivals(self) -> list[float]:
        with self._httpd.lock:
            return list(self._httpd.arrivals)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def burst_rate(
    stack: LocalStack,
    tasks: list[tasks_v2.Task],
    arrivals: Callable[[], list[float]],
    timeout: float,
) -> float:
    """Pause the queue, create ``tasks``, resume, and measure how fast they are dispatched."""
    client, queue = stack.client.tasks(), stack.config.queue_path
    before = len(arrivals())
    client.pause_queue(name=queue, timeout=RPC_TIMEOUT)
    try:
        for task in tasks:
            client.create_task(parent=queue, task=task, timeout=RPC_TIMEOUT)
    finally:
        client.resume_queue(name=queue, timeout=RPC_TIMEOUT)
    deadline = time.monotonic() + timeout
    while len(arrivals()) - before < len(tasks) and time.monotonic() < deadline:
        time.sleep(0.1)
    seen = arrivals()[before:]
    client.purge_queue(name=queue, timeout=RPC_TIMEOUT)  # the follow-ups of opwatch's checks
    if len(seen) < len(tasks):
        raise TimeoutError(f"only {len(seen)} of {len(tasks)} tasks ran within {timeout:.0f}s")
    return rate(sorted(seen))


def empty_tasks(target: EmptyTarget, count: int) -> list[tasks_v2.Task]:
    return [
        tasks_v2.Task(
            http_request=tasks_v2.HttpRequest(
                url=target.url,
                http_method=tasks_v2.HttpMethod.POST,
                headers={"Content-Type": "application/json"},
                body=b"{}",
            )
        )
        for _ in range(count)
    ]


def check_tasks(stack: LocalStack, operation: str, prefix: str, count: int) -> list[tasks_v2.Task]:
    """Check tasks as on_check writes them; the next look they schedule is an hour away."""
    now = datetime.now(UTC)
    out = []
    for i in range(count):
        request = WatchRequest(
            operation=operation,
            watch_id=f"{prefix}-{i:05d}",
            polling=PollingOverride(initial_delay=3600.0),
        )
        task = checks.encode(request, Progress(started=now, polls=1, seen=True), now, "bench")
        out.append(
            tasks_v2.Task(
                name=f"{stack.config.queue_path}/tasks/{task.task_id}",
                http_request=tasks_v2.HttpRequest(
                    url=stack.config.check_url,
                    http_method=tasks_v2.HttpMethod.POST,
                    headers={"Content-Type": "application/json"},
                    body=task.body,
                ),
            )
        )
    return out


@dataclass(frozen=True)
class Throughput:
    burst: int
    empty: list[float]
    opwatch: list[float]

    @property
    def ratio(self) -> float:
        return ratio(median(self.opwatch), median(self.empty))


def run_throughput(stack: LocalStack, burst: int, rounds: int, timeout: float) -> Throughput:
    sim = stack.client.simulator()
    target = EmptyTarget()
    empty, ours = [], []
    try:
        for r in range(rounds):
            empty.append(burst_rate(stack, empty_tasks(target, burst), target.arrivals, timeout))
            operation = sim.create_operation(duration=86_400.0)
            ours.append(
                burst_rate(
                    stack,
                    check_tasks(stack, operation, f"tp{r}", burst),
                    lambda op=operation: list(sim.stats(op).times),
                    timeout,
                )
            )
            print(f"  round {r + 1}: empty {empty[-1]:.1f}/s, opwatch {ours[-1]:.1f}/s", flush=True)
    finally:
        target.close()
    return Throughput(burst=burst, empty=empty, opwatch=ours)


def seconds(value: float) -> str:
    return f"{value:.2f} s"


def report(lags: list[LagResult], throughput: Throughput | None, args: argparse.Namespace) -> str:
    lines = [
        "# End-to-end lag on the local stack",
        "",
        f"`python -m bench.e2e_lag {' '.join(args.argv)}`".replace(" `", "`"),
        "",
        f"{args.operations} operations per scenario, durations uniform {args.min_duration:g}-"
        f"{args.max_duration:g} s (seed {args.seed}), one watch each, default cloudaicompanion "
        "profile (no `polling` override), all watches published within the start span and run "
        "concurrently on one LocalStack (real Pub/Sub and Cloud Tasks emulators, simulator, both "
        "functions as functions-framework processes). Times are wall clock on a shared 2-core "
        "machine: read the ratios and the shape, not the absolute values.",
        "",
        "| scenario | watches | start span | wall | polls mean | polls p95 | lag p50 | lag p95 "
        "| lag p95 ÷ duration | GET→publish p50 | publish→arrival p50 | GET→subscriber p50 "
        "| GET→subscriber p95 | peak GETs/s (5 s) | missing | duplicates |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in lags:
        lines.append(
            f"| {r.name} | {r.watches} | {seconds(r.start_span)} | {seconds(r.wall)} "
            f"| {r.polls.mean:.1f} | {r.polls.p95:.0f} | {seconds(r.lag.p50)} "
            f"| {seconds(r.lag.p95)} | {r.lag_ratio.p95:.3f} | {seconds(r.to_publish.p50)} "
            f"| {seconds(r.publish_to_arrival.p50)} | {seconds(r.delivery.p50)} "
            f"| {seconds(r.delivery.p95)} | {r.peak_gets:.1f} | {r.missing} | {r.duplicates} |"
        )
    lines.append("")
    for r in lags:
        lines.append(
            f"- {r.name}: outcomes {r.outcomes}; GET→subscriber max {seconds(r.delivery.max)}; "
            f"target GET→subscriber p95 ≤ {DELIVERY_TARGET_P95:g} s: "
            f"{verdict(r.delivery.p95 <= DELIVERY_TARGET_P95)} ({seconds(r.delivery.p95)})."
        )
    if throughput is not None:
        t = throughput
        lines += [
            "",
            "## Checks per second the stack sustains",
            "",
            f"Each round: pause the queue, create {t.burst} tasks, resume, and time the "
            "dispatches from the first to the last (rate = (n - 1) ÷ span). Empty handler: a "
            "loopback `http.server` that answers 200. opwatch: real check tasks for a pending "
            "operation (fetch → decide → create the next task), timed at the simulator's GETs. "
            "The emulator dispatches each queue from one thread, one blocking request at a time, "
            "so both figures are 1 ÷ (dispatch overhead + handler latency).",
            "",
            "| | " + " | ".join(f"round {i + 1}" for i in range(len(t.empty))) + " | median |",
            "|---|" + "---|" * (len(t.empty) + 1),
            "| empty handler (tasks/s) | "
            + " | ".join(f"{v:.1f}" for v in t.empty)
            + f" | {median(t.empty):.1f} |",
            "| opwatch on_check (checks/s) | "
            + " | ".join(f"{v:.1f}" for v in t.opwatch)
            + f" | {median(t.opwatch):.1f} |",
            "",
            f"opwatch ÷ emulator ceiling: **{t.ratio:.2f}** (median ÷ median).",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, default=200)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--min-duration", type=float, default=5.0)
    parser.add_argument("--max-duration", type=float, default=60.0)
    parser.add_argument("--hint", action="store_true", help="also run an expected_duration run")
    parser.add_argument("--burst", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)

    rng = random.Random(args.seed)
    durations = [rng.uniform(args.min_duration, args.max_duration) for _ in range(args.operations)]
    hints = [d * (1 + rng.uniform(-0.25, 0.25)) for d in durations]
    # Bounded: the longest operation, its last poll gap (≤ 25 % of it) and a generous margin.
    timeout = args.max_duration * 1.5 + 120.0

    environ = {k: v for k, v in os.environ.items() if k != "OPERATIONS_API_ENDPOINT"}
    config = StackConfig(ports=Ports.free())
    lags: list[LagResult] = []
    throughput = None
    with sigterm_as_exit(), LocalStack(config, environ=environ) as stack:
        print(f"stack up in {stack.timings['total']:.1f}s ({stack.run_dir})", flush=True)
        with Inbox(stack.client.pull_notifications) as inbox:
            print("scenario: default policy", flush=True)
            lags.append(
                run_lag(
                    stack,
                    inbox,
                    name="default policy",
                    prefix="lag",
                    durations=durations,
                    hints=None,
                    timeout=timeout,
                )
            )
            if args.hint:
                print("scenario: expected_duration ±25 %", flush=True)
                lags.append(
                    run_lag(
                        stack,
                        inbox,
                        name="expected_duration ±25 %",
                        prefix="hint",
                        durations=durations,
                        hints=hints,
                        timeout=timeout,
                    )
                )
        if args.rounds > 0:
            print("throughput", flush=True)
            throughput = run_throughput(stack, args.burst, args.rounds, timeout=120.0)
    text = report(lags, throughput, args)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
