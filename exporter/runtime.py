"""Wires a validated config into clients, the store, the poller and the exposition cache."""

from __future__ import annotations

import asyncio
import time

import httpx

from exporter.aggregates import Aggregates
from exporter.config import Config
from exporter.exposition import Exposition
from exporter.metrics import Family, collect_families
from exporter.poller import Clock, Poller
from exporter.providers import Providers
from exporter.providers.aitronos import AitronosClient, auth_headers
from exporter.providers.brightdata import BrightDataClient
from exporter.providers.http import HttpClient
from exporter.state import Store
from exporter.telemetry import Telemetry

__all__ = ["Exporter", "build_providers"]


def build_providers(
    config: Config, telemetry: Telemetry, transport: httpx.AsyncBaseTransport | None = None
) -> Providers:
    providers = Providers()
    if config.brightdata is not None:
        bd = config.brightdata
        http = HttpClient(
            "brightdata",
            bd.base_url,
            {"Authorization": f"Bearer {bd.token()}"},
            config.request_timeout,
            telemetry,
            max_connections=config.concurrency,
            transport=transport,
        )
        providers.brightdata = BrightDataClient(http)
    if config.aitronos is not None:
        ait = config.aitronos
        http = HttpClient(
            "aitronos",
            ait.base_url,
            auth_headers(ait.auth_header, ait.key()),
            config.request_timeout,
            telemetry,
            max_connections=config.concurrency,
            transport=transport,
        )
        providers.aitronos = AitronosClient(http, ait.path_prefix)
    return providers


def _add_static_targets(store: Store, config: Config) -> None:
    if config.brightdata is not None:
        for job_id in config.brightdata.jobs:
            store.add("brightdata", "job", job_id)
        for snapshot_id in config.brightdata.snapshots:
            store.add("brightdata", "snapshot", snapshot_id)
        if config.brightdata.ai_flows != "all":
            for collector in config.brightdata.ai_flows:
                store.add("brightdata", "ai_flow", collector, collector)
    if config.aitronos is not None:
        for job_id in config.aitronos.jobs:
            store.add("aitronos", "job", job_id)


class Exporter:
    """Everything one running exporter holds; the server and the CLI only talk to this."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.telemetry = Telemetry()
        self.aggregates = Aggregates(config.histogram_buckets)
        self.store = Store(self.aggregates, config.stall)
        _add_static_targets(self.store, config)
        self.providers = build_providers(config, self.telemetry, transport)
        self.poller = Poller(
            config,
            self.store,
            self.providers,
            self.telemetry,
            self.aggregates,
            clock=clock,
            on_cycle=self.refresh_exposition,
        )
        self.exposition = self.render()

    @property
    def ready(self) -> bool:
        return self.poller.ready.is_set()

    async def refresh_exposition(self) -> None:
        """Re-render both formats in a worker thread so scrapes keep being answered."""
        self.exposition = await asyncio.to_thread(self.render)

    def render(self) -> Exposition:
        return Exposition.build(self.families())

    def families(self) -> list[Family]:
        return collect_families(
            self.store, self.telemetry, self.aggregates, per_job=self.config.per_job_metrics
        )

    async def start(self) -> None:
        self.poller.start()

    async def stop(self) -> None:
        await self.poller.stop()
        await self.providers.aclose()
