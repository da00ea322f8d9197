"""google.rpc.Status from whatever an API answered, and the retry hints inside it.

Google front ends answer errors as ``{"error": {"code": 404, "message": ..., "status":
"NOT_FOUND", "details": [...]}}``; some servers answer a bare Status ``{"code": 5, "message":
...}``; proxies answer HTML. All become a Status JSON ``{"code", "message", "details"}`` with a
gRPC code, keeping the server's message and details untouched. Pure functions, no I/O.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import Any, Final, TypeGuard

from google.rpc import code_pb2

from opwatch.wire import duration_seconds

RETRY_INFO_TYPE: Final = "type.googleapis.com/google.rpc.RetryInfo"
ERROR_INFO_TYPE: Final = "type.googleapis.com/google.rpc.ErrorInfo"
MAX_MESSAGE_CHARS: Final = 2000
# The "HTTP Mapping" notes of google/rpc/code.proto, one code per status (the first listed).
# google-api-core's HTTP exception classes leave 400/401/403/429 without a gRPC code, so the
# table is kept here.
HTTP_TO_GRPC: Final = MappingProxyType(
    {
        400: code_pb2.INVALID_ARGUMENT,
        401: code_pb2.UNAUTHENTICATED,
        403: code_pb2.PERMISSION_DENIED,
        404: code_pb2.NOT_FOUND,
        409: code_pb2.ABORTED,
        429: code_pb2.RESOURCE_EXHAUSTED,
        499: code_pb2.CANCELLED,
        500: code_pb2.INTERNAL,
        501: code_pb2.UNIMPLEMENTED,
        503: code_pb2.UNAVAILABLE,
        504: code_pb2.DEADLINE_EXCEEDED,
    }
)

Status = dict[str, Any]


def make_status(code: int, message: str, details: list[Any] | None = None) -> Status:
    """A google.rpc.Status in its JSON form."""
    return {"code": code, "message": message, "details": list(details or [])}


def grpc_code_for_http(http_status: int) -> int:
    """The gRPC code that google/rpc/code.proto maps to an HTTP status (UNKNOWN if none)."""
    return int(HTTP_TO_GRPC.get(http_status, code_pb2.UNKNOWN))


def status_from_http_error(http_status: int, body: bytes, reason: str = "") -> Status:
    """Read an error response of any of the shapes above into a Status."""
    payload: Any = None
    with contextlib.suppress(UnicodeDecodeError, ValueError, RecursionError):
        payload = json.loads(body.decode("utf-8"))
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        error = payload["error"]
        code = _code_from_name(error.get("status"), fallback=grpc_code_for_http(http_status))
        return _status(code, error.get("message"), error.get("details"), http_status, reason)
    if isinstance(payload, dict) and _is_grpc_code(payload.get("code")):
        return _status(
            payload["code"], payload.get("message"), payload.get("details"), http_status, reason
        )
    text = body.decode("utf-8", "replace").strip()[:200]
    message = f"HTTP {http_status} {reason}".strip() + (f": {text}" if text else "")
    return make_status(grpc_code_for_http(http_status), message)


def normalize_status(value: object) -> Status:
    """An Operation's ``error`` field as a well-formed Status, keeping what the server sent."""
    if not isinstance(value, dict):
        return make_status(
            code_pb2.UNKNOWN, f"the operation failed with a malformed error: {value!r:.200}"
        )
    code = value.get("code")
    return _status(
        code if _is_grpc_code(code) else code_pb2.UNKNOWN,
        value.get("message"),
        value.get("details"),
    )


def retry_info_delay(status: Status) -> float | None:
    """Seconds asked for by a google.rpc.RetryInfo in the Status details, if any."""
    for detail in status.get("details") or []:
        if isinstance(detail, dict) and detail.get("@type") == RETRY_INFO_TYPE:
            delay = detail.get("retryDelay")
            seconds = duration_seconds(delay)
            if seconds is not None:
                return seconds
    return None


def retry_after_delay(header: str | None, now: datetime) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta-seconds or an HTTP date), if any."""
    if not header:
        return None
    text = header.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


def error_reasons(status: Status) -> set[str]:
    """The ``reason`` of every google.rpc.ErrorInfo in the Status details."""
    return {
        str(detail.get("reason"))
        for detail in status.get("details") or []
        if isinstance(detail, dict) and detail.get("@type") == ERROR_INFO_TYPE
    }


def code_name(code: int) -> str:
    """``NOT_FOUND`` for 5, and so on."""
    try:
        return str(code_pb2.Code.Name(code))
    except ValueError:
        return str(code)


def _status(
    code: int, message: object, details: object, http_status: int = 0, reason: str = ""
) -> Status:
    if not isinstance(message, str) or not message:
        message = f"HTTP {http_status} {reason}".strip() if http_status else code_name(code)
    return make_status(
        code, message[:MAX_MESSAGE_CHARS], details if isinstance(details, list) else []
    )


def _code_from_name(name: object, *, fallback: int) -> int:
    if isinstance(name, str):
        try:
            return int(code_pb2.Code.Value(name))
        except ValueError:
            pass
    return fallback


def _is_grpc_code(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 16
