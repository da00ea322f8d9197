"""Supervision of the local stack's child processes.

Every child runs in its own process group (``start_new_session=True``) and is stopped by signalling
the whole group: the gcloud wrapper of the Pub/Sub emulator, for one, leaves its Java child
listening if only the wrapper is killed. Each child logs to ``{run_dir}/{name}.log``.

Readiness is a condition polled with a bounded timeout (an HTTP answer, a TCP connect), never a
fixed sleep. If the child exits first or the timeout passes, :class:`ReadinessError` carries the
tail of its log, so the cause is in the error message, not in a file to go looking for.

Ports are checked before anything starts: a taken port raises :class:`PortInUseError` naming the
port and who wanted it, instead of a child that fails later or, worse, shares the port.

Exceptions::

    ProcessError             base: something about a child process went wrong
    ├── PortInUseError       a port we need is already taken
    └── ReadinessError       a child exited or did not become ready in time (log tail inside)

Signals: children in their own session do not get the terminal's Ctrl-C, so the owner must stop
them. :class:`Supervisor` stops everything on context exit; :func:`sigterm_as_exit` turns SIGTERM
into ``SystemExit`` in the main thread so ``with`` blocks unwind on SIGTERM as they do on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import os
import signal
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType

__all__ = [
    "Condition",
    "ManagedProcess",
    "PortInUseError",
    "ProcessError",
    "ProcessSpec",
    "ReadinessError",
    "Supervisor",
    "ensure_ports_free",
    "free_port",
    "group_pids",
    "http_ready",
    "listening_sockets",
    "port_is_free",
    "sigterm_as_exit",
    "tcp_ready",
    "wait_until",
]

Condition = Callable[[], bool]
LOOPBACK = "127.0.0.1"


class ProcessError(RuntimeError):
    """Something about a supervised child process went wrong."""


class PortInUseError(ProcessError):
    """A port the stack needs is already taken."""

    def __init__(self, port: int, owner: str) -> None:
        super().__init__(
            f"port {port} (for {owner}) is already in use on {LOOPBACK}; stop whatever holds it "
            f"(e.g. `ss -ltnp 'sport = :{port}'`) or choose another port"
        )
        self.port = port
        self.owner = owner


class ReadinessError(ProcessError):
    """A child exited before it was ready, or was not ready within its timeout."""


# --- conditions ----------------------------------------------------------------------------------


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True if nothing listens on ``host:port``.

    Tries to bind it with SO_REUSEADDR, as servers do: connections of a stopped server lingering in
    TIME_WAIT do not count (the server could bind anyway), a listening socket does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    # A listener on [::] (dual stack) also blocks us, so check the IPv4 connect path too.
    return not tcp_ready(port, host)()


def ensure_ports_free(ports: Iterable[tuple[str, int]]) -> None:
    """Raise :class:`PortInUseError` for the first taken port of ``(owner, port)`` pairs."""
    for owner, port in ports:
        if not port_is_free(port):
            raise PortInUseError(port, owner)


def free_port() -> int:
    """A port that was free a moment ago (for tests: there is a small race by nature)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def tcp_ready(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> Condition:
    """Condition: a TCP connect to ``host:port`` succeeds."""

    def check() -> bool:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True
        except OSError:
            return False

    return check


def http_ready(
    url: str,
    *,
    status: int | None = 200,
    body_contains: str | None = None,
    timeout: float = 1.0,
) -> Condition:
    """Condition: ``GET url`` answers.

    Args:
        url: An ``http://`` URL on loopback.
        status: Required status; ``None`` accepts any HTTP answer (the server is up, even if the
            path is not meant to be fetched).
        body_contains: Text the body must contain.
        timeout: Seconds per attempt.
    """
    parts = urllib.parse.urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query

    def check() -> bool:
        conn = http.client.HTTPConnection(parts.hostname or LOOPBACK, parts.port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            text = resp.read().decode(errors="replace")
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()
        if status is not None and resp.status != status:
            return False
        return body_contains is None or body_contains in text

    return check


def wait_until(
    condition: Condition,
    timeout: float,
    *,
    interval: float = 0.05,
    describe: str = "condition",
    abort: Callable[[], str | None] | None = None,
) -> float:
    """Poll ``condition`` until true; return the seconds it took.

    Args:
        condition: Checked first immediately, then every ``interval`` seconds.
        timeout: Upper bound in seconds.
        describe: Used in the error message.
        abort: Checked before each poll; a non-None return is raised at once as the reason.

    Raises:
        TimeoutError: Not true within ``timeout``.
        ReadinessError: ``abort`` returned a reason.
    """
    start = time.monotonic()
    deadline = start + timeout
    while True:
        if abort is not None and (reason := abort()) is not None:
            raise ReadinessError(reason)
        if condition():
            return time.monotonic() - start
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{describe} not true within {timeout:g} s")
        time.sleep(interval)


# --- process groups ------------------------------------------------------------------------------


def group_pids(pgid: int) -> set[int]:
    """Live (non-zombie) pids in process group ``pgid``, from /proc.

    Zombies are left out: a reparented child that died but was not reaped yet (if PID 1 does not
    reap) holds no port and runs no code.
    """
    pids: set[int] = set()
    proc = Path("/proc")
    if not proc.is_dir():  # pragma: no cover - not Linux: fall back to "is the group there?"
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, 0)
            pids.add(pgid)
        return pids
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command (which may contain spaces) start after the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state not in {"Z", "X"}:
            pids.add(int(entry.name))
    return pids


def listening_sockets(pids: Iterable[int]) -> set[tuple[str, int]]:
    """``(address, port)`` of every TCP socket in LISTEN state owned by ``pids`` (Linux /proc).

    Lets a test prove that a process -- including ports it opens on its own, like the Java
    emulator's extra ones -- listens on loopback only. IPv4-mapped IPv6 addresses are reported as
    written, e.g. ``::ffff:127.0.0.1``.
    """
    inodes: set[str] = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        with contextlib.suppress(OSError):
            for fd in fd_dir.iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    found: set[tuple[str, int]] = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state != "0A" or inode not in inodes:  # 0A = LISTEN
                    continue
                hex_addr, hex_port = local.split(":")
                # The kernel prints each 32-bit word in host (little-endian) order.
                raw = b"".join(
                    bytes.fromhex(hex_addr[i : i + 8])[::-1] for i in range(0, len(hex_addr), 8)
                )
                found.add((socket.inet_ntop(family, raw), int(hex_port, 16)))
    return found


@dataclass(frozen=True)
class ProcessSpec:
    """How to start one child and know it is ready.

    Attributes:
        name: Short name, used for the log file and in messages (e.g. ``pubsub``).
        argv: Command and arguments.
        ready: Condition that is true once the child serves.
        ready_timeout: Seconds to wait for ``ready``.
        env: Full environment of the child (``None``: inherit ours).
        cwd: Working directory.
        ports: Ports the child will bind, checked free before start.
        stop_timeout: Seconds to wait after SIGTERM before SIGKILL.
    """

    name: str
    argv: Sequence[str]
    ready: Condition
    ready_timeout: float = 30.0
    env: Mapping[str, str] | None = None
    cwd: str | os.PathLike[str] | None = None
    ports: Sequence[int] = field(default_factory=tuple)
    stop_timeout: float = 5.0


class ManagedProcess:
    """A started child: its own process group, a log file, readiness, stop by group."""

    def __init__(self, spec: ProcessSpec, log_path: Path) -> None:
        self.spec = spec
        self.log_path = log_path
        self._log = log_path.open("ab")
        try:
            self.popen = subprocess.Popen(
                list(spec.argv),
                env=dict(spec.env) if spec.env is not None else None,
                cwd=spec.cwd,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError:
            self._log.close()
            raise
        self.started = time.monotonic()
        self.ready_after: float | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int:
        """Pid of the leader; also the process group id (new session)."""
        return self.popen.pid

    def pids(self) -> set[int]:
        """Every live pid in the child's process group."""
        return group_pids(self.pid)

    def alive(self) -> bool:
        """True while the leader has not exited."""
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the child's log."""
        try:
            text = self.log_path.read_bytes()[-16384:].decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self) -> float:
        """Wait for the spec's condition; return seconds since start.

        Raises:
            ReadinessError: The child exited first, or the timeout passed (log tail included).
        """
        spec = self.spec

        def exited() -> str | None:
            code = self.popen.poll()
            if code is None:
                return None
            return self._failure(f"exited with code {code} before it was ready")

        remaining = max(0.0, spec.ready_timeout - (time.monotonic() - self.started))
        try:
            wait_until(spec.ready, remaining, describe=f"{spec.name} ready", abort=exited)
        except TimeoutError:
            raise ReadinessError(
                self._failure(f"not ready within {spec.ready_timeout:g} s")
            ) from None
        self.ready_after = time.monotonic() - self.started
        return self.ready_after

    def _failure(self, what: str) -> str:
        tail = self.log_tail() or "(empty)"
        return (
            f"{self.name} ({' '.join(self.spec.argv)}) {what}. Log {self.log_path}, tail:\n{tail}"
        )

    def terminate(self) -> None:
        """SIGTERM the group, without waiting (:meth:`stop` waits)."""
        if not self._group_gone():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM the group, wait (bounded), then SIGKILL it. Idempotent.

        Returns:
            The leader's exit code (None if it could not be reaped).
        """
        timeout = self.spec.stop_timeout if timeout is None else timeout
        try:
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
                if not self._group_gone():
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.pid, sig)
                with contextlib.suppress(TimeoutError):
                    wait_until(self._group_gone, wait, describe=f"{self.name} stopped")
                    break
            return self.popen.poll()
        finally:
            self._log.close()

    def _group_gone(self) -> bool:
        # poll() also reaps the leader, so it does not linger as a zombie of ours; checking it
        # first means a leader that dies between the two checks is not left unreaped.
        return self.popen.poll() is not None and not self.pids()


class Supervisor:
    """Starts children, waits for them, and stops all of them together on exit.

    Args:
        run_dir: Directory for the log files (created).

    Use as a context manager; :meth:`stop_all` is also safe to call directly and more than once.
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.processes: list[ManagedProcess] = []
        #: Seconds each stop took, by name (SIGTERM to group gone).
        self.stop_times: dict[str, float] = {}

    def spawn(self, spec: ProcessSpec) -> ManagedProcess:
        """Start ``spec`` without waiting for readiness (so several can start in parallel).

        Raises:
            PortInUseError: One of ``spec.ports`` is taken.
        """
        ensure_ports_free([(spec.name, port) for port in spec.ports])
        proc = ManagedProcess(spec, self.run_dir / f"{spec.name}.log")
        self.processes.append(proc)
        return proc

    def wait_ready(self, procs: Sequence[ManagedProcess] | None = None) -> dict[str, float]:
        """Wait for each process (all of them by default); return ``{name: seconds to ready}``.

        The timeouts run concurrently from each process's start, so waiting in turn costs no
        more than the slowest child.
        """
        return {p.name: p.wait_ready() for p in (self.processes if procs is None else procs)}

    def start(self, spec: ProcessSpec) -> ManagedProcess:
        """Spawn and wait for readiness; on failure the child is stopped before raising."""
        proc = self.spawn(spec)
        try:
            proc.wait_ready()
        except ProcessError:
            proc.stop()
            self.processes.remove(proc)
            raise
        return proc

    def stop_all(self) -> None:
        """Stop every child: SIGTERM to every group at once (newest first), then each is waited
        for (and killed if it outstays its stop timeout) in the same order. The stop takes the
        slowest child's time, not the sum of all (~0.8 s instead of ~3 s for the local stack).
        Errors in one stop do not keep the others running.

        :attr:`stop_times` then holds, per child, the seconds from that SIGTERM until its group
        was seen gone.
        """
        errors: list[BaseException] = []
        began = time.monotonic()
        for proc in reversed(self.processes):
            try:
                proc.terminate()
            except Exception as exc:  # keep stopping the rest; report at the end
                errors.append(exc)
        while self.processes:
            proc = self.processes.pop()
            try:
                proc.stop()
                self.stop_times[proc.name] = time.monotonic() - began
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise ProcessError(f"errors while stopping: {errors}")

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """While active, SIGTERM raises ``SystemExit(143)`` in the main thread.

    So ``with LocalStack(...)`` unwinds and stops its children on SIGTERM exactly as on Ctrl-C
    (``KeyboardInterrupt``). Only call from the main thread; the previous handler is restored.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
