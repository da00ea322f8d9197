"""The Cloud Functions of opwatch. Deploy this folder as the source of each.

- ``on_watch_request``: HTTP function behind a Pub/Sub push subscription: a watch request
  published to the watch topic (or a parked watch coming back).
- ``on_check``: HTTP function, called by Cloud Tasks with the body of a check task.
- ``on_audit_entry``: HTTP function behind a Pub/Sub push subscription on the audit topic, fed
  by a Logging sink (discovery, opt-in: docs/discovery.md).
- ``on_sweep``: HTTP function a scheduler calls with the parents to sweep (docs/discovery.md,
  the sweep finds pending operations no audit entry announced).

Configuration is read here, once, when the instance starts: a missing setting stops it with a
message naming the variable (see docs/configuration.md).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable

import flask
import functions_framework

from opwatch import checks, logs
from opwatch.adapters import (
    CloudTasksQueue,
    FirestoreLedger,
    NotificationPublisher,
    OperationFetcher,
)
from opwatch.contracts import DEFAULT_API
from opwatch.core import Outcome
from opwatch.envelope import CheckHeaders, PushedMessage
from opwatch.errors import ConfigurationError, InvalidCheckBody
from opwatch.handlers import Handlers
from opwatch.logs import Event
from opwatch.settings import Settings
from opwatch.watchlog import WatchLog

SETTINGS = Settings.from_env(os.environ)
logs.configure(SETTINGS.log_level)
FETCHER = OperationFetcher(SETTINGS.fetch)
HANDLERS = Handlers(
    SETTINGS,
    fetch=FETCHER,
    queue=CloudTasksQueue(SETTINGS.tasks),
    publish=NotificationPublisher(),
    # The ledger (docs/how-it-works.md, "The ledger"): written on the side, never waited on.
    ledger=(
        FirestoreLedger(SETTINGS.ledger.database, SETTINGS.ledger.retention_days)
        if SETTINGS.ledger
        else None
    ),
)


@functions_framework.http
def on_watch_request(request: flask.Request) -> tuple[str, int]:
    """Start watching the operation named in a watch request, pushed by Pub/Sub.

    The push envelope is read here rather than by functions-framework's CloudEvent conversion,
    which answers 400 to a message without data before opwatch could answer it: every message
    gets its answer, an INVALID_REQUEST notification when it is not a watch request. 2xx
    acknowledges it; an exception (failing to schedule or publish) answers 500 and Pub/Sub
    delivers the message again.
    """
    return _pushed(request, HANDLERS.on_watch_message, Event.REQUEST_INVALID)


@functions_framework.http
def on_audit_entry(request: flask.Request) -> tuple[str, int]:
    """Discover an operation in an audit entry that a Logging sink published, pushed by Pub/Sub.

    The push envelope is read as in :func:`on_watch_request`. Every entry that is not one
    opwatch acts on is logged and acknowledged (2xx): no notification, no redelivery. An
    exception (failing to schedule or publish) answers 500 and Pub/Sub delivers it again.
    """
    return _pushed(request, HANDLERS.on_audit_message, Event.AUDIT_IGNORED)


def _pushed(
    request: flask.Request,
    handle: Callable[[PushedMessage], Outcome | None],
    refused: Event,
) -> tuple[str, int]:
    """Hand the message of a Pub/Sub push envelope to ``handle``; 2xx acknowledges it."""
    envelope = request.get_json(force=True, silent=True, cache=False)
    message = envelope.get("message") if isinstance(envelope, dict) else None
    if not isinstance(message, dict):
        # Pub/Sub always sends an envelope with a message: whoever sent this is not Pub/Sub,
        # and there is no message to answer.
        WatchLog().event(logging.WARNING, refused, reason="not a Pub/Sub push")
        return ("expected a Pub/Sub push: a JSON object with a message\n", 400)
    outcome = handle(PushedMessage.from_json(message))
    return (outcome.value if outcome else "", 200)


@functions_framework.http
def on_check(request: flask.Request) -> tuple[str, int]:
    """Look at a watched operation again, as scheduled by a check task.

    2xx tells Cloud Tasks the check is done; an exception (failing to schedule the next check or
    to publish) answers 500, and Cloud Tasks retries with backoff.
    """
    # Defence in depth behind IAM (only the invoker account may call): tasks of our queue only.
    headers = CheckHeaders.from_headers(request.headers)
    queue = headers.queue
    if queue not in SETTINGS.tasks.queue_names:
        WatchLog().event(
            logging.WARNING,
            Event.CHECK_REFUSED,
            reason="not a task of the configured queue",
            queue_header=queue[:200],
        )
        return ("only tasks of opwatch's own Cloud Tasks queue may call this function\n", 403)
    try:
        state = checks.decode(request.get_data(cache=False))
    except InvalidCheckBody as error:
        # Retrying cannot repair the body, so acknowledge the task (Cloud Tasks drops it); the
        # error log keeps it visible. Nothing was fetched.
        WatchLog().event(
            logging.ERROR, Event.CHECK_REFUSED, reason=str(error), task=headers.task_name[:200]
        )
        return ("", 204)
    outcome = HANDLERS.on_check(state, retries=headers.retries)
    return (outcome.value if outcome else "", 200)


@functions_framework.http
def on_sweep(request: flask.Request) -> tuple[str, int]:
    """Sweep the parents a scheduler names: ``{"parents": ["[API=]projects/P/locations/L"]}``.

    Answers 200 with what each sweep found and did; 400 (nothing swept) for a body that names no
    valid parent of an allowed API: a scheduler's retry cannot fix that; 500 when a parent could
    not be listed, after sweeping the others, so the scheduler tries again.
    """
    from opwatch import sweep  # only the sweep function's instances load it

    body = request.get_json(force=True, silent=True, cache=False)
    raw = body.get("parents") if isinstance(body, dict) else None
    try:
        if not isinstance(raw, list) or not raw or not all(isinstance(p, str) for p in raw):
            raise ConfigurationError('expected {"parents": ["[API=]projects/P/locations/L", ...]}')
        parents = [sweep.Parent.parse(text, DEFAULT_API) for text in raw]
        for parent in parents:
            if parent.api not in SETTINGS.allowlists.apis:
                raise ConfigurationError(f"{parent.api} is not in ALLOWED_APIS")
    except ConfigurationError as error:
        WatchLog().event(logging.WARNING, Event.SWEEP_FAILED, reason=str(error))
        return (f"{error}\n", 400)
    results, failed = HANDLERS.sweep_all(parents, FETCHER.list_page)
    return (json.dumps(results) + "\n", 500 if failed else 200)
