"""``opwatch watch`` publishes a watch request; ``opwatch tail`` prints the notifications.

Both talk to the Pub/Sub emulator when ``PUBSUB_EMULATOR_HOST`` is set and to real Pub/Sub
(Application Default Credentials) otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

# google.cloud is a namespace package without py.typed: which of these codes mypy reports depends
# on the order it meets this import and stack.py's, so both are ignored here.
from google.cloud import pubsub_v1  # type: ignore[attr-defined,import-untyped,unused-ignore]

from opwatch.wire import format_duration
from opwatch_client import Polling, WatchRequest
from opwatch_local.cli.args import duration, labels_of, setting
from opwatch_local.pubsub import PulledMessage, publish_json, pubsub_clients, pull_messages

__all__ = ["add_commands", "build_watch_request", "notification_line"]

# Pull in rounds this short so each notification is printed when it arrives.
_PULL_ROUND_SECONDS = 1.0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    polling: Polling | None = None,
) -> dict[str, Any]:
    """The watch request JSON (see README "Watch request"), written by opwatch_client; fields
    not given are left out, so opwatch's defaults apply. It is not validated: a request opwatch
    refuses is answered by an ``INVALID_REQUEST`` notification naming what is wrong."""
    return WatchRequest(
        operation,
        api=api,
        api_version=api_version,
        labels=dict(labels or {}),
        timeout=float(timeout) if timeout is not None else None,
        expected_duration=float(expected_duration) if expected_duration is not None else None,
        watch_id=watch_id,
        notify_topic=notify_topic,
        polling=polling,
    ).to_json()


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
    topic = setting(
        args.topic, env, "OPWATCH_WATCH_TOPIC", "pass --topic projects/P/topics/T or export it"
    )
    request = build_watch_request(
        args.operation,
        api=args.api,
        api_version=args.api_version,
        labels=labels_of(args.label),
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
    subscription = setting(
        args.subscription,
        env,
        "OPWATCH_RESULTS_SUBSCRIPTION",
        "pass --subscription projects/P/subscriptions/S or export it",
    )
    received = 0
    deadline = time.monotonic() + float(args.timeout)
    with _pubsub(env) as (_, subscriber):
        while received < args.count and (left := deadline - time.monotonic()) > 0:
            for message in pull_messages(
                subscriber, subscription, args.count - received, min(left, _PULL_ROUND_SECONDS)
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
