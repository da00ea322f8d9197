"""The two Cloud Functions of opwatch. Deploy this folder as the source of both.

- ``on_watch_request``: CloudEvent function, triggered by a watch request published to Pub/Sub.
- ``on_check``: HTTP function, called by Cloud Tasks with the body of a check task.

Configuration is read here, once, when the instance starts: a missing setting stops it with a
message naming the variable (see the README's configuration table).
"""

from __future__ import annotations

import os
from typing import Any

import flask
import functions_framework
from cloudevents.http import CloudEvent

from opwatch import checks, logs
from opwatch.adapters import NotificationPublisher, OperationFetcher, TaskScheduler
from opwatch.errors import InvalidCheckBody
from opwatch.logs import Event
from opwatch.service import Notifier
from opwatch.settings import Settings

SETTINGS = Settings.from_env(os.environ)
log = logs.configure(SETTINGS.log_level)
NOTIFIER = Notifier(
    SETTINGS,
    fetch=OperationFetcher(SETTINGS),
    schedule=TaskScheduler(SETTINGS),
    publish=NotificationPublisher(),
)


@functions_framework.cloud_event
def on_watch_request(event: CloudEvent) -> None:
    """Start watching the operation named in a Pub/Sub watch request.

    Returning acknowledges the message, invalid requests included (they are answered with an
    INVALID_REQUEST notification); an exception makes Pub/Sub deliver it again.
    """
    data: Any = event.data
    message = data.get("message") if isinstance(data, dict) else None
    NOTIFIER.on_watch_message(message if isinstance(message, dict) else {})


@functions_framework.http
def on_check(request: flask.Request) -> tuple[str, int]:
    """Look at a watched operation again, as scheduled by a check task.

    2xx tells Cloud Tasks the check is done; an exception (failing to schedule the next check or
    to publish) answers 500, and Cloud Tasks retries with backoff.
    """
    # Defence in depth behind IAM (only the invoker account may call): tasks of our queue only.
    queue = request.headers.get("X-CloudTasks-QueueName", "")
    if queue not in SETTINGS.queue_names:
        log.warning(
            "refused a check that did not come from the configured queue",
            extra={"fields": {"event": Event.CHECK_REFUSED, "queue_header": queue[:200]}},
        )
        return ("only tasks of opwatch's own Cloud Tasks queue may call this function\n", 403)
    try:
        state = checks.decode(request.get_data(cache=False))
    except InvalidCheckBody as error:
        # Retrying cannot repair the body, so acknowledge the task (Cloud Tasks drops it); the
        # error log keeps it visible. Nothing was fetched.
        log.error(
            "rejected a check body opwatch did not write: %s",
            error,
            extra={
                "fields": {
                    "event": Event.CHECK_REFUSED,
                    "task": request.headers.get("X-CloudTasks-TaskName", "")[:200],
                }
            },
        )
        return ("", 204)
    outcome = NOTIFIER.on_check(state)
    return (outcome.value if outcome else "", 200)
