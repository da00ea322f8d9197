"""The local stack's building blocks against the real emulators (no opwatch logic involved).

One stack is started for the module, on free ports, with a throwaway pair of functions (written to
a temp dir) that only echo what reaches them to the results topic -- so these tests prove the
wiring (push subscription, task dispatch, environment), not opwatch's behaviour. Every wait is a
condition with a bounded timeout.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from google.api_core.exceptions import AlreadyExists, InvalidArgument

from opwatch_local.procs import (
    PortInUseError,
    ProcessSpec,
    ReadinessError,
    Supervisor,
    free_port,
    listening_sockets,
    port_is_free,
    tcp_ready,
    wait_until,
)
from opwatch_local.pubsub import publish_json
from opwatch_local.stack import LocalStack
from opwatch_local.stack_config import Ports, StackConfig

pytestmark = pytest.mark.e2e

LOOPBACK_ADDRESSES = {"127.0.0.1", "::ffff:127.0.0.1"}

ECHO_FUNCTIONS = textwrap.dedent(
    '''
    """Throwaway functions: publish what reached them to RESULTS_TOPIC (tests of the stack only)."""
    import json
    import os

    import functions_framework
    from google.cloud import pubsub_v1

    _publisher = None


    def _publish(payload, via):
        global _publisher
        if _publisher is None:
            _publisher = pubsub_v1.PublisherClient()  # PUBSUB_EMULATOR_HOST from the stack
        data = json.dumps(payload).encode()
        _publisher.publish(os.environ["RESULTS_TOPIC"], data, via=via).result(timeout=10)


    @functions_framework.cloud_event
    def on_watch_request(event):
        names = ("TASKS_QUEUE", "CHECK_URL", "OPERATIONS_API_ENDPOINT", "TASKS_INVOKER_SA")
        _publish(
            {
                "source": event["source"],
                "type": event["type"],
                "message": event.data["message"],
                "env": {name: os.environ.get(name) for name in names},
            },
            via="watch",
        )


    @functions_framework.http
    def on_check(request):
        _publish(
            {
                "body": request.get_data(as_text=True),
                "task": request.headers.get("X-CloudTasks-TaskName"),
            },
            via="check",
        )
        return "ok", 200


    @functions_framework.http
    def on_audit_entry(request):
        _publish({"push": request.get_json(silent=True)}, via="audit")
        return "", 204
    '''
)


@pytest.fixture(scope="module")
def functions_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("echo-functions") / "main.py"
    source.write_text(ECHO_FUNCTIONS)
    return source


def config_for(functions_source: Path, run_dir: Path, **overrides: Any) -> StackConfig:
    return StackConfig(
        ports=Ports.free(),
        functions_source=functions_source,
        run_dir=run_dir,
        ready_timeout=20,
        **overrides,
    )


@pytest.fixture(scope="module")
def stack(functions_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    environ = {k: v for k, v in os.environ.items() if k != "OPERATIONS_API_ENDPOINT"}
    run_dir = tmp_path_factory.mktemp("stack-run")
    with LocalStack(config_for(functions_source, run_dir), environ=environ) as started:
        yield started


class Recorder(BaseHTTPRequestHandler):
    """Loopback HTTP target for tasks: records each POST and answers 200."""

    seen: list[tuple[str, dict[str, str], bytes]]
    arrived: threading.Event

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).seen.append((self.path, dict(self.headers), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
        type(self).arrived.set()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def is_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (a reparented zombie holds nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


# --- the emulators -------------------------------------------------------------------------------


def test_publish_and_pull_round_trip(stack: LocalStack) -> None:
    message_id = publish_json(
        stack.publisher(),
        stack.config.results_topic_path,
        {"hello": "emulator"},
        {"watch_id": "w-1"},
    )
    got = stack.pull_notifications(count=1, timeout=10)
    assert [(n.message_id, n.json(), n.attributes) for n in got] == [
        (message_id, {"hello": "emulator"}, {"watch_id": "w-1"})
    ]
    # Acked: nothing left.
    assert stack.pull_notifications(count=1, timeout=0.5) == []


def test_http_task_reaches_a_loopback_handler(stack: LocalStack) -> None:
    handler = type("Handler", (Recorder,), {"seen": [], "arrived": threading.Event()})
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as target:
        threading.Thread(target=target.serve_forever, daemon=True).start()
        try:
            port = target.server_address[1]
            stack.create_http_task(f"http://127.0.0.1:{port}/check", b'{"n": 1}', task_id="reach-1")
            assert handler.arrived.wait(10), "the task did not arrive within 10 s"
        finally:
            target.shutdown()
    path, raw_headers, body = handler.seen[0]
    assert (path, body) == ("/check", b'{"n": 1}')
    # urllib in the emulator sends "X-cloudtasks-queuename": header names are case-insensitive.
    headers = {k.lower(): v for k, v in raw_headers.items()}
    assert headers["x-cloudtasks-queuename"] == stack.config.queue_path
    assert headers["x-cloudtasks-taskname"] == "reach-1"


def test_reused_task_name_answers_already_exists(stack: LocalStack) -> None:
    # A closed port: the dispatch fails, which must not matter to the name check.
    url = f"http://127.0.0.1:{free_port()}/"
    stack.create_http_task(url, task_id="dedup-1")
    with pytest.raises(AlreadyExists):
        stack.create_http_task(url, task_id="dedup-1")
    stack.create_http_task(url, task_id="dedup-2")  # other names are fine
    with pytest.raises(InvalidArgument):
        stack.create_http_task(url, task_id="not a valid id")


def test_unnamed_tasks_are_never_duplicates(stack: LocalStack) -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    first, second = stack.create_http_task(url), stack.create_http_task(url)
    assert first.name != second.name


# --- the functions, wired ------------------------------------------------------------------------


def test_watch_request_is_pushed_to_the_watch_function(stack: LocalStack) -> None:
    stack.publish_watch_request({"operation": "projects/p/operations/o"}, {"label_team": "a"})
    [note] = stack.pull_notifications(count=1, timeout=15)
    event = note.json()
    assert note.attributes == {"via": "watch"}
    assert event["type"] == "google.cloud.pubsub.topic.v1.messagePublished"
    assert event["source"] == f"//pubsub.googleapis.com/{stack.config.watch_topic_path}"
    assert event["message"]["attributes"] == {"label_team": "a"}
    assert event["env"] == {
        "TASKS_QUEUE": stack.config.queue_path,
        "CHECK_URL": stack.config.check_url,
        "OPERATIONS_API_ENDPOINT": stack.config.simulator_url,
        "TASKS_INVOKER_SA": "",
    }


def test_task_reaches_the_check_function(stack: LocalStack) -> None:
    stack.create_http_task(stack.config.check_url, b'{"watch": 1}', task_id="check-1")
    [note] = stack.pull_notifications(count=1, timeout=15)
    assert note.attributes == {"via": "check"}
    assert note.json() == {"body": '{"watch": 1}', "task": "check-1"}


def test_simulator_serves_operations(stack: LocalStack) -> None:
    sim = stack.simulator()
    name = sim.create_operation(duration=0)
    assert sim.get_operation(name)[1]["done"] is True
    assert sim.stats(name).gets == 1


def test_env_names_what_a_user_needs(stack: LocalStack) -> None:
    env = stack.env()
    c = stack.config
    assert env["PUBSUB_EMULATOR_HOST"] == f"127.0.0.1:{c.ports.pubsub}"
    assert env["CLOUD_TASKS_EMULATOR_HOST"] == f"127.0.0.1:{c.ports.tasks}"
    assert env["GOOGLE_CLOUD_PROJECT"] == "opwatch-local"
    assert env["OPWATCH_SIMULATOR_URL"] == c.simulator_url
    assert env["OPWATCH_AUDIT_TOPIC"] == "projects/opwatch-local/topics/opwatch-audit-entries"
    assert "OPERATIONS_API_ENDPOINT" not in env


def test_an_audit_entry_is_pushed_to_the_audit_function(stack: LocalStack) -> None:
    message_id = stack.publish_audit_entry({"operation": {"first": True}})
    [note] = stack.pull_notifications(count=1, timeout=15)
    assert note.attributes == {"via": "audit"}
    assert note.json()["push"]["message"]["messageId"] == message_id


# --- binding, ports, stopping --------------------------------------------------------------------


def test_every_listening_socket_is_loopback(stack: LocalStack) -> None:
    pids = {pid for proc in stack.processes for pid in proc.pids()}
    sockets = listening_sockets(pids)
    ports = {port for _, port in sockets}
    assert set(stack.config.ports.by_owner().values()) <= ports
    assert {address for address, _ in sockets} <= LOOPBACK_ADDRESSES, sockets


def test_a_taken_port_fails_at_once_naming_it(functions_source: Path, tmp_path: Path) -> None:
    config = config_for(functions_source, tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", config.ports.tasks))
        squatter.listen()
        stack = LocalStack(config, environ=dict(os.environ))
        with pytest.raises(PortInUseError, match=rf"port {config.ports.tasks} \(for tasks\)"):
            stack.start()
    assert stack.processes == []  # checked before anything started


def test_stop_leaves_no_process_and_frees_the_ports(functions_source: Path, tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if k != "OPERATIONS_API_ENDPOINT"}
    with LocalStack(config_for(functions_source, tmp_path), environ=environ) as own:
        pids = {pid for proc in own.processes for pid in proc.pids()}
        ports = list(own.config.ports.by_owner().values())
        assert len(own.processes) == 6
        assert all(is_alive(pid) for pid in pids)
    assert not [pid for pid in pids if is_alive(pid)]
    assert all(port_is_free(port) for port in ports)
    assert (tmp_path / "pubsub.log").read_text()  # logs stay for a post-mortem


def test_external_operations_endpoint_replaces_the_simulator(
    functions_source: Path, tmp_path: Path
) -> None:
    stack = LocalStack(
        config_for(functions_source, tmp_path),
        environ={"OPERATIONS_API_ENDPOINT": "http://127.0.0.1:1234/"},
    )
    assert stack.operations_endpoint == "http://127.0.0.1:1234"
    assert stack.function_env()["OPERATIONS_API_ENDPOINT"] == "http://127.0.0.1:1234"
    assert "OPWATCH_SIMULATOR_URL" not in stack.env()
    # That no simulator process starts is shown on a running stack in test_e2e.py.


# --- supervision ---------------------------------------------------------------------------------


def test_a_child_that_exits_early_reports_its_log(tmp_path: Path) -> None:
    spec = ProcessSpec(
        name="crasher",
        argv=[sys.executable, "-c", "import sys; print('cannot start: no config'); sys.exit(3)"],
        ready=tcp_ready(free_port()),
        ready_timeout=10,
    )
    with Supervisor(tmp_path) as sup, pytest.raises(ReadinessError) as info:
        sup.start(spec)
    assert "exited with code 3" in str(info.value)
    assert "cannot start: no config" in str(info.value)


def test_a_child_that_never_gets_ready_is_stopped(tmp_path: Path) -> None:
    spec = ProcessSpec(
        name="sleeper",
        argv=[sys.executable, "-c", "import time; print('waiting', flush=True); time.sleep(60)"],
        ready=tcp_ready(free_port()),
        ready_timeout=0.5,
    )
    with Supervisor(tmp_path) as sup:
        with pytest.raises(ReadinessError, match=r"not ready within 0.5 s") as info:
            sup.start(spec)
        assert "waiting" in str(info.value)
        assert sup.processes == []


def test_sigterm_to_the_owner_stops_its_children(tmp_path: Path) -> None:
    owner = textwrap.dedent(
        f"""
        import sys, time
        from opwatch_local.procs import ProcessSpec, Supervisor, sigterm_as_exit
        with sigterm_as_exit(), Supervisor({str(tmp_path)!r}) as sup:
            child = sup.start(ProcessSpec(
                "child", [sys.executable, "-c", "import time; time.sleep(60)"], lambda: True))
            print(child.pid, flush=True)
            time.sleep(60)
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", owner], stdout=subprocess.PIPE, text=True, start_new_session=True
    ) as proc:
        try:
            assert proc.stdout is not None
            child = int(proc.stdout.readline())
            assert is_alive(child)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 128 + signal.SIGTERM
            wait_until(lambda: not is_alive(child), 5, describe="child gone")
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


def test_a_child_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    ignore = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ignoring SIGTERM', flush=True); time.sleep(60)"
    )
    log = tmp_path / "stubborn.log"
    spec = ProcessSpec(
        name="stubborn",
        argv=[sys.executable, "-c", ignore],
        # Ready once the handler is installed, or SIGTERM could win the race.
        ready=lambda: log.exists() and "ignoring" in log.read_text(),
        ready_timeout=10,
        stop_timeout=0.3,
    )
    with Supervisor(tmp_path) as sup:
        proc = sup.start(spec)
        assert proc.stop() == -signal.SIGKILL
        assert not is_alive(proc.pid)
