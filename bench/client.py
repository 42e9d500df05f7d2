"""Scrape client, run as its own process so it does not share the measured process's GIL.

`python -m bench.client URL --count N [--warmup W] [--max-seconds S] [--pause-ms P]` sends
W + N sequential GETs with a Prometheus 3 scrape's headers over one keep-alive connection (as
Prometheus does), reads each gzipped body fully, and prints one result line: the latencies in
seconds and start times (`time.monotonic`, comparable across processes) of the last N, the
status codes, the content type and the body sizes.

The first W are not counted: a new connection's first few transfers of a page of megabytes are
slower while the kernel grows its TCP windows, and Prometheus keeps its connection open.
"""

from __future__ import annotations

import argparse
import http.client
import time
import urllib.parse
from typing import Any

from bench.common import PROMETHEUS_HEADERS, emit

WARMUP = 5


def scrape(
    url: str, count: int, max_seconds: float, pause: float, timeout: float, warmup: int = WARMUP
) -> dict[str, Any]:
    parts = urllib.parse.urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing to scrape a non-loopback address: {url}")
    path = parts.path or "/"
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    latencies: list[float] = []
    starts: list[float] = []
    statuses: list[int] = []
    sizes: list[int] = []
    content_type = content_encoding = ""
    deadline = time.monotonic() + max_seconds
    try:
        for index in range(warmup + count):
            if time.monotonic() > deadline:
                break
            at, started = time.monotonic(), time.perf_counter()
            conn.request("GET", path, headers=PROMETHEUS_HEADERS)
            response = conn.getresponse()
            body = response.read()
            latency = time.perf_counter() - started
            if index >= warmup:
                latencies.append(latency)
                starts.append(at)
            statuses.append(response.status)
            sizes.append(len(body))
            content_type = response.getheader("Content-Type", "")
            content_encoding = response.getheader("Content-Encoding", "")
            if pause:
                time.sleep(pause)
    finally:
        conn.close()
    return {
        "latencies": latencies,
        "starts": starts,
        "warmup": warmup,
        "statuses": sorted(set(statuses)),
        "content_type": content_type,
        "content_encoding": content_encoding,
        "bytes": max(sizes) if sizes else 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.client")
    parser.add_argument("url")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=WARMUP, help="scrapes not counted")
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--pause-ms", type=float, default=0.0)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    emit(
        scrape(
            args.url, args.count, args.max_seconds, args.pause_ms / 1000, args.timeout, args.warmup
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
