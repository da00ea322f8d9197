"""The kind of an operation: what operations that take similar times have in common.

A kind is the API, the metadata's ``@type`` (its last segment) and ``verb``, and the ``target``
with its ids taken out (``projects/*/locations/*/codeRepositoryIndexes/*``), joined by ``|``.
A part the operation does not say is left empty, which gives a coarser kind, never an error; a
discovered operation whose metadata says no verb takes its audit method instead. A watch request
may name its ``kind`` outright; it wins. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

MAX_KIND_CHARS: Final = 300
_SEPARATOR: Final = "|"


def of_operation(
    api: str,
    operation: Mapping[str, Any] | None,
    requested: str | None = None,
    method: str | None = None,
) -> str:
    """The kind of ``operation`` (a google.longrunning Operation's JSON) on ``api``; ``method``
    is the audit method that announced it, if it was discovered so."""
    if requested:
        return requested[:MAX_KIND_CHARS]
    metadata = operation.get("metadata") if isinstance(operation, Mapping) else None
    if not isinstance(metadata, Mapping):
        metadata = {}
    type_url = _text(metadata.get("@type"))
    verb = _text(metadata.get("verb")) or _text(method)
    target = _pattern(_text(metadata.get("target")))
    parts = [api, type_url.rsplit(".", 1)[-1].rsplit("/", 1)[-1], verb, target]
    return _SEPARATOR.join(parts)[:MAX_KIND_CHARS]


def _text(value: Any) -> str:
    # A separator inside a part would make two kinds look alike.
    return value.strip().replace(_SEPARATOR, "/") if isinstance(value, str) else ""


def _pattern(target: str) -> str:
    """``projects/p/locations/l/things/t`` → ``projects/*/locations/*/things/*``: every id (the
    segment after a collection name) replaced, so targets of one collection share a kind."""
    segments = target.strip("/").split("/") if target else []
    return "/".join("*" if i % 2 else segment for i, segment in enumerate(segments))
