"""The whole opwatch pipeline on one machine, on real parts: :class:`LocalStack`.

Started, in parallel, each in its own process group with a log file in the run directory:

- **pubsub**: the Google Cloud SDK's Pub/Sub emulator (the ``cloud-pubsub-emulator`` script, or
  ``gcloud beta emulators pubsub start`` with a private ``CLOUDSDK_CONFIG`` if the script is
  missing). Ready when ``GET /`` answers ``Ok``.
- **firestore**: the Google Cloud SDK's Firestore emulator (Native mode; the SDK's
  ``cloud_firestore_emulator`` script, or ``gcloud emulators firestore start`` with a private
  ``CLOUDSDK_CONFIG`` if the script is missing), for the ledger's named database
  (``LEDGER_DATABASE``). Ready when ``GET /`` answers ``Ok``. It keeps data in memory only;
  :attr:`LocalStack.firestore` kills and restarts it alone, for fault tests.
- **tasks**: gcloud-tasks-emulator in its own venv, through
  :mod:`opwatch_local.tasks_emulator` (loopback bind, task-name dedup,
  ``--max-retries``), with the queue created at start.
- **simulator**: :mod:`opwatch_local.simulator` -- unless ``OPERATIONS_API_ENDPOINT`` is set in
  the environment, in which case the functions fetch from that server instead.
- **watch** / **check** / **audit**: ``functions-framework --target
  on_watch_request|on_check|on_audit_entry`` on the same ``functions/main.py`` that is deployed,
  configured only through environment variables.

Then the topics, push subscriptions from the watch topic to the watch function and from the
audit topic to the audit function (their URL path is ``/projects/P/topics/T`` so
functions-framework builds a full CloudEvent ``source``), a pull subscription on the results
topic, and the queue are created or checked. The simulator publishes audit entries of the
operations created with ``audit`` options onto the audit topic, as a Logging sink would.

Everything binds 127.0.0.1. All ports are checked before anything starts, so a taken port fails at
once with its number and owner. Stopping (context exit, or :meth:`LocalStack.stop`) stops every
process group, all at once; wrap the stack in :func:`opwatch_local.procs.sigterm_as_exit` so
SIGTERM unwinds like Ctrl-C does.

Configuration lives in :mod:`opwatch_local.stack_config`, the Pub/Sub helpers in
:mod:`opwatch_local.pubsub`; this module starts, stops and restarts processes, and creates the
resources they need.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from google.api_core import exceptions as gexc
from google.cloud import tasks_v2

from opwatch_local.procs import (
    LOOPBACK,
    Condition,
    ManagedProcess,
    ProcessSpec,
    Supervisor,
    ensure_ports_free,
    http_ready,
    port_is_free,
    tcp_ready,
    wait_until,
)
from opwatch_local.pubsub import (
    RPC_TIMEOUT,
)
from opwatch_local.stack_client import StackClient, tasks_client
from opwatch_local.stack_config import REPO_ROOT, StackConfig, StackError

__all__ = ["FirestoreEmulator", "LocalStack", "StackClient", "function_spec", "tasks_client"]

LAUNCHER = Path(__file__).with_name("tasks_emulator") / "__main__.py"
FIRESTORE_EMULATOR_HOST: Final = "FIRESTORE_EMULATOR_HOST"
_EMULATOR_ENV_LOCK = threading.Lock()


class LocalStack:
    """Starts and stops the local pipeline (see the module docstring).

    Args:
        config: What to start (defaults: :class:`StackConfig`).
        environ: The environment to read ``OPERATIONS_API_ENDPOINT`` from and to base the
            children's environment on (default: ``os.environ``). Read once, here.

    Use as a context manager, or :meth:`start` / :meth:`stop` (both idempotent)::

        with sigterm_as_exit(), LocalStack() as stack:
            stack.client.publish_watch_request({"operation": ...})
            print(stack.client.pull_notifications(count=1, timeout=60))
    """

    def __init__(
        self, config: StackConfig | None = None, *, environ: Mapping[str, str] | None = None
    ) -> None:
        self.config = config or StackConfig()
        self._environ = dict(os.environ if environ is None else environ)
        external = self._environ.get("OPERATIONS_API_ENDPOINT", "").strip()
        #: Where the functions fetch operations; our simulator unless one was given.
        self.operations_endpoint = external.rstrip("/") or self.config.simulator_url
        #: True if this stack runs the simulator itself.
        self.owns_simulator = not external
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        self.run_dir = (
            self.config.run_dir or REPO_ROOT / ".opwatch" / "runs" / f"{stamp}-{os.getpid()}"
        )
        self.supervisor: Supervisor | None = None
        #: Seconds from start to ready per process, plus ``resources`` and ``total``.
        self.timings: dict[str, float] = {}
        #: Seconds from the stop's SIGTERM until each process group was gone, after :meth:`stop`
        #: (they stop together: the largest is how long the stop took).
        self.stop_times: dict[str, float] = {}
        #: The stack's clients: simulator, Pub/Sub, Cloud Tasks (see :class:`StackClient`).
        self.client = StackClient(self.config, self.operations_endpoint, self.owns_simulator)
        self._stopped: dict[str, ProcessSpec] = {}
        #: The Firestore emulator, to kill and restart on its own (see :class:`FirestoreEmulator`).
        self.firestore = FirestoreEmulator(self)

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> LocalStack:
        """Start every process, wait until all are ready, then create the resources.

        On any failure -- including Ctrl-C during start -- what was started is stopped before
        the exception propagates.

        Raises:
            PortInUseError: A port is taken (nothing was started).
            ReadinessError: A process exited or was not ready in time (its log tail inside).
            StackError: A tool, venv or source file is missing.
        """
        if self.supervisor is not None:
            return self
        began = time.monotonic()
        specs = self._specs()
        ensure_ports_free([(s.name, p) for s in specs for p in s.ports])
        self.supervisor = Supervisor(self.run_dir)
        try:
            for spec in specs:
                self.supervisor.spawn(spec)
            self.timings.update(self.supervisor.wait_ready())
            resources = time.monotonic()
            self._create_resources()
            self.timings["resources"] = time.monotonic() - resources
        except BaseException:
            self.stop()
            raise
        self.timings["total"] = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Close our clients, then stop every process group (together). Idempotent."""
        self.client.close()
        self._stopped.clear()
        if self.supervisor is not None:
            supervisor, self.supervisor = self.supervisor, None
            try:
                supervisor.stop_all()
            finally:
                self.stop_times = dict(supervisor.stop_times)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def processes(self) -> list[ManagedProcess]:
        """The running processes, in start order (empty when stopped)."""
        return list(self.supervisor.processes) if self.supervisor else []

    @property
    def stopped(self) -> frozenset[str]:
        """Names of the processes stopped with :meth:`stop_process` and not started again."""
        return frozenset(self._stopped)

    def process(self, name: str) -> ManagedProcess:
        """The running process called ``name`` (``pubsub``, ``tasks``, ``check``, ...).

        Raises:
            KeyError: No running process has that name.
        """
        for proc in self.processes:
            if proc.name == name:
                return proc
        raise KeyError(f"no running process {name!r}; running: {[p.name for p in self.processes]}")

    def stop_process(self, name: str, *, kill: bool = False) -> float:
        """Stop one process of the running stack, for fault tests; :meth:`start_process` brings it
        back with the same spec, port and log file.

        Args:
            name: The process (see :meth:`process`).
            kill: SIGKILL its group at once, like a crash (default: SIGTERM, then SIGKILL).

        Returns:
            Seconds until its whole process group was gone and its ports free.
        """
        assert self.supervisor is not None, "the stack is not running"
        proc = self.process(name)
        if name == "pubsub":
            # Fresh channels after the restart, rather than ones stuck in reconnect backoff.
            self.client.close_pubsub()
        began = time.monotonic()
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.stop()
        self.supervisor.processes.remove(proc)
        self._stopped[name] = proc.spec
        # A killed JVM's main thread shows as a zombie while its other threads still exit and
        # hold its sockets: the group looks gone a moment before the port is free.
        wait_until(
            lambda: all(port_is_free(port) for port in proc.spec.ports),
            proc.spec.stop_timeout,
            describe=f"{name}'s ports free",
        )
        return time.monotonic() - began

    def start_process(self, name: str) -> float:
        """Start again a process stopped with :meth:`stop_process` and wait until it is ready.

        Nothing is recreated: an emulator restarted this way has lost its state (call
        :meth:`create_resources`).

        Returns:
            Seconds from start to ready.

        Raises:
            KeyError: ``name`` was not stopped with :meth:`stop_process`.
            PortInUseError, ReadinessError: As in :meth:`start`.
        """
        assert self.supervisor is not None, "the stack is not running"
        spec = self._stopped.pop(name)
        if name == FirestoreEmulator.NAME:
            spec = self._firestore_spec(self.firestore.kept_data)
        proc = self.supervisor.start(spec)
        assert proc.ready_after is not None
        return proc.ready_after

    def create_resources(self) -> None:
        """Create the topics, subscriptions and queue if missing (e.g. after an emulator restart,
        since neither emulator keeps state)."""
        self._create_resources()

    # --- what users need -------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """Variables a user (or the CLI in another shell) needs to talk to this stack.

        ``OPERATIONS_API_ENDPOINT`` is deliberately not among them: exported into a shell it
        would make the next ``local up`` think an external server was chosen.
        """
        c = self.config
        env = {
            "PUBSUB_EMULATOR_HOST": c.pubsub_host,
            "CLOUD_TASKS_EMULATOR_HOST": c.tasks_host,
            "FIRESTORE_EMULATOR_HOST": c.firestore_host,
            # What list, status and cancel read (the functions get it as LEDGER_DATABASE).
            "OPWATCH_LEDGER_DATABASE": c.ledger_database_path,
            "GOOGLE_CLOUD_PROJECT": c.project,
            "OPWATCH_WATCH_TOPIC": c.watch_topic_path,
            "OPWATCH_RESULTS_TOPIC": c.results_topic_path,
            "OPWATCH_RESULTS_SUBSCRIPTION": c.results_subscription_path,
            "OPWATCH_AUDIT_TOPIC": c.audit_topic_path,
            "OPWATCH_TASKS_QUEUE": c.queue_path,
            "OPWATCH_OPERATIONS_ENDPOINT": self.operations_endpoint,
            "OPWATCH_RUN_DIR": str(self.run_dir),
        }
        if c.start_functions:
            env["OPWATCH_WATCH_URL"] = c.watch_url
            env["OPWATCH_CHECK_URL"] = c.check_url
        if self.owns_simulator:
            env["OPWATCH_SIMULATOR_URL"] = c.simulator_url
        return env

    def function_env(self) -> dict[str, str]:
        """The environment of both functions: ours on top of the caller's, extras on top."""
        c = self.config
        env = dict(self._environ)
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "GOOGLE_CLOUD_PROJECT": c.project,
                "PUBSUB_EMULATOR_HOST": c.pubsub_host,
                "CLOUD_TASKS_EMULATOR_HOST": c.tasks_host,
                # google-cloud-firestore reads FIRESTORE_EMULATOR_HOST itself.
                "FIRESTORE_EMULATOR_HOST": c.firestore_host,
                "LEDGER_DATABASE": c.ledger_database_path,
                "RESULTS_TOPIC": c.results_topic_path,
                "TASKS_QUEUE": c.queue_path,
                "CHECK_URL": c.check_url,
                "TASKS_INVOKER_SA": "",
                "OPERATIONS_API_ENDPOINT": self.operations_endpoint,
            }
        )
        env.update(c.function_env)
        return env

    # --- internals -------------------------------------------------------------------------------

    def _specs(self) -> list[ProcessSpec]:
        c = self.config
        t = c.ready_timeout
        specs = [
            ProcessSpec(
                name="pubsub",
                argv=self._pubsub_argv(),
                env=self._pubsub_env(),
                ready=http_ready(f"http://{c.pubsub_host}/", body_contains="Ok"),
                ready_timeout=t,
                ports=(c.ports.pubsub,),
            ),
            self._firestore_spec(),
            ProcessSpec(
                name="tasks",
                argv=self._tasks_argv(),
                ready=tcp_ready(c.ports.tasks),
                ready_timeout=t,
                ports=(c.ports.tasks,),
            ),
        ]
        if self.owns_simulator:
            specs.append(
                ProcessSpec(
                    name="simulator",
                    argv=[
                        sys.executable,
                        "-m",
                        "opwatch_local.simulator",
                        f"--port={c.ports.simulator}",
                        f"--audit-topic={c.audit_topic_path}",
                        f"--pubsub-host={c.pubsub_host}",
                    ],
                    env=self._environ | {"PYTHONUNBUFFERED": "1"},
                    ready=http_ready(f"{c.simulator_url}/_sim/health", body_contains="true"),
                    ready_timeout=t,
                    ports=(c.ports.simulator,),
                )
            )
        if c.start_functions:
            source = Path(c.functions_source)
            if not source.is_file():
                raise StackError(f"functions source {source} does not exist")
            for name, target, port in (
                ("watch", c.watch_target, c.ports.watch),
                ("check", c.check_target, c.ports.check),
                ("audit", c.audit_target, c.ports.audit),
            ):
                specs.append(function_spec(name, target, source, port, self.function_env(), t))
        return specs

    def _pubsub_argv(self) -> list[str]:
        c = self.config
        script = _sdk_root(self._environ) / "platform/pubsub-emulator/bin/cloud-pubsub-emulator"
        if script.is_file():
            # The script execs java: one process, ~1 s faster than the gcloud wrapper.
            return [str(script), f"--host={LOOPBACK}", f"--port={c.ports.pubsub}"]
        gcloud = shutil.which("gcloud", path=self._environ.get("PATH"))
        if gcloud is None:
            raise StackError("the Pub/Sub emulator needs the Google Cloud SDK (gcloud) on PATH")
        data_dir = self.run_dir / "pubsub-data"
        data_dir.mkdir(parents=True, exist_ok=True)  # gcloud writes env.yaml there, no mkdir
        return [
            gcloud,
            "beta",
            "emulators",
            "pubsub",
            "start",
            f"--host-port={LOOPBACK}:{c.ports.pubsub}",
            f"--project={c.project}",
            f"--data-dir={data_dir}",
            "--quiet",
        ]

    def _pubsub_env(self) -> dict[str, str]:
        # A private gcloud config: nothing written to the user's home, no account used.
        return self._environ | {"CLOUDSDK_CONFIG": str(self.run_dir / "gcloud-config")}

    def _firestore_spec(self, import_data: Path | None = None) -> ProcessSpec:
        c = self.config
        return ProcessSpec(
            name=FirestoreEmulator.NAME,
            argv=self._firestore_argv(import_data),
            # A private gcloud config of its own (two gcloud processes share none).
            env=self._environ | {"CLOUDSDK_CONFIG": str(self.run_dir / "firestore-gcloud-config")},
            ready=_firestore_ready(c),
            ready_timeout=c.ready_timeout,
            ports=(c.ports.firestore,),
        )

    def _firestore_argv(self, import_data: Path | None) -> list[str]:
        c = self.config
        imports = [f"--import-data={import_data}"] if import_data is not None else []
        script = (
            _sdk_root(self._environ) / "platform/cloud-firestore-emulator/cloud_firestore_emulator"
        )
        if script.is_file():
            # The script execs java, as gcloud would after ~1-2 s of its own start-up.
            return [
                str(script),
                "start",
                f"--host={LOOPBACK}",
                f"--port={c.ports.firestore}",
                "--database-mode=firestore-native",
                *imports,
            ]
        gcloud = shutil.which("gcloud", path=self._environ.get("PATH"))
        if gcloud is None:
            raise StackError(
                "the Firestore emulator needs the Google Cloud SDK (gcloud) on PATH, with its "
                "cloud-firestore-emulator component"
            )
        return [
            gcloud,
            "emulators",
            "firestore",
            "start",
            f"--host-port={LOOPBACK}:{c.ports.firestore}",
            "--database-mode=firestore-native",
            *imports,
            "--quiet",
        ]

    def _tasks_argv(self) -> list[str]:
        c = self.config
        python = Path(c.tasks_python)
        if not python.is_file():
            raise StackError(
                f"{python} is missing: the Tasks emulator needs its own venv; run `./run setup`"
            )
        return [
            str(python),
            str(LAUNCHER),
            f"--host={LOOPBACK}",
            f"--port={c.ports.tasks}",
            f"--queue={c.queue_path}",
            f"--max-retries={c.tasks_max_retries}",
        ]

    def _create_resources(self) -> None:
        c = self.config
        publisher, subscriber = self.client.publisher(), self.client.subscriber()
        for topic in (c.watch_topic_path, c.results_topic_path, c.audit_topic_path):
            with contextlib.suppress(gexc.AlreadyExists):
                publisher.create_topic(request={"name": topic}, timeout=RPC_TIMEOUT)
        with contextlib.suppress(gexc.AlreadyExists):
            subscriber.create_subscription(
                request={"name": c.results_subscription_path, "topic": c.results_topic_path},
                timeout=RPC_TIMEOUT,
            )
        if c.start_functions:
            for subscription, topic, url in (
                (c.watch_subscription_path, c.watch_topic_path, c.watch_url),
                (c.audit_subscription_path, c.audit_topic_path, c.audit_url),
            ):
                with contextlib.suppress(gexc.AlreadyExists):
                    subscriber.create_subscription(
                        request={
                            "name": subscription,
                            "topic": topic,
                            "push_config": {"push_endpoint": url},
                            "ack_deadline_seconds": 60,
                        },
                        timeout=RPC_TIMEOUT,
                    )
        # The launcher creates the queue at start; this checks it (GetQueue is implemented).
        try:
            self.client.tasks().get_queue(name=c.queue_path, timeout=RPC_TIMEOUT)
        except gexc.NotFound:
            self.client.tasks().create_queue(
                parent=c.queue_path.rsplit("/queues/", 1)[0],
                queue=tasks_v2.Queue(name=c.queue_path),
                timeout=RPC_TIMEOUT,
            )


