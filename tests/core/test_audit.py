"""Audit entries of long-running operations: parsed, or ignored with a reason, never raised.

The samples in ``tests/data/audit-*.json`` are LogEntry JSON as a Logging sink publishes it,
shortened, with people and projects replaced by ``example`` values. Where they come from:

- ``audit-spanner-create-instance-first.json``: a Spanner CreateInstance Admin Activity entry
  kept as a test fixture in a public repository (``createSpannerJson``, found by code search):
  the full name ``projects/…/instances/…/operations/…`` is in ``operation.id``;
- ``audit-cloudfunctions-update-function-first.json``: an UpdateFunction entry from a Firebase
  deployment's log in a public repository: the full name is in ``operation.id``, and
  ``protoPayload.response`` is an ``Operation`` without a name;
- ``audit-gke-delete-cluster-first.json``: a GKE DeleteCluster entry quoted in a public
  log-cleaning script (``cleanup-gcp-cloudaudit-logs.py``); ``-last.json`` follows the last
  entry of a DeleteCluster in a public field-mapping document: GKE puts only a bare id
  (``operation-1594396544137-1d558f93``) in ``operation.id`` and ``response.name``; the full
  path is only in ``response.selfLink``, and the last entry has no response at all;
- ``audit-cloudaicompanion-create-index-first.json``: constructed, not captured. No real
  cloudaicompanion entry was found; it has the shape of the others, with the name only in
  ``protoPayload.response.name`` (the placement the issue names for some APIs, also not seen in
  a captured sample), so that path has a fixture too;
- ``audit-*-first-split-0.json`` and ``-split-1.json``: constructed, not captured (no split
  audit entry was found in public material), by splitting the two samples above in two the way
  the "Split audit log entries" page says Logging does
  (https://cloud.google.com/logging/docs/audit/split-logs): every field but ``protoPayload``
  copied into each part, ``split.index`` appended to ``insertId``, every ``protoPayload`` field
  copied too except ``metadata``, ``request`` and ``response``, whose contents are spread over
  the parts. The Spanner one names the operation in ``operation.id`` (so in both parts) and
  leaves ``split.index`` 0 out, as proto3 JSON drops zero values; the cloudaicompanion one has
  the name only in the second part's ``response``. ``LogSplit`` fields as in the LogEntry
  reference (https://cloud.google.com/logging/docs/reference/v2/rest/v2/LogEntry#LogSplit).

The Gemini for Google Cloud audit-logging page
(https://cloud.google.com/gemini/docs/audit-logging) lists the
``CodeRepositoryIndexManagementService`` methods and marks the long-running ones (LRO).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opwatch import audit
from opwatch.audit import AuditEntry, Ignored, discovered_watch_id, discovery_labels, parse_entry
from opwatch.contracts import (
    MAX_LABEL_VALUE_CHARS,
    check_operation_name,
    validate_watch_request,
)
from tests.fakes import load

INDEX_METHOD = (
    "google.cloud.cloudaicompanion.v1.CodeRepositoryIndexManagementService."
    "CreateCodeRepositoryIndex"
)


ACTIVITY_LOG = "projects/p/logs/cloudaudit.googleapis.com%2Factivity"


def entry_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


def minimal(**changes: Any) -> dict[str, Any]:
    """The smallest entry opwatch acts on; ``changes`` replace top-level fields."""
    entry: dict[str, Any] = {
        "logName": ACTIVITY_LOG,
        "operation": {
            "id": "projects/p/locations/l/operations/op-1",
            "producer": "x.googleapis.com",
            "first": True,
        },
        "protoPayload": {
            "@type": audit.AUDIT_LOG_TYPE,
            "serviceName": "cloudaicompanion.googleapis.com",
            "methodName": INDEX_METHOD,
        },
    }
    entry.update(changes)
    return entry


def parsed(value: Any) -> AuditEntry:
    result = parse_entry(entry_bytes(value))
    assert isinstance(result, AuditEntry), result
    return result


def ignored(value: Any) -> str:
    result = parse_entry(value if isinstance(value, bytes) else entry_bytes(value))
    assert isinstance(result, Ignored), result
    return result.reason


# --- real-shaped samples ----------------------------------------------------------------------


def test_spanner_names_the_operation_in_operation_id() -> None:
    entry = parsed(load("audit-spanner-create-instance-first.json"))
    assert entry == AuditEntry(
        api="spanner.googleapis.com",
        operation="projects/example-project/instances/test-spanner/operations/5e6f76628f83a262",
        method="google.spanner.admin.instance.v1.InstanceAdmin.CreateInstance",
        first=True,
        last=False,
        resource="projects/example-project/instances/test-spanner",
        caller="alice@example.com",
        timestamp=datetime(2018, 9, 12, 18, 41, 24, 411089, tzinfo=UTC),
        name_source=audit.FROM_OPERATION_ID,
    )


def test_cloud_functions_names_it_in_operation_id_and_leaves_the_response_unnamed() -> None:
    entry = parsed(load("audit-cloudfunctions-update-function-first.json"))
    assert entry.operation.startswith("projects/example-project/locations/us-central1/operations/")
    assert entry.name_source == audit.FROM_OPERATION_ID
    assert (entry.first, entry.last) == (True, False)


def test_gke_gives_a_bare_id_and_the_path_only_in_the_self_link() -> None:
    entry = parsed(load("audit-gke-delete-cluster-first.json"))
    assert entry.operation == (
        "projects/746960230895/zones/us-central1-c/operations/operation-1594396544137-1d558f93"
    )
    assert entry.name_source == audit.FROM_RESPONSE_SELF_LINK


def test_gke_last_entry_has_no_name_to_act_on() -> None:
    reason = ignored(load("audit-gke-delete-cluster-last.json"))
    assert "operation-1655309832996-a5fd6e18" in reason
    assert "no operation name" in reason


def test_a_name_only_in_the_response_is_found_there() -> None:
    entry = parsed(load("audit-cloudaicompanion-create-index-first.json"))
    assert entry.api == "cloudaicompanion.googleapis.com"
    assert entry.method == INDEX_METHOD
    assert entry.operation.endswith(
        "/operations/operation-1732712345678-62a8f0c1b2d3e-4f5a6b7c-8d9e0f1a"
    )
    assert entry.name_source == audit.FROM_RESPONSE_NAME
    assert entry.caller == "dana@example.com"


@pytest.mark.parametrize(
    "name",
    [
        "audit-spanner-create-instance-first.json",
        "audit-cloudfunctions-update-function-first.json",
        "audit-gke-delete-cluster-first.json",
        "audit-cloudaicompanion-create-index-first.json",
        "audit-spanner-create-instance-first-split-0.json",
        "audit-cloudaicompanion-create-index-first-split-1.json",
    ],
)
def test_every_sample_makes_a_valid_watch_request(name: str) -> None:
    entry = parsed(load(name))
    watch_id = discovered_watch_id(entry.api, entry.operation)
    request = validate_watch_request(
        {
            "operation": entry.operation,
            "api": entry.api,
            "watch_id": watch_id,
            "labels": discovery_labels(entry, include_caller=True),
        },
        default_watch_id=watch_id,
        allowed_apis={entry.api},
        allowed_notify_topics=set(),
    )
    assert request.labels["caller"] == entry.caller


# --- which log ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "parent",
    [
        "projects/example-project",
        "projects/example.com:proj",
        "folders/123456789012",
        "organizations/987654321",
        "billingAccounts/012345-6789AB-CDEF01",
    ],
)
@pytest.mark.parametrize("log_id", ["activity", "data_access", "system_event", "policy"])
def test_every_cloud_audit_logs_name_is_read(parent: str, log_id: str) -> None:
    """The audit log names of "Log name" in
    https://cloud.google.com/logging/docs/audit/understanding-audit-logs (Admin Activity,
    Data Access, System Event, Policy Denied; for projects, folders, billing accounts and
    organizations)."""
    log_name = f"{parent}/logs/cloudaudit.googleapis.com%2F{log_id}"
    assert parsed(minimal(logName=log_name)).operation == "projects/p/locations/l/operations/op-1"


@pytest.mark.parametrize("log_name", [None, 7, "", "projects/p/logs/syslog"])
def test_an_entry_from_no_audit_log_is_ignored(log_name: Any) -> None:
    entry = minimal(logName=log_name)
    assert "not one of the Cloud Audit Logs" in ignored(entry)
    del entry["logName"]
    assert "not one of the Cloud Audit Logs" in ignored(entry)


# --- split entries ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("whole", "acting", "other"),
    [
        ("audit-spanner-create-instance-first.json", 0, 1),
        ("audit-cloudaicompanion-create-index-first.json", 1, 0),
    ],
)
def test_one_part_of_a_split_entry_acts_and_reads_as_the_whole_entry(
    whole: str, acting: int, other: int
) -> None:
    """split-logs page: "All fields except the protoPayload field are duplicated into each
    split entry"; metadata, request and response may be spread over the parts."""
    stem = whole.removesuffix(".json")
    assert parsed(load(f"{stem}-split-{acting}.json")) == parsed(load(whole))
    reason = ignored(load(f"{stem}-split-{other}.json"))
    assert f"part {other + 1} of 2 of split entry" in reason
    assert "malformed" not in reason and "no operation name like" not in reason


