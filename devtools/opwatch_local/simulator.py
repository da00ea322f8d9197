"""An operations simulator: a small HTTP server that speaks google.longrunning REST.

opwatch polls ``GET https://{api}/{version}/{name}`` and expects an Operation. Locally the
functions get ``OPERATIONS_API_ENDPOINT=http://127.0.0.1:PORT`` instead, and this server answers:

``GET /{version}/{name}``
    The Operation JSON: ``name``, ``metadata`` (``@type``, ``createTime``, ``target``, ``verb``,
    ``statusMessage``, ``requestedCancellation``, ``apiVersion``, and ``endTime`` once finished),
    ``done``, and ``response`` or ``error`` once finished. Unknown names (and names created with
    ``appear_after`` before they appear) answer Google's error shape:
    ``{"error": {"code": 404, "message": ..., "status": "NOT_FOUND"}}``. An operation created
    with ``busy_for`` answers 409 for that long, as Gemini for Google Cloud does (:class:`Busy`).

``GET /{version}/{parent}/operations[?filter=…&pageSize=…&pageToken=…]``
    google.longrunning ListOperations (:meth:`Simulator.handle_list`): the visible operations
    directly under ``parent``, in creation order, as ``{"operations": [...], "nextPageToken":
    ...}`` (empty fields left out, as proto3 JSON does). ``filter`` may be ``done=false`` or
    ``done=true`` (AIP-160 spelling; anything else is 400, and a simulator made with
    ``list_filters=False`` refuses every filter, like an API that takes none); ``pageSize`` 0 or
    absent means :data:`DEFAULT_PAGE_SIZE`, above :data:`MAX_PAGE_SIZE` is coerced down,
    negative is 400 (AIP-158); a ``pageToken`` is opaque and only valid with the parent and
    filter of the call that gave it; ``returnPartialSuccess=true`` is 501 UNIMPLEMENTED, as the
    field's reference says unless an API documents otherwise.

Control API (JSON over HTTP, wrapped by :class:`SimulatorClient`):

``GET /_sim/health``             readiness probe, ``{"ok": true}``
``POST /_sim/operations``        create an operation (see :meth:`Simulator.create_operation`)
``POST /_sim/faults``            set faults for a name (see :meth:`Simulator.set_faults`)
``GET /_sim/stats?name=NAME``    polls of one name: count, times, statuses, auth presence
``GET /_sim/requests``           every operation GET seen, in order
``GET /_sim/lists``              every ListOperations call seen, in order
``POST /_sim/reset``             forget operations, faults and records
``GET /_sim/audit``              every audit entry written (delays of its copies; none: lost)

Audit entries (:mod:`opwatch_local.audit_log`): started with ``--audit-topic`` and
``--pubsub-host``, the simulator publishes an operation's first and last audit entry, the way a
Logging sink would, when it is created with ``audit`` options.

Fault kinds (:class:`FaultKind`): ``500``, ``503``, ``429-retry-after`` (``Retry-After`` header),
``429-retry-info`` (a ``google.rpc.RetryInfo`` detail), ``slow`` (sleep, bounded, then answer
normally), ``reset`` (TCP RST instead of an answer) and ``ok`` (no fault; a script placeholder).
Faults are given per operation name as a *script* (consumed one per GET, in order) and/or a
*probability* (applied after the script is used up, from a seeded RNG so runs repeat).

Every GET on an operation path is recorded -- including 404s and faulted ones -- with the time
from the injected clock and whether an ``Authorization`` header was present (its value is never
stored). That is what tests and benchmarks assert on: the number of polls and the gaps between them.

The decision "what does this GET get?" is the pure :meth:`Simulator.handle_get`, which returns a
:class:`Reply`; the HTTP layer only carries it out (sleeping or resetting when told). The clock and
the sleep function are injected, so unit tests are deterministic.

Run standalone: ``python -m opwatch_local.simulator --port 8090``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import dataclasses
import enum
import hashlib
import itertools
import json
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

from opwatch.wire import format_duration, rfc3339
from opwatch_local.audit_log import AuditOptions, AuditWriter

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_PORT",
    "MAX_PAGE_SIZE",
    "MAX_SLOW_SECONDS",
    "Busy",
    "Fault",
    "FaultKind",
    "GetRecord",
    "ListRecord",
    "OperationStats",
    "Reply",
    "Simulator",
    "SimulatorClient",
    "SimulatorError",
    "SimulatorServer",
    "main",
]

DEFAULT_PORT = 8090
# ListOperations page sizes (AIP-158 suggests a default and a maximum; Google's longrunning
# reference gives neither for these APIs).
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_DONE_FILTER = re.compile(r"^\s*done\s*=\s*(true|false)\s*$")
# A slow fault must never hang a test run: longer sleeps are refused when the fault is set.
MAX_SLOW_SECONDS = 60.0
DEFAULT_PARENT = "projects/opwatch-local/locations/us-central1"
DEFAULT_METADATA_TYPE = "type.googleapis.com/google.cloud.common.OperationMetadata"
DEFAULT_RESPONSE: dict[str, Any] = {"@type": "type.googleapis.com/google.protobuf.Empty"}

Clock = Callable[[], float]
Sleep = Callable[[float], None]


class SimulatorError(ValueError):
    """A control request the simulator refuses (answered as HTTP 400 by the server)."""


class Busy(enum.StrEnum):
    """The 409 answers of cloudaicompanion that the google provider retries, even on the
    operation GET (``google/services/gemini/gemini_operation.go``). Only the phrase the
    provider matches (``google/transport/error_retry_predicates.go``) is known; the rest of each
    message here is made up around it.
    """

    QUEUE = "unable-to-queue"  # IsRepositoryGroupQueueError
    UNREADY = "parent-not-ready"  # IsCodeRepositoryIndexUnreadyError

    def reply(self) -> Reply:
        message = {
            Busy.QUEUE: "Unable to queue the operation: other operations are enqueued on "
            "this resource.",
            Busy.UNREADY: "The request cannot be served: parent resource not in ready state.",
        }[self]
        return Reply(409, google_error(409, "ABORTED", message))


class FaultKind(enum.StrEnum):
    """What a faulted GET gets instead of (or before) the normal answer."""

    OK = "ok"
    INTERNAL = "500"
    UNAVAILABLE = "503"
    RETRY_AFTER = "429-retry-after"
    RETRY_INFO = "429-retry-info"
    SLOW = "slow"
    RESET = "reset"


@dataclass(frozen=True)
class Fault:
    """One fault.

    Attributes:
        kind: The fault kind.
        retry_after: Seconds for the ``Retry-After`` header (``429-retry-after``) or the
            ``RetryInfo.retryDelay`` (``429-retry-info``).
        seconds: Sleep before answering (``slow``), at most :data:`MAX_SLOW_SECONDS`.
    """

    kind: FaultKind
    retry_after: float = 1.0
    seconds: float = 0.0

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | str) -> Fault:
        """Build from ``"503"`` or ``{"kind": "slow", "seconds": 2}`` (SimulatorError if bad)."""
        spec: Mapping[str, Any] = {"kind": raw} if isinstance(raw, str) else raw
        try:
            kind = FaultKind(str(spec["kind"]))
            fault = cls(
                kind=kind,
                retry_after=float(spec.get("retry_after", 1.0)),
                seconds=float(spec.get("seconds", 0.0)),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise SimulatorError(f"invalid fault {raw!r}: {exc}") from exc
        if not 0 <= fault.seconds <= MAX_SLOW_SECONDS:
            raise SimulatorError(f"slow fault seconds must be within 0..{MAX_SLOW_SECONDS}")
        if fault.retry_after < 0:
            raise SimulatorError("retry_after must not be negative")
        return fault

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "retry_after": self.retry_after, "seconds": self.seconds}


@dataclass(frozen=True)
class Reply:
    """What the HTTP layer must do for one request.

    Attributes:
        status: HTTP status code.
        body: JSON body.
        headers: Extra response headers.
        delay: Seconds to sleep before answering (slow fault).
        reset: Reset the connection instead of answering.
    """

    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    reset: bool = False


@dataclass(frozen=True)
class GetRecord:
    """One GET on an operation path, as recorded."""

    name: str
    version: str
    time: float
    status: int
    fault: str | None
    authorization: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "time": self.time,
            "status": self.status,
            "fault": self.fault,
            "authorization": self.authorization,
        }


@dataclass(frozen=True)
class ListRecord:
    """One ListOperations call, as recorded."""

    parent: str
    filter: str
    page_size: int | None
    page_token: str
    time: float
    status: int
    returned: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class OperationStats:
    """The polls of one operation name.

    Attributes:
        name: The operation name.
        gets: Number of GETs (every outcome counts).
        times: Clock time of each GET, in order.
        statuses: HTTP status of each GET (0 for a reset connection).
        authorization: Whether each GET carried an ``Authorization`` header.
    """

    name: str
    gets: int
    times: tuple[float, ...]
    statuses: tuple[int, ...]
    authorization: tuple[bool, ...]

    @property
    def gaps(self) -> tuple[float, ...]:
        """Seconds between consecutive GETs."""
        return tuple(b - a for a, b in itertools.pairwise(self.times))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "gets": self.gets,
            "times": list(self.times),
            "statuses": list(self.statuses),
            "authorization": list(self.authorization),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> OperationStats:
        return cls(
            name=str(raw["name"]),
            gets=int(raw["gets"]),
            times=tuple(float(t) for t in raw["times"]),
            statuses=tuple(int(s) for s in raw["statuses"]),
            authorization=tuple(bool(a) for a in raw["authorization"]),
        )


@dataclass
class _Operation:
    name: str
    created: float
    duration: float
    appear_after: float
    response: dict[str, Any] | None
    error: dict[str, Any] | None
    metadata: dict[str, Any]
    busy_for: float = 0.0
    busy: Busy = Busy.QUEUE


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


def google_error(
    code: int, status: str, message: str, details: Sequence[Any] = ()
) -> dict[str, Any]:
    """Google's HTTP error body: ``{"error": {"code", "message", "status"[, "details"]}}``."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return {"error": error}


