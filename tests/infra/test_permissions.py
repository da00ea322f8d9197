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
from dataclasses import replace

import pytest

from opwatch import adapters
from opwatch.identities import IDENTITIES, OPERATOR, RUNTIME, declared
from opwatch.permissions import calls
from tests import docs
from tests.infra.iam import (
    _IDENTITY_OF_ACCOUNT,
    PREDEFINED,
    Grant,
    account_of,
    gaps,
    grants,
    needs,
)
from tests.infra.terraform import expr, members_of, module

pytestmark = pytest.mark.infra


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
    marker = "<!-- permission-contract: kept true by tests/infra/test_permissions.py -->\n"
    table = readme.split(marker)[1]
    rows = table.split("<!-- /permission-contract -->")[0].strip().splitlines()[2:]  # header
    assert rows == contract_rows(), "\n".join(["README's table should be:", *contract_rows()])


def test_the_cli_s_own_cancel_call_is_the_operator_s_in_the_contract() -> None:
    """The CLI is not deployed, so the contract writes its cancel call out: the two agree."""
    from opwatch_local.watches import cancel_operation

    assert set(declared(cancel_operation)) <= set(OPERATOR.calls)
