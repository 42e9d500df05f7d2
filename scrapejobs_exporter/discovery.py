"""Finding targets through the providers' list endpoints, one `ListSource` per list call.

The sources: the collectors list (with `collectors: all` or `ai_flows: all`), the Scraper
Studio jobs of each collector, the snapshots of each dataset and the Aitronos jobs list. Their
rows are data: a row that shows a job finished counts it at once (see `Store.observe`), and
snapshot rows carry all a snapshot's metrics, so those are never polled one by one.

Shards share one account, so each list call is made by exactly one shard: a collector's jobs
and AI flow belong to the shard owning the collector id, a dataset's snapshots to the one owning
the dataset id, and the single Aitronos jobs list (and so every discovered Aitronos job) to
shard 0. Only the collectors list is read by every shard, at a low rate, since each must learn
which collectors exist.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from scrapejobs_exporter.config import Config
from scrapejobs_exporter.provider_clock import MAX_RATE, ProviderClock, start_of_watching
from scrapejobs_exporter.providers import Providers
from scrapejobs_exporter.providers.aitronos import AitronosClient, AitronosJob
from scrapejobs_exporter.providers.brightdata import BrightDataClient, Collector, Page, StudioJob
from scrapejobs_exporter.providers.http import ApiError
from scrapejobs_exporter.sharding import Shard
from scrapejobs_exporter.store import Model, Store, TargetKey

__all__ = ["Discovery", "Found", "ListSource", "owns_static", "watermark_key"]

log = logging.getLogger(__name__)

JOBS_PAGE = 500  # the documented maximum of /dca/collector/jobs
SNAPSHOTS_PAGE = 5000  # the documented maximum of /datasets/v3/snapshots
AITRONOS_PAGE = 100  # the documented maximum of /scrape/jobs
AITRONOS_RUNNING = ("processing", "pending")  # the statuses of jobs still to finish
COLLECTORS_EVERY = 300.0  # seconds between reads of the collectors list: collectors rarely change
AITRONOS_SHARD = 0  # the shard that reads the Aitronos jobs list and owns what it finds
_TIMES = ("created", "started", "finished", "completed")


@dataclass(frozen=True, slots=True)
class Found:
    """A list row: the target it names, and whether the row carries every metric's value."""

    provider: str
    kind: str
    target_id: str
    collector: str | None
    model: Model | None
    complete: bool


@dataclass(slots=True, eq=False)
class ListSource:
    """One list call (all its pages): what it reads, when it is due, what its first sweep saw.

    `watermark` is the moment the exporter started watching this list (`added`, our clock),
    on the provider's clock (which may differ from ours: the simulator's runs faster), estimated
    from the first sweep: see `start_of_watching`. A job finished after it finished after we
    started watching. After a restart with a state file it is the file's `newest` instead: the
    list was watched until then. `newest` is the newest provider timestamp of every sweep so far.
    """

    provider: str
    what: str  # collectors | jobs | snapshots | aitronos
    arg: str = ""
    next_due: float = 0.0
    sweeps: int = 0  # completed (or failed) sweeps; 0: the first is still to come
    pages: int = 1  # calls the last sweep made
    usual_pages: int = 1  # calls the last sweep that was not a full scan made
    watermark: float | None = None
    added: float = 0.0  # when the exporter started watching this list, on our clock
    newest: float | None = None
    # A first read placed with the provider's clock taken to run at our rate, until its rate
    # is measured (`provider_clock`): finishes after `undecided_after` and up to the
    # watermark may be after our start after all, and `held` are the rows of them.
    undecided_after: float | None = None
    held: list[TargetKey] = field(default_factory=list)
    failing: bool = False
    error: ApiError | None = None  # why the last sweep failed
    seen: set[str] = field(default_factory=set)  # ids seen by the sweep in progress

    @property
    def key(self) -> str:
        return f"{self.what}:{self.arg}" if self.arg else self.what

    def __str__(self) -> str:
        return {
            "collectors": "collectors list",
            "jobs": f"jobs list of {self.arg}",
            "snapshots": f"snapshots list of {self.arg}",
            "aitronos": "Aitronos jobs list",
        }[self.what]


R = TypeVar("R")
JobsPage = Page[StudioJob] | Page[AitronosJob]


