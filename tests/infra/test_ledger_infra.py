"""The ledger's Terraform (infra/ledger.tf) held against what FirestoreLedger does in production.

What the Firestore emulator does not show is checked here. It "does not track composite indexes"
and runs any valid query (https://cloud.google.com/firestore/native/docs/emulator, "Indexes"),
so a query that production answers with FAILED_PRECONDITION ("The query requires an index")
passes every local test. The queries are not written down here: FirestoreLedger's own methods
run against a real ``google.cloud.firestore.Client`` whose transport is a fake that records each
request, so what is checked is the StructuredQuery the library would send, with the orders it
adds itself (a snapshot cursor appends ``__name__``). Each is then held against the indexes
infra/ declares, by Firestore's index rules:

- every field has automatic single-field indexes, ascending and descending (a map's subfields
  too), unless a single-field exemption removes them; they serve equality and range filters on
  that one field and ordering by it (https://cloud.google.com/firestore/docs/query-data/index-overview);
- several equality filters and nothing else are served by merging the single-field indexes of
  their fields (same page, "Index merging");
- anything else (equality on one field with a range or order on another) needs a composite
  index: the equality fields first, in any order, then the order-by fields in their order and
  direction (https://cloud.google.com/firestore/docs/query-data/indexing); an index ends in
  ``__name__`` in the direction of its last field, which the provider adds itself
  (google_firestore_index, ``fields``), and so does a query's normalized order.

The IAM side (a grant on this database only) and the TTL policy are checked here too.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from opwatch import adapters, learned, ledger, settings
from opwatch.identities import OPERATOR, RUNTIME
from opwatch.permissions import required
from tests.infra.iam import grants, needs
from tests.infra.terraform import Config, block, expr, function_env, module

pytestmark = pytest.mark.infra

PROJECT = "test-project"
DATABASE_ID = "opwatch-ledger"
DATABASE = f"projects/{PROJECT}/databases/{DATABASE_ID}"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
NAME = "__name__"


@pytest.fixture(scope="module")
def tf() -> Config:
    return module()


# --- what FirestoreLedger sends ----------------------------------------------------------------


class Wire:
    """The Firestore API as the client library calls it (its GAPIC client): every request is
    recorded; queries find nothing, a lookup finds ``stored`` (the last document committed)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.stored: dict[str, Any] = {}

    def run_query(self, request: dict[str, Any], **_: Any) -> Iterator[Any]:
        self.requests.append(("RunQuery", request))
        return iter([])

    def batch_get_documents(self, request: dict[str, Any], **_: Any) -> Iterator[Any]:
        from google.cloud.firestore_v1.types import document, firestore

        self.requests.append(("BatchGetDocuments", request))
        found = document.Document(
            name=request["documents"][0], fields=self.stored, create_time=NOW, update_time=NOW
        )
        return iter([firestore.BatchGetDocumentsResponse(found=found, read_time=NOW)])

    def commit(self, request: dict[str, Any], **_: Any) -> Any:
        from google.cloud.firestore_v1.types import firestore, write

        self.requests.append(("Commit", request))
        for one in request["writes"]:
            self.stored = dict(one.update.fields)
        results = [write.WriteResult(update_time=NOW) for _ in request["writes"]]
        return firestore.CommitResponse(write_results=results, commit_time=NOW)


def sample(hint: Any, *, optional: bool) -> list[Any]:
    """Values for a parameter of type ``hint``: each member of an enum, None and a value for an
    optional one, so every branch of a query's construction runs."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        values = [v for a in args if a is not type(None) for v in sample(a, optional=optional)]
        return [None, *values] if type(None) in args else values
    if isinstance(hint, type) and issubclass(hint, ledger.State):
        return list(hint)
    if dataclasses.is_dataclass(hint):
        return [record(hint, full=False), record(hint, full=True)]
    simple = {str: "sample-id", int: 10, float: 60.0, bool: True, datetime: NOW}
    origin = typing.get_origin(hint) or hint
    if origin in simple:
        return [simple[origin]]
    if origin in (Mapping, dict):
        return [{"team": "b"}]
    raise AssertionError(f"teach sample() a value of {hint!r}")


def record(cls: Any, *, full: bool) -> Any:
    """A ``cls`` (a dataclass: the ledger's Record) with every field set (full) or only the
    required ones: a pending and a finished record."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        has_default = f.default is not dataclasses.MISSING or (
            f.default_factory is not dataclasses.MISSING
        )
        if has_default and not full:
            continue
        choices = [v for v in sample(hints[f.name], optional=False) if v is not None]
        values[f.name] = choices[0]
    return cls(**values)


