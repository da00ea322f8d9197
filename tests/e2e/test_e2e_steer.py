"""Operators on the local stack: list the watches in flight, cancel some, one mid-check.

Issue 11's acceptance run: 20 watches; ``opwatch list`` shows all 20; 5 are cancelled (one
while its check's GET is in flight); exactly 5 CANCELLED and 15 other notifications arrive, and
the simulator's GET counts of the 5 stop at the cancel.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from opwatch_local.cli import main
from opwatch_local.inbox import Inbox
from opwatch_local.procs import wait_until
from opwatch_local.stack import LocalStack

pytestmark = pytest.mark.e2e

FAST = {"initial_delay": "1s", "max_delay": "2s"}


def cli(capsys: pytest.CaptureFixture[str], env: dict[str, str], *argv: str) -> tuple[int, str]:
    code = main(list(argv), env)
    return code, capsys.readouterr().out


def listed(capsys: pytest.CaptureFixture[str], env: dict[str, str]) -> list[dict[str, Any]]:
    code, out = cli(capsys, env, "list", "--json", "--label", "suite=steer")
    assert code == 0
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


def test_list_then_cancel_five_of_twenty_one_mid_check(
    local_stack: LocalStack, inbox: Inbox, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, env = local_stack.client.simulator(), local_stack.env()
    ids = [f"e2e-steer-{i:02d}" for i in range(20)]
    doomed = ids[:5]
    names = {}
    for watch_id in ids:
        long = watch_id in doomed
        names[watch_id] = sim.create_operation(duration=600 if long else 10)
    # The first doomed watch's first check answers slowly: it is cancelled during that GET.
    sim.set_faults(names[doomed[0]], script=["ok", {"kind": "slow", "seconds": 4}])
    for watch_id in ids:
        request = {
            "operation": names[watch_id],
            "watch_id": watch_id,
            "polling": FAST,
            "labels": {"suite": "steer"},
        }
        local_stack.client.publish_watch_request(request)

    wait_until(lambda: len(listed(capsys, env)) == 20, 8, describe="all 20 watches listed")
    rows = {row["watch_id"]: row for row in listed(capsys, env)}
    assert set(rows) == set(ids)
    assert all(row["operation"] == names[row["watch_id"]] for row in rows.values())

    code, out = cli(capsys, env, "status", doomed[1])
    assert code == 0 and doomed[1] in out

    # Cancel the first while its slow GET is in flight, then the other four.
    wait_until(lambda: sim.stats(names[doomed[0]]).gets >= 2, 15, describe="the slow check")
    for watch_id in doomed:
        code, out = cli(capsys, env, "cancel", watch_id, "--reason", "e2e")
        assert code == 0, out
    gets_at_cancel = {watch_id: sim.stats(names[watch_id]).gets for watch_id in doomed}

    notes = {watch_id: inbox.wait(watch_id, timeout=60) for watch_id in ids}
    assert {w: [n.outcome for n in notes[w]] for w in doomed} == {w: ["CANCELLED"] for w in doomed}
    assert all([n.outcome for n in notes[w]] == ["SUCCEEDED"] for w in ids[5:])
    for watch_id in doomed:
        assert notes[watch_id][0].data["error"]["message"] == "the watch was cancelled: e2e"

    # Nothing more: no second notification, and no GET after the cancel returned.
    for watch_id in ids:
        assert len(inbox.settle(watch_id, 0.2)) == 1
    inbox.settle(doomed[0], 3.0)
    assert {w: sim.stats(names[w]).gets for w in doomed} == gets_at_cancel
    # The ledger remembers the finished watch; the queue holds nothing of it any more.
    code, out = cli(capsys, env, "status", doomed[0], "--json")
    [record] = json.loads(out)
    assert code == 0 and (record["state"], record["outcome"]) == ("FINISHED", "CANCELLED")
    code, out = cli(capsys, env, "status", doomed[0], "--from-queue")
    assert code == 1 and "no pending check" in out
    code, out = cli(capsys, env, "list", "--state", "finished", "--json", "--label", "suite=steer")
    assert code == 0 and {r["watch_id"] for r in json.loads(out)} == set(ids)


def test_cancel_operation_also_cancels_the_operation_itself(
    local_stack: LocalStack, inbox: Inbox, capsys: pytest.CaptureFixture[str]
) -> None:
    """google.longrunning CancelOperation: the operation ends with error code 1 (CANCELLED);
    the watch, cancelled first, ends CANCELLED once."""
    sim, env = local_stack.client.simulator(), local_stack.env()
    name = sim.create_operation(duration=600)
    request = {"operation": name, "watch_id": "e2e-cancel-op", "polling": FAST}
    local_stack.client.publish_watch_request(request)
    wait_until(lambda: sim.stats(name).gets >= 1, 15, describe="the first look")
    wait_until(
        lambda: cli(capsys, env, "status", "e2e-cancel-op")[0] == 0, 15, describe="its check"
    )
    code, out = cli(capsys, env, "cancel", "e2e-cancel-op", "--cancel-operation")
    assert code == 0, out
    assert f"{name}: cancel requested" in out
    [note] = inbox.wait("e2e-cancel-op", timeout=60)
    assert note.outcome == "CANCELLED"
    status, operation = sim.get_operation(name)
    assert (status, operation["done"], operation["error"]["code"]) == (200, True, 1)
