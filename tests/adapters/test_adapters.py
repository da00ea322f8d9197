"""The real adapters, with fakes at the library boundary (requests transport, Tasks and Pub/Sub
clients) and nothing of opwatch patched."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.api_core import exceptions as api_exceptions
from google.auth.credentials import Credentials
from google.auth.exceptions import RefreshError
from google.auth.transport.requests import AuthorizedSession
from google.cloud import tasks_v2
from google.rpc import code_pb2
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from opwatch import checks
from opwatch.adapters import (
    RPC_TIMEOUT,
    CloudTasksQueue,
    Lazy,
    NotificationPublisher,
    OperationFetcher,
    default_publisher_client,
    default_session,
    default_tasks_client,
)
from opwatch.contracts import DEFAULT_API, WatchRequest
from opwatch.core import Fetched, FetchFailed, Progress
from opwatch.errors import ConfigurationError, QueueUnavailable, QuotaExhausted
from opwatch.notification import Notification
from opwatch.settings import FetchConfig, Settings, TasksConfig
from opwatch.status import retry_info_delay
from tests.fakes import CHECK_URL, OPERATION, QUEUE, RESULTS, T0, load

API = "cloudaicompanion.googleapis.com"
WATCH = WatchRequest(operation=OPERATION, watch_id="w-1", api=API, api_version="v1")
API_URL = f"https://{API}/v1/{OPERATION}"

# --- OperationFetcher ------------------------------------------------------------------------

Handler = Callable[[requests.PreparedRequest], requests.Response]


class MockAdapter(BaseAdapter):
    """Like httpx's MockTransport: every request goes to ``handler``, none to a network."""

    def __init__(self, handler: Handler) -> None:
        super().__init__()
        self.handler = handler
        self.requests: list[requests.PreparedRequest] = []
        self.timeouts: list[Any] = []

    def send(  # type: ignore[override]
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        self.requests.append(request)
        self.timeouts.append(timeout)
        response = self.handler(request)
        response.request = request
        response.url = request.url or ""
        return response

    def close(self) -> None:
        pass


def respond(status: int, body: bytes | Any = b"", headers: dict[str, str] | None = None) -> Handler:
    """A handler answering every request with this status, body (bytes, or JSON) and headers."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()

    def handler(request: requests.PreparedRequest) -> requests.Response:
        response = requests.Response()
        response.status_code = status
        response.reason = HTTPStatus(status).phrase
        response.headers = CaseInsensitiveDict(headers or {})
        response.raw = io.BytesIO(content)
        return response

    return handler


def fail_with(error: Exception) -> Handler:
    def handler(request: requests.PreparedRequest) -> requests.Response:
        raise error

    return handler


@dataclass
class Api:
    """An OperationFetcher whose session sends everything to a MockAdapter."""

    settings: FetchConfig
    sessions_made: int = 0
    adapter: MockAdapter = field(default_factory=lambda: MockAdapter(respond(500)))

    def session(self) -> requests.Session:
        self.sessions_made += 1
        session = requests.Session()
        session.mount("https://", self.adapter)
        session.mount("http://", self.adapter)
        return session

    def fetcher(self, handler: Handler) -> OperationFetcher:
        self.adapter.handler = handler
        return OperationFetcher(self.settings, session_factory=self.session)


@pytest.fixture
def api(settings: Settings) -> Api:
    return Api(settings.fetch)


def test_fetch_gets_the_operation_from_the_api_host(api: Api) -> None:
    api.fetcher(respond(200, load("operation-pending.json")))(WATCH)

    [sent] = api.adapter.requests
    assert (sent.method, sent.url) == ("GET", API_URL)
    assert sent.headers["Accept"] == "application/json"


def test_fetch_uses_the_local_endpoint_when_one_is_configured(api: Api) -> None:
    api.settings = replace(api.settings, endpoint="http://127.0.0.1:8090")

    api.fetcher(respond(200, load("operation-pending.json")))(WATCH)

    assert [sent.url for sent in api.adapter.requests] == [f"http://127.0.0.1:8090/v1/{OPERATION}"]


def test_fetch_never_follows_a_redirect(api: Api) -> None:
    redirect = respond(302, b"", {"Location": "https://collector.example.net/steal"})

    result = api.fetcher(redirect)(WATCH)

    assert [sent.url for sent in api.adapter.requests] == [API_URL]
    assert isinstance(result, FetchFailed)
    assert result.http_status == 302


def test_fetch_returns_the_operation_exactly_as_answered(api: Api) -> None:
    operation = load("operation-done-response.json")

    assert api.fetcher(respond(200, operation))(WATCH) == Fetched(operation)


@pytest.mark.parametrize(
    "body",
    [b"<html><body>Welcome</body></html>", b"[]", b'[{"done": true}]', b'"done"', b""],
    ids=["html", "empty-array", "array", "string", "empty"],
)
def test_a_2xx_without_an_operation_object_is_a_transient_failure(api: Api, body: bytes) -> None:
    result = api.fetcher(respond(200, body))(WATCH)

    assert isinstance(result, FetchFailed)
    assert result.http_status is None
    assert result.error["code"] == code_pb2.UNAVAILABLE


def test_a_google_error_body_becomes_its_status_with_message_and_details(api: Api) -> None:
    body = load("error-404-not-found.json")

    result = api.fetcher(respond(404, body))(WATCH)

    assert result == FetchFailed(
        404,
        {
            "code": code_pb2.NOT_FOUND,
            "message": body["error"]["message"],
            "details": body["error"]["details"],
        },
    )


def test_a_bare_status_body_keeps_its_grpc_code(api: Api) -> None:
    body = {"code": 5, "message": f"operation {OPERATION} not found"}

    result = api.fetcher(respond(404, body))(WATCH)

    assert result == FetchFailed(404, {"code": 5, "message": body["message"], "details": []})


def test_an_html_error_page_becomes_a_status_for_its_http_code(api: Api) -> None:
    page = b"<html><head><title>503 Service Unavailable</title></head></html>"

    result = api.fetcher(respond(503, page))(WATCH)

    assert isinstance(result, FetchFailed)
    assert result.http_status == 503
    assert result.error["code"] == code_pb2.UNAVAILABLE
    assert "HTTP 503" in result.error["message"]
    assert "503 Service Unavailable" in result.error["message"]


def test_retry_after_and_retry_info_are_both_carried(api: Api) -> None:
    body = load("error-429-retry-info.json")

    result = api.fetcher(respond(429, body, {"Retry-After": "30"}))(WATCH)

    assert isinstance(result, FetchFailed)
    assert (result.http_status, result.retry_after) == (429, "30")
    assert result.error["code"] == code_pb2.RESOURCE_EXHAUSTED
    assert result.error["details"] == body["error"]["details"]
    assert retry_info_delay(result.error) == 17.0


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (requests.Timeout("read timed out"), code_pb2.DEADLINE_EXCEEDED),
        (requests.ConnectionError("connection refused"), code_pb2.UNAVAILABLE),
    ],
    ids=["timeout", "connection-error"],
)
def test_no_answer_is_a_transient_failure_with_a_grpc_code(
    api: Api, error: Exception, code: int
) -> None:
    result = api.fetcher(fail_with(error))(WATCH)

    assert isinstance(result, FetchFailed)
    assert result.http_status is None
    assert result.error["code"] == code
    assert API in result.error["message"]


def test_fetch_passes_the_configured_timeout_to_the_transport(api: Api) -> None:
    api.settings = replace(api.settings, timeout=2.5)

    api.fetcher(respond(200, load("operation-pending.json")))(WATCH)

    assert api.adapter.timeouts == [2.5]


def test_fetch_builds_its_session_once(api: Api) -> None:
    fetch = api.fetcher(respond(200, load("operation-pending.json")))

    fetch(WATCH)
    fetch(WATCH)

    assert api.sessions_made == 1
    assert len(api.adapter.requests) == 2


@dataclass
class LoopbackServer:
    url: str
    seen: list[dict[str, str]]


@pytest.fixture
def loopback_operations() -> Iterator[LoopbackServer]:
    """A real HTTP server on 127.0.0.1 answering every GET with a pending Operation."""
    seen: list[dict[str, str]] = []
    body = json.dumps(load("operation-pending.json")).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield LoopbackServer(f"http://{host}:{port}", seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_the_local_endpoint_gets_no_credentials(
    settings: Settings, loopback_operations: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    local = replace(settings.fetch, endpoint=loopback_operations.url, timeout=5.0)

    result = OperationFetcher(local)(WATCH)

    assert result == Fetched(load("operation-pending.json"))
    [seen] = loopback_operations.seen
    assert seen["path"] == f"/v1/{OPERATION}"
    assert "authorization" not in seen


def test_a_page_of_operations_is_listed_with_its_token_and_filter(
    settings: Settings, loopback_operations: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ListOperations over REST: ``GET /v1/{name=projects/*/locations/*}/operations`` with
    ``filter``, ``pageToken`` as query parameters (cloudaicompanion's REST reference,
    projects.locations.operations.list); empty ones are left out."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    local = replace(settings.fetch, endpoint=loopback_operations.url, timeout=5.0)
    fetcher = OperationFetcher(local)
    parent = "projects/p/locations/us-central1"

    first = fetcher.list_page(DEFAULT_API, "v1", parent, "", "done=false")
    fetcher.list_page(DEFAULT_API, "v1", parent, "t 2", "")

    assert isinstance(first, Fetched)
    paths = [seen["path"] for seen in loopback_operations.seen]
    assert paths == [
        f"/v1/{parent}/operations?filter=done%3Dfalse",
        f"/v1/{parent}/operations?pageToken=t+2",
    ]


# --- CloudTasksQueue ---------------------------------------------------------------------------


@dataclass
class FakeTasksClient:
    """Records create_task calls the way CloudTasksClient receives them."""

    fail_with: Exception | None = None
    calls: list[tuple[tasks_v2.CreateTaskRequest, float]] = field(default_factory=list)

    def create_task(self, *, request: tasks_v2.CreateTaskRequest, timeout: float) -> None:
        self.calls.append((request, timeout))
        if self.fail_with is not None:
            raise self.fail_with


def check_task(polls: int = 1) -> checks.CheckTask:
    when = T0 + timedelta(seconds=12.345678)
    return checks.encode(WATCH, Progress(started=T0, polls=polls, seen=True), when, "c0")


def scheduled(config: TasksConfig, task: checks.CheckTask) -> tasks_v2.CreateTaskRequest:
    client = FakeTasksClient()
    CloudTasksQueue(config, client_factory=lambda: client).create(task)
    [(request, timeout)] = client.calls
    assert timeout > 0
    return request


def test_the_task_is_a_typed_request_on_the_queue_named_after_the_watch(
    settings: Settings,
) -> None:
    task = check_task()

    request = scheduled(settings.tasks, task)

    assert isinstance(request, tasks_v2.CreateTaskRequest)
    assert request.parent == QUEUE
    assert request.task.name == f"{QUEUE}/tasks/{task.task_id}"


def test_the_task_posts_the_body_as_json_to_the_check_function(settings: Settings) -> None:
    task = check_task()

    http = scheduled(settings.tasks, task).task.http_request

    assert http.url == CHECK_URL
    assert http.http_method == tasks_v2.HttpMethod.POST
    assert dict(http.headers) == {"Content-Type": "application/json"}
    assert http.body == task.body


def test_the_task_carries_an_oidc_token_for_the_check_function(settings: Settings) -> None:
    http = scheduled(settings.tasks, check_task()).task.http_request

    assert http.oidc_token.service_account_email == settings.tasks.invoker_service_account
    assert http.oidc_token.audience == CHECK_URL


def test_without_an_invoker_account_the_task_has_no_token(settings: Settings) -> None:
    http = scheduled(
        replace(settings.tasks, invoker_service_account=None), check_task()
    ).task.http_request

    assert tasks_v2.HttpRequest.pb(http).WhichOneof("authorization_header") is None


def test_the_task_is_scheduled_at_the_checks_time(settings: Settings) -> None:
    task = check_task()

    assert scheduled(settings.tasks, task).task.schedule_time == task.when


def test_the_dispatch_deadline_is_the_check_functions_timeout(settings: Settings) -> None:
    """A deadline shorter than the function's timeout would retry a check still running."""
    request = scheduled(replace(settings.tasks, dispatch_deadline=1800), check_task())
    assert request.task.dispatch_deadline == timedelta(seconds=1800)


def test_a_queue_without_the_check_functions_url_creates_no_task(settings: Settings) -> None:
    """An operator's queue (the CLI without OPWATCH_CHECK_URL) reads tasks but says which
    variable is missing before it would create one that calls nowhere."""
    client = FakeTasksClient()
    reader = CloudTasksQueue(replace(settings.tasks, check_url=None), client_factory=lambda: client)
    with pytest.raises(ConfigurationError, match="OPWATCH_CHECK_URL"):
        reader.create(check_task())
    assert client.calls == []


def test_a_task_that_already_exists_counts_as_scheduled(settings: Settings) -> None:
    client = FakeTasksClient(fail_with=api_exceptions.AlreadyExists("task exists"))

    created = CloudTasksQueue(settings.tasks, client_factory=lambda: client).create(check_task())

    assert len(client.calls) == 1
    assert created is False, "reported as already there, so the service logs a duplicate"


def test_other_task_errors_propagate(settings: Settings) -> None:
    client = FakeTasksClient(fail_with=api_exceptions.ServiceUnavailable("try again"))

    with pytest.raises(api_exceptions.ServiceUnavailable):
        CloudTasksQueue(settings.tasks, client_factory=lambda: client).create(check_task())


def test_the_tasks_client_is_built_once_on_first_use(settings: Settings) -> None:
    client = FakeTasksClient()
    built: list[FakeTasksClient] = []

    def factory() -> FakeTasksClient:
        built.append(client)
        return client

    schedule = CloudTasksQueue(settings.tasks, client_factory=factory)
    assert built == []
    for polls in (1, 2, 3):
        schedule.create(check_task(polls))

    assert len(built) == 1
    assert len(client.calls) == 3


@dataclass
class RefusingTasksClient:
    """Answers each Cloud Tasks method with the exception ``refusals`` gives it (or a default
    answer), and records which methods were called."""

    refusals: dict[str, Exception] = field(default_factory=dict)
    called: list[str] = field(default_factory=list)

    def _answer(self, method: str) -> Any:
        self.called.append(method)
        if method in self.refusals:
            raise self.refusals[method]
        return tasks_v2.ListTasksResponse() if method == "list_tasks" else tasks_v2.Queue()

    def __getattr__(self, method: str) -> Any:
        return lambda **_: self._answer(method)


def refusing(settings: Settings, **refusals: Exception) -> tuple[CloudTasksQueue, Any]:
    client = RefusingTasksClient(refusals)
    return CloudTasksQueue(settings.tasks, client_factory=lambda: client), client


QUOTA = api_exceptions.ResourceExhausted("Quota exceeded for quota metric 'List requests'")


@pytest.mark.parametrize(
    ("method", "call"),
    [
        ("create_task", lambda queue: queue.create(check_task())),
        ("get_task", lambda queue: queue.get("t")),
        ("delete_task", lambda queue: queue.delete("t")),
        ("list_tasks", lambda queue: list(queue.list_tasks())),
    ],
)
def test_a_spent_quota_is_quota_exhausted(settings: Settings, method: str, call: Any) -> None:
    """RESOURCE_EXHAUSTED is how Cloud Tasks refuses past a per-minute quota
    (https://cloud.google.com/tasks/docs/quotas): the fast path tells it from a failure."""
    queue, _ = refusing(settings, **{method: QUOTA})
    with pytest.raises(QuotaExhausted, match="Quota exceeded"):
        call(queue)


def test_a_missing_task_in_a_queue_that_is_there_is_none(settings: Settings) -> None:
    queue, client = refusing(settings, get_task=api_exceptions.NotFound("no such task"))
    assert queue.get("t") is None
    assert client.called == ["get_task", "get_queue"]


@pytest.mark.parametrize(
    ("method", "call"),
    [
        ("get_task", lambda queue: queue.get("t")),
        ("create_task", lambda queue: queue.create(check_task())),
        ("list_tasks", lambda queue: list(queue.list_tasks())),
    ],
)
def test_a_missing_queue_is_never_read_as_a_missing_task(
    settings: Settings, method: str, call: Any
) -> None:
    """A queue idle for 30 days goes inactive, and while it re-activates some calls may answer
    NOT_FOUND (https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues#state):
    a finishing look that met its claim's name must not conclude the claim is gone (and publish
    nothing); it fails, and Cloud Tasks tries it again."""
    missing = api_exceptions.NotFound("Requested entity was not found.")
    queue, _ = refusing(settings, **{method: missing, "get_queue": missing})
    with pytest.raises(QueueUnavailable):
        call(queue)


def test_a_deleted_task_that_is_gone_is_false(settings: Settings) -> None:
    queue, _ = refusing(settings, delete_task=api_exceptions.NotFound("gone"))
    assert queue.delete("t") is False


# --- NotificationPublisher -------------------------------------------------------------------


@dataclass
class FakeFuture:
    error: Exception | None = None
    timeouts: list[float | None] = field(default_factory=list)

    def result(self, timeout: float | None = None) -> str:
        self.timeouts.append(timeout)
        if self.error is not None:
            raise self.error
        return "message-id-1"


@dataclass
class FakePublisherClient:
    future: FakeFuture = field(default_factory=FakeFuture)
    published: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)

    def publish(self, topic: str, data: bytes, **attributes: str) -> FakeFuture:
        self.published.append((topic, data, attributes))
        return self.future


