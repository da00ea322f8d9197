"""Fixtures of the e2e tests that run the Tasks emulator alone (see tasks_emulator.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from google.cloud import tasks_v2

from tests.e2e.tasks_emulator import Target, emulator


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tasks_v2.CloudTasksClient]:
    yield from emulator(tmp_path_factory)


@pytest.fixture(scope="module")
def small_quotas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tasks_v2.CloudTasksClient]:
    yield from emulator(tmp_path_factory, "--list-quota-per-minute=3", "--run-quota-per-minute=2")


@pytest.fixture
def target() -> Iterator[Target]:
    state = Target()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.seen.append((time.monotonic(), self.headers["X-CloudTasks-TaskName"], body))
            if state.hold is not None:
                state.hold.wait(10)
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as server:
        state.url = f"http://127.0.0.1:{server.server_address[1]}/check"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield state
        finally:
            if state.hold is not None:
                state.hold.set()
            server.shutdown()
