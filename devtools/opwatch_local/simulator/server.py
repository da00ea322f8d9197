"""The simulator over HTTP, on loopback: the data plane opwatch polls and the ``/_sim/`` control
API that :class:`~opwatch_local.simulator.client.SimulatorClient` speaks."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opwatch_local.simulator.model import Clock, Simulator
from opwatch_local.simulator.replies import google_error, invalid, not_found
from opwatch_local.simulator.spec import OperationSpec, SimulatorError

__all__ = ["DEFAULT_PORT", "SimulatorServer", "Sleep"]

DEFAULT_PORT = 8090
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# How often serve_forever looks for a shutdown request: stop() waits at most this long for it.
_POLL_INTERVAL = 0.02
_STOP_TIMEOUT = 5.0

Sleep = Callable[[float], None]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    simulator: Simulator
    sleep: Sleep
    verbose: bool


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive like a real front end, so clients that reuse connections see a reset fault too.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without TCP_NODELAY each keep-alive GET waits ~40 ms
    # for a delayed ACK, which capped the local stack near 20 checks/s.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith("/_sim/"):
            self._control("GET", url)
            return
        sim = self.server.simulator
        if url.path.rstrip("/").endswith("/operations"):
            reply = sim.handle_list(self.path)
        else:
            reply = sim.handle_get(self.path, authorization="Authorization" in self.headers)
        if reply.delay:
            self.server.sleep(reply.delay)
        if reply.reset:
            self._reset()
            return
        self._send(reply.status, reply.body, reply.headers)

    def do_POST(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if not url.path.startswith("/_sim/") and url.path.endswith(":cancel"):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))  # {} or nothing
            _version, _, name = url.path.strip("/").partition("/")
            name = urllib.parse.unquote(name.removesuffix(":cancel"))
            if self.server.simulator.cancel_operation(name):
                self._send(200, {})
            else:
                reply = not_found(name)
                self._send(reply.status, reply.body)
            return
        self._control("POST", url)

    def _control(self, method: str, url: urllib.parse.SplitResult) -> None:
        sim = self.server.simulator
        try:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body: dict[str, Any] = json.loads(raw) if raw else {}
            if not isinstance(body, dict):
                raise SimulatorError("body must be a JSON object")
            query = urllib.parse.parse_qs(url.query)
            match method, url.path:
                case "GET", "/_sim/health":
                    self._send(200, {"ok": True})
                case "POST", "/_sim/operations":
                    self._send(200, sim.create(OperationSpec.from_json(body)))
                case "POST", "/_sim/faults":
                    sim.set_faults(
                        str(body["name"]),
                        script=body.get("script", ()),
                        probability=float(body.get("probability", 0.0)),
                        fault=body.get("fault"),
                        seed=body.get("seed"),
                    )
                    self._send(200, {"ok": True})
                case "GET", "/_sim/stats":
                    self._send(200, sim.stats(query["name"][0]).to_json())
                case "GET", "/_sim/audit":
                    deliveries = sim.audit.deliveries if sim.audit else []
                    self._send(200, {"deliveries": [d.to_json() for d in deliveries]})
                case "GET", "/_sim/requests":
                    self._send(200, {"requests": [r.to_json() for r in sim.records()]})
                case "GET", "/_sim/lists":
                    self._send(200, {"lists": [r.to_json() for r in sim.lists()]})
                case "POST", "/_sim/reset":
                    sim.reset()
                    self._send(200, {"ok": True})
                case _:
                    self._send(404, google_error(404, "NOT_FOUND", f"no control route {url.path}"))
        except (SimulatorError, KeyError, TypeError, ValueError) as exc:
            reply = invalid(str(exc))
            self._send(reply.status, reply.body)

    def _send(
        self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _reset(self) -> None:
        # SO_LINGER 0 makes close() send RST: the client sees "connection reset by peer".
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()


class SimulatorServer:
    """The simulator served over HTTP from a background thread, on loopback only.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.

    Args:
        port: TCP port; 0 picks a free one (read :attr:`port` / :attr:`url` after start).
        host: Must be a loopback address.
        simulator: The state to serve (default: a new :class:`Simulator` with ``clock``).
        clock: Clock for a new simulator.
        sleep: How a slow fault waits (inject a recorder in unit tests).
        verbose: Log each request to stderr.

    Raises:
        ValueError: A non-loopback host.
    """

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        simulator: Simulator | None = None,
        clock: Clock = time.time,
        sleep: Sleep = time.sleep,
        verbose: bool = False,
    ) -> None:
        if host not in _LOOPBACK:
            raise ValueError(f"the simulator binds loopback only, not {host!r}")
        self.simulator = simulator or Simulator(clock=clock)
        self._host = host
        self._port = port
        self._sleep = sleep
        self._verbose = verbose
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        if self._httpd is None:
            return self._port
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8090`` -- the value for OPERATIONS_API_ENDPOINT."""
        return f"http://{self._host}:{self.port}"

    def start(self) -> SimulatorServer:
        """Bind and serve in a daemon thread.

        Raises:
            OSError: The port is taken (the message names it).
        """
        try:
            httpd = _Server((self._host, self._port), _Handler)
        except OSError as exc:
            msg = f"simulator cannot bind {self._host}:{self._port}: {exc}"
            raise OSError(exc.errno, msg) from exc
        httpd.simulator = self.simulator
        httpd.sleep = self._sleep
        httpd.verbose = self._verbose
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": _POLL_INTERVAL}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=_STOP_TIMEOUT)
            self._thread = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
