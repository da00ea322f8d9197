"""The ``opwatch`` command: a local stack, simulated operations, watches, notifications, a demo.

::

    opwatch local up        start the whole pipeline here; print its variables; stay in front
    opwatch simulate        create a simulated operation          (OPWATCH_SIMULATOR_URL)
    opwatch watch NAME      publish a watch request               (OPWATCH_WATCH_TOPIC)
    opwatch tail            print notifications as JSON lines     (OPWATCH_RESULTS_SUBSCRIPTION)
    opwatch list            the watches, pending or finished      (OPWATCH_LEDGER_DATABASE)
    opwatch status ID       one watch, and its pending check      (OPWATCH_TASKS_QUEUE)
    opwatch cancel ID       stop a watch: one CANCELLED follows   (OPWATCH_TASKS_QUEUE)
    opwatch demo            six watches, every outcome, on a private stack of its own
                            (:mod:`opwatch_local.demo`)

Configuration comes from flags, else from the variables ``opwatch local up`` prints; the
environment is read once, in :func:`main`, and passed inward. ``watch`` and ``tail`` talk to the
Pub/Sub emulator when ``PUBSUB_EMULATOR_HOST`` is set and to real Pub/Sub (Application Default
Credentials) otherwise.

Exit codes: 0 done; 1 the command ran but the result is not what was asked for (too few
notifications, a demo watch with the wrong outcome, the demo's time ran out); 2 bad usage or
configuration; 130 interrupted.

Durations on the command line are human (``30s``, ``10m``, ``2d``); the watch request gets them in
the contract's form through :func:`opwatch.wire.format_duration`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from google.api_core.exceptions import GoogleAPICallError
from google.auth.exceptions import GoogleAuthError

# google.cloud is a namespace package without py.typed: which of these codes mypy reports depends
# on the order it meets this import and stack.py's, so both are ignored here.
from google.cloud import pubsub_v1  # type: ignore[attr-defined,import-untyped,unused-ignore]

from opwatch.adapters import default_session
from opwatch.contracts import DEFAULT_API
from opwatch.errors import ConfigurationError, LedgerUnavailable
from opwatch.ledger import MAX_PAGE, State
from opwatch.registry import Registry
from opwatch.settings import LEDGER_PATTERN
from opwatch.sweep import Parent
from opwatch.wire import format_duration
from opwatch_local import watches
from opwatch_local.audit_log import DEFAULT_METHOD, AuditOptions
from opwatch_local.demo import run_demo
from opwatch_local.procs import ProcessError, sigterm_as_exit
from opwatch_local.pubsub import PulledMessage, publish_json, pubsub_clients, pull_messages
from opwatch_local.simulator import Busy, SimulatorClient, SimulatorError
from opwatch_local.stack import LocalStack
from opwatch_local.stack_config import Ports, StackConfig, StackError

__all__ = [
    "CliError",
    "build_parser",
    "build_watch_request",
    "main",
    "parse_error",
    "parse_human_duration",
    "parse_labels",
]

_DURATION_RE = re.compile(r"^([0-9]+(?:\.[0-9]{1,9})?)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
T = TypeVar("T")


class CliError(Exception):
    """A usage or configuration problem, reported as ``opwatch: error: ...`` with exit code 2."""


# --- argument values (pure) ----------------------------------------------------------------------


def parse_human_duration(text: str) -> Decimal:
    """Seconds in ``text``: ``30s``, ``10m``, ``1h``, ``2d``, ``1.5m`` or bare seconds (``90``).

    Raises:
        ValueError: Not such a duration.
    """
    match = _DURATION_RE.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 30s, 10m, 1h or 2d")
    try:
        return Decimal(match[1]) * _UNITS[match[2]]
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only decimals
        raise ValueError(f"{text!r} is not a duration") from exc


def parse_labels(pairs: Sequence[str]) -> dict[str, str]:
    """``["team=search", "repo=mono"]`` -> ``{"team": "search", "repo": "mono"}``.

    Only the shape is checked here; the key and value rules are opwatch's to enforce (a broken
    one comes back as ``INVALID_REQUEST`` naming it).

    Raises:
        ValueError: A pair without ``=``, an empty key, or a key given twice.
    """
    labels: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"label {pair!r} is not KEY=VALUE")
        if key in labels:
            raise ValueError(f"label {key!r} is given twice")
        labels[key] = value
    return labels


def parse_error(text: str) -> dict[str, Any]:
    """``"9:index build failed"`` -> ``{"code": 9, "message": "index build failed"}``.

    Raises:
        ValueError: No integer code before the first ``:``.
    """
    code, sep, message = text.partition(":")
    if not sep or not code.strip().isdigit():
        raise ValueError(f"error {text!r} is not CODE:MESSAGE (e.g. '9:index build failed')")
    return {"code": int(code), "message": message}


def build_watch_request(
    operation: str,
    *,
    api: str | None = None,
    api_version: str | None = None,
    labels: Mapping[str, str] | None = None,
    timeout: Decimal | None = None,
    expected_duration: Decimal | None = None,
    watch_id: str | None = None,
    notify_topic: str | None = None,
    polling: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The watch request JSON (see README "Watch request"); fields not given are left out, so
    opwatch's defaults apply."""
    request: dict[str, Any] = {"operation": operation}
    optional: dict[str, Any] = {
        "api": api,
        "api_version": api_version,
        "labels": dict(labels) if labels else None,
        "timeout": format_duration(float(timeout)) if timeout is not None else None,
        "expected_duration": (
            format_duration(float(expected_duration)) if expected_duration is not None else None
        ),
        "notify_topic": notify_topic,
        "watch_id": watch_id,
        "polling": dict(polling) if polling else None,
    }
    request.update({k: v for k, v in optional.items() if v is not None})
    return request


