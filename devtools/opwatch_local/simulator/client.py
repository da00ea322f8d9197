"""A small client for the simulator's control API (urllib and json: no Google client libraries),
plus the two data-plane calls opwatch makes (GET an operation, list them) for tests."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from opwatch_local.simulator.records import OperationStats
from opwatch_local.simulator.spec import (
    Fault,
    OperationSpec,
    SimulatorError,
    fault_json,
    with_fields_of,
)

__all__ = ["SimulatorClient"]

DEFAULT_TIMEOUT = 10.0


class SimulatorClient:
    """The control API of a running simulator.

    Args:
        base_url: e.g. ``http://127.0.0.1:8090``.
        timeout: Seconds per request.
    """

    def __init__(self, base_url: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def health(self) -> bool:
        """True when the simulator answers its health probe."""
        try:
            return bool(self._call("GET", "/_sim/health").get("ok"))
        except OSError:
            return False

    def create(self, spec: OperationSpec) -> str:
        """Create the operation ``spec`` describes and return its name.

        Raises:
            SimulatorError: The simulator refused it (the spec is checked there, not here).
        """
        return str(self._call("POST", "/_sim/operations", spec.to_json())["name"])

    @with_fields_of(OperationSpec)
    def create_operation(self, spec: OperationSpec) -> str:
        """:meth:`create` with the spec's fields as arguments: ``create_operation(name,
        duration=30)``."""
        return self.create(spec)

    def set_faults(
        self,
        name: str,
        *,
        script: Sequence[Fault | Mapping[str, Any] | str] = (),
        probability: float = 0.0,
        fault: Fault | Mapping[str, Any] | str | None = None,
        seed: int | None = None,
    ) -> None:
        """Replace the faults for ``name`` (see :meth:`Simulator.set_faults`)."""
        body: dict[str, Any] = {
            "name": name,
            "script": [fault_json(f) for f in script],
            "probability": probability,
        }
        if fault is not None:
            body["fault"] = fault_json(fault)
        if seed is not None:
            body["seed"] = seed
        self._call("POST", "/_sim/faults", body)

    def stats(self, name: str) -> OperationStats:
        """GET count, times, statuses and Authorization presence for ``name``."""
        query = urllib.parse.urlencode({"name": name})
        return OperationStats.from_json(self._call("GET", f"/_sim/stats?{query}"))

    def requests(self) -> list[dict[str, Any]]:
        """Every operation GET the simulator saw, in order."""
        return list(self._call("GET", "/_sim/requests")["requests"])

    def reset(self) -> None:
        """Forget operations, faults and records."""
        self._call("POST", "/_sim/reset", {})

    def list_operations(
        self,
        parent: str,
        *,
        filter: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        version: str = "v1",
    ) -> tuple[int, dict[str, Any]]:
        """One ListOperations page, as an API client would ask; (HTTP status, JSON body)."""
        params = {"filter": filter, "pageSize": page_size, "pageToken": page_token}
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        url = f"{self.base_url}/{version}/{parent}/operations" + (f"?{query}" if query else "")
        return self._data_plane(urllib.request.Request(url, method="GET"))

    def lists(self) -> list[dict[str, Any]]:
        """Every ListOperations call the simulator saw, in order."""
        return list(self._call("GET", "/_sim/lists")["lists"])

    def audit_deliveries(self) -> list[dict[str, Any]]:
        """Every audit entry the simulator wrote: operation, kind, delays of its copies."""
        return list(self._call("GET", "/_sim/audit")["deliveries"])

    def get_operation(
        self, name: str, version: str = "v1", headers: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Poll like opwatch does; returns (HTTP status, JSON body). Counts as a GET."""
        req = urllib.request.Request(
            f"{self.base_url}/{version}/{name}", headers=dict(headers or {}), method="GET"
        )
        return self._data_plane(req)

    def _data_plane(self, req: urllib.request.Request) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) of a call opwatch would make: an error status is an answer."""
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.loads(exc.read() or b"{}")

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            with exc:
                detail = exc.read().decode(errors="replace")
            raise SimulatorError(f"{method} {path}: HTTP {exc.code}: {detail}") from None
