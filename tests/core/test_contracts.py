"""The watch request contract: every rule enforced in code, and the JSON Schema agreeing."""

from __future__ import annotations

import json
import runpy
import sys
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opwatch import contracts
from opwatch.contracts import (
    FIELDS,
    parse_watch_request,
)
from opwatch.envelope import PushedMessage
from opwatch.errors import InvalidWatchRequest
from tests import docs
from tests.fakes import OPERATION, OTHER_TOPIC, RESULTS

APIS = frozenset({"cloudaicompanion.googleapis.com", "spanner.googleapis.com"})
TOPICS = frozenset({RESULTS, OTHER_TOPIC})
ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads(resources.files("opwatch").joinpath("schemas/watch-request.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def parse(value: Any) -> Any:
    data = value if isinstance(value, bytes) else json.dumps(value).encode()
    return parse_watch_request(
        data, default_watch_id="m-1", allowed_apis=APIS, allowed_notify_topics=TOPICS
    )


def violations(value: Any) -> dict[str, str]:
    with pytest.raises(InvalidWatchRequest) as caught:
        parse(value)
    return {v.field: v.description for v in caught.value.violations}


def test_minimal_request_gets_the_documented_defaults() -> None:
    request = parse({"operation": OPERATION})
    assert request.to_json() == {
        "operation": OPERATION,
        "api": "cloudaicompanion.googleapis.com",
        "api_version": "v1",
        "labels": {},
        "timeout": "86400s",
        "watch_id": "m-1",
    }
    assert request.timeout == 86400.0, "README: 24 h unless the request says otherwise"


def test_full_request_round_trips() -> None:
    full = {
        "operation": "projects/p/instances/i/databases/(default)/operations/_auto_op_1",
        "api": "Spanner.googleapis.com",
        "api_version": "v1beta1",
        "labels": {"team": "search", "run": "nightly 42"},
        "timeout": "3600s",
        "expected_duration": "1.5s",
        "notify_topic": OTHER_TOPIC,
        "watch_id": "build-7",
        "polling": {
            "initial_delay": "2s",
            "max_delay": "60s",
            "multiplier": 2,
            "not_found_grace": "0s",
        },
    }
    understood = parse(full).to_json()
    assert understood == {
        **full,
        "api": "spanner.googleapis.com",
        "polling": {**full["polling"], "multiplier": 2.0},
    }
    assert parse(understood).to_json() == understood


@pytest.mark.parametrize(
    ("operation", "reason"),
    [
        ("https://cloudaicompanion.googleapis.com/v1/projects/p/operations/o", "not a URL"),
        ("file:projects/p/operations/o", "not a URL"),
        ("projects/p/operations/o?alt=media", "must not contain ?"),
        ("projects/p/operations/o#x", "must not contain #"),
        ("projects/p%2Foperations/o", "must not contain %"),
        ("projects/p/../operations/o", "'..'"),
        ("projects/p/operations/o\r\nHost: evil", "line breaks"),
        ("projects/p/operations/o x", "spaces"),
        ("projects//p/operations/o", "'//'"),
        ("/projects/p/operations/o", "'//'"),
        ("projects/p/operat\u0456ons/o", "characters a resource name cannot have"),
        ("projects/p/locations/l", "must end in '/operations/<id>'"),
        ("operations/o", "must end in '/operations/<id>'"),
        ("", "must not be empty"),
        ("p/" * 300 + "operations/o", "the limit is 512"),
    ],
)
def test_bad_operation_names_are_refused_with_a_reason(operation: str, reason: str) -> None:
    assert reason in violations({"operation": operation})["operation"]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("api", "evil.example", "not an allowed API host"),
        ("api", "googleapis.com.evil.example", "ALLOWED_APIS"),
        ("api", "169.254.169.254", "not an allowed API host"),
        ("api", 7, "must be a string"),
        ("api_version", "v1/../../x", "not an API version"),
        ("labels", {"Team": "x"}, "lowercase"),
        ("labels", {"team": 1}, "must be a string"),
        ("labels", {"team": "a\nb"}, "line breaks"),
        ("labels", {f"k{i}": "v" for i in range(33)}, "the limit is 32"),
        ("labels", ["team"], "must be an object"),
        ("timeout", "-5s", "must be positive"),
        ("timeout", "0s", "must be positive"),
        ("timeout", "2592001s", "at most 2592000s"),
        ("timeout", "1h", "is not a duration"),
        ("timeout", 3600, "must be a string"),
        ("expected_duration", "0s", "must be positive"),
        ("notify_topic", "projects/other/topics/x", "not an allowed topic"),
        ("watch_id", "has space", "printable ASCII"),
        ("watch_id", "", "printable ASCII"),
        ("polling", "fast", "must be an object"),
    ],
)
def test_bad_fields_are_refused_with_a_reason(field: str, value: object, reason: str) -> None:
    assert reason in violations({"operation": OPERATION, field: value})[field]


@pytest.mark.parametrize(
    ("polling", "field", "reason"),
    [
        ({"initial_delay": "0.5s"}, "polling.initial_delay", "between 1s and 3600s"),
        ({"multiplier": 9}, "polling.multiplier", "between 1 and 4"),
        ({"multiplier": True}, "polling.multiplier", "must be a number"),
        ({"initial_delay": "60s", "max_delay": "10s"}, "polling.max_delay", "not be shorter"),
        ({"speed": 1}, "polling.speed", "unknown"),
    ],
)
def test_polling_overrides_stay_in_bounds(polling: dict[str, Any], field: str, reason: str) -> None:
    assert reason in violations({"operation": OPERATION, "polling": polling})[field]


