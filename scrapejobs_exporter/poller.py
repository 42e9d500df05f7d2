"""The background collector: one scheduler per provider, and the store's upkeep.

Each provider's `ProviderScheduler` runs on its own (see `scheduler`); the poller starts and
stops them, says when the exporter is ready (each provider's first list sweep is in), and runs
whole rounds on demand (`run_cycle()`, for `once` and tests). Time comes from an injectable clock
and sleep, so tests never sleep.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, InitVar, dataclass, field

from scrapejobs_exporter.aggregates import Aggregates
from scrapejobs_exporter.config import Config
from scrapejobs_exporter.discovery import Discovery
from scrapejobs_exporter.providers import Providers
from scrapejobs_exporter.scheduler import ProviderScheduler, Sleep
from scrapejobs_exporter.sharding import Shard
from scrapejobs_exporter.store import Store
from scrapejobs_exporter.telemetry import Telemetry

__all__ = ["PROVIDERS", "CycleResult", "Poller", "Providers"]

log = logging.getLogger(__name__)

Clock = Callable[[], float]
DAY = 86400.0
PROVIDERS = ("brightdata", "aitronos")


@dataclass(frozen=True, slots=True)
class CycleResult:
    polled: int
    failed: int
    duration: float


@dataclass(eq=False, repr=False)
class Poller:
    """Both providers' schedulers over one store, with discovery and expiry."""

    config: Config
    store: Store
    providers: Providers
    telemetry: Telemetry
    aggregates: Aggregates
    _: KW_ONLY
    clock: Clock = time.time
    sleep: InitVar[Sleep] = asyncio.sleep  # the schedulers'
    on_cycle: Callable[[], Awaitable[None]] | None = None
    shard: Shard = field(default_factory=Shard)
    started: InitVar[float | None] = None  # when watching began, if before now (`Discovery`)
    discovery: Discovery = field(init=False)
    schedulers: dict[str, ProviderScheduler] = field(init=False)

    def __post_init__(self, sleep: Sleep, started: float | None) -> None:
        self.discovery = Discovery(self.config, self.store, self.shard, self.clock, started)
        self.schedulers = {
            p: ProviderScheduler(
                p, self.config, self.store, self.providers, self.discovery, self.telemetry,
                clock=self.clock, sleep=sleep, shard=self.shard,
            )
            for p in PROVIDERS
        }  # fmt: skip

    def configure(self, config: Config, shard: Shard | None = None) -> None:
        """A reloaded config (or another shard): every part sees it; lists are kept."""
        self.config = self.discovery.config = config
        if shard is not None:
            self.shard = self.discovery.shard = shard
        for scheduler in self.schedulers.values():
            scheduler.config = config
            if shard is not None:
                scheduler.shard = shard
        self.discovery.refresh()
        for scheduler in self.schedulers.values():
            scheduler.wake()

    @property
    def interval(self) -> float:
        return self.config.poll_interval

    @property
    def ready(self) -> bool:
        """Each provider's first list sweep is in (a provider without lists: each target of
        it was tried once)."""
        return all(s.ready.is_set() for p, s in self.schedulers.items() if getattr(self.config, p))

    def set_static(self, keys: frozenset[tuple[str, str, str]]) -> None:
        for scheduler in self.schedulers.values():
            scheduler.static_keys = keys

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        for provider, scheduler in self.schedulers.items():
            if getattr(self.config, provider) is not None:
                scheduler.start()

    async def stop(self) -> None:
        """Stop every scheduler; requests in flight are cancelled, their connections closed."""
        for scheduler in self.schedulers.values():
            await scheduler.stop()

    # --- upkeep ------------------------------------------------------------------------------

    def expire(self) -> None:
        now = self.clock()
        retention = self.config.retention
        for target in self.store.expire(now, retention.finished_ttl, retention.max_tracked):
            self.aggregates.evicted.labels(target.provider, target.kind).inc()
        self.store.prune_forgotten(
            now - self.config.discovery.lookback - retention.finished_ttl - DAY
        )

    # --- a whole round -----------------------------------------------------------------------

    async def run_cycle(self) -> CycleResult:
        """Sweep every list and poll every target that can still change, each provider on its
        own, then expire what is old and re-render."""
        started = time.perf_counter()
        active = [s for p, s in self.schedulers.items() if getattr(self.config, p) is not None]
        counts = await asyncio.gather(*(s.cycle() for s in active))
        self.expire()
        duration = time.perf_counter() - started
        if self.on_cycle is not None:
            await self.on_cycle()
        polled, failed = sum(c[0] for c in counts), sum(c[1] for c in counts)
        log.debug("poll cycle: %d targets, %d failed, %.3fs", polled, failed, duration)
        return CycleResult(polled, failed, duration)
