"""The naive design the benchmark compares against.

What an exporter written the obvious way does: one prometheus_client `Gauge` per per-job metric,
a labelled child per job (state sets the usual way: one child per state, 1 for the current one),
every list page read and then *every* tracked job fetched again each cycle, with one
`httpx.AsyncClient`, and the registry rendered on every scrape by prometheus_client's own HTTP
server (`start_http_server`: OpenMetrics for Prometheus 3's `Accept`, `gzip.compress` at its
default level 9). It exports the same per-job series as our exporter (minus stall and ETA, which
it does not compute), and parses the answers with our exporter's parsers so values match.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from wsgiref.simple_server import WSGIServer

import httpx
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.exposition import choose_encoder, start_http_server

from bench.common import PROMETHEUS_ACCEPT
from scrapejobs_exporter.metrics import (
    AIT_GAUGES,
    AIT_REASON,
    AIT_STATUS,
    BD_JOB_INFO,
    BD_JOB_STATUS,
    BD_SNAPSHOT_STATUS,
    JOB_GAUGES,
    TARGET_LAST_SUCCESS,
    TARGET_UP,
    MetricSpec,
)
from scrapejobs_exporter.providers import aitronos, brightdata
from scrapejobs_exporter.providers.aitronos import AitronosJob, parse_job_progress
from scrapejobs_exporter.providers.brightdata import (
    Snapshot,
    StudioJob,
    parse_job_log,
    parse_snapshot_progress,
)
from scrapejobs_exporter.simulator import DEFAULT_AITRONOS_KEY, DEFAULT_BRIGHTDATA_TOKEN

__all__ = ["NaiveExporter", "NaiveTarget", "render_like_a_scrape"]

JOBS_PAGE, SNAPSHOTS_PAGE, AITRONOS_PAGE = 500, 5000, 100  # the documented maxima, as ours uses


@dataclass(frozen=True, slots=True)
class NaiveTarget:
    kind: str  # "job", "snapshot" or "aitronos"
    target_id: str
    collector: str | None = None


def _gauge(spec: MetricSpec, registry: CollectorRegistry) -> Gauge:
    return Gauge(spec.name, spec.help, list(spec.labels), registry=registry)


class NaiveExporter:
    def __init__(
        self,
        base_url: str,
        datasets: list[str],
        *,
        concurrency: int = 64,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url
        self.datasets = datasets
        self.clock = clock
        self.registry = CollectorRegistry(auto_describe=False)
        reg = self.registry
        self.job_status = _gauge(BD_JOB_STATUS, reg)
        self.job_info = _gauge(BD_JOB_INFO, reg)
        self.job_gauges = [(_gauge(spec, reg), attr) for spec, attr in JOB_GAUGES]
        self.snapshot_status = _gauge(BD_SNAPSHOT_STATUS, reg)
        self.ait_status = _gauge(AIT_STATUS, reg)
        self.ait_reason = _gauge(AIT_REASON, reg)
        self.ait_gauges = [(_gauge(spec, reg), get) for spec, get in AIT_GAUGES]
        self.target_up = _gauge(TARGET_UP, reg)
        self.target_last_success = _gauge(TARGET_LAST_SUCCESS, reg)
        self.client = httpx.AsyncClient(base_url=base_url, timeout=30.0)
        self.semaphore = asyncio.Semaphore(concurrency)
        self.bd_headers = {"Authorization": f"Bearer {DEFAULT_BRIGHTDATA_TOKEN}"}
        self.ait_headers = {"X-API-Key": DEFAULT_AITRONOS_KEY}
        self.targets: dict[str, NaiveTarget] = {}
        self.calls = 0
        self.list_pages = 0
        self.failed = 0

    async def aclose(self) -> None:
        await self.client.aclose()

    # --- HTTP ---------------------------------------------------------------------------------

    async def _get(
        self, path: str, headers: dict[str, str], params: dict[str, Any] | None = None
    ) -> Any:
        async with self.semaphore:
            self.calls += 1
            response = await self.client.get(path, headers=headers, params=params)
        response.raise_for_status()
        return response.json()

    async def _list(
        self, path: str, headers: dict[str, str], params: dict[str, Any] | None = None
    ) -> Any:
        self.list_pages += 1
        return await self._get(path, headers, params)

    # --- one cycle ----------------------------------------------------------------------------

    async def discover(self) -> None:
        """Read every list page, every cycle."""
        today = datetime.fromtimestamp(self.clock(), UTC).date()
        window = ((today - timedelta(days=1)).isoformat(), (today + timedelta(days=1)).isoformat())
        collectors = await self._list("/dca/collectors_list", self.bd_headers)
        lists = [self._collector_jobs(c["id"], window) for c in collectors["data"]]
        lists += [self._snapshots(d, window[0]) for d in self.datasets]
        lists.append(self._aitronos_jobs())
        for found in await asyncio.gather(*lists):
            for target in found:
                self.targets.setdefault(target.target_id, target)

    async def _collector_jobs(self, collector: str, window: tuple[str, str]) -> list[NaiveTarget]:
        found: list[NaiveTarget] = []
        while True:
            params = {
                "collector": collector,
                "from_date": window[0],
                "to_date": window[1],
                "offset": len(found),
                "limit": JOBS_PAGE,
            }
            page = await self._list("/dca/collector/jobs", self.bd_headers, params)
            found += [NaiveTarget("job", row["id"], collector) for row in page["data"]]
            if not page["data"] or len(found) >= page["total"]:
                return found

    async def _snapshots(self, dataset_id: str, from_date: str) -> list[NaiveTarget]:
        found: list[NaiveTarget] = []
        while True:
            params = {
                "dataset_id": dataset_id,
                "from_date": from_date,
                "skip": len(found),
                "limit": SNAPSHOTS_PAGE,
            }
            rows = await self._list("/datasets/v3/snapshots", self.bd_headers, params)
            found += [NaiveTarget("snapshot", row["id"]) for row in rows]
            if len(rows) < SNAPSHOTS_PAGE:
                return found

    async def _aitronos_jobs(self) -> list[NaiveTarget]:
        found: list[NaiveTarget] = []
        while True:
            params = {"offset": len(found), "limit": AITRONOS_PAGE}
            page = await self._list("/v1/scrape/jobs", self.ait_headers, params)
            found += [NaiveTarget("aitronos", row["job_id"]) for row in page["jobs"]]
            if not page["jobs"] or len(found) >= page["total"]:
                return found

    async def poll_all(self) -> int:
        """Fetch every tracked job, whatever its status; returns how many were fetched."""
        results = await asyncio.gather(
            *(self._poll(t) for t in self.targets.values()), return_exceptions=True
        )
        self.failed += sum(1 for r in results if isinstance(r, BaseException))
        return len(results)

    async def run_cycle(self) -> int:
        await self.discover()
        return await self.poll_all()

    async def _poll(self, target: NaiveTarget) -> None:
        ident = target.target_id
        try:
            if target.kind == "job":
                body = await self._get(f"/dca/log/{ident}", self.bd_headers)
                self.set_job(parse_job_log(body, ident, target.collector))
            elif target.kind == "snapshot":
                body = await self._get(f"/datasets/v3/progress/{ident}", self.bd_headers)
                self.set_snapshot(parse_snapshot_progress(body, ident))
            else:
                body = await self._get(f"/v1/scrape/jobs/{ident}/progress", self.ait_headers)
                self.set_aitronos(parse_job_progress(body, ident))
        except Exception:
            self.target_up.labels(_provider(target.kind), _kind(target.kind), ident).set(0)
            raise
        self._up(target)

    # --- gauges -------------------------------------------------------------------------------

    def _up(self, target: NaiveTarget) -> None:
        labels = (_provider(target.kind), _kind(target.kind), target.target_id)
        self.target_up.labels(*labels).set(1)
        self.target_last_success.labels(*labels).set(self.clock())

    def set_job(self, job: StudioJob) -> None:
        ident, collector = job.job_id, job.collector or ""
        for state in brightdata.JOB_STATUSES:
            self.job_status.labels(ident, collector, state).set(1 if state == job.status else 0)
        if job.template is not None:
            self.job_info.labels(ident, collector, job.template).set(1)
        for gauge, attr in self.job_gauges:
            value = getattr(job, attr)
            if value is not None:
                gauge.labels(ident, collector).set(value)

    def set_snapshot(self, snapshot: Snapshot) -> None:
        ident, dataset = snapshot.snapshot_id, snapshot.dataset_id or ""
        for state in brightdata.SNAPSHOT_STATUSES:
            self.snapshot_status.labels(ident, dataset, state).set(
                1 if state == snapshot.status else 0
            )

    def set_aitronos(self, job: AitronosJob) -> None:
        ident = job.job_id
        for state in aitronos.JOB_STATUSES:
            self.ait_status.labels(ident, state).set(1 if state == job.status else 0)
        for reason in aitronos.COMPLETION_REASONS:
            self.ait_reason.labels(ident, reason).set(1 if reason == job.completion_reason else 0)
        for gauge, get in self.ait_gauges:
            value = get(job)
            if value is not None:
                gauge.labels(ident).set(value)

    # --- serving ------------------------------------------------------------------------------

    def serve(self) -> WSGIServer:
        """prometheus_client's own HTTP server on 127.0.0.1, a free port, a daemon thread."""
        server, _thread = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        return server


def render_like_a_scrape(registry: CollectorRegistry) -> bytes:
    """What prometheus_client does for one Prometheus 3 scrape: pick the encoder from the
    `Accept` header (OpenMetrics 1.0.0), render the whole registry, gzip it at level 9."""
    encoder, _content_type = choose_encoder(PROMETHEUS_ACCEPT)
    return gzip.compress(encoder(registry))


def _provider(kind: str) -> str:
    return "aitronos" if kind == "aitronos" else "brightdata"


def _kind(kind: str) -> str:
    return "job" if kind == "aitronos" else kind
