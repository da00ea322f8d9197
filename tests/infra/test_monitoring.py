"""The monitoring Terraform (infra/monitoring.tf) against what the code really logs.

Log lines are captured from the real code: :class:`opwatch.handlers.Handlers` driven through
every path with the conftest fakes, and ``functions/main.py`` for the refusals it logs itself,
each formatted by :class:`opwatch.logs.JsonFormatter` exactly as the functions print it. Each
line becomes a LogEntry the way Cloud Logging reads structured stdout of a Cloud Run service
(``severity`` and ``message`` lifted out, every other key in ``jsonPayload``; the resource is
the revision of the function's service). Every log-based metric's filter, read from the
Terraform, is then evaluated on them (``tests/infra/logquery.py``): each must select exactly the
events it is meant to count, and its label and value extractors must find their fields.

The dashboard is a Terraform template of a Monitoring API ``Dashboard``; it is rendered like
``templatefile`` would and validated against ``tests/data/monitoring-dashboard.schema.json``,
a JSON Schema of the subset of that resource it uses.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import functions_framework
import jsonschema
import pytest

from opwatch import checks, sweep
from opwatch.contracts import DEFAULT_API
from opwatch.core import FetchFailed, FetchResult, Outcome
from opwatch.envelope import PARKED_ATTRIBUTE, PARKED_VALUE, PushedMessage
from opwatch.errors import LedgerUnavailable, QuotaExhausted
from opwatch.handlers import Handlers
from opwatch.logs import LOGGER_NAME, Event, JsonFormatter
from opwatch.settings import Allowlists, Settings, TasksConfig, WatchConfig
from opwatch.status import make_status
from tests.fakes import (
    OPERATION,
    Clock,
    FakeFetch,
    FakeLedger,
    FakeQueue,
    Fetched,
    RecordingPublish,
    failed,
    http_error,
    load,
    pending,
    pubsub_json,
    pubsub_message,
    succeeded,
)
from tests.infra import logquery
from tests.infra.terraform import Config, Planner

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
DASHBOARD = INFRA / "dashboards" / "opwatch.json.tftpl"
DASHBOARD_SCHEMA = Path(__file__).parents[1] / "data" / "monitoring-dashboard.schema.json"
NAME_PREFIX = "opwatch"  # var.name_prefix's default
WATCH_SERVICE = f"{NAME_PREFIX}-on-watch-request"
CHECK_SERVICE = f"{NAME_PREFIX}-on-check"
AUDIT_SERVICE = f"{NAME_PREFIX}-on-audit-entry"
SWEEP_SERVICE = f"{NAME_PREFIX}-on-sweep"

# metric resource name -> the events it counts (everything else must not be selected).
EXPECTED: dict[str, set[str]] = {
    "watches_started": {Event.WATCH_STARTED, Event.WATCH_DISCOVERED},
    "watches_finished": {Event.WATCH_FINISHED},
    "checks": {
        Event.CHECK_PENDING,
        Event.CHECK_TRANSIENT_ERROR,
        Event.CHECK_DUPLICATE,
        Event.WATCH_FINISHED,
    },
    "transient_errors": {Event.CHECK_TRANSIENT_ERROR},
    "invalid_requests": {Event.REQUEST_INVALID},
    # watch.finished lines with the field only (the operation said its endTime).
    "detection_lag": {Event.WATCH_FINISHED},
    "watch_abandoned": {Event.WATCH_ABANDONED},
    "ledger_behind": {
        Event.LEDGER_WRITE_FAILED,
        Event.LEDGER_READ_FAILED,
        Event.LEDGER_BEHIND,
        Event.AUDIT_LEDGER_UNAVAILABLE,
    },
}


@cache
def tf() -> Config:
    return Config(INFRA)


# --- resolving the Terraform strings ---------------------------------------------------------


def resolve(text: str, depth: int = 0) -> str:
    """A Terraform string with ``${local.x}`` and ``${var.x}`` (defaults) substituted.

    Anything else in ``${...}`` fails: the filters must be plain strings the test can read.
    """
    assert depth < 10, "locals refer to each other in a loop"
    config = tf()

    def substitute(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        if kind == "local":
            return resolve(str(config.locals[name]), depth + 1)
        default = config.variables[name].get("default")
        assert isinstance(default, str), f"var.{name} has no string default"
        return default

    resolved = re.sub(r"\$\{(local|var)\.([a-z0-9_]+)\}", substitute, text)
    assert "${" not in resolved, f"unresolvable interpolation in {resolved!r}"
    return resolved


def metric(name: str) -> dict[str, Any]:
    return tf().resource("google_logging_metric", name)


def metric_filter(name: str) -> str:
    return resolve(str(metric(name)["filter"]))


def label_extractors(name: str) -> dict[str, str]:
    extractors = metric(name).get("label_extractors", {})
    assert isinstance(extractors, dict)
    return {key: str(value) for key, value in extractors.items()}


# --- capturing the log lines -----------------------------------------------------------------


class Capture(logging.Handler):
    """Every line opwatch logs, as printed (JsonFormatter), tagged with the function that ran."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.service = WATCH_SERVICE
        self.entries: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        printed = json.loads(self.format(record))
        self.entries.append(log_entry(printed, self.service))

    @contextmanager
    def serving(self, service: str) -> Iterator[None]:
        saved, self.service = self.service, service
        try:
            yield
        finally:
            self.service = saved


