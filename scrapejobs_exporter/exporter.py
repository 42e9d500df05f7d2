"""Wires a validated config into clients, the store, the poller and the exposition cache."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from scrapejobs_exporter.aggregates import Aggregates
from scrapejobs_exporter.config import Config
from scrapejobs_exporter.discovery import owns_static
from scrapejobs_exporter.exposition import Exposition, FamilyCache, PerTargetCache
from scrapejobs_exporter.kinds import AI_FLOW, KINDS
from scrapejobs_exporter.lifecycle import SHUTDOWN_GRACE, bounded
from scrapejobs_exporter.metrics import StateFileCollector, TrackedCollector, register_build_info
from scrapejobs_exporter.poller import PROVIDERS, Clock, Poller
from scrapejobs_exporter.providers import Providers
from scrapejobs_exporter.providers.aitronos import AitronosClient, auth_headers
from scrapejobs_exporter.providers.brightdata import BrightDataClient
from scrapejobs_exporter.providers.http import HttpClient
from scrapejobs_exporter.render_scheduling import ServeFirst
from scrapejobs_exporter.resilience import DEFAULT_POLICY, Policy, ProviderGate
from scrapejobs_exporter.scheduler import Sleep
from scrapejobs_exporter.sharding import Shard
from scrapejobs_exporter.statefile import Flusher, Restored, StateFile, open_state_file
from scrapejobs_exporter.store import Store, TargetKey
from scrapejobs_exporter.telemetry import Telemetry

__all__ = ["Exporter", "build_providers"]

log = logging.getLogger(__name__)

BREAKER_PROBE_CAP = 120.0  # seconds: after an outage, targets are back within two minutes
RENDER_EVERY = 15.0  # seconds at most between renders of /metrics (and poll_interval / 2)
READY_CHECK = 0.2  # seconds between looks at readiness, until the first render after it
# After a change in the store (a job counted, a status changed, a new target), /metrics is
# re-rendered within CHANGE_CHECK seconds, but no sooner than RENDER_GAP renders' worth of
# time after the last render: counters follow the list rows in seconds ("Count lag" rows of the
# budget-bound bench) while a 50,000-job render stays a small share of a core.
CHANGE_CHECK = 1.0
RENDER_GAP = 5.0  # in multiples of the last render's duration, and at least CHANGE_CHECK
RETIRE_GRACE = 30.0  # seconds a replaced client keeps serving the requests it has in flight
# The state file's named values: per list, where a restart takes over; the shard it belongs to.
WATERMARK = "watermark:"
SHARD_INDEX, SHARD_COUNT = "shard_index", "shard_count"


def build_providers(
    config: Config,
    telemetry: Telemetry,
    transport: httpx.AsyncBaseTransport | None = None,
    *,
    shard: Shard | None = None,
    clock: Clock | None = None,
    sleep: Sleep = asyncio.sleep,
) -> Providers:
    bd = _client(config, "brightdata", telemetry, transport, shard, clock, sleep)
    ait = _client(config, "aitronos", telemetry, transport, shard, clock, sleep)
    assert not isinstance(bd, AitronosClient) and not isinstance(ait, BrightDataClient)
    return Providers(brightdata=bd, aitronos=ait)


def _budget(config: Config, provider: str, shard: Shard) -> tuple[int, int | None]:
    """This shard's requests per minute and per day: the account's budget split evenly
    between the shards that share it, unless the config sets the shard's own."""
    section = getattr(config, provider)
    # With Aitronos discovery, one shard watches every Aitronos job: it has the whole budget.
    count = 1 if provider == "aitronos" and section.discover else shard.count
    per_minute = section.shard_max_requests_per_minute or max(
        1, section.max_requests_per_minute // count
    )
    per_day = section.shard_max_requests_per_day
    if per_day is None and section.max_requests_per_day is not None:
        per_day = max(1, section.max_requests_per_day // count)
    return per_minute, per_day


def policy_for(config: Config) -> Policy:
    """After an outage, a probe goes out at most once per poll_interval and at least every
    two minutes, so targets are back within one probe of the provider answering again."""
    first = min(config.poll_interval, BREAKER_PROBE_CAP)
    return replace(DEFAULT_POLICY, breaker_open=first, breaker_open_cap=BREAKER_PROBE_CAP)


def _client(
    config: Config,
    provider: str,
    telemetry: Telemetry,
    transport: httpx.AsyncBaseTransport | None,
    shard: Shard | None,
    clock: Clock | None,
    sleep: Sleep,
    gate: ProviderGate | None = None,
) -> BrightDataClient | AitronosClient | None:
    section = getattr(config, provider)
    if section is None:
        return None
    per_minute, per_day = _budget(config, provider, shard or Shard())
    if gate is None:
        gate = ProviderGate(
            provider, per_minute, telemetry, policy_for(config), per_day=per_day,
            clock=clock or time.monotonic, sleep=sleep,
        )  # fmt: skip
    if provider == "brightdata":
        headers = {"Authorization": f"Bearer {section.token()}"}
    else:
        headers = auth_headers(section.auth_header, section.key())
    http = HttpClient(
        gate,
        section.base_url,
        headers,
        config.request_timeout,
        max_connections=config.concurrency,
        max_body_bytes=config.max_response_bytes,
        transport=transport,
        proxy=section.proxy_url,
    )
    if provider == "brightdata":
        return BrightDataClient(http)
    return AitronosClient(http, section.path_prefix)


def _static_targets(config: Config) -> Iterator[tuple[str, str, str, str | None]]:
    """(provider, kind, id, collector) of every target the config names."""
    for kind in KINDS:
        for target_id in kind.static_ids(config):
            # An AI flow is named by its collector.
            yield kind.provider, kind.name, target_id, target_id if kind is AI_FLOW else None


def _add_static_targets(store: Store, config: Config, shard: Shard) -> None:
    for provider, kind, target_id, collector in _static_targets(config):
        if owns_static(config, shard, provider, target_id):
            store.add(provider, kind, target_id, collector)


def _static_keys(config: Config) -> set[TargetKey]:
    return {(p, k, i) for p, k, i, _ in _static_targets(config)}


def _connection(config: Config, provider: str) -> tuple[object, ...] | None:
    """Everything a provider's client is built from; a change means a new client."""
    common = (config.request_timeout, config.concurrency, config.max_response_bytes)
    section = getattr(config, provider)
    if section is None:
        return None
    if provider == "brightdata":
        settings: tuple[object, ...] = (section.base_url, section.token())
    else:
        settings = (section.base_url, section.key(), section.auth_header, section.path_prefix)
    return (*common, *settings, section.proxy_url, *_budget_settings(config, provider))


def _budget_settings(config: Config, provider: str) -> tuple[object, ...]:
    section = getattr(config, provider)
    return (
        section.max_requests_per_minute,
        section.max_requests_per_day,
        section.shard_max_requests_per_minute,
        section.shard_max_requests_per_day,
        config.poll_interval,
    )


class Exporter:
    """Everything one running exporter holds; the server and the CLI only talk to this."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
        shard: Shard | None = None,
        persist: bool = True,
        started: float | None = None,
    ) -> None:
        """`clock` and `sleep` are injected together (tests drive a manual clock); with the
        defaults, the request budget runs on the monotonic clock. `persist=False` leaves the
        config's `state_file` alone (`once` must neither read nor write it). `started` (on
        `clock`) is when watching began if earlier than now: the process start, for `run`."""
        self.config = config
        self.shard = shard or Shard()
        self._transport = transport
        self._clock = clock
        self._sleep = sleep
        self._gate_clock = None if clock is time.time else clock
        self._render_task: asyncio.Task[None] | None = None
        self._page_ready = False
        self._retiring: set[asyncio.Task[None]] = set()
        # The exporter's own metrics, the aggregates and the standard process_* and python_*
        # families; the per-target bulk is rendered apart, by chunks kept between renders.
        self.registry = CollectorRegistry()
        self.per_target = PerTargetCache()
        self.families = FamilyCache()
        self.telemetry = Telemetry(self.registry)
        self.serve_first = ServeFirst()
        self._render_thread = ThreadPoolExecutor(1, thread_name_prefix="render")
        self.aggregates = Aggregates(config.histogram_buckets, self.registry)
        self.store = Store(self.aggregates, config.stall)
        self.registry.register(TrackedCollector(self.store))
        register_build_info(self.registry)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.state_file: StateFile | None = None
        self._flusher: Flusher | None = None
        restored = None
        if persist and config.state_file is not None:
            restored = self._open_state_file(config.state_file)
            assert self.state_file is not None
            self.registry.register(StateFileCollector(self.state_file))
        _add_static_targets(self.store, config, self.shard)
        self._zero_fixed_series(config)
        self.providers = build_providers(
            config, self.telemetry, transport, shard=self.shard, clock=self._gate_clock,
            sleep=sleep,
        )  # fmt: skip
        self.poller = Poller(
            config,
            self.store,
            self.providers,
            self.telemetry,
            self.aggregates,
            clock=clock,
            sleep=sleep,
            on_cycle=self.refresh_exposition,
            shard=self.shard,
            started=started,
        )
        self.poller.set_static(frozenset(_static_keys(config)))
        if self.state_file is not None:
            self._persist(self.state_file, restored)
        self.exposition = self.render()

    def _open_state_file(self, path: Path) -> Restored:
        """Continue from the state file: the finished aggregates, and (from the same shard) the
        targets it tracked."""
        self.state_file, restored = open_state_file(path)
        for problem in self.aggregates.restore(restored.series):
            log.warning("state file %s: %s", path, problem)
        meta = restored.meta
        written_by = (meta.get(SHARD_INDEX), meta.get(SHARD_COUNT))
        if SHARD_COUNT in meta and written_by != (self.shard.index, self.shard.count):
            # Another partition of the account: its targets and lists are another shard's now.
            log.warning("state file %s: written by another shard (%s of %s); its targets are "
                        "not restored", path, *written_by)  # fmt: skip
            restored.targets = []
            restored.meta = {k: v for k, v in meta.items() if not k.startswith(WATERMARK)}
            return restored
        static = _static_keys(self.config)
        self.store.restore(
            t
            for t in restored.targets
            if getattr(self.config, t.provider) is not None
            and (not t.static or (t.key in static and owns_static(
                self.config, self.shard, t.provider, t.target_id)))
        )  # fmt: skip
        return restored

    def _persist(self, state: StateFile, restored: Restored | None) -> None:
        """From here on, the store tells the state file what changed; a flusher writes it."""
        discovery = self.poller.discovery
        if restored is not None:
            discovery.restore_watermarks({
                key.removeprefix(WATERMARK): value
                for key, value in restored.meta.items()
                if key.startswith(WATERMARK)
            })  # fmt: skip
        self.store.journal = state

        def meta() -> dict[str, float]:
            marks = {WATERMARK + k: v for k, v in discovery.watermarks().items()}
            return {**marks, SHARD_INDEX: self.shard.index, SHARD_COUNT: self.shard.count}

        self._flusher = Flusher(
            state,
            self.store.persisted,
            self.aggregates.kept,
            meta,
            self.config.poll_interval,
            clock=self._clock,
            sleep=self._sleep,
        )

    def _zero_fixed_series(self, config: Config) -> None:
        """Counters over the fixed provider/kind label sets start at 0 for every kind of a
        configured provider, so `rate()` and `increase()` see their first event."""
        for kind in KINDS:
            if getattr(config, kind.provider) is not None:
                self.aggregates.evicted.labels(kind.provider, kind.name)
                self.telemetry.unknown_status.labels(kind.provider, kind.name)

    @property
    def ready(self) -> bool:
        """The first list sweeps are in and on the page: /readyz and /metrics turn together."""
        return self._page_ready

    @property
    def render_every(self) -> float:
        """/metrics is re-rendered on this timer, however long polling takes."""
        return min(RENDER_EVERY, self.config.poll_interval / 2)

    async def _render_loop(self) -> None:
        shown_ready = False
        rendered_at, rendered_changes, cost = float("-inf"), -1, 0.0
        while True:
            # Until the first sweeps are in, look often: /readyz and /metrics turn together.
            await self._sleep(CHANGE_CHECK if shown_ready else READY_CHECK)
            if not shown_ready and not self.poller.ready:
                continue
            shown_ready = True
            now = self._clock()
            since = now - rendered_at
            changed = self.store.changes != rendered_changes
            if since < self.render_every and not (
                changed and since >= max(CHANGE_CHECK, RENDER_GAP * cost)
            ):
                continue
            rendered_at, rendered_changes = now, self.store.changes
            began = time.perf_counter()
            try:
                self.poller.expire()
                await self.refresh_exposition()
            except Exception:  # a bug in one render must not stop the next ones
                log.exception("rendering /metrics failed unexpectedly")
            cost = time.perf_counter() - began

    async def refresh_exposition(self) -> None:
        """Re-render both formats in the render thread, which steps aside for scrapes."""
        pause = self.serve_first.pause_point()
        loop = asyncio.get_running_loop()
        swept = self.poller.ready
        try:
            self.exposition = await loop.run_in_executor(self._render_thread, self.render, pause)
        except Exception:  # a bug; the last good page keeps being served, and the cycle goes on
            log.exception("rendering the metrics page failed; serving the previous one")
            return
        self._page_ready = self._page_ready or swept

    def render(self, pause: Callable[[], object] | None = None) -> Exposition:
        """The per-target families through the fast renderer, the rest through client_python;
        `pause` is called between chunks."""
        shared = self.per_target.render(self.store, pause) if self.config.per_job_metrics else ()
        return Exposition.build(self.registry, shared, pause, self.families)

    async def start(self) -> None:
        self.poller.start()
        if self._flusher is not None:
            self._flusher.start()
        if self._render_task is None:
            self._render_task = asyncio.create_task(self._render_loop(), name="render")

    async def __aenter__(self) -> Exporter:
        """Start polling and rendering; leaving stops them (within the shutdown grace) and
        closes the provider clients."""
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await bounded(self.stop(), SHUTDOWN_GRACE)

    async def stop(self) -> None:
        """Stop polling and rendering and close the clients; also for an exporter that was
        never started."""
        if self._render_task is not None:
            self._render_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._render_task
            self._render_task = None
        await self.poller.stop()
        if self._flusher is not None:
            await self._flusher.stop()  # what changed since the last write, then closed
        for task in list(self._retiring):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.providers.aclose()
        self._render_thread.shutdown(wait=False)

    # --- reload ------------------------------------------------------------------------------

    async def reload(self, config: Config) -> None:
        """Switch to a new, validated config and keep the store.

        Static targets still configured keep their series, new ones are added and removed ones
        dropped (with every target of a provider taken out of the config). A provider's client is
        rebuilt only when its connection settings changed; its gate (budget, 429 pause, breaker)
        carries over while the base URL and budget stay the same.
        """
        old = self.config
        for provider in PROVIDERS:
            if _connection(old, provider) != _connection(config, provider):
                self._replace_client(provider, old, config)
        for key in _static_keys(old) - _static_keys(config):
            self.store.remove(key)
        for target in self.store:
            if getattr(config, target.provider) is None:
                self.store.remove(target.key)
        _add_static_targets(self.store, config, self.shard)
        self._zero_fixed_series(config)
        for name in ("concurrency", "histogram_buckets", "state_file"):
            if getattr(old, name) != getattr(config, name):
                log.warning("reload: a change of %s takes effect after a restart", name)
        self.config = config
        self.poller.configure(config)
        self.poller.set_static(frozenset(_static_keys(config)))
        self.store.stall = config.stall
        if self._flusher is not None:
            self._flusher.interval = config.poll_interval
        await self.refresh_exposition()

    def _replace_client(self, provider: str, old: Config, new: Config) -> None:
        current: BrightDataClient | AitronosClient | None = getattr(self.providers, provider)
        before, after = getattr(old, provider), getattr(new, provider)
        # The gate (budget, pauses, breaker) carries over while the budget stays the same.
        same_budget = (
            current is not None
            and before is not None
            and after is not None
            and before.base_url == after.base_url
            and _budget_settings(old, provider) == _budget_settings(new, provider)
        )
        gate = current.http.gate if same_budget and current is not None else None
        client = _client(
            new, provider, self.telemetry, self._transport, self.shard, self._gate_clock,
            self._sleep, gate,
        )  # fmt: skip
        setattr(self.providers, provider, client)
        if current is not None:
            self._retire(current.http)
        log.info("reload: %s client rebuilt with the new settings", provider)

    def _retire(self, http: HttpClient) -> None:
        """Close a replaced client once the requests it has in flight are done."""

        async def close_later() -> None:
            try:
                await asyncio.sleep(RETIRE_GRACE)
            finally:
                await http.aclose()

        task = asyncio.get_running_loop().create_task(close_later(), name="retire-client")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
