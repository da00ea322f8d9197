"""Warm CPU time per check: opwatch's ``on_check`` against a minimal hand-written handler.

Both run as functions-framework processes (gunicorn, as deployed) beside each other, against the
same operations simulator (an operation that stays pending) and the same Cloud Tasks emulator
queue, which is paused so the tasks they create are never dispatched back. The reference is
``bench/baseline_check.py``: read the body, GET the operation with ``requests``, parse the JSON,
create the next task with the same ``tasks_v2`` client.

CPU time is read from ``/proc/<pid>/stat`` (utime + stime, every thread) for each server's whole
process group, before and after ``--requests`` sequential warm requests, so it counts everything
the server spends on a check (framework included, same for both) and nothing the driver spends.
Rounds alternate which server goes first; the report gives the median per round and the ratio.

opwatch's server runs with the ledger (``LEDGER_DATABASE``, and ``FIRESTORE_EMULATOR_HOST`` of
the stack's Firestore emulator); the bodies are a chain's steady state, so one check in
``RECORD_EVERY`` writes the ledger (the report counts the documents it wrote). The minimal
handler knows nothing of a ledger.

A third server, opwatch with ``LOG_LEVEL=WARNING``, shows what the one INFO log line per check
costs. Then ``py-spy`` (the ``bench`` extra) samples opwatch's server while it serves more checks
(samples holding the GIL) and the samples are grouped by what the handler was doing.

With ``--ledger-split``, three more rows say what the ledger costs: opwatch without
``LEDGER_DATABASE``, and opwatch's first server again on bodies of which every check, or none,
writes the ledger; their difference is one write's CPU.

    python -m bench.check_cost [--requests 200] [--rounds 5] [--no-profile] [--ledger-split]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import requests

from bench.stats import cpu_seconds_from_stat, median, ratio, verdict
from opwatch import checks
from opwatch.contracts import WatchRequest
from opwatch.core import Progress
from opwatch.ledger import COLLECTION, RECORD_EVERY
from opwatch_local.procs import (
    LOOPBACK,
    Supervisor,
    free_port,
    group_pids,
    sigterm_as_exit,
)
from opwatch_local.stack import LocalStack, function_spec
from opwatch_local.stack_config import REPO_ROOT, Ports, StackConfig

RESULTS = Path(__file__).parent / "results" / "check_cost.md"
QUIET = "opwatch on_check, LOG_LEVEL=WARNING"
NO_LEDGER = "opwatch on_check, no ledger"
EVERY = "opwatch on_check, every check writes the ledger"
NONE = "opwatch on_check, no check writes the ledger"
BASELINE = Path(__file__).with_name("baseline_check.py")
TARGET_RATIO = 1.2
RPC_TIMEOUT = 10.0


@dataclass
class Server:
    name: str
    pid: int
    url: str
    session: requests.Session
    cpu_per_check: list[float]
    wall_per_check: list[float]
    # What Cloud Tasks sends: opwatch refuses checks that do not name its queue.
    headers: dict[str, str]
    served: int = 0


def group_cpu(pid: int) -> float:
    total = 0.0
    for member in group_pids(pid):
        try:
            total += cpu_seconds_from_stat(Path(f"/proc/{member}/stat").read_text())
        except OSError:
            continue
    return total


class Bodies:
    """Check bodies for distinct watches of one operation (distinct task names per check).

    ``records``: ``steady`` (default), as in a watch's steady state, one check in
    ``RECORD_EVERY`` records its next step in the ledger; ``every`` or ``none`` of them do
    (``--ledger-split``: what one ledger write costs).
    """

    def __init__(self, operation: str, records: str = "steady") -> None:
        self.operation = operation
        self.records = records
        self.count = 0
        self.started = datetime.now(UTC)

    def next(self) -> bytes:
        """A step of a long chain whose ledger holds step RECORD_EVERY: steady, the step is one
        of the RECORD_EVERY after it in turn; else always the one whose next step records (or
        always one whose next step does not)."""
        self.count += 1
        prefix = "cost" if self.records == "steady" else f"cost-{self.records}"
        request = WatchRequest(operation=self.operation, watch_id=f"{prefix}-{self.count:06d}")
        seq = {
            "steady": RECORD_EVERY + self.count % RECORD_EVERY,
            "every": 2 * RECORD_EVERY - 1,
            "none": RECORD_EVERY,
        }[self.records]
        progress = Progress(started=self.started, polls=seq, seen=True)
        return checks.encode(
            request, progress, self.started, "bench", seq=seq, recorded=RECORD_EVERY
        ).body


def drive(server: Server, bodies: Bodies, count: int) -> float:
    """``count`` sequential checks; returns wall seconds."""
    began = time.perf_counter()
    for _ in range(count):
        response = server.session.post(
            server.url,
            data=bodies.next(),
            headers=server.headers,
            timeout=RPC_TIMEOUT,
        )
        if response.status_code != 200:
            raise RuntimeError(f"{server.name} answered {response.status_code}: {response.text}")
        server.served += 1
    return time.perf_counter() - began


def measure(server: Server, bodies: Bodies, count: int, warm: int) -> None:
    drive(server, bodies, warm)
    before = group_cpu(server.pid)
    wall = drive(server, bodies, count)
    server.cpu_per_check.append((group_cpu(server.pid) - before) / count)
    server.wall_per_check.append(wall / count)


# --- profile -------------------------------------------------------------------------------------

CATEGORIES = (
    # Before the task's category: the Firestore client is built on the same api_core and gRPC.
    ("ledger write: google/cloud/firestore", ("/google/cloud/firestore",)),
    ("fetch: requests / urllib3 / http.client", ("/requests/", "/urllib3/", "/http/client")),
    (
        "create task: tasks_v2 / api_core / gRPC / proto-plus / protobuf",
        ("/tasks_v2/", "/api_core/", "/grpc/", "/proto/", "/protobuf/"),
    ),
    ("logging (opwatch/logs.py + logging)", ("/opwatch/logs.py", "/logging/")),
    ("json", ("/json/",)),
)
HANDLER = "on_check"
OWN = ("/functions/main.py", "/opwatch/")


def categorize(stack: list[str]) -> str:
    """The category of one sampled stack (root first), named by the outermost frame below the
    handler that is not opwatch's own code."""
    try:
        start = next(i for i, frame in enumerate(stack) if frame.startswith(f"{HANDLER} ("))
    except StopIteration:
        return "framework outside the handler (gunicorn / flask / werkzeug)"
    for frame in stack[start + 1 :]:
        for name, needles in CATEGORIES:
            if any(needle in frame for needle in needles):
                return name
        if not any(own in frame for own in OWN):
            return "other libraries: " + frame.split(" (")[0]
    return "opwatch's own code (validate, decide, encode)"