def log_entry(
    printed: dict[str, Any], service: str, resource_type: str = "cloud_run_revision"
) -> dict[str, Any]:
    """A structured stdout line as Cloud Logging stores it (LogEntry JSON)."""
    payload = {k: v for k, v in printed.items() if k != "severity"}
    return {
        "severity": printed.get("severity", "DEFAULT"),
        "jsonPayload": payload,
        "resource": {"type": resource_type, "labels": {"service_name": service}},
        "logName": "projects/test-project/logs/run.googleapis.com%2Fstdout",
    }


def _notifier(
    settings: Settings, fetch: FakeFetch, schedule: FakeQueue, publish: RecordingPublish
) -> tuple[Handlers, Clock]:
    clock = Clock()
    return Handlers(settings, fetch=fetch, queue=schedule, publish=publish, clock=clock), clock


def _drive_notifier(capture: Capture, settings: Settings) -> None:
    """Every path of the service, each line tagged with the function that writes it."""

    def watch(handlers: Handlers, request: Any, message_id: str, **kw: Any) -> None:
        with capture.serving(WATCH_SERVICE):
            handlers.on_watch_message(
                PushedMessage.from_json({**pubsub_json(request, message_id), **kw})
            )

    def run(handlers: Handlers, schedule: FakeQueue, clock: Clock, **kw: Any) -> None:
        with capture.serving(CHECK_SERVICE):
            for _ in range(1000):  # bounded: a chain that never ends fails, not hangs
                if not schedule.tasks:
                    return
                task = schedule.tasks.pop(0)
                clock.now = max(clock.now, task.when)
                handlers.on_check(checks.decode(task.body), **kw)
            pytest.fail("the polling chain did not end within 1000 checks")

    # started, pending, transient errors (an HTTP status, and no answer), finished with a lag.
    ended = {"name": OPERATION, "done": True, "metadata": {"endTime": "2026-11-27T11:59:00Z"}}
    no_answer = FetchFailed(None, make_status(14, "the fetch timed out"))
    fetch = FakeFetch([pending(), pending(), http_error(503, 14), no_answer, Fetched(ended)])
    schedule, publish = FakeQueue(), RecordingPublish()
    handlers, clock = _notifier(settings, fetch, schedule, publish)
    watch(handlers, {"operation": OPERATION, "labels": {"team": "a"}}, "m-ok")
    # The same message again: a second look finds its next check already scheduled.
    watch(handlers, {"operation": OPERATION, "labels": {"team": "a"}}, "m-ok")
    run(handlers, schedule, clock)

    # The other outcomes: FAILED, PERMISSION_DENIED, TIMED_OUT, NOT_FOUND.
    for message_id, result, request in (
        ("m-failed", failed(), {}),
        ("m-denied", http_error(403, 7), {}),
        ("m-timeout", pending(), {"timeout": "1s"}),
        ("m-gone", http_error(404, 5), {"polling": {"not_found_grace": "0s"}}),
    ):
        schedule, publish = FakeQueue(), RecordingPublish()
        handlers, clock = _notifier(settings, FakeFetch([result]), schedule, publish)
        watch(handlers, {"operation": OPERATION, **request}, message_id)
        run(handlers, schedule, clock)

    # Discovery: a first audit entry starts a watch, the last runs its pending look, an entry
    # that is no operation's is ignored.
    first = load("audit-spanner-create-instance-first.json")
    discovered = first["operation"]["id"]
    last = copy.deepcopy(first)
    del last["operation"]["first"]
    last["operation"]["last"] = True
    last_of_spanner = last
    schedule = FakeQueue()
    spanner = replace(settings, allowlists=Allowlists(apis=frozenset({"spanner.googleapis.com"})))
    handlers, clock = _notifier(
        spanner, FakeFetch([pending(discovered)]), schedule, RecordingPublish()
    )
    with capture.serving(AUDIT_SERVICE):
        handlers.on_audit_message(pubsub_message(first, "a-1"))
        handlers.on_audit_message(pubsub_message(last, "a-2"))
        handlers.on_audit_message(pubsub_message({"not": "an entry"}, "a-3"))
        # Cloud Tasks refuses the fast path for quota: logged, acknowledged, the watch polls on.
        schedule.list_fails_with = QuotaExhausted("ListTasks: Quota exceeded")
        handlers.on_audit_message(pubsub_message(last, "a-4"))

    # The sweep: one parent listed (a pending operation gets its discovered watch), one not.
    parent = sweep.Parent(DEFAULT_API, "projects/p/locations/us-central1")
    listed = {"operations": [{"name": f"{parent.name}/operations/swept", "done": False}]}

    def list_page(api: str, version: str, name: str, token: str, filter_: str) -> FetchResult:
        if name == parent.name:
            return Fetched(listed)
        return FetchFailed(503, make_status(14, "the API is unavailable"))

    handlers, _ = _notifier(settings, FakeFetch([pending()]), FakeQueue(), RecordingPublish())
    unlisted = sweep.Parent(DEFAULT_API, "projects/q/locations/us-central1")
    with capture.serving(SWEEP_SERVICE):
        handlers.sweep_all([parent, unlisted], list_page)

    # An invalid request.
    handlers, _ = _notifier(settings, FakeFetch([pending()]), FakeQueue(), RecordingPublish())
    watch(handlers, {"operation": "not an operation"}, "m-invalid")

    # Publishing fails: logged, then raised for the platform to retry.
    publish = RecordingPublish(fail_with=RuntimeError("pubsub down"))
    handlers, _ = _notifier(settings, FakeFetch([failed()]), FakeQueue(), publish)
    with pytest.raises(RuntimeError):
        watch(handlers, {"operation": OPERATION}, "m-unpublished")

    # A cancel request on the watch topic, while a check that saw the end is still running:
    # that check publishes nothing (superseded); the cancel's task publishes CANCELLED.
    schedule = FakeQueue()
    handlers, clock = _notifier(
        settings, FakeFetch([pending(), succeeded()]), schedule, RecordingPublish()
    )
    watch(handlers, {"operation": OPERATION, "watch_id": "w-cancel"}, "m-cancel")
    (running,) = schedule.tasks
    watch(handlers, {"cancel": "w-cancel", "reason": "not needed"}, "m-cancel-request")
    with capture.serving(CHECK_SERVICE):
        handlers.on_check(checks.decode(running.body))
    run(handlers, schedule, clock)

    # A watch that asked to be warned runs past 1.5 x its hint: one overdue message.
    schedule = FakeQueue()
    looks = FakeFetch([pending(), pending(), pending(), pending(), succeeded()])
    handlers, clock = _notifier(settings, looks, schedule, RecordingPublish())
    request = {"operation": OPERATION, "expected_duration": "2s", "warn_overdue": True}
    watch(handlers, request, "m-overdue")
    run(handlers, schedule, clock)

    # Firestore down: the watch goes on and ends (ledger.write_failed), its finish is left to a
    # record task (ledger.behind), and an end entry finds no ledger to query.
    down = FakeLedger(fail_with=LedgerUnavailable("Firestore Commit: 503"))
    schedule = FakeQueue()
    handlers, clock = _notifier(settings, FakeFetch([succeeded()]), schedule, RecordingPublish())
    handlers = replace(handlers, ledger=down)
    watch(handlers, {"operation": OPERATION, "watch_id": "w-ledger"}, "m-ledger")
    handlers = replace(handlers, fetch=FakeFetch([pending()]))
    watch(handlers, {"operation": OPERATION, "watch_id": "w-ledger-2"}, "m-ledger-2")
    handlers = replace(handlers, settings=spanner)
    with capture.serving(AUDIT_SERVICE):
        handlers.on_audit_message(pubsub_message(last_of_spanner, "a-5"))

    # A check on its last attempts whose schedule fails: parked in Cloud Tasks, then on the
    # parked topic (and back), then abandoned when nothing takes it.
    last = {"retries": settings.tasks.max_attempts - 1}
    parking = replace(settings, parked_topic="projects/p/topics/opwatch-parked")
    for name, fails, publish in (
        ("tasks", 1, RecordingPublish()),
        ("pubsub", 2, RecordingPublish()),
        ("abandoned", 2, RecordingPublish(fail_with=RuntimeError("pubsub down"))),
    ):
        schedule = FakeQueue()
        handlers, clock = _notifier(parking, FakeFetch([pending()]), schedule, RecordingPublish())
        watch(handlers, {"operation": OPERATION}, f"m-park-{name}")
        (task,) = schedule.tasks
        outage = FlakySchedule(fails)
        handlers, _ = _notifier(parking, FakeFetch([pending()]), outage, publish)  # type: ignore[arg-type]
        with capture.serving(CHECK_SERVICE):
            handlers.on_check(checks.decode(task.body), **last)
        if name == "pubsub":
            (parked,) = publish.messages
            handlers, _ = _notifier(
                parking, FakeFetch([pending()]), FakeQueue(), RecordingPublish()
            )
            watch(
                handlers,
                None,
                "m-resumed",
                data=base64.b64encode(parked.data).decode(),
                attributes={PARKED_ATTRIBUTE: PARKED_VALUE},
            )


