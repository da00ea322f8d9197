"""Example subscriber: opwatch notifications as Google Chat messages.

A CloudEvent function (functions-framework) triggered by the results topic through Eventarc
(``google.cloud.pubsub.topic.v1.messagePublished``). Each notification is parsed and validated
with opwatch_client, deduplicated on watch_id (per instance: a redelivery to another instance
can still post twice, which Chat shows as two messages), and posted to the webhook in
``CHAT_WEBHOOK_URL`` (a Secret Manager reference in the Terraform).

A message that is not an opwatch notification is logged and acknowledged (retrying cannot fix
it); a webhook failure raises, so Eventarc retries (the trigger's retry policy).
"""

from __future__ import annotations

import logging
import os
from functools import cache

import functions_framework
from cloudevents.http import CloudEvent

from chat import Webhook, card
from opwatch_client import Deduplicator, InvalidNotification, parse_cloud_event

log = logging.getLogger("chat_notifier")
SEEN = Deduplicator(max_entries=10_000, max_age=24 * 3600)


@cache
def webhook() -> Webhook:
    """Configuration read once, at the first event (a missing URL fails with its name)."""
    url = os.environ.get("CHAT_WEBHOOK_URL", "").strip()
    if not url.startswith(("https://", "http://127.0.0.1:", "http://localhost:")):
        raise RuntimeError("CHAT_WEBHOOK_URL must be set to the Chat webhook's https URL")
    return Webhook(url, timeout=float(os.environ.get("CHAT_WEBHOOK_TIMEOUT", "10")))


@functions_framework.cloud_event
def on_notification(event: CloudEvent) -> None:
    try:
        notification = parse_cloud_event(event.data or {})
    except InvalidNotification as error:
        log.warning("not an opwatch notification, skipped: %s", error)
        return
    # A watch's overdue message and its notification are two events (their ce-id differ).
    key = notification.attributes.get("ce-id") or notification.watch_id
    if not SEEN.first_time(key):
        log.info("duplicate message for watch %s, skipped", notification.watch_id)
        return
    try:
        webhook().send(card(notification))
    except Exception:
        SEEN.forget(key)  # the redelivery must be posted
        raise