def parse_collapsed(text: str) -> Counter[str]:
    """Group py-spy ``--format raw`` lines (``frame;frame;... count``) by :func:`categorize`."""
    groups: Counter[str] = Counter()
    for line in text.splitlines():
        stack_text, _, count = line.rpartition(" ")
        if not stack_text or not count.isdigit():
            continue
        frames = stack_text.split(";")
        # py-spy puts the thread as the first frame: drop anything that is not a code frame.
        frames = [f for f in frames if "(" in f]
        groups[categorize(frames)] += int(count)
    return groups


def profile(server: Server, bodies: Bodies, count: int, out: Path) -> Counter[str] | str:
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if py_spy is None:
        return "py-spy is not installed: `pip install -e '.[bench]'`"
    proc = subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(server.pid),
            "--subprocesses",
            "--rate",
            "1000",
            "--format",
            "raw",
            "--full-filenames",
            "--nonblocking",
            "--gil",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        time.sleep(1.0)  # attach
        drive(server, bodies, count)
    finally:
        proc.send_signal(2)  # SIGINT: py-spy writes its output and exits
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.communicate(timeout=5)
            return "py-spy did not stop within 30 s"
    if not out.is_file():
        return f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}"
    return parse_collapsed(out.read_text())


# --- run -----------------------------------------------------------------------------------------


