"""Small, pure statistics shared by the benchmarks (tested in tests/tools/test_bench_tools.py).

Percentiles are :func:`opwatch_local.percentile.percentile` (nearest rank, re-exported here), the
one every tool uses: the p95 of 200 samples is the 190th smallest, always a value that was
observed. Ratios are "ours ÷ reference": below 1 is better
for a cost, above 1 is better for a rate.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from opwatch_local.percentile import percentile

__all__ = [
    "Summary",
    "cpu_seconds_from_stat",
    "median",
    "peak_rate",
    "percentile",
    "rate",
    "ratio",
    "verdict",
]

CLOCK_TICKS = 100  # USER_HZ on Linux; /proc/<pid>/stat counts CPU time in these


def median(values: Iterable[float]) -> float:
    """The median (mean of the middle two for an even count); ValueError on no values."""
    values = list(values)
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def ratio(ours: float, reference: float) -> float:
    """``ours / reference``; ValueError when the reference is not positive."""
    if reference <= 0:
        raise ValueError(f"the reference must be positive, not {reference}")
    return ours / reference


def rate(times: Sequence[float]) -> float:
    """Events per second over sorted event ``times``: intervals ÷ span (needs two or more)."""
    if len(times) < 2:
        raise ValueError("a rate needs at least two events")
    span = max(times) - min(times)
    if span <= 0:
        raise ValueError("events with no time between them have no rate")
    return (len(times) - 1) / span


def peak_rate(times: Iterable[float], window: float) -> float:
    """The most events in any ``window`` seconds (windows starting at an event), per second."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best / window


def cpu_seconds_from_stat(stat: str) -> float:
    """utime + stime of one ``/proc/<pid>/stat`` line, in seconds (all threads included).

    The command field may hold spaces and parentheses, so fields are counted from the last ')':
    after it come state (field 3), ..., utime (14) and stime (15).
    """
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass(frozen=True)
class Summary:
    """Count, mean, p50, p95 and max of one sample."""

    n: int
    mean: float
    p50: float
    p95: float
    max: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Summary:
        values = list(values)
        if not values:
            raise ValueError("summary of no values")
        return cls(
            n=len(values),
            mean=statistics.fmean(values),
            p50=percentile(values, 0.5),
            p95=percentile(values, 0.95),
            max=max(values),
        )


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"
