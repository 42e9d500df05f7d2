"""Simulated clocks.

The world never reads the wall clock itself: it is always told what time it is.
That keeps it deterministic, and lets tests drive time by hand.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """A source of simulated unix time (seconds)."""

    def now(self) -> float: ...

    def advance(self, seconds: float) -> None: ...


class ManualClock:
    """Time moves only when `advance` is called (deterministic tests)."""

    def __init__(self, start: float) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


class RealClock:
    """Simulated time = start + real elapsed time x speed (+ manual jumps)."""

    def __init__(self, start: float, speed: float = 1.0) -> None:
        self._start = start
        self._speed = speed
        self._mono0 = time.monotonic()
        self._jumped = 0.0

    def now(self) -> float:
        return self._start + (time.monotonic() - self._mono0) * self._speed + self._jumped

    def advance(self, seconds: float) -> None:
        self._jumped += seconds
