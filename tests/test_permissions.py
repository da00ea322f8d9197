"""The permission contract (``opwatch.identities``) held against what ``infra/`` grants.

Every Google API method a deployed identity calls needs the permission its reference names:
Cloud Tasks' access-control reference (https://cloud.google.com/tasks/docs/reference-access-control:
CreateTask ``tasks.create``, GetTask ``tasks.get``, ListTasks ``tasks.list``, DeleteTask
``tasks.delete``, GetQueue ``queues.get``; a FULL ``response_view`` also ``tasks.fullView``),
Pub/Sub's (https://cloud.google.com/pubsub/docs/access-control: Publish ``topics.publish``,
Acknowledge ``subscriptions.consume``), Cloud Run's (``run.routes.invoke``). The emulators check
none of it, so this is where a missing grant shows before production does.

The test expands each binding in ``infra/`` into permissions (predefined roles from Google's
role pages, ``tests/data/iam-predefined-roles.json``; custom roles from their ``permissions``),
on the resource it is bound to, and fails both ways: a call without a grant, and a grant that no
call uses. Project-level bindings reach every resource of the project.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, replace
from typing import Any

import pytest

from opwatch import adapters
from opwatch.contracts import DEFAULT_API
from opwatch.identities import IDENTITIES, OPERATOR, RUNTIME, Identity, declared
from opwatch.permissions import calls
from tests import docs

from .conftest import load
from .test_infra import Config, expr, members_of, module

pytestmark = pytest.mark.infra

PREDEFINED: dict[str, list[str]] = {
    role: permissions
    for role, permissions in load("iam-predefined-roles.json").items()
    if not role.startswith("_")
}
PROJECT = "project"


@dataclass(frozen=True)
class Grant:
    """One binding of ``infra/``: who, on what, which permissions."""

    address: str
    identity: str
    resource: str
    permissions: frozenset[str]


_IDENTITY_OF_ACCOUNT = {
    "runtime": "runtime",
    "tasks_invoker": "tasks invoker",
    "push": "push",
    "sweeper": "sweeper",
}
_RESOURCE_LABELS = {
    "google_pubsub_topic": {
        "results": "results topic",
        "parked": "parked topic",
        "watch_requests": "watch topic",
        "dead_letter": "dead letter topic",
        "audit": "audit topic",
    },
    "google_cloud_tasks_queue": {"checks": "queue"},
    "google_service_account": {"tasks_invoker": "invoker account", "push": "push account"},
    "google_cloudfunctions2_function": {
        "check": "check service",
        "watch": "watch service",
        "audit": "audit service",
        "sweep": "sweep service",
    },
    "google_pubsub_subscription": {
        "watch_push": "watch subscription",
        "audit_push": "audit subscription",
    },
    "google_firestore_database": {"ledger": "ledger database"},
}
# The one IAM condition a project-level binding may carry here: equality on the resource name,
# which is how Firestore scopes access to one database (its databases have no IAM policy of
# their own; Manage databases page, "Configure per-database access permissions": a project
# binding with resource.name == "projects/PROJECT_ID/databases/DATABASE_ID", enforced for the
# REST API and client libraries).
_NAMED_RESOURCE = re.compile(r'resource\.name == "\$\{(\w+)\.(\w+)\.id\}"')


# How iam.tf picks each identity's account (var.service_accounts): the caller's when given, else
# the one it creates. Both sides name the same key, so a given account and a created one are
# the same identity here, and a grant to either is checked against that identity's calls.
_ACCOUNT_LOCAL = re.compile(
    r"\$\{var\.service_accounts\.(\w+) != null \? (.+) : "
    r"one\(google_service_account\.(\w+)\[\*\]\.(\w+)\)\}"
)


def account_of(tf: Config, local: str) -> str:
    """The account key (runtime, tasks_invoker, ...) a ``local.*_email`` / ``*_name`` resolves to,
    whichever side of its condition is taken."""
    found = _ACCOUNT_LOCAL.fullmatch(str(tf.locals[local]))
    assert found, f"local.{local} does not pick a given or a created account: {tf.locals[local]}"
    given, given_value, created, attribute = found.groups()
    assert given == created, f"local.{local}: var.service_accounts.{given} or {created}?"
    assert f"var.service_accounts.{given}" in given_value, local
    assert attribute == local.rsplit("_", 1)[1], f"local.{local} takes .{attribute}"
    return given


def identity_of(tf: Config, name: str, body: dict[str, Any]) -> str:
    member = expr(body["member"])
    account = re.fullmatch(r"serviceAccount:\$\{local\.(\w+_email)\}", member)
    if account:
        return _IDENTITY_OF_ACCOUNT.get(account_of(tf, account.group(1)), member)
    if member == "local.pubsub_service_agent":
        return "pubsub service agent"
    if member.endswith(".writer_identity"):
        return "sink writer"
    if name.startswith("operator") and member.startswith("each."):
        return "operator"
    return member


def resource_of(tf: Config, rtype: str, name: str, body: dict[str, Any]) -> str:
    if rtype == "google_project_iam_member":
        return PROJECT if "condition" not in body else condition_scope(tf, body)
    target = next(
        expr(body[key])
        for key in ("topic", "name", "service", "service_account_id", "subscription")
        if key in body
    )
    if target.startswith("each.") and name == "runtime_publishes_notify":
        return "notify topics"
    account = re.fullmatch(r"local\.(\w+_name)", target)
    if account and rtype == "google_service_account_iam_member":
        target = f"google_service_account.{account_of(tf, account.group(1))}"
    found = re.match(r"(\w+)\.(\w+)", target)
    if found is None:
        return target
    return _RESOURCE_LABELS.get(found.group(1), {}).get(found.group(2), target)


def condition_scope(tf: Config, body: dict[str, Any]) -> str:
    """The resource a conditioned project-level binding is scoped to. Only a condition this
    file understands narrows a grant; any other fails here, so it is never taken for one."""
    (condition,) = body["condition"]
    expression = expr(condition["expression"])
    if expression.startswith("local."):
        expression = str(tf.locals[expression.removeprefix("local.")])
    found = _NAMED_RESOURCE.fullmatch(expression)
    assert found, f"a condition this test cannot read: {expression}"
    rtype, rname = found.groups()
    assert (rtype, rname) in tf.resources, f"the condition names no resource: {expression}"
    return _RESOURCE_LABELS.get(rtype, {}).get(rname, f"{rtype}.{rname}")


def permissions_of(tf: Config, role: str) -> frozenset[str]:
    custom = re.fullmatch(r"google_project_iam_custom_role\.(\w+)(?:\[0\])?\.name", role)
    if custom is None:
        assert role in PREDEFINED, f"{role}: add its permissions, from its role page, to the data"
        return frozenset(PREDEFINED[role])
    body = tf.resource("google_project_iam_custom_role", custom.group(1))
    listed = _defaults(tf, str(body["permissions"]))
    return frozenset(re.findall(r"[a-z][a-zA-Z]*(?:\.[a-zA-Z]+){2}", listed))


def _defaults(tf: Config, text: str, seen: frozenset[str] = frozenset()) -> str:
    """An expression with what it takes from locals and from the defaults of var.watched_apis
    (the fields it names, ``api.operations_get_permission`` ...) spelt out; the other
    variables that add permissions are empty by default."""
    expanded = text
    for name in set(re.findall(r"\blocal\.(\w+)", text)) - seen:
        expanded += " " + _defaults(tf, str(tf.locals[name]), seen | {name})
    if "var.watched_apis" in text:
        fields = set(re.findall(r"\bapi\.(\w+)", text))
        for api in tf.variables["watched_apis"]["default"].values():
            expanded += " " + " ".join(str(api[f]) for f in fields if api.get(f))
    return expanded


def grants(tf: Config) -> list[Grant]:
    """Every binding of the fullest deployment: every opt-in on (discovery, the sweep,
    operators who may cancel operations), so each binding is checked against its calls."""
    return [
        Grant(
            f"{rtype}.{name}",
            identity_of(tf, name, body),
            resource_of(tf, rtype, name, body),
            permissions_of(tf, expr(body["role"])),
        )
        for rtype, name, body in members_of(tf)
    ]


def needs(identity: Identity) -> set[tuple[str, str, str]]:
    """(permission, resource, method) of every call; ``{service}`` is the default API's."""
    service = DEFAULT_API.split(".", 1)[0]
    return {
        (call.permission.format(service=service), resource, call.method)
        for call in identity.calls
        for resource in identity.resources[call.resource]
    }


