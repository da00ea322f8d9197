"""What the local stack starts and how it names things: ports, resource ids and paths.

Pure data, no I/O: :class:`StackConfig` (with its :class:`Ports`) is what
:class:`opwatch_local.stack.LocalStack` starts from, and what a test or benchmark changes to get
a private stack (``Ports.free()``) or other functions (``functions_source``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from opwatch_local.procs import LOOPBACK, free_port

__all__ = ["REPO_ROOT", "Ports", "StackConfig", "StackError"]

#: The repository's root (devtools/opwatch_local/ is two levels below it).
REPO_ROOT: Final = Path(__file__).resolve().parents[2]


class StackError(RuntimeError):
    """The local stack cannot start: a missing tool, venv or file (the message says which)."""


@dataclass(frozen=True)
class Ports:
    """TCP ports on 127.0.0.1, one per process."""

    pubsub: int = 8085
    tasks: int = 9090
    simulator: int = 8090
    watch: int = 8081
    check: int = 8082
    audit: int = 8083
    firestore: int = 8080  # gcloud's own default for the Firestore emulator

    @classmethod
    def free(cls) -> Ports:
        """Distinct ports free a moment ago, one per process: for test stacks that must not
        collide with a developer's stack on the defaults (a small race remains, by nature)."""
        ports: set[int] = set()
        while len(ports) < len(cls.__dataclass_fields__):
            ports.add(free_port())
        return cls(*sorted(ports))

    def by_owner(self) -> dict[str, int]:
        """``{"pubsub": 8085, ...}``."""
        return dict(vars(self))


@dataclass(frozen=True)
class StackConfig:
    """What the local stack starts and how it names things.

    Attributes:
        ports: The ports (see :class:`Ports`).
        project: Project id used in every resource path (the emulators accept any).
        location: Cloud Tasks location.
        queue: Queue id.
        watch_topic: Topic id for watch requests (ids like ``t1`` are too short for the emulator).
        results_topic: Topic id for notifications.
        results_subscription: Pull subscription on the results topic (for ``tail`` and tests).
        watch_subscription: Push subscription from the watch topic to the watch function.
        functions_source: The functions' ``main.py`` (default: ``functions/main.py``).
        watch_target / check_target / audit_target: Entry points in it.
        audit_topic: Topic the simulator publishes audit entries to, as a Logging sink would.
        audit_subscription: Push subscription from the audit topic to the audit function.
        ledger_database: Id of the ledger's named Firestore database (``LEDGER_DATABASE`` of the
            functions is ``projects/{project}/databases/{ledger_database}``).
        function_env: Extra variables for both functions (e.g. ``ALLOWED_APIS``, ``LOG_LEVEL``);
            they win over the stack's own.
        start_functions: Start the two functions (off: emulators and simulator only).
        run_dir: Where logs go (default: ``.opwatch/runs/<time>-<pid>`` in the repo).
        tasks_python: Interpreter of the Tasks emulator's venv.
        tasks_max_retries: Attempts after the first before the emulator drops a failing task.
        ready_timeout: Seconds each process gets to become ready.
    """

    ports: Ports = field(default_factory=Ports)
    project: str = "opwatch-local"
    location: str = "us-central1"
    queue: str = "opwatch-checks"
    watch_topic: str = "opwatch-watch-requests"
    results_topic: str = "opwatch-results"
    results_subscription: str = "opwatch-results-tail"
    watch_subscription: str = "opwatch-watch-requests-push"
    functions_source: Path = REPO_ROOT / "functions" / "main.py"
    watch_target: str = "on_watch_request"
    check_target: str = "on_check"
    audit_target: str = "on_audit_entry"
    audit_topic: str = "opwatch-audit-entries"
    audit_subscription: str = "opwatch-audit-entries-push"
    ledger_database: str = "opwatch-ledger"
    function_env: Mapping[str, str] = field(default_factory=dict)
    start_functions: bool = True
    run_dir: Path | None = None
    tasks_python: Path = REPO_ROOT / ".venv-tasks-emulator" / "bin" / "python"
    tasks_max_retries: int = 5
    ready_timeout: float = 30.0

    # --- resource paths --------------------------------------------------------------------------

    @property
    def watch_topic_path(self) -> str:
        return f"projects/{self.project}/topics/{self.watch_topic}"

    @property
    def results_topic_path(self) -> str:
        return f"projects/{self.project}/topics/{self.results_topic}"

    @property
    def results_subscription_path(self) -> str:
        return f"projects/{self.project}/subscriptions/{self.results_subscription}"

    @property
    def watch_subscription_path(self) -> str:
        return f"projects/{self.project}/subscriptions/{self.watch_subscription}"

    @property
    def audit_topic_path(self) -> str:
        return f"projects/{self.project}/topics/{self.audit_topic}"

    @property
    def audit_subscription_path(self) -> str:
        return f"projects/{self.project}/subscriptions/{self.audit_subscription}"

    @property
    def audit_url(self) -> str:
        """Push endpoint of the audit function (the topic path, as for the watch function)."""
        return f"http://{LOOPBACK}:{self.ports.audit}/{self.audit_topic_path}"

    @property
    def queue_path(self) -> str:
        return f"projects/{self.project}/locations/{self.location}/queues/{self.queue}"

    @property
    def pubsub_host(self) -> str:
        return f"{LOOPBACK}:{self.ports.pubsub}"

    @property
    def firestore_host(self) -> str:
        return f"{LOOPBACK}:{self.ports.firestore}"

    @property
    def ledger_database_path(self) -> str:
        return f"projects/{self.project}/databases/{self.ledger_database}"

    @property
    def tasks_host(self) -> str:
        return f"{LOOPBACK}:{self.ports.tasks}"

    @property
    def watch_url(self) -> str:
        """Push endpoint; the path makes functions-framework set a full CloudEvent source."""
        return f"http://{LOOPBACK}:{self.ports.watch}/{self.watch_topic_path}"

    @property
    def check_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.check}/"

    @property
    def simulator_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.simulator}"
