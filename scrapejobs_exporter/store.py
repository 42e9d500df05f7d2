"""The in-memory picture of every watched target: what a poll or a list row changes, when a
target counts as finished (once), and when its series expire."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING

from scrapejobs_exporter.config import StallConfig
from scrapejobs_exporter.progress import Progress
from scrapejobs_exporter.providers.aitronos import AitronosJob
from scrapejobs_exporter.providers.brightdata import AiFlow, Snapshot, StudioJob
from scrapejobs_exporter.providers.http import ApiError

if TYPE_CHECKING:
    from scrapejobs_exporter.aggregates import Aggregates

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
RUNNING = frozenset({"running", "processing"})


@dataclass(slots=True, eq=False)
class Target:
    """One watched job, snapshot, AI flow or Aitronos job.

    `model` keeps the last good observation even while the target fails, so its series stay in
    place; `up` says whether the latest poll worked. `final` means nothing more will change: the
    target is not polled again and its series stay until `retention.finished_ttl`.
    """

    provider: str
    kind: str
    target_id: str
    collector: str | None = None  # a hint from config or discovery, until a poll tells
    static: bool = False  # listed in the config (not discovered)
    model: Model | None = None
    complete: bool = False  # `model` came from a per-target poll, not from a thinner list row
    up: bool | None = None  # None: not polled yet
    first_seen: float = 0.0
    last_success: float | None = None
    last_poll: float | None = None
    last_error: str | None = None
    last_error_reason: str | None = None
    last_error_status: int | None = None
    final: bool = False
    finished_at: float | None = None  # on our clock: when first seen finished (or expired)
    progress: Progress | None = None
    stalled: bool = False
    eta: float | None = None
    # The renderer's cache: its escaped label string, and the model it was made from (two
    # slots rather than a tuple: at 50,000 targets every object counts).
    label_text: str | None = None
    label_model: object = None

    @property
    def key(self) -> TargetKey:
        return (self.provider, self.kind, self.target_id)

    @property
    def terminal(self) -> bool:
        return self.model is not None and self.model.terminal


class Store:
    """All targets by key (insertion order is discovery order), and their transitions."""

    def __init__(
        self, aggregates: Aggregates | None = None, stall: StallConfig | None = None
    ) -> None:
        self._targets: dict[TargetKey, Target] = {}
        self.aggregates = aggregates
        self.stall = stall or StallConfig()
        # Evicted ids, so that discovery does not bring them back while they are still listed.
        self.forgotten: dict[TargetKey, float] = {}

    def __len__(self) -> int:
        return len(self._targets)

    def __iter__(self) -> Iterator[Target]:
        return iter(list(self._targets.values()))

    def __contains__(self, key: TargetKey) -> bool:
        return key in self._targets

    def get(self, key: TargetKey) -> Target | None:
        return self._targets.get(key)

    def add(
        self,
        provider: str,
        kind: str,
        target_id: str,
        collector: str | None = None,
        *,
        static: bool = True,
        now: float = 0.0,
    ) -> Target:
        """Track a target (idempotent); ids and collectors are interned, they repeat a lot."""
        key = (provider, kind, sys.intern(target_id))
        target = self._targets.get(key)
        if target is None:
            target = Target(provider, kind, key[2], _intern(collector), static, first_seen=now)
            self._targets[key] = target
        else:
            if collector and not target.collector:
                target.collector = _intern(collector)
            target.static = target.static or static
        return target

    def remove(self, key: TargetKey) -> None:
        self._targets.pop(key, None)

    def count_by_kind(self) -> dict[tuple[str, str], int]:
        counts = dict.fromkeys(KINDS, 0)
        # All in C (map, itemgetter, Counter): this runs in the render, 50,000 keys at a time.
        counts.update(Counter(map(_PROVIDER_KIND, self._targets)))
        return counts

    # --- transitions ---------------------------------------------------------------------------

    def observe(
        self, target: Target, model: Model, now: float, *, complete: bool, count: bool
    ) -> None:
        """Apply a poll result (`complete`) or a list row; count the target once if it finished.

        `count` is False for what is already finished when the exporter starts, so a restart
        never makes `increase()` jump.
        """
        if target.complete and not complete:
            return  # a list row never overwrites the richer per-target poll
        if target.model is None and self.aggregates is not None:
            self.aggregates.ensure_labels(model, target.collector)
        self.record_success(target, model, now)
        target.complete = complete
        self._track_progress(target, model, now)
        if model.terminal and complete and not target.final:
            target.final = True
            target.finished_at = now
            if count and self.aggregates is not None:
                self.aggregates.record_finished(model, target.collector, now)

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

    def expire_target(self, target: Target, now: float) -> None:
        """A seen target the provider no longer knows (404): stop polling, let it age out."""
        target.final = True
        target.finished_at = target.finished_at or now
        target.progress, target.stalled, target.eta = None, False, None

    def _track_progress(self, target: Target, model: Model, now: float) -> None:
        tracked = isinstance(model, StudioJob | AitronosJob)
        if not tracked or model.status not in RUNNING:
            target.progress, target.stalled, target.eta = None, False, None
            return
        left = _work_left(model)
        if target.progress is None:
            target.progress = Progress.start(now, left)
        else:
            target.progress.update(now, left)
        progress = target.progress
        no_worker = (
            isinstance(model, StudioJob)
            and model.navigations == 0
            and now - progress.running_since >= self.stall.no_worker_after
        )
        target.stalled = no_worker or progress.stalled(now, self.stall.no_progress_after)
        target.eta = progress.eta(now)

    # --- expiry --------------------------------------------------------------------------------

    def expire(self, now: float, ttl: float, max_tracked: int) -> list[Target]:
        """Drop finished targets older than `ttl`, then the oldest finished (then oldest
        discovered) ones while more than `max_tracked` are tracked."""
        evicted = [t for t in self._targets.values() if _finished_before(t, now - ttl)]
        for target in evicted:
            self._forget(target, now)
        excess = len(self._targets) - max_tracked
        if excess > 0:
            candidates = sorted(
                (t for t in self._targets.values() if t.final or not t.static),
                key=lambda t: (not t.final, t.finished_at or t.first_seen),
            )
            for target in candidates[:excess]:
                self._forget(target, now)
                evicted.append(target)
        return evicted

    def _forget(self, target: Target, now: float) -> None:
        # Static targets too: discovery may list them, and must not bring them back as new.
        del self._targets[target.key]
        self.forgotten[target.key] = now

    def prune_forgotten(self, before: float) -> None:
        """Ids evicted before `before` have left the discovery window: stop remembering them."""
        for key in [k for k, at in self.forgotten.items() if at < before]:
            del self.forgotten[key]


def _finished_before(target: Target, cutoff: float) -> bool:
    return target.final and target.finished_at is not None and target.finished_at < cutoff


def _work_left(model: Model) -> float | None:
    if isinstance(model, StudioJob):
        return None if model.pages_left is None else float(model.pages_left)
    if isinstance(model, AitronosJob) and model.progress_percentage is not None:
        return max(0.0, 100.0 - model.progress_percentage)
    return None


_PROVIDER_KIND = itemgetter(0, 1)


def _intern(value: str | None) -> str | None:
    return None if value is None else sys.intern(value)
