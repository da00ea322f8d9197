"""Configuration read once from the environment, failing with every problem named."""

from __future__ import annotations

import pytest

from opwatch.errors import ConfigurationError
from opwatch.settings import VARIABLES, Settings
from tests.fakes import CHECK_URL, QUEUE, RESULTS

REQUIRED = {"RESULTS_TOPIC": RESULTS, "TASKS_QUEUE": QUEUE, "CHECK_URL": CHECK_URL}


def test_defaults() -> None:
    settings = Settings.from_env(REQUIRED)
    assert settings.allowlists.apis == {"cloudaicompanion.googleapis.com"}
    assert settings.allowlists.notify_topics == {RESULTS}
    assert (settings.fetch.timeout, settings.log_level) == (10.0, "INFO")
    assert settings.tasks.invoker_service_account is None
    assert settings.fetch.endpoint is None
    # Cloud Tasks' own defaults: a 10-minute dispatch deadline and 100 attempts.
    assert (settings.tasks.dispatch_deadline, settings.tasks.max_attempts) == (600, 100)
    assert settings.parked_topic is None
    assert (settings.tasks.queue, settings.tasks.check_url) == (QUEUE, CHECK_URL)
    assert settings.watch.results_topic == RESULTS


def test_everything_set() -> None:
    settings = Settings.from_env(
        {
            **REQUIRED,
            "TASKS_INVOKER_SA": "inv@p.iam.gserviceaccount.com",
            "ALLOWED_APIS": "cloudaicompanion.googleapis.com, spanner.googleapis.com",
            "ALLOWED_NOTIFY_TOPICS": "projects/p/topics/a,projects/p/topics/b",
            "OPERATIONS_API_ENDPOINT": "http://127.0.0.1:8090/",
            "FETCH_TIMEOUT": "2.5",
            "CLOUD_TASKS_EMULATOR_HOST": "127.0.0.1:9090",
            "LOG_LEVEL": "debug",
            "DISPATCH_DEADLINE": "540",
            "TASKS_MAX_ATTEMPTS": "10",
            "PARKED_TOPIC": "projects/p/topics/opwatch-parked-checks",
        }
    )
    assert (settings.tasks.dispatch_deadline, settings.tasks.max_attempts) == (540, 10)
    assert settings.parked_topic == "projects/p/topics/opwatch-parked-checks"
    assert settings.allowlists.apis == {"cloudaicompanion.googleapis.com", "spanner.googleapis.com"}
    expected_topics = {RESULTS, "projects/p/topics/a", "projects/p/topics/b"}
    assert settings.allowlists.notify_topics == expected_topics
    assert settings.fetch.endpoint == "http://127.0.0.1:8090"
    assert (settings.fetch.timeout, settings.log_level) == (2.5, "DEBUG")
    assert settings.tasks.emulator_host == "127.0.0.1:9090"
    assert settings.tasks.invoker_service_account == "inv@p.iam.gserviceaccount.com"