def calls_of(cls: type) -> list[tuple[str, Callable[..., Any]]]:
    """Every method of ``cls`` that declares a Google API call, with its method name."""
    return [
        (name, function)
        for name, function in vars(cls).items()
        if inspect.isfunction(function) and required(function)
    ]


@dataclass(frozen=True)
class Sent:
    """One request FirestoreLedger made: its API method and which of its methods made it."""

    method: str
    caller: str
    request: dict[str, Any]


def exercise() -> list[Sent]:
    """Run every declaring method of FirestoreLedger with every combination of sampled
    arguments against a real client over the recording wire. put() runs first, so a page's
    cursor lookup finds a document written the way the ledger writes it."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore

    client = firestore.Client(
        project=PROJECT, database=DATABASE_ID, credentials=AnonymousCredentials()
    )
    wire = Wire()
    client._firestore_api_internal = wire  # the GAPIC client the library would create
    store = adapters.FirestoreLedger(DATABASE, 30, client_factory=lambda: client)
    sent: list[Sent] = []
    methods = sorted(calls_of(adapters.FirestoreLedger), key=lambda m: m[0] != "put")
    for name, function in methods:
        hints = typing.get_type_hints(function)
        parameters = list(inspect.signature(function).parameters)[1:]
        options = [sample(hints[p], optional=True) for p in parameters]
        for arguments in itertools.product(*options):
            before = len(wire.requests)
            getattr(store, name)(*arguments)
            sent += [Sent(kind, name, request) for kind, request in wire.requests[before:]]
    return sent


@pytest.fixture(scope="module")
def sent() -> list[Sent]:
    return exercise()


# --- queries and indexes, as Firestore's rules see them ----------------------------------------

ASC, DESC = "ASCENDING", "DESCENDING"


@dataclass(frozen=True)
class Query:
    """The index-relevant shape of one StructuredQuery."""

    collection: str
    scope: str
    equalities: frozenset[str]
    ranges: frozenset[str]
    orders: tuple[tuple[str, str], ...]  # normalized; the trailing implicit __name__ dropped
    caller: str = ""

    @property
    def fields(self) -> set[str]:
        return set(self.equalities | self.ranges) | {f for f, _ in self.orders}


_EQUALITY = {"EQUAL"}
_RANGE = {
    "LESS_THAN",
    "LESS_THAN_OR_EQUAL",
    "GREATER_THAN",
    "GREATER_THAN_OR_EQUAL",
    "NOT_EQUAL",
}


def _field_filters(where: Any) -> Iterator[Any]:
    kind = where._pb.WhichOneof("filter_type")
    if kind == "field_filter":
        yield where.field_filter
    elif kind == "composite_filter":
        assert where.composite_filter.op.name == "AND", "teach this test OR filters"
        for inner in where.composite_filter.filters:
            yield from _field_filters(inner)
    elif kind is not None:
        raise AssertionError(f"teach this test {kind} filters")


def _drop_implicit_name(orders: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """An index and a query both end in __name__ in the direction of their last field
    (ascending with none): that one is implied, so it is left out of either."""
    if orders and orders[-1][0] == NAME:
        implied = orders[-2][1] if len(orders) > 1 else ASC
        if orders[-1][1] == implied:
            orders = orders[:-1]
    return tuple(orders)


def shape(request: dict[str, Any], caller: str = "") -> Query:
    """The Query of a RunQuery request. Firestore orders a query by its range fields it does
    not order by explicitly (ascending), then by __name__."""
    structured = request["structured_query"]
    (source,) = structured.from_
    equalities, ranges = set(), set()
    if structured._pb.HasField("where"):
        for one in _field_filters(structured.where):
            op = one.op.name
            assert op in _EQUALITY | _RANGE, f"teach this test the {op} operator"
            (equalities if op in _EQUALITY else ranges).add(one.field.field_path)
    orders = [(o.field.field_path, o.direction.name) for o in structured.order_by]
    ordered = {f for f, _ in orders}
    orders += [(f, ASC) for f in sorted(ranges - ordered)]
    return Query(
        collection=source.collection_id,
        scope="COLLECTION_GROUP" if source.all_descendants else "COLLECTION",
        equalities=frozenset(equalities),
        ranges=frozenset(ranges),
        orders=_drop_implicit_name(orders),
        caller=caller,
    )


@dataclass(frozen=True)
class Index:
    """A composite index of infra/."""

    address: str
    collection: str
    scope: str
    fields: tuple[tuple[str, str], ...]  # without the implied trailing __name__


def composite_indexes(tf: Config) -> list[Index]:
    found = []
    for name, body in tf.of_type("google_firestore_index").items():
        assert expr(body["database"]) == "google_firestore_database.ledger.name", name
        fields = [(f["field_path"], f["order"]) for f in body["fields"]]
        found.append(
            Index(
                f"google_firestore_index.{name}",
                resolve(tf, body["collection"]),
                body.get("query_scope", "COLLECTION"),
                _drop_implicit_name(fields),
            )
        )
    return found


def single_field_orders(tf: Config) -> dict[str, set[str]]:
    """Each field override of infra/ and the orders its single-field indexes keep (none: an
    exemption). A field not listed keeps both, and so does a map's subfield unless its map is
    listed."""
    found = {}
    for name, body in tf.of_type("google_firestore_field").items():
        assert expr(body["database"]) == "google_firestore_database.ledger.name", name
        if "index_config" not in body:
            continue  # e.g. a TTL policy alone: the field's indexes are the automatic ones
        config = block(body, "index_config")
        orders = {i["order"] for i in config.get("indexes", []) if "order" in i}
        found[body["field"]] = orders
    return found


def resolve(tf: Config, value: Any) -> str:
    text = expr(value)
    if text.startswith("local."):
        return str(tf.locals[text.removeprefix("local.")])
    return text


def _single_field_keeps(overrides: Mapping[str, set[str]], field: str, order: str | None) -> bool:
    parts = field.split(".")
    for depth in range(len(parts), 0, -1):
        key = ".".join(parts[:depth])
        if key in overrides:
            kept = overrides[key]
            return bool(kept) if order is None else order in kept
    return True


def composite_serves(query: Query, index: Index) -> bool:
    if (index.collection, index.scope) != (query.collection, query.scope):
        return False
    head, tail = index.fields[: len(query.equalities)], index.fields[len(query.equalities) :]
    return {f for f, _ in head} == query.equalities and tail == query.orders


def served_by(query: Query, indexes: list[Index], overrides: Mapping[str, set[str]]) -> list[str]:
    """What serves ``query``: composite index addresses, "single-field" or "merged single-field"
    (empty: production refuses it)."""
    found = [i.address for i in indexes if composite_serves(query, i)]
    fields = query.fields - {NAME}
    if len(fields) == 1 and NAME not in query.fields:
        (field,) = fields
        orders = {o for f, o in query.orders if f == field} or {None}
        if all(_single_field_keeps(overrides, field, o) for o in orders):
            found.append("single-field")
    elif not fields and not query.orders:
        found.append("single-field")  # no filter, no order: the documents by name
    elif (
        not query.ranges
        and not query.orders
        and all(_single_field_keeps(overrides, f, None) for f in query.equalities)
    ):
        found.append("merged single-field")
    return found


# --- the queries ------------------------------------------------------------------------------


def queries(sent: list[Sent]) -> list[Query]:
    return [shape(s.request, s.caller) for s in sent if s.method == "RunQuery"]


def test_every_query_method_was_exercised(sent: list[Sent]) -> None:
    """Each method that declares RunQuery sent at least one query over the wire, and no method
    sent a request it does not declare (the permission contract's input)."""
    declared = {
        name: {call.method.rsplit(".", 1)[-1] for call in required(function)}
        for name, function in calls_of(adapters.FirestoreLedger)
    }
    querying = {name for name, methods in declared.items() if "RunQuery" in methods}
    assert querying, "FirestoreLedger declares no query"
    assert querying <= {s.caller for s in sent if s.method == "RunQuery"}
    # A page's cursor is a lookup (BatchGetDocuments: datastore.entities.get, which RunQuery's
    # declaration holds too, Firestore's "Security for server client libraries" page).
    implied = {"BatchGetDocuments": "RunQuery"}
    for s in sent:
        assert {s.method, implied.get(s.method)} & declared[s.caller], (s.caller, s.method)


def test_every_ledger_query_has_an_index_in_production(tf: Config, sent: list[Sent]) -> None:
    indexes, overrides = composite_indexes(tf), single_field_orders(tf)
    missing = sorted(
        {
            f"{q.caller}: {q.collection} where ={sorted(q.equalities)} range={sorted(q.ranges)} "
            f"order by {list(q.orders)}"
            for q in queries(sent)
            if not served_by(q, indexes, overrides)
        }
    )
    assert not missing, "queries production refuses (FAILED_PRECONDITION):\n" + "\n".join(missing)


def test_every_composite_index_serves_a_query(tf: Config, sent: list[Sent]) -> None:
    """A composite index no query uses is written on every write for nothing."""
    used = {a for q in queries(sent) for a in served_by(q, composite_indexes(tf), {})}
    unused = {i.address for i in composite_indexes(tf)} - used
    assert not unused, f"composite indexes no ledger query uses: {sorted(unused)}"


def test_the_queries_are_the_ones_the_indexes_were_made_for(sent: list[Sent]) -> None:
    """The shapes the module's indexes answer, as the library sends them: the two equalities of
    pending_of_operation, and page's state with started descending (a cursor's __name__ in the
    same direction, so implied)."""
    shapes = {(q.caller, q.equalities, q.ranges, q.orders) for q in queries(sent)}
    none: frozenset[str] = frozenset()
    assert ("pending_of_operation", frozenset({"operation_key", "state"}), none, ()) in shapes
    by_state = ("page", frozenset({"state"}), frozenset({"started"}), (("started", DESC),))
    assert by_state in shapes
    assert ("page", none, none, (("started", DESC),)) in shapes


def test_a_query_without_its_index_is_reported() -> None:
    """The checker itself: equality on one field ordered by another needs a composite index; an
    exempted field has no single-field index; a cursor's __name__ in the other direction than
    the last order is not implied."""
    query = Query("watches", "COLLECTION", frozenset({"state"}), frozenset(), (("started", DESC),))
    index = Index("i", "watches", "COLLECTION", (("state", ASC), ("started", DESC)))
    assert served_by(query, [index], {}) == ["i"]
    assert served_by(query, [], {}) == []
    assert served_by(replace_orders(query, (("started", ASC),)), [index], {}) == []
    only_order = Query("watches", "COLLECTION", frozenset(), frozenset(), (("started", DESC),))
    assert served_by(only_order, [], {}) == ["single-field"]
    assert served_by(only_order, [], {"started": set()}) == []
    assert served_by(only_order, [], {"started": {ASC}}) == []
    on_label = Query("watches", "COLLECTION", frozenset({"labels.team"}), frozenset(), ())
    assert served_by(on_label, [], {"labels": set()}) == []
    two = Query("watches", "COLLECTION", frozenset({"a", "b"}), frozenset(), ())
    assert served_by(two, [], {}) == ["merged single-field"]
    assert served_by(two, [], {"b": set()}) == []
    assert _drop_implicit_name([("started", DESC), (NAME, ASC)]) == (
        ("started", DESC),
        (NAME, ASC),
    )
    assert _drop_implicit_name([(NAME, ASC)]) == ()


def replace_orders(query: Query, orders: tuple[tuple[str, str], ...]) -> Query:
    return dataclasses.replace(query, orders=orders)


# --- the collection, the TTL policy and the exemptions ------------------------------------------


def written(sent: list[Sent], collection: str = ledger.COLLECTION) -> list[Any]:
    """The writes to the watch records (the kinds' summaries are written apart, below)."""
    return [
        w
        for s in sent
        if s.method == "Commit"
        for w in s.request["writes"]
        if f"/documents/{collection}/" in w.update.name
    ]


def test_the_collection_is_the_ledgers(tf: Config, sent: list[Sent]) -> None:
    assert tf.locals["ledger_collection"] == ledger.COLLECTION
    names = {w.update.name for w in written(sent)}
    assert names and all(
        re.fullmatch(rf"{DATABASE}/documents/{ledger.COLLECTION}/[^/]+", n) for n in names
    )
    # Besides the records, only the learned kinds' summaries are written (opwatch.learned):
    # documents read by id, never queried, so they need no index.
    others = {
        w.update.name for s in sent if s.method == "Commit" for w in s.request["writes"]
    } - names
    assert others and all(
        re.fullmatch(rf"{DATABASE}/documents/{learned.COLLECTION}/[0-9a-f]{{24}}-[0-7]", n)
        for n in others
    )
    for q in queries(sent):
        assert (q.collection, q.scope) == (ledger.COLLECTION, "COLLECTION")
    for rtype in ("google_firestore_index", "google_firestore_field"):
        for name, body in tf.of_type(rtype).items():
            assert resolve(tf, body["collection"]) == ledger.COLLECTION, name


def test_the_ttl_field_is_a_timestamp_every_write_sets(tf: Config, sent: list[Sent]) -> None:
    """A TTL policy deletes by a timestamp field; "using any other data type or leaving the
    field absent will disable expiration" for that document (Firestore Admin API, Field.TtlConfig;
    https://cloud.google.com/firestore/docs/ttl). Deletion is typically within 24 hours after
    expiry, not at once, so nothing in opwatch relies on a record being gone."""
    ttl = [b for b in tf.of_type("google_firestore_field").values() if "ttl_config" in b]
    assert len(ttl) == 1, "one TTL field per collection group (Firestore's TTL page)"
    field = ttl[0]["field"]
    writes = written(sent)
    assert writes
    for one in writes:
        assert one.update.fields[field]._pb.WhichOneof("value_type") == "timestamp_value"
        assert field in one.update_mask.field_paths  # a merge writes it every time


def test_what_is_exempt_from_indexing_is_never_queried_and_is_written(
    tf: Config, sent: list[Sent]
) -> None:
    """labels (a map with the watch's own keys) and expire_at (the TTL field; Firestore's index
    best practices advise exempting it) keep no single-field index: no query filters or orders
    on them, and each is a field the ledger writes (an exemption of a field never written
    would be a typo)."""
    exempt = {field for field, orders in single_field_orders(tf).items() if not orders}
    assert exempt == {"labels", "expire_at"}
    for q in queries(sent):
        assert not {f.split(".")[0] for f in q.fields} & exempt, q
    kinds = {
        name: value._pb.WhichOneof("value_type")
        for one in written(sent)
        for name, value in one.update.fields.items()
    }
    assert kinds["labels"] == "map_value"
    assert exempt <= set(kinds)


# --- the database, its identity and the settings -----------------------------------------------


def test_the_database_is_a_named_native_database(tf: Config) -> None:
    db = tf.resource("google_firestore_database", "ledger")
    assert db["type"] == "FIRESTORE_NATIVE"
    assert expr(db["name"]) == "local.ledger_database"
    assert tf.locals["ledger_database"] == (
        '${coalesce(var.ledger_database, "${var.name_prefix}-ledger")}'
    )
    assert expr(db["location_id"]) == "local.ledger_location"
    assert expr(tf.locals["ledger_location"]) == "coalesce(var.ledger_location, var.region)"
    assert "(default)" not in str(tf.variables["ledger_database"].get("default"))
    # Terraform deletes only what protection no longer guards; never abandons it silently.
    assert db["deletion_policy"] == "DELETE"
    assert expr(db["delete_protection_state"]) == (
        'var.ledger_deletion_protection ? "DELETE_PROTECTION_ENABLED" : '
        '"DELETE_PROTECTION_DISABLED"'
    )
    assert tf.variables["ledger_deletion_protection"]["default"] is True


@pytest.mark.parametrize("prefix", ["opwa", "opwatch", "a-twenty-char-prefix"])
def test_the_default_database_is_one_the_functions_accept(tf: Config, prefix: str) -> None:
    """LEDGER_DATABASE is the database's id, projects/P/databases/D (the provider's id format),
    and the default D, "<name_prefix>-ledger", is a name settings.LEDGER_PATTERN accepts for
    every name_prefix the module allows; the module's own rule is the settings' rule."""
    (rule,) = tf.variables["name_prefix"]["validation"]
    assert re.fullmatch(r'can\(regex\("(.+)", var\.name_prefix\)\)', expr(rule["condition"]))
    pattern = re.search(r'regex\("([^"]+)"', rule["condition"])
    assert pattern and re.fullmatch(pattern.group(1), prefix)
    assert settings.LEDGER_PATTERN.fullmatch(f"projects/{PROJECT}/databases/{prefix}-ledger")
    env = function_env(tf)
    assert env["LEDGER_DATABASE"] == "google_firestore_database.ledger.id"
    (own,) = tf.variables["ledger_database"]["validation"]
    database_rule = settings.LEDGER_PATTERN.pattern.split("/databases/")[1].strip("()$")
    assert f'"^{database_rule}$"' in own["condition"]


def test_retention_is_the_settings_range(tf: Config) -> None:
    env = function_env(tf)
    assert env["LEDGER_RETENTION_DAYS"] == "tostring(var.ledger_retention)"
    variable = tf.variables["ledger_retention"]
    assert variable["default"] == settings.DEFAULT_LEDGER_RETENTION_DAYS
    (rule,) = variable["validation"]
    assert ">= 1" in rule["condition"] and "<= 3650" in rule["condition"]
    assert "floor(var.ledger_retention)" in rule["condition"]
    base = {
        "RESULTS_TOPIC": "projects/p/topics/t",
        "TASKS_QUEUE": "projects/p/locations/l/queues/q",
        "CHECK_URL": "https://opwatch-on-check-1.us-central1.run.app",
    }
    for days, accepted in ((1, True), (3650, True), (0, False), (3651, False)):
        environ = {**base, "LEDGER_RETENTION_DAYS": str(days)}
        try:
            settings.Settings.from_env(environ)
        except Exception:
            assert not accepted, days
        else:
            assert accepted, days


def test_a_change_that_replaces_the_ledger_is_refused_unless_asked(tf: Config) -> None:
    """The database's name and location are immutable (the provider replaces it on either),
    and a replacement loses every record: like the queue's, a terraform_data remembers the first
    apply's values and a precondition refuses a change unless replace_ledger is set."""
    memory = tf.resource("terraform_data", "ledger_identity")
    remembered = "{name = local.ledger_database, location = local.ledger_location}"
    assert memory["input"] == {
        "name": "${local.ledger_database}",
        "location": "${local.ledger_location}",
    }
    assert memory["lifecycle"][0]["ignore_changes"] == ["input"]
    assert expr(memory["triggers_replace"]) == f"var.replace_ledger ? {remembered} : null"
    (lifecycle,) = tf.resource("google_firestore_database", "ledger")["lifecycle"]
    (pre,) = lifecycle["precondition"]
    assert expr(pre["condition"]) == (
        f"var.replace_ledger || terraform_data.ledger_identity.output == {remembered}"
    )
    assert "ledger_deletion_protection = false" in pre["error_message"]
    assert tf.variables["replace_ledger"]["default"] is False
    for name in ("ledger_database", "ledger_location", "region", "name_prefix"):
        assert "replace_ledger" in tf.variables[name]["description"], name


# --- access: the ledger database only ------------------------------------------------------------

CONDITION = 'resource.name == "${google_firestore_database.ledger.id}"'


def test_ledger_grants_name_the_database_and_nothing_wider(tf: Config) -> None:
    """Firestore databases have no IAM policy of their own: access to one is a project binding
    whose condition is resource.name == "projects/PROJECT_ID/databases/DATABASE_ID" (Manage
    databases page, "Configure per-database access permissions"; enforced for the REST API and
    the client libraries, not in the console). No datastore permission is granted otherwise."""
    assert tf.locals["ledger_condition"] == CONDITION
    for name in ("runtime_writes_ledger", "operators_read_ledger"):
        body = tf.resource("google_project_iam_member", name)
        condition = block(body, "condition")
        assert expr(condition["expression"]) == "local.ledger_condition", name
        assert condition["title"], name
    for grant in grants(tf):
        if any(p.startswith("datastore.") for p in grant.permissions):
            assert grant.resource == "ledger database", grant.address
    assert "roles/datastore." not in tf.text


@pytest.mark.parametrize(
    ("identity", "role"), [(RUNTIME, "ledger_writer"), (OPERATOR, "ledger_reader")]
)
def test_each_ledger_role_holds_exactly_what_its_identitys_calls_need(
    tf: Config, identity: Any, role: str
) -> None:
    """Stricter than the contract's "every grant is used": every permission of the role is
    one the identity's ledger calls declare (roles/datastore.user would add entities.delete,
    which nothing calls; roles/datastore.viewer, metadata and statistics reads)."""
    needed = {p for p, resource, _ in needs(identity) if resource == "ledger database"}
    assert needed
    body = tf.resource("google_project_iam_custom_role", role)
    assert set(body["permissions"]) == needed
    assert len(body["permissions"]) == len(needed)
    granted = [g for g in grants(tf) if g.identity == identity.name and g.permissions & needed]
    assert {g.resource for g in granted} == {"ledger database"}
    if identity is OPERATOR:
        assert "operators_enabled" in expr(body["count"])
        on_db = tf.resource("google_project_iam_member", "operators_read_ledger")
        assert expr(on_db["for_each"]) == "var.operators"