def split_of(entry: dict[str, Any], index: int | None, total: int = 3) -> dict[str, Any]:
    split: dict[str, Any] = {"uid": "u-1", "totalSplits": total}
    if index is not None:
        split["index"] = index
    return {**entry, "split": split}


def test_a_name_cut_in_pieces_is_never_acted_on() -> None:
    """The split-logs page: a string field of ``response`` "can be split across multiple
    entries". A piece that still looks like a name must not start a watch of that name."""
    entry = minimal()
    entry["operation"]["id"] = "operation-1234"
    whole = "projects/p/locations/l/operations/operation-1234"
    entry["protoPayload"]["response"] = {"name": whole[:-2]}
    assert "may be a piece of a longer one" in ignored(split_of(entry, 0))
    entry["protoPayload"]["response"] = {"name": whole}
    assert parsed(split_of(entry, 2)).operation == whole
    del entry["operation"]["id"]
    assert "may be a piece of a longer one" in ignored(split_of(entry, 2))


def test_a_split_into_one_part_is_a_whole_entry() -> None:
    entry = minimal()
    assert parsed(split_of(entry, None, total=1)) == parsed(entry)


@pytest.mark.parametrize(
    "split",
    [
        "u-1",
        {"index": 0, "totalSplits": 2},
        {"uid": "", "index": 0, "totalSplits": 2},
        {"uid": "u-1", "index": 2, "totalSplits": 2},
        {"uid": "u-1", "index": -1, "totalSplits": 2},
        {"uid": "u-1", "index": True, "totalSplits": 2},
        {"uid": "u-1", "index": 0},
        {"uid": "u-1", "index": 0, "totalSplits": "2"},
    ],
)
def test_a_split_that_is_not_a_logsplit_is_ignored(split: Any) -> None:
    assert "not a LogSplit" in ignored({**minimal(), "split": split})


