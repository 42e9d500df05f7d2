"""Running the scrape client (`bench.client`) as a child process from an async worker."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from bench.client import WARMUP
from bench.common import child_env, parse_result


async def run_client(
    url: str, count: int, *, max_seconds: float, warmup: int = WARMUP
) -> dict[str, Any]:
    """`count` sequential Prometheus-style scrapes of `url` from another process, after
    `warmup` more that are not counted (see `bench.client`)."""
    if count <= 0:
        return {
            "latencies": [],
            "starts": [],
            "warmup": 0,
            "statuses": [],
            "content_type": "",
            "content_encoding": "",
            "bytes": 0,
        }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.client",
        url,
        "--count",
        str(count),
        "--warmup",
        str(warmup),
        "--max-seconds",
        str(max_seconds),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(),
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), max_seconds + 180)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise RuntimeError(
            f"scrape client failed ({process.returncode}): {stderr.decode()[-2000:]}"
        )
    return parse_result(stdout.decode())


async def transfer_floor(body: bytes, content_type: str, count: int) -> dict[str, Any]:
    """The same client fetching the same bytes from a bare aiohttp handler that does nothing
    else and writes them as any handler does: the reference cost of moving the page over
    loopback (the exporter writes it in regions of 4 MB through a widened send buffer)."""
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=body, headers={"Content-Type": content_type, "Content-Encoding": "gzip"}
        )

    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        return await run_client(f"http://127.0.0.1:{port}/metrics", count, max_seconds=120)
    finally:
        await runner.cleanup()
