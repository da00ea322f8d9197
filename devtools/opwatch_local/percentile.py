"""One percentile for every tool that reports one (the soak, the benchmarks).

Nearest rank: the p95 of 200 samples is the 190th smallest, so a percentile is always a value that
was observed (a number of polls stays a whole number).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TypeVar

__all__ = ["percentile"]

N = TypeVar("N", int, float)


def percentile(values: Iterable[N], q: float) -> N:
    """The nearest-rank percentile of ``values``, ``q`` in [0, 1].

    Raises:
        ValueError: No values, or ``q`` outside [0, 1].
    """
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be within 0..1, not {q}")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]
