"""opwatch_client: publish opwatch watch requests, and read the notifications it sends back.

    WatchRequest        typed builder; validate() applies the functions' own rules
    publish_watch_request(publisher, topic, request) -> message id
    Notification        a received notification, validated against the published schema
    Overdue             a watch's one overdue message (warn_overdue), told apart by type
    parse_message / parse_push / parse_cloud_event / from_pubsub_message
    Deduplicator        "have I handled this watch_id lately?" over a bounded window

Validation is not re-implemented here: watch requests go through ``opwatch.contracts`` and
notifications through ``opwatch/schemas/notification.json``, the files the functions use.
"""

from opwatch.errors import InvalidWatchRequest, Violation
from opwatch_client.dedup import Deduplicator
from opwatch_client.notifications import (
    InvalidNotification,
    Notification,
    Overdue,
    from_pubsub_message,
    notification_schema,
    parse_cloud_event,
    parse_message,
    parse_push,
)
from opwatch_client.watch import Polling, Publisher, WatchRequest, publish_watch_request

__all__ = [
    "Deduplicator",
    "InvalidNotification",
    "InvalidWatchRequest",
    "Notification",
    "Overdue",
    "Polling",
    "Publisher",
    "Violation",
    "WatchRequest",
    "from_pubsub_message",
    "notification_schema",
    "parse_cloud_event",
    "parse_message",
    "parse_push",
    "publish_watch_request",
]