# --- which name wins --------------------------------------------------------------------------


def test_operation_id_wins_over_the_response() -> None:
    entry = minimal()
    entry["protoPayload"]["response"] = {"name": "projects/p/locations/l/operations/other"}
    assert parsed(entry).operation == "projects/p/locations/l/operations/op-1"


def test_a_bare_id_falls_back_to_the_response_name() -> None:
    entry = minimal()
    entry["operation"]["id"] = "op-1"
    entry["protoPayload"]["response"] = {"name": "projects/p/locations/l/operations/op-1"}
    result = parsed(entry)
    assert (result.operation, result.name_source) == (
        "projects/p/locations/l/operations/op-1",
        audit.FROM_RESPONSE_NAME,
    )


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example/v1/projects/p/zones/z/operations/o",  # not the entry's service
        "http://cloudaicompanion.googleapis.com/v1/projects/p/zones/z/operations/o",
        "https://cloudaicompanion.googleapis.com/compute/projects/p/zones/z/operations/o",
        "https://cloudaicompanion.googleapis.com/v1/projects/p/zones/z/operations/o?x=1",
        "https://cloudaicompanion.googleapis.com/v1/projects/p/zones/z/operations/o#f",
        "https://[::1/v1/projects/p/operations/o",  # not even a URL
        "https://cloudaicompanion.googleapis.com/v1/projects/p/zones/z/clusters/c",
        42,
    ],
)
def test_a_self_link_counts_only_from_the_entrys_own_service(link: Any) -> None:
    entry = minimal()
    entry["operation"]["id"] = "op-1"
    entry["protoPayload"]["response"] = {"name": "op-1", "selfLink": link}
    assert "no operation name" in ignored(entry)


