"""The ``opwatch`` command and its demo: argument values, request building, the demo's output
helpers.

Everything but the last test runs in-process without a stack (``simulate`` talks to an in-process
simulator server). The e2e test runs ``opwatch demo`` as a user would and checks its summary and
that it left no process or port behind.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from opwatch.wire import format_duration
from opwatch_client import Polling
from opwatch_local.cli import (
    build_parser,
    build_watch_request,
    main,
    parse_error,
    parse_human_duration,
    parse_labels,
)
from opwatch_local.demo import (
    DEMO_WATCHES,
    Screen,
    compact_json,
    describe_notification,
    shorten,
)
from opwatch_local.procs import group_pids, port_is_free
from opwatch_local.simulator import SimulatorServer

SCHEMA = json.loads(
    (
        Path(__file__).parents[2] / "functions" / "opwatch" / "schemas" / "watch-request.json"
    ).read_text()
)
OPERATION = "projects/p/locations/us-central1/operations/operation-123"


# --- argument values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("10m", 600),
        ("1h", 3600),
        ("2d", 172800),
        ("1.5m", 90),
        ("90", 90),
        ("0.25s", Decimal("0.25")),
        (" 5s ", 5),
    ],
)
def test_parse_duration_accepts_units(text: str, seconds: Decimal | int) -> None:
    assert parse_human_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "10x", "-5s", "1h30m", "1e3s", "1.0000000001s", "ten"])
def test_parse_duration_refuses_other_forms(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_human_duration(text)


@pytest.mark.parametrize(
    ("text", "proto"),
    [("30s", "30s"), ("10m", "600s"), ("1h", "3600s"), ("2d", "172800s"), ("1.5m", "90s"),
     ("0.25s", "0.25s"), ("1.50s", "1.5s"), ("0.000000001s", "0.000000001s")],
)  # fmt: skip
def test_durations_become_the_contracts_seconds_form(text: str, proto: str) -> None:
    assert format_duration(float(parse_human_duration(text))) == proto
    assert re.fullmatch(SCHEMA["$defs"]["duration"]["pattern"], proto)


def test_parse_labels() -> None:
    assert parse_labels(["team=search", "expr=a=b", "empty="]) == {
        "team": "search",
        "expr": "a=b",
        "empty": "",
    }
    assert parse_labels([]) == {}


@pytest.mark.parametrize(
    ("pairs", "reason"),
    [(["team"], "not KEY=VALUE"), (["=x"], "not KEY=VALUE"), (["a=1", "a=2"], "given twice")],
)
def test_parse_labels_refuses(pairs: list[str], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_labels(pairs)


def test_parse_error() -> None:
    assert parse_error("9:index build failed") == {"code": 9, "message": "index build failed"}
    assert parse_error("13:a: b") == {"code": 13, "message": "a: b"}
    for bad in ("9", "x:boom", ":boom"):
        with pytest.raises(ValueError, match="CODE:MESSAGE"):
            parse_error(bad)


# --- the watch request ----------------------------------------------------------------------------


def test_minimal_request_leaves_defaults_to_opwatch() -> None:
    assert build_watch_request(OPERATION) == {"operation": OPERATION}


def test_full_request_matches_the_contract() -> None:
    request = build_watch_request(
        OPERATION,
        api="cloudaicompanion.googleapis.com",
        api_version="v1beta1",
        labels={"team": "search"},
        timeout=parse_human_duration("1h"),
        expected_duration=parse_human_duration("10m"),
        watch_id="w-1",
        notify_topic="projects/p/topics/team-results",
        polling=Polling(not_found_grace=5),
    )
    assert request == {
        "operation": OPERATION,
        "api": "cloudaicompanion.googleapis.com",
        "api_version": "v1beta1",
        "labels": {"team": "search"},
        "timeout": "3600s",
        "expected_duration": "600s",
        "notify_topic": "projects/p/topics/team-results",
        "watch_id": "w-1",
        "polling": {"not_found_grace": "5s"},
    }
    jsonschema.validate(request, SCHEMA)


def test_watch_arguments_parse_into_request_values() -> None:
    args = build_parser().parse_args(
        ["watch", OPERATION, "--label", "a=1", "--label", "b=2", "--timeout", "1h",
         "--expected-duration", "10m", "--watch-id", "w", "--api", "x.googleapis.com"]
    )  # fmt: skip
    assert args.operation == OPERATION
    assert args.label == ["a=1", "b=2"]
    assert (args.timeout, args.expected_duration) == (3600, 600)
    assert (args.watch_id, args.api) == ("w", "x.googleapis.com")


def test_a_bad_duration_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["watch", OPERATION, "--timeout", "soon"], environ={})
    assert exc.value.code == 2
    assert "'soon' is not a duration" in capsys.readouterr().err


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([], environ={}) == 0
    out = capsys.readouterr().out
    for command in ("local", "simulate", "watch", "tail", "demo"):
        assert command in out


@pytest.mark.parametrize(
    ("argv", "variable"),
    [
        (["watch", OPERATION], "OPWATCH_WATCH_TOPIC"),
        (["tail"], "OPWATCH_RESULTS_SUBSCRIPTION"),
        (["simulate"], "OPWATCH_SIMULATOR_URL"),
    ],
)
def test_missing_setting_names_the_variable(
    argv: list[str], variable: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv, environ={}) == 2
    assert f"{variable} is not set" in capsys.readouterr().err


def test_bad_label_is_reported_before_publishing(capsys: pytest.CaptureFixture[str]) -> None:
    environ = {"OPWATCH_WATCH_TOPIC": "projects/p/topics/watch-requests"}
    assert main(["watch", OPERATION, "--label", "nolabel"], environ=environ) == 2
    assert "not KEY=VALUE" in capsys.readouterr().err


def test_simulate_creates_the_operation(capsys: pytest.CaptureFixture[str]) -> None:
    with SimulatorServer() as server:
        environ = {"OPWATCH_SIMULATOR_URL": server.url}
        code = main(["simulate", "--duration", "0s", "--error", "9:index build failed"], environ)
        name = capsys.readouterr().out.strip()
        reply = server.simulator.handle_get(f"/v1/{name}")
    assert code == 0
    assert reply.status == 200
    assert reply.body["done"] is True
    assert reply.body["error"] == {"code": 9, "message": "index build failed"}


def test_simulate_can_make_the_operation_answer_gemini_s_busy_409(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with SimulatorServer() as server:
        argv = ["simulate", "--busy-for", "1h", "--busy", "parent-not-ready"]
        code = main(argv, {"OPWATCH_SIMULATOR_URL": server.url})
        reply = server.simulator.handle_get(f"/v1/{capsys.readouterr().out.strip()}")
    assert code == 0
    assert reply.status == 409
    assert "parent resource not in ready state" in reply.body["error"]["message"]


def test_simulate_reports_a_simulator_refusal(capsys: pytest.CaptureFixture[str]) -> None:
    with SimulatorServer() as server:
        argv = ["simulate", "--name", "_sim/bad"]
        assert main(argv, {"OPWATCH_SIMULATOR_URL": server.url}) == 2
    assert "invalid operation name" in capsys.readouterr().err


# --- the demo's plan and its output helpers -------------------------------------------------------


def test_demo_covers_every_outcome_with_valid_requests() -> None:
    outcomes = {w.expected for w in DEMO_WATCHES}
    assert outcomes == {"SUCCEEDED", "FAILED", "TIMED_OUT", "NOT_FOUND", "INVALID_REQUEST"}
    assert len({w.key for w in DEMO_WATCHES}) == len(DEMO_WATCHES) == 7
    for w in DEMO_WATCHES:
        # Even the "invalid" one is schema-valid: it breaks the allowlist, a deployment rule.
        jsonschema.validate(w.watch_request(), SCHEMA)
        if w.discovered:  # no request is published; the id is derived from the operation
            assert w.watch_id.startswith("audit/cloudaicompanion.googleapis.com/projects/")
        else:
            assert w.watch_request()["watch_id"] == w.watch_id


def notification(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "watch_id": "w",
        "outcome": "SUCCEEDED",
        "operation": {"name": OPERATION, "metadata": {"endTime": "2026-11-27T10:00:00.000Z"}},
        "error": None,
        "polls": 4,
        "observed_done": "2026-11-27T10:00:01.500Z",
    }
    return base | fields


def test_describe_notification_shows_outcome_polls_and_lag() -> None:
    assert describe_notification(notification()) == "SUCCEEDED       polls 4  lag 1.5s after done"


def test_describe_notification_shows_the_error_without_a_lag() -> None:
    text = describe_notification(
        notification(outcome="NOT_FOUND", operation=None, error={"code": 5, "message": "x" * 80})
    )
    assert text == "NOT_FOUND       polls 4  error 5: " + "x" * 60 + "…"


def test_shorten_cuts_long_strings_and_drops_the_request_echo() -> None:
    data = notification(request={"operation": OPERATION}, name="n" * 100)
    short = shorten(data)
    assert "request" not in short
    assert len(short["name"]) == 72
    assert short["operation"]["metadata"] == {"endTime": "2026-11-27T10:00:00.000Z"}
    assert shorten({"a": {"b": {"c": 1, "d": 2, "e": 3}}}) == {"a": {"b": "{… 3 fields}"}}


def test_compact_json_is_json_and_keeps_small_objects_on_one_line() -> None:
    data = notification(labels={"team": "search"}, details=[{"a": 1}, "x" * 120])
    text = compact_json(data, width=60)
    assert json.loads(text) == data
    assert '  "labels": {"team": "search"},' in text.splitlines()
    assert compact_json({"a": 1}) == '{"a": 1}'


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_screen_redraws_progress_in_place_on_a_terminal() -> None:
    out = FakeTerminal()
    screen = Screen(out)
    screen.progress("[0/6 done] waiting… 0.3s")
    screen.progress("[0/6 done] waiting… 0.6s")
    screen.line("event")
    assert out.getvalue() == (
        "\r\x1b[K[0/6 done] waiting… 0.3s\r\x1b[K[0/6 done] waiting… 0.6s\r\x1b[Kevent\n"
    )


def test_screen_prints_plain_progress_lines_rarely_elsewhere() -> None:
    out = io.StringIO()
    screen = Screen(out)
    screen.progress("one")
    screen.progress("two")  # within 5 s of the last: not printed
    screen.line("event")
    assert out.getvalue() == "one\nevent\n"


# --- the demo, end to end -------------------------------------------------------------------------


@pytest.mark.e2e
def test_demo_gets_every_outcome_and_leaves_nothing_behind() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPERATIONS_API_ENDPOINT"}
    env["PYTHONIOENCODING"] = "utf-8"
    result = subprocess.run(
        [sys.executable, "-m", "opwatch_local.cli", "demo"],
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=150,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr

    expected = {
        "succeeds": "SUCCEEDED",
        "fails": "FAILED",
        "times-out": "TIMED_OUT",
        "not-found": "NOT_FOUND",
        "invalid": "INVALID_REQUEST",
        "transient": "SUCCEEDED",
        "discovered": "SUCCEEDED",
    }
    rows = {
        m["watch"]: m
        for m in re.finditer(
            r"^(?P<watch>\S+)\s+(?P<expected>[A-Z_]+)\s+(?P<received>[A-Z_]+|\(none\))"
            r"\s+(?P<polls>\d+|-)\s+(?P<gets>\d+)\s+(?P<mark>[✓✗])$",
            out,
            re.MULTILINE,
        )
    }
    assert set(rows) == set(expected), out
    for watch, outcome in expected.items():
        row = rows[watch]
        assert (row["expected"], row["received"], row["mark"]) == (outcome, outcome, "✓"), out
    assert rows["invalid"]["gets"] == "0"  # refused before anything was fetched
    assert int(rows["transient"]["gets"]) >= 3  # 503, 429, then the answer
    assert "7/7 outcomes as expected" in out
    # The discovered operation: its audit entries, and no watch request.
    assert re.search(r"audit\s+discovered\s+first entry \(\+1\.0s\)", out), out

    ready = re.search(r"^stack ready in [\d.]+ s: (?P<procs>.+)$", out, re.MULTILINE)
    assert ready, out
    started = re.findall(r"(\w+) pid (\d+) :(\d+)", ready["procs"])
    assert {name for name, _, _ in started} == {
        "pubsub",
        "firestore",
        "tasks",
        "simulator",
        "watch",
        "check",
        "audit",
    }
    for name, pid, port in started:
        assert not group_pids(int(pid)), f"{name} (process group {pid}) still running"
        assert port_is_free(int(port)), f"{name}'s port {port} still taken"
