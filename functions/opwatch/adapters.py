"""The three real ports: fetch an operation, schedule a check, publish a notification.

Each client is created once per instance, on first use (a cold start that only rejects a bad
request never builds a Cloud Tasks client), and guarded by a lock because functions-framework
serves requests on several threads.
"""

from __future__ import annotations

import contextlib
import functools
import json
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

import requests
from google.auth import exceptions as auth_exceptions
from google.rpc import code_pb2

from opwatch import learned, ledger
from opwatch.checks import CheckTask
from opwatch.contracts import WatchRequest
from opwatch.core import Fetched, FetchFailed, FetchResult
from opwatch.errors import ConfigurationError, LedgerUnavailable, QueueUnavailable, QuotaExhausted
from opwatch.notification import Notification
from opwatch.permissions import calls
from opwatch.ports import QueuedTask
from opwatch.settings import FetchConfig, TasksConfig
from opwatch.status import make_status, status_from_http_error

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from google.auth.credentials import Credentials
    from google.cloud import tasks_v2

CLOUD_PLATFORM_SCOPE: Final = "https://www.googleapis.com/auth/cloud-platform"
RPC_TIMEOUT: Final = 30.0
# ListTasks returns at most 1,000 tasks a page (ListTasksRequest.page_size reference).
LIST_PAGE_SIZE: Final = 1000
# An Operation larger than this is refused rather than read into memory; Pub/Sub would not carry
# more than 10 MB of it anyway (the notification drops bulky fields to fit).
MAX_OPERATION_BYTES: Final = 32 * 1024 * 1024

T = TypeVar("T")