class FlakySchedule(FakeQueue):
    """Refuses the first ``fails`` tasks, then takes them."""

    def __init__(self, fails: int) -> None:
        super().__init__()
        self.fails = fails

    def create(self, task: checks.CheckTask) -> bool:
        if self.fails > 0:
            self.fails -= 1
            raise RuntimeError("cloud tasks down")
        return super().create(task)


def _drive_main(capture: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lines functions/main.py writes itself: refused checks and non-push requests."""
    env = {
        "RESULTS_TOPIC": "projects/test-project/topics/opwatch-results",
        "TASKS_QUEUE": "projects/test-project/locations/us-central1/queues/opwatch-checks",
        "CHECK_URL": "https://opwatch-on-check-123456789012.us-central1.run.app",
        "TASKS_INVOKER_SA": "opwatch-invoker@test-project.iam.gserviceaccount.com",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(sys, "path", [*sys.path])
    logger = logging.getLogger(LOGGER_NAME)
    monkeypatch.setattr(logger, "handlers", [capture])
    source = str(ROOT / "functions" / "main.py")
    try:
        with capture.serving(CHECK_SERVICE):
            client = functions_framework.create_app("on_check", source=source).test_client()
            # main.py's own stdout handler is not wanted here: keep only the capture.
            logger.handlers[:] = [capture]
            client.post("/", data=b"{}")  # no queue header
            client.post("/", data=b"x", headers={"X-CloudTasks-QueueName": env["TASKS_QUEUE"]})
        with capture.serving(WATCH_SERVICE):
            client = functions_framework.create_app("on_watch_request", source=source).test_client()
            logger.handlers[:] = [capture]
            client.post("/", data=b"[]", content_type="application/json")
    finally:
        sys.modules.pop("main", None)


@pytest.fixture(scope="module")
def entries() -> Iterator[list[dict[str, Any]]]:
    """Every LogEntry the code writes on its paths, plus lines from elsewhere in the project."""
    settings = Settings(
        watch=WatchConfig(results_topic="projects/test-project/topics/opwatch-results"),
        tasks=TasksConfig(
            queue="projects/test-project/locations/us-central1/queues/opwatch-checks",
            check_url="https://opwatch-on-check-123456789012.us-central1.run.app",
            max_attempts=5,
        ),
    )
    capture = Capture()
    logger = logging.getLogger(LOGGER_NAME)
    saved = (logger.level, logger.propagate)
    logger.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    monkeypatch = pytest.MonkeyPatch()
    try:
        _drive_notifier(capture, settings)
        _drive_main(capture, monkeypatch)
    finally:
        monkeypatch.undo()
        logger.removeHandler(capture)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
    yield capture.entries


def foreign(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same lines as if written by another service, or by something that is not Cloud Run."""
    others = []
    for entry in entries:
        other = copy.deepcopy(entry)
        other["resource"]["labels"]["service_name"] = "someone-else"
        others.append(other)
        other = copy.deepcopy(entry)
        other["resource"]["type"] = "cloud_function"
        others.append(other)
    return others


def event(entry: dict[str, Any]) -> str:
    return str(entry["jsonPayload"].get("event"))


# --- the captured lines --------------------------------------------------------------------------


def test_every_event_of_the_vocabulary_was_captured(entries: list[dict[str, Any]]) -> None:
    # Otherwise "selects exactly" below would be proven on a partial picture.
    assert {event(e) for e in entries} == {str(e) for e in Event}
    outcomes = {e["jsonPayload"].get("outcome") for e in entries if event(e) == "watch.finished"}
    # Every outcome of a watched operation that exists today; an outcome added later (CANCELLED)
    # needs no metric change, only a path here if its lines should be proven too.
    driven = {"SUCCEEDED", "FAILED", "TIMED_OUT", "NOT_FOUND", "PERMISSION_DENIED", "CANCELLED"}
    assert outcomes == driven <= {o.value for o in Outcome}
    transient = [e["jsonPayload"] for e in entries if event(e) == "check.transient_error"]
    assert {line["http_status"] for line in transient} == {503, None}
    services = {e["resource"]["labels"]["service_name"] for e in entries}
    assert services == {WATCH_SERVICE, CHECK_SERVICE, AUDIT_SERVICE, SWEEP_SERVICE}


def test_the_metrics_select_the_names_of_infra_functions() -> None:
    # The service names the capture uses are the functions' names in main.tf.
    assert resolve("${local.watch_function_name}") == WATCH_SERVICE
    assert resolve("${local.check_function_name}") == CHECK_SERVICE
    assert resolve("${local.audit_function_name}") == AUDIT_SERVICE
    assert resolve("${local.sweep_function_name}") == SWEEP_SERVICE


# --- each metric against the lines -------------------------------------------------------------


def test_every_log_metric_is_covered() -> None:
    assert set(tf().of_type("google_logging_metric")) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_metric_selects_exactly_its_events(name: str, entries: list[dict[str, Any]]) -> None:
    selects = logquery.compile_filter(metric_filter(name))
    chosen = [e for e in entries if selects(e)]
    wrong = [event(e) for e in entries if selects(e) != (event(e) in EXPECTED[name])]
    if name == "detection_lag":
        # Only the watch.finished lines that carry the lag.
        wrong = [
            event(e) for e in entries if selects(e) != ("detection_lag_seconds" in e["jsonPayload"])
        ]
        assert any(event(e) == "watch.finished" and not selects(e) for e in entries)
    assert chosen, f"{name} selects none of the captured lines"
    assert not wrong, f"{name} selects wrongly: {sorted(set(wrong))}"
    assert not [e for e in foreign(entries) if selects(e)], f"{name} counts other services"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_extractors_find_their_fields(name: str, entries: list[dict[str, Any]]) -> None:
    body = metric(name)
    selects = logquery.compile_filter(metric_filter(name))
    chosen = [e for e in entries if selects(e)]
    extractors = label_extractors(name)
    if "value_extractor" in body:
        extractors["(value)"] = str(body["value_extractor"])
    for label, extractor in extractors.items():
        path = logquery.extractor_field(extractor)
        missing = [event(e) for e in chosen if not logquery.has_field(e, path)]
        assert not missing, f"{name}: {label} = {extractor} is missing on {missing}"
    if "value_extractor" in body:
        values = [logquery.lookup(e, "jsonPayload.detection_lag_seconds") for e in chosen]
        assert all(isinstance(v, int | float) and v >= 0 for v in values), values
    # The API needs a descriptor label for every extractor, and no other.
    (descriptor,) = body["metric_descriptor"]
    declared = {label["key"] for label in descriptor.get("labels", [])}
    assert declared == set(label_extractors(name))


def test_outcome_is_a_label_not_a_list() -> None:
    # A new outcome (CANCELLED is coming) must need no change to the metrics.
    text = (INFRA / "monitoring.tf").read_text()
    for resource in ("watches_finished", "detection_lag"):
        assert label_extractors(resource)["outcome"] == "EXTRACT(jsonPayload.outcome)"
        assert "SUCCEEDED" not in metric_filter(resource)
    assert "TIMED_OUT" not in text and "NOT_FOUND" not in text


def test_counters_are_delta_int64_and_the_lag_a_distribution() -> None:
    for name in EXPECTED:
        (descriptor,) = metric(name)["metric_descriptor"]
        assert descriptor["metric_kind"] == "DELTA"
        expected = "DISTRIBUTION" if name == "detection_lag" else "INT64"
        assert descriptor["value_type"] == expected, name
    lag = metric("detection_lag")
    (descriptor,) = lag["metric_descriptor"]
    assert descriptor["unit"] == "s" and "bucket_options" in lag


# --- the evaluator and these tests can fail ---------------------------------------------------


def test_a_renamed_event_selects_nothing(entries: list[dict[str, Any]]) -> None:
    text = metric_filter("watches_started").replace("watch.started", "watch.start")
    text = text.replace("watch.discovered", "watch.discover")
    assert not [e for e in entries if logquery.compile_filter(text)(e)]


def test_dropping_the_service_clause_counts_other_services(entries: list[dict[str, Any]]) -> None:
    text = metric_filter("watch_abandoned")
    base = resolve("${local.opwatch_logs}")
    bare = text.replace(base + " AND ", 'resource.type="cloud_run_revision" AND ')
    assert bare != text
    assert [e for e in foreign(entries) if logquery.compile_filter(bare)(e)]


def test_or_for_and_selects_too_much(entries: list[dict[str, Any]]) -> None:
    text = metric_filter("transient_errors").replace(
        " AND jsonPayload.event", " OR jsonPayload.event"
    )
    selects = logquery.compile_filter(text)
    assert {event(e) for e in entries if selects(e)} > {"check.transient_error"}


def test_a_missing_field_is_reported(entries: list[dict[str, Any]]) -> None:
    selects = logquery.compile_filter(metric_filter("watches_started"))
    chosen = [e for e in entries if selects(e)]
    path = logquery.extractor_field("EXTRACT(jsonPayload.outcome)")
    assert not any(logquery.has_field(e, path) for e in chosen)


@pytest.mark.parametrize(
    ("query", "entry", "expected"),
    [
        ('a="x"', {"a": "x"}, True),
        ('a="x"', {"a": "X"}, False),
        ('a!="x"', {}, True),
        ('a!="x"', {"a": "x"}, False),
        ("a:*", {"a": None}, True),
        ("a:*", {}, False),
        ('a:"INDEX"', {"a": "an index"}, True),
        ("a>=10", {"a": 10}, True),
        ("a>10", {"a": 10}, False),
        ("a<2.5", {"a": 2}, True),
        ("severity>=WARNING", {"severity": "ERROR"}, True),
        ("severity>=WARNING", {"severity": "INFO"}, False),
        ('NOT a="x"', {"a": "y"}, True),
        ('a=("x" OR "y")', {"a": "y"}, True),
        ('a!=("x" OR "y")', {"a": "y"}, False),
        ('a="x" b="y"', {"a": "x", "b": "z"}, False),  # juxtaposition is AND
        # OR binds tighter than AND in the Logging query language.
        ('a="x" AND b="y" OR c="z"', {"a": "x", "c": "z"}, True),
        ('(a="x" AND b="y") OR c="z"', {"c": "z"}, True),
        ('a="x" AND b="y" OR c="z"', {"c": "z"}, False),
        ('j.k="v\\"w"', {"j": {"k": 'v"w'}}, True),
        ("n=3", {"n": "3"}, True),
        ("n=3", {"n": 3.0}, True),
    ],
)
def test_evaluator(query: str, entry: dict[str, Any], expected: bool) -> None:
    assert logquery.compile_filter(query)(entry) is expected


@pytest.mark.parametrize(
    "query",
    [
        'a=~"x.*"',
        '-a="x"',
        'hasPrefix(a, "x")',
        'a="x" AND',
        '(a="x"',
        'a="x")',
        "a=*",
        "a>b",
        "severity>=LOUD",
        'a="x" $ b="y"',
    ],
)
def test_evaluator_fails_loudly_on_what_it_does_not_know(query: str) -> None:
    with pytest.raises(logquery.Unsupported):
        logquery.compile_filter(query)({"a": "x", "severity": "INFO"})


def test_only_extract_extractors_are_read() -> None:
    assert logquery.extractor_field("EXTRACT(jsonPayload.outcome)") == "jsonPayload.outcome"
    with pytest.raises(logquery.Unsupported):
        logquery.extractor_field('REGEXP_EXTRACT(jsonPayload.message, "(\\d+)")')


def test_unresolvable_interpolations_fail() -> None:
    with pytest.raises(AssertionError, match="unresolvable"):
        resolve("${google_pubsub_topic.results.id}")


# --- alerts ---------------------------------------------------------------------------------


def test_failed_outcomes_alert_is_a_ratio_of_finished_watches() -> None:
    policy = tf().resource("google_monitoring_alert_policy", "failed_outcomes")
    (conditions,) = policy["conditions"]
    (condition,) = conditions["condition_threshold"]
    finished = "logging.googleapis.com/user/${google_logging_metric.watches_finished.name}"
    assert finished in condition["filter"] and finished in condition["denominator_filter"]
    outcomes = re.search(r"metric\.labels\.outcome = one_of\(([^)]*)\)", condition["filter"])
    assert outcomes, condition["filter"]
    named = set(re.findall(r'"([A-Z_]+)"', outcomes.group(1)))
    assert named == {"FAILED", "PERMISSION_DENIED"} <= {o.value for o in Outcome}
    assert "one_of" not in condition["denominator_filter"]
    assert condition["threshold_value"] == "${var.failed_outcomes_alert.max_ratio}"
    assert condition["comparison"] == "COMPARISON_GT"
    for key in ("aggregations", "denominator_aggregations"):
        (aggregation,) = condition[key]
        assert aggregation["alignment_period"] == "${var.failed_outcomes_alert.window}"
        assert aggregation["per_series_aligner"] == "ALIGN_SUM"
        assert aggregation["cross_series_reducer"] == "REDUCE_SUM"
    assert policy["notification_channels"] == "${var.alert_notification_channels}"


def test_failed_outcomes_threshold_has_a_default_and_a_validation() -> None:
    variable = tf().variables["failed_outcomes_alert"]
    assert variable["default"] == {}
    assert "optional(number, 0.2)" in str(variable["type"])
    assert len(variable["validation"]) == 2


def test_the_three_alerts_exist() -> None:
    assert set(tf().of_type("google_monitoring_alert_policy")) == {
        "watch_abandoned",
        "dead_letter",
        "failed_outcomes",
    }


# --- dashboard ------------------------------------------------------------------------------

PLACEHOLDER = re.compile(r"\$\{([a-z_]+)\}")


@cache
def default_dispatch_rate() -> float:
    """The queue's rate with the module's defaults, as terraform evaluates checks.tf (the
    variable's default is null: 5, or the smallest read budget of the watched APIs)."""
    with tempfile.TemporaryDirectory() as root:
        rate: float = Planner(Path(root)).value("local.tasks_max_dispatches_per_second")
    return rate


def sample_vars() -> dict[str, Any]:
    """What templatefile gets, with the names the module would give (default prefix)."""
    names = {
        str(resource["name"]).replace("${var.name_prefix}", NAME_PREFIX): key
        for key, resource in tf().of_type("google_logging_metric").items()
    }
    values: dict[str, Any] = {v: k for k, v in names.items()}
    values.update(
        name_prefix=NAME_PREFIX,
        queue_id=f"{NAME_PREFIX}-checks",
        dead_letter_subscription=f"{NAME_PREFIX}-watch-dead-letter-inspect",
        max_dispatches_per_second=default_dispatch_rate(),
    )
    return values


def render(template: str, values: dict[str, Any]) -> str:
    """``templatefile`` for the plain ``${name}`` placeholders the template is allowed to use."""
    assert "%{" not in template and "$${" not in template, "template directives are not used"
    unknown = set(PLACEHOLDER.findall(template)) - set(values)
    assert not unknown, f"the template uses undefined variables {unknown}"
    rendered = PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)
    assert "${" not in rendered, "a placeholder is not a plain ${name}"
    return rendered


