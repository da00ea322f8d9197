"""Configuration: read once from the environment, at the edge, into small values per consumer.

:data:`VARIABLES` declares every environment variable in one line: its parser, its default and
an example; :meth:`Settings.from_env` is the only place that reads them (docs/configuration.md
tables them). A missing or malformed setting stops the function from starting, with one message
that lists every problem. Each adapter and use case takes only its own part: the fetcher a
:class:`FetchConfig`, the queue a :class:`TasksConfig`, and so on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple
from urllib.parse import urlsplit

from opwatch.contracts import DEFAULT_API
from opwatch.errors import ConfigurationError
from opwatch.learned import DEFAULT_MIN_SAMPLES

TOPIC_PATTERN: Final = re.compile(r"^projects/[^/\s]+/topics/[^/\s]+$")
QUEUE_PATTERN: Final = re.compile(r"^projects/[^/\s]+/locations/[^/\s]+/queues/[^/\s]+$")
HOST_PATTERN: Final = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+")
# A named database (never "(default)"): Firestore's rule is 4-63 of [a-z0-9-], starting with a
# letter and not ending with a hyphen.
LEDGER_PATTERN: Final = re.compile(r"^projects/([^/\s]+)/databases/([a-z][a-z0-9-]{2,61}[a-z0-9])$")
DEFAULT_LEDGER_RETENTION_DAYS: Final = 30
DEFAULT_FETCH_TIMEOUT: Final = 10.0
# Cloud Tasks' own defaults (queue retry_config, HttpRequest dispatch_deadline).
DEFAULT_DISPATCH_DEADLINE: Final = 600
DEFAULT_TASKS_MAX_ATTEMPTS: Final = 100
# How a boolean setting may be written (Terraform's tostring(bool) gives "true"/"false").
_BOOLEANS: Final = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@dataclass(frozen=True)
class Allowlists:
    """What a watch may name: its API and its notification topic (the results topic always)."""

    apis: frozenset[str] = frozenset({DEFAULT_API})
    notify_topics: frozenset[str] = frozenset()


@dataclass(frozen=True)
class FetchConfig:
    """How operations are fetched.

    Attributes:
        endpoint: local only: replaces ``https://{api}`` for every fetch, and no credentials
            are sent to it.
        timeout: seconds for one GET of an operation.
    """

    endpoint: str | None = None
    timeout: float = DEFAULT_FETCH_TIMEOUT


@dataclass(frozen=True)
class TasksConfig:
    """The Cloud Tasks queue of the checks and how its tasks call the check function.

    Attributes:
        queue: full path of the queue.
        check_url: URL of the check function (task target, and OIDC audience).
        invoker_service_account: service account whose OIDC token Cloud Tasks sends; None
            sends no token (only sensible locally).
        emulator_host: local only: ``host:port`` of a Cloud Tasks emulator.
        dispatch_deadline: seconds Cloud Tasks waits for one check (the check function's
            timeout; Cloud Tasks allows 15 to 1800).
        max_attempts: the queue's ``max_attempts`` (-1: unlimited); a check on its last
            attempts parks its watch instead of failing once more.
    """

    queue: str
    check_url: str | None = None  # None: this process creates no task (an operator's reads)
    invoker_service_account: str | None = None
    emulator_host: str | None = None
    dispatch_deadline: int = DEFAULT_DISPATCH_DEADLINE
    max_attempts: int = DEFAULT_TASKS_MAX_ATTEMPTS

    def on_last_attempts(self, retries: int) -> bool:
        """Whether a check retried ``retries`` times may be the queue's last try of it."""
        return 0 < self.max_attempts <= retries + 1

    @property
    def queue_names(self) -> frozenset[str]:
        """How ``X-CloudTasks-QueueName`` may name the queue: its id (Cloud Tasks) or full path
        (the emulator)."""
        return frozenset({self.queue, self.queue.rsplit("/", 1)[-1]})


@dataclass(frozen=True)
class LedgerConfig:
    """The ledger (docs/how-it-works.md, "The ledger").

    Attributes:
        database: ``projects/P/databases/D``, its Firestore database.
        retention_days: how long a finished watch's document is kept (its TTL).
        learn_min_samples: finished operations of a kind before its watches are scheduled from
            what was learned of it.
    """

    database: str
    retention_days: int = DEFAULT_LEDGER_RETENTION_DAYS
    learn_min_samples: int = DEFAULT_MIN_SAMPLES


