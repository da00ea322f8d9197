"""Cloud Audit Log entries of long-running operations, as a Logging sink publishes them.

Only entries of the Cloud Audit Logs are read: ``logName`` must be exactly one of their names
(:data:`AUDIT_LOG_NAME`). Anyone allowed ``logging.logEntries.create`` can write an
AuditLog-shaped entry to a log of their own, and the sink's ``logName:"cloudaudit.googleapis.com"``
filter (a substring match) lets such a log through; it must not start watches.

Google APIs write, for a long-running method, usually two audit entries: one when the operation
starts (``operation.first: true``) and one when it ends (``operation.last: true``). A Logging sink
to Pub/Sub publishes each ``LogEntry`` as JSON message data. :func:`parse_entry` reads one into an
:class:`AuditEntry`, or says in an :class:`Ignored` why it is not one opwatch can act on. It never
raises: whatever arrives on the audit topic is acknowledged, so nothing is redelivered forever.

Where the operation's name is, in real entries (samples in ``tests/data/audit-*.json``):

- ``operation.id`` holds the full name for most APIs (Spanner, Cloud Functions v2, Vertex AI);
- ``protoPayload.response.name`` holds it when the response is the ``Operation`` itself;
- GKE puts a bare id (``operation-1594396544137-1d558f93``) in both, and the full path only in
  ``protoPayload.response.selfLink``
  (``https://container.googleapis.com/v1alpha1/projects/N/zones/Z/operations/ID``), which is used
  when its host is the entry's own service.

The first candidate that is a valid operation name (the watch request's own rule) wins. The entry
is a hint, never the outcome: opwatch always GETs the operation itself.

An entry over Logging's size limit is split into parts (``LogEntry.split``: ``uid``, ``index``,
``totalSplits``; https://cloud.google.com/logging/docs/audit/split-logs): every field but
``protoPayload`` is copied into each part, so is every ``protoPayload`` field except
``metadata``, ``request`` and ``response``, whose contents are spread over the parts. Exactly one
part of a split entry is acted on, so it starts one watch (and an end entry runs the fast path
once):

- a name in ``operation.id`` is in every part: the first part (``index`` 0) acts;
- a name from ``response`` is in one part at most, and a string may itself be cut in pieces:
  the part acts whose name is whole, i.e. ends in the bare id that ``operation.id`` repeats in
  every part. A name that cannot be shown whole is not acted on: a watch of a cut name would end
  NOT_FOUND.

Every other part is ignored for that reason, not as malformed.

Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeGuard
from urllib.parse import urlsplit

from opwatch.contracts import (
    API_VERSION_PATTERN,
    MAX_LABEL_VALUE_CHARS,
    WATCH_ID_PATTERN,
    check_operation_name,
    loads_strict,
)
from opwatch.wire import parse_rfc3339

AUDIT_LOG_TYPE: Final = "type.googleapis.com/google.cloud.audit.AuditLog"
# The names of the audit logs, from "Log name" in
# https://cloud.google.com/logging/docs/audit/understanding-audit-logs:
# {projects/PROJECT_ID, folders/FOLDER_ID, billingAccounts/BILLING_ACCOUNT_ID,
# organizations/ORGANIZATION_ID}/logs/cloudaudit.googleapis.com%2F{activity, data_access,
# system_event, policy}: Admin Activity, Data Access, System Event and Policy Denied.
AUDIT_LOG_NAME: Final = re.compile(
    r"^(?:projects|folders|billingAccounts|organizations)/[A-Za-z0-9][A-Za-z0-9.:_-]*"
    r"/logs/cloudaudit\.googleapis\.com%2F(?:activity|data_access|system_event|policy)$"
)
# Cloud Logging refuses entries over 256 KB; a sink cannot publish a larger one, so anything far
# above that is not from a sink and is not read.
MAX_ENTRY_BYTES: Final = 1024 * 1024
WATCH_ID_PREFIX: Final = "audit/"
MAX_WATCH_ID_CHARS: Final = 128
# Where the name was found (AuditEntry.name_source).
FROM_OPERATION_ID: Final = "operation.id"
FROM_RESPONSE_NAME: Final = "protoPayload.response.name"
FROM_RESPONSE_SELF_LINK: Final = "protoPayload.response.selfLink"

_HOST_RE: Final = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")
_API_VERSION_RE: Final = re.compile(API_VERSION_PATTERN)
_WATCH_ID_RE: Final = re.compile(WATCH_ID_PATTERN)
_CONTROL_RE: Final = re.compile(r"[\u0000-\u001f\u007f]+")
_MAX_METHOD_CHARS: Final = 512


@dataclass(frozen=True)
class AuditEntry:
    """What opwatch takes from one audit entry of a long-running operation.

    Attributes:
        api: the service host (``protoPayload.serviceName``), e.g.
            ``cloudaicompanion.googleapis.com``; lower case.
        operation: the operation's full relative name, ``projects/…/operations/…``.
        method: ``protoPayload.methodName``.
        first: the entry written when the operation started.
        last: the entry written when it ended.
        resource: ``protoPayload.resourceName``, if any.
        caller: ``protoPayload.authenticationInfo.principalEmail``, if any (personal data).
        timestamp: the entry's ``timestamp``, if readable.
        name_source: which field held the name (``operation.id``, ...).
    """

    api: str
    operation: str
    method: str
    first: bool
    last: bool
    resource: str | None = None
    caller: str | None = None
    timestamp: datetime | None = None
    name_source: str = FROM_OPERATION_ID


@dataclass(frozen=True)
class SplitPart:
    """Which part of a split entry this is (``LogEntry.split``); ``index`` counts from 0."""

    uid: str
    index: int
    total: int

    def __str__(self) -> str:
        return f"part {self.index + 1} of {self.total} of split entry {_shown(self.uid)}"


@dataclass(frozen=True)
class Ignored:
    """An entry opwatch does not act on, and why (logged, then acknowledged)."""

    reason: str


def parse_entry(data: bytes) -> AuditEntry | Ignored:
    """Read one LogEntry, as a Logging sink publishes it to Pub/Sub.

    Returns:
        The entry, or :class:`Ignored` for anything else: not JSON, not an object, not from an
        audit log, not an audit entry, not about an operation, neither its first nor its last
        entry, a failed call, or no valid operation name anywhere. Never raises.
    """
    if len(data) > MAX_ENTRY_BYTES:
        return Ignored(f"the entry is {len(data)} bytes; a sink publishes at most 256 KB")
    try:
        value = loads_strict(data.decode("utf-8"))
    except UnicodeDecodeError:
        return Ignored("the data is not UTF-8 text")
    except (ValueError, RecursionError):
        return Ignored("the data is not JSON")
    if not isinstance(value, dict):
        return Ignored("the data is not a JSON object (a LogEntry)")
    return _read(value)


def _read(entry: Mapping[str, Any]) -> AuditEntry | Ignored:
    log_name = entry.get("logName")
    if not isinstance(log_name, str) or not AUDIT_LOG_NAME.match(log_name):
        return Ignored(f"logName {_shown(log_name)} is not one of the Cloud Audit Logs")
    operation = entry.get("operation")
    if not isinstance(operation, dict):
        return Ignored("the entry has no operation: it is not about a long-running operation")
    first, last = operation.get("first") is True, operation.get("last") is True
    if not (first or last):
        return Ignored("the entry is neither the first nor the last of its operation")
    payload = entry.get("protoPayload")
    if not isinstance(payload, dict):
        return Ignored("the entry has no protoPayload: it is not an audit entry")
    kind = payload.get("@type", AUDIT_LOG_TYPE)
    if kind != AUDIT_LOG_TYPE:
        return Ignored(f"protoPayload is {_shown(kind)}, not an AuditLog")
    api = payload.get("serviceName")
    if not isinstance(api, str) or not _HOST_RE.match(api.lower()):
        return Ignored(f"protoPayload.serviceName {_shown(api)} is not an API host")
    api = api.lower()
    method = payload.get("methodName")
    if not isinstance(method, str) or not method or len(method) > _MAX_METHOD_CHARS:
        return Ignored(f"protoPayload.methodName {_shown(method)} is not a method name")
    status = payload.get("status")
    code = status.get("code") if isinstance(status, dict) else None
    if first and not last and code not in (None, 0):
        # The call itself failed: no operation was started.
        return Ignored(f"the call failed with status code {_shown(code)}: no operation started")
    split = _split_part(entry.get("split"))
    if isinstance(split, Ignored):
        return split
    found = _operation_name(api, operation, payload)
    if isinstance(found, Ignored):
        return (
            found
            if split is None
            else Ignored(f"{split} holds no operation name (another part may)")
        )
    name, source = found
    if split is not None and (refusal := _not_the_acting_part(split, name, source, operation)):
        return Ignored(refusal)
    resource = payload.get("resourceName")
    authentication = payload.get("authenticationInfo")
    caller = authentication.get("principalEmail") if isinstance(authentication, dict) else None
    return AuditEntry(
        api=api,
        operation=name,
        method=method,
        first=first,
        last=last,
        resource=resource if isinstance(resource, str) and resource else None,
        caller=caller if isinstance(caller, str) and caller else None,
        timestamp=parse_rfc3339(entry.get("timestamp")),
        name_source=source,
    )


def _operation_name(
    api: str, operation: Mapping[str, Any], payload: Mapping[str, Any]
) -> tuple[str, str] | Ignored:
    response = payload.get("response")
    response = response if isinstance(response, dict) else {}
    candidates = (
        (FROM_OPERATION_ID, operation.get("id")),
        (FROM_RESPONSE_NAME, response.get("name")),
        (FROM_RESPONSE_SELF_LINK, _self_link_name(api, response.get("selfLink"))),
    )
    for source, candidate in candidates:
        try:
            return check_operation_name(candidate), source
        except ValueError:
            continue
    return Ignored(
        f"no operation name like projects/…/operations/…: operation.id is "
        f"{_shown(operation.get('id'))}, protoPayload.response.name is "
        f"{_shown(response.get('name'))}"
    )


def _split_part(value: object) -> SplitPart | Ignored | None:
    """The entry's ``split``, or None when it is whole (no split, or a split into one part).

    ``index`` 0 may be missing: proto3 JSON leaves out zero values.
    """
    if value is None:
        return None
    uid = value.get("uid") if isinstance(value, dict) else None
    index = value.get("index", 0) if isinstance(value, dict) else None
    total = value.get("totalSplits") if isinstance(value, dict) else None
    if (
        not isinstance(uid, str)
        or not uid
        or not _is_count(index)
        or not _is_count(total)
        or not index < total
    ):
        return Ignored("split is not a LogSplit with a uid and an index below totalSplits")
    return SplitPart(uid, index, total) if total > 1 else None


def _not_the_acting_part(
    split: SplitPart, name: str, source: str, operation: Mapping[str, Any]
) -> str | None:
    """Why this part of a split entry is not the one acted on (None: it is)."""
    if source == FROM_OPERATION_ID:
        if split.index == 0:
            return None
        return f"{split}: operation.id names the operation in every part; the first part acts"
    bare = operation.get("id")
    if isinstance(bare, str) and bare and name.rsplit("/", 1)[-1] == bare:
        return None
    return (
        f"{split}: the name in {source} does not end in operation.id "
        f"({_shown(bare)}), so it may be a piece of a longer one"
    )


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _self_link_name(api: str, link: object) -> str | None:
    """``projects/…/operations/…`` from ``https://{api}/{version}/projects/…``, else None."""
    if not isinstance(link, str):
        return None
    try:
        parts = urlsplit(link)
    except ValueError:
        return None
    version, _, path = parts.path.lstrip("/").partition("/")
    if parts.scheme != "https" or parts.netloc != api or not _API_VERSION_RE.match(version):
        return None
    if parts.query or parts.fragment:
        return None
    return path


