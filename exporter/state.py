"""The in-memory picture of every watched target, and what happens when a poll lands."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass

from exporter.providers.aitronos import AitronosJob
from exporter.providers.brightdata import AiFlow, Snapshot, StudioJob
from exporter.providers.http import ApiError

__all__ = ["KINDS", "Model", "Store", "Target", "TargetKey"]

Model = StudioJob | Snapshot | AiFlow | AitronosJob
TargetKey = tuple[str, str, str]  # provider, kind, id

# (provider, kind) pairs, in the order they are shown and rendered.
KINDS: tuple[tuple[str, str], ...] = (
    ("brightdata", "job"),
    ("brightdata", "snapshot"),
    ("brightdata", "ai_flow"),
    ("aitronos", "job"),
)


@dataclass(slots=True, eq=False)
class Target:
    """One watched job, snapshot, AI flow or Aitronos job.

    `model` keeps the last good poll even while the target fails, so its series stay in place;
    `up` says whether the latest poll worked.
    """

    provider: str
    kind: str
    target_id: str
    collector: str | None = None  # a hint from config or discovery, until a poll tells
    model: Model | None = None
    up: bool | None = None  # None: not polled yet
    last_success: float | None = None
    last_poll: float | None = None
    last_error: str | None = None
    last_error_reason: str | None = None
    last_error_status: int | None = None

    @property
    def key(self) -> TargetKey:
        return (self.provider, self.kind, self.target_id)

    @property
    def terminal(self) -> bool:
        return self.model is not None and self.model.terminal


class Store:
    """All targets by key; insertion order is discovery order."""

    def __init__(self) -> None:
        self._targets: dict[TargetKey, Target] = {}

    def __len__(self) -> int:
        return len(self._targets)

    def __iter__(self) -> Iterator[Target]:
        return iter(list(self._targets.values()))

    def __contains__(self, key: TargetKey) -> bool:
        return key in self._targets

    def get(self, key: TargetKey) -> Target | None:
        return self._targets.get(key)

    def add(self, provider: str, kind: str, target_id: str, collector: str | None = None) -> Target:
        """Track a target (idempotent); ids and collectors are interned, they repeat a lot."""
        key = (provider, kind, sys.intern(target_id))
        target = self._targets.get(key)
        if target is None:
            target = Target(provider, kind, key[2], _intern(collector))
            self._targets[key] = target
        elif collector and not target.collector:
            target.collector = _intern(collector)
        return target

    def remove(self, key: TargetKey) -> None:
        self._targets.pop(key, None)

    def count_by_kind(self) -> dict[tuple[str, str], int]:
        counts = dict.fromkeys(KINDS, 0)
        for provider, kind, _ in self._targets:
            counts[(provider, kind)] = counts.get((provider, kind), 0) + 1
        return counts

    @staticmethod
    def record_success(target: Target, model: Model, now: float) -> None:
        target.model = model
        target.up = True
        target.last_success = now
        target.last_poll = now
        target.last_error = target.last_error_reason = None
        target.last_error_status = None

    @staticmethod
    def record_failure(target: Target, error: ApiError, now: float) -> None:
        target.up = False
        target.last_poll = now
        target.last_error = error.short
        target.last_error_reason = error.reason
        target.last_error_status = error.status


def _intern(value: str | None) -> str | None:
    return None if value is None else sys.intern(value)
