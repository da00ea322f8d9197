"""Launch gcloud-tasks-emulator 0.6.2 bound to loopback, with task-name dedup.

Run it with the emulator's own interpreter (it pins protobuf<5, so it lives in its own venv)::

    .venv-tasks-emulator/bin/python devtools/opwatch_local/tasks_emulator_launcher.py \\
        --port 9090 --queue projects/P/locations/L/queues/Q --max-retries 5

This file imports only what that venv has (the emulator, grpc, google-cloud-tasks); nothing from
opwatch. It changes the emulator's behaviour **at runtime only, never by editing its files**:

1. **Loopback bind.** The emulator hard-codes ``[::]:PORT`` (every interface). We wrap
   ``grpc.server(...)`` so that ``add_insecure_port`` binds ``127.0.0.1:PORT`` instead, with
   ``SO_REUSEPORT`` off (gRPC turns it on by default, which would let a second emulator silently
   share the port). A failed bind ends the process with exit code 3 and a clear message; the
   emulator would otherwise log a thread traceback and keep running without an API.
2. **Task-name dedup.** The real Cloud Tasks answers ``ALREADY_EXISTS`` to a CreateTask whose name
   was used before (for a while even after the task ran or was deleted). opwatch relies on that to
   keep one polling chain per watch when a request is delivered twice; the emulator accepts
   duplicates. We subclass the emulator's servicer (``server.Greeter``) and swap it in before
   ``main()`` builds the server, so a reused name answers ``ALREADY_EXISTS``. Names are remembered
   for the emulator's lifetime. Like the real service, a name must be
   ``{parent}/tasks/{ID}`` with ID of letters, digits, ``-`` or ``_`` (at most 500), else
   ``INVALID_ARGUMENT``.
3. **Bounded dispatch.** The emulator's ``urlopen`` has no timeout; one hung handler would block
   its queue forever. We set a socket default timeout (``--dispatch-timeout``, default 600 s, the
   real service's default dispatch deadline); a timed-out attempt counts as failed and is retried.

``--max-retries`` is passed through so a failing task is not retried every 0.1 s forever.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["install_dedup", "install_loopback_bind", "main"]

BIND_FAILED_EXIT = 3
_TASK_ID = re.compile(r"[A-Za-z0-9_-]{1,500}")


def install_loopback_bind(host: str, log: Callable[[str], None]) -> None:
    """Make every ``grpc.server()`` created from now on bind ``host`` instead of ``[::]``."""
    import grpc

    original_server = grpc.server

    def loopback_server(*args: Any, **kwargs: Any) -> Any:
        options = list(kwargs.pop("options", None) or [])
        options.append(("grpc.so_reuseport", 0))
        server = original_server(*args, options=options, **kwargs)
        original_add = server.add_insecure_port

        def add_insecure_port(address: str) -> int:
            port = address.rsplit(":", 1)[1]
            wanted = f"{host}:{port}"
            try:
                bound = int(original_add(wanted))
            except RuntimeError as exc:
                bound, reason = 0, str(exc)
            else:
                reason = "bind returned 0"
            if not bound:
                # The emulator binds in a thread; exiting the process is the only clear signal.
                log(f"tasks emulator: cannot bind {wanted} ({reason}); is the port in use?")
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(BIND_FAILED_EXIT)
            log(f"tasks emulator: API bound to {wanted} only (not [::])")
            return bound

        server.add_insecure_port = add_insecure_port
        return server

    grpc.server = loopback_server


def install_dedup(log: Callable[[str], None]) -> None:
    """Swap the emulator's servicer for one that answers ALREADY_EXISTS to a reused task name."""
    import grpc
    from gcloud_tasks_emulator import server as emulator  # type: ignore[import-not-found]

    base = emulator.Greeter

    class DedupServicer(base):  # type: ignore[misc, valid-type]
        """The emulator's servicer plus the real service's task-name rules (see module doc)."""

        def __init__(self, state: Any) -> None:
            super().__init__(state)
            self._seen: set[str] = set()
            # The gRPC pool has several workers: check-and-create must be atomic.
            self._lock = threading.Lock()

        def CreateTask(self, request: Any, context: Any) -> Any:
            name = request.task.name
            with self._lock:
                if name:
                    prefix = f"{request.parent}/tasks/"
                    if not name.startswith(prefix) or not _TASK_ID.fullmatch(name[len(prefix) :]):
                        context.abort(
                            grpc.StatusCode.INVALID_ARGUMENT,
                            f"Task name must be {prefix}TASK_ID with TASK_ID of [A-Za-z0-9_-]"
                            f"{{1,500}}: {name}",
                        )
                    if name in self._seen:
                        context.abort(
                            grpc.StatusCode.ALREADY_EXISTS, "Requested entity already exists"
                        )
                task = super().CreateTask(request, context)
                if name:
                    # Only after success: a refused create must not reserve the name.
                    self._seen.add(name)
                return task

    emulator.Greeter = DedupServicer
    log("tasks emulator: task-name dedup enabled (ALREADY_EXISTS on a reused name)")


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="bind address (loopback)")
    parser.add_argument("--port", type=int, default=9090)
    parser.add_argument(
        "--queue", action="append", default=[], help="projects/P/locations/L/queues/Q (repeatable)"
    )
    parser.add_argument("--max-retries", type=int, default=5)
    parser.add_argument("--dispatch-timeout", type=float, default=600.0)
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Install the runtime changes, then hand over to the emulator's own ``main()``."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.host not in {"127.0.0.1", "localhost", "::1"}:
        sys.exit(f"tasks emulator launcher binds loopback only, not {args.host!r}")

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    install_loopback_bind(args.host, log)
    install_dedup(log)
    socket.setdefaulttimeout(args.dispatch_timeout)

    from gcloud_tasks_emulator.__main__ import (  # type: ignore[import-not-found]
        main as emulator_main,
    )

    emulator_argv = ["gcloud-tasks-emulator", "start", f"--port={args.port}"]
    emulator_argv += [f"--default-queue={q}" for q in args.queue]
    emulator_argv += [f"--max-retries={args.max_retries}"]
    if args.quiet:
        emulator_argv.append("--quiet")
    sys.argv = emulator_argv
    emulator_main()


if __name__ == "__main__":
    main()
