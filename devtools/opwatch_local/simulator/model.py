"""The operations simulator's state and request logic: pure, on an injected clock, no sockets.

:meth:`Simulator.handle_get` decides what one ``GET /{version}/{name}`` gets and
:meth:`Simulator.handle_list` what one ListOperations call gets, each as a
:class:`~opwatch_local.simulator.replies.Reply` that the HTTP layer only carries out (sleeping or
resetting when told). Every call is recorded with the clock's time, so tests are deterministic.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opwatch.wire import rfc3339
from opwatch_local.audit_log import AuditOptions, AuditWriter
from opwatch_local.simulator.listing import ListQuery, list_page
from opwatch_local.simulator.records import GetRecord, ListRecord, OperationStats
from opwatch_local.simulator.replies import (
    Reply,
    busy_reply,
    fault_reply,
    invalid,
    not_found,
)
from opwatch_local.simulator.spec import (
    Busy,
    Fault,
    FaultKind,
    OperationSpec,
    SimulatorError,
    as_fault,
    with_fields_of,
)

__all__ = ["DEFAULT_PARENT", "Clock", "Simulator"]

DEFAULT_PARENT = "projects/opwatch-local/locations/us-central1"
DEFAULT_METADATA_TYPE = "type.googleapis.com/google.cloud.common.OperationMetadata"
DEFAULT_RESPONSE: dict[str, Any] = {"@type": "type.googleapis.com/google.protobuf.Empty"}

Clock = Callable[[], float]


@dataclass
class _Operation:
    name: str
    created: float
    duration: float
    appear_after: float
    response: dict[str, Any] | None
    error: dict[str, Any] | None
    metadata: dict[str, Any]
    busy_for: float
    busy: Busy


@dataclass
class _FaultPlan:
    script: list[Fault]
    probability: float
    fault: Fault | None
    rng: random.Random

    def next(self) -> Fault | None:
        if self.script:
            return self.script.pop(0)
        if self.fault is not None and self.rng.random() < self.probability:
            return self.fault
        return None


def _rfc3339(epoch: float) -> str:
    return rfc3339(datetime.fromtimestamp(epoch, UTC))


class Simulator:
    """Thread-safe state and the pure request logic of the simulator (no sockets here).

    Args:
        clock: Seconds since the epoch; drives lifecycle, timestamps and GET times.
        seed: Base seed for probabilistic faults (each name gets its own RNG from it).
        parent: Prefix of auto-generated operation names.
        audit: Publishes audit entries of operations created with ``audit`` options (None: off).
        list_filters: Whether ListOperations takes ``done=...`` filters.
    """

    def __init__(
        self,
        clock: Clock = time.time,
        seed: int = 0,
        parent: str = DEFAULT_PARENT,
        audit: AuditWriter | None = None,
        list_filters: bool = True,
    ) -> None:
        self._clock = clock
        self._list_filters = list_filters
        self.audit = audit
        self._seed = seed
        self._parent = parent
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._operations: dict[str, _Operation] = {}
        self._faults: dict[str, _FaultPlan] = {}
        self._records: list[GetRecord] = []
        self._lists: list[ListRecord] = []

    # --- control ---------------------------------------------------------------------------------

    def create(self, spec: OperationSpec) -> dict[str, Any]:
        """Create the operation ``spec`` describes; it finishes ``spec.duration`` seconds from now.

        Returns:
            ``{"name": ..., "operation": <current Operation JSON or None if not yet visible>}``.

        Raises:
            SimulatorError: An invalid spec (see :meth:`OperationSpec.checked`), audit options
                on a simulator without an audit writer, or a name already in use.
        """
        spec = spec.checked()
        if spec.audit is not None and self.audit is None:
            raise SimulatorError("no audit topic: start the simulator with --audit-topic")
        with self._lock:
            now = self._clock()
            name = spec.name
            if name is None:
                name = f"{self._parent}/operations/op-{next(self._counter):04d}-{int(now * 1000)}"
            name = name.strip("/")
            if not name or name.startswith("_sim"):
                raise SimulatorError(f"invalid operation name {name!r}")
            if name in self._operations:
                raise SimulatorError(f"operation {name} already exists")
            meta: dict[str, Any] = {
                "@type": DEFAULT_METADATA_TYPE,
                "createTime": _rfc3339(now),
                "target": spec.target or name.rsplit("/operations/", 1)[0],
                "verb": spec.verb,
                "statusMessage": "",
                "requestedCancellation": False,
                "apiVersion": spec.api_version,
            }
            meta.update(spec.metadata or {})
            op = _Operation(
                name=name,
                created=now,
                duration=spec.duration,
                appear_after=spec.appear_after,
                response=dict(spec.response) if spec.response is not None else None,
                error=dict(spec.error) if spec.error is not None else None,
                metadata=meta,
                busy_for=spec.busy_for,
                busy=Busy(spec.busy),
            )
            self._operations[name] = op
            created = {"name": name, "operation": self._render(op, now)}
        if isinstance(spec.audit, AuditOptions) and self.audit is not None:
            self.audit.operation_started(
                name, spec.audit, duration=spec.duration, target=str(meta["target"]), error=op.error
            )
        return created

    @with_fields_of(OperationSpec)
    def create_operation(self, spec: OperationSpec) -> dict[str, Any]:
        """:meth:`create` with the spec's fields as arguments: ``create_operation(name,
        duration=30, error={...})``."""
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
        """Replace the faults for ``name`` (the name need not exist yet).

        Args:
            name: Operation name the faults apply to.
            script: Faults for the next GETs, one each, in order (``"ok"`` lets one through).
            probability: After the script, each GET gets ``fault`` with this probability.
            fault: The probabilistic fault.
            seed: RNG seed for this name (default: derived from the simulator seed and the name).

        Raises:
            SimulatorError: A malformed fault or probability.
        """
        if not 0.0 <= probability <= 1.0:
            raise SimulatorError("probability must be within 0..1")
        if probability > 0 and fault is None:
            raise SimulatorError("a probability needs a fault")
        plan = _FaultPlan(
            script=[as_fault(f) for f in script],
            probability=probability,
            fault=as_fault(fault) if fault is not None else None,
            rng=random.Random(seed if seed is not None else f"{self._seed}:{name}"),
        )
        with self._lock:
            self._faults[name.strip("/")] = plan

    def cancel_operation(self, name: str) -> bool:
        """``POST {name}:cancel``, as google.longrunning's CancelOperation: a pending operation
        ends now with error code 1 (CANCELLED); a finished one is left as it is.

        Returns:
            False if there is no such operation (the API answers 404).
        """
        name = name.strip("/")
        with self._lock:
            op = self._operations.get(name)
            if op is None:
                return False
            now = self._clock()
            if now < op.created + op.duration:
                op.duration = max(0.0, now - op.created)
                op.error = {"code": 1, "message": "Operation was cancelled."}
                op.response = None
            return True

    def stats(self, name: str) -> OperationStats:
        """The polls recorded for ``name`` (zero if never polled)."""
        return OperationStats.of(name.strip("/"), self.records())

    def records(self) -> list[GetRecord]:
        """Every operation GET seen, in arrival order."""
        with self._lock:
            return list(self._records)

    def lists(self) -> list[ListRecord]:
        """Every ListOperations call seen, in arrival order."""
        with self._lock:
            return list(self._lists)

    def reset(self) -> None:
        """Forget operations, faults and records."""
        with self._lock:
            self._operations.clear()
            self._faults.clear()
            self._records.clear()
            self._lists.clear()

    # --- the data plane --------------------------------------------------------------------------

    def handle_get(self, path: str, *, authorization: bool = False) -> Reply:
        """Decide the answer to ``GET {path}`` (``/{version}/{name}``) and record it.

        A fault, if one is due, decides first; a ``slow`` fault then lets the normal answer through
        after its delay. Every call is recorded, whatever the outcome.
        """
        parsed = urllib.parse.urlsplit(path)
        version, _, name = parsed.path.strip("/").partition("/")
        name = urllib.parse.unquote(name).strip("/")
        with self._lock:
            now = self._clock()
            plan = self._faults.get(name)
            fault = plan.next() if plan else None
            reply = fault_reply(fault) if fault else None
            if reply is None:
                reply = self._operation_reply(name, now)
                if fault is not None and fault.kind is FaultKind.SLOW:
                    reply = dataclasses.replace(reply, delay=fault.seconds)
            self._records.append(
                GetRecord(
                    name=name,
                    version=version,
                    time=now,
                    status=0 if reply.reset else reply.status,
                    fault=fault.kind.value if fault and fault.kind is not FaultKind.OK else None,
                    authorization=authorization,
                )
            )
        return reply

    def handle_list(self, path: str) -> Reply:
        """Answer ``GET /{version}/{parent}/operations?...`` (google.longrunning ListOperations,
        see :mod:`~opwatch_local.simulator.listing`) and record it."""
        parsed = urllib.parse.urlsplit(path)
        _version, _, rest = parsed.path.strip("/").partition("/")
        parent = urllib.parse.unquote(rest).strip("/").removesuffix("/operations").strip("/")
        args = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)

        def arg(key: str) -> str:
            return args.get(key, [""])[-1]

        text, token = arg("filter"), arg("pageToken")
        size: int | None = None
        with self._lock:
            now = self._clock()
            try:
                size = int(arg("pageSize") or 0)
            except ValueError:
                reply = invalid("pageSize: not an int")
            else:
                query = ListQuery(parent, text, size, token, arg("returnPartialSuccess"))
                reply = list_page(
                    query,
                    list(self._operations),
                    lambda name: self._render(self._operations[name], now),
                    filters=self._list_filters,
                )
            self._lists.append(
                ListRecord(
                    parent=parent,
                    filter=text,
                    page_size=size,
                    page_token=token,
                    time=now,
                    status=reply.status,
                    returned=len(reply.body.get("operations", ())),
                )
            )
        return reply

    def _operation_reply(self, name: str, now: float) -> Reply:
        op = self._operations.get(name)
        body = self._render(op, now) if op else None
        if op is None or body is None:
            return not_found(name)
        if now < op.created + op.busy_for:
            return busy_reply(op.busy)
        return Reply(200, body)

    @staticmethod
    def _render(op: _Operation, now: float) -> dict[str, Any] | None:
        """The Operation JSON at ``now`` (None while it is not visible yet)."""
        if now < op.created + op.appear_after:
            return None
        done = now >= op.created + op.duration
        meta = dict(op.metadata)
        body: dict[str, Any] = {"name": op.name, "metadata": meta, "done": done}
        if done:
            meta["endTime"] = _rfc3339(op.created + op.duration)
            if op.error is not None:
                body["error"] = op.error
            else:
                body["response"] = op.response if op.response is not None else DEFAULT_RESPONSE
        return body
