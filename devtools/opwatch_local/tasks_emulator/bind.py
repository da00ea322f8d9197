"""Patch 1: every gRPC server binds loopback, and a failed bind ends the process."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, Final

import grpc

BIND_FAILED_EXIT: Final = 3


def install_loopback_bind(host: str, log: Callable[[str], None]) -> None:
    """Make every ``grpc.server()`` created from now on bind ``host`` instead of ``[::]``."""
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
