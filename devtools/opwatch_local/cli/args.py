"""Argument values of the ``opwatch`` command (pure), and the settings taken from flags or the
environment."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

__all__ = [
    "LEDGER_HELP",
    "QUEUE_HELP",
    "CliError",
    "as_argument",
    "duration",
    "json_object",
    "labels_of",
    "parse_error",
    "parse_human_duration",
    "parse_labels",
    "probability",
    "setting",
]

_DURATION_RE = re.compile(r"^([0-9]+(?:\.[0-9]{1,9})?)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
T = TypeVar("T")

QUEUE_HELP = "default: $OPWATCH_TASKS_QUEUE"
LEDGER_HELP = (
    "the ledger's Firestore database, projects/P/databases/D (default: "
    "$OPWATCH_LEDGER_DATABASE); without one, the queue is scanned"
)


class CliError(Exception):
    """A usage or configuration problem, reported as ``opwatch: error: ...`` with exit code 2."""


def parse_human_duration(text: str) -> Decimal:
    """Seconds in ``text``: ``30s``, ``10m``, ``1h``, ``2d``, ``1.5m`` or bare seconds (``90``).

    Raises:
        ValueError: Not such a duration.
    """
    match = _DURATION_RE.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 30s, 10m, 1h or 2d")
    try:
        return Decimal(match[1]) * _UNITS[match[2]]
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only decimals
        raise ValueError(f"{text!r} is not a duration") from exc


def parse_labels(pairs: Sequence[str]) -> dict[str, str]:
    """``["team=search", "repo=mono"]`` -> ``{"team": "search", "repo": "mono"}``.

    Only the shape is checked here; the key and value rules are opwatch's to enforce (a broken
    one comes back as ``INVALID_REQUEST`` naming it).

    Raises:
        ValueError: A pair without ``=``, an empty key, or a key given twice.
    """
    labels: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"label {pair!r} is not KEY=VALUE")
        if key in labels:
            raise ValueError(f"label {key!r} is given twice")
        labels[key] = value
    return labels


def parse_error(text: str) -> dict[str, Any]:
    """``"9:index build failed"`` -> ``{"code": 9, "message": "index build failed"}``.

    Raises:
        ValueError: No integer code before the first ``:``.
    """
    code, sep, message = text.partition(":")
    if not sep or not code.strip().isdigit():
        raise ValueError(f"error {text!r} is not CODE:MESSAGE (e.g. '9:index build failed')")
    return {"code": int(code), "message": message}


def as_argument(parse: Callable[[str], T]) -> Callable[[str], T]:
    """Wrap a ValueError-raising parser for argparse (its message becomes the usage error)."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


def _probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise ValueError(f"{text!r} is not a probability between 0 and 1")
    return value


def _json_object(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object")
    return value


duration = as_argument(parse_human_duration)
probability = as_argument(_probability)
json_object = as_argument(_json_object)


def setting(value: str | None, env: Mapping[str, str], name: str, hint: str) -> str:
    """The flag's ``value``, else the variable ``name`` (CliError with ``hint`` if neither)."""
    found = value or env.get(name, "").strip()
    if not found:
        raise CliError(f"{name} is not set; {hint}")
    return found


def labels_of(pairs: Sequence[str]) -> dict[str, str]:
    """:func:`parse_labels` for a command: a malformed pair is a usage error."""
    try:
        return parse_labels(pairs)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