class Lazy(Generic[T]):
    """A value built by ``factory`` on first use, once, even with concurrent first uses."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._factory()
        return self._value


def authorized_session(credentials: Credentials) -> requests.Session:
    """A session that sends ``credentials``' token; on a 401 it refreshes the token once and
    tries again, and a second 401 stands (PERMISSION_DENIED)."""
    from google.auth.transport.requests import AuthorizedSession

    return AuthorizedSession(credentials, max_refresh_attempts=1)


def default_session(config: FetchConfig) -> requests.Session:
    """The fetch session: Application Default Credentials, or none for a local endpoint."""
    if config.endpoint is not None:
        return requests.Session()
    import google.auth

    credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    return authorized_session(credentials)


def default_tasks_client(config: TasksConfig) -> tasks_v2.CloudTasksClient:
    """The Cloud Tasks client: ADC, or plaintext gRPC to ``CLOUD_TASKS_EMULATOR_HOST``."""
    from google.cloud import tasks_v2

    host = config.emulator_host
    if host is None:
        return tasks_v2.CloudTasksClient()
    import grpc
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    return tasks_v2.CloudTasksClient(
        transport=CloudTasksGrpcTransport(channel=grpc.insecure_channel(host))
    )


def default_publisher_client() -> Any:
    """The Pub/Sub publisher (it honours ``PUBSUB_EMULATOR_HOST`` itself)."""
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    return pubsub_v1.PublisherClient()


class OperationFetcher:
    """GETs ``{base}/{api_version}/{operation}``, with Application Default Credentials.

    The base is ``https://{api}`` for an allowlisted API (the request was validated), or the
    local ``OPERATIONS_API_ENDPOINT``, to which no credentials are sent. Redirects are never
    followed, so a token cannot be carried to another host.
    """

    def __init__(
        self, config: FetchConfig, session_factory: Callable[[], requests.Session] | None = None
    ) -> None:
        self._endpoint = config.endpoint
        self._timeout = config.timeout
        self._session = Lazy(session_factory or functools.partial(default_session, config))

    def url(self, request: WatchRequest) -> str:
        """Where the operation is fetched from."""
        base = self._endpoint or f"https://{request.api}"
        return f"{base}/{request.api_version}/{request.operation}"

    # The GET of google.longrunning.Operations; cloudaicompanion's reference: projects.locations.
    # operations.get, "requires cloudaicompanion.operations.get". Other APIs' are given with
    # extra_operation_permissions (infra/variables.tf).
    @calls("google.longrunning.Operations.GetOperation", project=("{service}.operations.get",))
    def __call__(self, request: WatchRequest) -> FetchResult:
        return self._get(self.url(request), request.api)

    # ListOperations: cloudaicompanion's projects.locations.operations.list "requires
    # cloudaicompanion.operations.list" on the parent.
    @calls("google.longrunning.Operations.ListOperations", project=("{service}.operations.list",))
    def list_page(
        self, api: str, api_version: str, parent: str, page_token: str, filter_: str
    ) -> FetchResult:
        """One page of ``parent``'s operations: a ListOperationsResponse as :class:`Fetched`.

        ``parent`` was validated by the caller (``projects/P/locations/L``); the API is one of
        the allowlisted ones, so the token goes where a fetch would send it.
        """
        base = self._endpoint or f"https://{api}"
        params = {"pageToken": page_token, "filter": filter_}
        query = {key: value for key, value in params.items() if value}
        return self._get(f"{base}/{api_version}/{parent}/operations", api, query)

    def _get(self, url: str, api: str, params: dict[str, str] | None = None) -> FetchResult:
        try:
            with self._session.get().get(
                url,
                params=params,
                timeout=self._timeout,
                allow_redirects=False,
                headers={"Accept": "application/json"},
                stream=True,
            ) as response:
                body = _read_capped(response, MAX_OPERATION_BYTES)
        except requests.Timeout:
            message = f"no answer from {api} within {self._timeout:g}s"
            return FetchFailed(None, make_status(code_pb2.DEADLINE_EXCEEDED, message))
        except requests.RequestException as error:
            message = f"could not reach {api}: {type(error).__name__}"
            return FetchFailed(None, make_status(code_pb2.UNAVAILABLE, message))
        except (auth_exceptions.RefreshError, auth_exceptions.TransportError) as error:
            # The metadata server or token endpoint hiccuped: worth another look later.
            message = f"could not refresh credentials: {str(error)[:300]}"
            return FetchFailed(None, make_status(code_pb2.UNAVAILABLE, message))
        status = response.status_code
        if body is None:
            # No retry can shrink it: a permanent failure, reported with the status as answered.
            message = f"{api} answered more than {MAX_OPERATION_BYTES} bytes for one operation"
            return FetchFailed(status, make_status(code_pb2.RESOURCE_EXHAUSTED, message))
        if 200 <= status < 300:
            operation = _json_object(body)
            if operation is not None:
                return Fetched(operation)
            message = f"{api} answered HTTP {status} without an Operation object"
            return FetchFailed(None, make_status(code_pb2.UNAVAILABLE, message))
        return FetchFailed(
            status,
            status_from_http_error(status, body, response.reason or ""),
            retry_after=response.headers.get("Retry-After"),
        )


def _read_capped(response: requests.Response, limit: int) -> bytes | None:
    """The body, or None if it is longer than ``limit`` (read no further than that)."""
    chunks, size = [], 0
    for chunk in response.iter_content(chunk_size=64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


class CloudTasksQueue:
    """The check queue: creates check tasks (typed requests, OIDC token, deterministic names),
    and lists, reads and deletes them for the registry (``registry.py``)."""

    def __init__(
        self, config: TasksConfig, client_factory: Callable[[], Any] | None = None
    ) -> None:
        self._config = config
        self._client = Lazy(client_factory or functools.partial(default_tasks_client, config))
        # The threads that ask for a chain's candidate names at once (first), made on first use.
        self._askers = Lazy(_asking_pool)

    def build(self, task: CheckTask) -> tasks_v2.CreateTaskRequest:
        """The CreateTaskRequest for ``task``."""
        from google.cloud import tasks_v2

        config = self._config
        if config.check_url is None:
            raise ConfigurationError(
                "no URL of the check function to send the task to: set it (CHECK_URL for the "
                "functions, OPWATCH_CHECK_URL for the CLI)"
            )
        account = config.invoker_service_account
        http_request = tasks_v2.HttpRequest(
            url=config.check_url,
            http_method=tasks_v2.HttpMethod.POST,
            headers={"Content-Type": "application/json"},
            body=task.body,
            oidc_token=(
                tasks_v2.OidcToken(service_account_email=account, audience=config.check_url)
                if account
                else None
            ),
        )
        return tasks_v2.CreateTaskRequest(
            parent=config.queue,
            task=tasks_v2.Task(
                name=f"{config.queue}/tasks/{task.task_id}",
                http_request=http_request,
                schedule_time=task.when,
                # As long as the check function may run (its timeout): a shorter deadline would
                # retry a check that is still running.
                dispatch_deadline=timedelta(seconds=config.dispatch_deadline),
            ),
        )

    # Permissions: the Cloud Tasks access-control reference, by method; a FULL response_view
    # also needs cloudtasks.tasks.fullView. A task with an OIDC token needs actAs on its account.
    @calls(
        "google.cloud.tasks.v2.CloudTasks.CreateTask",
        queue=("cloudtasks.tasks.create",),
        invoker=("iam.serviceAccounts.actAs",),
    )
    def create(self, task: CheckTask) -> bool:
        # Loaded with tasks_v2 on first use: a watch that never schedules never pays for grpc.
        from google.api_core import exceptions as api_exceptions

        with _refusals("CreateTask"):
            try:
                self._client.get().create_task(request=self.build(task), timeout=RPC_TIMEOUT)
            except api_exceptions.AlreadyExists:
                # That step is taken: a redelivered input already created it, or another taker.
                return False
            except api_exceptions.NotFound as error:
                raise QueueUnavailable(f"CreateTask: {error.message}") from error
        return True

    def _path(self, task_id: str) -> str:
        return f"{self._config.queue}/tasks/{task_id}"

    @calls(
        "google.cloud.tasks.v2.CloudTasks.GetTask",
        queue=("cloudtasks.tasks.get", "cloudtasks.tasks.fullView"),
    )
    def get(self, task_id: str) -> QueuedTask | None:
        """The task, or None if it is gone; a queue that is not there raises, so a missing
        queue (re-activating after 30 days idle) is never read as a missing task."""
        from google.api_core import exceptions as api_exceptions
        from google.cloud import tasks_v2

        request = tasks_v2.GetTaskRequest(
            name=self._path(task_id), response_view=tasks_v2.Task.View.FULL
        )
        with _refusals("GetTask"):
            try:
                return _queued(self._client.get().get_task(request=request, timeout=RPC_TIMEOUT))
            except api_exceptions.NotFound:
                pass
            self._raise_if_queue_missing()
        return None

    @calls(
        "google.cloud.tasks.v2.CloudTasks.GetTask",
        queue=("cloudtasks.tasks.get", "cloudtasks.tasks.fullView"),
    )
    def first(self, task_ids: Sequence[str]) -> QueuedTask | None:
        """The first of ``task_ids`` on the queue, asking for all of them at once (a chain's
        few candidate names, :func:`opwatch.ledger.probe_names`); the queue is checked once,
        only when none is there."""
        from google.api_core import exceptions as api_exceptions
        from google.cloud import tasks_v2

        client = self._client.get()

        def one(task_id: str) -> QueuedTask | None:
            request = tasks_v2.GetTaskRequest(
                name=self._path(task_id), response_view=tasks_v2.Task.View.FULL
            )
            try:
                return _queued(client.get_task(request=request, timeout=RPC_TIMEOUT))
            except api_exceptions.NotFound:
                return None

        with _refusals("GetTask"):
            found = list(self._askers.get().map(one, task_ids))
        for task in found:
            if task is not None:
                return task
        self._raise_if_queue_missing()
        return None

    @calls("google.cloud.tasks.v2.CloudTasks.GetQueue", queue=("cloudtasks.queues.get",))
    def _raise_if_queue_missing(self) -> None:
        from google.api_core import exceptions as api_exceptions

        try:
            self._client.get().get_queue(name=self._config.queue, timeout=RPC_TIMEOUT)
        except api_exceptions.NotFound as error:
            raise QueueUnavailable(
                f"GetTask and GetQueue answered NOT_FOUND for {self._config.queue}: the "
                "queue is missing or re-activating, so nothing is known about the task"
            ) from error

    @calls("google.cloud.tasks.v2.CloudTasks.DeleteTask", queue=("cloudtasks.tasks.delete",))
    def delete(self, task_id: str) -> bool:
        from google.api_core import exceptions as api_exceptions

        with _refusals("DeleteTask"):
            try:
                self._client.get().delete_task(name=self._path(task_id), timeout=RPC_TIMEOUT)
            except api_exceptions.NotFound:
                return False
        return True

    @calls(
        "google.cloud.tasks.v2.CloudTasks.ListTasks",
        queue=("cloudtasks.tasks.list", "cloudtasks.tasks.fullView"),
    )
    def list_tasks(self) -> Iterator[QueuedTask]:
        from google.api_core import exceptions as api_exceptions
        from google.cloud import tasks_v2

        def page(token: str) -> tuple[list[QueuedTask], str]:
            request = tasks_v2.ListTasksRequest(
                parent=self._config.queue,
                response_view=tasks_v2.Task.View.FULL,
                page_size=LIST_PAGE_SIZE,
                page_token=token,
            )
            # One page per call (not the pager), so the token and page size stay explicit.
            with _refusals("ListTasks"):
                try:
                    response = self._client.get().list_tasks(request=request, timeout=RPC_TIMEOUT)
                except api_exceptions.NotFound as error:
                    raise QueueUnavailable(f"ListTasks: {error.message}") from error
            return [_queued(task) for task in response.tasks], response.next_page_token

        from opwatch import registry  # the registry's callers only: not on a look's path

        return registry.pages(page)


def _asking_pool() -> ThreadPoolExecutor:
    """Threads for :meth:`CloudTasksQueue.first`: one per name a ledger record gives."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=ledger.RECORD_EVERY + 1, thread_name_prefix="gettask")


