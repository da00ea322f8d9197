"""What the real Cloud Tasks documents, as the patches apply it: task names, ListTasks pages,
the google.rpc.Code of an HTTP status, and the quotas (pure: no emulator, no gRPC)."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Final

# A task name is {parent}/tasks/{ID}, the ID of letters, digits, '-' or '_', at most 500.
TASK_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,500}")

MAX_PAGE_SIZE: Final = 1000  # ListTasksRequest.page_size: "The maximum page size is 1000."
# google.rpc.Code for an HTTP status, as code.proto maps them (Cloud Tasks does not document it).
_HTTP_TO_RPC: Final = {
    400: 3,
    401: 16,
    403: 7,
    404: 5,
    409: 10,
    429: 8,
    499: 1,
    500: 13,
    501: 12,
    503: 14,
    504: 4,
}
UNKNOWN, DEADLINE_EXCEEDED, FAILED_PRECONDITION, UNAVAILABLE = 2, 4, 9, 14

# Requests a minute, by quota, and the methods that count against it (quotas page).
DOCUMENTED_QUOTAS: Final[dict[str, int]] = {"List requests": 600, "Force run requests": 60}
QUOTA_METHODS: Final[dict[str, tuple[str, ...]]] = {
    "List requests": ("ListTasks", "ListQueues", "ListLocations"),
    "Force run requests": ("RunTask",),
}


def rpc_code_for_http(status: int) -> int:
    """The ``google.rpc.Code`` that ``code.proto`` pairs with an HTTP status (0 for 2xx)."""
    if 200 <= status < 300:
        return 0
    if status in _HTTP_TO_RPC:
        return _HTTP_TO_RPC[status]
    return FAILED_PRECONDITION if 400 <= status < 500 else UNKNOWN


def encode_page_token(queue: str, after: int) -> str:
    """An opaque token: the queue it belongs to and the last sequence number returned."""
    raw = json.dumps({"queue": queue, "after": after}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_page_token(queue: str, token: str) -> int:
    """The sequence number a token continues after; ValueError if it is not one of ours."""
    if not token:
        return -1
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        after = data["after"]
        ok = data["queue"] == queue and isinstance(after, int)
    except (ValueError, TypeError, KeyError):
        ok = False
    if not ok:
        raise ValueError(f"Invalid page_token for {queue}")
    return int(after)


def page_bounds(page_size: int) -> int:
    """Tasks per page: 0 means the maximum, larger asks are coerced to it (AIP-158)."""
    if page_size < 0:
        raise ValueError("page_size must not be negative")
    return min(page_size or MAX_PAGE_SIZE, MAX_PAGE_SIZE)


class Quota:
    """At most ``limit`` calls in any ``window`` seconds; ``clock`` is injectable for tests."""

    def __init__(
        self, name: str, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name, self.limit, self.window, self._clock = name, limit, window, clock
        self._calls: list[float] = []
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Count one call: False (and not counted) if the limit is reached."""
        with self._lock:
            now = self._clock()
            self._calls = [t for t in self._calls if t > now - self.window]
            if len(self._calls) >= self.limit:
                return False
            self._calls.append(now)
            return True

    def refusal(self) -> str:
        return (
            f"Quota exceeded for quota metric '{self.name}' and limit '{self.name} per minute' "
            "of service 'cloudtasks.googleapis.com'"
        )
