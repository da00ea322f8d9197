"""The permission contract: every Google API method each deployed identity calls.

The runtime's and the operators' calls come from the adapters they use (each adapter method
declares its own, :mod:`opwatch.permissions`), so a new call there is a new line here without
anyone writing it. The other identities are Google services acting for opwatch; their calls are
written out below, each with the page that names its permission. ``tests/infra/test_permissions.py``
expands what ``infra/`` grants each identity and fails both ways: a call without a grant, and a
grant that no call uses.

Resources are named by role (see :mod:`opwatch.permissions`); an identity binds each role to
the concrete resources it reaches, e.g. the runtime's ``topic`` is the results, parked and
notify topics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from opwatch.adapters import (
    CloudTasksQueue,
    FirestoreLedger,
    NotificationPublisher,
    OperationFetcher,
)
from opwatch.permissions import Call, required


@dataclass(frozen=True)
class Identity:
    """One deployed identity: the calls it makes, on which concrete resources.

    Attributes:
        name: the identity, as ``infra/`` names its member.
        calls: every (method, permission, resource role) it needs.
        resources: each resource role's concrete resources (names the infra test resolves).
    """

    name: str
    calls: tuple[Call, ...]
    resources: Mapping[str, tuple[str, ...]]


def declared(*owners: type | Callable[..., Any]) -> tuple[Call, ...]:
    """Every call declared on ``owners``: on a class, by any of its methods."""
    found: list[Call] = []
    for owner in owners:
        functions: Iterable[Any] = vars(owner).values() if isinstance(owner, type) else [owner]
        for function in functions:
            found.extend(required(function))
    return tuple(found)


RUNTIME: Final = Identity(
    "runtime",
    declared(OperationFetcher, CloudTasksQueue, NotificationPublisher, FirestoreLedger),
    MappingProxyType(
        {
            "project": ("project",),
            "database": ("ledger database",),
            "queue": ("queue",),
            "invoker": ("invoker account",),
            # RESULTS_TOPIC, PARKED_TOPIC and each of ALLOWED_NOTIFY_TOPICS.
            "topic": ("results topic", "parked topic", "notify topics"),
        }
    ),
)

# `opwatch list`, `status` and `cancel` (devtools/opwatch_local/watches.py): the ledger's
# queries, and over the same queue adapter a scan (no ledger), the GetTask that finds a
# chain's pending step, and a cancel's CreateTask and DeleteTask; a cancel message on the watch
# topic (docs/local-stack.md, "Watches"), published with gcloud or a client library; and, with
# `--cancel-operation` (Terraform: operators_may_cancel_operations), the operation's own
# cancel, which watches.cancel_operation declares (the CLI is not deployed, so it is written
# here; tests/infra/test_permissions.py holds the two equal).
CANCEL_OPERATION: Final = Call(
    "google.longrunning.Operations.CancelOperation", "{service}.operations.cancel", "project"
)

OPERATOR: Final = Identity(
    "operator",
    (
        *declared(
            CloudTasksQueue.list_tasks,
            CloudTasksQueue.create,
            CloudTasksQueue.get,
            CloudTasksQueue._raise_if_queue_missing,
            CloudTasksQueue.delete,
            FirestoreLedger.pending_of_operation,
            FirestoreLedger.of_watch,
            FirestoreLedger.page,
        ),
        *declared(NotificationPublisher),
        CANCEL_OPERATION,
    ),
    MappingProxyType(
        {
            "queue": ("queue",),
            "invoker": ("invoker account",),
            "topic": ("watch topic",),
            "database": ("ledger database",),
            "project": ("project",),
        }
    ),
)

# Cloud Run checks run.routes.invoke on the service for the identity in a request's OIDC token
# (https://cloud.google.com/run/docs/authenticating/service-to-service).
_INVOKE: Final = "Cloud Run: an authenticated HTTP request to the service"

TASKS_INVOKER: Final = Identity(
    "tasks invoker",
    (Call(_INVOKE, "run.routes.invoke", "service"),),
    MappingProxyType({"service": ("check service",)}),
)

PUSH: Final = Identity(
    "push",
    (Call(_INVOKE, "run.routes.invoke", "service"),),
    MappingProxyType({"service": ("watch service", "audit service")}),
)

# The sweep's Cloud Scheduler job calls on_sweep with an OIDC token of this account
# (https://cloud.google.com/scheduler/docs/http-target-auth).
SWEEPER: Final = Identity(
    "sweeper",
    (Call(_INVOKE, "run.routes.invoke", "service"),),
    MappingProxyType({"service": ("sweep service",)}),
)

# A sink's writer identity publishes each routed entry
# (https://cloud.google.com/logging/docs/export/configure_export_v2#dest-auth).
SINK_WRITER: Final = Identity(
    "sink writer",
    (Call("google.pubsub.v1.Publisher.Publish", "pubsub.topics.publish", "topic"),),
    MappingProxyType({"topic": ("audit topic",)}),
)

# Dead-lettering: the Pub/Sub service agent publishes the failed message to the dead-letter
# topic and acknowledges it on the source subscription
# (https://cloud.google.com/pubsub/docs/handling-failures#grant_forwarding_permissions); for an
# authenticated push it mints the push account's OIDC token
# (https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions).
PUBSUB_AGENT: Final = Identity(
    "pubsub service agent",
    (
        Call("google.pubsub.v1.Publisher.Publish", "pubsub.topics.publish", "topic"),
        Call("google.pubsub.v1.Subscriber.Acknowledge", "pubsub.subscriptions.consume", "source"),
        Call(
            "iam.serviceAccounts.getOpenIdToken (push OIDC token)",
            "iam.serviceAccounts.getOpenIdToken",
            "push account",
        ),
    ),
    MappingProxyType(
        {
            "topic": ("dead letter topic",),
            "source": ("watch subscription", "audit subscription"),
            "push account": ("push account",),
        }
    ),
)

IDENTITIES: Final = (
    RUNTIME,
    OPERATOR,
    TASKS_INVOKER,
    PUSH,
    SWEEPER,
    SINK_WRITER,
    PUBSUB_AGENT,
)