def test_every_problem_is_reported_at_once_with_the_requests_own_id() -> None:
    with pytest.raises(InvalidWatchRequest) as caught:
        parse({"timout": "5s", "api": "evil.example", "watch_id": "w-3"})
    assert {v.field for v in caught.value.violations} == {"timout", "operation", "api"}
    assert caught.value.watch_id == "w-3"
    assert caught.value.raw == {"timout": "5s", "api": "evil.example", "watch_id": "w-3"}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"{not json", "not valid JSON"),
        (b"[" * 100_000, "the limit is 65536"),
        (b"[" * 50_000 + b"]" * 50_000, "the limit is 65536"),
        (b"[" * 30_000 + b"]" * 30_000, "nested too deeply"),
        (b"[1, 2]", "must be a JSON object, not list"),
        (b"null", "not null"),
        (b'{"operation": "projects/p/operations/o", "timeout": NaN}', "NaN is not a JSON number"),
        (b'{"operation": "x\\ud800y"}', "lone surrogate"),
        (b'{"operation": "p/operations/o", "labels": {"a": "\\udfff"}}', "lone surrogate"),
        (b'"projects/p/operations/o"', "not str"),
    ],
)
def test_undecodable_data_is_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidWatchRequest) as caught:
        parse(data)
    assert reason in str(caught.value)
    assert caught.value.watch_id == "m-1"


def test_deep_nesting_is_not_a_crash() -> None:
    with pytest.raises(InvalidWatchRequest) as caught:
        parse(b'{"labels": ' + b"[" * 20_000 + b"]" * 20_000 + b"}")
    assert "labels" in str(caught.value) or "JSON" in str(caught.value)


@pytest.mark.parametrize("message", [{}, {"data": ""}, {"data": "!!not base64!!"}, {"data": 5}])
def test_missing_or_undecodable_message_data_is_refused(message: dict[str, Any]) -> None:
    pushed = PushedMessage.from_json(message)
    assert pushed.data is None
    with pytest.raises(InvalidWatchRequest, match=r"no data|not base64"):
        pushed.payload()


# The schema and the code must agree: anything the code accepts, the schema accepts, and the
# structural rules (types, patterns, unknown fields) reject the same requests.
segment = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._~+=@()-]{0,12}", fullmatch=True).filter(
    lambda s: ".." not in s
)
operations = st.builds(
    lambda parts, last: "/".join([*parts, "operations", last]),
    st.lists(segment, min_size=1, max_size=5),
    segment,
)
durations = st.integers(min_value=1, max_value=2592000).map(lambda s: f"{s}s")
valid_requests = st.fixed_dictionaries(
    {"operation": operations},
    optional={
        "api": st.sampled_from(sorted(APIS)),
        "api_version": st.sampled_from(["v1", "v1beta", "v2alpha1", "v1p1beta1"]),
        "labels": st.dictionaries(
            st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True),
            st.text(max_size=20).filter(lambda s: s.isprintable()),
            max_size=5,
        ),
        "timeout": durations,
        "expected_duration": durations,
        "notify_topic": st.sampled_from(sorted(TOPICS)),
        "watch_id": st.from_regex(r"[!-~]{1,30}", fullmatch=True),
    },
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(valid_requests)
def test_what_the_code_accepts_the_schema_accepts(request: dict[str, Any]) -> None:
    parse(request)
    VALIDATOR.validate(request)
    VALIDATOR.validate(parse(request).to_json())


@settings(max_examples=300)
@given(
    st.one_of(
        st.dictionaries(st.sampled_from([*FIELDS, "extra", "Operation"]), json_values, max_size=5),
        valid_requests.flatmap(
            lambda r: st.sampled_from(sorted(r)).flatmap(
                lambda k: json_values.map(lambda v: {**r, k: v})
            )
        ),
        st.text(max_size=60).map(lambda name: {"operation": name}),
    )
)
def test_what_the_schema_rejects_the_code_rejects(candidate: dict[str, Any]) -> None:
    if VALIDATOR.is_valid(candidate):
        return
    with pytest.raises(InvalidWatchRequest):
        parse(candidate)


# --- one source for the contract: code -> schema -> README ----------------------------------


def test_the_published_schema_is_the_one_the_code_generates() -> None:
    """Regenerate: python -m opwatch.contracts > functions/opwatch/schemas/watch-request.json"""
    assert contracts.json_schema() == SCHEMA


