"""Finding targets through the providers' list endpoints.

Each cycle lists what the config asks for: Scraper Studio jobs per collector (every collector
with `collectors: all`), snapshots per dataset, the AI flows of inactive collectors with
`ai_flows: all`, and every Aitronos job with `discover: true`. List rows that already carry
what the metrics need (snapshots) are applied directly, so those targets are never polled one
by one; jobs found running are polled per job by the poller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from scrapejobs_exporter.config import Config
from scrapejobs_exporter.providers import Providers
from scrapejobs_exporter.providers.aitronos import AitronosClient, AitronosJob
from scrapejobs_exporter.providers.brightdata import BrightDataClient, Collector, Page, StudioJob
from scrapejobs_exporter.providers.http import ApiError
from scrapejobs_exporter.store import Model, Store

__all__ = ["Discovery", "Found"]

log = logging.getLogger(__name__)

JOBS_PAGE = 500  # the documented maximum of /dca/collector/jobs
SNAPSHOTS_PAGE = 5000  # the documented maximum of /datasets/v3/snapshots
AITRONOS_PAGE = 100  # the documented maximum of /scrape/jobs


@dataclass(frozen=True, slots=True)
class Found:
    """A list row: the target it names, and whether the row carries every metric's value."""

    provider: str
    kind: str
    target_id: str
    collector: str | None
    model: Model | None
    complete: bool


R = TypeVar("R")


class Discovery:
    def __init__(self, config: Config, store: Store, semaphore: asyncio.Semaphore) -> None:
        self.config = config
        self.store = store
        self._semaphore = semaphore
        self._failing: set[str] = set()

    @property
    def enabled(self) -> bool:
        bd, ait = self.config.brightdata, self.config.aitronos
        return bool(
            (bd and (bd.collectors or bd.datasets or bd.ai_flows == "all"))
            or (ait and ait.discover)
        )

    async def run(self, providers: Providers, now: float, full: bool) -> list[Found]:
        """Every list row found this cycle. A failing list is logged and skipped."""
        jobs: list[Awaitable[list[Found]]] = []
        bd, ait = self.config.brightdata, self.config.aitronos
        found: list[Found] = []
        if bd is not None and providers.brightdata is not None:
            client = providers.brightdata
            window = _window(now, self.config.discovery.lookback)
            collectors = await self._collectors(client, bd.collectors, bd.ai_flows)
            jobs += [self._studio_jobs(client, c, window, full) for c in collectors.studio]
            jobs += [self._snapshots(client, d, window[0]) for d in bd.datasets]
            found += [
                Found("brightdata", "ai_flow", c, c, None, False) for c in collectors.ai_flows
            ]
        if ait is not None and ait.discover and providers.aitronos is not None:
            jobs.append(self._aitronos_jobs(providers.aitronos, full))
        for batch in await asyncio.gather(*jobs):
            found += batch
        return found

    # --- sources ---------------------------------------------------------------------------

    async def _collectors(
        self, client: BrightDataClient, studio: list[str] | str, ai_flows: list[str] | str
    ) -> _Collectors:
        if studio != "all" and ai_flows != "all":
            return _Collectors(list(studio), [])
        listed = await self._guarded("collectors list", lambda: self._list_collectors(client))
        if listed is None:  # keep going with what the config names explicitly
            return _Collectors([] if studio == "all" else list(studio), [])
        ids = [c.collector_id for c in listed]
        return _Collectors(
            ids if studio == "all" else list(studio),
            [c.collector_id for c in listed if c.active is False] if ai_flows == "all" else [],
        )

    async def _list_collectors(self, client: BrightDataClient) -> list[Collector]:
        # Paging parameters are undocumented here: follow `total` with offsets, and stop when
        # a page brings nothing new (an API that ignores `offset` repeats its first page).
        collectors: dict[str, Collector] = {}
        while True:
            async with self._semaphore:
                page = await client.list_collectors(offset=len(collectors))
            before = len(collectors)
            collectors.update((c.collector_id, c) for c in page.items)
            if page.total is None or len(collectors) >= page.total or len(collectors) == before:
                return list(collectors.values())

    async def _studio_jobs(
        self, client: BrightDataClient, collector: str, window: tuple[str, str], full: bool
    ) -> list[Found]:
        async def fetch() -> list[Found]:
            found: list[Found] = []
            offset = 0
            while True:
                async with self._semaphore:
                    page: Page[StudioJob] = await client.list_collector_jobs(
                        collector, window[0], window[1], offset, JOBS_PAGE
                    )
                rows = [
                    Found("brightdata", "job", j.job_id, collector, j, False) for j in page.items
                ]
                found += rows
                offset += len(page.items)
                if _last_page(page, offset, JOBS_PAGE) or not (full or self._any_new(rows)):
                    return found

        return await self._guarded(f"jobs list of {collector}", fetch) or []

    async def _snapshots(
        self, client: BrightDataClient, dataset_id: str, from_date: str
    ) -> list[Found]:
        # Snapshot rows carry the status, which is all a snapshot's metrics need: every page is
        # read each cycle and no snapshot is polled on its own.
        async def fetch() -> list[Found]:
            found: list[Found] = []
            while True:
                async with self._semaphore:
                    page = await client.list_snapshots(
                        dataset_id, from_date, len(found), SNAPSHOTS_PAGE
                    )
                found += [
                    Found("brightdata", "snapshot", s.snapshot_id, None, s, True)
                    for s in page.items
                ]
                if len(page.items) < SNAPSHOTS_PAGE:
                    return found

        return await self._guarded(f"snapshots list of {dataset_id}", fetch) or []

    async def _aitronos_jobs(self, client: AitronosClient, full: bool) -> list[Found]:
        async def fetch() -> list[Found]:
            found: list[Found] = []
            offset = 0
            while True:
                async with self._semaphore:
                    page = await client.list_jobs(offset, AITRONOS_PAGE)
                rows = [Found("aitronos", "job", j.job_id, None, j, False) for j in page.items]
                found += rows
                offset += len(page.items)
                if _last_page(page, offset, AITRONOS_PAGE) or not (full or self._any_new(rows)):
                    return found

        return await self._guarded("Aitronos jobs list", fetch) or []

    # --- helpers ---------------------------------------------------------------------------

    def _any_new(self, rows: list[Found]) -> bool:
        return any(
            (f.provider, f.kind, f.target_id) not in self.store
            and (f.provider, f.kind, f.target_id) not in self.store.forgotten
            for f in rows
        )

    async def _guarded(self, what: str, fetch: Callable[[], Awaitable[R]]) -> R | None:
        try:
            result = await fetch()
        except ApiError as exc:
            if what not in self._failing:
                log.warning("discovery: %s failed: %s", what, exc.short)
            self._failing.add(what)
            return None
        if what in self._failing:
            log.info("discovery: %s works again", what)
            self._failing.discard(what)
        return result


@dataclass(frozen=True, slots=True)
class _Collectors:
    studio: list[str]
    ai_flows: list[str]


def _last_page(page: Page[StudioJob] | Page[AitronosJob], seen: int, size: int) -> bool:
    if not page.items:
        return True
    if page.total is not None:
        return seen >= page.total
    return len(page.items) < size


def _window(now: float, lookback: float) -> tuple[str, str]:
    """Whole UTC days from `lookback` ago through tomorrow (an end date may be exclusive)."""
    today = datetime.fromtimestamp(now, UTC).date()
    start = datetime.fromtimestamp(now - lookback, UTC).date()
    return start.isoformat(), (today + timedelta(days=1)).isoformat()
