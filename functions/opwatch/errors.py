"""The few exceptions opwatch raises on purpose.

    OpwatchError
    ├── ConfigurationError   a setting is missing or malformed: the function must not start
    ├── FinishPending        a retried look met its earlier attempt's claim: retry until it ends
    ├── InvalidInput         input that no retry can fix: answer it, never raise it to the platform
    │   ├── InvalidWatchRequest  a watch request broke the contract: the subscriber is told why
    │   └── InvalidCheckBody     a check task body did not come from opwatch (or is corrupt)
    └── QueueRefused         Cloud Tasks could not serve a call now: a retry later can
        ├── QuotaExhausted       RESOURCE_EXHAUSTED: a per-minute quota is spent
        └── QueueUnavailable     NOT_FOUND for the queue itself (re-activating after 30 days idle)

Everything else that escapes a handler (Cloud Tasks or Pub/Sub refusing a call, a crash) is
*meant* to fail the invocation, so that the platform redelivers and nothing is lost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class OpwatchError(Exception):
    """Base class of opwatch's own exceptions."""


class ConfigurationError(OpwatchError):
    """The environment does not describe a usable deployment."""


class QueueRefused(OpwatchError):
    """Cloud Tasks refused a call for a reason that passes; raised like any failure, so the
    platform delivers the input again, unless the caller has a better way (the fast path)."""


class QuotaExhausted(QueueRefused):
    """A Cloud Tasks quota is spent for this minute (RESOURCE_EXHAUSTED)."""


class QueueUnavailable(QueueRefused):
    """The queue itself answered NOT_FOUND: not a missing task, so no conclusion about one."""


class FinishPending(OpwatchError):
    """A retried look met the claim an earlier attempt of it made on seeing the watch end, and
    cannot finish the watch itself (its fetch failed this time): raised so that the platform
    delivers it again, until a look that finishes publishes and records the end."""

    def __init__(self) -> None:
        super().__init__(
            "an earlier attempt of this look saw the watch end and holds its next step, but may "
            "not have told the subscriber or the ledger: a look that finishes must, so this one "
            "is tried again"
        )


class LedgerUnavailable(OpwatchError):
    """Firestore did not answer a ledger call in time, or refused it: the watch goes on."""


@dataclass(frozen=True)
class Violation:
    """One broken rule: which field, and what a person should change."""

    field: str
    description: str

    def to_json(self) -> dict[str, str]:
        # The google.rpc.BadRequest.FieldViolation JSON shape.
        return {"field": self.field, "description": self.description}


class InvalidInput(OpwatchError):
    """Input that retrying cannot fix."""

    def __init__(self, violations: Sequence[Violation]) -> None:
        self.violations = tuple(violations)
        super().__init__("; ".join(_describe(v) for v in self.violations))


class InvalidWatchRequest(InvalidInput):
    """A watch request that breaks the contract.

    Args:
        violations: every rule the request broke, not just the first.
        raw: the request as far as it could be read (a JSON object), to echo back.
        watch_id: the id to report it under (the request's own, if readable).
    """

    def __init__(
        self,
        violations: Sequence[Violation],
        *,
        raw: Mapping[str, Any] | None = None,
        watch_id: str = "",
    ) -> None:
        super().__init__(violations)
        self.raw = raw
        self.watch_id = watch_id


class InvalidCheckBody(InvalidInput):
    """A body sent to the check function that opwatch did not write."""


def _describe(violation: Violation) -> str:
    return (
        f"{violation.field}: {violation.description}" if violation.field else violation.description
    )