def test_a_hostile_name_is_refused_everywhere() -> None:
    entry = minimal()
    entry["operation"]["id"] = "projects/p/../../operations/x"
    entry["protoPayload"]["response"] = {"name": "https://evil.example/operations/x"}
    reason = ignored(entry)
    assert "no operation name" in reason and "projects/p/../../operations/x" in reason


# --- bad and odd entries ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"{not json", "not JSON"),
        (b'{"a": NaN}', "not JSON"),
        (b"[" * 100_000, "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b"null", "not a JSON object"),
        (b" " * (audit.MAX_ENTRY_BYTES + 1), "256 KB"),
    ],
)
def test_data_that_is_not_an_entry_is_ignored(data: bytes, says: str) -> None:
    assert says in ignored(data)


def test_an_entry_without_an_operation_is_ignored() -> None:
    assert "no operation" in ignored(minimal(operation=None))
    entry = minimal()
    del entry["operation"]
    assert "not about a long-running operation" in ignored(entry)


@pytest.mark.parametrize("flags", [{}, {"first": False}, {"first": "true"}, {"last": 1}])
def test_an_entry_neither_first_nor_last_is_ignored(flags: dict[str, Any]) -> None:
    entry = minimal(operation={"id": "projects/p/locations/l/operations/o", **flags})
    assert "neither the first nor the last" in ignored(entry)


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (None, "no protoPayload"),
        ({"@type": "type.googleapis.com/google.cloud.x.Other"}, "not an AuditLog"),
        ({"serviceName": None, "methodName": "m"}, "serviceName"),
        ({"serviceName": "not a host", "methodName": "m"}, "serviceName"),
        ({"serviceName": "x.googleapis.com", "methodName": ""}, "methodName"),
        ({"serviceName": "x.googleapis.com", "methodName": "m" * 513}, "methodName"),
        ({"serviceName": "x.googleapis.com", "methodName": ["m"]}, "methodName"),
    ],
)
def test_a_payload_that_is_not_an_audit_log_is_ignored(payload: Any, says: str) -> None:
    assert says in ignored(minimal(protoPayload=payload))


def test_a_failed_call_starts_nothing() -> None:
    entry = minimal()
    entry["protoPayload"]["status"] = {"code": 7, "message": "PERMISSION_DENIED"}
    assert "status code 7" in ignored(entry)


def test_a_last_entry_with_an_error_is_the_operation_failing() -> None:
    entry = minimal(operation={"id": "projects/p/locations/l/operations/o", "last": True})
    entry["protoPayload"]["status"] = {"code": 9, "message": "index build failed"}
    result = parsed(entry)
    assert (result.first, result.last) == (False, True)


def test_an_empty_status_is_success() -> None:
    entry = minimal()
    entry["protoPayload"]["status"] = {}
    assert parsed(entry).first


def test_a_missing_type_is_accepted_and_the_host_is_lowered() -> None:
    entry = minimal()
    del entry["protoPayload"]["@type"]
    entry["protoPayload"]["serviceName"] = "CloudAICompanion.googleapis.com"
    assert parsed(entry).api == "cloudaicompanion.googleapis.com"


def test_optional_fields_of_the_wrong_type_are_left_out() -> None:
    entry = minimal(timestamp="yesterday")
    entry["protoPayload"].update(resourceName=7, authenticationInfo={"principalEmail": ""})
    result = parsed(entry)
    assert (result.resource, result.caller, result.timestamp) == (None, None, None)
    entry["protoPayload"]["authenticationInfo"] = "someone"
    assert parsed(entry).caller is None


def test_a_reason_never_carries_a_line_break() -> None:
    reason = ignored(minimal(protoPayload={"serviceName": "a\nb\u0000c" * 50, "methodName": "m"}))
    assert "\n" not in reason and "\x00" not in reason
    assert len(reason) < 300  # the value is cut to 100 characters before escaping


# --- watch id and labels ----------------------------------------------------------------------


def test_the_watch_id_is_readable_and_the_same_for_every_entry() -> None:
    name = "projects/p/locations/l/operations/op-1"
    assert discovered_watch_id("cloudaicompanion.googleapis.com", name) == (
        "audit/cloudaicompanion.googleapis.com/projects/p/locations/l/operations/op-1"
    )
    assert discovered_watch_id("a.googleapis.com", name) != discovered_watch_id(
        "b.googleapis.com", name
    )