@cache
def dashboard() -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(render(DASHBOARD.read_text(), sample_vars()))
    return decoded


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD_SCHEMA.read_text())
    return loaded


def test_dashboard_is_rendered_from_the_template_with_exactly_its_variables() -> None:
    body = tf().resource("google_monitoring_dashboard", "opwatch")
    assert body["dashboard_json"] == (
        '${templatefile("${path.module}/dashboards/opwatch.json.tftpl", local.dashboard_vars)}'
    )
    assert set(tf().locals["dashboard_vars"]) == set(PLACEHOLDER.findall(DASHBOARD.read_text()))
    # Each metric variable is the metric resource of the same name.
    for key, value in tf().locals["dashboard_vars"].items():
        if key in EXPECTED:
            assert value == f"${{google_logging_metric.{key}.name}}"
    assert tf().locals["dashboard_vars"]["max_dispatches_per_second"] == (
        "${local.tasks_max_dispatches_per_second}"
    )


def test_dashboard_is_valid_against_the_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())
    jsonschema.Draft202012Validator(schema()).validate(dashboard())


def test_zero_tile_positions_are_left_out() -> None:
    """The Monitoring API returns a dashboard without its zero xPos/yPos (proto3 defaults), and
    the provider then shows a diff on every plan (hashicorp/terraform-provider-google issue
    16173, open): the template writes no zero position, and at least one tile sits at 0 so the
    check means something."""
    tiles = dashboard()["mosaicLayout"]["tiles"]
    for tile in tiles:
        for key in ("xPos", "yPos"):
            assert tile.get(key) != 0, f"{tile['widget']['title']}: {key} = 0 is written"
    assert any("xPos" not in tile and "yPos" not in tile for tile in tiles)


