"""Learned durations: the kind of an operation, what a kind's summary says, and watches of a
learned kind polling as if they had a hint."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from opwatch import checks, kinds, learned, policy
from opwatch.contracts import CancelRequest, validate_watch_request
from opwatch.core import Fetched
from opwatch.errors import InvalidWatchRequest, LedgerUnavailable
from opwatch.learned import Expectation, Sample, Summary
from opwatch.logs import Event
from opwatch.settings import Settings
from opwatch.wire import rfc3339
from tests.fakes import (
    OPERATION,
    T0,
    EventLog,
    FakeLedger,
    Harness,
    RecordingPublish,
    make_harness,
    pubsub_message,
)

API = "cloudaicompanion.googleapis.com"
TYPE = "type.googleapis.com/google.cloud.cloudaicompanion.v1.OperationMetadata"


def metadata(target: str = "projects/p/locations/l/codeRepositoryIndexes/i", **more: Any) -> Any:
    return {"@type": TYPE, "verb": "create", "target": target, **more}


def test_the_kind_takes_the_ids_out_of_the_target() -> None:
    one = kinds.of_operation(API, {"metadata": metadata()})
    other = kinds.of_operation(
        API, {"metadata": metadata("projects/q/locations/m/codeRepositoryIndexes/j")}
    )
    assert (
        one
        == other
        == (
            "cloudaicompanion.googleapis.com|OperationMetadata|create|"
            "projects/*/locations/*/codeRepositoryIndexes/*"
        )
    )
    deleting = kinds.of_operation(API, {"metadata": {**metadata(), "verb": "delete"}})
    assert deleting != one


@pytest.mark.parametrize(
    "operation", [None, {}, {"metadata": "x"}, {"metadata": {"verb": 3, "target": None}}]
)
def test_what_an_operation_does_not_say_gives_a_coarser_kind(operation: Any) -> None:
    assert kinds.of_operation(API, operation) == f"{API}|||"


def test_a_discovered_operation_without_a_verb_takes_its_audit_method() -> None:
    method = "google.cloud.cloudaicompanion.v1.AdminService.CreateCodeRepositoryIndex"
    without_verb = {"metadata": {**metadata(), "verb": ""}}
    assert kinds.of_operation(API, without_verb, method=method).split("|")[2] == method
    assert kinds.of_operation(API, {"metadata": metadata()}, method=method).split("|")[2] == (
        "create"
    ), "the operation's own verb wins"


def test_a_named_kind_wins_and_separators_cannot_forge_one() -> None:
    assert kinds.of_operation(API, {"metadata": metadata()}, requested="index builds") == (
        "index builds"
    )
    forged = kinds.of_operation(API, {"metadata": {"verb": "a|b"}})
    assert forged.count("|") == 3


def samples(kind: str, seconds: list[float], exact: bool = True) -> list[Sample]:
    return [Sample(kind, s, T0 + timedelta(minutes=i), exact) for i, s in enumerate(seconds)]


def test_quantiles_are_read_within_a_bucket() -> None:
    summary = Summary("k")
    for sample in samples("k", [float(s) for s in range(1000, 3001)]):
        summary.add(sample)
    expectation = summary.expectation()
    assert expectation is not None and expectation.samples == 2001
    ratio = 2 ** (1 / learned.BUCKETS_PER_DOUBLING)
    for q, value in ((0.1, expectation.low), (0.5, expectation.median), (0.95, expectation.high)):
        true = 1000 + q * 2000
        assert true / ratio <= value <= true * ratio


def test_recent_operations_weigh_more_so_the_summary_follows_drift() -> None:
    summary = Summary("k")
    old = [Sample("k", 600, T0, True) for _ in range(50)]
    new = [Sample("k", 2400, T0 + learned.HALF_LIFE * 6, True) for _ in range(5)]
    for sample in old + new:
        summary.add(sample)
    expectation = summary.expectation()
    assert expectation is not None
    assert expectation.median > 2000, "5 operations 6 half-lives newer outweigh 50 older ones"


def test_a_kind_is_learned_from_enough_samples_only() -> None:
    summary = Summary("k")
    for sample in samples("k", [60.0] * (learned.DEFAULT_MIN_SAMPLES - 1)):
        summary.add(sample)
    assert summary.expectation() is None
    summary.add(Sample("k", 60.0, T0, True))
    assert summary.expectation() is not None
    with pytest.raises(ValueError, match="empty"):
        Summary("k").quantile(0.5)


def test_shards_add_up_and_strangers_in_them_are_skipped() -> None:
    one, two = Sample("k", 100, T0, True), Sample("k", 400, T0, False)
    shards = [
        {"w": {k: v for k, v in one.increments()["w"].items()}, "n": 1},
        {"w": {**two.increments()["w"], "x3": 1.0, "b7": -1, "b9": True}, "n": 1},
        {"w": "not a map", "n": "two"},
    ]
    summary = Summary.of("k", shards)
    assert summary.samples == 2
    assert set(summary.weights) == {learned.bucket(100), learned.bucket(400)}
    assert learned.bucket(0.5) == 0 and learned.bucket(10**12) == learned.MAX_BUCKET
    assert learned.shard_id("k", 3).endswith("-3")


@given(st.lists(st.floats(min_value=1.0, max_value=1e7), min_size=5, max_size=60))
def test_low_median_high_are_ordered(values: list[float]) -> None:
    summary = Summary("k")
    for sample in samples("k", values):
        summary.add(sample)
    expectation = summary.expectation()
    assert expectation is not None
    assert 0 < expectation.low <= expectation.median <= expectation.high


def test_the_learned_window_gathers_the_looks_and_a_hint_still_wins() -> None:
    profile = policy.DEFAULT_PROFILE
    window = policy.Window.learned(1500.0, 2400.0)
    assert (window.start, window.end) == (1500.0, policy.LEARNED_END * 2400.0)
    assert policy.schedule_delay(0.0, profile, window=window) == 1500.0
    assert policy.schedule_delay(1600.0, profile, window=window) == pytest.approx(
        1600.0 * policy.LEARNED_STEP
    )
    assert policy.schedule_delay(5000.0, profile, window=window) == 120.0  # the profile again
    hinted = policy.schedule_delay(0.0, profile, expected_duration=100.0, window=window)
    assert hinted == pytest.approx(80.0), "the watch's own expected_duration wins"
    rng = random.Random(1)
    assert policy.next_delay(elapsed=0.0, profile=profile, rng=rng, window=window) == 1500.0


# --- watches of a learned kind --------------------------------------------------------------------


@pytest.fixture
def harness(settings: Settings, store: FakeLedger) -> Harness:
    return make_harness(settings, store)


class Operation:
    """A fetch that answers pending until ``seconds`` after the first look, then done."""

    def __init__(self, harness: Harness, seconds: float, stamped: bool = True) -> None:
        self.harness, self.seconds, self.stamped = harness, seconds, stamped
        self.began = harness.clock.now
        self.gets = 0

    def __call__(self, request: Any) -> Fetched:
        self.gets += 1
        now = self.harness.clock.now
        meta = metadata(createTime=self.began.isoformat()) if self.stamped else metadata()
        if (now - self.began).total_seconds() < self.seconds:
            return Fetched({"name": OPERATION, "done": False, "metadata": meta})
        if self.stamped:
            meta["endTime"] = (self.began + timedelta(seconds=self.seconds)).isoformat()
        return Fetched({"name": OPERATION, "done": True, "metadata": meta, "response": {}})


def watch(
    harness: Harness, seconds: float, n: int, stamped: bool = True, **request: Any
) -> Operation:
    operation = Operation(harness, seconds, stamped)
    harness.handlers = replace(harness.handlers, fetch=operation)
    harness.handlers.on_watch_message(
        pubsub_message({"operation": OPERATION, "watch_id": f"w-{n}", **request}, f"m-{n}")
    )
    harness.run_checks()
    return operation


def test_watches_of_a_learned_kind_poll_as_if_they_had_a_hint(
    harness: Harness, store: FakeLedger
) -> None:
    first = [watch(harness, 1800 + 60 * i, i).gets for i in range(learned.DEFAULT_MIN_SAMPLES)]
    assert len(store.samples) == learned.DEFAULT_MIN_SAMPLES
    assert all(s.exact for s in store.samples)

    later = watch(harness, 1900, 99)

    assert later.gets <= min(first) * 0.7, (later.gets, first)
    [received] = [n for n in harness.publish.received if n["watch_id"] == "w-99"]
    assert received["outcome"] == "SUCCEEDED"
    assert received["polls"] == later.gets
    kind = store.samples[0].kind
    assert received["schedule"] == {"source": "learned", "kind": kind, "samples": 5}
    first_notes = [n for n in harness.publish.received if n["watch_id"] == "w-0"]
    assert first_notes[0]["schedule"] == {"source": "profile"}


def test_a_watchs_own_expected_duration_wins_and_says_so(
    harness: Harness, store: FakeLedger
) -> None:
    for i in range(learned.DEFAULT_MIN_SAMPLES):
        watch(harness, 600, i)
    operation = Operation(harness, 600)
    harness.handlers = replace(harness.handlers, fetch=operation)
    request = {"operation": OPERATION, "watch_id": "w-h", "expected_duration": "600s"}
    harness.handlers.on_watch_message(pubsub_message(request, "m-h"))
    assert "learned" not in json.loads(harness.schedule.tasks[0].body)
    harness.run_checks()
    [note] = [n for n in harness.publish.received if n["watch_id"] == "w-h"]
    assert note["schedule"] == {"source": "hint"}


def test_the_body_carries_what_was_learned_so_a_look_reads_nothing_more(
    harness: Harness, store: FakeLedger
) -> None:
    for i in range(learned.DEFAULT_MIN_SAMPLES):
        watch(harness, 600, i)
    reads = store.queries
    operation = Operation(harness, 600)
    harness.handlers = replace(harness.handlers, fetch=operation)
    harness.handlers.on_watch_message(
        pubsub_message({"operation": OPERATION, "watch_id": "w-x"}, "m-x")
    )
    [task] = harness.schedule.tasks
    body = json.loads(task.body)
    assert body["learned"]["samples"] == learned.DEFAULT_MIN_SAMPLES
    assert checks.decode(task.body).learned == Expectation(**body["learned"])
    harness.run_checks()
    assert store.queries == reads + 1, "one read at the first look, none per look"


def test_a_finish_without_times_teaches_only_if_a_look_saw_it_pending(
    harness: Harness, store: FakeLedger
) -> None:
    watch(harness, 0, 1, stamped=False)  # done at the first look
    assert store.samples == []
    watch(harness, 300, 2, stamped=False)
    [sample] = store.samples
    assert not sample.exact and sample.seconds >= 300


def test_the_ledger_down_at_a_start_leaves_the_profile_to_schedule(
    harness: Harness, store: FakeLedger, event_log: EventLog
) -> None:
    store.fail_with = LedgerUnavailable("down")
    operation = Operation(harness, 120)
    harness.handlers = replace(harness.handlers, fetch=operation)
    harness.handlers.on_watch_message(pubsub_message({"operation": OPERATION, "watch_id": "w"}))
    [line] = [line for line in event_log.lines if line["event"] == Event.LEDGER_READ_FAILED]
    assert line["error"] == "LedgerUnavailable: down"
    assert "learned" not in json.loads(harness.schedule.tasks[0].body)
    for _ in range(1000):  # bounded: a chain that never notifies fails instead of hanging
        if harness.publish.messages:
            break
        assert harness.schedule.tasks, "the chain ended without a notification"
        task = harness.schedule.tasks.pop(0)
        harness.clock.now = max(harness.clock.now, task.when)
        harness.handlers.on_check(checks.decode(task.body), retries=0)
    else:
        pytest.fail("no notification within 1000 checks")
    assert [n["outcome"] for n in harness.publish.received] == ["SUCCEEDED"]
    assert operation.gets > 1


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "k", "samples": 5, "low": 0, "median": 1, "high": 2},
        {"kind": "k", "samples": 5, "low": 3, "median": 2, "high": 4},
        {"kind": "k", "samples": -1, "low": 1, "median": 2, "high": 3},
        {"kind": 7, "samples": 5, "low": 1, "median": 2, "high": 3},
        {"kind": "k", "samples": 5, "low": True, "median": 2, "high": 3},
        {"kind": "k", "samples": 5, "low": 1, "median": 2},
        "k",
    ],
)
def test_a_body_with_a_bad_learned_field_is_refused(harness: Harness, bad: Any) -> None:
    harness.handlers = replace(harness.handlers, fetch=Operation(harness, 600))
    harness.handlers.on_watch_message(pubsub_message({"operation": OPERATION, "watch_id": "w"}))
    body = {**json.loads(harness.schedule.tasks[0].body), "learned": bad}
    with pytest.raises(checks.InvalidCheckBody) as raised:
        checks.decode(json.dumps(body).encode())
    assert raised.value.violations[0].field == "learned"


# --- overdue -------------------------------------------------------------------------------------

OVERDUE_SCHEMA = json.loads(
    (Path(__file__).parents[2] / "functions/opwatch/schemas/overdue.json").read_text()
)


def overdue_messages(harness: Harness) -> list[Any]:
    return [m for m in harness.publish.messages if m.attributes.get("overdue") == "true"]


def test_an_operation_of_a_learned_kind_running_long_gets_one_overdue_message_first(
    harness: Harness, store: FakeLedger
) -> None:
    for i in range(learned.DEFAULT_MIN_SAMPLES):
        watch(harness, 600, i)
    asked = watch(harness, 1800, 50, warn_overdue=True)  # 3x the kind's median
    quiet = watch(harness, 1800, 51)

    assert asked.gets > 0 and quiet.gets > 0
    [message] = overdue_messages(harness)
    data = json.loads(message.data)
    jsonschema.validate(data, OVERDUE_SCHEMA)
    assert data["watch_id"] == "w-50"
    assert data["age_seconds"] > data["overdue_after_seconds"] > 500  # the 95th of ~600 s
    assert data["schedule"]["source"] == "learned"
    attributes = message.attributes
    assert "outcome" not in attributes
    assert attributes["ce-type"] == "dev.opwatch.operation.v1.overdue"
    assert attributes["ce-id"] == "w-50/overdue"
    for_50 = [m for m in harness.publish.messages if m.attributes["watch_id"] == "w-50"]
    assert [m.attributes.get("outcome", "overdue") for m in for_50] == ["overdue", "SUCCEEDED"]


def test_a_hinted_watch_is_overdue_past_one_and_a_half_times_its_hint(
    harness: Harness, settings: Settings
) -> None:
    harness.handlers = replace(
        harness.handlers,
        settings=replace(settings, watch=replace(settings.watch, warn_overdue=True)),
    )
    operation = Operation(harness, 3000)
    harness.handlers = replace(harness.handlers, fetch=operation)
    request = {"operation": OPERATION, "watch_id": "w-h", "expected_duration": "600s"}
    harness.handlers.on_watch_message(pubsub_message(request, "m-h"))
    harness.run_checks()
    [message] = overdue_messages(harness)
    data = json.loads(message.data)
    assert data["overdue_after_seconds"] == 900 and data["schedule"] == {"source": "hint"}
    optout = {"operation": OPERATION, "watch_id": "w-o", "warn_overdue": False}
    harness.handlers = replace(harness.handlers, fetch=Operation(harness, 3000))
    harness.handlers.on_watch_message(pubsub_message({**optout, "expected_duration": "60s"}))
    harness.run_checks()
    assert len(overdue_messages(harness)) == 1, "a watch that says no is not warned"


@pytest.mark.parametrize(("age", "overdue"), [(900.0, False), (900.5, True)])
def test_an_operation_is_overdue_only_once_it_runs_past_its_limit(
    harness: Harness, age: float, overdue: bool
) -> None:
    """A 600 s hint makes 900 s the limit: an operation exactly that old is not overdue yet."""
    created = rfc3339(harness.clock.now - timedelta(seconds=age))
    harness.fetch.results = [
        Fetched({"name": OPERATION, "done": False, "metadata": metadata(createTime=created)})
    ]
    request = {
        "operation": OPERATION,
        "watch_id": "w-edge",
        "expected_duration": "600s",
        "warn_overdue": True,
    }
    harness.handlers.on_watch_message(pubsub_message(request, "m-edge"))
    assert len(overdue_messages(harness)) == int(overdue)


def test_an_overdue_message_that_fails_is_tried_at_the_next_look(
    harness: Harness, settings: Settings, event_log: EventLog
) -> None:
    class FlakyOnce(RecordingPublish):
        failed = False

        def __call__(self, message: Any) -> str:
            if message.attributes.get("overdue") and not self.failed:
                self.failed = True
                raise RuntimeError("pubsub hiccup")
            return super().__call__(message)

    publish = FlakyOnce()
    harness.publish = publish
    harness.handlers = replace(harness.handlers, publish=publish, fetch=Operation(harness, 2000))
    request = {
        "operation": OPERATION,
        "watch_id": "w-f",
        "expected_duration": "600s",
        "warn_overdue": True,
    }
    harness.handlers.on_watch_message(pubsub_message(request, "m-f"))
    harness.run_checks()
    assert publish.failed
    assert len(overdue_messages(harness)) == 1
    [failed] = [line for line in event_log.lines if line["event"] == Event.DELIVERY_FAILED]
    assert (failed["severity"], failed["action"], failed["error"], failed["redelivered"]) == (
        "WARNING",
        "publish the overdue message",
        "RuntimeError: pubsub hiccup",
        False,
    )
    assert [m.attributes.get("outcome") for m in harness.publish.messages][-1] == "SUCCEEDED"


def test_status_says_when_the_end_is_expected_and_why(harness: Harness, store: FakeLedger) -> None:
    from opwatch_local import watches

    for i in range(learned.DEFAULT_MIN_SAMPLES):
        watch(harness, 600, i)
    harness.handlers = replace(harness.handlers, fetch=Operation(harness, 600))
    started = harness.clock.now
    harness.handlers.on_watch_message(
        pubsub_message({"operation": OPERATION, "watch_id": "w-s"}, "m-s")
    )
    hinted = {"operation": OPERATION, "watch_id": "w-e", "expected_duration": "100s"}
    harness.handlers.on_watch_message(pubsub_message(hinted, "m-e"))
    plain = {"operation": OPERATION + "x", "watch_id": "w-p", "kind": "never seen"}
    harness.handlers.on_watch_message(pubsub_message(plain, "m-p"))
    registry, now = harness.handlers.registry, harness.clock.now

    [row] = watches.recorded_status(registry, "w-s", now)
    expected = row["pending_step"]["expected"]
    assert expected["why"].startswith("learned from 5 operations of cloudaicompanion")
    median = learned.bucket_seconds(learned.bucket(600))
    assert expected["median"] == rfc3339(started + timedelta(seconds=median))
    assert "learned from 5" in watches.record_table([row])
    [row] = watches.recorded_status(registry, "w-e", now)
    assert row["pending_step"]["expected"] == {
        "median": rfc3339(started + timedelta(seconds=100)),
        "high": rfc3339(started + timedelta(seconds=150)),
        "why": "expected_duration 100s",
    }
    [row] = watches.recorded_status(registry, "w-p", now)
    assert row["pending_step"]["expected"] is None
    assert "expected_duration 100s" in watches.table(watches.status(registry, "w-e", now))


def test_a_watch_with_its_own_polling_keeps_it(harness: Harness, store: FakeLedger) -> None:
    for i in range(learned.DEFAULT_MIN_SAMPLES):
        watch(harness, 600, i)
    queries = store.queries
    own = watch(harness, 600, 70, polling={"initial_delay": "300s", "max_delay": "300s"})
    assert store.queries == queries, "nothing learned is even read"
    assert own.gets <= 4  # every 300 s (less jitter), as it asked
    [note] = [n for n in harness.publish.received if n["watch_id"] == "w-70"]
    assert note["schedule"] == {"source": "profile"}


def test_a_body_whose_warned_is_not_true_is_refused(harness: Harness) -> None:
    harness.handlers = replace(harness.handlers, fetch=Operation(harness, 600))
    harness.handlers.on_watch_message(pubsub_message({"operation": OPERATION, "watch_id": "w"}))
    body = {**json.loads(harness.schedule.tasks[0].body), "warned": False}
    with pytest.raises(checks.InvalidCheckBody) as raised:
        checks.decode(json.dumps(body).encode())
    assert raised.value.violations[0].field == "warned"


@pytest.mark.parametrize("kind", ["", "a\nb", "x" * 201, 7])
def test_a_kind_a_request_cannot_name(kind: Any) -> None:
    with pytest.raises(InvalidWatchRequest) as raised:
        validate_watch_request(
            {"operation": OPERATION, "kind": kind},
            default_watch_id="w",
            allowed_apis={API},
            allowed_notify_topics=set(),
        )
    assert raised.value.violations[0].field == "kind"


def test_warn_overdue_must_be_a_boolean() -> None:
    with pytest.raises(InvalidWatchRequest) as raised:
        validate_watch_request(
            {"operation": OPERATION, "warn_overdue": "yes"},
            default_watch_id="w",
            allowed_apis={API},
            allowed_notify_topics=set(),
        )
    assert raised.value.violations[0].field == "warn_overdue"


# --- what a finish teaches, and which kind it teaches -----------------------------------------

METHOD = "google.cloud.cloudaicompanion.v1.AdminService.CreateCodeRepositoryIndex"


def scripted(harness: Harness, *operations: dict[str, Any]) -> None:
    """Answer the looks with ``operations`` in turn (the last repeats), then run the watch."""
    harness.fetch.results = [Fetched(operation) for operation in operations]
    harness.handlers.on_watch_message(pubsub_message({"operation": OPERATION, "watch_id": "w"}))
    harness.run_checks()


def looked(times: dict[str, str] | None = None, *, done: bool, **meta: Any) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "name": OPERATION,
        "done": done,
        "metadata": {**metadata(), **meta, **(times or {})},
    }
    if done:
        operation["response"] = {}
    return operation


def test_an_operation_with_a_start_but_no_end_teaches_the_watchs_own_span(
    harness: Harness, store: FakeLedger
) -> None:
    created = {"createTime": rfc3339(T0)}
    scripted(harness, looked(created, done=False), looked(created, done=True))
    [sample] = store.samples
    assert sample.exact is False
    assert sample.seconds == (harness.clock.now - T0).total_seconds() > 0


@pytest.mark.parametrize("stamp", ["endTime", "both equal"])
def test_an_end_without_a_start_before_it_teaches_the_watchs_own_span(
    harness: Harness, store: FakeLedger, stamp: str
) -> None:
    """Only ``createTime`` < ``endTime`` is an exact duration; otherwise the watch's first look
    to its last one (less exact)."""
    times = {"endTime": rfc3339(T0)}
    if stamp == "both equal":
        times["createTime"] = rfc3339(T0)
    scripted(harness, looked(done=False), looked(times, done=True))
    [sample] = store.samples
    assert (sample.exact, sample.seconds) == (False, (harness.clock.now - T0).total_seconds())
    assert sample.seconds > 0


def test_a_watch_that_times_out_teaches_nothing(harness: Harness, store: FakeLedger) -> None:
    stamped = {"createTime": rfc3339(T0)}
    harness.fetch.results = [Fetched(looked(stamped, done=False))]
    request = {"operation": OPERATION, "watch_id": "w", "timeout": "60s"}
    harness.handlers.on_watch_message(pubsub_message(request))
    harness.run_checks()
    assert [m["outcome"] for m in harness.publish.received] == ["TIMED_OUT"]
    assert store.samples == []


def test_a_watch_of_a_named_kind_teaches_that_kind(harness: Harness, store: FakeLedger) -> None:
    times = {"createTime": rfc3339(T0), "endTime": rfc3339(T0 + timedelta(seconds=90))}
    harness.fetch.results = [Fetched(looked(times, done=True))]
    request = {"operation": OPERATION, "watch_id": "w", "kind": "index builds"}
    harness.handlers.on_watch_message(pubsub_message(request))
    [sample] = store.samples
    assert (sample.kind, sample.seconds, sample.exact) == ("index builds", 90.0, True)


@pytest.mark.parametrize(
    ("labels", "verb"),
    [({"method": METHOD}, METHOD), ({"method": "sweep"}, ""), ({}, "")],
)
def test_a_discovered_operation_without_a_verb_is_read_and_taught_under_its_method(
    harness: Harness, store: FakeLedger, labels: dict[str, str], verb: str
) -> None:
    """A discovered watch carries the audit method in its ``method`` label; a swept one says
    ``sweep``, which is no method."""
    kind = f"{API}|OperationMetadata|{verb}|projects/*/locations/*/codeRepositoryIndexes/*"
    store.samples.extend(samples(kind, [600.0] * 5))
    times = {"createTime": rfc3339(T0)}
    no_verb = {"verb": ""}
    harness.fetch.results = [Fetched(looked(times, done=False, **no_verb))]
    request = {"operation": OPERATION, "watch_id": "w", "labels": labels}
    harness.handlers.on_watch_message(pubsub_message(request))
    [task] = harness.schedule.tasks
    assert checks.decode(task.body).learned is not None, "what was learned of its kind"
    harness.fetch.results = [
        Fetched(
            looked({**times, "endTime": rfc3339(T0 + timedelta(seconds=30))}, done=True, **no_verb)
        )
    ]
    harness.run_checks()
    assert [s.kind for s in store.samples[5:]] == [kind]


def test_an_operation_done_at_the_first_look_reads_nothing_of_its_kind(
    harness: Harness, store: FakeLedger
) -> None:
    harness.fetch.results = [Fetched(looked(done=True))]
    harness.handlers.on_watch_message(pubsub_message({"operation": OPERATION, "watch_id": "w"}))
    assert store.queries == 0
    assert [m["outcome"] for m in harness.publish.received] == ["SUCCEEDED"]


def test_a_lesson_the_ledger_does_not_take_is_logged_and_the_watch_ends(
    harness: Harness, store: FakeLedger, event_log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(sample: Sample) -> None:
        raise LedgerUnavailable("Firestore Commit: 503")

    monkeypatch.setattr(store, "learn", refuse)
    times = {"createTime": rfc3339(T0), "endTime": rfc3339(T0 + timedelta(seconds=30))}
    harness.fetch.results = [Fetched(looked(times, done=True))]
    harness.handlers.on_watch_message(pubsub_message({"operation": OPERATION, "watch_id": "w"}))
    assert [m["outcome"] for m in harness.publish.received] == ["SUCCEEDED"]
    assert [e for e in event_log.events if e.startswith("ledger.")] == ["ledger.write_failed"]
    [line] = [line for line in event_log.lines if line["event"] == Event.LEDGER_WRITE_FAILED]
    assert (line["document"], line["error"]) == (
        "kind summary",
        "LedgerUnavailable: Firestore Commit: 503",
    )
    assert store.record("w").outcome == "SUCCEEDED"


def test_a_cancelled_watch_of_a_learned_kind_says_which_schedule_it_followed(
    harness: Harness, store: FakeLedger
) -> None:
    for i in range(learned.DEFAULT_MIN_SAMPLES):
        watch(harness, 600, i)
    operation = Operation(harness, 3600)
    harness.handlers = replace(harness.handlers, fetch=operation)
    harness.handlers.on_watch_message(pubsub_message({"operation": OPERATION, "watch_id": "w-c"}))
    harness.handlers.cancel(CancelRequest("w-c"))
    harness.run_checks()
    [note] = [n for n in harness.publish.received if n["watch_id"] == "w-c"]
    assert note["outcome"] == "CANCELLED"
    assert note["schedule"] == {"source": "learned", "kind": store.samples[0].kind, "samples": 5}
