"""The benchmarks' arithmetic and parsers on fixed data (no timing is asserted anywhere)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest

from bench import check_cost, import_time, ledger_harness, ledger_scale
from bench.stats import (
    Summary,
    cpu_seconds_from_stat,
    median,
    peak_rate,
    percentile,
    rate,
    ratio,
    verdict,
)
from opwatch import checks
from opwatch.ledger import RECORD_EVERY, State, due


def test_percentile_is_nearest_rank_and_always_an_observed_value() -> None:
    values = [float(v) for v in range(1, 201)]  # 1..200, shuffled order must not matter
    shuffled = values[::2] + values[1::2]
    assert percentile(shuffled, 0.95) == 190.0
    assert percentile(shuffled, 0.5) == 100.0
    assert percentile(shuffled, 0.0) == 1.0
    assert percentile(shuffled, 1.0) == 200.0
    assert percentile([3.0, 1.0, 2.0], 0.95) == 3.0
    assert percentile([7.5], 0.5) == 7.5


def test_percentile_and_median_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        percentile([], 0.5)
    with pytest.raises(ValueError):
        percentile([1.0], 1.5)
    with pytest.raises(ValueError):
        median([])


def test_median_of_even_and_odd_counts() -> None:
    assert median([5.0, 1.0, 3.0]) == 3.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5


def test_ratio_is_ours_over_reference() -> None:
    assert ratio(1.2, 1.0) == pytest.approx(1.2)
    assert ratio(3.0, 4.0) == 0.75
    with pytest.raises(ValueError):
        ratio(1.0, 0.0)


def test_rate_counts_intervals_not_events() -> None:
    assert rate([10.0, 10.5, 11.0, 12.0]) == pytest.approx(1.5)  # 3 intervals in 2 s
    with pytest.raises(ValueError):
        rate([1.0])
    with pytest.raises(ValueError):
        rate([2.0, 2.0])


def test_peak_rate_finds_the_busiest_window() -> None:
    times = [0.0, 0.1, 0.2, 0.3, 5.0, 9.0, 9.1]
    assert peak_rate(times, 1.0) == 4.0
    assert peak_rate(times, 10.0) == pytest.approx(0.7)
    assert peak_rate([], 1.0) == 0.0


def test_summary() -> None:
    s = Summary.of([1.0, 2.0, 3.0, 4.0, 10.0])
    assert (s.n, s.mean, s.p50, s.p95, s.max) == (5, 4.0, 3.0, 10.0, 10.0)
    with pytest.raises(ValueError):
        Summary.of([])


def test_verdict() -> None:
    assert verdict(True) == "met"
    assert verdict(False) == "NOT met"


def test_cpu_seconds_from_proc_stat_with_a_hostile_command_name() -> None:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    line = "4242 (gunicorn: (a) b) S 1 4242 4242 0 -1 4194560 900 0 3 0 1234 66 0 0 20 0 5 0"
    assert cpu_seconds_from_stat(line) == pytest.approx(13.0)


IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       120 |        120 |   _io
import time:      1500 |       2100 |     requests.compat
import time:      3000 |       6000 |   requests
import time:        40 |       6040 | main
import time:        99 |         99 |   requests
"""


def test_parse_importtime_keeps_the_first_import_with_depth() -> None:
    parsed = import_time.parse_importtime(IMPORTTIME)
    assert parsed["requests"] == import_time.ImportLine(3000, 6000, 1)
    assert parsed["requests.compat"].depth == 2
    assert parsed["main"] == import_time.ImportLine(40, 6040, 0)
    assert set(parsed) == {"_io", "requests.compat", "requests", "main"}


def test_extra_modules_are_the_difference_by_self_time() -> None:
    ours = import_time.parse_importtime(IMPORTTIME)
    reference = {"_io": import_time.ImportLine(1, 1, 0)}
    assert import_time.extra_modules(ours, reference) == [
        ("requests", 3000),
        ("requests.compat", 1500),
        ("main", 40),
    ]


def test_profile_samples_are_grouped_by_the_outermost_foreign_frame() -> None:
    handler = "on_check (/srv/functions/main.py:50)"
    own = "Notifier._look (/srv/functions/opwatch/service.py:110)"
    raw = "\n".join(
        [
            f"thread (0x1);serve (/x/gunicorn/workers/gthread.py:1);{handler};{own};"
            "OperationFetcher.__call__ (/srv/functions/opwatch/adapters.py:90);"
            "Session.get (/x/requests/sessions.py:600);HTTPConnection.send (/y/http/client.py:1) 7",
            f"{handler};{own};CloudTasksQueue.__call__ (/srv/functions/opwatch/adapters.py:170);"
            "CloudTasksClient.create_task (/x/google/cloud/tasks_v2/services/client.py:1) 3",
            f"{handler};{own};Logger.info (/z/logging/__init__.py:1) 2",
            f"{handler};{own};decide (/srv/functions/opwatch/core.py:1) 4",
            f"{handler};Request.get_data (/x/werkzeug/wrappers/request.py:1) 1",
            "select (/z/selectors.py:468) 5",
            "not a sample line",
        ]
    )
    groups = check_cost.parse_collapsed(raw)
    assert groups == {
        "fetch: requests / urllib3 / http.client": 7,
        "create task: tasks_v2 / api_core / gRPC / proto-plus / protobuf": 3,
        "logging (opwatch/logs.py + logging)": 2,
        "opwatch's own code (validate, decide, encode)": 4,
        "other libraries: Request.get_data": 1,
        "framework outside the handler (gunicorn / flask / werkzeug)": 5,
    }
    assert math.isclose(sum(groups.values()), 22)