class Simulator:
    """Thread-safe state and the pure request logic of the simulator (no sockets here).

    Args:
        clock: Seconds since the epoch; drives lifecycle, timestamps and GET times.
        seed: Base seed for probabilistic faults (each name gets its own RNG from it).
        parent: Prefix of auto-generated operation names.
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
        #: Publishes audit entries of operations created with ``audit`` options (None: off).
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

    def create_operation(
        self,
        name: str | None = None,
        *,
        duration: float = 0.0,
        response: Mapping[str, Any] | None = None,
        error: Mapping[str, Any] | None = None,
        appear_after: float = 0.0,
        target: str | None = None,
        verb: str = "create",
        api_version: str = "v1",
        metadata: Mapping[str, Any] | None = None,
        audit: AuditOptions | Mapping[str, Any] | None = None,
        busy_for: float = 0.0,
        busy: Busy | str = Busy.QUEUE,
    ) -> dict[str, Any]:
        """Create an operation that finishes ``duration`` seconds from now.

        Args:
            name: Full resource name; auto-generated under ``parent`` when omitted.
            duration: Seconds until ``done`` (measured from creation).
            response: The ``response`` once done (default: an ``Empty``).
            error: A google.rpc.Status ``{"code", "message", "details"}`` once done; wins over
                ``response``.
            appear_after: Seconds from creation during which GET answers 404 (eventual consistency).
            target, verb, api_version: OperationMetadata fields.
            metadata: Extra metadata fields, merged over the defaults.
            audit: Publish its first audit entry now and its last when it ends (see
                :class:`~opwatch_local.audit_log.AuditOptions`); needs an audit writer.
            busy_for: Seconds from creation during which GET answers the 409 ``busy`` (once
                the operation is visible; it may end after the operation did).
            busy: Which 409 (:class:`Busy`).

        Returns:
            ``{"name": ..., "operation": <current Operation JSON or None if not yet visible>}``.

        Raises:
            SimulatorError: Negative times, a malformed error, or a name already in use.
        """
        if duration < 0 or appear_after < 0 or busy_for < 0:
            raise SimulatorError("duration, appear_after and busy_for must not be negative")
        try:
            busy = Busy(busy)
        except ValueError:
            kinds = ", ".join(kind.value for kind in Busy)
            raise SimulatorError(f"busy must be one of {kinds}, not {busy!r}") from None
        if audit is not None:
            if self.audit is None:
                raise SimulatorError("no audit topic: start the simulator with --audit-topic")
            try:
                audit = audit if isinstance(audit, AuditOptions) else AuditOptions.from_json(audit)
            except (TypeError, ValueError) as exc:
                raise SimulatorError(f"invalid audit options: {exc}") from exc
        if error is not None:
            if not isinstance(error.get("code"), int) or not isinstance(error.get("message"), str):
                raise SimulatorError("error needs an integer 'code' and a string 'message'")
            error = {"code": error["code"], "message": error["message"]} | (
                {"details": list(error["details"])} if error.get("details") else {}
            )
        with self._lock:
            now = self._clock()
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
                "target": target or name.rsplit("/operations/", 1)[0],
                "verb": verb,
                "statusMessage": "",
                "requestedCancellation": False,
                "apiVersion": api_version,
            }
            meta.update(metadata or {})
            self._operations[name] = _Operation(
                name=name,
                created=now,
                duration=duration,
                appear_after=appear_after,
                response=dict(response) if response is not None else None,
                error=dict(error) if error is not None else None,
                metadata=meta,
                busy_for=busy_for,
                busy=busy,
            )
            created = {"name": name, "operation": self._render(self._operations[name], now)}
        if isinstance(audit, AuditOptions) and self.audit is not None:
            self.audit.operation_started(
                name, audit, duration=duration, target=str(meta["target"]), error=error
            )
        return created

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
            script=[_as_fault(f) for f in script],
            probability=probability,
            fault=_as_fault(fault) if fault is not None else None,
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
        name = name.strip("/")
        with self._lock:
            mine = [r for r in self._records if r.name == name]
        return OperationStats(
            name=name,
            gets=len(mine),
            times=tuple(r.time for r in mine),
            statuses=tuple(r.status for r in mine),
            authorization=tuple(r.authorization for r in mine),
        )

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
            reply = self._fault_reply(fault) if fault else None
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
        """Answer ``GET /{version}/{parent}/operations?...`` (google.longrunning
        ListOperations; see the module docstring) and record it."""
        parsed = urllib.parse.urlsplit(path)
        _version, _, rest = parsed.path.strip("/").partition("/")
        parent = urllib.parse.unquote(rest).strip("/").removesuffix("/operations").strip("/")
        query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)

        def arg(key: str) -> str:
            return query.get(key, [""])[-1]

        text, token = arg("filter"), arg("pageToken")
        size: int | None = None
        with self._lock:
            now = self._clock()
            try:
                size = int(arg("pageSize") or 0)
                reply = self._list_reply(parent, text, size, token, arg("returnPartialSuccess"))
            except ValueError:
                reply = Reply(400, google_error(400, "INVALID_ARGUMENT", "pageSize: not an int"))
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

    def _list_reply(self, parent: str, text: str, size: int, token: str, partial: str) -> Reply:
        def invalid(message: str) -> Reply:
            return Reply(400, google_error(400, "INVALID_ARGUMENT", message))

        if partial.lower() == "true":
            return Reply(
                501, google_error(501, "UNIMPLEMENTED", "returnPartialSuccess is not supported")
            )
        done: bool | None = None
        if text:
            match = _DONE_FILTER.match(text) if self._list_filters else None
            if match is None:
                return invalid(f"unsupported filter {text!r}")
            done = match.group(1) == "true"
        if size < 0:
            return invalid("pageSize must not be negative")
        size = min(size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        query = hashlib.sha256(f"{parent}\n{text}".encode()).hexdigest()[:16]
        after = _read_page_token(token, query) if token else ""
        if after is None:
            return invalid("invalid pageToken: not from a call with this parent and filter")
        now = self._clock()
        names = list(self._operations)
        if after and after not in self._operations:
            return invalid("invalid pageToken: its position is gone")
        start = names.index(after) + 1 if after else 0
        found: list[dict[str, Any]] = []
        for name in names[start:]:
            if name.rsplit("/operations/", 1)[0] != parent:
                continue
            body = self._render(self._operations[name], now)
            if body is None or (done is not None and body["done"] is not done):
                continue
            if len(found) == size:
                return Reply(
                    200,
                    {"operations": found, "nextPageToken": _page_token(found[-1]["name"], query)},
                )
            found.append(body)
        return Reply(200, {"operations": found} if found else {})

    def _operation_reply(self, name: str, now: float) -> Reply:
        op = self._operations.get(name)
        body = self._render(op, now) if op else None
        if op is None or body is None:
            return Reply(404, google_error(404, "NOT_FOUND", f"Operation {name} not found."))
        if now < op.created + op.busy_for:
            return op.busy.reply()
        return Reply(200, body)

    @staticmethod
    def _fault_reply(fault: Fault) -> Reply | None:
        match fault.kind:
            case FaultKind.INTERNAL:
                return Reply(500, google_error(500, "INTERNAL", "Internal error encountered."))
            case FaultKind.UNAVAILABLE:
                return Reply(
                    503, google_error(503, "UNAVAILABLE", "The service is currently unavailable.")
                )
            case FaultKind.RETRY_AFTER:
                # Retry-After is whole seconds in HTTP; round up so clients never retry early.
                seconds = int(-(-fault.retry_after // 1))
                return Reply(
                    429,
                    google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded. Retry later."),
                    headers={"Retry-After": str(seconds)},
                )
            case FaultKind.RETRY_INFO:
                detail = {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": format_duration(fault.retry_after),
                }
                return Reply(
                    429,
                    google_error(
                        429, "RESOURCE_EXHAUSTED", "Quota exceeded. Retry later.", [detail]
                    ),
                )
            case FaultKind.RESET:
                return Reply(0, {}, reset=True)
            case FaultKind.SLOW | FaultKind.OK:
                return None

    @staticmethod
    def _render(op: _Operation, now: float) -> dict[str, Any] | None:
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


def _page_token(after: str, query: str) -> str:
    raw = json.dumps({"after": after, "query": query}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_page_token(token: str, query: str) -> str | None:
    """The name a page token continues after, or None if it is not one for ``query``."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    if not isinstance(value, dict) or value.get("query") != query:
        return None
    after = value.get("after")
    return after if isinstance(after, str) and after else None


