"""What the simulator saw: every operation GET and ListOperations call, and one name's polls.

Tests and benchmarks assert on these (the number of polls, the gaps between them), in process or
through the control API's JSON.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["GetRecord", "ListRecord", "OperationStats"]


@dataclass(frozen=True)
class GetRecord:
    """One GET on an operation path, as recorded."""

    name: str
    version: str
    time: float
    status: int
    fault: str | None
    authorization: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "time": self.time,
            "status": self.status,
            "fault": self.fault,
            "authorization": self.authorization,
        }


@dataclass(frozen=True)
class ListRecord:
    """One ListOperations call, as recorded."""

    parent: str
    filter: str
    page_size: int | None
    page_token: str
    time: float
    status: int
    returned: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class OperationStats:
    """The polls of one operation name.

    Attributes:
        name: The operation name.
        gets: Number of GETs (every outcome counts).
        times: Clock time of each GET, in order.
        statuses: HTTP status of each GET (0 for a reset connection).
        authorization: Whether each GET carried an ``Authorization`` header.
    """

    name: str
    gets: int
    times: tuple[float, ...]
    statuses: tuple[int, ...]
    authorization: tuple[bool, ...]

    @classmethod
    def of(cls, name: str, records: list[GetRecord]) -> OperationStats:
        """The stats of ``name`` among ``records`` (zero if it was never polled)."""
        mine = [r for r in records if r.name == name]
        return cls(
            name=name,
            gets=len(mine),
            times=tuple(r.time for r in mine),
            statuses=tuple(r.status for r in mine),
            authorization=tuple(r.authorization for r in mine),
        )

    @property
    def gaps(self) -> tuple[float, ...]:
        """Seconds between consecutive GETs."""
        return tuple(b - a for a, b in itertools.pairwise(self.times))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "gets": self.gets,
            "times": list(self.times),
            "statuses": list(self.statuses),
            "authorization": list(self.authorization),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> OperationStats:
        return cls(
            name=str(raw["name"]),
            gets=int(raw["gets"]),
            times=tuple(float(t) for t in raw["times"]),
            statuses=tuple(int(s) for s in raw["statuses"]),
            authorization=tuple(bool(a) for a in raw["authorization"]),
        )
