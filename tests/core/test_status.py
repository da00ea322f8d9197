"""Reading errors of every shape into google.rpc.Status, and the retry hints in them."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from opwatch.status import (
    code_name,
    error_reasons,
    normalize_status,
    retry_after_delay,
    retry_info_delay,
    status_from_http_error,
)
from tests.fakes import T0

RETRY_INFO = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.5s"}


def test_google_error_shape_keeps_message_and_details() -> None:
    body = {
        "error": {
            "code": 404,
            "message": "Operation not found",
            "status": "NOT_FOUND",
            "details": [RETRY_INFO],
        }
    }
    status = status_from_http_error(404, json.dumps(body).encode())
    assert status == {"code": 5, "message": "Operation not found", "details": [RETRY_INFO]}


def test_unknown_status_name_falls_back_to_the_http_mapping() -> None:
    body = {"error": {"code": 429, "message": "slow down", "status": "SOMETHING_NEW"}}
    assert status_from_http_error(429, json.dumps(body).encode())["code"] == 8


def test_a_status_name_that_is_not_a_string_is_ignored() -> None:
    body = {"error": {"code": 404, "message": "gone", "status": 5}}
    assert status_from_http_error(404, json.dumps(body).encode())["code"] == 5


def test_bare_status_shape() -> None:
    status = status_from_http_error(404, b'{"code": 5, "message": "gone"}')
    assert status == {"code": 5, "message": "gone", "details": []}


@pytest.mark.parametrize(
    ("http", "code"), [(503, 14), (500, 13), (418, 2), (403, 7), (401, 16), (429, 8), (502, 2)]
)
def test_non_json_bodies_use_the_http_mapping_and_keep_the_text(http: int, code: int) -> None:
    status = status_from_http_error(http, b"<html>upstream says no</html>", "Reason")
    assert status["code"] == code
    assert "upstream says no" in status["message"]
    assert status["message"].startswith(f"HTTP {http} Reason")


def test_empty_message_is_filled_in() -> None:
    assert (
        status_from_http_error(503, b'{"error": {"status": "UNAVAILABLE"}}')["message"]
        == "HTTP 503"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"code": 9, "message": "x"}, {"code": 9, "message": "x", "details": []}),
        ({"code": 99, "message": "x"}, {"code": 2, "message": "x", "details": []}),
        ({"message": "x", "details": "nope"}, {"code": 2, "message": "x", "details": []}),
    ],
)
def test_operation_errors_are_normalized(value: object, expected: object) -> None:
    assert normalize_status(value) == expected


def test_malformed_operation_error_still_fails_readably() -> None:
    status = normalize_status("broken")
    assert (status["code"], "malformed" in status["message"]) == (2, True)


@pytest.mark.parametrize(
    ("detail", "seconds"),
    [
        (RETRY_INFO, 2.5),
        ({**RETRY_INFO, "retryDelay": {"seconds": 3, "nanos": 500000000}}, 3.5),
        ({**RETRY_INFO, "retryDelay": "soon"}, None),
        ({**RETRY_INFO, "retryDelay": "many-s"}, None),
        ({**RETRY_INFO, "retryDelay": "-1s"}, None),
        ({**RETRY_INFO, "retryDelay": {"seconds": "x"}}, None),
        ({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "X"}, None),
    ],
)
def test_retry_info(detail: object, seconds: float | None) -> None:
    assert retry_info_delay({"code": 8, "message": "", "details": [detail]}) == seconds


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ((T0 + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT"), 90.0),
        ((T0 - timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT"), 0.0),
        ("Fri, 27 Nov 2026 12:00:00", None),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after(header: str | None, seconds: float | None) -> None:
    assert retry_after_delay(header, T0) == seconds


def test_code_names() -> None:
    assert (code_name(5), code_name(99)) == ("NOT_FOUND", "99")


# --- survivors of ./run mutants (tests/mutants.py status), each killed here --------------------

ERROR_INFO = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED"}


@pytest.mark.parametrize(
    ("http_status", "body", "reason", "expected"),
    [
        # The Status's own name wins over the HTTP status's code (400 alone: INVALID_ARGUMENT).
        (
            400,
            {"error": {"code": 400, "message": "m", "status": "FAILED_PRECONDITION"}},
            "",
            {"code": 9, "message": "m", "details": []},
        ),
        # No message: the HTTP status line stands in, with its reason phrase.
        (
            503,
            {"error": {"code": 503, "status": "UNAVAILABLE"}},
            "Service Unavailable",
            {"code": 14, "message": "HTTP 503 Service Unavailable", "details": []},
        ),
        # A bare google.rpc.Status keeps its details; no message: the status line again.
        (
            404,
            {"code": 5, "details": [RETRY_INFO]},
            "Not Found",
            {"code": 5, "message": "HTTP 404 Not Found", "details": [RETRY_INFO]},
        ),
        # gRPC codes are 0 to 16 (google/rpc/code.proto): both ends are codes, 17 is not.
        (500, {"code": 0}, "", {"code": 0, "message": "HTTP 500", "details": []}),
        (500, {"code": 16, "message": "x"}, "", {"code": 16, "message": "x", "details": []}),
        (500, {"code": 17}, "", {"code": 13, "message": 'HTTP 500: {"code": 17}', "details": []}),
        # Not JSON at all (502 has no gRPC code in code.proto: UNKNOWN): the start of the text,
        # undecodable bytes replaced; nothing: the status line alone; too deep: as text.
        (
            502,
            b"\xff\xfe bad gateway",
            "",
            {"code": 2, "message": "HTTP 502: \ufffd\ufffd bad gateway", "details": []},
        ),
        (500, b"", "", {"code": 13, "message": "HTTP 500", "details": []}),
        (500, b"[" * 100_000, "", {"code": 13, "message": "HTTP 500: " + "[" * 200, "details": []}),
    ],
)
def test_each_error_shape_reads_into_exactly_this_status(
    http_status: int, body: object, reason: str, expected: dict[str, object]
) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    assert status_from_http_error(http_status, raw, reason) == expected


def test_an_operation_error_without_a_usable_message_is_named_by_its_code() -> None:
    """Caught: a default HTTP status of 1 ("HTTP 1"), ``and`` for ``or``, no code name."""
    assert normalize_status({"code": 5}) == {"code": 5, "message": "NOT_FOUND", "details": []}
    assert normalize_status({"code": 5, "message": 42})["message"] == "NOT_FOUND"
    assert normalize_status({"code": 5, "message": ""})["message"] == "NOT_FOUND"


def test_details_that_are_not_objects_are_skipped() -> None:
    """Caught: ``or`` for ``and`` in the detail filters (a string detail would be read)."""
    status = {"code": 8, "message": "m", "details": ["junk", RETRY_INFO, 7, ERROR_INFO]}
    assert retry_info_delay(status) == 2.5
    assert error_reasons(status) == {"RATE_LIMIT_EXCEEDED"}