def gaps(identities: tuple[Identity, ...], granted: list[Grant]) -> tuple[set[str], set[str]]:
    """What is called without a grant, and which grants no call uses."""
    missing, used = set(), set()
    for identity in identities:
        mine = [grant for grant in granted if grant.identity == identity.name]
        for permission, resource, method in needs(identity):
            covering = [
                grant.address
                for grant in mine
                if permission in grant.permissions and grant.resource in (resource, PROJECT)
            ]
            if not covering:
                missing.add(f"{identity.name}: {method} needs {permission} on {resource}")
            used.update(covering)
    return missing, {grant.address for grant in granted} - used


def test_every_call_has_its_grant_and_every_grant_a_call() -> None:
    missing, unused = gaps(IDENTITIES, grants(module()))
    assert not missing, "calls that production refuses (403):\n" + "\n".join(sorted(missing))
    assert not unused, "grants no call uses:\n" + "\n".join(sorted(unused))


ACCOUNTS = ("runtime", "tasks_invoker", "push", "sweeper")


def test_a_given_account_is_the_identity_the_module_would_create() -> None:
    """Issue 20 §2, bring your own accounts: every grant names its account through a local that
    takes var.service_accounts.X when given and google_service_account.X otherwise, and X is
    created only when not given. So the contract above holds for either: the same grants, on
    the same resources, to the same identity."""
    tf = module()
    members = [expr(body["member"]) for _, _, body in members_of(tf)]
    assert not [m for m in members if "google_service_account." in m], "grant through the locals"
    for account in ACCOUNTS:
        assert account_of(tf, f"{account}_email") == account
        assert _IDENTITY_OF_ACCOUNT[account] in {identity.name for identity in IDENTITIES}
        count = expr(tf.resource("google_service_account", account)["count"])
        assert f"var.service_accounts.{account} == null" in count, count
    for account in ("tasks_invoker", "push"):
        assert account_of(tf, f"{account}_name") == account
    fields = re.findall(r"(\w+) = optional\(string\)", tf.variables["service_accounts"]["type"])
    assert fields == list(ACCOUNTS)


