"""The reference for bench/check_cost.py: a minimal hand-written check handler.

It does what opwatch's ``on_check`` must do and nothing else: read the task body (to learn which
operation), GET the operation with a ``requests.Session`` (as opwatch does locally, where no
credentials are sent), parse its JSON, and create the next task with the same ``tasks_v2`` client
and typed request on the same emulator queue. No validation, no policy, no logging. Served by
functions-framework like opwatch::

    functions-framework --target=check --source=bench/baseline_check.py

Configured by the variables the local stack gives opwatch: ``OPERATIONS_API_ENDPOINT``,
``CLOUD_TASKS_EMULATOR_HOST``, ``TASKS_QUEUE`` and ``CHECK_URL``.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta

import flask
import functions_framework
import grpc
import requests
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

ENDPOINT = os.environ["OPERATIONS_API_ENDPOINT"].rstrip("/")
QUEUE = os.environ["TASKS_QUEUE"]
CHECK_URL = os.environ["CHECK_URL"]
SESSION = requests.Session()
TASKS = tasks_v2.CloudTasksClient(
    transport=CloudTasksGrpcTransport(
        channel=grpc.insecure_channel(os.environ["CLOUD_TASKS_EMULATOR_HOST"])
    )
)


@functions_framework.http
def check(request: flask.Request) -> tuple[str, int]:
    body = request.get_data(cache=False)
    operation = json.loads(body)["request"]["operation"]
    response = SESSION.get(
        f"{ENDPOINT}/v1/{operation}",
        timeout=10,
        allow_redirects=False,
        headers={"Accept": "application/json"},
    )
    if response.json().get("done"):
        return ("done", 200)
    TASKS.create_task(
        request=tasks_v2.CreateTaskRequest(
            parent=QUEUE,
            task=tasks_v2.Task(
                name=f"{QUEUE}/tasks/b{uuid.uuid4().hex}",
                http_request=tasks_v2.HttpRequest(
                    url=CHECK_URL,
                    http_method=tasks_v2.HttpMethod.POST,
                    headers={"Content-Type": "application/json"},
                    body=body,
                ),
                schedule_time=datetime.now(UTC) + timedelta(seconds=5),
            ),
        ),
        timeout=30,
    )
    return ("", 200)
