"""Steering watches already started: ``opwatch list``, ``opwatch status``, ``opwatch cancel``.

They read the ledger (Firestore) when one is given, else scan the Cloud Tasks queue, which is
the truth of what is in flight.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from opwatch.adapters import default_session
from opwatch.errors import LedgerUnavailable
from opwatch.ledger import MAX_PAGE, State
from opwatch.registry import Registry
from opwatch.settings import LEDGER_PATTERN
from opwatch_local import watches
from opwatch_local.cli.args import LEDGER_HELP, QUEUE_HELP, CliError, duration, labels_of, setting

__all__ = ["add_commands"]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    listing = commands.add_parser(
        "list",
        help="the watches, from the ledger (pending by default), or in flight on the queue",
        description="List watches from the ledger, newest first, a page at a time: pending, "
        "finished, or all, started within --since. Without a ledger (or with --from-queue), "
        "list the watches in flight: one pending check task each, decoded as the check "
        "function reads it.",
    )
    listing.add_argument(
        "--state", choices=("pending", "finished", "all"), default="pending", help="ledger only"
    )
    listing.add_argument("--since", type=duration, metavar="DURATION", help="e.g. 1h, 2d")
    listing.add_argument(
        "--limit", type=int, default=100, metavar="N", help="a page's size (ledger only)"
    )
    listing.add_argument("--page-token", metavar="TOKEN", help="the next page, as printed")
    listing.add_argument("--operation", metavar="NAME")
    listing.add_argument("--api", metavar="HOST")
    listing.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    listing.add_argument("--json", action="store_true", help="a JSON array, for scripts")
    listing.add_argument("--queue", help=QUEUE_HELP)
    listing.add_argument("--ledger", help=LEDGER_HELP)
    listing.add_argument("--from-queue", action="store_true", help="scan the queue instead")
    listing.set_defaults(func=cmd_list)

    stat = commands.add_parser("status", help="one watch: its record and its pending check")
    stat.add_argument("watch_id", metavar="WATCH_ID")
    stat.add_argument("--json", action="store_true")
    stat.add_argument("--queue", help=QUEUE_HELP)
    stat.add_argument("--ledger", help=LEDGER_HELP)
    stat.add_argument("--from-queue", action="store_true", help="scan the queue instead")
    stat.set_defaults(func=cmd_status)

    cancel = commands.add_parser(
        "cancel",
        help="cancel a watch (never the operation)",
        description="Take the next step of every chain of WATCH_ID: no look starts after this "
        "returns, and the watch ends with one CANCELLED notification. The operation itself goes "
        "on. Cancel tasks reach the check function like opwatch's own: OPWATCH_CHECK_URL, and "
        "in production OPWATCH_TASKS_INVOKER_SA.",
    )
    cancel.add_argument("watch_id", metavar="WATCH_ID")
    cancel.add_argument("--reason", default="", metavar="TEXT")
    cancel.add_argument(
        "--cancel-operation",
        action="store_true",
        help="also ask the API to cancel the operation itself ({name}:cancel); needs its "
        "*.operations.cancel permission (Terraform: operator_cancel_permissions)",
    )
    cancel.add_argument("--queue", help=QUEUE_HELP)
    cancel.add_argument("--ledger", help=LEDGER_HELP)
    cancel.set_defaults(func=cmd_cancel)


def _ledger_database(args: argparse.Namespace, env: Mapping[str, str]) -> str | None:
    """The ledger to read, or None: scan the queue."""
    if getattr(args, "from_queue", False):
        return None
    database = args.ledger or env.get("OPWATCH_LEDGER_DATABASE", "").strip() or None
    if database is not None and not LEDGER_PATTERN.match(database):
        raise CliError(f"{database!r} is not a ledger database: projects/P/databases/D")
    return database


def _registry(args: argparse.Namespace, env: Mapping[str, str]) -> Registry:
    queue = setting(
        args.queue,
        env,
        "OPWATCH_TASKS_QUEUE",
        "pass --queue projects/P/locations/L/queues/Q or export it",
    )
    database = _ledger_database(args, env)
    store = watches.operator_ledger(database, env) if database else None
    return Registry(watches.operator_queue(queue, env), lambda: datetime.now(UTC), store)


@contextlib.contextmanager
def _ledger_answers() -> Iterator[None]:
    try:
        yield
    except LedgerUnavailable as exc:
        raise CliError(
            f"the ledger did not answer ({exc}); --from-queue scans the queue instead"
        ) from exc


def cmd_list(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    filters = watches.Filters(operation=args.operation, api=args.api, labels=labels_of(args.label))
    now = datetime.now(UTC)
    database = _ledger_database(args, env)
    if database is None:
        found = watches.list_watches(_registry(args, env), filters, now)
        print(watches.dumps(found) if args.json else watches.table(found))
        return 0
    if not 1 <= args.limit <= MAX_PAGE:
        raise CliError(f"--limit must be from 1 to {MAX_PAGE}")
    state = None if args.state == "all" else State(args.state.upper())
    since = now - timedelta(seconds=float(args.since)) if args.since is not None else None
    with _ledger_answers():
        rows, token = watches.recorded_rows(
            watches.operator_ledger(database, env),
            state,
            since,
            filters,
            now,
            limit=args.limit,
            after=args.page_token,
        )
    print(watches.dumps(rows) if args.json else watches.record_table(rows))
    if token:
        print(f"more: --page-token {token}", file=sys.stderr)
    _warn_overdue(rows)
    return 0


def _warn_overdue(rows: Sequence[Mapping[str, Any]]) -> None:
    overdue = sum(1 for row in rows if row["overdue"])
    if overdue:
        print(
            f"opwatch: {overdue} pending record(s) not written again for long: the ledger may "
            "be behind (Firestore was down); --from-queue shows the queue, which is the truth",
            file=sys.stderr,
        )


def cmd_status(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    registry = _registry(args, env)
    now = datetime.now(UTC)
    if registry.ledger is None:
        found = watches.status(registry, args.watch_id, now)
        if args.json:
            print(watches.dumps(found))
        elif found:
            print(watches.table(found))
        else:
            print(f"{args.watch_id}: no pending check: finished, cancelled, or never started")
        return 0 if found else 1
    with _ledger_answers():
        found = watches.recorded_status(registry, args.watch_id, now)
    if args.json:
        print(watches.dumps(found))
    elif found:
        print(watches.record_table(found))
    else:
        print(
            f"{args.watch_id}: not in the ledger: never started, expired after its retention, "
            "or started while the ledger was down (--from-queue scans the queue)"
        )
    _warn_overdue(found)
    if any(row.get("pending_step", "") is None for row in found):
        print(
            "opwatch: a pending chain's step is not where its record says: the ledger is "
            "behind for it; --from-queue shows the queue",
            file=sys.stderr,
        )
    return 0 if found else 1


def cmd_cancel(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    registry = _registry(args, env)
    operations = watches.operations_of(registry, args.watch_id) if args.cancel_operation else set()
    result = watches.cancel(registry, args.watch_id, args.reason)
    if result.cancelled:
        print(
            f"{args.watch_id}: cancelled ({len(result.cancelled)} in flight); "
            "its CANCELLED notification follows"
        )
        return _cancel_operations(operations, env)
    if result.already_finished:
        print(f"{args.watch_id}: already finished; nothing to cancel")
    else:
        print(f"{args.watch_id}: no pending check: finished, cancelled, or never started")
    return 1


def _cancel_operations(operations: set[tuple[str, str, str]], env: Mapping[str, str]) -> int:
    """Ask each API to cancel the operation too; the local stack's simulator, else ADC."""
    if not operations:
        return 0
    fetch = watches.operator_fetch(env)
    endpoint = fetch.endpoint
    session = default_session(fetch)
    failed = 0
    for api, version, operation in sorted(operations):
        problem = watches.cancel_operation(session, endpoint, api, version, operation)
        print(f"{operation}: {problem or 'cancel requested'}")
        failed += bool(problem)
    return 1 if failed else 0
