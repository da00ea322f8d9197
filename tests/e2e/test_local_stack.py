"""The local stack's building blocks against the real emulators (no opwatch logic involved).

One stack is started for the module, on free ports, with a throwaway pair of functions (written to
a temp dir) that only echo what reaches them to the results topic -- so these tests prove the
wiring (push subscription, task dispatch, environment), not opwatch's behaviour. Every wait is a
condition with a bounded timeout.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import pytest
from google.api_core.exceptions import AlreadyExists, InvalidArgument, ServiceUnavailable

from opwatch_local.procs import (
    PortInUseError,
    ProcessSpec,
    ReadinessError,
    Supervisor,
    free_port,
    group_pids,
    http_ready,
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
        names = (
            "TASKS_QUEUE",
            "CHECK_URL",
            "OPERATIONS_API_ENDPOINT",
            "TASKS_INVOKER_SA",
            "FIRESTORE_EMULATOR_HOST",
            "LEDGER_DATABASE",
        )
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


def pump(stream: IO[str] | None, lines: queue.Queue[str]) -> None:
    """Put each line of ``stream`` on ``lines``, then ``""`` at its end."""
    assert stream is not None
    for line in stream:
        lines.put(line)
    lines.put("")


def child_pids(parent: int) -> set[int]:
    """Live children of ``parent`` (Linux /proc)."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            text = stat.read_text()
            fields = text[text.rfind(")") + 2 :].split()
            if int(fields[1]) == parent and fields[0] not in "ZX":
                children.add(int(stat.parent.name))
    return children


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
        stack.client.publisher(),
        stack.config.results_topic_path,
        {"hello": "emulator"},
        {"watch_id": "w-1"},
    )
    got = stack.client.pull_notifications(count=1, timeout=10)
    assert [(n.message_id, n.json(), n.attributes) for n in got] == [
        (message_id, {"hello": "emulator"}, {"watch_id": "w-1"})
    ]
    # Acked: nothing left.
    assert stack.client.pull_notifications(count=1, timeout=0.5) == []


def test_http_task_reaches_a_loopback_handler(stack: LocalStack) -> None:
    handler = type("Handler", (Recorder,), {"seen": [], "arrived": threading.Event()})
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as target:
        threading.Thread(target=target.serve_forever, daemon=True).start()
        try:
            port = target.server_address[1]
            stack.client.create_http_task(
                f"http://127.0.0.1:{port}/check", b'{"n": 1}', task_id="reach-1"
            )
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
    stack.client.create_http_task(url, task_id="dedup-1")
    with pytest.raises(AlreadyExists):
        stack.client.create_http_task(url, task_id="dedup-1")
    stack.client.create_http_task(url, task_id="dedup-2")  # other names are fine
    with pytest.raises(InvalidArgument):
        stack.client.create_http_task(url, task_id="not a valid id")


def test_unnamed_tasks_are_never_duplicates(stack: LocalStack) -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    first, second = stack.client.create_http_task(url), stack.client.create_http_task(url)
    assert first.name != second.name


# --- the functions, wired ------------------------------------------------------------------------


def test_watch_request_is_pushed_to_the_watch_function(stack: LocalStack) -> None:
    stack.client.publish_watch_request(
        {"operation": "projects/p/operations/o"}, {"label_team": "a"}
    )
    [note] = stack.client.pull_notifications(count=1, timeout=15)
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
        "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{stack.config.ports.firestore}",
        "LEDGER_DATABASE": "projects/opwatch-local/databases/opwatch-ledger",
    }


def test_task_reaches_the_check_function(stack: LocalStack) -> None:
    stack.client.create_http_task(stack.config.check_url, b'{"watch": 1}', task_id="check-1")
    [note] = stack.client.pull_notifications(count=1, timeout=15)
    assert note.attributes == {"via": "check"}
    assert note.json() == {"body": '{"watch": 1}', "task": "check-1"}


def test_simulator_serves_operations(stack: LocalStack) -> None:
    sim = stack.client.simulator()
    name = sim.create_operation(duration=0)
    assert sim.get_operation(name)[1]["done"] is True
    assert sim.stats(name).gets == 1


# --- Firestore -----------------------------------------------------------------------------------


def test_firestore_named_databases_are_isolated(stack: LocalStack) -> None:
    ledger = stack.firestore.client()
    ledger.collection("watches").document("iso-1").set({"state": "PENDING"})
    # It is in the database LEDGER_DATABASE names (read back over the emulator's REST API) ...
    url = f"http://{stack.firestore.host}/v1/{stack.firestore.database}/documents/watches/iso-1"
    assert http_ready(url, body_contains='"PENDING"')()
    # ... and in no other.
    for other in ("(default)", "another-ledger"):
        missing = stack.firestore.client(other).collection("watches").document("iso-1").get()
        assert not missing.exists


