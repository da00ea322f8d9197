"""What a caller asks the simulator for: an operation (:class:`OperationSpec`) and its faults.

These are plain values with a JSON form. The model takes them, the server reads them from a
request body and the client writes them into one, so each parameter is declared here only.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

from opwatch_local.audit_log import AuditOptions

__all__ = [
    "MAX_SLOW_SECONDS",
    "Busy",
    "Fault",
    "FaultKind",
    "OperationSpec",
    "SimulatorError",
    "with_fields_of",
]

# A slow fault must never hang a test run: longer sleeps are refused when the fault is set.
MAX_SLOW_SECONDS = 60.0


class SimulatorError(ValueError):
    """A control request the simulator refuses (answered as HTTP 400 by the server)."""


class Busy(enum.StrEnum):
    """The 409 answers of cloudaicompanion that the google provider retries, even on the
    operation GET (``google/services/gemini/gemini_operation.go``).
    """

    QUEUE = "unable-to-queue"  # IsRepositoryGroupQueueError
    UNREADY = "parent-not-ready"  # IsCodeRepositoryIndexUnreadyError


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


def as_fault(raw: Fault | Mapping[str, Any] | str) -> Fault:
    """A fault from any of the forms the control API takes (SimulatorError if bad)."""
    return raw if isinstance(raw, Fault) else Fault.from_json(raw)


def fault_json(raw: Fault | Mapping[str, Any] | str) -> Mapping[str, Any] | str:
    """A fault in the form a request body carries."""
    return raw.to_json() if isinstance(raw, Fault) else raw


# Times are sent as numbers; JSON may carry them as strings or ints.
_SECONDS_FIELDS = ("duration", "appear_after", "busy_for")


@dataclass(frozen=True)
class OperationSpec:
    """One simulated operation: when it appears and ends, how it ends, what it answers meanwhile.

    Built unchecked (the client sends what it is given, so the server's refusal is the one the
    caller sees); :meth:`checked` validates it and puts each field in its one form.

    Attributes:
        name: Full resource name; auto-generated under the simulator's parent when omitted.
        duration: Seconds until ``done`` (measured from creation).
        response: The ``response`` once done (default: an ``Empty``).
        error: A google.rpc.Status ``{"code", "message", "details"}`` once done; wins over
            ``response``.
        appear_after: Seconds from creation during which GET answers 404 (eventual consistency).
        target, verb, api_version: OperationMetadata fields.
        metadata: Extra metadata fields, merged over the defaults.
        audit: Publish its first audit entry now and its last when it ends (see
            :class:`~opwatch_local.audit_log.AuditOptions`); needs a simulator with an audit
            writer.
        busy_for: Seconds from creation during which GET answers the 409 ``busy`` (once the
            operation is visible; it may end after the operation did).
        busy: Which 409 (:class:`Busy`).
    """

    name: str | None = None
    _: KW_ONLY
    duration: float = 0.0
    response: Mapping[str, Any] | None = None
    error: Mapping[str, Any] | None = None
    appear_after: float = 0.0
    target: str | None = None
    verb: str = "create"
    api_version: str = "v1"
    metadata: Mapping[str, Any] | None = None
    audit: AuditOptions | Mapping[str, Any] | None = None
    busy_for: float = 0.0
    busy: Busy | str = Busy.QUEUE

    def checked(self) -> OperationSpec:
        """This spec validated, with ``busy`` a :class:`Busy`, ``audit`` an
        :class:`AuditOptions` and ``error`` reduced to code, message and details.

        Raises:
            SimulatorError: Negative times, an unknown busy kind, bad audit options or a
                malformed error.
        """
        if self.duration < 0 or self.appear_after < 0 or self.busy_for < 0:
            raise SimulatorError("duration, appear_after and busy_for must not be negative")
        try:
            busy = Busy(self.busy)
        except ValueError:
            kinds = ", ".join(kind.value for kind in Busy)
            raise SimulatorError(f"busy must be one of {kinds}, not {self.busy!r}") from None
        audit = self.audit
        if audit is not None and not isinstance(audit, AuditOptions):
            try:
                audit = AuditOptions.from_json(audit)
            except (TypeError, ValueError) as exc:
                raise SimulatorError(f"invalid audit options: {exc}") from exc
        error = self.error
        if error is not None:
            if not isinstance(error.get("code"), int) or not isinstance(error.get("message"), str):
                raise SimulatorError("error needs an integer 'code' and a string 'message'")
            error = {"code": error["code"], "message": error["message"]} | (
                {"details": list(error["details"])} if error.get("details") else {}
            )
        return dataclasses.replace(self, busy=busy, audit=audit, error=error)

    def to_json(self) -> dict[str, Any]:
        """The control API's body for ``POST /_sim/operations`` (unset optional fields left out)."""
        audit = self.audit.to_json() if isinstance(self.audit, AuditOptions) else self.audit
        body: dict[str, Any] = {
            "duration": self.duration,
            "appear_after": self.appear_after,
            "verb": self.verb,
            "api_version": self.api_version,
            "busy_for": self.busy_for,
            "busy": str(self.busy),
        }
        optional = {
            "name": self.name,
            "response": self.response,
            "error": self.error,
            "target": self.target,
            "metadata": self.metadata,
            "audit": audit,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return body

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> OperationSpec:
        """Read a ``POST /_sim/operations`` body (unchecked: see :meth:`checked`).

        Raises:
            SimulatorError: A field the spec does not have.
            ValueError: A time that is not a number.
        """
        unknown = set(body) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise SimulatorError(f"unknown fields {sorted(unknown)}")
        values = dict(body)
        for key in _SECONDS_FIELDS:
            if key in values:
                values[key] = float(values[key])
        return cls(**values)


P = ParamSpec("P")
Owner = TypeVar("Owner")
Result = TypeVar("Result")


def with_fields_of(
    make: Callable[P, OperationSpec],
) -> Callable[[Callable[[Owner, OperationSpec], Result]], Callable[Concatenate[Owner, P], Result]]:
    """Turn ``create(self, spec)`` into a method that takes the spec's fields as its arguments.

    ``@with_fields_of(OperationSpec)`` lets callers write ``create_operation(name, duration=5)``
    while the fields, their defaults and their types stay declared in the spec alone.
    """

    def decorate(
        create: Callable[[Owner, OperationSpec], Result],
    ) -> Callable[Concatenate[Owner, P], Result]:
        def with_fields(self: Owner, /, *args: P.args, **kwargs: P.kwargs) -> Result:
            return create(self, make(*args, **kwargs))

        with_fields.__doc__ = create.__doc__
        return with_fields

    return decorate
