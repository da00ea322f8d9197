"""Audit entries the way a Logging sink publishes them, for the simulator's operations.

When the simulator creates an operation with audit entries on, :class:`AuditWriter` publishes its
first entry (``operation.first``) now and its last (``operation.last``) when it ends: LogEntry JSON
with the real field names (``logName``, ``resource``, ``protoPayload`` of type ``AuditLog`` with
``serviceName``, ``methodName``, ``resourceName``, ``authenticationInfo.principalEmail``,
``response``, ``operation {id, producer, first|last}``, ``timestamp``, ``insertId``,
``severity``) onto the audit topic -- late, lost or twice, as :class:`AuditOptions` says, from a
seeded RNG.

Where the name goes (``name_in``): ``operation`` puts the full name in ``operation.id`` and a
nameless ``Operation`` in the response (Spanner, Cloud Functions 2nd gen); ``response`` puts a
bare id in ``operation.id`` and the full name in ``protoPayload.response.name``.

:func:`audit_entry` and :func:`delivery_plan` are pure; the writer only schedules and publishes
through injected callables.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from opwatch.wire import rfc3339

__all__ = [
    "DEFAULT_METHOD",
    "AuditDelivery",
    "AuditOptions",
    "AuditWriter",
    "audit_entry",
    "delivery_plan",
]

DEFAULT_API: Final = "cloudaicompanion.googleapis.com"
DEFAULT_METHOD: Final = (
    "google.cloud.cloudaicompanion.v1.CodeRepositoryIndexManagementService."
    "CreateCodeRepositoryIndex"
)
DEFAULT_CALLER: Final = "developer@example.com"
# A duplicate arrives this much after its original (Pub/Sub redelivers, it does not clone).
DUPLICATE_GAP: Final = 0.2
NameIn = Literal["operation", "response"]

Publish = Callable[[bytes], None]
Later = Callable[[float, Callable[[], None]], None]


@dataclass(frozen=True)
class AuditOptions:
    """How one operation's audit entries are written and delivered.

    Attributes:
        latency: seconds from the event to the entry's delivery on the topic.
        loss: probability that an entry is never delivered.
        duplicates: probability that an entry is delivered twice.
        duplicate_gap: seconds between the two copies of a duplicated entry (0: back to back,
            as a sink's retry can deliver them).
        name_in: where the operation's full name is (``operation`` or ``response``).
        api, method, caller: ``serviceName``, ``methodName``, ``principalEmail``.
        seed: seed of this operation's loss and duplication draws.
    """

    latency: float = 0.0
    loss: float = 0.0
    duplicates: float = 0.0
    duplicate_gap: float = DUPLICATE_GAP
    name_in: NameIn = "operation"
    api: str = DEFAULT_API
    method: str = DEFAULT_METHOD
    caller: str = DEFAULT_CALLER
    seed: int = 0

    def __post_init__(self) -> None:
        if self.latency < 0 or not 0 <= self.loss <= 1 or not 0 <= self.duplicates <= 1:
            raise ValueError("latency must be >= 0, loss and duplicates within 0..1")
        if self.duplicate_gap < 0:
            raise ValueError("duplicate_gap must be >= 0")
        if self.name_in not in ("operation", "response"):
            raise ValueError(f"name_in must be operation or response, not {self.name_in!r}")

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> AuditOptions:
        """From the control API's ``audit`` object (ValueError if malformed)."""
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown audit fields {sorted(unknown)}")
        values = dict(raw)
        for key in ("latency", "loss", "duplicates", "duplicate_gap"):
            if key in values:
                values[key] = float(values[key])
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AuditDelivery:
    """One entry as the simulator sent it (or lost it), for tests and the demo."""

    operation: str
    kind: Literal["first", "last"]
    delays: tuple[float, ...]
    time: float

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "delays": list(self.delays)}


def delivery_plan(options: AuditOptions, rng: random.Random) -> tuple[float, ...]:
    """Seconds after the event at which each copy of one entry is delivered (empty: lost)."""
    if rng.random() < options.loss:
        return ()
    if rng.random() < options.duplicates:
        return (options.latency, options.latency + options.duplicate_gap)
    return (options.latency,)