def _as_fault(raw: Fault | Mapping[str, Any] | str) -> Fault:
    return raw if isinstance(raw, Fault) else Fault.from_json(raw)


# --- HTTP layer ----------------------------------------------------------------------------------


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
                self._send(404, google_error(404, "NOT_FOUND", f"Operation {name} not found."))
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
                    self._send(200, sim.create_operation(**_create_kwargs(body)))
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
            self._send(400, google_error(400, "INVALID_ARGUMENT", str(exc)))

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


def _create_kwargs(body: Mapping[str, Any]) -> dict[str, Any]:
    allowed = {
        "name",
        "duration",
        "response",
        "error",
        "appear_after",
        "target",
        "verb",
        "api_version",
        "metadata",
        "audit",
        "busy_for",
        "busy",
    }
    unknown = set(body) - allowed
    if unknown:
        raise SimulatorError(f"unknown fields {sorted(unknown)}")
    kwargs = dict(body)
    for key in ("duration", "appear_after", "busy_for"):
        if key in kwargs:
            kwargs[key] = float(kwargs[key])
    return kwargs


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    simulator: Simulator
    sleep: Sleep
    verbose: bool


_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


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
            target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
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
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- client --------------------------------------------------------------------------------------


class SimulatorClient:
    """A small client for the control API (urllib and json: no Google client libraries).

    Args:
        base_url: e.g. ``http://127.0.0.1:8090``.
        timeout: Seconds per request.
    """

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def health(self) -> bool:
        """True when the simulator answers its health probe."""
        try:
            return bool(self._call("GET", "/_sim/health").get("ok"))
        except OSError:
            return False

    def create_operation(
        self,
        name: str | None = None,
        *,
        duration: float = 0.0,
        response: Mapping[str, Any] | None = None,
        error: Mapping[str, Any] | None = None,
        appear_after: float = 0.0,
        target: str | None = None,
        verb: str = "create",
        api_version: str = "v1",
        metadata: Mapping[str, Any] | None = None,
        audit: AuditOptions | None = None,
        busy_for: float = 0.0,
        busy: Busy | str = Busy.QUEUE,
    ) -> str:
        """Create an operation (see :meth:`Simulator.create_operation`) and return its name."""
        body: dict[str, Any] = {
            "duration": duration,
            "appear_after": appear_after,
            "verb": verb,
            "api_version": api_version,
            "busy_for": busy_for,
            "busy": str(busy),
        }
        optional = {
            "name": name,
            "response": response,
            "error": error,
            "target": target,
            "metadata": metadata,
            "audit": audit.to_json() if audit is not None else None,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return str(self._call("POST", "/_sim/operations", body)["name"])

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
            "script": [_fault_json(f) for f in script],
            "probability": probability,
        }
        if fault is not None:
            body["fault"] = _fault_json(fault)
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
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.loads(exc.read() or b"{}")

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


