"""The whole pipeline on real emulators: what subscribers receive, and how often opwatch polled.

Pub/Sub emulator -> on_watch_request (functions-framework process) -> operations simulator ->
Cloud Tasks emulator -> on_check (process) -> ... -> results topic. Every wait is on a condition
with a bounded timeout; the operations are short and the watches poll fast (``polling``
overrides within the contract's bounds) so the suite stays well under its 5-minute budget.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests

from opwatch_local.inbox import Arrival, Inbox
from opwatch_local.simulator import SimulatorServer
from opwatch_local.stack import LocalStack
from opwatch_local.stack_config import Ports, StackConfig

pytestmark = pytest.mark.e2e

FAST = {"initial_delay": "1s", "max_delay": "2s"}


def watch(stack: LocalStack, operation: str, watch_id: str, **fields: Any) -> str:
    request = {"operation": operation, "watch_id": watch_id, "polling": FAST, **fields}
    return stack.client.publish_watch_request(request)


def only(notes: list[Arrival]) -> tuple[dict[str, Any], dict[str, str]]:
    assert len(notes) == 1, [n.data for n in notes]
    return notes[0].data, notes[0].attributes


def test_success_is_published_once_with_the_operation(
    local_stack: LocalStack, inbox: Inbox
) -> None:
    sim = local_stack.client.simulator()
    name = sim.create_operation(
        duration=3, response={"@type": "type.googleapis.com/x.Index", "id": 7}
    )
    watch(local_stack, name, "e2e-success", labels={"team": "search"})
    data, attributes = only(inbox.wait("e2e-success"))
    assert data["outcome"] == "SUCCEEDED"
    assert data["operation"]["response"] == {"@type": "type.googleapis.com/x.Index", "id": 7}
    assert data["error"] is None
    assert data["polls"] == sim.stats(name).gets >= 2
    assert not any(sim.stats(name).authorization), "no credentials to a local endpoint"
    assert attributes["outcome"] == "SUCCEEDED"
    assert attributes["label_team"] == "search"
    assert attributes["operation"] == name
    assert attributes["ce-specversion"] == "1.0"
    assert attributes["ce-type"] == "dev.opwatch.operation.v1.finished"
    assert attributes["ce-source"] == f"//cloudaicompanion.googleapis.com/{name}"
    assert attributes["ce-id"] == "e2e-success"
    assert attributes["ce-time"] == data["observed_done"]


def test_failure_keeps_the_apis_error(local_stack: LocalStack, inbox: Inbox) -> None:
    sim = local_stack.client.simulator()
    error = {
        "code": 9,
        "message": "index build failed",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "REPO_TOO_BIG"}
        ],
    }
    name = sim.create_operation(duration=2, error=error)
    watch(local_stack, name, "e2e-failure")
    data, attributes = only(inbox.wait("e2e-failure"))
    assert (data["outcome"], attributes["outcome"]) == ("FAILED", "FAILED")
    assert data["error"] == error
    assert data["operation"]["error"] == error


def test_timeout_ends_the_watch_at_its_deadline(local_stack: LocalStack, inbox: Inbox) -> None:
    sim = local_stack.client.simulator()
    name = sim.create_operation(duration=600)
    watch(local_stack, name, "e2e-timeout", timeout="4s")
    data, _ = only(inbox.wait("e2e-timeout"))
    assert data["outcome"] == "TIMED_OUT"
    assert data["error"]["code"] == 4
    assert data["operation"]["done"] is False
    stats = sim.stats(name)
    assert data["polls"] == stats.gets
    assert 4.0 - 0.5 <= stats.times[-1] - stats.times[0] <= 4.0 + 4.0, (
        "the last look is at the deadline"
    )


def test_not_found_after_the_grace_window(local_stack: LocalStack, inbox: Inbox) -> None:
    sim = local_stack.client.simulator()
    name = "projects/opwatch-local/locations/us-central1/operations/never-created"
    watch(local_stack, name, "e2e-not-found", polling={**FAST, "not_found_grace": "3s"})
    data, _ = only(inbox.wait("e2e-not-found"))
    assert data["outcome"] == "NOT_FOUND"
    assert data["error"]["code"] == 5
    stats = sim.stats(name)
    assert stats.gets == data["polls"] > 1
    assert set(stats.statuses) == {404}
    assert stats.times[-1] - stats.times[0] >= 3.0 - 0.1


def test_operation_that_appears_late_is_watched_to_the_end(
    local_stack: LocalStack, inbox: Inbox
) -> None:
    sim = local_stack.client.simulator()
    name = sim.create_operation(duration=3, appear_after=1.5)
    watch(local_stack, name, "e2e-late")
    data, _ = only(inbox.wait("e2e-late"))
    assert data["outcome"] == "SUCCEEDED"
    assert sim.stats(name).statuses[0] == 404


def test_invalid_request_is_answered_with_reasons(local_stack: LocalStack, inbox: Inbox) -> None:
    message_id = local_stack.client.publish_watch_request(b"{this is not json")
    data, attributes = only(inbox.wait(message_id))
    assert (data["outcome"], attributes["outcome"]) == ("INVALID_REQUEST", "INVALID_REQUEST")
    assert data["error"]["code"] == 3
    [bad_request] = data["error"]["details"]
    assert "not valid JSON" in bad_request["fieldViolations"][0]["description"]
    assert data["polls"] == 0


def test_api_host_outside_the_allowlist_is_never_fetched(
    local_stack: LocalStack, inbox: Inbox
) -> None:
    sim = local_stack.client.simulator()
    name = sim.create_operation(duration=1)
    watch(local_stack, name, "e2e-evil", api="evil.example")
    data, _ = only(inbox.wait("e2e-evil"))
    assert data["outcome"] == "INVALID_REQUEST"
    violation = data["error"]["details"][0]["fieldViolations"][0]
    assert violation["field"] == "api"
    assert "ALLOWED_APIS" in violation["description"]
    assert sim.stats(name).gets == 0
    assert not any(name in r.get("path", "") for r in sim.requests())


def test_transient_faults_then_success(local_stack: LocalStack, inbox: Inbox) -> None:
    """The RetryInfo asks for 4 s; without it the schedule gives at most FAST's max_delay of 2 s
    after the second transient error (the backoff is capped there), so the gap shows that the
    hint was honoured. It asked for 1 s before, less than the schedule's own delay: a RetryInfo
    ignored passed too."""
    sim = local_stack.client.simulator()
    name = sim.create_operation(duration=2)
    sim.set_faults(name, script=["503", {"kind": "429-retry-info", "retry_after": 4}, "500"])
    watch(local_stack, name, "e2e-transient")
    data, _ = only(inbox.wait("e2e-transient"))
    assert data["outcome"] == "SUCCEEDED"
    stats = sim.stats(name)
    assert stats.statuses[:3] == (503, 429, 500)
    assert stats.statuses[-1] == 200
    assert data["polls"] == stats.gets
    assert stats.gaps[1] >= 4.0 - 0.05, "RetryInfo.retryDelay is a lower bound"
    assert stats.gaps[0] <= 2.0 + 1.0 and stats.gaps[2] <= 2.0 + 1.0, "no hint: FAST's 2 s at most"


def test_retry_after_is_honoured(local_stack: LocalStack, inbox: Inbox) -> None:
    sim = local_stack.client.simulator()
    name = sim.create_operation(duration=0)
    sim.set_faults(name, script=[{"kind": "429-retry-after", "retry_after": 3}])
    watch(local_stack, name, "e2e-retry-after")
    data, _ = only(inbox.wait("e2e-retry-after"))
    assert data["outcome"] == "SUCCEEDED"
    stats = sim.stats(name)
    assert stats.statuses == (429, 200)
    assert stats.gaps[0] >= 3.0 - 0.05, (
        f"polled again after {stats.gaps[0]:.2f}s despite Retry-After: 3"
    )


def test_a_redelivered_message_makes_one_polling_chain(
    local_stack: LocalStack, inbox: Inbox
) -> None:
    """Pub/Sub redelivers a message with the same message id: post that push twice."""
    sim = local_stack.client.simulator()
    name = sim.create_operation(duration=4)
    request = {"operation": name, "watch_id": "e2e-redelivered", "polling": FAST}
    data = base64.b64encode(json.dumps(request).encode()).decode()
    envelope = {"message": {"data": data, "messageId": "e2e-redelivered-1"}, "subscription": "s"}
    for _ in range(2):
        reply = requests.post(local_stack.config.watch_url, json=envelope, timeout=10)
        assert reply.status_code == 200, reply.text
    notes = inbox.wait("e2e-redelivered")
    notes = inbox.settle("e2e-redelivered", 2.0)
    assert [n.outcome for n in notes] == ["SUCCEEDED"], "one chain, one notification"
    # Each delivery looks once at the start; after that there is a single chain of checks.
    assert sim.stats(name).gets == notes[0].data["polls"] + 1


def test_a_watch_id_published_again_is_another_watch(local_stack: LocalStack, inbox: Inbox) -> None:
    sim = local_stack.client.simulator()
    name = sim.create_operation(duration=3)
    request = {"operation": name, "watch_id": "e2e-published-twice", "polling": FAST}
    local_stack.client.publish_watch_request(request)
    local_stack.client.publish_watch_request(request)
    notes = inbox.wait("e2e-published-twice", count=2)
    assert [n.outcome for n in notes] == ["SUCCEEDED", "SUCCEEDED"]


def test_operations_from_another_local_server(tmp_path: Any) -> None:
    with SimulatorServer(port=0) as other:
        created = other.simulator.create_operation(
            duration=1, response={"from": "the other server"}
        )
        name = created["name"]
        config = StackConfig(ports=Ports.free(), run_dir=tmp_path / "run")
        with LocalStack(config, environ={"OPERATIONS_API_ENDPOINT": other.url}) as stack:
            assert not stack.owns_simulator
            assert "simulator" not in [proc.name for proc in stack.processes]
            assert "OPWATCH_SIMULATOR_URL" not in stack.env()
            stack.client.publish_watch_request(
                {"operation": name, "watch_id": "e2e-other", "polling": FAST}
            )
            data, _ = only(Inbox(stack.client.pull_notifications).wait("e2e-other"))
        assert data["outcome"] == "SUCCEEDED", data["error"]
        assert data["operation"]["response"] == {"from": "the other server"}
        assert other.simulator.stats(name).gets == data["polls"]