def test_a_long_watch_id_becomes_a_hash() -> None:
    name = "projects/p/locations/l/operations/" + "x" * 200
    watch_id = discovered_watch_id("cloudaicompanion.googleapis.com", name)
    assert watch_id.startswith("audit/sha256/") and len(watch_id) == 13 + 64
    assert watch_id == discovered_watch_id("cloudaicompanion.googleapis.com", name)


def test_labels_leave_the_caller_out_unless_allowed() -> None:
    entry = parsed(load("audit-spanner-create-instance-first.json"))
    assert discovery_labels(entry, include_caller=False) == {
        "service": "spanner.googleapis.com",
        "method": "google.spanner.admin.instance.v1.InstanceAdmin.CreateInstance",
        "resource": "projects/example-project/instances/test-spanner",
    }
    assert discovery_labels(entry, include_caller=True)["caller"] == "alice@example.com"


def test_labels_are_cut_and_cleaned_and_absent_ones_left_out() -> None:
    entry = AuditEntry(
        api="x.googleapis.com",
        operation="projects/p/operations/o",
        method="m\r\n" + "é" * 400,
        first=True,
        last=False,
        caller=None,
    )
    labels = discovery_labels(entry, include_caller=True)
    assert set(labels) == {"service", "method"}
    assert labels["method"].startswith("m é")
    assert len(labels["method"]) == MAX_LABEL_VALUE_CHARS


# --- never raises -----------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
NAMES = st.sampled_from(
    [
        "projects/p/locations/l/operations/o",
        "operation-123",
        "projects/p/../operations/o",
        "",
        "projects/p/operations/" + "x" * 600,
        "https://cloudaicompanion.googleapis.com/v1/projects/p/operations/o",
    ]
)


@st.composite
def entries(draw: st.DrawFn) -> dict[str, Any]:
    """Entries near the real shape, with any part missing, mistyped or hostile."""
    entry = minimal()
    operation, payload = entry["operation"], entry["protoPayload"]
    operation.update(
        id=draw(NAMES | JSON), first=draw(st.booleans() | JSON), last=draw(st.booleans())
    )
    payload["response"] = draw(
        st.fixed_dictionaries({"name": NAMES, "selfLink": NAMES | JSON}) | JSON
    )
    payload["status"] = draw(st.fixed_dictionaries({"code": st.integers(0, 16)}) | JSON)
    for key in ("serviceName", "methodName", "resourceName", "authenticationInfo"):
        if draw(st.booleans()):
            payload[key] = draw(JSON)
    entry["timestamp"] = draw(st.text(max_size=30) | JSON)
    for key in list(entry):
        if draw(st.integers(0, 9)) == 0:
            entry[key] = draw(JSON)
    return entry