@contextlib.contextmanager
def _refusals(method: str) -> Iterator[None]:
    """Cloud Tasks' RESOURCE_EXHAUSTED (a per-minute quota, quotas page) as QuotaExhausted."""
    from google.api_core import exceptions as api_exceptions

    try:
        yield
    except api_exceptions.TooManyRequests as error:  # RESOURCE_EXHAUSTED over gRPC, 429 in REST
        raise QuotaExhausted(f"{method}: {error.message}") from error


def _queued(task: tasks_v2.Task) -> QueuedTask:
    def moment(value: Any) -> datetime | None:
        return value if isinstance(value, datetime) and value.year > 1970 else None

    return QueuedTask(
        task_id=task.name.rsplit("/", 1)[-1],
        body=bytes(task.http_request.body),
        schedule_time=moment(task.schedule_time),
        dispatch_count=int(task.dispatch_count),
        response_count=int(task.response_count),
    )


class NotificationPublisher:
    """Publishes notifications and waits until Pub/Sub has them."""

    def __init__(self, client_factory: Callable[[], Any] | None = None) -> None:
        self._client = Lazy(client_factory or default_publisher_client)

    @calls("google.pubsub.v1.Publisher.Publish", topic=("pubsub.topics.publish",))
    def __call__(self, message: Notification) -> str | None:
        """Publish ``message``; the message id Pub/Sub gave it."""
        future = self._client.get().publish(message.topic, message.data, **message.attributes)
        return str(future.result(timeout=RPC_TIMEOUT))


