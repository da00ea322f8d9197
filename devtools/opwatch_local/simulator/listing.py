"""google.longrunning ListOperations over the simulator's operations, as a pure function.

A page holds the visible operations directly under ``parent``, in creation order, as
``{"operations": [...], "nextPageToken": ...}`` (empty fields left out, as proto3 JSON does).
``filter`` may be ``done=false`` or ``done=true`` (AIP-160 spelling; anything else is 400, and with
``filters=False`` every filter is refused, like an API that takes none); ``pageSize`` 0 means
:data:`DEFAULT_PAGE_SIZE`, above :data:`MAX_PAGE_SIZE` is coerced down, negative is 400
(AIP-158); a ``pageToken`` is opaque and only valid with the parent and filter of the call that
gave it; ``returnPartialSuccess=true`` is 501 UNIMPLEMENTED, as the field's reference says unless
an API documents otherwise.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opwatch_local.simulator.replies import Reply, google_error, invalid

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "ListQuery", "list_page"]

# AIP-158 suggests a default and a maximum; Google's longrunning reference gives neither for
# these APIs.
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_DONE_FILTER = re.compile(r"^\s*done\s*=\s*(true|false)\s*$")


@dataclass(frozen=True)
class ListQuery:
    """One ListOperations call's arguments, as given (``page_size`` 0 when absent)."""

    parent: str
    filter: str
    page_size: int
    page_token: str
    partial: str


def list_page(
    query: ListQuery,
    names: Sequence[str],
    render: Callable[[str], Mapping[str, Any] | None],
    *,
    filters: bool = True,
) -> Reply:
    """The page ``query`` asks for.

    Args:
        query: The call's arguments.
        names: Every operation's name, in creation order.
        render: An operation's current JSON, or None while it is not visible; called only for
            the names under the parent from the token's position on.
        filters: Whether ``done=...`` filters are taken.
    """
    if query.partial.lower() == "true":
        return Reply(
            501, google_error(501, "UNIMPLEMENTED", "returnPartialSuccess is not supported")
        )
    done: bool | None = None
    if query.filter:
        match = _DONE_FILTER.match(query.filter) if filters else None
        if match is None:
            return invalid(f"unsupported filter {query.filter!r}")
        done = match.group(1) == "true"
    if query.page_size < 0:
        return invalid("pageSize must not be negative")
    size = min(query.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    asked = hashlib.sha256(f"{query.parent}\n{query.filter}".encode()).hexdigest()[:16]
    after = _read_page_token(query.page_token, asked) if query.page_token else ""
    if after is None:
        return invalid("invalid pageToken: not from a call with this parent and filter")
    if after and after not in names:
        return invalid("invalid pageToken: its position is gone")
    start = names.index(after) + 1 if after else 0
    found: list[Mapping[str, Any]] = []
    for name in names[start:]:
        if name.rsplit("/operations/", 1)[0] != query.parent:
            continue
        body = render(name)
        if body is None or (done is not None and body["done"] is not done):
            continue
        if len(found) == size:
            token = _page_token(str(found[-1]["name"]), asked)
            return Reply(200, {"operations": found, "nextPageToken": token})
        found.append(body)
    return Reply(200, {"operations": found} if found else {})


def _page_token(after: str, asked: str) -> str:
    raw = json.dumps({"after": after, "query": asked}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_page_token(token: str, asked: str) -> str | None:
    """The name a page token continues after, or None if it is not one for the query ``asked``."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    if not isinstance(value, dict) or value.get("query") != asked:
        return None
    after = value.get("after")
    return after if isinstance(after, str) and after else None
