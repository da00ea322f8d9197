"""The watch request contract: every rule enforced in code, and the JSON Schema agreeing."""

from __future__ import annotations

import json
import runpy
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
