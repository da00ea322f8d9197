"""The ``opwatch`` parser, made of each command group's subparsers, and its entry point."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

from google.api_core.exceptions import GoogleAPICallError
from google.auth.exceptions import GoogleAuthError

from opwatch_local.cli import demo, local, simulate, steer, sweep, watch
from opwatch_local.cli.args import CliError

__all__ = ["build_parser", "main"]

# In the order `opwatch --help` lists them.
_GROUPS = (local, simulate, watch, steer, sweep, demo)


def build_parser() -> argparse.ArgumentParser:
    """The ``opwatch`` argument parser (each command sets ``func``)."""
    parser = argparse.ArgumentParser(
        prog="opwatch", description="Be told, once, when a long-running operation finishes."
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for group in _GROUPS:
        group.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point of the ``opwatch`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    env = dict(os.environ if environ is None else environ)
    try:
        code: int = func(args, env)
    except CliError as exc:
        print(f"opwatch: error: {exc}", file=sys.stderr)
        return 2
    except (GoogleAPICallError, GoogleAuthError) as exc:  # Pub/Sub or Cloud Tasks
        print(f"opwatch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nopwatch: interrupted", file=sys.stderr)
        return 130
    return code
