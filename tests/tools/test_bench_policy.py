"""Guards the polling benchmark's targets on a smaller seeded mix (bench/polling.py runs 10,000)."""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path
from typing import Any

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


def test_opwatch_sees_each_end_within_its_profiles_bounds(rows: list[polling.Row]) -> None:
    """The bounds the profile documents (opwatch/policy.py, PROFILES): the delay grows to a
    quarter of the elapsed time, so the end is seen within ~25 % of the operation's age, and it
    is never longer than 5 minutes, so a 90-minute build is seen at most 5 minutes late with
    about 40 looks. The undetected share alone could not fail: opwatch's simulated watches always
    end. Caught: a tenfold max delay (3000 s), a multiplier of 1.5, a first delay of 50 s."""
    plain = next(row for row in rows if row.name == polling.OPWATCH)
    assert plain.p95_lag_ratio <= 0.25
    assert plain.p95_lag <= 300.0
    assert plain.gemini_lag <= 300.0
    assert 30 <= plain.gemini_polls <= 45
    assert plain.p50_lag <= 30.0, "a short operation is seen within seconds of its end"


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


class Recorder:
    """Stands in for matplotlib (not installed in CI): every call on any object is recorded as
    (name, args, kwargs) and answers another recorder."""

    def __init__(self, calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]], name: str = ""):
        self._calls, self._name = calls, name

    def __getattr__(self, name: str) -> Recorder:
        return Recorder(self._calls, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._calls.append((self._name, args, kwargs))
        if self._name == "subplots":
            return Recorder(self._calls, "figure"), Recorder(self._calls, "axes")
        if self._name == "savefig":
            Path(args[0]).write_bytes(b"recorded")
        return Recorder(self._calls, self._name)


def test_the_picture_shows_every_policy_and_the_frontier_without_matplotlib(
    rows: list[polling.Row], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the picture guard checks, run where matplotlib is not installed (CI): each policy is
    one point at (mean polls, p95 lag / duration), the one that gives up is drawn at the top as
    a triangle, the frontier's staircase steps through exactly the undominated policies without
    the hint, and the file is written where asked."""
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
    fake = types.ModuleType("matplotlib")
    fake.use = Recorder(calls, "use")  # type: ignore[attr-defined]
    fake.pyplot = Recorder(calls)  # type: ignore[attr-defined]
    ticker = types.ModuleType("matplotlib.ticker")
    for name in ("FixedLocator", "NullLocator", "ScalarFormatter"):
        setattr(ticker, name, Recorder(calls, name))
    monkeypatch.setitem(sys.modules, "matplotlib", fake)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", fake.pyplot)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "matplotlib.ticker", ticker)

    polling.plot(rows, tmp_path / "out" / "polling.png", operations=2000, seed=11)

    points = [(args, kwargs) for name, args, kwargs in calls if name == "scatter"]
    assert len(points) == len(rows)
    top = max(r.p95_lag_ratio for r in rows if math.isfinite(r.p95_lag_ratio)) * 1.5
    for row, (args, kwargs) in zip(rows, points, strict=True):
        assert args[0] == row.mean_polls
        if math.isfinite(row.p95_lag_ratio):
            assert args[1] == row.p95_lag_ratio and kwargs["marker"] in "os"
        else:
            assert args[1] == pytest.approx(top * 0.93) and kwargs["marker"] == "^"
    [(line, _)] = [(args, kwargs) for name, args, kwargs in calls if name == "plot"]
    corners = set(zip(line[0], line[1], strict=True))
    best = polling.frontier([r for r in rows if r.name != polling.OPWATCH_HINT])
    assert {r.name for r in best} == {polling.OPWATCH}
    assert all((r.mean_polls, r.p95_lag_ratio) in corners for r in best)
    labels = [args[0] for name, args, _ in calls if name == "annotate"]
    assert sorted(label.split(":")[0] for label in labels) == sorted(r.name for r in rows)
    assert (tmp_path / "out" / "polling.png").read_bytes() == b"recorded"