def _arg(parse: Callable[[str], T]) -> Callable[[str], T]:
    """Wrap a ValueError-raising parser for argparse (its message becomes the usage error)."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


def _probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise ValueError(f"{text!r} is not a probability between 0 and 1")
    return value


def _json_object(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object")
    return value


# --- parser --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``opwatch`` argument parser (each command sets ``func``)."""
    parser = argparse.ArgumentParser(
        prog="opwatch", description="Be told, once, when a long-running operation finishes."
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    duration = _arg(parse_human_duration)

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

    sim = commands.add_parser(
        "simulate",
        help="create a simulated operation, print its name",
        description="Create an operation in the simulator of `opwatch local up` "
        "(OPWATCH_SIMULATOR_URL) and print its name.",
    )
    sim.add_argument("--duration", type=duration, default=Decimal(30), help="e.g. 30s (default)")
    sim.add_argument("--error", type=_arg(parse_error), metavar="CODE:MESSAGE")
    sim.add_argument("--response", type=_arg(_json_object), metavar="JSON")
    sim.add_argument("--appear-after", type=duration, default=Decimal(0), metavar="DURATION")
    sim.add_argument(
        "--busy-for",
        type=duration,
        default=Decimal(0),
        metavar="DURATION",
        help="answer a 409 to every GET for this long, as Gemini for Google Cloud does",
    )
    sim.add_argument(
        "--busy",
        choices=[kind.value for kind in Busy],
        default=Busy.QUEUE.value,
        help="which 409 (default: %(default)s)",
    )
    sim.add_argument("--name", help="full operation name (default: generated)")
    sim.add_argument("--simulator-url", help="default: $OPWATCH_SIMULATOR_URL")
    audit = sim.add_argument_group(
        "audit entries",
        "publish the operation's first and last audit entry onto the audit topic "
        "($OPWATCH_AUDIT_TOPIC of `opwatch local up`), as a Logging sink would: opwatch "
        "discovers the operation without a watch request",
    )
    audit.add_argument("--audit", action="store_true", help="write audit entries")
    audit.add_argument(
        "--audit-latency", type=duration, default=Decimal(0), metavar="DURATION", help="e.g. 2s"
    )
    audit.add_argument(
        "--audit-loss", type=_arg(_probability), default=0.0, metavar="P", help="e.g. 0.3"
    )
    audit.add_argument(
        "--audit-duplicates", type=_arg(_probability), default=0.0, metavar="P", help="e.g. 0.1"
    )
    audit.add_argument(
        "--audit-name-in",
        choices=("operation", "response"),
        default="operation",
        help="operation.id (default) or protoPayload.response.name",
    )
    audit.add_argument("--audit-method", default=DEFAULT_METHOD, metavar="METHOD")
    audit.add_argument("--audit-seed", type=int, default=0, metavar="N")
    sim.set_defaults(func=cmd_simulate)

    watch = commands.add_parser(
        "watch",
        help="publish a watch request, print the message id",
        description="Publish a watch request for OPERATION to the watch topic.",
    )
    watch.add_argument("operation", metavar="OPERATION", help="projects/…/operations/ID")
    watch.add_argument("--api", help="API host (default: opwatch's, cloudaicompanion)")
    watch.add_argument("--api-version")
    watch.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    watch.add_argument("--timeout", type=duration, metavar="DURATION", help="e.g. 1h")
    watch.add_argument("--expected-duration", type=duration, metavar="DURATION", help="e.g. 10m")
    watch.add_argument("--watch-id", metavar="ID", help="idempotency key")
    watch.add_argument("--notify-topic", metavar="TOPIC")
    watch.add_argument("--topic", help="default: $OPWATCH_WATCH_TOPIC")
    watch.set_defaults(func=cmd_watch)

    tail = commands.add_parser(
        "tail",
        help="print notifications as JSON lines, acking them",
        description='Pull notifications and print each as {"data": ..., "attributes": ...}; '
        "exit 1 if fewer than COUNT arrive within the timeout.",
    )
    tail.add_argument("--count", type=int, default=1, metavar="N")
    tail.add_argument("--timeout", type=duration, default=Decimal(60), metavar="DURATION")
    tail.add_argument("--subscription", help="default: $OPWATCH_RESULTS_SUBSCRIPTION")
    tail.set_defaults(func=cmd_tail)

    queue_help = "default: $OPWATCH_TASKS_QUEUE"
    ledger_help = (
        "the ledger's Firestore database, projects/P/databases/D (default: "
        "$OPWATCH_LEDGER_DATABASE); without one, the queue is scanned"
    )
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
    listing.add_argument("--queue", help=queue_help)
    listing.add_argument("--ledger", help=ledger_help)
    listing.add_argument("--from-queue", action="store_true", help="scan the queue instead")
    listing.set_defaults(func=cmd_list)

    stat = commands.add_parser("status", help="one watch: its record and its pending check")
    stat.add_argument("watch_id", metavar="WATCH_ID")
    stat.add_argument("--json", action="store_true")
    stat.add_argument("--queue", help=queue_help)
    stat.add_argument("--ledger", help=ledger_help)
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
    cancel.add_argument("--queue", help=queue_help)
    cancel.add_argument("--ledger", help=ledger_help)
    cancel.set_defaults(func=cmd_cancel)

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
    swept.add_argument("--queue", help=queue_help)
    swept.add_argument("--json", action="store_true")
    swept.set_defaults(func=cmd_sweep)

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


def _setting(value: str | None, env: Mapping[str, str], name: str, hint: str) -> str:
    found = value or env.get(name, "").strip()
    if not found:
        raise CliError(f"{name} is not set; {hint}")
    return found


# --- local up, simulate --------------------------------------------------------------------------


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
            sweep = _periodic_sweep(stack, env, parents) if parents else None
            return _stay_up(stack, sweep=sweep, every=float(args.sweep_every))
    except (ProcessError, StackError) as exc:
        raise CliError(str(exc)) from exc
    finally:
        if stack.stop_times:
            print(f"stopped in {max(stack.stop_times.values()):.1f} s", file=sys.stderr)


def _periodic_sweep(
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


def _stay_up(
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


def cmd_simulate(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    url = _setting(
        args.simulator_url, env, "OPWATCH_SIMULATOR_URL", "run `opwatch local up` and export it"
    )
    try:
        name = SimulatorClient(url).create_operation(
            args.name,
            duration=float(args.duration),
            response=args.response,
            error=args.error,
            appear_after=float(args.appear_after),
            busy_for=float(args.busy_for),
            busy=args.busy,
            audit=AuditOptions(
                latency=float(args.audit_latency),
                loss=args.audit_loss,
                duplicates=args.audit_duplicates,
                name_in=args.audit_name_in,
                method=args.audit_method,
                seed=args.audit_seed,
            )
            if args.audit
            else None,
        )
    except (SimulatorError, OSError) as exc:
        raise CliError(f"simulator at {url}: {exc}") from exc
    print(name)
    return 0


# --- watch, tail ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _pubsub(
    env: Mapping[str, str],
) -> Iterator[tuple[pubsub_v1.PublisherClient, pubsub_v1.SubscriberClient]]:
    """Clients on the emulator if PUBSUB_EMULATOR_HOST is set, else on real Pub/Sub (closed
    after use)."""
    host = env.get("PUBSUB_EMULATOR_HOST", "").strip()
    if host:
        publisher, subscriber = pubsub_clients(host)
    else:
        publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    try:
        yield publisher, subscriber
    finally:
        with contextlib.suppress(Exception):  # best effort: nothing is left to flush
            publisher.stop()
        publisher.transport.close()
        subscriber.close()


def cmd_watch(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    topic = _setting(
        args.topic, env, "OPWATCH_WATCH_TOPIC", "pass --topic projects/P/topics/T or export it"
    )
    try:
        labels = parse_labels(args.label)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    request = build_watch_request(
        args.operation,
        api=args.api,
        api_version=args.api_version,
        labels=labels,
        timeout=args.timeout,
        expected_duration=args.expected_duration,
        watch_id=args.watch_id,
        notify_topic=args.notify_topic,
    )
    with _pubsub(env) as (publisher, _):
        print(publish_json(publisher, topic, request))
    return 0


def notification_line(message: PulledMessage) -> str:
    """One JSON line ``{"data": ..., "attributes": ...}`` (data as text if it is not JSON)."""
    try:
        data: Any = message.json()
    except ValueError:
        data = message.data.decode(errors="replace")
    return json.dumps({"data": data, "attributes": message.attributes})


def cmd_tail(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    subscription = _setting(
        args.subscription,
        env,
        "OPWATCH_RESULTS_SUBSCRIPTION",
        "pass --subscription projects/P/subscriptions/S or export it",
    )
    received = 0
    deadline = time.monotonic() + float(args.timeout)
    with _pubsub(env) as (_, subscriber):
        # Pull in short rounds so each notification is printed when it arrives.
        while received < args.count and (left := deadline - time.monotonic()) > 0:
            for message in pull_messages(
                subscriber, subscription, args.count - received, min(left, 1.0)
            ):
                print(notification_line(message), flush=True)
                received += 1
    if received < args.count:
        print(
            f"opwatch: {received} of {args.count} notifications within "
            f"{format_duration(float(args.timeout))}",
            file=sys.stderr,
        )
        return 1
    return 0


# --- list, status, cancel ------------------------------------------------------------------------


def _ledger_database(args: argparse.Namespace, env: Mapping[str, str]) -> str | None:
    """The ledger to read, or None: scan the queue."""
    if getattr(args, "from_queue", False):
        return None
    database = args.ledger or env.get("OPWATCH_LEDGER_DATABASE", "").strip() or None
    if database is not None and not LEDGER_PATTERN.match(database):
        raise CliError(f"{database!r} is not a ledger database: projects/P/databases/D")
    return database


def _registry(args: argparse.Namespace, env: Mapping[str, str]) -> Registry:
    queue = _setting(
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
    try:
        labels = parse_labels(args.label)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    filters = watches.Filters(operation=args.operation, api=args.api, labels=labels)
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


def cmd_sweep(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    queue = _setting(args.queue, env, "OPWATCH_TASKS_QUEUE", "pass --queue or export it")
    results_topic = _setting(
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


def cmd_demo(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    try:
        return 0 if run_demo(env, float(args.timeout), sys.stdout) else 1
    except (ProcessError, StackError) as exc:
        raise CliError(str(exc)) from exc


if __name__ == "__main__":
    sys.exit(main())
