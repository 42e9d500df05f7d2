"""Plain value holders for counters, gauges and histograms keyed by label values.

The exporter renders its own exposition from these (see `metrics.py`), so they stay minimal:
a dict from a label-value tuple to a number, with no locking. All writes happen on the event loop;
the renderer copies a snapshot of the dict, which is atomic under the GIL.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

__all__ = ["CounterVec", "GaugeVec", "HistogramVec", "Labels"]

Labels = tuple[str, ...]


class CounterVec:
    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: dict[Labels, float] = {}

    def inc(self, labels: Labels = (), amount: float = 1.0) -> None:
        """Add `amount` (0 just makes the series exist)."""
        if amount < 0:
            raise ValueError("counters only go up")
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def get(self, labels: Labels = ()) -> float:
        return self.values.get(labels, 0.0)


class GaugeVec:
    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: dict[Labels, float] = {}

    def set(self, labels: Labels, value: float) -> None:
        self.values[labels] = value

    def get(self, labels: Labels = ()) -> float | None:
        return self.values.get(labels)


class HistogramVec:
    """Cumulative-on-render histogram: per-bucket counts, plus sum and count per label set."""

    __slots__ = ("bounds", "values")

    def __init__(self, bounds: Sequence[float]) -> None:
        if list(bounds) != sorted(set(bounds)):
            raise ValueError("histogram buckets must be strictly increasing")
        self.bounds: tuple[float, ...] = tuple(bounds)
        # labels -> [count per finite bucket..., count above the last bound, sum]
        self.values: dict[Labels, list[float]] = {}

    def ensure(self, labels: Labels) -> list[float]:
        """The row for `labels`, created empty (all counts 0) if new."""
        row = self.values.get(labels)
        if row is None:
            row = self.values[labels] = [0.0] * (len(self.bounds) + 2)
        return row

    def observe(self, labels: Labels, value: float) -> None:
        row = self.ensure(labels)
        row[bisect.bisect_left(self.bounds, value)] += 1
        row[-1] += value

    def cumulative(self, labels: Labels) -> tuple[list[float], float, float]:
        """Cumulative bucket counts (finite bounds then +Inf), count and sum."""
        row = self.values[labels]
        counts, running = [], 0.0
        for n in row[:-1]:
            running += n
            counts.append(running)
        return counts, running, row[-1]
