"""Pub/Sub helpers for the tools: clients on the emulator, publish one message, pull some.

They take plain hosts and paths, so the CLI in another shell can use them with the variables of
:meth:`opwatch_local.stack.LocalStack.env` and no stack object. What a pull returns is a
:class:`PulledMessage` (one Pub/Sub message as received), not to be confused with
:class:`opwatch.notification.Notification`, the message opwatch builds and publishes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import grpc
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1  # type: ignore[attr-defined]
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

__all__ = ["RPC_TIMEOUT", "PulledMessage", "publish_json", "pubsub_clients", "pull_messages"]

# Per-call bound for the RPCs the tools make themselves (resource creation, publish, pull).
RPC_TIMEOUT: Final = 10.0


@dataclass(frozen=True)
class PulledMessage:
    """One message pulled from a subscription.

    Attributes:
        message_id: Pub/Sub message id.
        data: Raw payload.
        attributes: Message attributes.
        publish_time: When Pub/Sub accepted it.
    """

    message_id: str
    data: bytes
    attributes: dict[str, str]
    publish_time: datetime

    def json(self) -> Any:
        """The payload parsed as JSON (raises ValueError if it is not JSON)."""
        return json.loads(self.data)


def pubsub_clients(host: str) -> tuple[pubsub_v1.PublisherClient, pubsub_v1.SubscriberClient]:
    """Publisher and subscriber talking plaintext gRPC to the emulator at ``host``.

    Explicit transports instead of ``PUBSUB_EMULATOR_HOST``: no process-wide environment change,
    and no chance of reaching the real service by accident.
    """
    publisher = pubsub_v1.PublisherClient(
        transport=PublisherGrpcTransport(channel=grpc.insecure_channel(host))
    )
    subscriber = pubsub_v1.SubscriberClient(
        transport=SubscriberGrpcTransport(channel=grpc.insecure_channel(host))
    )
    return publisher, subscriber


def publish_json(
    publisher: pubsub_v1.PublisherClient,
    topic: str,
    payload: Mapping[str, Any] | bytes | str,
    attributes: Mapping[str, str] | None = None,
    timeout: float = RPC_TIMEOUT,
) -> str:
    """Publish one message and wait (bounded) for its id.

    Args:
        payload: A mapping (sent as JSON), or raw bytes/text (sent as is, e.g. malformed input).
    """
    if isinstance(payload, Mapping):
        data = json.dumps(payload).encode()
    elif isinstance(payload, str):
        data = payload.encode()
    else:
        data = payload
    future = publisher.publish(topic, data, **dict(attributes or {}))
    return str(future.result(timeout=timeout))


def pull_messages(
    subscriber: pubsub_v1.SubscriberClient,
    subscription: str,
    count: int = 1,
    timeout: float = RPC_TIMEOUT,
    *,
    ack: bool = True,
) -> list[PulledMessage]:
    """Pull until ``count`` messages arrived or ``timeout`` seconds passed; ack them if asked.

    Returns what arrived (fewer than ``count`` on timeout; the caller decides if that is a
    failure).
    """
    got: list[PulledMessage] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            response = subscriber.pull(
                request={"subscription": subscription, "max_messages": count - len(got)},
                timeout=max(0.1, min(remaining, 5.0)),
                retry=None,
            )
        except (gexc.DeadlineExceeded, gexc.ServiceUnavailable):
            continue
        received = list(response.received_messages)
        if not received:
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))  # emulator: empty at once
            continue
        if ack:
            subscriber.acknowledge(
                request={"subscription": subscription, "ack_ids": [m.ack_id for m in received]},
                timeout=RPC_TIMEOUT,
            )
        got += [
            PulledMessage(
                message_id=m.message.message_id,
                data=bytes(m.message.data),
                attributes=dict(m.message.attributes),
                publish_time=m.message.publish_time,
            )
            for m in received
        ]
    return got
