"""What opwatch learned of how long operations of one kind take. Pure.

Each finished operation adds its duration to its kind's summary: a histogram over durations on a
log scale (:data:`BUCKETS_PER_DOUBLING` buckets each time the duration doubles, so any quantile
is read within ~9 % of the true one), in which each operation weighs ``2 ** (t / HALF_LIFE)`` by
when it finished (forward decay): recent operations weigh more, so the summary follows drift,
and adding one is a sum, never a read-modify-write. A kind's summary is kept in
:data:`SHARDS` documents and each finish adds to one of them at random, so a hot kind's many
finishes a second never contend on one document; a reader adds the shards up.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

BUCKETS_PER_DOUBLING: Final = 4
MIN_SECONDS: Final = 1.0
MAX_BUCKET: Final = 23 * BUCKETS_PER_DOUBLING  # 2**23 s, about 97 days
HALF_LIFE: Final = timedelta(days=7)
# Weights grow from here; 2**1000 is still a float until about 2045.
EPOCH: Final = datetime(2026, 1, 1, tzinfo=UTC)
SHARDS: Final = 8
# A kind is learned from this many finished operations on (configurable per deployment).
DEFAULT_MIN_SAMPLES: Final = 5
LOW, HIGH = 0.05, 0.95
COLLECTION: Final = "kinds"


def bucket(seconds: float) -> int:
    """The bucket of a duration: ``floor(log2(seconds) * BUCKETS_PER_DOUBLING)``, clamped."""
    if seconds <= MIN_SECONDS:
        return 0
    return min(MAX_BUCKET, int(math.log2(seconds) * BUCKETS_PER_DOUBLING))


def bucket_seconds(index: int) -> float:
    """A bucket's middle (geometric), in seconds."""
    return float(2 ** ((index + 0.5) / BUCKETS_PER_DOUBLING))


def weight(at: datetime) -> float:
    """The forward-decay weight of an operation that finished at ``at``."""
    return float(2 ** ((at - EPOCH) / HALF_LIFE))


def shard_id(kind: str, shard: int) -> str:
    """The document id of one shard of a kind's summary."""
    return f"{hashlib.sha256(kind.encode()).hexdigest()[:24]}-{shard}"


@dataclass(frozen=True)
class Sample:
    """One finished operation of a kind: what its summary adds (a document's increments)."""

    kind: str
    seconds: float
    at: datetime
    exact: bool  # createTime → endTime from its metadata, not first look → the look that saw done

    def increments(self) -> dict[str, Any]:
        """Field → amount to add: the bucket's weight (``w.b{bucket}``), the sample count and
        the count of exact ones."""
        return {
            "w": {f"b{bucket(self.seconds)}": weight(self.at)},
            "n": 1,
            "exact": 1 if self.exact else 0,
        }


@dataclass(frozen=True)
class Expectation:
    """When operations of a kind end: seconds after they start, read from its summary.

    Attributes:
        kind: the kind.
        samples: finished operations it was learned from.
        low: the 5th percentile; the dense looks start here.
        median: the 50th.
        high: the 95th; past it the operation is overdue.
    """

    kind: str
    samples: int
    low: float
    median: float
    high: float

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "samples": self.samples,
            "low": round(self.low, 3),
            "median": round(self.median, 3),
            "high": round(self.high, 3),
        }


@dataclass
class Summary:
    """A kind's summary, its shards added up: bucket → weight, and how many samples."""

    kind: str
    weights: dict[int, float] = field(default_factory=dict)
    samples: int = 0

    @classmethod
    def of(cls, kind: str, shards: Iterable[Mapping[str, Any]]) -> Summary:
        """The summary from the shard documents' fields (``w``: ``b{bucket}`` → weight, ``n``);
        anything else in them is skipped."""
        summary = cls(kind)
        for fields in shards:
            weights = fields.get("w")
            if isinstance(weights, Mapping):
                for key, value in weights.items():
                    digits = str(key)[1:]
                    if str(key).startswith("b") and digits.isdigit() and _positive(value):
                        index = min(int(digits), MAX_BUCKET)
                        summary.weights[index] = summary.weights.get(index, 0.0) + float(value)
            count = fields.get("n")
            if isinstance(count, int) and not isinstance(count, bool) and count > 0:
                summary.samples += count
        return summary

    def add(self, sample: Sample) -> None:
        index = bucket(sample.seconds)
        self.weights[index] = self.weights.get(index, 0.0) + weight(sample.at)
        self.samples += 1

    def quantile(self, q: float) -> float:
        """The duration below which a share ``q`` of the (weighted) operations ended."""
        total = sum(self.weights.values())
        if total <= 0:
            raise ValueError("an empty summary has no quantiles")
        running = 0.0
        for index in sorted(self.weights):
            running += self.weights[index]
            if running >= q * total:
                return bucket_seconds(index)
        return bucket_seconds(max(self.weights))  # pragma: no cover - rounding at q = 1

    def expectation(self, min_samples: int = DEFAULT_MIN_SAMPLES) -> Expectation | None:
        """What a watch of this kind may expect; None below ``min_samples`` samples."""
        if self.samples < min_samples or not self.weights:
            return None
        return Expectation(
            self.kind, self.samples, self.quantile(LOW), self.quantile(0.5), self.quantile(HIGH)
        )


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0