@settings(max_examples=400, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_any_bytes_are_parsed_or_ignored(data: bytes) -> None:
    assert isinstance(parse_entry(data), AuditEntry | Ignored)


@settings(max_examples=600, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(entries())
def test_any_entry_is_parsed_into_a_valid_watch_or_ignored(value: dict[str, Any]) -> None:
    result = parse_entry(entry_bytes(value))
    if isinstance(result, Ignored):
        assert result.reason and "\n" not in result.reason
        return
    assert result.first or result.last
    assert check_operation_name(result.operation) == result.operation
    watch_id = discovered_watch_id(result.api, result.operation)
    validate_watch_request(
        {
            "operation": result.operation,
            "api": result.api,
            "watch_id": watch_id,
            "labels": discovery_labels(result, include_caller=True),
        },
        default_watch_id=watch_id,
        allowed_apis={result.api},
        allowed_notify_topics=set(),
    )


# --- the reason logged for an ignored entry, word for word ------------------------------------


def _payload(**changes: Any) -> dict[str, Any]:
    entry = minimal()
    entry["protoPayload"] = {**entry["protoPayload"], **changes}
    return entry


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\xff", "the data is not UTF-8 text"),
        (b"{", "the data is not JSON"),
        (b"[]", "the data is not a JSON object (a LogEntry)"),
        (
            minimal(logName="projects/p/logs/mine"),
            "logName 'projects/p/logs/mine' is not one of the Cloud Audit Logs",
        ),
        (
            minimal(operation=None),
            "the entry has no operation: it is not about a long-running operation",
        ),
        (
            minimal(operation={"id": "projects/p/locations/l/operations/op-1"}),
            "the entry is neither the first nor the last of its operation",
        ),
        (minimal(protoPayload=[]), "the entry has no protoPayload: it is not an audit entry"),
        (_payload(**{"@type": "t"}), "protoPayload is 't', not an AuditLog"),
        (_payload(serviceName=7), "protoPayload.serviceName 7 is not an API host"),
        (
            _payload(serviceName={"a": 1}),
            "protoPayload.serviceName a JSON object is not an API host",
        ),
        (_payload(serviceName=["a"]), "protoPayload.serviceName a JSON array is not an API host"),
        (_payload(methodName=None), "protoPayload.methodName None is not a method name"),
        (
            _payload(methodName="m" * 513),
            f"protoPayload.methodName {'m' * 100!r} is not a method name",
        ),
        (
            _payload(serviceName=10**150),
            f"protoPayload.serviceName {str(10**150)[:100]} is not an API host",
        ),
        (
            minimal(split={"uid": "u-1"}),
            "split is not a LogSplit with a uid and an index below totalSplits",
        ),
    ],
)
def test_each_ignored_entry_says_why_word_for_word(value: Any, reason: str) -> None:
    assert ignored(value) == reason


def test_a_name_nowhere_says_what_was_there() -> None:
    entry = _payload(response={"name": "bad"})
    entry["operation"]["id"] = "op-1"
    assert ignored(entry) == (
        "no operation name like projects/…/operations/…: operation.id is 'op-1', "
        "protoPayload.response.name is 'bad'"
    )


def test_a_part_not_acting_says_which_part_and_why() -> None:
    assert ignored(split_of(minimal(), 1)) == (
        "part 2 of 3 of split entry 'u-1': operation.id names the operation in every part; "
        "the first part acts"
    )
    entry = _payload(response={"name": "projects/p/locations/l/operations/op-1"})
    entry["operation"]["id"] = "op-2"
    assert ignored(split_of(entry, 1)) == (
        "part 2 of 3 of split entry 'u-1': the name in protoPayload.response.name does not end "
        "in operation.id ('op-2'), so it may be a piece of a longer one"
    )


def test_a_split_into_one_part_acts_whatever_holds_the_name() -> None:
    """A "split" of one part is the whole entry: a name from the response acts even though it
    does not end in operation.id (which a part of a real split would need)."""
    entry = _payload(response={"name": "projects/p/locations/l/operations/op-1"})
    entry["operation"]["id"] = "not-the-same"
    assert parsed(split_of(entry, 0, total=1)).operation == "projects/p/locations/l/operations/op-1"


def test_a_first_entry_with_status_code_0_is_a_started_operation() -> None:
    """google.rpc.Code 0 is OK: the call started the operation; 1 (CANCELLED) did not."""
    assert parsed(_payload(status={"code": 0})).first is True
    assert ignored(_payload(status={"code": 1})) == (
        "the call failed with status code 1: no operation started"
    )


def test_an_entry_at_each_limit_is_read() -> None:
    """The largest entry (MAX_ENTRY_BYTES, 1 MiB) and a method name of 512 characters."""
    data = entry_bytes(_payload(methodName="m" * 512))
    padded = data + b" " * (1024 * 1024 - len(data))
    result = parse_entry(padded)
    assert isinstance(result, AuditEntry) and result.method == "m" * 512
    assert ignored(padded + b" ").startswith("the entry is 1048577 bytes")


def test_a_self_link_path_is_read_from_its_first_slash_only() -> None:
    """Only the leading '/' is stripped from the path: ``/Xv1/...`` has no API version."""
    entry = _payload(
        serviceName="container.googleapis.com",
        response={
            "selfLink": "https://container.googleapis.com/Xv1/projects/p/zones/z/operations/o"
        },
    )
    entry["operation"]["id"] = "o"
    assert "no operation name" in ignored(entry)
    entry["protoPayload"]["response"]["selfLink"] = (
        "https://container.googleapis.com/v1/projects/p/zones/z/operations/o"
    )
    assert parsed(entry).operation == "projects/p/zones/z/operations/o"
