"""The answers the simulator gives, as values: a :class:`Reply` the HTTP layer carries out, and
the bodies Google's APIs send (``{"error": {"code", "message", "status"[, "details"]}}``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opwatch.wire import format_duration
from opwatch_local.simulator.spec import Busy, Fault, FaultKind

__all__ = ["Reply", "busy_reply", "fault_reply", "google_error", "invalid", "not_found"]


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


def google_error(
    code: int, status: str, message: str, details: Sequence[Any] = ()
) -> dict[str, Any]:
    """Google's HTTP error body: ``{"error": {"code", "message", "status"[, "details"]}}``."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return {"error": error}


def not_found(name: str) -> Reply:
    return Reply(404, google_error(404, "NOT_FOUND", f"Operation {name} not found."))


def invalid(message: str) -> Reply:
    return Reply(400, google_error(400, "INVALID_ARGUMENT", message))


# Only the phrase the google provider matches (google/transport/error_retry_predicates.go) is
# known; the rest of each message is made up around it.
_BUSY_MESSAGES = {
    Busy.QUEUE: "Unable to queue the operation: other operations are enqueued on this resource.",
    Busy.UNREADY: "The request cannot be served: parent resource not in ready state.",
}


def busy_reply(busy: Busy) -> Reply:
    """The 409 ``busy`` answers while the operation is busy."""
    return Reply(409, google_error(409, "ABORTED", _BUSY_MESSAGES[busy]))


def fault_reply(fault: Fault) -> Reply | None:
    """What ``fault`` answers instead of the operation (None: the operation's answer, for
    ``ok``, and for ``slow`` after its delay)."""
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
                google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded. Retry later.", [detail]),
            )
        case FaultKind.RESET:
            return Reply(0, {}, reset=True)
        case FaultKind.SLOW | FaultKind.OK:
            return None
