"""``python -m opwatch_local.simulator``: serve the simulator until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any

from opwatch_local.audit_log import AuditWriter
from opwatch_local.simulator.model import Simulator
from opwatch_local.simulator.server import DEFAULT_PORT, SimulatorServer

__all__ = ["main"]

# An audit entry the emulator has not taken by then is reported, not waited for.
_PUBLISH_TIMEOUT = 10.0


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM or Ctrl-C. Prints the URL once listening."""
    parser = argparse.ArgumentParser(
        prog="python -m opwatch_local.simulator",
        description="An operations simulator: a small HTTP server that speaks google.longrunning "
        "REST.",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--host", default="127.0.0.1", help="loopback only")
    parser.add_argument("--seed", type=int, default=0, help="seed for probabilistic faults")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    parser.add_argument("--audit-topic", help="publish audit entries to this topic (emulator)")
    parser.add_argument("--pubsub-host", help="the Pub/Sub emulator, host:port")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    audit = None
    if args.audit_topic:
        if not args.pubsub_host:
            print("error: --audit-topic needs --pubsub-host", file=sys.stderr)
            return 2
        audit = _audit_writer(args.pubsub_host, args.audit_topic)
    server = SimulatorServer(
        args.port,
        args.host,
        simulator=Simulator(seed=args.seed, audit=audit),
        verbose=args.verbose,
    )
    try:
        server.start()
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"operations simulator listening on {server.url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    server.stop()
    return 0


def _audit_writer(host: str, topic: str) -> AuditWriter:
    """A writer publishing to ``topic`` on the emulator at ``host`` (client made on first use)."""
    from opwatch_local.pubsub import pubsub_clients

    clients: list[Any] = []
    lock = threading.Lock()

    def publish(data: bytes) -> None:
        with lock:
            if not clients:
                clients.append(pubsub_clients(host)[0])
        clients[0].publish(topic, data).result(timeout=_PUBLISH_TIMEOUT)

    return AuditWriter(publish=publish, clock=time.time)
