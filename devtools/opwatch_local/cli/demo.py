"""``opwatch demo``: every outcome on a private local stack (:mod:`opwatch_local.demo`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from decimal import Decimal

from opwatch_local.cli.args import CliError, duration
from opwatch_local.demo import run_demo
from opwatch_local.procs import ProcessError
from opwatch_local.stack_config import StackError

__all__ = ["add_commands"]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        help="every outcome on a private local stack, with a live timeline",
        description="Start a local stack on free ports, watch six simulated operations (success, "
        "failure, timeout, not found, invalid request, transient faults), show what happens, "
        "print the notifications and a summary, stop everything. Exit 0 only if every watch "
        "got the expected outcome.",
    )
    demo.add_argument("--timeout", type=duration, default=Decimal(90), metavar="DURATION")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    try:
        return 0 if run_demo(env, float(args.timeout), sys.stdout) else 1
    except (ProcessError, StackError) as exc:
        raise CliError(str(exc)) from exc
