"""Guards the polling benchmark's targets on a smaller seeded mix (bench/polling.py runs 10,000)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import polling


@pytest.fixture(scope="module")
def rows() -> list[polling.Row]:
    return polling.benchmark(operations=2000, seed=11)


def test_default_profile_is_on_the_pareto_frontier(rows: list[polling.Row]) -> None:
    assert polling.dominated_by(rows, polling.OPWATCH) == []


def test_expected_duration_hint_meets_polls_and_lag_targets(rows: list[polling.Row]) -> None:
    hinted = next(row for row in rows if row.name == polling.OPWATCH_HINT)
    assert hinted.mean_polls <= 8
    assert hinted.p95_lag_ratio <= 0.05


def test_references_behave_as_documented(rows: list[polling.Row]) -> None:
    by_name = {row.name: row for row in rows}
    assert by_name["google-api-core DEFAULT_POLLING"].undetected > 0.2, "its 900 s timeout gives up"
    terraform = by_name["Terraform google provider (10s)"]
    assert terraform.p95_lag <= 10.0
    assert all(row.undetected == 0 for row in rows if "opwatch" in row.name)


def test_dominance_is_detected() -> None:
    worse = polling.Row("mine", 50, 60, 10, 20, 0.9, 0, 1, 1)
    better = polling.Row(next(iter(polling.REFERENCES)), 10, 20, 1, 2, 0.1, 0, 1, 1)
    assert polling.dominated_by([worse, better], "mine") == [better.name]


def test_frontier_keeps_only_the_undominated(rows: list[polling.Row]) -> None:
    no_hint = [row for row in rows if row.name != polling.OPWATCH_HINT]
    assert [row.name for row in polling.frontier(no_hint)] == [polling.OPWATCH]
    assert polling.frontier(rows)[0].name == polling.OPWATCH_HINT


def test_the_picture_is_written(rows: list[polling.Row], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the picture needs the bench extra")
    polling.plot(rows, tmp_path / "polling.png", operations=2000, seed=11)
    assert (tmp_path / "polling.png").read_bytes().startswith(b"\x89PNG")