def test_firestore_alone_is_killed_and_started_again_on_its_port(stack: LocalStack) -> None:
    firestore, port = stack.firestore, stack.config.ports.firestore
    others = {p.name: p.pid for p in stack.processes if p.name != "firestore"}
    doc = firestore.client().collection("watches").document("kept-1")  # a long-lived client
    doc.set({"n": 1})
    firestore.client("not-the-ledger").collection("watches").document("lost-1").set({"n": 2})

    assert firestore.kill(keep_data=True) < 10
    assert not firestore.running and port_is_free(port)
    with pytest.raises(ServiceUnavailable):  # at once: a call does not hang while it is down
        doc.get(retry=None, timeout=5)
    # The rest of the stack goes on: same processes, and a watch request still gets through.
    assert {p.name: p.pid for p in stack.processes} == others
    stack.client.publish_watch_request({"operation": "projects/p/operations/during-outage"})
    [note] = stack.client.pull_notifications(count=1, timeout=15)
    assert note.attributes == {"via": "watch"}

    assert firestore.restart() < stack.config.ready_timeout
    assert firestore.running and stack.process("firestore").spec.ports == (port,)

    def reconnected() -> bool:
        try:
            return bool(doc.get(retry=None, timeout=2).exists)
        except ServiceUnavailable:
            return False

    # The old client (as a function holds one) comes back by itself, after gRPC's backoff, and
    # finds the ledger's document: exported before the kill, imported at the start.
    wait_until(reconnected, 30, interval=0.2, describe="the long-lived client reconnected")
    # The emulator keeps nothing itself: the database that was not exported came back empty.
    lost = firestore.client("not-the-ledger").collection("watches").document("lost-1").get()
    assert not lost.exists


def test_env_names_what_a_user_needs(stack: LocalStack) -> None:
    env = stack.env()
    c = stack.config
    assert env["PUBSUB_EMULATOR_HOST"] == f"127.0.0.1:{c.ports.pubsub}"
    assert env["CLOUD_TASKS_EMULATOR_HOST"] == f"127.0.0.1:{c.ports.tasks}"
    assert env["FIRESTORE_EMULATOR_HOST"] == f"127.0.0.1:{c.ports.firestore}"
    assert env["OPWATCH_LEDGER_DATABASE"] == "projects/opwatch-local/databases/opwatch-ledger"
    assert env["GOOGLE_CLOUD_PROJECT"] == "opwatch-local"
    assert env["OPWATCH_SIMULATOR_URL"] == c.simulator_url
    assert env["OPWATCH_AUDIT_TOPIC"] == "projects/opwatch-local/topics/opwatch-audit-entries"
    assert "OPERATIONS_API_ENDPOINT" not in env


def test_an_audit_entry_is_pushed_to_the_audit_function(stack: LocalStack) -> None:
    message_id = stack.client.publish_audit_entry({"operation": {"first": True}})
    [note] = stack.client.pull_notifications(count=1, timeout=15)
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


def test_local_up_exports_the_stack_and_sigterm_stops_all_of_it() -> None:
    """``opwatch local up`` as a developer runs it: its exports name every emulator (Firestore
    too), and SIGTERM stops every process group it started and frees every port."""
    ports = Ports.free()
    argv = [sys.executable, "-m", "opwatch_local.cli", "local", "up"]
    argv += [f"--{owner}-port={port}" for owner, port in ports.by_owner().items()]
    environ = {k: v for k, v in os.environ.items() if k != "OPERATIONS_API_ENDPOINT"}
    lines: queue.Queue[str] = queue.Queue()
    with subprocess.Popen(
        argv, env=environ, stdout=subprocess.PIPE, text=True, start_new_session=True
    ) as up:
        try:
            threading.Thread(target=pump, args=(up.stdout, lines), daemon=True).start()
            exports: dict[str, str] = {}
            while not (line := lines.get(timeout=60)).startswith("# ready"):
                assert line, f"local up exited with code {up.wait(timeout=10)} before it was ready"
                key, value = shlex.split(line.removeprefix("export "))[0].split("=", 1)
                exports[key] = value
            assert exports["FIRESTORE_EMULATOR_HOST"] == f"127.0.0.1:{ports.firestore}"
            ledger = "projects/opwatch-local/databases/opwatch-ledger"
            assert exports["OPWATCH_LEDGER_DATABASE"] == ledger
            assert exports["PUBSUB_EMULATOR_HOST"] == f"127.0.0.1:{ports.pubsub}"
            assert exports["CLOUD_TASKS_EMULATOR_HOST"] == f"127.0.0.1:{ports.tasks}"
            assert http_ready(f"http://{exports['FIRESTORE_EMULATOR_HOST']}/", body_contains="Ok")()
            # Each child leads a process group of its own (new session).
            leaders = child_pids(up.pid)
            pids = {pid for leader in leaders for pid in group_pids(leader)}
            assert len(leaders) == len(ports.by_owner()) == 7
            assert all(is_alive(pid) for pid in pids)
            up.send_signal(signal.SIGTERM)
            assert up.wait(timeout=30) == 128 + signal.SIGTERM
        finally:
            if up.poll() is None:
                os.killpg(up.pid, signal.SIGKILL)
                up.wait(timeout=5)
    assert not [pid for pid in pids if is_alive(pid)]
    assert all(port_is_free(port) for port in ports.by_owner().values())
    run_dir = Path(exports["OPWATCH_RUN_DIR"])
    try:
        assert (run_dir / "firestore.log").read_text()  # logs stay for a post-mortem
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


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
