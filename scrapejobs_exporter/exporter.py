"""Wires a validated config into clients, the store, the poller and the exposition cache."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import sys
import time
from collections.abc import Callable, Iterator

import httpx

from scrapejobs_exporter.aggregates import Aggregates
from scrapejobs_exporter.config import Config
from scrapejobs_exporter.exposition import Exposition, render_per_target
from scrapejobs_exporter.metrics import Family, collect_families
from scrapejobs_exporter.poller import Clock, Poller
from scrapejobs_exporter.providers import Providers
from scrapejobs_exporter.providers.aitronos import AitronosClient, auth_headers
from scrapejobs_exporter.providers.brightdata import BrightDataClient
from scrapejobs_exporter.providers.http import HttpClient
from scrapejobs_exporter.render_scheduling import ServeFirst, background_executor
from scrapejobs_exporter.resilience import ProviderGate
from scrapejobs_exporter.sharding import Shard
from scrapejobs_exporter.store import Store, TargetKey
from scrapejobs_exporter.telemetry import Telemetry

RENDER_SWITCH_INTERVAL = 0.0001  # seconds: a 10 MB page needs ~50 loop turns to go out

__all__ = ["Exporter", "build_providers"]

log = logging.getLogger(__name__)

PROVIDERS = ("brightdata", "aitronos")
RETIRE_GRACE = 30.0  # seconds a replaced client keeps serving the requests it has in flight


def build_providers(
    config: Config, telemetry: Telemetry, transport: httpx.AsyncBaseTransport | None = None
) -> Providers:
    return Providers(
        brightdata=_brightdata_client(config, telemetry, transport),
        aitronos=_aitronos_client(config, telemetry, transport),
    )


def _http(
    config: Config,
    provider: str,
    base_url: str,
    headers: dict[str, str],
    per_minute: int,
    telemetry: Telemetry,
    transport: httpx.AsyncBaseTransport | None,
    gate: ProviderGate | None,
    proxy: str | None = None,
) -> HttpClient:
    return HttpClient(
        provider,
        base_url,
        headers,
        config.request_timeout,
        telemetry,
        max_connections=config.concurrency,
        max_body_bytes=config.max_response_bytes,
        max_requests_per_minute=per_minute,
        gate=gate,
        transport=transport,
        proxy=proxy,
    )


def _brightdata_client(
    config: Config,
    telemetry: Telemetry,
    transport: httpx.AsyncBaseTransport | None,
    gate: ProviderGate | None = None,
) -> BrightDataClient | None:
    bd = config.brightdata
    if bd is None:
        return None
    headers = {"Authorization": f"Bearer {bd.token()}"}
    return BrightDataClient(
        _http(
            config,
            "brightdata",
            bd.base_url,
            headers,
            bd.max_requests_per_minute,
            telemetry,
            transport,
            gate,
            bd.proxy_url,
        )
    )


def _aitronos_client(
    config: Config,
    telemetry: Telemetry,
    transport: httpx.AsyncBaseTransport | None,
    gate: ProviderGate | None = None,
) -> AitronosClient | None:
    ait = config.aitronos
    if ait is None:
        return None
    headers = auth_headers(ait.auth_header, ait.key())
    http = _http(
        config,
        "aitronos",
        ait.base_url,
        headers,
        ait.max_requests_per_minute,
        telemetry,
        transport,
        gate,
        ait.proxy_url,
    )
    return AitronosClient(http, ait.path_prefix)


def _static_targets(config: Config) -> Iterator[tuple[str, str, str, str | None]]:
    """(provider, kind, id, collector) of every target the config names."""
    if config.brightdata is not None:
        for job_id in config.brightdata.jobs:
            yield "brightdata", "job", job_id, None
        for snapshot_id in config.brightdata.snapshots:
            yield "brightdata", "snapshot", snapshot_id, None
        if config.brightdata.ai_flows != "all":
            for collector in config.brightdata.ai_flows:
                yield "brightdata", "ai_flow", collector, collector
    if config.aitronos is not None:
        for job_id in config.aitronos.jobs:
            yield "aitronos", "job", job_id, None


def _add_static_targets(store: Store, config: Config, shard: Shard) -> None:
    for provider, kind, target_id, collector in _static_targets(config):
        if shard.owns(target_id):
            store.add(provider, kind, target_id, collector)


def _static_keys(config: Config) -> set[TargetKey]:
    return {(p, k, i) for p, k, i, _ in _static_targets(config)}


def _connection(config: Config, provider: str) -> tuple[object, ...] | None:
    """Everything a provider's client is built from; a change means a new client."""
    common = (config.request_timeout, config.concurrency, config.max_response_bytes)
    if provider == "brightdata" and config.brightdata is not None:
        bd = config.brightdata
        return (*common, bd.base_url, bd.token(), bd.max_requests_per_minute, bd.proxy_url)
    if provider == "aitronos" and config.aitronos is not None:
        ait = config.aitronos
        settings = (ait.base_url, ait.key(), ait.auth_header, ait.path_prefix, ait.proxy_url)
        return (*common, *settings, ait.max_requests_per_minute)
    return None


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL("libc.so.6").malloc_trim
        return trim
    except (OSError, AttributeError):  # not glibc: nothing to trim
        return None


