"""``opwatch local up``: the whole pipeline on this machine, in the foreground."""

from __future__ import annotations

import argparse
import shlex
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal

from opwatch.contracts import DEFAULT_API
from opwatch.errors import ConfigurationError
from opwatch.sweep import Parent
from opwatch_local import watches
from opwatch_local.cli.args import CliError, duration
from opwatch_local.procs import ProcessError, sigterm_as_exit
from opwatch_local.stack import LocalStack
from opwatch_local.stack_config import Ports, StackConfig, StackError

__all__ = ["add_commands", "periodic_sweep", "stay_up"]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    local = commands.add_parser("local", help="the local stack (emulators, simulator, functions)")
    local_commands = local.add_subparsers(title="commands", metavar="COMMAND", required=True)
    up = local_commands.add_parser(
        "up",
        help="start the stack, print its variables, stay in the foreground",
        description="Start the Pub/Sub, Cloud Tasks and Firestore emulators, the operations "
        "simulator and the functions on 127.0.0.1, print `export` lines for the other commands "
        "(FIRESTORE_EMULATOR_HOST and OPWATCH_LEDGER_DATABASE among them), and run "
        "until Ctrl-C or SIGTERM. With OPERATIONS_API_ENDPOINT set, the functions fetch from "
        "that server and no simulator is started.",
    )
    defaults = Ports()
    for owner in defaults.by_owner():
        up.add_argument(
            f"--{owner}-port",
            type=int,
            default=getattr(defaults, owner),
            metavar="PORT",
            help=f"default {getattr(defaults, owner)}",
        )
    up.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="[API=]PARENT",
        help="sweep this parent (projects/P/locations/L) periodically, as the Cloud Scheduler "
        "job does in production (repeatable)",
    )
    up.add_argument(
        "--sweep-every",
        type=duration,
        default=Decimal(600),
        metavar="DURATION",
        help="how often (default 10m)",
    )
    up.set_defaults(func=cmd_local_up)


def cmd_local_up(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    ports = Ports(
        pubsub=args.pubsub_port,
        tasks=args.tasks_port,
        simulator=args.simulator_port,
        watch=args.watch_port,
        check=args.check_port,
        audit=args.audit_port,
        firestore=args.firestore_port,
    )
    try:
        parents = [Parent.parse(text, DEFAULT_API) for text in args.sweep]
    except ConfigurationError as exc:
        raise CliError(str(exc)) from exc
    stack = LocalStack(StackConfig(ports=ports), environ=env)
    print("starting the local stack…", file=sys.stderr, flush=True)
    try:
        with sigterm_as_exit(), stack:
            for key, value in stack.env().items():
                print(f"export {key}={shlex.quote(value)}")
            names = ", ".join(f"{p.name} :{p.spec.ports[0]}" for p in stack.processes)
            print(
                f"# ready in {stack.timings['total']:.1f} s ({names}); logs in {stack.run_dir}\n"
                "# paste the lines above into another shell; Ctrl-C here stops everything",
                flush=True,
            )
            sweep = periodic_sweep(stack, env, parents) if parents else None
            return stay_up(stack, sweep=sweep, every=float(args.sweep_every))
    except (ProcessError, StackError) as exc:
        raise CliError(str(exc)) from exc
    finally:
        if stack.stop_times:
            print(f"stopped in {max(stack.stop_times.values()):.1f} s", file=sys.stderr)


def periodic_sweep(
    stack: LocalStack, env: Mapping[str, str], parents: Sequence[Parent]
) -> Callable[[], None]:
    """One sweep of ``parents`` over the stack, as ``opwatch sweep`` runs it; a failure is
    printed and the next one comes at its time, as a scheduler's would."""
    stack_env = {**env, **stack.env()}
    sweepers = {
        api: watches.sweeper(
            stack_env, stack_env["OPWATCH_TASKS_QUEUE"], stack_env["OPWATCH_RESULTS_TOPIC"], api
        )
        for api in {parent.api for parent in parents}
    }

    def sweep() -> None:
        for api, (notifier, fetcher) in sweepers.items():
            mine = [parent for parent in parents if parent.api == api]
            results, _ = notifier.sweep_all(mine, fetcher.list_page)
            for result in results:
                line = result.get("error") or (
                    f"{result['pending']} pending, {result['started']} watches started"
                )
                print(f"# sweep {result['parent']} on {result['api']}: {line}", flush=True)

    return sweep


def stay_up(
    stack: LocalStack,
    *,
    sweep: Callable[[], None] | None = None,
    every: float = 600.0,
    tick_seconds: float = 1.0,
) -> int:
    """Wait, one tick at a time, until interrupted or a child exits on its own; sweep at once
    and then every ``every`` seconds when asked."""
    tick = threading.Event()  # never set: a bounded, interruptible sleep
    due = time.monotonic()
    while True:
        if sweep is not None and time.monotonic() >= due:
            due = time.monotonic() + every
            try:
                sweep()
            except Exception as exc:  # the next sweep comes at its time
                print(f"# sweep failed: {exc}", file=sys.stderr, flush=True)
        if tick.wait(tick_seconds):
            break  # pragma: no cover - the event is never set
        for proc in stack.processes:
            if not proc.alive():
                print(
                    f"opwatch: {proc.name} exited with code {proc.popen.poll()}; stopping. "
                    f"Log {proc.log_path}:\n{proc.log_tail(10)}",
                    file=sys.stderr,
                )
                return 1
    return 0  # pragma: no cover - the event is never set
