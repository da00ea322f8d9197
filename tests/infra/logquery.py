"""A small evaluator of the Cloud Logging query language, for the subset opwatch's metrics use.

Reference: https://cloud.google.com/logging/docs/view/logging-query-language (Boolean operators
``AND``/``OR``/``NOT`` with ``NOT`` binding tightest and ``OR`` binding tighter than ``AND``;
juxtaposition is ``AND``; comparisons ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``:`` (has),
``:*`` (field present); ``field=("a" OR "b")`` compares one field with several values).

What is supported, and how it is read:

- ``field = value``: exact equality; numbers compare as numbers when the field holds one;
  a boolean field equals ``true`` or ``false``; ``severity`` compares by level (DEBUG < INFO <
  ... < EMERGENCY).
- ``field != value``: true when the field is missing or differs (the negation of ``=``).
- ``field : value``: case-insensitive substring; ``field:*``: the field is present.
- ``<``, ``<=``, ``>``, ``>=``: numbers, or severities.
- values: double-quoted strings (``\\"`` and ``\\\\`` escapes), bare words, numbers, and a
  parenthesised ``OR`` list of them after the operator.
- ``log_id("LOG_ID")``: the entry's ``logName`` is ``{projects|organizations|folders|
  billingAccounts}/ID/logs/`` followed by exactly that log ID, URL-encoded (LogEntry reference:
  "[LOG_ID] must be URL-encoded within log_name", e.g. ``cloudaudit.googleapis.com%2Factivity``).
  A whole-ID comparison, unlike ``logName:"..."``.

Anything else (regular expressions ``=~``, ``-`` negation, other functions such as ``hasPrefix``,
``SEARCH``, timestamps, wildcards other than ``:*``) raises :class:`Unsupported`: a filter this
evaluator cannot read must fail the test, never pass it by accident.

Precedence: the documentation gives ``OR`` higher precedence than ``AND`` (``a AND b OR c`` is
``a AND (b OR c)``), unlike most languages; that is implemented, and opwatch's filters use
parentheses anyway.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

SEVERITIES = (
    "DEFAULT",
    "DEBUG",
    "INFO",
    "NOTICE",
    "WARNING",
    "ERROR",
    "CRITICAL",
    "ALERT",
    "EMERGENCY",
)
_MISSING = object()
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<op>!=|<=|>=|=~|!~|=|:|<|>)
      | (?P<paren>[()])
      | (?P<word>[A-Za-z0-9_.*@/+-]+)
      | (?P<other>\S)
    )""",
    re.X,
)
_EXTRACT = re.compile(r"^EXTRACT\(([A-Za-z_][A-Za-z0-9_.]*)\)$")
_LOG_NAME = re.compile(r"^(?:projects|organizations|folders|billingAccounts)/[^/]+/logs/([^/]+)$")


def _log_id_is(entry: Entry, log_id: str) -> bool:
    name = lookup(entry, "logName")
    match = _LOG_NAME.match(name) if isinstance(name, str) else None
    return match is not None and match.group(1) == urllib.parse.quote(log_id, safe="")


class Unsupported(ValueError):
    """The filter uses syntax outside the supported subset."""


Entry = Mapping[str, Any]
Predicate = Callable[[Entry], bool]


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str


def _tokens(text: str) -> list[_Tok]:
    found: list[_Tok] = []
    position = 0
    while position < len(text):
        if not text[position:].strip():
            break
        match = _TOKEN.match(text, position)
        # Each turn consumes text, so the loop ends: an empty match would spin for ever.
        assert match is not None and match.end() > position, f"no progress at {position}"
        kind = match.lastgroup or "other"
        value = match.group(kind)
        if kind == "other":
            raise Unsupported(f"unexpected {value!r} at {match.start(kind)} in {text!r}")
        if kind == "op" and value in ("=~", "!~"):
            raise Unsupported(f"regular expressions ({value}) are not supported")
        if kind == "word" and value.startswith("-"):
            raise Unsupported(f"'-' negation is not supported ({value!r}); write NOT")
        found.append(_Tok(kind, value))
        position = match.end()
    return found


def _unquote(token: _Tok) -> str:
    if token.kind == "string":
        return re.sub(r"\\(.)", r"\1", token.text[1:-1])
    return token.text


def lookup(entry: Entry, path: str) -> Any:
    """The value at a dotted path of a LogEntry-like dict, or ``_MISSING``."""
    value: Any = entry
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _order(path: str, actual: Any, literal: str) -> tuple[float, float] | None:
    """Both sides as comparable numbers: severities by level, numbers as numbers."""
    if path == "severity":
        if str(actual).upper() not in SEVERITIES or literal.upper() not in SEVERITIES:
            raise Unsupported(f"unknown severity in severity comparison: {literal!r}")
        return SEVERITIES.index(str(actual).upper()), SEVERITIES.index(literal.upper())
    number = _number(literal)
    if isinstance(actual, bool) or not isinstance(actual, int | float) or number is None:
        return None
    return float(actual), number


