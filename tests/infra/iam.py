"""What infra/ grants each identity, expanded to permissions, and what each identity needs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from opwatch.contracts import DEFAULT_API
from opwatch.identities import Identity
from tests.fakes import load
from tests.infra.terraform import Config, expr, members_of

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
