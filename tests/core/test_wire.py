"""The wire forms of time: protobuf-JSON durations and RFC 3339 timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opwatch.wire import (
    duration_seconds,
    format_duration,
    parse_duration,
    parse_rfc3339,
    rfc3339,
)


@given(st.floats(min_value=0, max_value=2592000, allow_nan=False).map(lambda s: round(s, 9)))
def test_durations_round_trip(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=1e-9)


@pytest.mark.parametrize("text", ["3600", "1h", "PT1H", "1e3s", " 3600s", "0x10s", "", "NaNs"])
def test_only_the_protobuf_form_is_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match="like '3600s'"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2.5s", 2.5),
        ({"seconds": 2, "nanos": 500_000_000}, 2.5),
        ({"seconds": "3"}, 3.0),
        ("-1s", None),
        ("soon", None),
        ({"seconds": "x"}, None),
        (7, None),
    ],
)
def test_duration_seconds_reads_both_json_forms(value: object, seconds: float | None) -> None:
    assert duration_seconds(value) == seconds


def test_rfc3339_is_utc_with_milliseconds() -> None:
    moment = datetime(2026, 11, 27, 23, 44, 11, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert rfc3339(moment) == "2026-11-27T22:44:11.123Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T22:44:11Z", datetime(2026, 11, 27, 22, 44, 11, tzinfo=UTC)),
        ("2026-11-27T22:44:11.123456789Z", datetime(2026, 11, 27, 22, 44, 11, 123456, tzinfo=UTC)),
        ("2026-11-27t23:44:11.5+01:00", datetime(2026, 11, 27, 22, 44, 11, 500000, tzinfo=UTC)),
    ],
)
def test_parse_rfc3339_reads_what_google_writes(text: str, expected: datetime) -> None:
    assert parse_rfc3339(text) == expected


@pytest.mark.parametrize(
    "text", ["2026-11-27T22:44:11", "2026-13-40T22:44:11Z", "yesterday", 1732712345, None]
)
def test_parse_rfc3339_refuses_what_cannot_be_placed_in_time(text: object) -> None:
    assert parse_rfc3339(text) is None


@given(st.datetimes(timezones=st.just(UTC)))
def test_timestamps_round_trip_to_the_millisecond(moment: datetime) -> None:
    parsed = parse_rfc3339(rfc3339(moment))
    assert parsed is not None
    assert abs(parsed - moment) < timedelta(milliseconds=1)