def audit_entry(
    *,
    name: str,
    kind: Literal["first", "last"],
    options: AuditOptions,
    at: float,
    target: str,
    error: Mapping[str, Any] | None = None,
    insert_id: str,
) -> dict[str, Any]:
    """The LogEntry JSON of one audit entry of operation ``name``, as a sink publishes it."""
    project = name.split("/")[1] if name.startswith("projects/") else "opwatch-local"
    bare_id = name.rsplit("/", 1)[-1]
    in_operation = options.name_in == "operation"
    response: dict[str, Any] = {"@type": "type.googleapis.com/google.longrunning.Operation"}
    if not in_operation:
        response["name"] = name
    if kind == "last":
        response["done"] = True
    payload: dict[str, Any] = {
        "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
        "status": dict(error) if (kind == "last" and error) else {},
        "authenticationInfo": {"principalEmail": options.caller},
        "requestMetadata": {"callerIp": "127.0.0.1", "callerSuppliedUserAgent": "opwatch-sim"},
        "serviceName": options.api,
        "methodName": options.method,
        "resourceName": target,
        "response": response,
    }
    moment = rfc3339(datetime.fromtimestamp(at, UTC))
    return {
        "protoPayload": payload,
        "insertId": insert_id,
        "resource": {
            "type": "audited_resource",
            "labels": {"service": options.api, "method": options.method, "project_id": project},
        },
        "timestamp": moment,
        "severity": "ERROR" if (kind == "last" and error) else "NOTICE",
        "logName": f"projects/{project}/logs/cloudaudit.googleapis.com%2Factivity",
        "operation": {
            "id": name if in_operation else bare_id,
            "producer": options.api,
            kind: True,
        },
        "receiveTimestamp": moment,
    }


def _timer(delay: float, action: Callable[[], None]) -> None:
    timer = threading.Timer(delay, action)
    timer.daemon = True
    timer.start()


@dataclass
class AuditWriter:
    """Publishes the audit entries of operations, late, lost or twice as each asks.

    Args:
        publish: sends one message's data to the audit topic (raises on failure: logged, the
            entry is then lost, like an entry a sink failed to route).
        clock: seconds since the epoch.
        later: runs an action after a delay (default: a daemon timer).
    """

    publish: Publish
    clock: Callable[[], float]
    later: Later = _timer
    deliveries: list[AuditDelivery] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _count: int = 0

    def operation_started(
        self,
        name: str,
        options: AuditOptions,
        *,
        duration: float,
        target: str,
        error: Mapping[str, Any] | None = None,
    ) -> None:
        """Write the first entry now and the last one when the operation ends."""
        rng = random.Random(f"{options.seed}:{name}")
        now = self.clock()
        self._send(name, "first", options, rng, now, target, None)
        self.later(
            duration, lambda: self._send(name, "last", options, rng, now + duration, target, error)
        )

    def _send(
        self,
        name: str,
        kind: Literal["first", "last"],
        options: AuditOptions,
        rng: random.Random,
        at: float,
        target: str,
        error: Mapping[str, Any] | None,
    ) -> None:
        with self._lock:
            self._count += 1
            insert_id = f"sim{self._count:08d}"
            delays = delivery_plan(options, rng)
            self.deliveries.append(AuditDelivery(name, kind, delays, at))
        entry = audit_entry(
            name=name,
            kind=kind,
            options=options,
            at=at,
            target=target,
            error=error,
            insert_id=insert_id,
        )
        data = json.dumps(entry).encode()
        for delay in delays:
            self.later(delay, lambda: self._publish(data, name))

    def _publish(self, data: bytes, name: str) -> None:
        try:
            self.publish(data)
        except Exception as exc:  # a lost entry, as when a sink fails to route one
            with self._lock:
                self.failures.append(f"{name}: {type(exc).__name__}: {exc}")
