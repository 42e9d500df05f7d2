"""Small helpers shared by the runner, the workers and the scrape client."""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
from collections.abc import Sequence
from typing import Any

# The headers a Prometheus 3 scrape sends (scrape_protocols default plus gzip).
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,"
    "text/plain;version=1.0.0;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
PROMETHEUS_HEADERS = {
    "Accept": PROMETHEUS_ACCEPT,
    "Accept-Encoding": "gzip",
    "User-Agent": "Prometheus/3.0.0",
    "X-Prometheus-Scrape-Timeout-Seconds": "10",
}
RESULT_PREFIX = "BENCH-RESULT "


def rss_kb() -> int:
    """This process's resident set size (VmRSS) in KiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, Any]:
    """p50/p99/max/mean in milliseconds of latencies given in seconds."""
    if not seconds:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None}
    return {
        "n": len(seconds),
        "p50_ms": round(percentile(seconds, 50) * 1000, 3),
        "p99_ms": round(percentile(seconds, 99) * 1000, 3),
        "max_ms": round(max(seconds) * 1000, 3),
        "mean_ms": round(statistics.fmean(seconds) * 1000, 3),
    }


def emit(result: dict[str, Any]) -> None:
    """Print a worker's result as one tagged JSON line on stdout."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(result, sort_keys=True) + "\n")
    sys.stdout.flush()


def parse_result(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            parsed: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return parsed
    raise RuntimeError("the worker printed no result line")


def child_env() -> dict[str, str]:
    """The environment of child processes: this checkout first on the import path."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def throughput_result(impl: str, runs: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    warm = runs[1:] or runs
    return {
        "impl": impl,
        "concurrency": concurrency,
        "runs": runs,
        "per_second": statistics.median(r["per_second"] for r in warm),
        "failed": sum(r["failed"] for r in runs),
    }


def scrape_meta(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "statuses": result["statuses"],
        "content_type": result["content_type"],
        "content_encoding": result["content_encoding"],
        "bytes": result["bytes"],
    }


def malloc_trim() -> bool:
    """Ask glibc to hand freed heap pages back to the kernel (a diagnostic: how much of the RSS
    is freed memory the allocator kept). False where there is no glibc."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.malloc_trim(0))


def rss_report(
    before: int, after: int, trimmed: int | None, tracked: int, checkpoints: dict[str, int]
) -> dict[str, Any]:
    """RSS figures in KB; `trimmed` is the RSS after malloc_trim, a diagnostic only (the RSS
    once glibc has returned the freed pages it kept)."""
    return {
        "before_kb": before,
        "after_kb": after,
        "per_tracked_kb": round((after - before) / max(1, tracked), 3),
        "after_malloc_trim_kb": trimmed,
        "per_tracked_kb_after_malloc_trim": None
        if trimmed is None
        else round((trimmed - before) / max(1, tracked), 3),
        "checkpoints_kb": checkpoints,
    }