def test_tiles_fit_the_grid_and_do_not_overlap() -> None:
    layout = dashboard()["mosaicLayout"]
    taken: set[tuple[int, int]] = set()
    for tile in layout["tiles"]:
        x, y = tile.get("xPos", 0), tile.get("yPos", 0)
        assert x + tile["width"] <= layout["columns"], tile["widget"]["title"]
        cells = {(x + dx, y + dy) for dx in range(tile["width"]) for dy in range(tile["height"])}
        assert not cells & taken, f"{tile['widget']['title']} overlaps another tile"
        taken |= cells


def filters() -> list[str]:
    return [
        data_set["timeSeriesQuery"]["timeSeriesFilter"]["filter"]
        for tile in dashboard()["mosaicLayout"]["tiles"]
        for data_set in tile["widget"]["xyChart"]["dataSets"]
    ]


def test_dashboard_shows_every_metric_the_issue_lists() -> None:
    shown = {m for f in filters() for m in re.findall(r'metric\.type="([^"]+)"', f)}
    metrics = {f"logging.googleapis.com/user/{sample_vars()[name]}" for name in EXPECTED}
    assert metrics <= shown
    # Cloud Tasks and Pub/Sub metric names: https://cloud.google.com/monitoring/api/metrics_gcp
    # (queue/depth and queue/task_attempt_count of cloudtasks; subscription/
    # num_undelivered_messages of pubsub). Verified against third-party copies of that list;
    # the resource type cloud_tasks_queue could not be confirmed offline.
    assert {
        "cloudtasks.googleapis.com/queue/depth",
        "cloudtasks.googleapis.com/queue/task_attempt_count",
        "pubsub.googleapis.com/subscription/num_undelivered_messages",
    } <= shown
    assert shown <= metrics | {
        "cloudtasks.googleapis.com/queue/depth",
        "cloudtasks.googleapis.com/queue/task_attempt_count",
        "pubsub.googleapis.com/subscription/num_undelivered_messages",
    }


