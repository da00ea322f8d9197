"""Reading errors of every shape into google.rpc.Status, and the retry hints in them."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from opwatch.status import (
    code_name,
    normalize_status,
    retry_after_delay,
    retry_info_delay,
    status_from_http_error,
)

from .conftest import T0

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