_MALLOC_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Give memory freed by a cycle back to the system. A render's temporaries (a hundred MB
    of text at 50,000 jobs, freed chunk by chunk) otherwise stay in glibc's arenas and in RSS."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class Exporter:
    """Everything one running exporter holds; the server and the CLI only talk to this."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
        shard: Shard | None = None,
    ) -> None:
        self.config = config
        self.shard = shard or Shard()
        self._transport = transport
        self._retiring: set[asyncio.Task[None]] = set()
        self.telemetry = Telemetry()
        self.serve_first = ServeFirst()
        self._render_thread = background_executor("render")
        self.aggregates = Aggregates(config.histogram_buckets)
        self.store = Store(self.aggregates, config.stall)
        _add_static_targets(self.store, config, self.shard)
        self.providers = build_providers(config, self.telemetry, transport)
        self.poller = Poller(
            config,
            self.store,
            self.providers,
            self.telemetry,
            self.aggregates,
            clock=clock,
            on_cycle=self.refresh_exposition,
            shard=self.shard,
        )
        self.exposition = self.render()

    @property
    def ready(self) -> bool:
        return self.poller.ready.is_set()

    async def refresh_exposition(self) -> None:
        """Re-render both formats in the render thread, which steps aside for scrapes."""
        pause = self.serve_first.pause_point(ServeFirst.loop_asleep())
        loop = asyncio.get_running_loop()
        try:
            self.exposition = await loop.run_in_executor(
                self._render_thread, self._render_in_background, pause
            )
        except Exception:  # a bug; the last good page keeps being served, and the cycle goes on
            log.exception("rendering the metrics page failed; serving the previous one")

    def _render_in_background(self, pause: Callable[[], object]) -> Exposition:
        # The render thread holds the GIL for up to the switch interval at a time (5 ms by
        # default); a shorter one lets a scrape on the event loop through within a few ms.
        previous = sys.getswitchinterval()
        sys.setswitchinterval(min(previous, RENDER_SWITCH_INTERVAL))
        try:
            return self.render(pause)
        finally:
            sys.setswitchinterval(previous)
            release_free_memory()

    def render(self, pause: Callable[[], object] | None = None) -> Exposition:
        """The per-target families through the fast renderer, the rest through the reference;
        `pause` is called between chunks."""
        if pause is not None:
            pause()
        per_job = self.config.per_job_metrics
        rest = collect_families(self.store, self.telemetry, self.aggregates, per_job=False)
        shared = render_per_target(self.store) if per_job else ()
        return Exposition.build(rest, shared, pause)

    def families(self) -> list[Family]:
        return collect_families(
            self.store, self.telemetry, self.aggregates, per_job=self.config.per_job_metrics
        )

    async def start(self) -> None:
        self.poller.start()

    async def stop(self) -> None:
        await self.poller.stop()
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
        for name in ("concurrency", "histogram_buckets"):
            if getattr(old, name) != getattr(config, name):
                log.warning("reload: a change of %s takes effect after a restart", name)
        self.config = self.poller.config = self.poller.discovery.config = config
        self.poller.interval = config.poll_interval
        self.store.stall = config.stall
        await self.refresh_exposition()

    def _replace_client(self, provider: str, old: Config, new: Config) -> None:
        current: BrightDataClient | AitronosClient | None = getattr(self.providers, provider)
        before, after = getattr(old, provider), getattr(new, provider)
        same_budget = (
            current is not None
            and before is not None
            and after is not None
            and (before.base_url, before.max_requests_per_minute)
            == (after.base_url, after.max_requests_per_minute)
        )
        gate = current.http.gate if same_budget and current is not None else None
        build = _brightdata_client if provider == "brightdata" else _aitronos_client
        setattr(self.providers, provider, build(new, self.telemetry, self._transport, gate))
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
