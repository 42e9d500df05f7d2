"""Simulated clocks.

The world never reads the wall clock itself: it is always told what time it is.
That keeps it deterministic, and lets tests drive time by hand.

Two times come out of a clock: `now()`, the world's time (sped up by `--speed`), and
`quota_now()`, the time the per-account rate limits run on. The limits run at real speed,
because the clients they judge budget their requests per real minute; `/_sim/advance` moves
both, so a test on the manual clock refills the buckets by advancing it.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """A source of simulated unix time (seconds)."""

    def now(self) -> float: ...

    def quota_now(self) -> float: ...

    def advance(self, seconds: float) -> None: ...


class ManualClock:
    """Time moves only when `advance` is called (deterministic tests)."""

    def __init__(self, start: float) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def quota_now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


class RealClock:
    """Simulated time = start + real elapsed time x speed (+ manual jumps).

    The speed can change while running (`set_speed`; 0 freezes the world); time already
    elapsed keeps the speed it passed at.
    """

    def __init__(self, start: float, speed: float = 1.0) -> None:
        self._origin = start
        self._mono_origin = time.monotonic()
        self._anchor = start  # world time at _mono_anchor, jumps excluded
        self._mono_anchor = self._mono_origin
        self._speed = speed
        self._jumped = 0.0

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        return self._anchor + (time.monotonic() - self._mono_anchor) * self._speed + self._jumped

    def quota_now(self) -> float:
        return self._origin + (time.monotonic() - self._mono_origin) + self._jumped

    def advance(self, seconds: float) -> None:
        self._jumped += seconds

    def set_speed(self, speed: float) -> None:
        mono = time.monotonic()
        self._anchor += (mono - self._mono_anchor) * self._speed
        self._mono_anchor = mono
        self._speed = speed