# A ledger call is never worth holding a watch up: a short deadline, no retry of its own (the
# ledger catches up on a later write).
LEDGER_TIMEOUT: Final = 5.0


_EMULATOR_ENV_LOCK: Final = threading.Lock()


def default_firestore_client(database: str, emulator_host: str | None = None) -> Any:
    """The Firestore client of ``projects/P/databases/D``.

    The client reads ``FIRESTORE_EMULATOR_HOST`` from the process environment when it is
    created (the functions have it there); ``emulator_host`` puts it there for that moment, for
    a caller whose settings come from elsewhere (the CLI's).
    """
    from google.cloud import firestore

    _, project, _, name = database.split("/")
    return with_environment(
        "FIRESTORE_EMULATOR_HOST",
        emulator_host,
        functools.partial(firestore.Client, project=project, database=name),
    )


def with_environment(name: str, value: str | None, factory: Callable[[], T]) -> T:
    """``factory()`` with ``name=value`` in the process environment for that moment (under a
    lock), for clients that read an emulator's host only from there when they are created;
    ``value`` None leaves the environment as it is."""
    import os

    if value is None:
        return factory()
    with _EMULATOR_ENV_LOCK:
        saved = os.environ.get(name)
        os.environ[name] = value
        try:
            return factory()
        finally:
            if saved is None:
                del os.environ[name]
            else:
                os.environ[name] = saved