def start_server(
    supervisor: Supervisor, name: str, target: str, source: Path, env: dict[str, str]
) -> Server:
    port = free_port()
    proc = supervisor.start(function_spec(name, target, source, port, env, ready_timeout=30.0))
    headers = {
        "Content-Type": "application/json",
        "X-CloudTasks-QueueName": env["TASKS_QUEUE"].rsplit("/", 1)[-1],
        "X-CloudTasks-TaskName": "bench",
    }
    return Server(name, proc.pid, f"http://{LOOPBACK}:{port}/", requests.Session(), [], [], headers)


def ledger_documents(stack: LocalStack) -> int:
    """The documents the steady checks wrote in the ledger (one per chain a check recorded)."""
    client = stack.firestore.client()
    try:
        docs = client.collection(COLLECTION).stream(timeout=RPC_TIMEOUT)
        return sum(1 for doc in docs if re.fullmatch(r"cost-\d+", doc.get("watch_id")))
    finally:
        client.close()


def report(
    servers: list[Server],
    args: argparse.Namespace,
    prof: Counter[str] | str,
    recorded: tuple[int, int] | None = None,
) -> str:
    opwatch, baseline = servers[0], servers[1]
    rows = {s.name: s for s in servers}
    cost = ratio(median(opwatch.cpu_per_check), median(baseline.cpu_per_check))
    per_round = [
        ratio(a, b) for a, b in zip(opwatch.cpu_per_check, baseline.cpu_per_check, strict=True)
    ]
    lines = [
        "# Warm CPU time per check",
        "",
        f"`python -m bench.check_cost {' '.join(args.argv)}`".replace(" `", "`"),
        "",
        f"{args.rounds} rounds x {args.requests} sequential warm requests per server (after "
        f"{args.warm} warm-up requests each round), servers alternating. CPU = utime + stime of "
        "the server's process group from /proc (10 ms ticks) ÷ requests. Wall = the driver's "
        "round-trip per request. Shared 2-core machine: compare within the run.",
        "",
        "| server | "
        + " | ".join(f"round {i + 1}" for i in range(args.rounds))
        + " | median CPU/check | median wall/check |",
        "|---|" + "---|" * (args.rounds + 2),
    ]
    for s in servers:
        lines.append(
            f"| {s.name} | "
            + " | ".join(f"{v * 1000:.2f} ms" for v in s.cpu_per_check)
            + f" | **{median(s.cpu_per_check) * 1000:.2f} ms** "
            f"| {median(s.wall_per_check) * 1000:.2f} ms |"
        )
    lines += [
        "",
        f"opwatch ÷ minimal handler, CPU per check: **{cost:.2f}x** (median ÷ median; per-round "
        f"ratios {', '.join(f'{r:.2f}' for r in per_round)}, median {median(per_round):.2f}). "
        f"Target ≤ {TARGET_RATIO}x: {verdict(cost <= TARGET_RATIO)}.",
    ]
    if recorded is not None:
        documents, served = recorded
        lines.append(
            f"The opwatch servers ran with the ledger: they wrote {documents} ledger documents "
            f"over the {served} checks they served (one in {RECORD_EVERY} expected, "
            f"{served // RECORD_EVERY})."
        )
    base = median(baseline.cpu_per_check)
    if QUIET in rows:
        lines.append(
            f"opwatch with LOG_LEVEL=WARNING ÷ minimal handler: "
            f"{ratio(median(rows[QUIET].cpu_per_check), base):.2f}x "
            "(the difference to the first row is the INFO log line per check)."
        )
    if {NO_LEDGER, EVERY, NONE} <= set(rows):
        every, none = median(rows[EVERY].cpu_per_check), median(rows[NONE].cpu_per_check)
        write = every - none
        lines += [
            "",
            f"What the ledger costs (`--ledger-split`): opwatch without a ledger ÷ minimal "
            f"handler {ratio(median(rows[NO_LEDGER].cpu_per_check), base):.2f}x; with it, "
            f"checks that all write the ledger {every * 1000:.2f} ms, checks that none do "
            f"{none * 1000:.2f} ms: one write {write * 1000:.2f} ms of CPU, "
            f"{write / RECORD_EVERY * 1000:.2f} ms a check at one write in {RECORD_EVERY} "
            f"({write / RECORD_EVERY / base:.2f}x the minimal handler's CPU).",
        ]
    lines += [
        "",
        "## Where opwatch's check spends its CPU (py-spy `--gil`: samples holding the GIL)",
        "",
    ]
    if isinstance(prof, str):
        lines.append(f"Not profiled: {prof}")
    else:
        total = sum(prof.values())
        lines += [
            f"{total} samples at 1000 Hz over {args.profile_requests} checks, grouped by the "
            "outermost frame below `on_check` that is not opwatch's own code. Only samples of a "
            "thread holding the GIL count, so waits on sockets are left out (CPU spent in C "
            "code that released the GIL, e.g. gRPC's core threads, is left out too).",
            "",
            "| what | samples | share |",
            "|---|---|---|",
        ]
        for name, count in prof.most_common():
            lines.append(f"| {name} | {count} | {count / total:.1%} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warm", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile-requests", type=int, default=600)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--no-quiet", action="store_true", help="skip the LOG_LEVEL=WARNING row")
    parser.add_argument(
        "--ledger-split",
        action="store_true",
        help="add opwatch without a ledger, and checks that all or none write it",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)

    environ = {k: v for k, v in os.environ.items() if k != "OPERATIONS_API_ENDPOINT"}
    config = StackConfig(ports=Ports.free(), start_functions=False)
    with sigterm_as_exit(), LocalStack(config, environ=environ) as stack:
        stack.client.tasks().pause_queue(name=config.queue_path, timeout=RPC_TIMEOUT)
        env = stack.function_env()
        with Supervisor(stack.run_dir / "check_cost") as supervisor:
            servers = [
                start_server(
                    supervisor,
                    "opwatch on_check",
                    "on_check",
                    REPO_ROOT / "functions" / "main.py",
                    env,
                ),
                start_server(supervisor, "minimal handler", "check", BASELINE, env),
            ]
            if not args.no_quiet:
                servers.append(
                    start_server(
                        supervisor,
                        QUIET,
                        "on_check",
                        REPO_ROOT / "functions" / "main.py",
                        env | {"LOG_LEVEL": "WARNING"},
                    )
                )
            sim = stack.client.simulator()
            operation = sim.create_operation(duration=10 * 86_400.0)
            bodies = Bodies(operation)
            runs = [(server, bodies) for server in servers]
            if args.ledger_split:
                no_ledger = {k: v for k, v in env.items() if k != "LEDGER_DATABASE"}
                main_py = REPO_ROOT / "functions" / "main.py"
                servers.append(start_server(supervisor, NO_LEDGER, "on_check", main_py, no_ledger))
                runs.append((servers[-1], bodies))
                for name, records in ((EVERY, "every"), (NONE, "none")):
                    # The same process as the first row, other bodies.
                    servers.append(
                        replace(servers[0], name=name, cpu_per_check=[], wall_per_check=[])
                    )
                    runs.append((servers[-1], Bodies(operation, records)))
            for r in range(args.rounds):
                order = runs if r % 2 == 0 else list(reversed(runs))
                for server, source in order:
                    measure(server, source, args.requests, args.warm)
                print(
                    f"round {r + 1}: "
                    + ", ".join(f"{s.name} {s.cpu_per_check[-1] * 1000:.2f} ms" for s in servers),
                    flush=True,
                )
            # Steady checks served with a ledger: the first row's, and the quiet one's.
            served = sum(s.served for s in servers if s.name in (servers[0].name, QUIET))
            recorded = (ledger_documents(stack), served)
            prof: Counter[str] | str = "skipped (--no-profile)"
            if not args.no_profile:
                prof = profile(
                    servers[0], bodies, args.profile_requests, stack.run_dir / "check.pyspy.txt"
                )
    text = report(servers, args, prof, recorded)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