def _compare(path: str, op: str, actual: Any, literal: str) -> bool:
    if op == ":":
        if literal == "*":
            return actual is not _MISSING
        if actual is _MISSING or isinstance(actual, Mapping | list):
            return False
        return literal.lower() in str(actual).lower()
    if op == "!=":
        return not _compare(path, "=", actual, literal)
    if actual is _MISSING or actual is None:
        return False
    pair = _order(path, actual, literal)
    if op == "=":
        if pair is not None:
            return pair[0] == pair[1]
        if isinstance(actual, bool):
            return literal == str(actual).lower()
        return isinstance(actual, str) and actual == literal
    if pair is None:
        raise Unsupported(f"{path} {op} {literal!r}: ordering needs numbers or severities")
    left, right = pair
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self) -> _Tok | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> _Tok:
        token = self.peek()
        if token is None:
            raise Unsupported(f"unexpected end of {self.text!r}")
        self.at += 1
        return token

    def expect(self, text: str) -> None:
        token = self.take()
        if token.text != text:
            raise Unsupported(f"expected {text!r}, found {token.text!r} in {self.text!r}")

    def parse(self) -> Predicate:
        predicate = self.conjunction()
        if self.peek() is not None:
            raise Unsupported(f"unexpected {self.peek()!r} in {self.text!r}")
        return predicate

    # a AND b OR c is a AND (b OR c): OR binds tighter than AND in this language.
    def conjunction(self) -> Predicate:
        parts = [self.disjunction()]
        while (token := self.peek()) is not None and token.text != ")":
            if token.text == "AND":
                self.take()
            parts.append(self.disjunction())
        return lambda entry: all(part(entry) for part in parts)

    def disjunction(self) -> Predicate:
        parts = [self.unary()]
        while (token := self.peek()) is not None and token.text == "OR":
            self.take()
            parts.append(self.unary())
        return lambda entry: any(part(entry) for part in parts)

    def unary(self) -> Predicate:
        token = self.take()
        if token.text == "NOT":
            inner = self.unary()
            return lambda entry: not inner(entry)
        if token.text == "(":
            inner = self.conjunction()
            self.expect(")")
            return inner
        if token.kind != "word" or token.text in ("AND", "OR"):
            raise Unsupported(f"expected a field, found {token.text!r} in {self.text!r}")
        if token.text == "log_id" and (nxt := self.peek()) is not None and nxt.text == "(":
            self.take()
            argument = self.take()
            if argument.kind != "string":
                raise Unsupported(f"log_id takes one quoted log ID, not {argument.text!r}")
            self.expect(")")
            log_id = _unquote(argument)
            return lambda entry: _log_id_is(entry, log_id)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", token.text):
            raise Unsupported(f"not a field path: {token.text!r} (functions are not supported)")
        path = token.text
        op = self.take()
        if op.kind != "op":
            raise Unsupported(f"expected an operator after {path}, found {op.text!r}")
        values = self.values()
        if "*" in values and (op.text != ":" or len(values) > 1):
            raise Unsupported("'*' is supported only as field:*")

        def compare(entry: Entry) -> bool:
            actual = lookup(entry, path)
            if op.text == "!=":
                return all(_compare(path, "!=", actual, v) for v in values)
            return any(_compare(path, op.text, actual, v) for v in values)

        return compare

    def values(self) -> list[str]:
        token = self.take()
        if token.text == "(":
            found = [self.value(self.take())]
            while (nxt := self.peek()) is not None and nxt.text == "OR":
                self.take()
                found.append(self.value(self.take()))
            self.expect(")")
            return found
        return [self.value(token)]

    def value(self, token: _Tok) -> str:
        if token.kind not in ("string", "word") or token.text in ("AND", "OR", "NOT"):
            raise Unsupported(f"expected a value, found {token.text!r} in {self.text!r}")
        return _unquote(token)


def compile_filter(text: str) -> Predicate:
    """A predicate over LogEntry-like dicts for a Logging query.

    Raises:
        Unsupported: the query uses syntax outside the supported subset.
    """
    return _Parser(text).parse()


def extractor_field(extractor: str) -> str:
    """The field path of ``EXTRACT(field)``; other extractors raise :class:`Unsupported`."""
    match = _EXTRACT.match(extractor.strip())
    if match is None:
        raise Unsupported(f"only EXTRACT(field) extractors are supported, not {extractor!r}")
    return match.group(1)


def has_field(entry: Entry, path: str) -> bool:
    return lookup(entry, path) is not _MISSING
