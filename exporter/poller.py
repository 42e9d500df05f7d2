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

from exporter.providers.aitronos import AitronosClient
from exporter.providers.brightdata import BrightDataClient
from exporter.providers.http import ApiError
from exporter.state import Model, Store, Target
from exporter.telemetry import Telemetry

__all__ = ["CycleResult", "Poller", "Providers"]

log = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass(slots=True)
class Providers:
    brightdata: BrightDataClient | None = None
    aitronos: AitronosClient | None = None

    async def aclose(self) -> None:
        for client in (self.brightdata, self.aitronos):
            if client is not None:
                await client.http.aclose()


@dataclass(frozen=True, slots=True)
class CycleResult:
    polled: int
    failed: int
    duration: float


class Poller:
    def __init__(
        self,
        store: Store,
        providers: Providers,
        telemetry: Telemetry,
        *,
        interval: float,
        concurrency: int,
        clock: Clock = time.time,
        on_cycle: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.providers = providers
        self.telemetry = telemetry
        self.interval = interval
        self.clock = clock
        self.on_cycle = on_cycle
        self._semaphore = asyncio.Semaphore(concurrency)
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
        started = time.perf_counter()
        targets = list(self.store)
        results = await asyncio.gather(*(self._poll(t) for t in targets))
        duration = time.perf_counter() - started
        self.telemetry.poll_cycle_duration.observe((), duration)
        self.cycles += 1
        if self.on_cycle is not None:
            await self.on_cycle()
        self.ready.set()
        failed = results.count(False)
        log.debug("poll cycle: %d targets, %d failed, %.3fs", len(targets), failed, duration)
        return CycleResult(len(targets), failed, duration)

    async def _poll(self, target: Target) -> bool:
        async with self._semaphore:
            try:
                model = await self._fetch(target)
            except ApiError as exc:
                self._failed(target, exc)
                return False
        self._succeeded(target, model)
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
        Store.record_success(target, model, self.clock())

    def _failed(self, target: Target, error: ApiError) -> None:
        # Log when a target goes down or its error changes; repeats go to debug.
        changed = target.up is not False or target.last_error != error.short
        level = logging.WARNING if changed else logging.DEBUG
        log.log(level, "%s %s %s: %s", target.provider, target.kind, target.target_id, error.short)
        Store.record_failure(target, error, self.clock())
