"""Measurements of our exporter, run inside `python -m bench.worker ours ...`."""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import time
from typing import Any

from bench.common import malloc_trim, rss_kb, rss_report, scrape_meta, summary_ms, throughput_result
from bench.scrape import run_client, transfer_floor
from bench.sim import sim_post
from scrapejobs_exporter.config import parse_config
from scrapejobs_exporter.exporter import Exporter
from scrapejobs_exporter.server import ListenAddress, Server
from scrapejobs_exporter.simulator import DEFAULT_AITRONOS_KEY, DEFAULT_BRIGHTDATA_TOKEN

LIST_ENDPOINTS = ("/dca/collectors_list", "/dca/collector/jobs", "/datasets/v3/snapshots")


def is_list_endpoint(endpoint: str) -> bool:
    return endpoint in LIST_ENDPOINTS or endpoint.endswith("/scrape/jobs")


# Finished targets' reports (hp_errors, snapshot logs): one call each, on top of the polls.
REPORT_ENDPOINTS = ("/dca/jobs/{job_id}/hp_errors", "/datasets/v3/log/{snapshot_id}")


def _config(concurrency: int, brightdata: str, aitronos: str = "") -> str:
    """No request budget in the way, nothing evicted by count; the sections are YAML text."""
    return f"""
poll_interval: 1h
concurrency: {concurrency}
retention: {{max_tracked: 10000000}}
brightdata:
  api_token: {DEFAULT_BRIGHTDATA_TOKEN}
  max_requests_per_minute: 100000
{brightdata}{aitronos}"""


def discovery_config(url: str, datasets: list[str], concurrency: int) -> str:
    """Everything discovered."""
    brightdata = f"  base_url: {url}\n  collectors: all\n  datasets: {json.dumps(datasets)}\n"
    aitronos = (
        f"aitronos:\n  api_key: {DEFAULT_AITRONOS_KEY}\n  base_url: {url}\n  discover: true\n"
        "  max_requests_per_minute: 100000\n  max_requests_per_day: null\n"
    )
    return _config(concurrency, brightdata, aitronos)


def static_config(url: str, job_ids: list[str], concurrency: int) -> str:
    return _config(concurrency, f"  base_url: {url}\n  jobs: {json.dumps(job_ids)}\n")


class Calls:
    """API calls counted by the exporter's own telemetry: all, list pages, reports."""

    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter
        self.last = self.read()

    def read(self) -> tuple[float, float, float]:
        total = pages = reports = 0.0
        for family in self.exporter.telemetry.api_requests.collect():
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    total += sample.value
                    endpoint = sample.labels["endpoint"]
                    if is_list_endpoint(endpoint):
                        pages += sample.value
                    elif endpoint in REPORT_ENDPOINTS:
                        reports += sample.value
        return total, pages, reports

    def delta(self) -> tuple[int, int, int]:
        now = self.read()
        total, pages, reports = (round(n - last) for n, last in zip(now, self.last, strict=True))
        self.last = now
        return total, pages, reports


# Cycles at most spent catching up on the reports of the finished jobs discovery found, before
# the steady cycles (at 50,000 jobs two were needed: ~9,000 reports each at the default
# concurrency, where a steady cycle reads ~40).
MAX_CATCH_UP = 4


def _steady(index: int, before: list[dict[str, Any]], polled: int, reports: int) -> bool:
    """Whether a cycle is a steady one: not the first (it discovers every target), and past
    the catch-up, which ends with the first cycle that reads fewer reports than it polls
    running targets (or when the catch-up has taken MAX_CATCH_UP cycles)."""
    if index == 0:
        return False
    if any(c["steady"] for c in before):
        return True
    return reports < polled or index > MAX_CATCH_UP