class FirestoreLedger:
    """The ledger (:mod:`opwatch.ledger`) in a Firestore database in Native mode, one document
    per chain in the ``watches`` collection."""

    def __init__(
        self,
        database: str,
        retention_days: int,
        client_factory: Callable[[], Any] | None = None,
    ) -> None:
        self._retention = timedelta(days=retention_days)
        self._client = Lazy(client_factory or functools.partial(default_firestore_client, database))

    def _collection(self) -> Any:
        return self._client.get().collection(ledger.COLLECTION)

    # Permissions: Firestore's "Security for server client libraries" page, by method: a write
    # with no precondition needs create and update, a query list and get, a read get.
    @calls(
        "google.firestore.v1.Firestore.Commit",
        database=("datastore.entities.create", "datastore.entities.update"),
    )
    def put(self, record: ledger.Record) -> None:
        fields = ledger.to_document(record, retention=self._retention)
        with _ledger_call("Commit"):
            self._collection().document(record.doc_id).set(
                fields, merge=True, retry=None, timeout=LEDGER_TIMEOUT
            )

    @calls(
        "google.firestore.v1.Firestore.RunQuery",
        database=("datastore.entities.get", "datastore.entities.list"),
    )
    def pending_of_operation(self, operation_key: str) -> list[ledger.Record]:
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = (
            self._collection()
            .where(filter=FieldFilter("operation_key", "==", operation_key))
            .where(filter=FieldFilter("state", "==", ledger.State.PENDING.value))
            .limit(ledger.MAX_PAGE)
        )
        return [r for r in self._run(query) if r.state is ledger.State.PENDING]

    @calls(
        "google.firestore.v1.Firestore.RunQuery",
        database=("datastore.entities.get", "datastore.entities.list"),
    )
    def of_watch(self, watch_id: str) -> list[ledger.Record]:
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = (
            self._collection()
            .where(filter=FieldFilter("watch_id", "==", watch_id))
            .limit(ledger.MAX_PAGE)
        )
        return self._run(query)

    @calls(
        "google.firestore.v1.Firestore.RunQuery",
        database=("datastore.entities.get", "datastore.entities.list"),
    )
    def page(
        self,
        state: ledger.State | None,
        since: datetime | None,
        limit: int,
        after: str | None,
    ) -> tuple[list[ledger.Record], str | None]:
        from google.cloud import firestore
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = self._collection()
        if state is not None:
            query = query.where(filter=FieldFilter("state", "==", state.value))
        if since is not None:
            query = query.where(filter=FieldFilter("started", ">=", since))
        query = query.order_by("started", direction=firestore.Query.DESCENDING)
        with _ledger_call("RunQuery"):
            if after:
                cursor = self._collection().document(after).get(retry=None, timeout=LEDGER_TIMEOUT)
                if cursor.exists:
                    query = query.start_after(cursor)
            snapshots = list(query.limit(limit).stream(retry=None, timeout=LEDGER_TIMEOUT))
        records = [_record(snapshot) for snapshot in snapshots]
        found = [r for r in records if r is not None]
        if state is not None:
            found = [r for r in found if r.state is state]  # a late pending write on a finish
        token = snapshots[-1].id if len(snapshots) == limit else None
        return found, token

    @calls(
        "google.firestore.v1.Firestore.Commit",
        database=("datastore.entities.create", "datastore.entities.update"),
    )
    def learn(self, sample: learned.Sample) -> None:
        """Add one finished operation to its kind's summary: one write of increments to one
        shard at random (no read, so hot kinds do not contend)."""
        from google.cloud import firestore

        shard = random.randrange(learned.SHARDS)
        increments = sample.increments()
        fields = {
            "kind": sample.kind,
            "w": {k: firestore.Increment(v) for k, v in increments["w"].items()},
            "n": firestore.Increment(increments["n"]),
            "exact": firestore.Increment(increments["exact"]),
            "updated": sample.at,
        }
        document = (
            self._client.get()
            .collection(learned.COLLECTION)
            .document(learned.shard_id(sample.kind, shard))
        )
        with _ledger_call("Commit"):
            document.set(fields, merge=True, retry=None, timeout=LEDGER_TIMEOUT)

    @calls("google.firestore.v1.Firestore.BatchGetDocuments", database=("datastore.entities.get",))
    def summary(self, kind: str) -> learned.Summary:
        """A kind's summary: its shards, read in one call."""
        client = self._client.get()
        collection = client.collection(learned.COLLECTION)
        refs = [collection.document(learned.shard_id(kind, n)) for n in range(learned.SHARDS)]
        with _ledger_call("BatchGetDocuments"):
            snapshots = list(client.get_all(refs, retry=None, timeout=LEDGER_TIMEOUT))
        shards = [s.to_dict() or {} for s in snapshots if s.exists]
        return learned.Summary.of(kind, [f for f in shards if f.get("kind") == kind])

    def _run(self, query: Any) -> list[ledger.Record]:
        with _ledger_call("RunQuery"):
            snapshots = list(query.stream(retry=None, timeout=LEDGER_TIMEOUT))
        return [r for r in (_record(snapshot) for snapshot in snapshots) if r is not None]


def _record(snapshot: Any) -> ledger.Record | None:
    """A document as a record; one opwatch did not write is skipped (and never fatal)."""
    try:
        return ledger.from_document(snapshot.to_dict() or {})
    except ValueError:
        return None


@contextlib.contextmanager
def _ledger_call(method: str) -> Iterator[None]:
    """Any failure of a Firestore call (unavailable, deadline, refused) as LedgerUnavailable."""
    from google.api_core import exceptions as api_exceptions

    try:
        yield
    except (api_exceptions.GoogleAPIError, auth_exceptions.GoogleAuthError) as error:
        raise LedgerUnavailable(f"Firestore {method}: {error}") from error