class FirestoreEmulator:
    """The stack's Firestore emulator on its own: kill it, start it again on the same port.

    For fault tests and the soak. The functions and the other processes keep running meanwhile:
    their Firestore calls fail (a long-lived client's at once, ``ServiceUnavailable``) until it
    is back, and their clients reconnect by themselves (README, "Local stack and CLI").

    The emulator keeps its data in memory only, so started again it is empty -- unless it went
    down with ``keep_data=True``, which exports the ledger's database first and imports it at
    the next start: an outage, as production has, rather than a loss, which it has not. Only
    the ledger's database is kept (the emulator has no call that lists databases).

    An outage of 60 s::

        stack.firestore.kill()  # SIGKILL to its process group, like a crash
        time.sleep(60)
        stack.firestore.restart()  # same port; bounded by the stack's ready_timeout
    """

    NAME: Final = "firestore"

    def __init__(self, stack: LocalStack) -> None:
        self._stack = stack
        #: The export the next start imports (``--import-data``), after a ``keep_data`` kill.
        self.kept_data: Path | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, what ``FIRESTORE_EMULATOR_HOST`` holds."""
        return self._stack.config.firestore_host

    @property
    def database(self) -> str:
        """The ledger's database, ``projects/P/databases/D`` (``LEDGER_DATABASE``)."""
        return self._stack.config.ledger_database_path

    @property
    def running(self) -> bool:
        """True while its process is part of the running stack and alive."""
        try:
            return self._stack.process(self.NAME).alive()
        except KeyError:
            return False

    def kill(self, *, keep_data: bool = False) -> float:
        """SIGKILL its process group at once, like a crash.

        Args:
            keep_data: Export the ledger's database first, for the next start to import.

        Returns:
            Seconds from the signal until its whole process group was gone.
        """
        return self._down(kill=True, keep_data=keep_data)

    def stop(self, *, keep_data: bool = False) -> float:
        """Like :meth:`kill`, but SIGTERM first (SIGKILL after the stop timeout)."""
        return self._down(kill=False, keep_data=keep_data)

    def restart(self, *, keep_data: bool = False) -> float:
        """Start it again on the same port, with the same log file, and wait (bounded by the
        stack's ``ready_timeout``) until it serves documents. Kills it first if it runs.

        Args:
            keep_data: If it runs, export the ledger's database before the kill (as
                :meth:`kill`); after a kill, what that kill kept is imported either way.

        Returns:
            Seconds from the call until it serves again.

        Raises:
            PortInUseError, ReadinessError: As in :meth:`LocalStack.start`.
        """
        began = time.monotonic()
        if self.NAME not in self._stack.stopped:
            self.kill(keep_data=keep_data)
        self._stack.start_process(self.NAME)
        return time.monotonic() - began

    def export(self, directory: Path) -> Path:
        """Export the ledger's database (the emulator's own export call) into ``directory``.

        Returns:
            The export's metadata file, which ``--import-data`` takes.

        Raises:
            StackError: The emulator refused or did not answer.
        """
        directory.mkdir(parents=True, exist_ok=True)  # the emulator wants an existing directory
        name = f"export-{time.time_ns()}"
        body = {"database": self.database, "export_directory": str(directory), "export_name": name}
        project = self._stack.config.project
        host, port = self.host.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=RPC_TIMEOUT)
        try:
            conn.request(
                "POST",
                f"/emulator/v1/projects/{project}:export",
                body=json.dumps(body),
                headers={"Content-Type": "application/json"},
            )
            resp = conn.getresponse()
            text = resp.read().decode(errors="replace")
        except (OSError, http.client.HTTPException) as exc:
            raise StackError(f"Firestore emulator export failed: {exc}") from exc
        finally:
            conn.close()
        metadata = directory / name / f"{name}.overall_export_metadata"
        if resp.status != 200 or not metadata.is_file():
            raise StackError(f"Firestore emulator export failed: {resp.status} {text[:300]}")
        return metadata

    def client(self, database: str | None = None) -> Any:
        """A ``google.cloud.firestore.Client`` on this emulator.

        Args:
            database: A database id (default: the ledger's).

        The client reads ``FIRESTORE_EMULATOR_HOST`` when it is created, and only from the
        environment; it is set for that moment (under a lock) and put back.
        """
        from google.cloud import firestore

        c = self._stack.config
        with _EMULATOR_ENV_LOCK:
            saved = os.environ.get(FIRESTORE_EMULATOR_HOST)
            os.environ[FIRESTORE_EMULATOR_HOST] = self.host
            try:
                return firestore.Client(project=c.project, database=database or c.ledger_database)
            finally:
                if saved is None:
                    del os.environ[FIRESTORE_EMULATOR_HOST]
                else:
                    os.environ[FIRESTORE_EMULATOR_HOST] = saved

    def _down(self, *, kill: bool, keep_data: bool) -> float:
        self.kept_data = self.export(self._stack.run_dir / "firestore-kept") if keep_data else None
        return self._stack.stop_process(self.NAME, kill=kill)


