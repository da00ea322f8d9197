"""The example subscriber in examples/chat_notifier/.

Unit tests load the function with functions-framework (in process) and give it a real loopback
HTTP server as the Chat webhook. The e2e test runs it as a functions-framework process, fed by
a push subscription of the Pub/Sub emulator on the local stack's results topic, and follows a
watch from its request to the Chat message. Every wait has a timeout; nothing sleeps blindly.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import functions_framework
import pytest
import requests

from opwatch import checks
from opwatch_client import InvalidNotification, Overdue, parse_message
from tests.fakes import OPERATION, Harness, failed, pending, pubsub_message, succeeded

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "chat_notifier"
SOURCE = EXAMPLE / "main.py"


class Webhook:
    """A loopback HTTP server that records each POST body and answers with ``status``."""

    def __init__(self) -> None:
        self.bodies: queue.Queue[dict[str, Any]] = queue.Queue()
        self.status = 200
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if hook.status == 200:
                    hook.bodies.put(json.loads(body))
                self.send_response(hook.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/spaces/X/messages"

    def next(self, timeout: float = 10.0) -> dict[str, Any]:
        try:
            return self.bodies.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"the webhook received nothing within {timeout:.0f}s")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture
def chat(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The example's chat module (imported from its folder, as functions-framework does)."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import chat as module

    yield module
    sys.modules.pop("chat", None)


@dataclass
class Function:
    client: Any
    module: ModuleType

    def deliver(self, message: dict[str, Any], event_id: str = "1") -> int:
        """POST a messagePublished CloudEvent (binary mode), as Eventarc does."""
        headers = {
            "ce-specversion": "1.0",
            "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
            "ce-source": "//pubsub.googleapis.com/projects/p/topics/opwatch-results",
            "ce-id": event_id,
        }
        response = self.client.post("/", json={"message": message}, headers=headers)
        return int(response.status_code)


@pytest.fixture
def function(
    monkeypatch: pytest.MonkeyPatch, webhook: Webhook, chat: ModuleType
) -> Iterator[Function]:
    monkeypatch.setenv("CHAT_WEBHOOK_URL", webhook.url)
    monkeypatch.setattr(sys, "path", [*sys.path])
    app = functions_framework.create_app("on_notification", source=str(SOURCE))
    yield Function(app.test_client(), sys.modules["main"])
    sys.modules.pop("main", None)


def wire(message: Any) -> dict[str, Any]:
    """A published opwatch notification as a PubsubMessage in JSON."""
    return {
        "data": base64.b64encode(message.data).decode(),
        "attributes": dict(message.attributes),
        "messageId": "42",
    }


def notify(harness: Harness, *results: Any, **request: Any) -> Any:
    harness.fetch.results = list(results)
    harness.handlers.on_watch_message(pubsub_message({"operation": OPERATION, **request}))
    harness.run_checks()
    return harness.publish.messages[-1]


# --- the card -----------------------------------------------------------------------------------


def test_card_of_a_failure_says_what_failed(harness: Harness, chat: ModuleType) -> None:
    message = notify(harness, failed(message="index build failed"), labels={"team": "search"})
    card = chat.card(parse_message(message.data, message.attributes))
    assert card["text"].startswith("\N{CROSS MARK} FAILED: " + OPERATION)
    widgets = card["cardsV2"][0]["card"]["sections"][0]["widgets"]
    rows = {w["decoratedText"]["topLabel"]: w["decoratedText"]["text"] for w in widgets}
    assert rows["Outcome"] == "FAILED" and rows["Error"] == "index build failed"
    assert rows["label team"] == "search" and rows["Watch"] == "m-1"
    assert card["cardsV2"][0]["card"]["header"]["subtitle"] == OPERATION


def test_card_of_an_invalid_request_and_a_long_watch(harness: Harness, chat: ModuleType) -> None:
    harness.handlers.on_watch_message(pubsub_message(None, raw=b"[]"))
    note = parse_message(harness.publish.messages[-1].data)
    card = chat.card(note)
    assert "(no operation)" in card["text"] and card["text"].startswith("\N{INFORMATION SOURCE}")
    assert chat._duration(timedelta(hours=2, minutes=3, seconds=4).total_seconds()) == "2h 3m 4s"
    assert chat._duration(65) == "1m 5s"


def test_a_webhook_error_status_raises(chat: ModuleType) -> None:
    hook = chat.Webhook("https://chat.invalid/x", post=lambda url, body, timeout: 302)
    with pytest.raises(RuntimeError, match="302"):
        hook.send({"text": "x"})


# --- the function -------------------------------------------------------------------------------


def test_a_notification_is_posted_once(
    function: Function, webhook: Webhook, harness: Harness
) -> None:
    message = notify(harness, succeeded())
    assert function.deliver(wire(message)) == 200
    posted = webhook.next()
    assert posted["text"] == f"\N{WHITE HEAVY CHECK MARK} SUCCEEDED: {OPERATION}"
    # Redelivered (same watch_id): acknowledged, not posted again.
    assert function.deliver(wire(message), event_id="2") == 200
    assert webhook.bodies.empty()


def test_what_is_not_a_notification_is_acknowledged(function: Function, webhook: Webhook) -> None:
    junk = {"data": base64.b64encode(b'{"hello": 1}').decode(), "messageId": "9"}
    assert function.deliver(junk) == 200
    assert webhook.bodies.empty()


def test_a_failed_post_is_retried_and_then_posted(
    function: Function, webhook: Webhook, harness: Harness
) -> None:
    message = notify(harness, succeeded())
    webhook.status = 500
    assert function.deliver(wire(message)) == 500  # Eventarc retries
    webhook.status = 200
    assert function.deliver(wire(message), event_id="2") == 200
    assert webhook.next()["text"].endswith(OPERATION)


def test_a_missing_webhook_url_names_the_variable(
    function: Function, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHAT_WEBHOOK_URL")
    function.module.webhook.cache_clear()
    with pytest.raises(RuntimeError, match="CHAT_WEBHOOK_URL"):
        function.module.webhook()


# --- on the local stack -------------------------------------------------------------------------


@pytest.mark.e2e
def test_a_watch_ends_as_a_chat_message(local_stack: Any, webhook: Webhook) -> None:
    from opwatch_local.procs import free_port

    config = local_stack.config
    port = free_port()
    env = {
        **os.environ,
        "CHAT_WEBHOOK_URL": webhook.url,
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "functions-framework"),
            "--target=on_notification",
            f"--source={SOURCE}",
            "--signature-type=cloudevent",
            "--host=127.0.0.1",
            f"--port={port}",
        ],
        cwd=EXAMPLE,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    subscription = f"projects/{config.project}/subscriptions/chat-notifier-push-{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                requests.get(f"http://127.0.0.1:{port}/robots.txt", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the example function did not start"
                threading.Event().wait(0.1)
        # The push path names the topic, so the CloudEvent's source is the topic, as on Eventarc.
        local_stack.client.subscriber().create_subscription(
            request={
                "name": subscription,
                "topic": config.results_topic_path,
                "push_config": {
                    "push_endpoint": f"http://127.0.0.1:{port}/{config.results_topic_path}"
                },
                "ack_deadline_seconds": 10,
            },
            timeout=30,
        )
        operation = local_stack.client.simulator().create_operation(
            duration=1, error={"code": 9, "message": "index build failed"}
        )
        local_stack.client.publish_watch_request(
            {
                "operation": operation,
                "watch_id": "e2e-chat",
                "labels": {"team": "chat"},
                "polling": {"initial_delay": "1s", "max_delay": "2s"},
            }
        )
        posted = webhook.next(timeout=60)
        assert posted["text"].startswith("\N{CROSS MARK} FAILED: ")
        assert posted["cardsV2"][0]["cardId"] == "opwatch-e2e-chat"
        rows = posted["cardsV2"][0]["card"]["sections"][0]["widgets"]
        assert {"decoratedText": {"topLabel": "label team", "text": "chat"}} in rows
    finally:
        local_stack.client.subscriber().delete_subscription(
            request={"subscription": subscription}, timeout=30
        )
        os.killpg(process.pid, 15)
        process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()


def overdue_message(harness: Harness) -> Any:
    """A watch that asked warn_overdue, past 1.5 x its hint: its overdue message."""
    request = {
        "operation": OPERATION,
        "watch_id": "w-late",
        "expected_duration": "2s",
        "warn_overdue": True,
        "labels": {"team": "search"},
    }
    harness.fetch.results = [pending()] * 6
    harness.handlers.on_watch_message(pubsub_message(request, "m-late"))
    for _ in range(5):
        task = harness.schedule.tasks.pop(0)
        harness.clock.now = max(harness.clock.now, task.when)
        harness.handlers.on_check(checks.decode(task.body), retries=0)
    [message] = [m for m in harness.publish.messages if m.attributes.get("overdue")]
    return message


def test_an_overdue_message_is_read_as_such_and_posted_once_beside_its_outcome(
    function: Function, webhook: Webhook, harness: Harness
) -> None:
    message = overdue_message(harness)
    overdue = parse_message(message.data, message.attributes)
    assert isinstance(overdue, Overdue) and overdue.watch_id == "w-late"
    assert overdue.age_seconds > overdue.overdue_after_seconds == 3.0

    assert function.deliver(wire(message)) == 200
    assert function.deliver(wire(message), event_id="2") == 200  # a redelivery
    posted = webhook.next()
    assert posted["text"].startswith("⏳ overdue") and webhook.bodies.empty()
    widgets = posted["cardsV2"][0]["card"]["sections"][0]["widgets"]
    assert {"decoratedText": {"topLabel": "label team", "text": "search"}} in widgets

    ended = notify(harness, succeeded())
    assert function.deliver(wire(ended), event_id="3") == 200
    assert webhook.next()["text"].startswith("✅")


def test_an_overdue_message_that_breaks_its_schema_is_refused(harness: Harness) -> None:
    message = overdue_message(harness)
    broken = {**json.loads(message.data), "age_seconds": "long"}
    with pytest.raises(InvalidNotification, match="overdue message: age_seconds"):
        parse_message(json.dumps(broken), message.attributes)
    with pytest.raises(InvalidNotification, match="watch_id disagrees"):
        parse_message(message.data, {**message.attributes, "watch_id": "other"})
    late = {**json.loads(message.data), "observed": "yesterdayZ"}  # the pattern, not a time
    with pytest.raises(InvalidNotification, match="RFC 3339"):
        parse_message(json.dumps(late), message.attributes)