def test_a_local_that_mixes_two_accounts_is_not_taken_for_either() -> None:
    tf = module()
    mixed = str(tf.locals["push_email"]).replace(
        "google_service_account.push", "google_service_account.runtime"
    )
    tf.locals["mixed_email"] = mixed
    try:
        with pytest.raises(AssertionError, match=re.escape("var.service_accounts.push or runtime")):
            account_of(tf, "mixed_email")
    finally:
        del tf.locals["mixed_email"]


def test_a_removed_grant_fails_the_contract() -> None:
    """Drop the runtime's grant on the queue: every queue call it makes is reported."""
    granted = [
        grant
        for grant in grants(module())
        if not (grant.identity == "runtime" and grant.resource == "queue")
    ]
    missing, _ = gaps(IDENTITIES, granted)
    assert {
        "runtime: google.cloud.tasks.v2.CloudTasks.CreateTask needs cloudtasks.tasks.create on "
        "queue",
        "runtime: google.cloud.tasks.v2.CloudTasks.GetTask needs cloudtasks.tasks.get on queue",
        "runtime: google.cloud.tasks.v2.CloudTasks.ListTasks needs cloudtasks.tasks.list on queue",
    } <= missing


def test_an_added_adapter_call_fails_the_contract() -> None:
    """An adapter method that starts calling RunTask declares it, and the contract, built from
    the adapters, reports the grant it lacks: nobody has to remember to write it down."""

    class QueueThatForceRuns(adapters.CloudTasksQueue):
        @calls("google.cloud.tasks.v2.CloudTasks.RunTask", queue=("cloudtasks.tasks.run",))
        def run(self, task_id: str) -> None:  # pragma: no cover - declared, never called
            raise NotImplementedError

    runtime = replace(RUNTIME, calls=(*RUNTIME.calls, *declared(QueueThatForceRuns)))
    missing, _ = gaps((runtime,), grants(module()))
    assert missing == {
        "runtime: google.cloud.tasks.v2.CloudTasks.RunTask needs cloudtasks.tasks.run on queue"
    }