NOTIFICATION = Notification(
    topic=RESULTS,
    data=b'{"watch_id":"w-1","outcome":"SUCCEEDED"}',
    attributes={
        "outcome": "SUCCEEDED",
        "watch_id": "w-1",
        "ce-id": "w-1",
        "ce-type": "dev.opwatch.operation.v1.finished",
        "content-type": "application/json",
    },
)


def test_publish_passes_topic_data_and_attributes_through() -> None:
    client = FakePublisherClient()

    NotificationPublisher(client_factory=lambda: client)(NOTIFICATION)

    assert client.published == [(RESULTS, NOTIFICATION.data, dict(NOTIFICATION.attributes))]


def test_publish_waits_for_the_server_with_a_timeout() -> None:
    client = FakePublisherClient()

    NotificationPublisher(client_factory=lambda: client)(NOTIFICATION)

    assert client.future.timeouts == [RPC_TIMEOUT]


def test_a_failed_publish_raises() -> None:
    client = FakePublisherClient(FakeFuture(error=api_exceptions.DeadlineExceeded("no ack")))

    with pytest.raises(api_exceptions.DeadlineExceeded):
        NotificationPublisher(client_factory=lambda: client)(NOTIFICATION)


# --- Lazy ------------------------------------------------------------------------------------


def test_lazy_builds_once_under_concurrent_first_use() -> None:
    threads_count = 8
    built: list[object] = []
    start = threading.Barrier(threads_count, timeout=5)

    def factory() -> object:
        built.append(object())
        time.sleep(0.05)  # keep the door open for the other threads
        return built[-1]

    lazy: Lazy[object] = Lazy(factory)
    got: list[object] = []

    def first_use() -> None:
        start.wait()
        got.append(lazy.get())

    threads = [threading.Thread(target=first_use) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)

    assert len(built) == 1
    assert got == built * threads_count


