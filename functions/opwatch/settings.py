"""Configuration: read once from the environment, at the edge, into one frozen object.

The README's configuration table documents every variable; :meth:`Settings.from_env` is the only
place that reads them. A missing or malformed setting stops the function from starting, with one
message that lists every problem.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from opwatch.contracts import DEFAULT_API
from opwatch.errors import ConfigurationError
from opwatch.learned import DEFAULT_MIN_SAMPLES

TOPIC_PATTERN: Final = re.compile(r"^projects/[^/\s]+/topics/[^/\s]+$")
QUEUE_PATTERN: Final = re.compile(r"^projects/[^/\s]+/locations/[^/\s]+/queues/[^/\s]+$")
# A named database (never "(default)"): Firestore's rule is 4-63 of [a-z0-9-], starting with a
# letter and not ending with a hyphen.
LEDGER_PATTERN: Final = re.compile(r"^projects/([^/\s]+)/databases/([a-z][a-z0-9-]{2,61}[a-z0-9])$")
DEFAULT_LEDGER_RETENTION_DAYS: Final = 30
# Cloud Tasks' own defaults (queue retry_config, HttpRequest dispatch_deadline).
DEFAULT_DISPATCH_DEADLINE: Final = 600
DEFAULT_TASKS_MAX_ATTEMPTS: Final = 100
# How a boolean setting may be written (Terraform's tostring(bool) gives "true"/"false").
_BOOLEANS: Final = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@dataclass(frozen=True)
class Settings:
    """Everything the functions need to know about their deployment.

    Attributes:
        results_topic: full path of the topic notifications go to.
        tasks_queue: full path of the Cloud Tasks queue for re-checks.
        check_url: URL of the check function (task target, and OIDC audience).
        invoker_service_account: service account whose OIDC token Cloud Tasks sends; None
            sends no token (only sensible locally).
        allowed_apis: API hosts a watch may name.
        allowed_notify_topics: topics a watch may name; the results topic is always one.
        operations_endpoint: local only: replaces ``https://{api}`` for every fetch, and no
            credentials are sent to it.
        fetch_timeout: seconds for one GET of an operation.
        tasks_emulator_host: local only: ``host:port`` of a Cloud Tasks emulator.
        log_level: minimum level of the JSON logs.
        dispatch_deadline: seconds Cloud Tasks waits for one check (the check function's
            timeout; Cloud Tasks allows 15 to 1800).
        tasks_max_attempts: the queue's ``max_attempts`` (-1: unlimited); a check on its last
            attempts parks its watch instead of failing once more.
        parked_topic: where a watch goes when not even a task can be created (its push
            subscription brings it back to the watch function); None: nowhere.
        event_driven_apis: APIs whose operations' ends reach opwatch from Cloud Audit Logs:
            their watches poll only as a safety net (``policy.SAFETY_NET``).
        discovery_include_caller: label a watch discovered in the audit logs with the caller's
            email (personal data, so off unless asked for).
        ledger_database: ``projects/P/databases/D``, the Firestore database of the ledger
            (README, "The ledger"); None: no ledger, finding a watch scans the queue.
        ledger_retention_days: how long a finished watch's document is kept (its TTL).
        learn_min_samples: finished operations of a kind before its watches are scheduled from
            what was learned of it (README, "Learned durations").
        warn_overdue: whether a watch that does not say ``warn_overdue`` is warned.
    """

    results_topic: str
    tasks_queue: str
    check_url: str
    invoker_service_account: str | None = None
    allowed_apis: frozenset[str] = frozenset({DEFAULT_API})
    allowed_notify_topics: frozenset[str] = frozenset()
    operations_endpoint: str | None = None
    fetch_timeout: float = 10.0
    tasks_emulator_host: str | None = None
    log_level: str = "INFO"
    dispatch_deadline: int = DEFAULT_DISPATCH_DEADLINE
    tasks_max_attempts: int = DEFAULT_TASKS_MAX_ATTEMPTS
    parked_topic: str | None = None
    event_driven_apis: frozenset[str] = frozenset()
    discovery_include_caller: bool = False
    ledger_database: str | None = None
    ledger_retention_days: int = DEFAULT_LEDGER_RETENTION_DAYS
    learn_min_samples: int = DEFAULT_MIN_SAMPLES
    warn_overdue: bool = False

    def on_last_attempts(self, retries: int) -> bool:
        """Whether a check retried ``retries`` times may be the queue's last try of it."""
        return 0 < self.tasks_max_attempts <= retries + 1

    @property
    def queue_names(self) -> frozenset[str]:
        """How ``X-CloudTasks-QueueName`` may name the queue: its id (Cloud Tasks) or full path
        (the emulator)."""
        return frozenset({self.tasks_queue, self.tasks_queue.rsplit("/", 1)[-1]})

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build the settings from environment variables.

        Raises:
            ConfigurationError: naming every missing or malformed variable.
        """
        problems: list[str] = []

        def get(name: str) -> str | None:
            value = environ.get(name, "").strip()
            return value or None

        def required(name: str, pattern: re.Pattern[str] | None, example: str) -> str:
            value = get(name)
            if value is None:
                problems.append(f"{name} is required, e.g. {example}")
                return ""
            if pattern is not None and not pattern.match(value):
                problems.append(f"{name}={value!r} is malformed; expected e.g. {example}")
            return value

        results_topic = required(
            "RESULTS_TOPIC", TOPIC_PATTERN, "projects/my-project/topics/opwatch-results"
        )
        tasks_queue = required(
            "TASKS_QUEUE",
            QUEUE_PATTERN,
            "projects/my-project/locations/us-central1/queues/opwatch-checks",
        )
        check_url = required(
            "CHECK_URL", None, "https://opwatch-on-check-123456789012.us-central1.run.app"
        )
        if check_url and urlsplit(check_url).scheme not in ("http", "https"):
            problems.append(f"CHECK_URL={check_url!r} must be an http(s) URL")

        notify_topics = _split(get("ALLOWED_NOTIFY_TOPICS"))
        problems.extend(
            f"ALLOWED_NOTIFY_TOPICS has {topic!r}, not a full topic path projects/<p>/topics/<t>"
            for topic in sorted(notify_topics)
            if not TOPIC_PATTERN.match(topic)
        )
        apis = _split(get("ALLOWED_APIS")) or {DEFAULT_API}
        problems.extend(
            f"ALLOWED_APIS has {api!r}, which is not a bare host name like {DEFAULT_API}"
            for api in sorted(apis)
            if not re.fullmatch(
                r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+", api
            )
        )

        event_driven = _split(get("EVENT_DRIVEN_APIS"))
        problems.extend(
            f"EVENT_DRIVEN_APIS has {api!r}, which is not in ALLOWED_APIS"
            for api in sorted(event_driven - apis)
        )

        endpoint = get("OPERATIONS_API_ENDPOINT")
        if endpoint and (
            urlsplit(endpoint).scheme not in ("http", "https") or not urlsplit(endpoint).netloc
        ):
            problems.append(
                f"OPERATIONS_API_ENDPOINT={endpoint!r} must be a URL like http://127.0.0.1:8090"
            )

        fetch_timeout = 10.0
        if (raw_timeout := get("FETCH_TIMEOUT")) is not None:
            try:
                fetch_timeout = float(raw_timeout)
            except ValueError:
                fetch_timeout = math.nan
            if not 0 < fetch_timeout <= 300:
                problems.append(f"FETCH_TIMEOUT={raw_timeout!r} must be seconds between 0 and 300")

        def integer(name: str, default: int, low: int, high: int, meaning: str) -> int:
            raw = get(name)
            if raw is None:
                return default
            try:
                value = int(raw)
            except ValueError:
                value = low - 1
            if not low <= value <= high:
                problems.append(f"{name}={raw!r} must be {meaning}")
            return value

        dispatch_deadline = integer(
            "DISPATCH_DEADLINE",
            DEFAULT_DISPATCH_DEADLINE,
            15,
            1800,
            "whole seconds from 15 to 1800 (Cloud Tasks' range for an HTTP task)",
        )
        max_attempts = integer(
            "TASKS_MAX_ATTEMPTS",
            DEFAULT_TASKS_MAX_ATTEMPTS,
            -1,
            10**6,
            "the queue's retry_config.max_attempts: a positive whole number, or -1 (unlimited)",
        )
        if max_attempts == 0:
            problems.append("TASKS_MAX_ATTEMPTS='0' must be positive, or -1 (unlimited)")
        parked_topic = get("PARKED_TOPIC")
        if parked_topic is not None and not TOPIC_PATTERN.match(parked_topic):
            problems.append(
                f"PARKED_TOPIC={parked_topic!r} is malformed; expected e.g. "
                "projects/my-project/topics/opwatch-parked-checks"
            )

        include_caller = False
        if (raw_caller := get("DISCOVERY_INCLUDE_CALLER")) is not None:
            if raw_caller.lower() not in _BOOLEANS:
                problems.append(f"DISCOVERY_INCLUDE_CALLER={raw_caller!r} must be true or false")
            include_caller = _BOOLEANS.get(raw_caller.lower(), False)

        ledger = get("LEDGER_DATABASE")
        if ledger is not None and not LEDGER_PATTERN.match(ledger):
            problems.append(
                f"LEDGER_DATABASE={ledger!r} is malformed; expected a named database, e.g. "
                "projects/my-project/databases/opwatch-ledger"
            )
        retention = integer(
            "LEDGER_RETENTION_DAYS",
            DEFAULT_LEDGER_RETENTION_DAYS,
            1,
            3650,
            "whole days from 1 to 3650",
        )

        warn_overdue = False
        if (raw_warn := get("WARN_OVERDUE")) is not None:
            if raw_warn.lower() not in _BOOLEANS:
                problems.append(f"WARN_OVERDUE={raw_warn!r} must be true or false")
            warn_overdue = _BOOLEANS.get(raw_warn.lower(), False)
        min_samples = integer(
            "LEARN_MIN_SAMPLES", DEFAULT_MIN_SAMPLES, 1, 10**6, "a positive whole number"
        )

        log_level = (get("LOG_LEVEL") or "INFO").upper()
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            problems.append(f"LOG_LEVEL={log_level!r} must be DEBUG, INFO, WARNING or ERROR")

        if problems:
            raise ConfigurationError("opwatch is not configured: " + "; ".join(problems))
        return cls(
            results_topic=results_topic,
            tasks_queue=tasks_queue,
            check_url=check_url,
            invoker_service_account=get("TASKS_INVOKER_SA"),
            allowed_apis=frozenset(apis),
            allowed_notify_topics=frozenset(notify_topics | {results_topic}),
            operations_endpoint=endpoint.rstrip("/") if endpoint else None,
            fetch_timeout=fetch_timeout,
            tasks_emulator_host=get("CLOUD_TASKS_EMULATOR_HOST"),
            log_level=log_level,
            dispatch_deadline=dispatch_deadline,
            tasks_max_attempts=max_attempts,
            parked_topic=parked_topic,
            event_driven_apis=frozenset(event_driven),
            discovery_include_caller=include_caller,
            ledger_database=ledger,
            ledger_retention_days=retention,
            learn_min_samples=min_samples,
            warn_overdue=warn_overdue,
        )


def _split(value: str | None) -> set[str]:
    return {item.strip() for item in (value or "").split(",") if item.strip()}
