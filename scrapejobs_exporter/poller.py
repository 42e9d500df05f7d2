"""The background collector loop: polls every target, keeps the store current.

A cycle polls all targets concurrently (bounded by `concurrency`), then calls `on_cycle` (which
re-renders the exposition). Time comes from an injectable clock, and `run_cycle()` can be driven
directly, so tests never sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from scrapejobs_exporter.aggregates import Aggregates
from scrapejobs_exporter.config import Config
from scrapejobs_exporter.discovery import Discovery, Found
from scrapejobs_exporter.providers import Providers
from scrapejobs_exporter.providers.http import ApiError
from scrapejobs_exporter.sharding import Shard
from scrapejobs_exporter.store import Model, Store, Target
from scrapejobs_exporter.telemetry import Telemetry

__all__ = ["CycleResult", "Poller", "Providers"]

log = logging.getLogger(__name__)

Clock = Callable[[], float]
DAY = 86400.0


@dataclass(frozen=True, slots=True)
class CycleResult:
    polled: int
    failed: int
    duration: float


class Poller:
    def __init__(
        self,
        config: Config,
        store: Store,
        providers: Providers,
        telemetry: Telemetry,
        aggregates: Aggregates,
        *,
        clock: Clock = time.time,
        on_cycle: Callable[[], Awaitable[None]] | None = None,
        shard: Shard | None = None,
    ) -> None:
        self.config = config
        self.shard = shard or Shard()
        self.store = store
        self.providers = providers
        self.telemetry = telemetry
        self.aggregates = aggregates
        self.interval = config.poll_interval
        self.clock = clock
        self.on_cycle = on_cycle
        self._semaphore = asyncio.Semaphore(config.concurrency)
        self.discovery = Discovery(config, store, self._semaphore)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.cycles = 0
        self.ready = asyncio.Event()  # set once the first cycle has finished

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._loop(), name="poller")

    async def stop(self) -> None:
        """Stop scheduling cycles; a cycle in flight is cancelled, in-flight requests closed."""
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                await self.run_cycle()
            except Exception:  # a bug in one cycle must not end the exporter's polling
                log.exception("poll cycle failed unexpectedly")
            delay = max(0.0, self.interval - (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)

    # --- one cycle ---------------------------------------------------------------------------

    async def run_cycle(self) -> CycleResult:
        """Discover, poll what can still change, expire what is old, re-render."""
        started = time.perf_counter()
        now = self.clock()
        if self.discovery.enabled:
            full = self.cycles % self.config.discovery.full_scan_every == 0
            self._apply_rows(await self.discovery.run(self.providers, now, full), now)
        targets = [t for t in self.store if _needs_poll(t)]
        results = await self._poll_all(targets)
        self._expire(self.clock())
        duration = time.perf_counter() - started
        self.telemetry.poll_cycle_duration.observe((), duration)
        self.cycles += 1
        if self.on_cycle is not None:
            await self.on_cycle()
        self.ready.set()
        failed = results.count(False)
        log.debug("poll cycle: %d targets, %d failed, %.3fs", len(targets), failed, duration)
        return CycleResult(len(targets), failed, duration)

    @property
    def counting(self) -> bool:
        """Finished targets count from the second cycle on: the first one sees the past."""
        return self.cycles > 0

    def _apply_rows(self, rows: list[Found], now: float) -> None:
        store = self.store
        for row in rows:
            key = (row.provider, row.kind, row.target_id)
            if key in store.forgotten or not self.shard.owns(row.target_id):
                continue
            target = store.add(*key, row.collector, static=False, now=now)
            if row.model is not None:
                # At start-up a finished row is taken as final (not counted, never polled).
                complete = row.complete or (not self.counting and row.model.terminal)
                try:
                    store.observe(target, row.model, now, complete=complete, count=self.counting)
                except Exception:  # a bug with one row must not cost the others their cycle
                    log.exception("%s %s %s: applying a list row failed", *key)

    def _expire(self, now: float) -> None:
        retention = self.config.retention
        for target in self.store.expire(now, retention.finished_ttl, retention.max_tracked):
            self.aggregates.evicted.inc((target.provider, target.kind))
        self.store.prune_forgotten(
            now - self.config.discovery.lookback - retention.finished_ttl - DAY
        )

    async def _poll_all(self, targets: list[Target]) -> list[bool]:
        """`concurrency` workers take the targets in turn. (A task per target, each waiting on
        the semaphore, costs thousands of tasks per cycle at scale, all made at once.)"""
        results: list[bool] = []
        queue = iter(targets)

        async def worker() -> None:
            for target in queue:  # shared: each worker takes the next target
                results.append(await self._poll(target))

        workers = min(self.config.concurrency, len(targets))
        await asyncio.gather(*(worker() for _ in range(workers)))
        return results

    async def _poll(self, target: Target) -> bool:
        async with self._semaphore:
            try:
                model = await self._fetch(target)
            except ApiError as exc:
                self._failed(target, exc)
                return False
        try:
            self._succeeded(target, model)
        except Exception:  # a bug with one target's reply must not cost the others their cycle
            log.exception("%s %s %s: applying a reply failed", *target.key)
            return False
        return True

    async def _fetch(self, target: Target) -> Model:
        bd, ait = self.providers.brightdata, self.providers.aitronos
        match (target.provider, target.kind):
            case ("brightdata", "job") if bd:
                return await bd.job_log(target.target_id, target.collector)
            case ("brightdata", "snapshot") if bd:
                return await bd.snapshot_progress(target.target_id)
            case ("brightdata", "ai_flow") if bd:
                return await bd.ai_flow_progress(target.target_id)
            case ("aitronos", "job") if ait:
                return await ait.job_progress(target.target_id)
        raise RuntimeError(f"no client for {target.provider} {target.kind}")

    def _succeeded(self, target: Target, model: Model) -> None:
        if target.up is False:
            log.info("%s %s %s: recovered", target.provider, target.kind, target.target_id)
        if model.status == "unknown":
            self.telemetry.unknown_status.inc((target.provider, target.kind))
            previous = getattr(target.model, "raw_status", None)
            if previous != model.raw_status or target.model is None:
                log.warning(
                    "%s %s %s: status %r is not one we know; exported as unknown",
                    target.provider,
                    target.kind,
                    target.target_id,
                    model.raw_status,
                )
        if model.invalid:
            log.debug(
                "%s %s %s: ignored fields with unexpected types: %s",
                target.provider,
                target.kind,
                target.target_id,
                ", ".join(model.invalid),
            )
        # A static target already finished at its first poll happened before we watched it.
        count = self.counting and not (target.static and target.model is None)
        self.store.observe(target, model, self.clock(), complete=True, count=count)

    def _failed(self, target: Target, error: ApiError) -> None:
        # Log when a target goes down or the kind of its error changes; repeats go to debug
        # (a pause's message names the seconds left, which change on every refusal).
        changed = target.up is not False or (
            target.last_error_reason,
            target.last_error_status,
        ) != (
            error.reason,
            error.status,
        )
        level = logging.WARNING if changed else logging.DEBUG
        log.log(level, "%s %s %s: %s", target.provider, target.kind, target.target_id, error.short)
        now = self.clock()
        Store.record_failure(target, error, now)
        if error.status == 404 and target.model is not None:
            # The provider forgot a job it showed us before: it expired (16 days for Studio).
            log.info("%s %s %s: expired at the provider; no longer polled",
                     target.provider, target.kind, target.target_id)  # fmt: skip
            self.store.expire_target(target, now)


def _needs_poll(target: Target) -> bool:
    """Final targets never change; discovered snapshots are kept current by their list rows."""
    return not target.final and (target.static or target.kind != "snapshot")
