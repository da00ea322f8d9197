"""The launcher: install the patches, then hand over to the emulator's own ``main()``.

Run as a file by the emulator's interpreter (see the package docstring): that venv has no
opwatch_local installed, so the package is found from this file's place.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a file: devtools/ holds the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from opwatch_local.tasks_emulator.bind import install_loopback_bind
from opwatch_local.tasks_emulator.rules import DOCUMENTED_QUOTAS


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="gcloud-tasks-emulator on loopback, with the task methods it lacks"
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (loopback)")
    parser.add_argument("--port", type=int, default=9090)
    parser.add_argument(
        "--queue", action="append", default=[], help="projects/P/locations/L/queues/Q (repeatable)"
    )
    parser.add_argument("--max-retries", type=int, default=5)
    parser.add_argument("--dispatch-timeout", type=float, default=600.0)
    parser.add_argument(
        "--list-quota-per-minute", type=int, default=DOCUMENTED_QUOTAS["List requests"]
    )
    parser.add_argument(
        "--run-quota-per-minute", type=int, default=DOCUMENTED_QUOTAS["Force run requests"]
    )
    parser.add_argument(
        "--quota-window", type=float, default=60.0, help="seconds a quota counts over (tests)"
    )
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.host not in {"127.0.0.1", "localhost", "::1"}:
        sys.exit(f"tasks emulator launcher binds loopback only, not {args.host!r}")

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    # The bind first: the emulator's modules are imported only after grpc.server is wrapped.
    install_loopback_bind(args.host, log)
    from gcloud_tasks_emulator import server as emulator  # type: ignore[import-not-found]
    from gcloud_tasks_emulator.__main__ import (  # type: ignore[import-not-found]
        main as emulator_main,
    )

    from opwatch_local.tasks_emulator.servicer import with_quotas
    from opwatch_local.tasks_emulator.state import TaskState, process_queue

    log("tasks emulator: task-name dedup enabled (ALREADY_EXISTS on a reused name)")
    emulator.QueueState = TaskState
    emulator.Processor._process_queue = process_queue
    log(
        "tasks emulator: GetTask, DeleteTask, paged ListTasks, RunTask and views enabled; "
        "dispatch by due time"
    )
    limits = {
        "List requests": args.list_quota_per_minute,
        "Force run requests": args.run_quota_per_minute,
    }
    emulator.Greeter = with_quotas(limits, args.quota_window, log)
    socket.setdefaulttimeout(args.dispatch_timeout)

    emulator_argv = ["gcloud-tasks-emulator", "start", f"--port={args.port}"]
    emulator_argv += [f"--default-queue={q}" for q in args.queue]
    emulator_argv += [f"--max-retries={args.max_retries}"]
    if args.quiet:
        emulator_argv.append("--quiet")
    sys.argv = emulator_argv
    emulator_main()


if __name__ == "__main__":
    main()
