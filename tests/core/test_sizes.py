"""Sizes as the services count them: every valid watch request fits a task and a notification.

The watch-request limits (docs/contracts.md) are chosen so that nothing that passes validation
can fail later for its size; these properties check that over the largest valid requests, with
the characters that cost the most bytes.

- Cloud Tasks: "The maximum task size is 100KB", counted on the whole Task (name, URL,
  headers, body): https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues.tasks/create
- Pub/Sub: message data at most 10 MB, at most 100 attributes, attribute keys at most 256
  bytes and values at most 1,024 bytes: https://cloud.google.com/pubsub/quotas#resource_limits
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from google.cloud import tasks_v2
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from opwatch import checks, contracts, notification
from opwatch.adapters import CloudTasksQueue
from opwatch.contracts import WatchRequest, validate_watch_request
from opwatch.core import Finish, Outcome, Progress
from opwatch.settings import Allowlists, Settings, TasksConfig, WatchConfig
from tests.fakes import T0

TASK_LIMIT = 100 * 1000  # 100 KB read as the smaller of 100,000 and 102,400 bytes
PUBSUB_DATA_LIMIT = 10 * 1000 * 1000
PUBSUB_ATTRIBUTES, ATTRIBUTE_KEY_BYTES, ATTRIBUTE_VALUE_BYTES = 100, 256, 1024

LONG_TOPIC = "projects/" + "p" * 30 + "/topics/" + "t" * 255
LONG_API = ".".join(["a" * 63] * 3) + ".googleapis.com"  # a 207-character host
DEPLOYMENT = Settings(
    watch=WatchConfig(results_topic="projects/" + "p" * 30 + "/topics/opwatch-results"),
    tasks=TasksConfig(
        queue="projects/" + "p" * 30 + "/locations/us-central1/queues/" + "q" * 100,
        check_url="https://" + "c" * 49 + "-123456789012.northamerica-northeast1.run.app",
        invoker_service_account="i" * 30 + "@" + "p" * 30 + ".iam.gserviceaccount.com",
    ),
    allowlists=Allowlists(apis=frozenset({LONG_API}), notify_topics=frozenset({LONG_TOPIC})),
)

# What costs the most bytes once written: 4-byte UTF-8 characters, and ASCII that JSON escapes.
COSTLY = st.sampled_from(["\U0001f600", "\U0001d518", "\U0010fffd", '"', "\\", "\u00e9", "x"])


def exactly(length: int, chars: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``length`` characters: one drawn character repeated, or two alternating."""
    return st.tuples(chars, chars).map(lambda pair: ("".join(pair) * length)[:length])


def largest_request(segment: str, label_values: list[str], watch_id: str) -> dict[str, Any]:
    """A valid request at every limit at once."""
    operation = "/".join([segment] * 49) + "/operations/"
    operation += "o" * (contracts.MAX_OPERATION_CHARS - len(operation))
    keys = [f"k{i:02d}" + "x" * 60 for i in range(contracts.MAX_LABELS)]
    return {
        "operation": operation,
        "api": LONG_API,
        "api_version": "v1" + "alpha" * 3 + "9" * 3,
        "labels": dict(zip(keys, label_values, strict=True)),
        "timeout": "2592000s",
        "expected_duration": "2591999.999999999s",
        "notify_topic": LONG_TOPIC,
        "watch_id": watch_id,
        "polling": {
            "initial_delay": "3599.999999999s",
            "max_delay": "21599.999999999s",
            "multiplier": 3.999999999999999,
            "not_found_grace": "3599.999999999s",
        },
    }


largest_requests = st.builds(
    largest_request,
    exactly(9, st.sampled_from("az09_~+=@()-")),
    st.lists(
        exactly(contracts.MAX_LABEL_VALUE_CHARS, COSTLY),
        min_size=contracts.MAX_LABELS,
        max_size=contracts.MAX_LABELS,
    ),
    exactly(128, st.sampled_from('"\\~!x')),
)
# The costliest of all: every label value 256 four-byte characters, a watch id JSON escapes.
WORST = largest_request("a" * 9, ["\U0001f600" * 256] * contracts.MAX_LABELS, '"' * 128)


def parse(request: dict[str, Any]) -> WatchRequest:
    return validate_watch_request(
        request,
        default_watch_id="m",
        allowed_apis=DEPLOYMENT.allowlists.apis,
        allowed_notify_topics=DEPLOYMENT.allowlists.notify_topics,
    )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.large_base_example])
@example(request=WORST, polls=10**8)
@given(request=largest_requests, polls=st.sampled_from([1, 10**8]))
def test_every_valid_request_makes_a_task_cloud_tasks_accepts(
    request: dict[str, Any], polls: int
) -> None:
    watch = parse(request)
    progress = Progress(started=T0, polls=polls, transient_errors=polls, seen=True, parks=polls)
    chain = checks.chain_for_message("m" * 100)
    task = checks.encode(watch, progress, T0 + timedelta(days=30), chain)

    create = CloudTasksQueue(DEPLOYMENT.tasks, client_factory=lambda: None).build(task)

    assert tasks_v2.Task.pb(create.task).ByteSize() <= TASK_LIMIT
    assert len(task.task_id) <= 500  # the task id limit
    assert checks.decode(task.body).request == watch.to_json()


def test_the_largest_requests_are_valid_and_near_the_limit() -> None:
    """The properties here are not vacuous: 32 labels of 256 emoji are valid and cost 32 KiB;
    written with JSON escapes (12 bytes an emoji) they overflowed the task."""
    watch = parse(WORST)
    task = checks.encode(watch, Progress(started=T0, polls=1), T0, "c0")
    assert len(task.body) > 32 * 256 * 4
    escaped = json.dumps(json.loads(task.body), separators=(",", ":")).encode()
    assert len(escaped) > TASK_LIMIT


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.large_base_example])
@example(request=WORST, outcome=Outcome.SUCCEEDED, operation_bytes=12 * 1000 * 1000)
@given(
    request=largest_requests,
    outcome=st.sampled_from([o for o in Outcome if o is not Outcome.INVALID_REQUEST]),
    operation_bytes=st.sampled_from([0, 1000, 12 * 1000 * 1000]),
)
def test_every_valid_request_makes_a_notification_pubsub_accepts(
    request: dict[str, Any], outcome: Outcome, operation_bytes: int
) -> None:
    watch = parse(request)
    operation = {
        "name": watch.operation,
        "done": True,
        "response": {"blob": "😀" * (operation_bytes // 4)},
    }
    error = (
        None if outcome is Outcome.SUCCEEDED else {"code": 9, "message": "x" * 2000, "details": []}
    )
    finish = Finish(outcome, operation, error, Progress(started=T0, polls=10**8))

    message = notification.finished(
        watch, finish, now=T0 + timedelta(days=30), results_topic=DEPLOYMENT.watch.results_topic
    )

    attributes_bytes = sum(len(k.encode()) + len(v.encode()) for k, v in message.attributes.items())
    assert len(message.data) + attributes_bytes <= PUBSUB_DATA_LIMIT
    assert len(message.attributes) <= PUBSUB_ATTRIBUTES
    for key, value in message.attributes.items():
        assert len(key.encode()) <= ATTRIBUTE_KEY_BYTES
        assert len(value.encode()) <= ATTRIBUTE_VALUE_BYTES
    # Nothing was clipped to fit: every label reaches its attribute whole.
    for key, value in watch.labels.items():
        assert message.attributes[f"label_{key}"] == value
    assert message.attributes["operation"] == watch.operation
    assert json.loads(message.data)["labels"] == dict(watch.labels)
