"""Measurements of the naive baseline, run inside `python -m bench.worker baseline ...`."""

from __future__ import annotations

import asyncio
import gc
import statistics
import threading
import time
from typing import Any

from bench.baseline import NaiveExporter, NaiveTarget, render_like_a_scrape
from bench.common import malloc_trim, rss_kb, rss_report, scrape_meta, summary_ms, throughput_result
from bench.scrape import run_client
from bench.sim import sim_post


async def measure_scale(
    url: str,
    datasets: list[str],
    *,
    concurrency: int,
    cycles: int,
    advance: float,
    renders: int,
    scrapes: int,
) -> dict[str, Any]:
    gc.collect()
    rss_before = rss_kb()
    checkpoints: dict[str, int] = {}
    now = [float(sim_post(url, "/_sim/advance", {"seconds": 0})["now"])]
    naive = NaiveExporter(url, datasets, concurrency=concurrency, clock=lambda: now[0])
    runs: list[dict[str, Any]] = []
    server = None
    try:
        for index in range(cycles):
            if index:
                now[0] = float(sim_post(url, "/_sim/advance", {"seconds": advance})["now"])
            calls, pages = naive.calls, naive.list_pages
            started = time.perf_counter()
            polled = await naive.run_cycle()
            runs.append(
                {
                    "calls": naive.calls - calls,
                    "list_pages": naive.list_pages - pages,
                    "polled": polled,
                    "seconds": round(time.perf_counter() - started, 4),
                    "tracked": len(naive.targets),
                }
            )
        if naive.failed:
            raise RuntimeError(f"the baseline's polls failed {naive.failed} times")
        tracked = len(naive.targets)
        checkpoints["after_cycles"] = rss_kb()

        render_times: list[float] = []
        size = 0
        for _ in range(renders):
            started = time.perf_counter()
            size = len(render_like_a_scrape(naive.registry))
            render_times.append(time.perf_counter() - started)

        checkpoints["after_renders"] = rss_kb()
        server = naive.serve()
        # Its scrapes take 0.25-16 s: a connection's slower first transfers (ms) do not show,
        # one warm-up scrape is enough.
        idle = await run_client(
            f"http://127.0.0.1:{server.server_port}/metrics", scrapes, max_seconds=240, warmup=1
        )
        gc.collect()
        rss_after = rss_kb()
        trimmed = malloc_trim()
        rss_trimmed = rss_kb()
    finally:
        if server is not None:
            await asyncio.to_thread(server.shutdown)
            server.server_close()
        await naive.aclose()

    steady = runs[1:] or runs
    steady_render = render_times[1:] or render_times
    return {
        "impl": "baseline",
        "tracked": tracked,
        "series": _series(naive),
        "exposition_gzip_bytes": size,
        "cycles": runs,
        "steady": {
            "calls": statistics.fmean(r["calls"] for r in steady),
            "list_pages": statistics.fmean(r["list_pages"] for r in steady),
            "running": None,
        },
        "render": {
            "median_ms": round(statistics.median(steady_render) * 1000, 2),
            "samples_ms": [round(t * 1000, 2) for t in render_times],
        },
        "scrape": {**summary_ms(idle["latencies"]), **scrape_meta(idle)},
        "rss": rss_report(
            rss_before, rss_after, rss_trimmed if trimmed else None, tracked, checkpoints
        ),
        "threads": threading.active_count(),
    }


def _series(naive: NaiveExporter) -> int:
    return sum(len(metric.samples) for metric in naive.registry.collect())


async def measure_throughput(
    url: str, job_ids: list[str], *, concurrency: int, cycles: int
) -> dict[str, Any]:
    naive = NaiveExporter(url, [], concurrency=concurrency)
    naive.targets = {i: NaiveTarget("job", i) for i in job_ids}
    runs = []
    try:
        for _ in range(cycles):
            failed = naive.failed
            cpu, started = time.process_time(), time.perf_counter()
            polled = await naive.poll_all()
            seconds = time.perf_counter() - started
            cpu = time.process_time() - cpu
            runs.append(
                {
                    "polled": polled,
                    "failed": naive.failed - failed,
                    "seconds": round(seconds, 4),
                    "per_second": round(polled / seconds, 1),
                    "cpu_share": round(cpu / seconds, 3),
                }
            )
    finally:
        await naive.aclose()
    return throughput_result("baseline", runs, concurrency)