# --- the ledger at scale (bench/ledger_harness.py, bench/ledger_scale.py) ------------------------


def test_the_tasks_emulator_s_quota_lines_are_counted_by_method() -> None:
    log = "\n".join(
        [
            "tasks emulator: quotas enforced: List requests 600 per 60s, Force run requests 60",
            "tasks emulator: ListTasks counted against List requests",
            "[TASKS] Submitting task projects/p/locations/l/queues/q/tasks/x",
            "tasks emulator: RunTask counted against Force run requests",
            "tasks emulator: ListTasks counted against List requests",
        ]
    )
    assert ledger_harness.quota_calls(log) == {"ListTasks": 2, "RunTask": 1}
    assert ledger_harness.quota_calls("") == {}


def test_background_watches_are_as_the_functions_leave_them() -> None:
    """Each one's pending step is among the names its record gives (the fast path finds it),
    the record at most RECORD_EVERY - 1 steps behind, the next look hours away."""
    now = datetime(2026, 12, 1, tzinfo=UTC)
    operations = set()
    for i in range(3 * RECORD_EVERY * 5):
        task, record = ledger_harness.background_watch(i, now)
        state = checks.decode(task.body)
        assert ledger_harness.probe_finds(task, record)
        assert state.recorded == record.seq and 0 <= state.seq - record.seq < RECORD_EVERY
        assert record.state is State.PENDING and record.watch_id == state.watch_id
        assert task.when - now >= timedelta(hours=2)
        assert not record.overdue(now)
        operations.add(record.operation)
    assert len(operations) == 3 * RECORD_EVERY * 5 // ledger_harness.PER_OPERATION


def test_the_fast_path_makes_one_query_and_a_get_task_a_name_whatever_the_pending() -> None:
    for background in (0, 250):
        result = ledger_harness.run_harness(background, 4)
        assert result.notified == result.measured == 8, "each watch ended in its notification"
        for calls in result.per_entry:
            assert calls["RunQuery"] == 1
            assert calls["GetTask"] == (RECORD_EVERY + 1) * result.chains
            assert calls["ListTasks"] == calls["GetQueue"] == 0
            assert calls["CreateTask"] == calls["DeleteTask"] == result.chains


def test_without_a_ledger_the_fast_path_lists_every_page_of_the_queue() -> None:
    result = ledger_harness.run_harness(2500, 3, with_ledger=False)
    assert result.notified == result.measured
    # 2,500 background tasks and the measured watches' own: 3 pages of 1,000.
    assert [c["ListTasks"] for c in result.per_entry] == [3, 3, 3]
    assert all(c["RunQuery"] == c["GetTask"] == 0 for c in result.per_entry)


def test_the_fast_path_s_log_events_are_read_by_event_for_the_operations_asked() -> None:
    lines = [
        {"event": "audit.operation_ended", "operation": "a", "checks_run": 2, "in_flight": 0},
        {"event": "audit.operation_ended", "operation": "b", "checks_run": 1, "in_flight": 1},
        {"event": "audit.operation_ended", "operation": "other", "checks_run": 5},
        {"event": "audit.ledger_unavailable", "operation": "b"},
        {"event": "watch.discovered", "operation": "a"},
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\nnot json\n"
    found = ledger_scale.fast_path_events(text, {"a", "b"})
    assert found == {"entries": 2, "brought forward": 3, "in flight": 1, "ledger unavailable": 1}
    ended = {"event": "audit.operation_ended", "operation": "a", "checks_run": 0}
    assert ledger_scale.fast_path_events(json.dumps(ended), {"a"}) == {
        "entries": 1,
        "found none": 1,
    }


def test_a_ledger_write_is_its_own_profile_category() -> None:
    handler = "on_check (/srv/functions/main.py:50)"
    own = "FirestoreLedger.put (/srv/functions/opwatch/adapters.py:400)"
    frame = "DocumentReference.set (/x/google/cloud/firestore_v1/document.py:1)"
    grpc = "_UnaryUnaryMultiCallable.__call__ (/x/grpc/_channel.py:1)"
    groups = check_cost.parse_collapsed(f"{handler};{own};{frame};{grpc} 4")
    assert groups == {"ledger write: google/cloud/firestore": 4}


def test_check_cost_bodies_write_the_ledger_one_check_in_record_every_or_as_asked() -> None:
    def writes(records: str) -> list[bool]:
        bodies = check_cost.Bodies("projects/p/locations/l/operations/o", records)
        found = []
        for _ in range(2 * RECORD_EVERY):
            state = checks.decode(bodies.next())
            found.append(due(state.recorded, state.seq + 1))  # the look creating step seq + 1
        return found

    assert sum(writes("steady")) == 2
    assert all(writes("every")) and not any(writes("none"))
