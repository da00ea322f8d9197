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

TOPIC_PATTERN: Final = re.compile(r"^projects/[^/\s]+/topics/[^/\s]+$")
QUEUE_PATTERN: Final = re.compile(r"^projects/[^/\s]+/locations/[^/\s]+/queues/[^/\s]+$")


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
            "CHECK_URL", None, "https://us-central1-my-project.cloudfunctions.net/on_check"
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
        )


def _split(value: str | None) -> set[str]:
    return {item.strip() for item in (value or "").split(",") if item.strip()}
