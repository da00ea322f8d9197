"""No credential leaves for a host outside the allowlist; nothing secret reaches the logs.

Two capture servers on loopback stand for "the configured operations endpoint" and "anywhere
else". The real OperationFetcher runs with a google-auth AuthorizedSession over fake credentials,
so the Authorization header is exactly what production would send.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
from google.auth.credentials import Credentials
from hypothesis import given
from hypothesis import strategies as st

from opwatch import checks, contracts
from opwatch.adapters import OperationFetcher, authorized_session
from opwatch.contracts import WatchRequest
from opwatch.core import Fetched, FetchFailed, Outcome
from opwatch.envelope import PushedMessage
from opwatch.handlers import Handlers
from opwatch.logs import LOGGER_NAME, JsonFormatter
from opwatch.settings import FetchConfig, Settings, TasksConfig, WatchConfig
from tests.fakes import OPERATION, QUEUE, RESULTS, Clock, FakeQueue, RecordingPublish

TOKEN_PREFIX = "ya29.fake-token-"


class FakeCredentials(Credentials):  # type: ignore[misc]
    """Credentials whose every refresh mints a new, recognisable token."""

    def __init__(self) -> None:
        super().__init__()
        self.refreshes = 0

    def refresh(self, request: Any) -> None:
        self.refreshes += 1
        self.token = f"{TOKEN_PREFIX}{self.refreshes}"


@dataclass
class Capture:
    """A loopback HTTP server that records requests and answers from a script."""

    answers: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # header names lowered
    url: str = ""

    def handler(self) -> type[BaseHTTPRequestHandler]:
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                capture.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                status, headers, body = (
                    capture.answers.pop(0) if capture.answers else (404, {}, b"{}")
                )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def servers() -> Iterator[tuple[Capture, Capture]]:
    """(the configured endpoint, another host), both on 127.0.0.1."""
    captures, running = (Capture(), Capture()), []
    for capture in captures:
        server = ThreadingHTTPServer(("127.0.0.1", 0), capture.handler())
        capture.url = f"http://127.0.0.1:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        running.append((server, thread))
    yield captures
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def local_settings() -> Settings:
    return Settings(
        watch=WatchConfig(results_topic=RESULTS),
        tasks=TasksConfig(queue=QUEUE, check_url="http://127.0.0.1/check"),
    )


def authorized_fetcher(endpoint: str, credentials: FakeCredentials) -> OperationFetcher:
    return OperationFetcher(
        FetchConfig(endpoint=endpoint), session_factory=lambda: authorized_session(credentials)
    )


def operation_json(done: bool = True) -> bytes:
    return json.dumps({"name": OPERATION, "done": done, "response": {}}).encode()


def test_the_token_goes_to_the_configured_endpoint_only(servers: tuple[Capture, Capture]) -> None:
    endpoint, elsewhere = servers
    endpoint.answers = [(200, {}, operation_json())]
    result = authorized_fetcher(endpoint.url, FakeCredentials())(WatchRequest(OPERATION, "w-1"))
    assert isinstance(result, Fetched)
    [(path, headers)] = endpoint.seen
    assert path == f"/v1/{OPERATION}"
    assert headers["authorization"] == f"Bearer {TOKEN_PREFIX}1"
    assert elsewhere.seen == []


def test_a_redirect_never_carries_the_token_elsewhere(servers: tuple[Capture, Capture]) -> None:
    endpoint, elsewhere = servers
    endpoint.answers = [(302, {"Location": f"{elsewhere.url}/v1/{OPERATION}"}, b"")]
    result = authorized_fetcher(endpoint.url, FakeCredentials())(WatchRequest(OPERATION, "w-1"))
    assert isinstance(result, FetchFailed)
    assert result.http_status == 302
    assert elsewhere.seen == []


def test_a_401_refreshes_the_token_once_then_is_permission_denied(
    servers: tuple[Capture, Capture],
) -> None:
    endpoint, _ = servers
    denied = (
        401,
        {},
        json.dumps(
            {"error": {"code": 401, "message": "expired", "status": "UNAUTHENTICATED"}}
        ).encode(),
    )
    endpoint.answers = [denied, denied, denied]
    credentials = FakeCredentials()
    result = authorized_fetcher(endpoint.url, credentials)(WatchRequest(OPERATION, "w-1"))
    assert isinstance(result, FetchFailed)
    assert (result.http_status, result.error["code"]) == (401, 16)
    assert [headers["authorization"] for _, headers in endpoint.seen] == [
        f"Bearer {TOKEN_PREFIX}1",
        f"Bearer {TOKEN_PREFIX}2",
    ]


@pytest.mark.parametrize(
    "api",
    ["evil.example", "googleapis.com.evil.example", "169.254.169.254", "localhost", "127.0.0.1"],
)
def test_a_watch_naming_another_host_never_fetches(
    servers: tuple[Capture, Capture], api: str
) -> None:
    endpoint, elsewhere = servers
    publish = RecordingPublish()
    settings = local_settings()
    fetcher = authorized_fetcher(endpoint.url, FakeCredentials())
    handlers = Handlers(settings, fetch=fetcher, queue=FakeQueue(), publish=publish, clock=Clock())
    message = {
        "operation": OPERATION,
        "api": api if api != "127.0.0.1" else elsewhere.url.removeprefix("http://"),
    }
    data = json.dumps(message).encode()
    outcome = handlers.on_watch_message(
        PushedMessage.from_json({"data": base64.b64encode(data).decode(), "messageId": "m-1"})
    )
    assert outcome is Outcome.INVALID_REQUEST
    assert endpoint.seen == elsewhere.seen == []
    assert publish.received[0]["error"]["details"][0]["fieldViolations"][0]["field"] == "api"


names = st.from_regex(contracts.OPERATION_PATTERN, fullmatch=True)


@given(names)
def test_no_valid_operation_name_can_change_the_host_or_path_prefix(name: str) -> None:
    try:
        request = contracts.validate_watch_request(
            {"operation": name},
            default_watch_id="w",
            allowed_apis={contracts.DEFAULT_API},
            allowed_notify_topics=(),
        )
    except contracts.InvalidWatchRequest:
        return
    url = urlsplit(OperationFetcher(FetchConfig()).url(request))
    assert (url.scheme, url.netloc) == ("https", contracts.DEFAULT_API)
    assert url.path == f"/v1/{name}"
    assert not url.query and not url.fragment


def test_an_oversized_operation_is_refused_not_read_whole(servers: tuple[Capture, Capture]) -> None:
    endpoint, _ = servers
    over = 32 * 1024 * 1024 + 1  # README: operations over 32 MiB are refused
    endpoint.answers = [(200, {}, b'{"name": "' + b"x" * over + b'"}')]
    result = authorized_fetcher(endpoint.url, FakeCredentials())(WatchRequest(OPERATION, "w-1"))
    assert isinstance(result, FetchFailed)
    assert result.error["code"] == 8
    assert "more than" in result.error["message"]


@pytest.fixture
def log_lines() -> Iterator[Callable[[], str]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(handler)
    # setLevel, not an assignment: it also clears logging's cache of enabled levels.
    level = logger.level
    logger.setLevel(logging.DEBUG)
    yield stream.getvalue
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_logs_never_contain_a_token(
    servers: tuple[Capture, Capture], log_lines: Callable[[], str]
) -> None:
    endpoint, _ = servers
    endpoint.answers = [
        (401, {}, b'{"error": {"code": 401, "message": "expired"}}'),
        (200, {}, operation_json(done=False)),
        (503, {"Retry-After": "1"}, b"unavailable"),
        (200, {}, operation_json(done=True)),
    ]
    credentials = FakeCredentials()
    schedule, publish, clock = FakeQueue(), RecordingPublish(), Clock()
    settings = local_settings()
    handlers = Handlers(
        settings, authorized_fetcher(endpoint.url, credentials), schedule, publish, clock
    )
    handlers.on_watch_message(
        PushedMessage.from_json({"data": "eyJvcGVyYXRpb24iOiAiJHtvcH0ifQ==", "messageId": "m"})
    )  # not our op
    data = base64.b64encode(json.dumps({"operation": OPERATION}).encode()).decode()
    handlers.on_watch_message(PushedMessage.from_json({"data": data, "messageId": "m-2"}))
    for _ in range(1000):  # bounded: a chain that never ends fails instead of hanging
        if not schedule.tasks:
            break
        task = schedule.tasks.pop(0)
        clock.now = task.when
        handlers.on_check(checks.decode(task.body))
    else:
        pytest.fail("the polling chain did not end within 1000 checks")
    assert [n["outcome"] for n in publish.received][-1] == "SUCCEEDED"
    assert credentials.refreshes >= 2
    logged = log_lines()
    assert logged.count("\n") >= 4, "the watch was logged"
    assert TOKEN_PREFIX not in logged
    assert "Bearer" not in logged
    assert all(TOKEN_PREFIX not in message.data.decode() for message in publish.messages)