def test_missing_settings_are_all_named() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({})
    assert all(name in str(caught.value) for name in REQUIRED)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RESULTS_TOPIC", "opwatch-results"),
        ("TASKS_QUEUE", "opwatch-checks"),
        ("CHECK_URL", "ftp://x"),
        ("ALLOWED_APIS", "https://evil.example"),
        ("ALLOWED_NOTIFY_TOPICS", "topic-b"),
        ("OPERATIONS_API_ENDPOINT", "127.0.0.1:8090"),
        ("FETCH_TIMEOUT", "soon"),
        ("FETCH_TIMEOUT", "0"),
        ("LOG_LEVEL", "LOUD"),
        ("DISPATCH_DEADLINE", "14"),
        ("DISPATCH_DEADLINE", "1801"),
        ("DISPATCH_DEADLINE", "10m"),
        ("TASKS_MAX_ATTEMPTS", "0"),
        ("TASKS_MAX_ATTEMPTS", "-2"),
        ("TASKS_MAX_ATTEMPTS", "ten"),
        ("PARKED_TOPIC", "opwatch-parked-checks"),
        ("LEDGER_DATABASE", "projects/p/databases/(default)"),
        ("LEDGER_DATABASE", "opwatch-ledger"),
        ("LEDGER_RETENTION_DAYS", "0"),
        ("LEDGER_RETENTION_DAYS", "30d"),
        ("WARN_OVERDUE", "maybe"),
        ("LEARN_MIN_SAMPLES", "0"),
    ],
)
def test_malformed_settings_are_named(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({**REQUIRED, name: value})


@pytest.mark.parametrize(
    ("max_attempts", "retries", "last"),
    [(10, 8, False), (10, 9, True), (10, 30, True), (1, 0, True), (-1, 10**6, False)],
)
def test_a_check_knows_when_it_may_be_on_the_queues_last_attempt(
    max_attempts: int, retries: int, last: bool
) -> None:
    settings = Settings.from_env({**REQUIRED, "TASKS_MAX_ATTEMPTS": str(max_attempts)})
    assert settings.tasks.on_last_attempts(retries) is last


def test_the_ledger_is_optional_and_read_when_given() -> None:
    assert Settings.from_env(REQUIRED).ledger is None
    given = Settings.from_env(
        {
            **REQUIRED,
            "LEDGER_DATABASE": "projects/p/databases/opwatch-ledger",
            "LEDGER_RETENTION_DAYS": "7",
        }
    )
    assert given.ledger is not None
    assert (given.ledger.database, given.ledger.retention_days) == (
        "projects/p/databases/opwatch-ledger",
        7,
    )


def test_learning_settings_are_read() -> None:
    ledger = {**REQUIRED, "LEDGER_DATABASE": "projects/p/databases/opwatch-ledger"}
    default = Settings.from_env(ledger)
    assert default.ledger is not None
    assert (default.watch.warn_overdue, default.ledger.learn_min_samples) == (False, 5)
    given = Settings.from_env({**ledger, "WARN_OVERDUE": "true", "LEARN_MIN_SAMPLES": "20"})
    assert given.ledger is not None
    assert (given.watch.warn_overdue, given.ledger.learn_min_samples) == (True, 20)


def test_event_driven_apis_must_be_allowed() -> None:
    settings = Settings.from_env(
        {**REQUIRED, "EVENT_DRIVEN_APIS": "cloudaicompanion.googleapis.com"}
    )
    assert settings.watch.event_driven_apis == {"cloudaicompanion.googleapis.com"}
    with pytest.raises(ConfigurationError, match="EVENT_DRIVEN_APIS has 'spanner"):
        Settings.from_env({**REQUIRED, "EVENT_DRIVEN_APIS": "spanner.googleapis.com"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("yes", True), ("false", False), ("0", False)],
)
def test_discovery_include_caller_is_a_boolean(value: str, expected: bool) -> None:
    settings = Settings.from_env({**REQUIRED, "DISCOVERY_INCLUDE_CALLER": value})
    assert settings.discovery_include_caller is expected
    assert Settings.from_env(REQUIRED).discovery_include_caller is False


def test_discovery_include_caller_refuses_anything_else() -> None:
    with pytest.raises(ConfigurationError, match="DISCOVERY_INCLUDE_CALLER='maybe'"):
        Settings.from_env({**REQUIRED, "DISCOVERY_INCLUDE_CALLER": "maybe"})


def test_a_list_that_names_nothing_is_refused_rather_than_read_as_no_allowlist() -> None:
    with pytest.raises(ConfigurationError, match="ALLOWED_APIS=',' names nothing"):
        Settings.from_env({**REQUIRED, "ALLOWED_APIS": " , "})


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"RESULTS_TOPIC": "x", "FETCH_TIMEOUT": "0", "LOG_LEVEL": "LOUD"})
    message = str(caught.value)
    for name in ("RESULTS_TOPIC='x'", "TASKS_QUEUE is required", "CHECK_URL is required"):
        assert name in message
    assert "FETCH_TIMEOUT='0' must be seconds between 0 and 300" in message
    assert "LOG_LEVEL='LOUD' must be DEBUG, INFO, WARNING or ERROR" in message


def test_every_variable_is_declared_once() -> None:
    names = [variable.name for variable in VARIABLES]
    assert len(names) == len(set(names))
    assert {"RESULTS_TOPIC", "TASKS_QUEUE", "CHECK_URL"} <= set(names)
