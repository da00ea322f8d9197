"""The launcher's Cloud Tasks emulator run alone, and a loopback target for its tasks."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from google.cloud import tasks_v2

from opwatch_local.procs import ProcessSpec, Supervisor, free_port, tcp_ready, wait_until
from opwatch_local.stack import LAUNCHER, tasks_client
from opwatch_local.stack_config import StackConfig

PARENT = "projects/opwatch-test/locations/us-central1"


MAX_RETRIES = 2


_queue_ids = itertools.count(1)


def emulator(
    tmp_path_factory: pytest.TempPathFactory, *flags: str
) -> Iterator[tasks_v2.CloudTasksClient]:
    python = StackConfig.tasks_python
    if not Path(python).is_file():
        pytest.skip(f"{python} is missing; run ./run setup")
    port = free_port()
    spec = ProcessSpec(
        name="tasks",
        argv=[
            str(python),
            str(LAUNCHER),
            f"--port={port}",
            f"--queue={PARENT}/queues/default",
            f"--max-retries={MAX_RETRIES}",
            "--dispatch-timeout=10",
            *flags,
        ],
        ready=tcp_ready(port),
        ready_timeout=20,
        ports=(port,),
    )
    with Supervisor(tmp_path_factory.mktemp("tasks-emulator")) as sup:
        sup.start(spec)
        yield tasks_client(f"127.0.0.1:{port}")


@dataclass
class Target:
    """A loopback HTTP target: records each request, answers ``status``; ``hold`` gates answers."""

    status: int = 200
    hold: threading.Event | None = None
    seen: list[tuple[float, str, bytes]] = field(default_factory=list)
    url: str = ""

    def names(self) -> list[str]:
        return [name for _, name, _ in self.seen]

    def wait_for(self, count: int, timeout: float = 10) -> None:
        wait_until(lambda: len(self.seen) >= count, timeout, describe=f"{count} request(s)")


def new_queue(client: tasks_v2.CloudTasksClient, *, paused: bool = False) -> str:
    name = f"{PARENT}/queues/q-{next(_queue_ids)}"
    client.create_queue(parent=PARENT, queue=tasks_v2.Queue(name=name), timeout=10)
    if paused:
        client.pause_queue(name=name, timeout=10)
    return name
