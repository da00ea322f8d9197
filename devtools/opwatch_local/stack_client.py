"""The clients of a running :class:`~opwatch_local.stack.LocalStack`: the simulator's control API,
Pub/Sub and Cloud Tasks on the emulators, and what tests and tools do with them (publish a watch
request or an audit entry, pull notifications, create a task). The stack's lifecycle (start,
stop, restart a process) stays in :mod:`opwatch_local.stack`; this only talks to it."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import grpc
from google.cloud import pubsub_v1, tasks_v2  # type: ignore[attr-defined]
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

from opwatch_local.pubsub import (
    RPC_TIMEOUT,
    PulledMessage,
    publish_json,
    pubsub_clients,
    pull_messages,
)
from opwatch_local.simulator import SimulatorClient
from opwatch_local.stack_config import StackConfig, StackError


def tasks_client(host: str) -> tasks_v2.CloudTasksClient:
    """A Cloud Tasks client for the emulator at ``host`` (plaintext gRPC)."""
    return tasks_v2.CloudTasksClient(
        transport=CloudTasksGrpcTransport(channel=grpc.insecure_channel(host))
    )


class StackClient:
    """Clients of one stack, each created on first use and closed by :meth:`close`."""

    def __init__(self, config: StackConfig, operations_endpoint: str, owns_simulator: bool) -> None:
        self._config = config
        self.operations_endpoint = operations_endpoint
        self.owns_simulator = owns_simulator
        self._publisher: pubsub_v1.PublisherClient | None = None
        self._subscriber: pubsub_v1.SubscriberClient | None = None
        self._tasks: tasks_v2.CloudTasksClient | None = None

    def close(self) -> None:
        """Close every client made so far. Idempotent."""
        self.close_pubsub()
        if self._tasks is not None:
            self._tasks.transport.close()  # type: ignore[no-untyped-call]
            self._tasks = None

    def simulator(self) -> SimulatorClient:
        """Client for the simulator's control API.

        Raises:
            StackError: The stack uses an external OPERATIONS_API_ENDPOINT instead.
        """
        if not self.owns_simulator:
            raise StackError(f"no simulator: operations come from {self.operations_endpoint}")
        return SimulatorClient(self._config.simulator_url)

    def publisher(self) -> pubsub_v1.PublisherClient:
        """Publisher on the emulator (created once)."""
        if self._publisher is None:
            self._publisher, self._subscriber = pubsub_clients(self._config.pubsub_host)
        return self._publisher

    def subscriber(self) -> pubsub_v1.SubscriberClient:
        """Subscriber on the emulator (created once)."""
        self.publisher()
        assert self._subscriber is not None
        return self._subscriber

    def tasks(self) -> tasks_v2.CloudTasksClient:
        """Cloud Tasks client on the emulator (created once)."""
        if self._tasks is None:
            self._tasks = tasks_client(self._config.tasks_host)
        return self._tasks

    def publish_watch_request(
        self,
        request: Mapping[str, Any] | bytes | str,
        attributes: Mapping[str, str] | None = None,
    ) -> str:
        """Publish a watch request on the watch topic; returns the message id."""
        return publish_json(self.publisher(), self._config.watch_topic_path, request, attributes)

    def publish_audit_entry(
        self, entry: Mapping[str, Any] | bytes | str, attributes: Mapping[str, str] | None = None
    ) -> str:
        """Publish on the audit topic, as a Logging sink would; returns the message id."""
        return publish_json(self.publisher(), self._config.audit_topic_path, entry, attributes)

    def pull_notifications(
        self, count: int = 1, timeout: float = RPC_TIMEOUT, *, ack: bool = True
    ) -> list[PulledMessage]:
        """Pull up to ``count`` notifications from the results subscription, bounded by
        ``timeout`` seconds (see :func:`pull_messages`)."""
        return pull_messages(
            self.subscriber(), self._config.results_subscription_path, count, timeout, ack=ack
        )

    def create_http_task(
        self,
        url: str,
        body: bytes = b"",
        *,
        task_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tasks_v2.Task:
        """Create an HTTP POST task on the stack's queue (named ``task_id`` if given).

        Raises:
            google.api_core.exceptions.AlreadyExists: ``task_id`` was used before.
        """
        c = self._config
        task = tasks_v2.Task(
            name=f"{c.queue_path}/tasks/{task_id}" if task_id else "",
            http_request=tasks_v2.HttpRequest(
                url=url,
                http_method=tasks_v2.HttpMethod.POST,
                headers=dict(headers or {"Content-Type": "application/json"}),
                body=body,
            ),
        )
        return self.tasks().create_task(parent=c.queue_path, task=task, timeout=RPC_TIMEOUT)

    def close_pubsub(self) -> None:
        """Close the Pub/Sub clients (the next use makes fresh ones, e.g. after a restart)."""
        if self._publisher is not None:
            with contextlib.suppress(Exception):  # best effort: the emulator may be gone
                self._publisher.stop()
            self._publisher.transport.close()
            self._publisher = None
        if self._subscriber is not None:
            self._subscriber.close()
            self._subscriber = None