def test_dispatch_rate_is_drawn_against_the_rate_limit() -> None:
    (tile,) = [
        t for t in dashboard()["mosaicLayout"]["tiles"] if "task_attempt_count" in json.dumps(t)
    ]
    (threshold,) = tile["widget"]["xyChart"]["thresholds"]
    assert threshold["value"] == sample_vars()["max_dispatches_per_second"]
    (data_set,) = tile["widget"]["xyChart"]["dataSets"]
    aggregation = data_set["timeSeriesQuery"]["timeSeriesFilter"]["aggregation"]
    assert aggregation["perSeriesAligner"] == "ALIGN_RATE"  # per second, like the limit


def test_group_by_labels_exist_on_the_metrics() -> None:
    declared = {
        label["key"]
        for resource in tf().of_type("google_logging_metric").values()
        for descriptor in resource["metric_descriptor"]
        for label in descriptor.get("labels", [])
    }
    for tile in dashboard()["mosaicLayout"]["tiles"]:
        for data_set in tile["widget"]["xyChart"]["dataSets"]:
            query = data_set["timeSeriesQuery"]["timeSeriesFilter"]
            for field in query["aggregation"].get("groupByFields", []):
                label = field.removeprefix("metric.label.")
                if "logging.googleapis.com/user/" in query["filter"]:
                    assert label in declared, field
                else:
                    assert label == "response_code", field


