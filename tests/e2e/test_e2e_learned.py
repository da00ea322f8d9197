"""Learned durations on the local stack: a kind learned from finished operations schedules the
next watch of it, and a watch that asked is warned once when its operation runs past the kind's
95th percentile, before its notification (issue 17).

The watches name their ``kind`` (one of this test's own), so what other tests of the session
finish does not teach it anything.
"""

from __future__ import annotations

import uuid

import pytest

from opwatch import learned
from opwatch_local.inbox import Inbox
from opwatch_local.stack import LocalStack

pytestmark = pytest.mark.e2e


def test_a_learned_kind_schedules_and_warns_once_before_the_notification(
    local_stack: LocalStack, inbox: Inbox
) -> None:
    sim, kind = local_stack.client.simulator(), f"e2e-{uuid.uuid4().hex[:8]}"
    first = [f"e2e-learn-{kind}-{i}" for i in range(learned.DEFAULT_MIN_SAMPLES)]
    for watch_id in first:
        name = sim.create_operation(duration=2)
        local_stack.client.publish_watch_request(
            {"operation": name, "watch_id": watch_id, "kind": kind}
        )
    for watch_id in first:
        [note] = inbox.wait(watch_id, timeout=60)
        assert note.data["schedule"] == {"source": "profile"}

    late, quiet = f"e2e-late-{kind}", f"e2e-quiet-{kind}"
    for watch_id, asks in ((late, True), (quiet, False)):
        name = sim.create_operation(duration=6)  # 3x the kind's median
        request = {"operation": name, "watch_id": watch_id, "kind": kind, "warn_overdue": asks}
        local_stack.client.publish_watch_request(request)

    overdue, ended = inbox.wait(late, count=2, timeout=60)
    assert overdue.attributes["ce-type"] == "dev.opwatch.operation.v1.overdue"
    assert "outcome" not in overdue.attributes
    assert overdue.data["schedule"] == {"source": "learned", "kind": kind, "samples": 5}
    assert ended.outcome == "SUCCEEDED"
    assert ended.data["schedule"]["source"] == "learned"
    [quiet_note] = inbox.wait(quiet, timeout=60)
    assert quiet_note.outcome == "SUCCEEDED"
    assert len(inbox.settle(late, 1.0)) == 2 and len(inbox.settle(quiet, 0.1)) == 1
