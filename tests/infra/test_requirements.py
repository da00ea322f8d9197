"""The deployment pins (functions/requirements.txt) fall within pyproject.toml's ranges.

The functions are deployed with the pins; developers and CI install the ranges. Both name the
same libraries, so each pin must satisfy its range: a pin bumped past a range (or a range
tightened past a pin) fails here rather than in production.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parents[2]


def ranges() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    parsed = (Requirement(line) for line in project["dependencies"])
    return {canonicalize_name(r.name): r for r in parsed}


def pins() -> dict[str, Requirement]:
    lines = (ROOT / "functions" / "requirements.txt").read_text().splitlines()
    parsed = (Requirement(line) for line in lines if line.strip() and not line.startswith("#"))
    return {canonicalize_name(r.name): r for r in parsed}


def test_the_same_libraries_are_pinned_and_ranged() -> None:
    assert set(pins()) == set(ranges())


def test_every_pin_is_exact_and_within_its_range() -> None:
    by_range = ranges()
    for name, pin in pins().items():
        [spec] = pin.specifier
        assert spec.operator == "==", f"{name}: deploy with an exact pin, not {spec}"
        assert by_range[name].specifier.contains(spec.version), (
            f"{name}=={spec.version} is outside pyproject.toml's {by_range[name].specifier}"
        )
        assert pin.extras == by_range[name].extras, f"{name}: extras differ"
