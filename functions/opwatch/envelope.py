"""What the functions are handed, as small typed values: a pushed Pub/Sub message and a check
task's headers. ``main.py`` makes them from the HTTP request; past it, nothing reads base64, a
push envelope or a header.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from opwatch.errors import InvalidWatchRequest, Violation

# The attribute that marks a parked watch on the parked topic (or replayed by hand): see parking.
PARKED_ATTRIBUTE: Final = "opwatch"
PARKED_VALUE: Final = "parked-check"


@dataclass(frozen=True)
class PushedMessage:
    """A PubsubMessage as a push subscription delivers it, its data decoded.

    ``data`` is None when the message has none or it is not base64; ``problem`` says which.
    """

    message_id: str
    data: bytes | None
    attributes: Mapping[str, str] = field(default_factory=dict)
    problem: str = ""

    @classmethod
    def from_json(cls, message: Mapping[str, Any]) -> PushedMessage:
        """The ``message`` of a push envelope (``data`` base64, ``attributes``, ``messageId``)."""
        message_id = str(message.get("messageId") or message.get("message_id") or "")
        raw = message.get("attributes")
        attributes = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        encoded = message.get("data")
        if not encoded or not isinstance(encoded, str):
            problem = "the message has no data; publish the watch request as JSON"
            return cls(message_id, None, attributes, problem)
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return cls(message_id, None, attributes, "the message data is not base64")
        return cls(message_id, data, attributes)

    def payload(self) -> bytes:
        """The data.

        Raises:
            InvalidWatchRequest: the message has no data, or it was not base64.
        """
        if self.data is None:
            raise InvalidWatchRequest([Violation("", self.problem)])
        return self.data

    @property
    def is_parked(self) -> bool:
        """Whether this message on the watch topic is a parked watch coming back."""
        return self.attributes.get(PARKED_ATTRIBUTE) == PARKED_VALUE


class Headers(Protocol):
    def get(self, key: str, default: str) -> str: ...


@dataclass(frozen=True)
class CheckHeaders:
    """What Cloud Tasks says about the task it dispatches (``X-CloudTasks-*`` headers)."""

    queue: str
    task_name: str
    retries: int

    @classmethod
    def from_headers(cls, headers: Headers) -> CheckHeaders:
        retries = headers.get("X-CloudTasks-TaskRetryCount", "0")
        return cls(
            queue=headers.get("X-CloudTasks-QueueName", ""),
            task_name=headers.get("X-CloudTasks-TaskName", ""),
            retries=int(retries) if retries.isdigit() else 0,
        )