@dataclass(frozen=True)
class WatchConfig:
    """What watching needs to know of the deployment.

    Attributes:
        results_topic: full path of the topic notifications go to.
        event_driven_apis: APIs whose operations' ends reach opwatch from Cloud Audit Logs:
            their watches poll only as a safety net (``policy.SAFETY_NET``).
        warn_overdue: whether a watch that does not say ``warn_overdue`` is warned.
    """

    results_topic: str
    event_driven_apis: frozenset[str] = frozenset()
    warn_overdue: bool = False


@dataclass(frozen=True)
class Settings:
    """Everything the functions need to know about their deployment, by consumer.

    Attributes:
        parked_topic: where a watch goes when not even a task can be created (its push
            subscription brings it back to the watch function); None: nowhere.
        discovery_include_caller: label a watch discovered in the audit logs with the caller's
            email (personal data, so off unless asked for).
        ledger: None: no ledger, finding a watch scans the queue.
        log_level: minimum level of the JSON logs.
    """

    watch: WatchConfig
    tasks: TasksConfig
    allowlists: Allowlists = field(default_factory=Allowlists)
    fetch: FetchConfig = field(default_factory=FetchConfig)
    ledger: LedgerConfig | None = None
    parked_topic: str | None = None
    discovery_include_caller: bool = False
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build the settings from environment variables.

        Raises:
            ConfigurationError: naming every missing or malformed variable.
        """
        problems: list[str] = []
        values: dict[str, Any] = {}
        for variable in VARIABLES:
            raw = environ.get(variable.name, "").strip()
            if not raw:
                if variable.default is _REQUIRED:
                    problems.append(f"{variable.name} is required, e.g. {variable.example}")
                values[variable.name] = None if variable.default is _REQUIRED else variable.default
                continue
            try:
                values[variable.name] = variable.parse(raw)
            except ValueError as error:
                problems.append(f"{variable.name}={raw!r} {error}")
                values[variable.name] = variable.default
        problems.extend(_inconsistencies(values))
        if problems:
            raise ConfigurationError("opwatch is not configured: " + "; ".join(problems))
        return _assemble(values)


def _assemble(v: Mapping[str, Any]) -> Settings:
    ledger = v["LEDGER_DATABASE"]
    return Settings(
        watch=WatchConfig(
            results_topic=v["RESULTS_TOPIC"],
            event_driven_apis=v["EVENT_DRIVEN_APIS"],
            warn_overdue=v["WARN_OVERDUE"],
        ),
        tasks=TasksConfig(
            queue=v["TASKS_QUEUE"],
            check_url=v["CHECK_URL"],
            invoker_service_account=v["TASKS_INVOKER_SA"],
            emulator_host=v["CLOUD_TASKS_EMULATOR_HOST"],
            dispatch_deadline=v["DISPATCH_DEADLINE"],
            max_attempts=v["TASKS_MAX_ATTEMPTS"],
        ),
        allowlists=Allowlists(
            apis=v["ALLOWED_APIS"],
            notify_topics=v["ALLOWED_NOTIFY_TOPICS"] | {v["RESULTS_TOPIC"]},
        ),
        fetch=FetchConfig(endpoint=v["OPERATIONS_API_ENDPOINT"], timeout=v["FETCH_TIMEOUT"]),
        ledger=(
            LedgerConfig(ledger, v["LEDGER_RETENTION_DAYS"], v["LEARN_MIN_SAMPLES"])
            if ledger
            else None
        ),
        parked_topic=v["PARKED_TOPIC"],
        discovery_include_caller=v["DISCOVERY_INCLUDE_CALLER"],
        log_level=v["LOG_LEVEL"],
    )


def _inconsistencies(v: Mapping[str, Any]) -> list[str]:
    """What no single variable can say is wrong."""
    problems = [
        f"EVENT_DRIVEN_APIS has {api!r}, which is not in ALLOWED_APIS"
        for api in sorted(v["EVENT_DRIVEN_APIS"] - v["ALLOWED_APIS"])
    ]
    if v["TASKS_MAX_ATTEMPTS"] == 0:
        problems.append("TASKS_MAX_ATTEMPTS='0' must be positive, or -1 (unlimited)")
    return problems


# --- parsers: each returns the value or raises ValueError saying what was expected -----------


def _matching(pattern: re.Pattern[str], example: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if not pattern.match(raw):
            raise ValueError(f"is malformed; expected e.g. {example}")
        return raw

    return parse


def _url(example: str, *, strip: bool = False) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"must be an http(s) URL like {example}")
        return raw.rstrip("/") if strip else raw

    return parse


def _listed(item: re.Pattern[str], what: str) -> Callable[[str], frozenset[str]]:
    """A comma-separated set, each item matching ``item``."""

    def parse(raw: str) -> frozenset[str]:
        items = frozenset(part.strip() for part in raw.split(",") if part.strip())
        if not items:
            raise ValueError("names nothing; leave it unset for the default")
        if wrong := sorted(part for part in items if not item.fullmatch(part)):
            raise ValueError(f"has {', '.join(map(repr, wrong))}, which is not {what}")
        return items

    return parse


def _number(
    convert: Callable[[str], float], accept: Callable[[float], bool], meaning: str
) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        try:
            value = convert(raw)
        except ValueError:
            value = math.nan  # accepted by no rule
        if not accept(value):
            raise ValueError(f"must be {meaning}")
        return value

    return parse


def _boolean(raw: str) -> bool:
    if raw.lower() not in _BOOLEANS:
        raise ValueError("must be true or false")
    return _BOOLEANS[raw.lower()]


def _level(raw: str) -> str:
    if raw.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
    return raw.upper()


def _text(raw: str) -> str:
    return raw


_REQUIRED: Final = object()


class Variable(NamedTuple):
    """One environment variable: its parser, its default (or required) and an example.

    A row of a table, so a NamedTuple: a cold start defines it for an eighth of what a frozen
    dataclass costs."""

    name: str
    parse: Callable[[str], Any]
    default: Any = None
    example: str = ""


_TOPIC_EXAMPLE: Final = "projects/my-project/topics/opwatch-results"
_HOSTS: Final = f"a bare host name like {DEFAULT_API}"

VARIABLES: Final = (
    Variable("RESULTS_TOPIC", _matching(TOPIC_PATTERN, _TOPIC_EXAMPLE), _REQUIRED, _TOPIC_EXAMPLE),
    Variable(
        "TASKS_QUEUE",
        _matching(QUEUE_PATTERN, "projects/my-project/locations/us-central1/queues/opwatch-checks"),
        _REQUIRED,
        "projects/my-project/locations/us-central1/queues/opwatch-checks",
    ),
    Variable(
        "CHECK_URL",
        _url("https://opwatch-on-check-123456789012.us-central1.run.app"),
        _REQUIRED,
        "https://opwatch-on-check-123456789012.us-central1.run.app",
    ),
    Variable("TASKS_INVOKER_SA", _text),
    Variable("ALLOWED_APIS", _listed(HOST_PATTERN, _HOSTS), frozenset({DEFAULT_API})),
    Variable(
        "ALLOWED_NOTIFY_TOPICS",
        _listed(TOPIC_PATTERN, "a full topic path projects/<p>/topics/<t>"),
        frozenset(),
    ),
    Variable("EVENT_DRIVEN_APIS", _listed(HOST_PATTERN, _HOSTS), frozenset()),
    Variable("OPERATIONS_API_ENDPOINT", _url("http://127.0.0.1:8090", strip=True)),
    Variable(
        "FETCH_TIMEOUT",
        _number(float, lambda t: 0 < t <= 300, "seconds between 0 and 300"),
        DEFAULT_FETCH_TIMEOUT,
    ),
    Variable("CLOUD_TASKS_EMULATOR_HOST", _text),
    Variable(
        "DISPATCH_DEADLINE",
        _number(
            int,
            lambda t: 15 <= t <= 1800,
            "whole seconds from 15 to 1800 (Cloud Tasks' range for an HTTP task)",
        ),
        DEFAULT_DISPATCH_DEADLINE,
    ),
    Variable(
        "TASKS_MAX_ATTEMPTS",
        _number(
            int,
            lambda n: -1 <= n <= 10**6,
            "the queue's retry_config.max_attempts: a positive whole number, or -1 (unlimited)",
        ),
        DEFAULT_TASKS_MAX_ATTEMPTS,
    ),
    Variable(
        "PARKED_TOPIC",
        _matching(TOPIC_PATTERN, "projects/my-project/topics/opwatch-parked-checks"),
    ),
    Variable("DISCOVERY_INCLUDE_CALLER", _boolean, False),
    Variable(
        "LEDGER_DATABASE",
        _matching(
            LEDGER_PATTERN,
            "a named database, e.g. projects/my-project/databases/opwatch-ledger",
        ),
    ),
    Variable(
        "LEDGER_RETENTION_DAYS",
        _number(int, lambda d: 1 <= d <= 3650, "whole days from 1 to 3650"),
        DEFAULT_LEDGER_RETENTION_DAYS,
    ),
    Variable("WARN_OVERDUE", _boolean, False),
    Variable(
        "LEARN_MIN_SAMPLES",
        _number(int, lambda n: 1 <= n <= 10**6, "a positive whole number"),
        DEFAULT_MIN_SAMPLES,
    ),
    Variable("LOG_LEVEL", _level, "INFO"),
)