def _fault_json(raw: Fault | Mapping[str, Any] | str) -> Mapping[str, Any] | str:
    return raw.to_json() if isinstance(raw, Fault) else raw


# --- command line --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM or Ctrl-C. Prints the URL once listening."""
    parser = argparse.ArgumentParser(
        prog="python -m opwatch_local.simulator", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--host", default="127.0.0.1", help="loopback only")
    parser.add_argument("--seed", type=int, default=0, help="seed for probabilistic faults")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    parser.add_argument("--audit-topic", help="publish audit entries to this topic (emulator)")
    parser.add_argument("--pubsub-host", help="the Pub/Sub emulator, host:port")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    audit = None
    if args.audit_topic:
        if not args.pubsub_host:
            print("error: --audit-topic needs --pubsub-host", file=sys.stderr)
            return 2
        audit = _audit_writer(args.pubsub_host, args.audit_topic)
    server = SimulatorServer(
        args.port,
        args.host,
        simulator=Simulator(seed=args.seed, audit=audit),
        verbose=args.verbose,
    )
    try:
        server.start()
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"operations simulator listening on {server.url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    server.stop()
    return 0


def _audit_writer(host: str, topic: str) -> AuditWriter:
    """A writer publishing to ``topic`` on the emulator at ``host`` (client made on first use)."""
    from opwatch_local.pubsub import pubsub_clients

    clients: list[Any] = []
    lock = threading.Lock()

    def publish(data: bytes) -> None:
        with lock:
            if not clients:
                clients.append(pubsub_clients(host)[0])
        clients[0].publish(topic, data).result(timeout=10)

    return AuditWriter(publish=publish, clock=time.time)


if __name__ == "__main__":
    sys.exit(main())