def _firestore_ready(config: StackConfig) -> Condition:
    """``GET /`` answers ``Ok``, then a document read is answered (404: there is none).

    The emulator answers ``Ok`` 1-3 s before it serves its first document request: the start
    pays that, not a function's first ledger call (which has a 5 s timeout).
    """
    up = http_ready(f"http://{config.firestore_host}/", body_contains="Ok")
    document = (
        f"http://{config.firestore_host}/v1/{config.ledger_database_path}"
        "/documents/opwatch-stack/warm-up"
    )
    serves = http_ready(document, status=None, timeout=10.0)
    return lambda: up() and serves()


def _sdk_root(environ: Mapping[str, str]) -> Path:
    """The Google Cloud SDK's root: CLOUDSDK_ROOT_DIR, or two levels above the real gcloud."""
    if root := environ.get("CLOUDSDK_ROOT_DIR"):
        return Path(root)
    gcloud = shutil.which("gcloud", path=environ.get("PATH"))
    if gcloud is None:
        return Path("/nonexistent")
    return Path(gcloud).resolve().parent.parent


def function_spec(
    name: str, target: str, source: Path, port: int, env: Mapping[str, str], ready_timeout: float
) -> ProcessSpec:
    """One function served by functions-framework on loopback, exactly as the stack runs it."""
    return ProcessSpec(
        name=name,
        argv=[
            _functions_framework(),
            f"--target={target}",
            f"--source={source}",
            f"--host={LOOPBACK}",
            f"--port={port}",
        ],
        env=env,
        cwd=source.parent,
        # robots.txt is answered (404/405) without calling the function.
        ready=http_ready(f"http://{LOOPBACK}:{port}/robots.txt", status=None),
        ready_timeout=ready_timeout,
        ports=(port,),
    )


def _functions_framework() -> str:
    """The functions-framework next to our interpreter (the project venv), else on PATH."""
    beside = Path(sys.executable).parent / "functions-framework"
    if beside.is_file():
        return str(beside)
    found = shutil.which("functions-framework")
    if found is None:
        raise StackError("functions-framework is not installed; run `./run setup`")
    return found
