"""``opwatch sweep``: the scheduled sweep's code path, run once against one parent."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping

from opwatch.contracts import DEFAULT_API
from opwatch.errors import ConfigurationError
from opwatch.sweep import Parent
from opwatch_local import watches
from opwatch_local.cli.args import QUEUE_HELP, CliError, setting

__all__ = ["add_commands"]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    swept = commands.add_parser(
        "sweep",
        help="watch the pending operations of a parent that no watch covers yet",
        description="List the operations of PARENT (projects/P/locations/L) on API, every page, "
        "and start the discovered watch of each pending one that has none: the code path of "
        "the scheduled sweep (on_sweep), against whatever the environment points at. Its "
        "first looks run as the functions' would: OPWATCH_TASKS_QUEUE, OPWATCH_CHECK_URL, "
        "OPWATCH_RESULTS_TOPIC, and in production OPWATCH_TASKS_INVOKER_SA.",
    )
    swept.add_argument("--parent", required=True, metavar="projects/P/locations/L")
    swept.add_argument("--api", default=DEFAULT_API, metavar="HOST")
    swept.add_argument("--queue", help=QUEUE_HELP)
    swept.add_argument("--json", action="store_true")
    swept.set_defaults(func=cmd_sweep)


def cmd_sweep(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    queue = setting(args.queue, env, "OPWATCH_TASKS_QUEUE", "pass --queue or export it")
    results_topic = setting(
        None, env, "OPWATCH_RESULTS_TOPIC", "export the topic notifications go to"
    )
    try:
        parent = Parent.parse(f"{args.api}={args.parent}", DEFAULT_API)
    except ConfigurationError as exc:
        raise CliError(str(exc)) from exc
    notifier, fetcher = watches.sweeper(env, queue, results_topic, args.api)
    results, failed = notifier.sweep_all([parent], fetcher.list_page)
    if args.json:
        print(json.dumps(results, indent=2))
    for result in results:
        if "error" in result:
            print(f"{result['parent']}: {result['error']}", file=sys.stderr)
        elif not args.json:
            print(
                f"{result['parent']} on {result['api']}: {result['listed']} listed, "
                f"{result['pending']} pending, {result['already_watched']} already watched, "
                f"{result['started']} watches started"
            )
    return 1 if failed else 0
