"""Stall detection and ETA from the progress observed across polls of one running target."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Progress"]


@dataclass(slots=True)
class Progress:
    """What is left to do (pages left, or 100 - percentage) as seen over time, on our clock.

    Our own clock is used throughout: provider timestamps come from another clock (and the
    simulator's runs faster than real time), so they cannot be compared with ours.
    """

    running_since: float
    first_at: float
    first_left: float | None
    last_left: float | None
    changed_at: float

    @classmethod
    def start(cls, now: float, left: float | None) -> Progress:
        return cls(now, now, left, left, now)

    def update(self, now: float, left: float | None) -> None:
        if left is None:
            return
        if self.first_left is None:
            self.first_at, self.first_left = now, left
        if left != self.last_left:
            self.last_left, self.changed_at = left, now

    def stalled(self, now: float, no_progress_after: float) -> bool:
        return now - self.changed_at >= no_progress_after

    def eta(self, now: float) -> float | None:
        """Seconds to completion at the average rate seen so far; None without progress."""
        if self.first_left is None or self.last_left is None:
            return None
        if self.last_left <= 0:
            return 0.0
        done = self.first_left - self.last_left
        elapsed = self.changed_at - self.first_at
        if done <= 0 or elapsed <= 0:
            return None
        return max(0.0, self.last_left / (done / elapsed) - (now - self.changed_at))