def _shown(value: object) -> str:
    """A value for a log line: short, escaped, and never the repr of a whole structure."""
    if isinstance(value, str):
        return repr(value[:100])
    if value is None or isinstance(value, bool | int | float):
        return repr(value)[:100]
    return f"a JSON {'array' if isinstance(value, list) else 'object'}"


def discovered_watch_id(api: str, operation: str) -> str:
    """The watch id of a discovered operation: the same for every entry that names it.

    ``audit/{api}/{operation}`` when that is a valid watch id (printable ASCII, at most 128
    characters), else ``audit/sha256/{hex}`` of the same text.
    """
    readable = f"{WATCH_ID_PREFIX}{api}/{operation}"
    if _WATCH_ID_RE.match(readable):
        return readable
    digest = hashlib.sha256(f"{api}/{operation}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"{WATCH_ID_PREFIX}sha256/{digest}"


def discovery_labels(entry: AuditEntry, include_caller: bool) -> dict[str, str]:
    """The labels of a discovered watch, taken from its entry.

    ``service``, ``method``, ``resource`` (when the entry names one) and, only when
    ``include_caller`` allows it, ``caller``: an email address is personal data. Values are cut
    to the contract's 256 characters, control characters replaced by spaces.
    """
    labels = {"service": entry.api, "method": entry.method}
    if entry.resource:
        labels["resource"] = entry.resource
    if include_caller and entry.caller:
        labels["caller"] = entry.caller
    return {key: _label_value(value) for key, value in labels.items()}


def _label_value(value: str) -> str:
    return _CONTROL_RE.sub(" ", value)[:MAX_LABEL_VALUE_CHARS]