def test_an_unused_grant_fails_the_contract() -> None:
    extra = Grant("google_x.unused", "runtime", "queue", frozenset({"cloudtasks.queues.pause"}))
    _, unused = gaps(IDENTITIES, [*grants(module()), extra])
    assert unused == {"google_x.unused"}


def test_enqueuer_alone_was_not_enough_for_the_runtime() -> None:
    """roles/cloudtasks.enqueuer is create + fullView (Cloud Tasks roles page): the runtime's
    GetTask, DeleteTask, ListTasks and GetQueue would answer 403 in production."""
    granted = [
        replace(grant, permissions=frozenset(PREDEFINED["roles/cloudtasks.enqueuer"]))
        if (grant.identity, grant.resource) == ("runtime", "queue")
        else grant
        for grant in grants(module())
    ]
    missing, _ = gaps((RUNTIME,), granted)
    refused = {line.split(" needs ")[1].split(" on ")[0] for line in missing}
    assert refused == {
        "cloudtasks.tasks.get",
        "cloudtasks.tasks.delete",
        "cloudtasks.tasks.list",
        "cloudtasks.queues.get",
    }


def test_operators_read_full_views() -> None:
    """`opwatch list`, `status` and `cancel` read task bodies: a FULL view needs
    cloudtasks.tasks.fullView besides tasks.list (ListTasks reference, response_view)."""
    permissions = {permission for permission, _, _ in needs(OPERATOR)}
    assert {"cloudtasks.tasks.list", "cloudtasks.tasks.fullView"} <= permissions


@pytest.mark.parametrize(
    "cls",
    [
        adapters.OperationFetcher,
        adapters.CloudTasksQueue,
        adapters.NotificationPublisher,
        adapters.FirestoreLedger,
    ],
)
def test_every_adapter_method_that_calls_google_says_what_it_needs(cls: type) -> None:
    """A method that calls a client declares it, or is a private helper whose every caller in
    the class does (``OperationFetcher._get`` serves GetOperation and ListOperations)."""
    methods = {n: f for n, f in vars(cls).items() if inspect.isfunction(f)}
    sources = {n: inspect.getsource(f) for n, f in methods.items()}
    for name, function in methods.items():
        if not re.search(r"self\._(client|session)\.get\(\)\.\w+\(", sources[name]):
            continue
        callers = [methods[n] for n, text in sources.items() if f"self.{name}(" in text]
        covered = declared(function) or (
            name.startswith("_") and callers and all(declared(c) for c in callers)
        )
        assert covered, f"{cls.__name__}.{name} calls Google and declares nothing"


def contract_rows() -> list[str]:
    rows = {
        f"| {identity.name} | `{call.method}` | `{call.permission}` | "
        f"{', '.join(identity.resources[call.resource])} |"
        for identity in IDENTITIES
        for call in identity.calls
    }
    return sorted(rows, key=lambda row: [IDENTITY_ORDER.index(row.split(" | ")[0][2:]), row])


IDENTITY_ORDER = [identity.name for identity in IDENTITIES]


def test_the_readme_table_is_the_contract() -> None:
    readme = docs.documentation()
    table = readme.split("<!-- permission-contract: kept true by tests/test_permissions.py -->\n")[
        1
    ]
    rows = table.split("<!-- /permission-contract -->")[0].strip().splitlines()[2:]  # header
    assert rows == contract_rows(), "\n".join(["README's table should be:", *contract_rows()])


def test_the_cli_s_own_cancel_call_is_the_operator_s_in_the_contract() -> None:
    """The CLI is not deployed, so the contract writes its cancel call out: the two agree."""
    from opwatch_local.watches import cancel_operation

    assert set(declared(cancel_operation)) <= set(OPERATOR.calls)