def owns_static(config: Config, shard: Shard, provider: str, target_id: str) -> bool:
    """Whether this shard watches a target named in the config: the shard owning its id, but
    every Aitronos job belongs to the shard reading the Aitronos jobs list when `discover` is on
    (that shard then has the whole Aitronos budget)."""
    if provider == "aitronos" and config.aitronos is not None and config.aitronos.discover:
        return shard.index == AITRONOS_SHARD
    return shard.owns(target_id)


class Discovery:
    """The list sources of this shard, and reading them."""

    def __init__(
        self,
        config: Config,
        store: Store,
        shard: Shard | None = None,
        clock: Callable[[], float] = time.time,
        started: float | None = None,
    ) -> None:
        """`started`: when watching the configured lists began, if before now."""
        self.config = config
        self.store = store
        self.shard = shard or Shard()
        self.clock = clock
        self._sources: dict[str, ListSource] = {}
        self._listed_collectors: list[Collector] | None = None
        # Per list (`watermark_key`), the state file's `newest`: where a restart takes over.
        self.restored_watermarks: dict[str, float] = {}
        self.clocks = {"brightdata": ProviderClock(), "aitronos": ProviderClock()}
        self._started = started
        self.refresh()
        self._started = None  # lists added later are watched from when they are added

    @property
    def enabled(self) -> bool:
        return bool(self._sources)

    def sources(self, provider: str) -> list[ListSource]:
        return [s for s in self._sources.values() if s.provider == provider]

    def refresh(self) -> None:
        """Bring the sources in line with the config (and the collectors list): new ones are
        added (their first sweep is a baseline), gone ones dropped, the others kept."""
        wanted: list[ListSource] = []
        bd, ait = self.config.brightdata, self.config.aitronos
        if bd is not None:
            if bd.collectors == "all" or bd.ai_flows == "all":
                wanted.append(ListSource("brightdata", "collectors"))
            if bd.collectors == "all":
                studio = [c.collector_id for c in self._listed_collectors or []]
            else:
                studio = list(bd.collectors)
            wanted += [ListSource("brightdata", "jobs", c) for c in studio if self.shard.owns(c)]
            wanted += [
                ListSource("brightdata", "snapshots", d) for d in bd.datasets if self.shard.owns(d)
            ]
        if ait is not None and ait.discover and self.shard.index == AITRONOS_SHARD:
            wanted.append(ListSource("aitronos", "aitronos"))
        now = self.clock() if self._started is None else min(self.clock(), self._started)
        # A jobs list found in the collectors list was watched from when that list was: a job
        # that finished while the collectors list was read first counts.
        listing = self._sources.get("collectors")
        for source in wanted:
            found = source.what == "jobs" and bd is not None and bd.collectors == "all"
            source.added = listing.added if found and listing is not None else now
            if source.key not in self._sources:
                source.watermark = self.restored_watermarks.get(watermark_key(source))
        self._sources = {s.key: self._sources.get(s.key, s) for s in wanted}

    def restore_watermarks(self, marks: dict[str, float]) -> None:
        """Lists watched before a restart (their `newest` from the state file): what finished
        after it finished while the exporter was down, and counts."""
        self.restored_watermarks = dict(marks)
        for source in self._sources.values():
            if source.sweeps == 0 and source.watermark is None:
                source.watermark = marks.get(watermark_key(source))

    def watermarks(self) -> dict[str, float]:
        """Per list, the newest provider time its rows showed so far (for the state file)."""
        marks = dict(self.restored_watermarks)
        for source in self._sources.values():
            mark = source.newest if source.newest is not None else source.watermark
            if mark is not None:
                marks[watermark_key(source)] = mark
        return marks

    def ai_flows(self) -> list[Found]:
        """With `ai_flows: all`, the AI flows of this shard's inactive collectors."""
        bd = self.config.brightdata
        if bd is None or bd.ai_flows != "all" or self._listed_collectors is None:
            return []
        return [
            Found("brightdata", "ai_flow", c.collector_id, c.collector_id, None, False)
            for c in self._listed_collectors
            if c.active is False and self.shard.owns(c.collector_id)
        ]

    async def read(self, source: ListSource, providers: Providers, now: float) -> list[Found]:
        """Every row of one source (raises ApiError). A first sweep and every
        `full_scan_every`-th read all pages; the others stop once a page brings nothing new
        and every job still running from this source was seen again."""
        full = source.sweeps % self.config.discovery.full_scan_every == 0
        pending = self._unfinished(source)
        source.seen = set()
        if source.what == "collectors":
            assert providers.brightdata is not None
            self._listed_collectors = await self._list_collectors(providers.brightdata, source)
            self.refresh()
            return self.ai_flows()
        if source.what == "jobs":
            assert providers.brightdata is not None
            rows = await self._studio_jobs(providers.brightdata, source, now, full, pending)
        elif source.what == "snapshots":
            assert providers.brightdata is not None
            rows = await self._snapshots(providers.brightdata, source, now)
        else:
            assert providers.aitronos is not None
            rows = await self._aitronos_jobs(providers.aitronos, source, full, pending)
        newest = _newest(rows)
        clock = self.clocks[source.provider]
        if newest is not None:
            clock.observe(now, newest)
        # The first read that works (the first ones may fail: a provider down at our start),
        # unless the state file said where watching this list stopped.
        if source.watermark is None:
            self._place(source, newest, now)
        if newest is not None and (source.newest is None or newest > source.newest):
            source.newest = newest
        if not full or self.config.discovery.full_scan_every == 1:
            source.usual_pages = source.pages  # a first sweep reads all the history
        return rows

    def _place(self, source: ListSource, newest: float | None, now: float) -> None:
        """Set where watching `source` began on the provider's clock, at its first read."""
        clock = self.clocks[source.provider]
        source.watermark = clock.start(source.added)
        if source.watermark is not None:
            return
        source.watermark = start_of_watching(newest, source.added, now, clock.rate or 1.0)
        if clock.rate is None and source.watermark is not None and clock.start_up(source.added):
            assert newest is not None
            source.undecided_after = newest - MAX_RATE * max(0.0, now - source.added)

    def settle(self, provider: str) -> list[tuple[float, list[TargetKey]]]:
        """Once the provider's clock rate is measured: the start-up lists placed without it get
        their start, and the rows they held with it, to count those that finished after it."""
        clock = self.clocks[provider]
        settled: list[tuple[float, list[TargetKey]]] = []
        for source in self.sources(provider):
            if source.undecided_after is None:
                continue
            start = clock.start(source.added)
            if start is None:
                continue
            settled.append((start, source.held))
            source.watermark, source.undecided_after, source.held = start, None, []
        return settled

    def _unfinished(self, source: ListSource) -> set[str]:
        if source.what == "jobs":
            return {
                t.target_id
                for t in self.store
                if t.provider == "brightdata" and t.kind == "job" and not t.terminal
                and not t.final and t.collector == source.arg and not t.static
            }  # fmt: skip
        if source.what == "aitronos":
            return {
                t.target_id
                for t in self.store
                if t.provider == "aitronos" and not t.terminal and not t.final and not t.static
            }
        return set()

    # --- sources ---------------------------------------------------------------------------

    async def _list_collectors(
        self, client: BrightDataClient, source: ListSource
    ) -> list[Collector]:
        # Paging parameters are undocumented here: follow `total` with offsets, and stop when
        # a page brings nothing new (an API that ignores `offset` repeats its first page).
        collectors: dict[str, Collector] = {}
        source.pages = 0
        while True:
            page = await client.list_collectors(offset=len(collectors))
            source.pages += 1
            before = len(collectors)
            collectors.update((c.collector_id, c) for c in page.items)
            if page.total is None or len(collectors) >= page.total or len(collectors) == before:
                return list(collectors.values())

    async def _studio_jobs(
        self,
        client: BrightDataClient,
        source: ListSource,
        now: float,
        full: bool,
        pending: set[str],
    ) -> list[Found]:
        """The pages of a collector's jobs (newest first), as far as they are needed."""
        window = _window(now, self.config.discovery.lookback)

        async def page(offset: int) -> JobsPage:
            return await client.list_collector_jobs(
                source.arg, window[0], window[1], offset, JOBS_PAGE
            )

        found: dict[str, Found] = {}
        source.pages = 0
        await self._pages(
            source,
            page,
            JOBS_PAGE,
            found,
            lambda rows: not (full or pending - found.keys() or self._any_new(rows)),
        )
        return list(found.values())

    async def _pages(
        self,
        source: ListSource,
        read_page: Callable[[int], Awaitable[JobsPage]],
        size: int,
        found: dict[str, Found],
        stop: Callable[[list[Found]], bool],
        offset: int = 0,
    ) -> int:
        """Read a jobs list's pages from `offset` into `found` (rows not in it yet) until its
        last page or until `stop(those rows)`; the offset to go on from, or -1 at the end."""
        collector = source.arg or None
        while True:
            page = await read_page(offset)
            source.pages += 1
            rows = [
                Found(source.provider, "job", j.job_id, collector, j, False)
                for j in page.items
                if j.job_id not in found
            ]
            found.update((r.target_id, r) for r in rows)
            offset += len(page.items)
            if _last_page(page, offset, size):
                return -1
            if stop(rows):
                return offset

    async def _snapshots(
        self, client: BrightDataClient, source: ListSource, now: float
    ) -> list[Found]:
        # Snapshot rows carry the status, which is all a snapshot's metrics need: every page is
        # read each time and no discovered snapshot is polled on its own.
        from_date = _window(now, self.config.discovery.lookback)[0]
        found: list[Found] = []
        source.pages = 0
        while True:
            page = await client.list_snapshots(source.arg, from_date, len(found), SNAPSHOTS_PAGE)
            source.pages += 1
            found += [
                Found("brightdata", "snapshot", s.snapshot_id, None, s, True) for s in page.items
            ]
            if len(page.items) < SNAPSHOTS_PAGE:
                return found

    async def _aitronos_jobs(
        self, client: AitronosClient, source: ListSource, full: bool, pending: set[str]
    ) -> list[Found]:
        """The Aitronos jobs list has no date filter: all of an account's history, newest
        first. Reading down to every running job would read ever deeper pages as long runs
        age (and the whole history in a first sweep), so the newest pages are read until they
        bring nothing new, and running jobs further down come from the list filtered by status
        (a page or two: only the running ones). A full sweep reads the newest page and both
        filtered lists; the others read the filtered lists only when a job known running was
        not on the newest pages. A job known running that is on none of them has finished
        further down: the newest pages are read on until it shows (once: then it is known
        finished), and if it never does, its own poll is due at once."""
        found: dict[str, Found] = {}
        source.pages = 0

        def by(status: str | None) -> Callable[[int], Awaitable[JobsPage]]:
            return lambda offset: client.list_jobs(offset, AITRONOS_PAGE, status)

        def missing() -> set[str]:
            return pending - found.keys()

        newest_end = await self._pages(
            source, by(None), AITRONOS_PAGE, found, lambda rows: full or not self._any_new(rows)
        )
        for status in AITRONOS_RUNNING:
            if full or missing():
                await self._pages(source, by(status), AITRONOS_PAGE, found, lambda rows: False)
        if missing() and newest_end >= 0:
            await self._pages(
                source, by(None), AITRONOS_PAGE, found, lambda rows: not missing(), newest_end
            )
        for job_id in missing():
            target = self.store.get(("aitronos", "job", job_id))
            if target is not None:
                target.last_row = None  # gone from the list: its own poll is due now
        return list(found.values())

    # --- helpers ---------------------------------------------------------------------------

    def _any_new(self, rows: list[Found]) -> bool:
        return any(
            (f.provider, f.kind, f.target_id) not in self.store
            and (f.provider, f.kind, f.target_id) not in self.store.forgotten
            for f in rows
        )

    async def guarded(self, source: ListSource, fetch: Callable[[], Awaitable[R]]) -> R | None:
        """A failing list is logged once, when it starts failing, and skipped."""
        try:
            result = await fetch()
        except ApiError as exc:
            if not source.failing:
                log.warning("discovery: %s failed: %s", source, exc.short)
            source.failing, source.error = True, exc
            return None
        if source.failing:
            log.info("discovery: %s works again", source)
            source.failing, source.error = False, None
        return result


def watermark_key(source: ListSource) -> str:
    return f"{source.provider}:{source.key}"


def _newest(rows: list[Found]) -> float | None:
    """The newest provider timestamp among the rows (None: the rows carry no times)."""
    times: list[float] = [
        t
        for row in rows
        for name in _TIMES
        if isinstance(t := getattr(row.model, name, None), float)
    ]
    return max(times, default=None)


def _last_page(page: JobsPage, seen: int, size: int) -> bool:
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
