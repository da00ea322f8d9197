"""The wire forms of time that opwatch reads and writes, shared by the functions and the tools.

- Durations in protobuf JSON (``google.protobuf.Duration``): ``"3600s"``, ``"1.5s"``.
- Times in RFC 3339, UTC (``google.protobuf.Timestamp``): ``"2026-11-27T22:44:11.123Z"``.

Pure functions, no I/O.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

_DURATION_RE: Final = re.compile(r"^(-?)([0-9]{1,10})(?:\.([0-9]{1,9}))?s$")
# RFC 3339 as Google writes it: up to nanoseconds, "Z" or an offset.
_TIMESTAMP_RE: Final = re.compile(
    r"^(\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$"
)


def parse_duration(text: str) -> float:
    """Seconds in a protobuf-JSON duration (``"3600s"``, ``"1.5s"``, ``"-2s"``).

    Raises:
        ValueError: with a readable reason when ``text`` is not such a duration.
    """
    match = _DURATION_RE.match(text)
    if match is None:
        raise ValueError(
            f"{text[:40]!r} is not a duration; write seconds with an 's', like '3600s'"
        )
    sign, whole, fraction = match.groups()
    seconds = int(whole) + (int(fraction.ljust(9, "0")) / 1e9 if fraction else 0.0)
    return -seconds if sign else seconds


def format_duration(seconds: float) -> str:
    """Seconds as a protobuf-JSON duration, without trailing zeros (``600s``, ``1.5s``)."""
    text = f"{seconds:.9f}".rstrip("0").rstrip(".")
    return f"{text}s"


def duration_seconds(value: object) -> float | None:
    """Seconds in a Duration given either way protobuf JSON allows, or None if it is not one.

    ``"2.5s"`` is the canonical JSON form; ``{"seconds": 2, "nanos": 500000000}`` is what some
    servers send. Negative durations read as None: no caller wants to wait a negative time.
    """
    if isinstance(value, str):
        try:
            seconds = parse_duration(value)
        except ValueError:
            return None
        return seconds if seconds >= 0 else None
    if isinstance(value, dict):
        whole, nanos = value.get("seconds", 0), value.get("nanos", 0)
        try:
            return max(0.0, float(whole) + float(nanos) / 1e9)
        except (TypeError, ValueError):
            return None
    return None


def rfc3339(moment: datetime) -> str:
    """``2026-11-27T22:44:11.123Z``: UTC, milliseconds."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_rfc3339(text: object) -> datetime | None:
    """An aware datetime from an RFC 3339 timestamp (digits past microseconds dropped), or None.

    None also for a time without a zone: a naive time cannot be placed on the watch's clock.
    """
    if not isinstance(text, str):
        return None
    match = _TIMESTAMP_RE.match(text)
    if match is None:
        return None
    moment, fraction, zone = match.groups()
    micros = (fraction or "").ljust(6, "0")[:6]
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        return datetime.fromisoformat(f"{moment.replace('t', 'T')}.{micros}{zone}").astimezone(UTC)
    except ValueError:
        return None
