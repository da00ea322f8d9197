"""``opwatch simulate``: create an operation in the local stack's simulator."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from decimal import Decimal

from opwatch_local.audit_log import DEFAULT_METHOD, AuditOptions
from opwatch_local.cli.args import (
    CliError,
    as_argument,
    duration,
    json_object,
    parse_error,
    probability,
    setting,
)
from opwatch_local.simulator import Busy, OperationSpec, SimulatorClient, SimulatorError

__all__ = ["add_commands"]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sim = commands.add_parser(
        "simulate",
        help="create a simulated operation, print its name",
        description="Create an operation in the simulator of `opwatch local up` "
        "(OPWATCH_SIMULATOR_URL) and print its name.",
    )
    sim.add_argument("--duration", type=duration, default=Decimal(30), help="e.g. 30s (default)")
    sim.add_argument("--error", type=as_argument(parse_error), metavar="CODE:MESSAGE")
    sim.add_argument("--response", type=json_object, metavar="JSON")
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
    audit.add_argument("--audit-loss", type=probability, default=0.0, metavar="P", help="e.g. 0.3")
    audit.add_argument(
        "--audit-duplicates", type=probability, default=0.0, metavar="P", help="e.g. 0.1"
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


def operation_spec(args: argparse.Namespace) -> OperationSpec:
    """The operation the ``simulate`` arguments describe."""
    return OperationSpec(
        args.name,
        duration=float(args.duration),
        response=args.response,
        error=args.error,
        appear_after=float(args.appear_after),
        busy_for=float(args.busy_for),
        busy=args.busy,
        audit=_audit_options(args) if args.audit else None,
    )


def _audit_options(args: argparse.Namespace) -> AuditOptions:
    return AuditOptions(
        latency=float(args.audit_latency),
        loss=args.audit_loss,
        duplicates=args.audit_duplicates,
        name_in=args.audit_name_in,
        method=args.audit_method,
        seed=args.audit_seed,
    )


def cmd_simulate(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    url = setting(
        args.simulator_url, env, "OPWATCH_SIMULATOR_URL", "run `opwatch local up` and export it"
    )
    try:
        name = SimulatorClient(url).create(operation_spec(args))
    except (SimulatorError, OSError) as exc:
        raise CliError(f"simulator at {url}: {exc}") from exc
    print(name)
    return 0
