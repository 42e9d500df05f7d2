"""The in-memory picture of every watched target: what a poll or a list row changes, when a
target counts as finished (once), and when its series expire."""

from __future__ import annotations

import itertools
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields, replace
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from scrapejobs_exporter.config import StallConfig
from scrapejobs_exporter.kinds import KINDS as KIND_DECLARATIONS
from scrapejobs_exporter.kinds import Kind, Model, Report, kind_of
from scrapejobs_exporter.progress import Progress
from scrapejobs_exporter.providers.http import ApiError
from scrapejobs_exporter.statefile import TargetState

if TYPE_CHECKING:
    from scrapejobs_exporter.aggregates import Aggregates
    from scrapejobs_exporter.statefile import StateFile

__all__ = ["KINDS", "Model", "Report", "Store", "Target", "TargetKey"]

TargetKey = tuple[str, str, str]  # provider, kind, id

# (provider, kind) pairs, in the order they are shown and rendered.
KINDS: tuple[tuple[str, str], ...] = tuple(k.key for k in KIND_DECLARATIONS)
RUNNING = frozenset({"running", "processing"})

# What a target's own series are made of (`metrics.PER_TARGET`, and `kinds.Kind.labels` for the
# labels): writing a new value into one of these gives the target a new `version`, and the
# renderer makes the chunks holding it again (`exposition.PerTargetCache`). `last_success` only
# while not final: a final target shows none (`metrics._last_success`), and list rows re-stamp
# every finished target at every sweep.
RENDERED = frozenset(
    {"provider", "kind", "target_id", "collector", "model", "up", "last_success", "final"}
    | {"progress", "stalled", "eta", "report"}
)
LABELLED = frozenset({"target_id", "collector", "model"})  # the label string is made again
_VERSIONS = itertools.count(1)
_UNSET = object()


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
    complete: bool = False  # `model` holds a per-target poll's fields, not only a list row's
    up: bool | None = None  # None: not polled yet
    first_seen: float = 0.0
    last_success: float | None = None  # a poll or a list row: the age of the exported values
    last_poll: float | None = None
    last_detail: float | None = None  # the last successful per-target poll
    last_row: float | None = None  # the last list row: its status is as fresh as that
    counted: str | None = None  # the run (id, or "") seen finished: counted, or from before
    owed_detail: bool = False  # counted from a row; its detail still adds to a counter
    last_error: str | None = None
    last_error_reason: str | None = None
    last_error_status: int | None = None
    final: bool = False
    finished_at: float | None = None  # on our clock: when first seen finished (or expired)
    progress: Progress | None = None
    stalled: bool = False
    eta: float | None = None
    # The last status the state file knew, until this run observes the target: seen before a
    # restart, so a run of it seen finished now finished while the exporter was down.
    restored: str | None = None
    # The renderer's: its escaped label string (cleared when a `LABELLED` field changes), and
    # the version of what the target shows (see `RENDERED`).
    label_text: str | None = None
    version: int = 0
    # A finished target's report (`kinds.ReportRead`): None until read; whether its finish was
    # counted, so that the report adds to the aggregates (once); failed reads, and when to try
    # again.
    report: Report | None = None
    owed_report: bool = False
    report_tries: int = 0
    report_retry_at: float = 0.0

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in RENDERED:
            object.__setattr__(self, name, value)
            return
        old = getattr(self, name, _UNSET)
        # The value first, then the version: a render reads a chunk's versions before its
        # values, so it never keeps a chunk made from a value older than its version.
        object.__setattr__(self, name, value)
        if old is value or (name == "last_success" and getattr(self, "final", False)):
            return
        if name in LABELLED:
            object.__setattr__(self, "label_text", None)
        object.__setattr__(self, "version", next(_VERSIONS))

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
        # The state file, told of every change it keeps (None: nothing is persisted).
        self.journal: StateFile | None = None
        # Bumped when a target appears, changes status or is counted: /metrics is re-rendered
        # soon after (the count lag), not only on its timer.
        self.changes = 0

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
            self.changes += 1
            self.mark(target)
        elif (collector and not target.collector) or (static and not target.static):
            if collector and not target.collector:
                target.collector = _intern(collector)
            target.static = target.static or static
            self.mark(target)
        return target

    def remove(self, key: TargetKey) -> None:
        if self._targets.pop(key, None) is not None and self.journal is not None:
            self.journal.removed(key)

    def count_by_kind(self) -> dict[tuple[str, str], int]:
        counts = dict.fromkeys(KINDS, 0)
        # All in C (map, itemgetter, Counter): this runs in the render, 50,000 keys at a time.
        counts.update(Counter(map(_PROVIDER_KIND, self._targets)))
        return counts

    # --- transitions ---------------------------------------------------------------------------

    def observe(
        self,
        target: Target,
        model: Model,
        now: float,
        *,
        complete: bool,
        watermark: float | None = None,
        first_sweep: bool = False,
    ) -> None:
        """`_observe()`, and the state file told when what it keeps of the target changed."""
        if self.journal is None:
            self._observe(target, model, now, complete, watermark, first_sweep)
            return
        before = kept_values(target)
        self._observe(target, model, now, complete, watermark, first_sweep)
        if kept_values(target) != before:
            self.journal.changed(target.key)

    def _observe(
        self,
        target: Target,
        model: Model,
        now: float,
        complete: bool,
        watermark: float | None,
        first_sweep: bool,
    ) -> None:
        """Apply a per-target poll (`complete`) or a list row; count the target once when a run
        of it is seen finished, whichever shows it first.

        A run counts iff it finished after the exporter started watching: `watermark` is that
        start on the provider's clock (the newest time in the first sweep of the target's list,
        see `discovery.ListSource`), and a target seen finished in that first sweep
        (`first_sweep`), or at its very first poll, is from before unless its finish time says
        otherwise. So a restart or a reload never makes `increase()` jump, and a job is never
        counted twice (its row and its detail poll, or two overlapping reads).

        A target restored from the state file (`restored`) was watched before a restart: a run
        of it seen finished now, other than the one it counted, finished while the exporter was
        down, and counts.
        """
        kind = kind_of(target.provider, target.kind)
        previous = target.model
        known, target.restored = target.restored is not None and previous is None, None
        if previous is not None:
            same_run = kind.run_id(model) == kind.run_id(previous)
            if previous.terminal and not model.terminal and same_run:
                return  # read before it finished (a stale page or a slow answer): never back
            if not complete:
                # A row keeps what only the detail has (success rate, pages left, ...).
                model = _merge(previous, model)
            if model == previous:
                # The same values: the same object, so the target keeps its version and its
                # rendered chunks stay cached (most rows of a sweep change nothing).
                model = previous
        elif self.aggregates is not None:
            kind.ensure(self.aggregates, model, kind.collector_of(model) or target.collector or "")
        if previous is None or previous.status != model.status:
            self.changes += 1
        self.record_success(target, model, now)
        if complete:
            target.complete = True
            target.last_detail = now
        else:
            target.last_row = now
        self._track_progress(kind, target, model, now)
        if not model.terminal:
            target.final = False  # a re-run (an AI flow triggered again)
            return
        run = kind.run_id(model) or ""
        before = False  # finished before the exporter watched: its row is all there is to it
        if target.counted != run:
            first = previous is None and (complete or first_sweep)
            target.report, target.report_tries = None, 0  # a new run has its own report
            if known or _finished_since(kind, model, watermark, first):
                self._count(kind, target, model, now, complete)
            else:
                before = True
                target.owed_report = False
            target.counted = run
            target.finished_at = now
        elif complete and target.owed_detail:
            target.owed_detail = False
            if self.aggregates is not None and kind.count_detail is not None:
                kind.count_detail(self.aggregates, model, kind.collector(target))
        # Nothing more changes, unless a detail poll is still owed or it may run again.
        target.final = (
            target.final
            or complete
            or before
            or kind.final_detail == "none"
            or not kind.polled(target)
        )

    def _count(self, kind: Kind, target: Target, model: Model, now: float, complete: bool) -> None:
        if self.aggregates is not None:
            kind.count(self.aggregates, model, kind.collector(target), now)
        target.owed_detail = not complete and kind.count_detail is not None
        target.owed_report = kind.report is not None

    def count_late(self, target: Target, now: float) -> None:
        """Count a finished target first taken for finished before the exporter watched: the
        provider's clock, once its rate was measured, puts the finish after our start."""
        kind, model = kind_of(target.provider, target.kind), target.model
        if model is None or not model.terminal:
            return
        self._count(kind, target, model, now, target.complete)
        target.final = target.complete or kind.final_detail == "none" or not kind.polled(target)
        self.changes += 1
        if self.journal is not None:
            self.journal.changed(target.key)

    def observe_report(self, target: Target, report: Report) -> None:
        """A finished target's report: kept for its own series, and added to the aggregates
        once if its finish was counted. A second answer changes nothing."""
        if target.report is not None:
            return
        target.report = report
        self.changes += 1  # new series (and counts): worth a prompt re-render
        if not target.owed_report:
            return
        target.owed_report = False
        kind = kind_of(target.provider, target.kind)
        if self.aggregates is not None and kind.report is not None and target.model is not None:
            kind.report.count(self.aggregates, target.model, report, kind.collector(target))

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
        self.mark(target)

    def give_up_detail(self, target: Target) -> None:
        """A finished target's owed detail poll never got its turn: nothing more changes."""
        target.final = True
        target.owed_detail = False
        self.mark(target)

    def _track_progress(self, kind: Kind, target: Target, model: Model, now: float) -> None:
        if kind.work_left is None or model.status not in RUNNING:
            target.progress, target.stalled, target.eta = None, False, None
            return
        left = kind.work_left(model)
        if target.progress is None:
            target.progress = Progress.start(now, left)
        else:
            target.progress.update(now, left)
        progress = target.progress
        no_worker = (
            kind.no_worker(model) and now - progress.running_since >= self.stall.no_worker_after
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
        if self.journal is not None:
            self.journal.removed(target.key)

    def prune_forgotten(self, before: float) -> None:
        """Ids evicted before `before` have left the discovery window: stop remembering them."""
        for key in [k for k, at in self.forgotten.items() if at < before]:
            del self.forgotten[key]

    # --- the state file ------------------------------------------------------------------------

    def mark(self, target: Target) -> None:
        """What the state file keeps of the target changed: it is written at the next flush."""
        if self.journal is not None:
            self.journal.changed(target.key)

    def persisted(self, key: TargetKey) -> TargetState | None:
        """What the state file keeps of a target (None: no longer tracked)."""
        target = self._targets.get(key)
        if target is None:
            return None
        model = target.model
        return TargetState(
            target.provider, target.kind, target.target_id, target.collector, target.static,
            target.restored if model is None else model.status, target.counted,
            target.owed_detail, target.final, target.first_seen, target.finished_at,
            target.last_detail, target.progress,
        )  # fmt: skip

    def restore(self, states: Iterable[TargetState]) -> int:
        """Track the targets of a state file again, as they were at its last write; how many.

        A target the file knew unfinished takes its turn among the running ones (oldest values
        first) rather than as a new one: its list's first sweep is likely to bring its row."""
        restored = 0
        for state in states:
            target = self.add(state.provider, state.kind, state.target_id, state.collector,
                              static=state.static, now=state.first_seen)  # fmt: skip
            target.restored = state.status
            target.counted, target.owed_detail = state.counted, state.owed_detail
            target.final, target.finished_at = state.final, state.finished_at
            target.last_detail, target.progress = state.last_detail, state.progress
            if not (state.final or state.static) and state.status is not None:
                target.last_poll = state.last_detail or state.first_seen
            restored += 1
        return restored


def kept_values(target: Target) -> tuple[object, ...]:
    """The values of a target the state file keeps that change when it is observed (its times
    of last poll do not count: they are written along when something else changes)."""
    model, progress = target.model, target.progress
    history = None if progress is None else (progress.first_left, progress.last_left,
                                             progress.changed_at)  # fmt: skip
    return (None if model is None else model.status, target.counted, target.owed_detail,
            target.final, target.collector, history)  # fmt: skip


def _finished_before(target: Target, cutoff: float) -> bool:
    return target.final and target.finished_at is not None and target.finished_at < cutoff


def _finished_since(kind: Kind, model: Model, watermark: float | None, first: bool) -> bool:
    """Whether a run seen finished finished after the exporter started watching."""
    finished = kind.finished_at(model)
    if finished is not None and watermark is not None:
        return finished > watermark
    created = kind.created_at(model)
    if created is not None and watermark is not None and created > watermark:
        return True  # created after the exporter started watching: finished after, too
    # No time to compare: finished before, if it was finished when first seen.
    return not first


def _merge(previous: Any, row: Any) -> Any:
    """The row's values over the previous model's, where the row has them."""
    if type(previous) is not type(row):
        return row
    newer = {f.name: v for f in fields(row) if (v := getattr(row, f.name)) is not None}
    newer["invalid"] = row.invalid
    return replace(previous, **newer)


_PROVIDER_KIND = itemgetter(0, 1)


def _intern(value: str | None) -> str | None:
    return None if value is None else sys.intern(value)
