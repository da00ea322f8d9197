"""A TCP forwarder on loopback that can be shut: how the soak takes Pub/Sub and Firestore away
from the functions.

Why the functions reach Pub/Sub through a :class:`TcpGate` during the soak: the emulator forgets
everything when it stops, including notifications already published but not yet pulled, and a
restarted emulator drops what is published between the topic's and the subscription's creation.
Neither would be opwatch's loss (real Pub/Sub keeps both), but either would show as one. So the
gate closes first (the functions' connections are cut and new ones refused), the harness drains
the subscription, and the gate opens only after the subscription exists again. For opwatch the
outage is the same: Pub/Sub is unreachable, then back, empty but for the resources.

The ledger's Firestore is behind a gate of its own for a like reason: its emulator keeps its
data in memory, so the soak exports it before the kill and imports it at the restart; the gate
shuts first, so that no write the functions saw succeed falls between the export and the kill.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from opwatch_local.procs import LOOPBACK

__all__ = ["TcpGate"]


class TcpGate:
    """A TCP forwarder on loopback that can be shut: :meth:`shut` cuts every connection and
    refuses new ones until :meth:`open`. See the module docstring
    for why the soak needs it.

    Args:
        upstream_port: The port on 127.0.0.1 to forward to.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server((LOOPBACK, 0))
        self._listener.settimeout(0.2)  # so the accept loop sees stop() within a bound
        self.port: int = self._listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept_loop, name="tcp-gate", daemon=True)
        self._thread.start()
        #: Connections refused while shut.
        self.refused = 0

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def shut(self) -> None:
        """Cut every forwarded connection and refuse new ones."""
        with self._lock:  # a connection being set up is either cut here or refused below
            self._open.clear()
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def open(self) -> None:
        """Forward new connections again."""
        self._open.set()

    def stop(self) -> None:
        """Stop accepting and cut everything (idempotent)."""
        self._stopping.set()
        self.shut()
        self._thread.join(timeout=5.0)
        self._listener.close()

    def __enter__(self) -> TcpGate:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._open.is_set():
                self.refused += 1
                client.close()
                continue
            try:
                upstream = socket.create_connection((LOOPBACK, self.upstream_port), timeout=2.0)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                if not self._open.is_set():
                    # Shut while this one was being set up: it would survive the shut.
                    self.refused += 1
                    client.close()
                    upstream.close()
                    continue
                self._sockets.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            with self._lock:
                self._sockets.difference_update((src, dst))
