"""Turning an opwatch notification into a Google Chat message, and sending it.

``card`` is pure: a notification in, the JSON of a Chat message out (a text fallback plus one
``cardsV2`` card, the format incoming webhooks accept). ``Webhook`` POSTs it with a timeout.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opwatch_client import Notification, Overdue

ICONS = {"SUCCEEDED": "✅", "FAILED": "❌", "TIMED_OUT": "⏱️", "PERMISSION_DENIED": "🔒"}
MAX_ERROR_CHARS = 500


def card(notification: Notification | Overdue) -> dict[str, Any]:
    """The Chat message for one notification, or for a watch's overdue message."""
    if isinstance(notification, Overdue):
        return overdue_card(notification)
    icon = ICONS.get(notification.outcome, "\N{INFORMATION SOURCE}")
    operation = notification.operation_name or "(no operation)"
    summary = f"{icon} {notification.outcome}: {operation}"
    rows = [
        _row("Outcome", notification.outcome),
        _row("Watch", notification.watch_id),
        _row("Checks", str(notification.polls)),
        _row(
            "Watched for",
            _duration((notification.observed_done - notification.watch_started).total_seconds()),
        ),
    ]
    rows += [_row(f"label {key}", value) for key, value in sorted(notification.labels.items())]
    if notification.error_message:
        rows.append(_row("Error", notification.error_message[:MAX_ERROR_CHARS]))
    return {
        "text": summary,
        "cardsV2": [
            {
                "cardId": f"opwatch-{notification.watch_id}"[:64],
                "card": {
                    "header": {
                        "title": f"{icon} Operation {notification.outcome}",
                        "subtitle": operation,
                    },
                    "sections": [{"widgets": rows}],
                },
            }
        ],
    }


def overdue_card(overdue: Overdue) -> dict[str, Any]:
    """The Chat message saying an operation runs longer than it should; its outcome follows."""
    summary = f"⏳ overdue: {overdue.operation_name}"
    expected = overdue.schedule.get("source", "profile")
    rows = [
        _row("Watch", overdue.watch_id),
        _row("Running for", _duration(overdue.age_seconds)),
        _row(f"Overdue after ({expected})", _duration(overdue.overdue_after_seconds)),
    ]
    rows += [_row(f"label {key}", value) for key, value in sorted(overdue.labels.items())]
    return {
        "text": summary,
        "cardsV2": [
            {
                "cardId": f"opwatch-{overdue.watch_id}-overdue"[:64],
                "card": {
                    "header": {"title": "⏳ Operation overdue", "subtitle": overdue.operation_name},
                    "sections": [{"widgets": rows}],
                },
            }
        ],
    }


def _row(label: str, text: str) -> dict[str, Any]:
    return {"decoratedText": {"topLabel": label, "text": text}}


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m {secs}s" if hours else f"{minutes}m {secs}s"


Post = Callable[[str, bytes, float], int]


def urllib_post(url: str, body: bytes, timeout: float) -> int:
    """POST JSON; the HTTP status (network errors raise)."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json; charset=UTF-8"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        with error:  # it holds the connection: close it
            return int(error.code)


@dataclass(frozen=True)
class Webhook:
    """A Chat incoming webhook (its URL holds the key: keep it in Secret Manager)."""

    url: str
    timeout: float = 10.0
    post: Post = urllib_post

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message, ensure_ascii=False).encode("utf-8")
        status = self.post(self.url, body, self.timeout)
        if not 200 <= status < 300:
            raise RuntimeError(f"the webhook answered {status}")