async def measure_scale(
    url: str,
    datasets: list[str],
    *,
    concurrency: int,
    steady_cycles: int,
    advance: float,
    renders: int,
    scrapes: int,
    scrapes_during_render: int,
) -> dict[str, Any]:
    gc.collect()
    rss_before = rss_kb()
    checkpoints: dict[str, int] = {}
    now = [float(sim_post(url, "/_sim/advance", {"seconds": 0})["now"])]
    exporter = Exporter(
        parse_config(discovery_config(url, datasets, concurrency)), clock=lambda: now[0]
    )
    calls = Calls(exporter)
    cycles: list[dict[str, Any]] = []
    server: Server | None = None
    try:
        steady_count = 0
        for index in range(1 + steady_cycles + MAX_CATCH_UP):
            if steady_count == steady_cycles:
                break
            if index:
                now[0] = float(sim_post(url, "/_sim/advance", {"seconds": advance})["now"])
            started = time.perf_counter()
            result = await exporter.poller.run_cycle()  # renders the exposition afterwards too
            wall = time.perf_counter() - started
            total, pages, reports = calls.delta()
            cycles.append(
                {
                    "calls": total,
                    "list_pages": pages,
                    "reports": reports,
                    "polled": result.polled,
                    "failed": result.failed,
                    "poll_seconds": round(result.duration, 4),
                    "wall_seconds": round(wall, 4),
                    # The cycle ends by re-rendering the page (in the render thread).
                    "render_seconds": round(wall - result.duration, 4),
                    "tracked": len(exporter.store),
                    "steady": _steady(index, cycles, result.polled, reports),
                }
            )
            steady_count += cycles[-1]["steady"]
        tracked = len(exporter.store)
        checkpoints["after_cycles"] = rss_kb()

        # Renders with nothing kept from the one before: everything made anew, as after a
        # start (and as every render was before the render caches).
        render_times = []
        for _ in range(renders):
            forget_rendered(exporter)
            started = time.perf_counter()
            exporter.exposition = exporter.render()
            render_times.append(time.perf_counter() - started)
        exposition = exporter.exposition
        checkpoints["after_renders"] = rss_kb()

        server = Server(exporter, ListenAddress("127.0.0.1", 0), "/metrics")
        await server.start()
        metrics_url = f"http://127.0.0.1:{server.port}/metrics"
        idle = await run_client(metrics_url, scrapes, max_seconds=120)
        checkpoints["after_scrapes"] = rss_kb()

        stop = asyncio.Event()
        background: list[float] = []
        spans: list[tuple[float, float]] = []  # (start, end) of each render, time.monotonic

        async def render_loop() -> None:
            while not stop.is_set():
                forget_rendered(exporter)  # the worst case: every render makes everything
                started, at = time.perf_counter(), time.monotonic()
                await exporter.refresh_exposition()
                background.append(time.perf_counter() - started)
                spans.append((at, time.monotonic()))

        loop_task = asyncio.create_task(render_loop())
        await asyncio.sleep(0.05)  # let the first render get under way
        busy = await run_client(metrics_url, scrapes_during_render, max_seconds=120)
        stop.set()
        await loop_task

        gc.collect()
        rss_after = rss_kb()
        trimmed = malloc_trim()
        rss_trimmed = rss_kb()
        floor = await transfer_floor(
            exposition.openmetrics.gzipped, exposition.openmetrics.content_type, scrapes
        )
    finally:
        if server is not None:
            await server.stop()
        await exporter.stop()

    steady = [c for c in cycles if c["steady"]] or cycles[-1:]
    steady_anew = render_times[1:] or render_times
    return {
        "impl": "ours",
        "tracked": tracked,
        "series": _series_count(exposition.openmetrics.body),
        "exposition_gzip_bytes": len(exposition.openmetrics.gzipped),
        "cycles": cycles,
        "steady": {
            "calls": statistics.fmean(c["calls"] for c in steady),
            "list_pages": statistics.fmean(c["list_pages"] for c in steady),
            "running": statistics.fmean(c["polled"] for c in steady),
            "reports": statistics.fmean(c["reports"] for c in steady),
            "max_excess": max(
                c["calls"] - c["polled"] - c["list_pages"] - c["reports"] for c in steady
            ),
        },
        # Per cycle: the render each steady cycle ends with, after its changes (the first
        # cycle discovers everything, and the catch-up cycles after it read the reports of
        # the finished jobs it found: both are left out, see _steady).
        "render": {
            "median_ms": round(statistics.median(c["render_seconds"] for c in steady) * 1000, 2),
            "samples_ms": [round(c["render_seconds"] * 1000, 2) for c in steady],
        },
        "render_anew": {
            "median_ms": round(statistics.median(steady_anew) * 1000, 2),
            "samples_ms": [round(t * 1000, 2) for t in render_times],
        },
        "scrape": {**summary_ms(idle["latencies"]), **scrape_meta(idle)},
        "scrape_transfer_floor": summary_ms(floor["latencies"]),
        "scrape_during_render": {
            **summary_ms(busy["latencies"]),
            **scrape_meta(busy),
            "renders": len(background),
            "render_median_ms": round(statistics.median(background) * 1000, 2)
            if background
            else None,
            # Scrapes counted as "while rendering" must have started while a render was under
            # way (it steps aside for them, and so takes longer than alone).
            "in_render": sum(any(a <= t <= b for a, b in spans) for t in busy["starts"]),
        },
        "rss": rss_report(
            rss_before, rss_after, rss_trimmed if trimmed else None, tracked, checkpoints
        ),
    }


async def measure_throughput(
    url: str, job_ids: list[str], *, concurrency: int, cycles: int
) -> dict[str, Any]:
    exporter = Exporter(parse_config(static_config(url, job_ids, concurrency)))
    runs = []
    try:
        for _ in range(cycles):
            cpu = time.process_time()
            result = await exporter.poller.run_cycle()
            cpu = time.process_time() - cpu
            runs.append(
                {
                    "polled": result.polled,
                    "failed": result.failed,
                    "seconds": round(result.duration, 4),
                    "per_second": round(result.polled / result.duration, 1),
                    "cpu_share": round(cpu / result.duration, 3),
                }
            )
    finally:
        await exporter.stop()
    return throughput_result("ours", runs, concurrency)


def forget_rendered(exporter: Exporter) -> None:
    exporter.per_target.clear()
    exporter.families.clear()


def _series_count(body: bytes) -> int:
    return sum(1 for line in body.split(b"\n") if line and not line.startswith(b"#"))