def _human(seconds: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s" if seconds else "0"


def readme_rows() -> dict[str, list[str]]:
    text = docs.section("Watch request (Pub/Sub message data)")
    table_text = text.split("| field | required |", 1)[1]
    table = table_text.split("\n\n", 1)[0].splitlines()[2:]
    rows = [line.strip().strip("|").split("|") for line in table]
    return {cells[0].strip().strip("`"): [cell.strip() for cell in cells[1:]] for cells in rows}


def test_the_readme_table_states_the_schema() -> None:
    schema, rows = contracts.json_schema(), readme_rows()
    properties = schema["properties"]
    assert list(rows) == list(properties) == list(FIELDS)
    for name, (required, default, rules) in rows.items():
        prop = properties[name]
        assert (required == "yes") is (name in schema["required"]), name
        if "default" in prop:
            assert default == f"`{prop['default']}`", name
        for limit in ("maxLength", "maxProperties"):
            if limit in prop:
                assert f"≤ {prop[limit]}" in rules, (name, limit)
    labels = properties["labels"]
    assert labels["propertyNames"]["pattern"].strip("^$") in rows["labels"][2]
    assert f"values ≤ {labels['additionalProperties']['maxLength']} chars" in rows["labels"][2]
    for name in ("timeout", "expected_duration"):
        assert f"≤ {_human(contracts.MAX_TIMEOUT)}" in rows[name][2]
    for name, (low, high) in contracts.POLLING_BOUNDS.items():
        low_text, high_text = (
            (f"{low:g}", f"{high:g}")
            if name == "multiplier"
            else (
                _human(low),
                _human(high),
            )
        )
        shown = f"{low_text}\N{EN DASH}{high_text}"
        assert f"`{name}` {shown}" in rows["polling"][2], name


def test_the_regeneration_command_prints_the_published_schema(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with warnings.catch_warnings():
        # runpy notes that the module is already imported (by this test file): expected here.
        warnings.filterwarnings(
            "ignore", "'opwatch.contracts' found in sys.modules", RuntimeWarning
        )
        runpy.run_module("opwatch.contracts", run_name="__main__")
    assert json.loads(capsys.readouterr().out) == SCHEMA


# --- the words a refused request gets, compared word for word ----------------------------------
# A subscriber reads these descriptions in the INVALID_REQUEST notification and acts on them, so
# each is written out here as the subscriber sees it (not read back from the implementation).

LIKE = "like projects/p/locations/l/operations/o"
WATCH_FIELDS = (
    "operation, api, api_version, labels, timeout, expected_duration, notify_topic, watch_id, "
    "kind, warn_overdue, polling"
)
POLLING = "initial_delay, max_delay, multiplier, not_found_grace"


def refusals(value: Any) -> list[tuple[str, str]]:
    """Every (field, description) a request is refused with, in the order they are reported."""
    with pytest.raises(InvalidWatchRequest) as caught:
        parse(value)
    return [(v.field, v.description) for v in caught.value.violations]


def refusal(field: str, value: object) -> str:
    """The one description a request with ``field: value`` (and a valid operation) gets."""
    found = refusals({"operation": OPERATION, field: value})
    assert [name for name, _ in found] == [field]
    return found[0][1]


@pytest.mark.parametrize(
    ("operation", "description"),
    [
        (7, "must be a string (the operation's full resource name), not a number"),
        (None, "must be a string (the operation's full resource name), not null"),
        ("", f"must not be empty; give the operation's full name, {LIKE}"),
        ("p/" * 300 + "operations/o", "is 612 characters; the limit is 512"),
        (
            "projects/p/operations/o x",
            "must not contain spaces, tabs, line breaks or control characters",
        ),
        (
            "projects/p/operations/o\t",
            "must not contain spaces, tabs, line breaks or control characters",
        ),
        (
            "projects/p/operations/o\x7f",
            "must not contain spaces, tabs, line breaks or control characters",
        ),
        (
            "https://host/v1/projects/p/operations/o",
            f"must be a relative resource name, {LIKE}, not a URL",
        ),
        (
            "projects/p/operations/o?a#b%c",
            "must not contain # or % or ?: give the bare name, not a URL part",
        ),
        (
            "projects/p/operations/o?alt=media",
            "must not contain ?: give the bare name, not a URL part",
        ),
        ("projects/p/../operations/o", "must not contain '..'"),
        ("projects/a..b/operations/o", "must not contain '..'"),
        ("/projects/p/operations/o", f"must not start or end with '/' or contain '//'; {LIKE}"),
        ("projects/p/operations/o/", f"must not start or end with '/' or contain '//'; {LIKE}"),
        ("projects//p/operations/o", f"must not start or end with '/' or contain '//'; {LIKE}"),
        (
            "projects/p;,*&$!/operations/o",
            "contains characters a resource name cannot have: '!' '$' '&' '*' ','",
        ),
        (
            "projects/p/operat\u0456ons/o",
            "contains characters a resource name cannot have: '\u0456'",
        ),
        ("projects/p/locations/l", f"must end in '/operations/<id>' below a parent, {LIKE}"),
        ("operations/o", f"must end in '/operations/<id>' below a parent, {LIKE}"),
        ("projects/p/operations/.o", f"must end in '/operations/<id>' below a parent, {LIKE}"),
    ],
)
def test_a_bad_operation_name_is_told_what_to_change(operation: object, description: str) -> None:
    assert refusals({"operation": operation}) == [("operation", description)]
    if isinstance(operation, str):
        with pytest.raises(ValueError) as caught:
            contracts.check_operation_name(operation)
        assert str(caught.value) == description, "the same words as the watch request's"


def test_an_operation_name_of_512_characters_is_the_longest_accepted() -> None:
    longest = "projects/" + "p" * (512 - len("projects//operations/o")) + "/operations/o"
    assert len(longest) == 512
    assert parse({"operation": longest}).operation == longest
    assert contracts.check_operation_name(longest) == longest
    one_more = "projects/" + "p" * (513 - len("projects//operations/o")) + "/operations/o"
    assert refusals({"operation": one_more}) == [
        ("operation", "is 513 characters; the limit is 512")
    ]


def test_a_request_without_operation_is_told_it_is_required() -> None:
    assert refusals({}) == [
        ("operation", f"required: the operation's full name, {LIKE}"),
    ]


def test_unknown_fields_are_named_sorted_and_cut_to_64_characters() -> None:
    long_name = "x" * 70
    assert refusals({"timout": "5s", "operation": OPERATION, "Labels": {}, long_name: 1}) == [
        ("Labels", f"unknown field; a watch request has only {WATCH_FIELDS}"),
        ("timout", f"unknown field; a watch request has only {WATCH_FIELDS}"),
        ("x" * 64, f"unknown field; a watch request has only {WATCH_FIELDS}"),
    ]


def test_every_refusal_is_reported_in_the_order_of_the_fields() -> None:
    request = {
        "zz": 1,
        "operation": 1,
        "api": 1,
        "api_version": 1,
        "labels": 1,
        "timeout": 1,
        "expected_duration": 1,
        "notify_topic": 1,
        "watch_id": 1,
        "polling": 1,
        "kind": 1,
        "warn_overdue": 1,
    }
    assert [name for name, _ in refusals(request)] == [
        "zz",
        "operation",
        "api",
        "api_version",
        "labels",
        "timeout",
        "expected_duration",
        "notify_topic",
        "watch_id",
        "polling",
        "kind",
        "warn_overdue",
    ]


@pytest.mark.parametrize(
    ("field", "value", "description"),
    [
        (
            "api",
            7,
            "must be a string (an API host like cloudaicompanion.googleapis.com), not a number",
        ),
        (
            "api",
            "evil.example",
            "'evil.example' is not an allowed API host (allowed: cloudaicompanion.googleapis.com, "
            "spanner.googleapis.com); ask the operator to add it to ALLOWED_APIS",
        ),
        (
            "api",
            "Evil.Example",
            "'evil.example' is not an allowed API host (allowed: cloudaicompanion.googleapis.com, "
            "spanner.googleapis.com); ask the operator to add it to ALLOWED_APIS",
        ),
        (
            "api",
            "\u00e9vil\n",
            r"'\\xe9vil\\n' is not an allowed API host (allowed: cloudaicompanion.googleapis.com, "
            "spanner.googleapis.com); ask the operator to add it to ALLOWED_APIS",
        ),
        (
            "api",
            "a" * 150,
            f"'{'a' * 100}' is not an allowed API host (allowed: cloudaicompanion.googleapis.com, "
            "spanner.googleapis.com); ask the operator to add it to ALLOWED_APIS",
        ),
        ("api_version", 1, "must be a string (an API version like v1), not a number"),
        (
            "api_version",
            "v1/../../x",
            "'v1/../../x' is not an API version; write it like v1 or v1beta",
        ),
        ("api_version", "V1", "'V1' is not an API version; write it like v1 or v1beta"),
        ("api_version", "", "'' is not an API version; write it like v1 or v1beta"),
        (
            "api_version",
            "v" + "1" * 20,
            f"'v{'1' * 19}' is not an API version; write it like v1 or v1beta",
        ),
        ("labels", ["team"], "must be an object of string keys to string values, not an array"),
        ("labels", "team", "must be an object of string keys to string values, not a string"),
        ("labels", {f"k{i}": "v" for i in range(33)}, "has 33 labels; the limit is 32"),
        (
            "labels",
            {"Team": "x"},
            "key 'Team' must be 1-63 lowercase letters, digits, '_' or '-', starting with a letter",
        ),
        (
            "labels",
            {"a" * 64: "x"},
            f"key '{'a' * 64}' must be 1-63 lowercase letters, digits, '_' or '-', "
            "starting with a letter",
        ),
        (
            "labels",
            {"A" * 80: "x"},
            f"key '{'A' * 64}' must be 1-63 lowercase letters, digits, '_' or '-', "
            "starting with a letter",
        ),
        ("labels", {"team": 1}, "value of 'team' must be a string, not a number"),
        ("labels", {"team": None}, "value of 'team' must be a string, not null"),
        ("labels", {"team": {}}, "value of 'team' must be a string, not an object"),
        (
            "labels",
            {"team": "x" * 257},
            "value of 'team' must be at most 256 characters without line breaks or control "
            "characters",
        ),
        (
            "labels",
            {"team": "a\nb"},
            "value of 'team' must be at most 256 characters without line breaks or control "
            "characters",
        ),
        ("timeout", 3600, "must be a string (a duration like '3600s'), not a number"),
        ("timeout", "1h", "'1h' is not a duration; write seconds with an 's', like '3600s'"),
        ("timeout", "0s", "must be positive, like '3600s', not '0s'"),
        ("timeout", "-5s", "must be positive, like '3600s', not '-5s'"),
        ("timeout", "2592001s", "must be at most 2592000s (30 days), not '2592001s'"),
        ("timeout", "2592000.5s", "must be at most 2592000s (30 days), not '2592000.5s'"),
        ("expected_duration", True, "must be a string (a duration like '3600s'), not a boolean"),
        ("expected_duration", "0s", "must be positive, like '3600s', not '0s'"),
        ("expected_duration", "2592001s", "must be at most 2592000s (30 days), not '2592001s'"),
        (
            "notify_topic",
            5,
            "must be a string (a full topic path like projects/p/topics/t), not a number",
        ),
        (
            "notify_topic",
            "projects/other/topics/x",
            "'projects/other/topics/x' is not an allowed topic; use a full path "
            "projects/<p>/topics/<t> listed in ALLOWED_NOTIFY_TOPICS, or leave it out to use the "
            "results topic",
        ),
        (
            "notify_topic",
            RESULTS.upper(),
            f"'{RESULTS.upper()}' is not an allowed topic; use a full path "
            "projects/<p>/topics/<t> listed in ALLOWED_NOTIFY_TOPICS, or leave it out to use the "
            "results topic",
        ),
        (
            "notify_topic",
            "t\u00e9\n" + "x" * 400,
            r"'t\\xe9\\n" + "x" * 297 + "' is not an allowed topic; use a full path "
            "projects/<p>/topics/<t> listed in ALLOWED_NOTIFY_TOPICS, or leave it out to use the "
            "results topic",
        ),
        ("watch_id", 5, "must be a string (an idempotency key), not a number"),
        ("watch_id", "has space", "must be 1-128 printable ASCII characters without spaces"),
        ("watch_id", "", "must be 1-128 printable ASCII characters without spaces"),
        ("watch_id", "w" * 129, "must be 1-128 printable ASCII characters without spaces"),
        ("watch_id", "w\u00e9", "must be 1-128 printable ASCII characters without spaces"),
        (
            "kind",
            5,
            "must be a string (what kind of operation this is, e.g. index-build), not a number",
        ),
        ("kind", "", "must be 1-200 characters without control characters"),
        ("kind", "k" * 201, "must be 1-200 characters without control characters"),
        ("kind", "index\nbuild", "must be 1-200 characters without control characters"),
        ("warn_overdue", "yes", "must be true or false, not a string"),
        ("warn_overdue", 1, "must be true or false, not a number"),
        ("warn_overdue", None, "must be true or false, not null"),
        ("polling", "fast", f"must be an object with {POLLING}, not a string"),
        ("polling", [1], f"must be an object with {POLLING}, not an array"),
        ("polling", 2.5, f"must be an object with {POLLING}, not a number"),
    ],
)
def test_a_bad_field_is_told_what_to_change(field: str, value: object, description: str) -> None:
    assert refusal(field, value) == description


@pytest.mark.parametrize(
    ("polling", "violations"),
    [
        ({"speed": 1}, [("polling.speed", f"unknown; use {POLLING}")]),
        (
            {"zz": 1, "aa": 2, "s" * 70: 3},
            [
                ("polling.aa", f"unknown; use {POLLING}"),
                ("polling." + "s" * 64, f"unknown; use {POLLING}"),
                ("polling.zz", f"unknown; use {POLLING}"),
            ],
        ),
        (
            {"initial_delay": 10},
            [("polling.initial_delay", "must be a string (a duration like '10s'), not a number")],
        ),
        (
            {"initial_delay": "soon"},
            [
                (
                    "polling.initial_delay",
                    "'soon' is not a duration; write seconds with an 's', like '3600s'",
                )
            ],
        ),
        (
            {"initial_delay": "0.5s"},
            [("polling.initial_delay", "initial_delay must be between 1s and 3600s, not 0.5s")],
        ),
        (
            {"initial_delay": "3601s"},
            [("polling.initial_delay", "initial_delay must be between 1s and 3600s, not 3601s")],
        ),
        (
            {"max_delay": "0.999s"},
            [("polling.max_delay", "max_delay must be between 1s and 21600s, not 0.999s")],
        ),
        (
            {"max_delay": "21601s"},
            [("polling.max_delay", "max_delay must be between 1s and 21600s, not 21601s")],
        ),
        (
            {"not_found_grace": "-1s"},
            [("polling.not_found_grace", "not_found_grace must be between 0s and 3600s, not -1s")],
        ),
        (
            {"not_found_grace": "3600.5s"},
            [
                (
                    "polling.not_found_grace",
                    "not_found_grace must be between 0s and 3600s, not 3600.5s",
                )
            ],
        ),
        ({"multiplier": 9}, [("polling.multiplier", "multiplier must be between 1 and 4, not 9")]),
        (
            {"multiplier": 4.5},
            [("polling.multiplier", "multiplier must be between 1 and 4, not 4.5")],
        ),
        (
            {"multiplier": 0.5},
            [("polling.multiplier", "multiplier must be between 1 and 4, not 0.5")],
        ),
        (
            {"multiplier": True},
            [("polling.multiplier", "multiplier must be a number, not a boolean")],
        ),
        (
            {"multiplier": "2"},
            [("polling.multiplier", "multiplier must be a number, not a string")],
        ),
        ({"multiplier": None}, [("polling.multiplier", "multiplier must be a number, not null")]),
        (
            {"initial_delay": "60s", "max_delay": "10s"},
            [("polling.max_delay", "must not be shorter than initial_delay")],
        ),
        (
            {"speed": 1, "initial_delay": "0s", "multiplier": "x", "max_delay": "0s"},
            [
                ("polling.speed", f"unknown; use {POLLING}"),
                ("polling.initial_delay", "initial_delay must be between 1s and 3600s, not 0s"),
                ("polling.max_delay", "max_delay must be between 1s and 21600s, not 0s"),
                ("polling.multiplier", "multiplier must be a number, not a string"),
            ],
        ),
    ],
)
def test_a_bad_polling_override_is_told_what_to_change(
    polling: dict[str, Any], violations: list[tuple[str, str]]
) -> None:
    assert refusals({"operation": OPERATION, "polling": polling}) == violations


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_a_multiplier_that_is_not_finite_is_not_a_number(number: float) -> None:
    # JSON cannot carry these (loads_strict refuses NaN), but a decoded request handed to
    # validate_watch_request directly can.
    with pytest.raises(InvalidWatchRequest) as caught:
        contracts.validate_watch_request(
            {"operation": OPERATION, "polling": {"multiplier": number}},
            default_watch_id="m-1",
            allowed_apis=APIS,
            allowed_notify_topics=TOPICS,
        )
    assert [(v.field, v.description) for v in caught.value.violations] == [
        ("polling.multiplier", "multiplier must be a number, not a number")
    ]


def test_polling_bounds_are_inclusive() -> None:
    for polling in (
        {"initial_delay": "1s", "max_delay": "1s", "multiplier": 1, "not_found_grace": "0s"},
        {
            "initial_delay": "3600s",
            "max_delay": "21600s",
            "multiplier": 4,
            "not_found_grace": "3600s",
        },
        {"initial_delay": "30s", "max_delay": "30s", "multiplier": 1.5},
    ):
        understood = parse({"operation": OPERATION, "polling": polling}).to_json()["polling"]
        assert understood == {
            name: float(value) if name == "multiplier" else value for name, value in polling.items()
        }


@pytest.mark.parametrize(
    ("polling", "override"),
    [
        ({"initial_delay": "5s"}, contracts.PollingOverride(initial_delay=5.0)),
        ({"max_delay": "5s"}, contracts.PollingOverride(max_delay=5.0)),
        ({"multiplier": 3}, contracts.PollingOverride(multiplier=3.0)),
        ({"not_found_grace": "2.5s"}, contracts.PollingOverride(not_found_grace=2.5)),
        ({}, contracts.PollingOverride()),
    ],
)
def test_one_polling_override_leaves_the_others_to_the_profile(
    polling: dict[str, Any], override: contracts.PollingOverride
) -> None:
    request = parse({"operation": OPERATION, "polling": polling})
    assert request.polling == override
    assert request.to_json().get("polling", {}) == polling


def test_the_largest_values_within_the_limits_are_accepted() -> None:
    request = parse(
        {
            "operation": OPERATION,
            "api_version": "v" + "1" * 19,
            "labels": {f"k{i}": "v" * 256 for i in range(31)} | {"a" + "b" * 62: "x"},
            "timeout": "2592000s",
            "expected_duration": "2592000s",
            "watch_id": "~" * 128,
            "kind": "k" * 200,
        }
    )
    assert request.api_version == "v" + "1" * 19
    assert len(request.labels) == 32
    assert request.labels["k0"] == "v" * 256
    assert request.timeout == request.expected_duration == 2592000.0
    assert request.watch_id == "~" * 128
    assert request.kind == "k" * 200


def test_the_smallest_values_are_accepted() -> None:
    request = parse(
        {
            "operation": "p/operations/o",
            "timeout": "0.000000001s",
            "expected_duration": "0.5s",
            "watch_id": "!",
            "kind": "k",
            "labels": {"a": ""},
        }
    )
    assert request.to_json() == {
        "operation": "p/operations/o",
        "api": "cloudaicompanion.googleapis.com",
        "api_version": "v1",
        "labels": {"a": ""},
        "timeout": "0.000000001s",
        "expected_duration": "0.5s",
        "watch_id": "!",
        "kind": "k",
    }


@pytest.mark.parametrize("warn_overdue", [True, False])
def test_kind_and_warn_overdue_are_understood_and_echoed(warn_overdue: bool) -> None:
    request = parse({"operation": OPERATION, "kind": "index-build", "warn_overdue": warn_overdue})
    assert request.kind == "index-build"
    assert request.warn_overdue is warn_overdue
    assert request.to_json() == {
        "operation": OPERATION,
        "api": "cloudaicompanion.googleapis.com",
        "api_version": "v1",
        "labels": {},
        "timeout": "86400s",
        "watch_id": "m-1",
        "kind": "index-build",
        "warn_overdue": warn_overdue,
    }


def test_a_minimal_request_leaves_the_optional_fields_unset() -> None:
    request = parse({"operation": OPERATION})
    assert request == contracts.WatchRequest(operation=OPERATION, watch_id="m-1")
    assert request.api == "cloudaicompanion.googleapis.com"
    assert request.api_version == "v1"
    assert dict(request.labels) == {}
    assert request.expected_duration is None
    assert request.notify_topic is None
    assert request.polling == contracts.PollingOverride()
    assert request.kind is None
    assert request.warn_overdue is None
    with pytest.raises(TypeError):
        request.labels["team"] = "x"  # type: ignore[index]


def test_a_refused_request_is_reported_under_its_own_watch_id_or_the_message_id() -> None:
    with pytest.raises(InvalidWatchRequest) as caught:
        parse({"operation": 1, "watch_id": "w-3"})
    assert caught.value.watch_id == "w-3"
    assert caught.value.raw == {"operation": 1, "watch_id": "w-3"}
    with pytest.raises(InvalidWatchRequest) as caught:
        parse({"operation": 1, "watch_id": "bad id"})
    assert caught.value.watch_id == "m-1"
    with pytest.raises(InvalidWatchRequest) as caught:
        parse({"operation": 1})
    assert caught.value.watch_id == "m-1"


@pytest.mark.parametrize(
    ("data", "description"),
    [
        (b"\xff\xfe", "the request is not UTF-8 text; publish it as a JSON object"),
        (
            b"[" * 30_000 + b"]" * 30_000,
            "the request is nested too deeply; a watch request is a flat JSON object",
        ),
        (
            b"{not json",
            "the request is not valid JSON (Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1)); publish a JSON object",
        ),
        (
            b"",
            "the request is not valid JSON (Expecting value: line 1 column 1 (char 0)); "
            "publish a JSON object",
        ),
        (
            b'{"timeout": Infinity}',
            "the request is not valid JSON (Infinity is not a JSON number); publish a JSON object",
        ),
        (
            b'{"timeout": -Infinity}',
            "the request is not valid JSON (-Infinity is not a JSON number); publish a JSON object",
        ),
        (
            b'{"timeout": NaN}',
            "the request is not valid JSON (NaN is not a JSON number); publish a JSON object",
        ),
        (
            b'{"operation": "x\\ud800y"}',
            "the request is not valid JSON (it escapes a lone surrogate like \\ud800; send valid "
            "Unicode); publish a JSON object",
        ),
        (b"[1, 2]", "the request must be a JSON object, not list"),
        (b"null", "the request must be a JSON object, not null"),
        (b'"projects/p/operations/o"', "the request must be a JSON object, not str"),
        (b"7", "the request must be a JSON object, not int"),
        (b"7.5", "the request must be a JSON object, not float"),
        (b"true", "the request must be a JSON object, not bool"),
        (b" " * 65_537, "the request is 65537 bytes; the limit is 65536"),
        (b"[" * 100_000, "the request is 100000 bytes; the limit is 65536"),
    ],
)
def test_undecodable_data_is_told_what_to_change(data: bytes, description: str) -> None:
    for parser in (contracts.parse_watch_request, contracts.parse_watch_message):
        with pytest.raises(InvalidWatchRequest) as caught:
            parser(data, default_watch_id="m-7", allowed_apis=APIS, allowed_notify_topics=TOPICS)
        assert [(v.field, v.description) for v in caught.value.violations] == [("", description)]
        assert str(caught.value) == description
        assert caught.value.watch_id == "m-7"
        assert caught.value.raw is None


def test_a_request_of_exactly_64_kib_is_read() -> None:
    request = json.dumps({"operation": OPERATION}).encode()
    data = request + b" " * (65_536 - len(request))
    assert len(data) == 65_536
    assert parse(data).operation == OPERATION


def test_escaped_characters_that_are_valid_unicode_are_read() -> None:
    data = (
        b'{"operation": "projects/p/operations/o", "labels": {"team": "caf\\u00e9 \\ud83d\\ude00"}}'
    )
    assert parse(data).labels == {"team": "caf\u00e9 \U0001f600"}
    assert contracts.loads_strict('"\\u0041"') == "A"


def test_loads_strict_says_what_json_forbids() -> None:
    for text, message in (
        ("NaN", "NaN is not a JSON number"),
        ('["\\udfff"]', "it escapes a lone surrogate like \\ud800; send valid Unicode"),
    ):
        with pytest.raises(ValueError) as caught:
            contracts.loads_strict(text)
        assert str(caught.value) == message
    assert contracts.loads_strict('{"a": [1, 2.5, null]}') == {"a": [1, 2.5, None]}


# --- cancel requests ----------------------------------------------------------------------------


def parse_message(value: Any, default_watch_id: str = "m-1") -> Any:
    return contracts.parse_watch_message(
        json.dumps(value).encode(),
        default_watch_id=default_watch_id,
        allowed_apis=APIS,
        allowed_notify_topics=TOPICS,
    )


def cancel_refusals(value: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(InvalidWatchRequest) as caught:
        parse_message(value, default_watch_id="m-9")
    assert caught.value.watch_id == "m-9"
    assert caught.value.raw == value
    return [(v.field, v.description) for v in caught.value.violations]


def test_a_message_with_cancel_is_a_cancel_request() -> None:
    assert parse_message({"cancel": "w-1"}) == contracts.CancelRequest("w-1", "")
    assert parse_message({"cancel": "w-1", "reason": "no longer needed"}) == (
        contracts.CancelRequest("w-1", "no longer needed")
    )
    assert parse_message({"cancel": "~" * 128, "reason": "r" * 1024}) == (
        contracts.CancelRequest("~" * 128, "r" * 1024)
    )
    assert contracts.CancelRequest("w-1").reason == ""


def test_a_message_without_cancel_is_a_watch_request_checked_against_the_allowlists() -> None:
    request = parse_message(
        {"operation": OPERATION, "api": "spanner.googleapis.com", "notify_topic": OTHER_TOPIC},
        default_watch_id="m-4",
    )
    assert request == contracts.WatchRequest(
        operation=OPERATION,
        watch_id="m-4",
        api="spanner.googleapis.com",
        notify_topic=OTHER_TOPIC,
    )
    with pytest.raises(InvalidWatchRequest) as caught:
        contracts.parse_watch_message(
            json.dumps({"operation": OPERATION, "api": "spanner.googleapis.com"}).encode(),
            default_watch_id="m-5",
            allowed_apis={"cloudaicompanion.googleapis.com"},
            allowed_notify_topics=(),
        )
    assert caught.value.watch_id == "m-5"
    assert [v.field for v in caught.value.violations] == ["api"]
    with pytest.raises(InvalidWatchRequest) as caught:
        contracts.parse_watch_message(
            json.dumps({"operation": OPERATION, "notify_topic": OTHER_TOPIC}).encode(),
            default_watch_id="m-5",
            allowed_apis=APIS,
            allowed_notify_topics=(RESULTS,),
        )
    assert [v.field for v in caught.value.violations] == ["notify_topic"]
    with pytest.raises(InvalidWatchRequest) as caught:
        parse_message(["cancel"])
    assert str(caught.value) == "the request must be a JSON object, not list"


CANCEL_ID = "the watch_id to cancel: 1-128 printable ASCII characters"
REASON = "a string of at most 1024 characters without control characters"


@pytest.mark.parametrize(
    ("value", "violations"),
    [
        ({"cancel": 5}, [("cancel", CANCEL_ID)]),
        ({"cancel": None}, [("cancel", CANCEL_ID)]),
        ({"cancel": ""}, [("cancel", CANCEL_ID)]),
        ({"cancel": "has space"}, [("cancel", CANCEL_ID)]),
        ({"cancel": "w" * 129}, [("cancel", CANCEL_ID)]),
        ({"cancel": "w-1", "reason": 5}, [("reason", REASON)]),
        ({"cancel": "w-1", "reason": None}, [("reason", REASON)]),
        ({"cancel": "w-1", "reason": "r" * 1025}, [("reason", REASON)]),
        ({"cancel": "w-1", "reason": "line\nbreak"}, [("reason", REASON)]),
        (
            {"cancel": "w-1", "watch_id": "w-1"},
            [("watch_id", "unknown field; a cancel request has only cancel, reason")],
        ),
        (
            {"cancel": 1, "reason": 2, "zz": 0, "aa": 0, "q" * 70: 0},
            [
                ("aa", "unknown field; a cancel request has only cancel, reason"),
                ("q" * 64, "unknown field; a cancel request has only cancel, reason"),
                ("zz", "unknown field; a cancel request has only cancel, reason"),
                ("cancel", CANCEL_ID),
                ("reason", REASON),
            ],
        ),
    ],
)
def test_a_bad_cancel_request_is_told_what_to_change(
    value: dict[str, Any], violations: list[tuple[str, str]]
) -> None:
    assert cancel_refusals(value) == violations
    with pytest.raises(InvalidWatchRequest) as caught:
        contracts.validate_cancel_request(value, default_watch_id="m-2")
    assert [(v.field, v.description) for v in caught.value.violations] == violations
    assert caught.value.watch_id == "m-2"


def test_an_invalid_operation_name_of_512_characters_is_not_called_too_long() -> None:
    name = "projects/" + "p" * (512 - len("projects/"))
    assert len(name) == 512
    assert refusals({"operation": name}) == [
        ("operation", f"must end in '/operations/<id>' below a parent, {LIKE}")
    ]


def test_only_the_url_characters_are_named_as_url_parts() -> None:
    assert refusals({"operation": "projects/X/operations/o?"}) == [
        ("operation", "must not contain ?: give the bare name, not a URL part")
    ]
    assert refusals({"operation": "projects/X/operations/XX!"}) == [
        ("operation", "contains characters a resource name cannot have: '!'")
    ]


@pytest.mark.parametrize(
    ("field", "value", "description"),
    [
        (
            "operation",
            (OPERATION,),
            "must be a string (the operation's full resource name), not tuple",
        ),
        ("labels", {"team": b"search"}, "value of 'team' must be a string, not bytes"),
        ("warn_overdue", frozenset(), "must be true or false, not frozenset"),
    ],
)
def test_a_value_json_cannot_carry_is_named_by_its_python_type(
    field: str, value: object, description: str
) -> None:
    # A client validates the Python values it was given (opwatch_client's WatchRequest.validate),
    # which need not be JSON types.
    request = {"operation": OPERATION, field: value}
    with pytest.raises(InvalidWatchRequest) as caught:
        contracts.validate_watch_request(
            request, default_watch_id="m-1", allowed_apis=APIS, allowed_notify_topics=TOPICS
        )
    assert [(v.field, v.description) for v in caught.value.violations] == [(field, description)]


@pytest.mark.skipif(sys.get_int_max_str_digits() != 4300, reason="Python's default digit limit")
def test_a_long_json_error_is_cut_to_120_characters() -> None:
    # The one ValueError json.loads raises with more than 120 characters: a number too long for
    # int(), which Python refuses beyond 4300 digits.
    data = b'{"operation": "projects/p/operations/o", "timeout": ' + b"1" * 5000 + b"}"
    with pytest.raises(InvalidWatchRequest) as caught:
        parse(data)
    assert [(v.field, v.description) for v in caught.value.violations] == [
        (
            "",
            "the request is not valid JSON (Exceeds the limit (4300 digits) for integer string "
            "conversion: value has 5000 digits; use sys.set_int_max_str_digits() t); publish a "
            "JSON object",
        )
    ]