# --- the default clients, built from the environment as in production ---------------------------


def service_account_file(directory: Path) -> Path:
    """A syntactically real service-account key (never used against a server)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "test-project",
        "private_key_id": "1",
        "private_key": pem,
        "client_email": "opwatch-runtime@test-project.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    path = directory / "key.json"
    path.write_text(json.dumps(info))
    return path


def test_the_default_session_uses_application_default_credentials(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(service_account_file(tmp_path)))
    session = default_session(settings.fetch)
    assert isinstance(session, AuthorizedSession)
    assert session.credentials.service_account_email.startswith("opwatch-runtime@")
    # What it does on a 401 is tested through authorized_session in test_security.py.


def test_a_credential_refresh_failure_is_transient(settings: Settings) -> None:
    class Broken(Credentials):  # type: ignore[misc]
        def refresh(self, request: Any) -> None:
            raise RefreshError("metadata server unavailable")

    fetcher = OperationFetcher(settings.fetch, session_factory=lambda: AuthorizedSession(Broken()))
    result = fetcher(WatchRequest(operation=OPERATION, watch_id="w"))
    assert isinstance(result, FetchFailed)
    assert (result.http_status, result.error["code"]) == (None, 14)
    assert "metadata server unavailable" in result.error["message"]


def test_the_emulator_tasks_client_talks_plaintext_to_the_emulator(settings: Settings) -> None:
    local = replace(settings.tasks, emulator_host="127.0.0.1:9")
    client = default_tasks_client(local)
    assert isinstance(client, tasks_v2.CloudTasksClient)
    client.transport.close()


def test_the_default_publisher_honours_the_emulator_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:9")
    client = default_publisher_client()
    assert client.target == "127.0.0.1:9"
    client.transport.close()


def test_the_production_tasks_client_uses_application_default_credentials(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(service_account_file(tmp_path)))
    client = default_tasks_client(settings.tasks)
    assert client.api_endpoint == "cloudtasks.googleapis.com"
    client.transport.close()


def test_the_firestore_client_meets_the_emulator_its_caller_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The CLI's settings come from its own environment, not the process's: the client is
    made with the emulator it names, and the process environment is left as it was."""
    from opwatch.adapters import default_firestore_client

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")
    client = default_firestore_client("projects/p/databases/opwatch-ledger", "127.0.0.1:2")
    assert client._emulator_host == "127.0.0.1:2"
    assert os.environ["FIRESTORE_EMULATOR_HOST"] == "127.0.0.1:1"
    plain = default_firestore_client("projects/p/databases/opwatch-ledger")
    assert plain._emulator_host == "127.0.0.1:1" and plain._database == "opwatch-ledger"