Mutation = Callable[[dict[str, Any]], None]


def _unknown_field(d: dict[str, Any]) -> None:
    d["mosaicLayout"]["tiles"][0]["widget"]["xyCharts"] = {}


def _bad_aligner(d: dict[str, Any]) -> None:
    data_set = d["mosaicLayout"]["tiles"][0]["widget"]["xyChart"]["dataSets"][0]
    data_set["timeSeriesQuery"]["timeSeriesFilter"]["aggregation"]["perSeriesAligner"] = "RATE"


def _no_title(d: dict[str, Any]) -> None:
    del d["displayName"]


def _two_layouts(d: dict[str, Any]) -> None:
    d["gridLayout"] = {"columns": "2", "widgets": []}


def _string_threshold(d: dict[str, Any]) -> None:
    for tile in d["mosaicLayout"]["tiles"]:
        for threshold in tile["widget"]["xyChart"].get("thresholds", []):
            threshold["value"] = "5"


@pytest.mark.parametrize(
    "mutate", [_unknown_field, _bad_aligner, _no_title, _two_layouts, _string_threshold]
)
def test_schema_rejects_a_broken_dashboard(mutate: Mutation) -> None:
    broken = copy.deepcopy(dashboard())
    mutate(broken)
    assert list(jsonschema.Draft202012Validator(schema()).iter_errors(broken))
