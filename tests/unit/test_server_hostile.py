"""Issue 17, items 9-12: clients of our server that are slow, idle, malformed or greedy."""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import socket
import time
import tracemalloc
from collections.abc import AsyncIterator

import aiohttp
import pytest

from scrapejobs_exporter import server as server_module
from scrapejobs_exporter.config import parse_config
from scrapejobs_exporter.exporter import Exporter
from scrapejobs_exporter.exposition import TEXT_TYPE, Exposition, RenderedFormat
from scrapejobs_exporter.server import Server, parse_listen_address

CONFIG = "brightdata:\n  api_token: t\n  base_url: https://bd.test\n  jobs: [j_1]\n"


@pytest.fixture
async def running(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Server]:
    monkeypatch.setattr(server_module, "IDLE_TIMEOUT", 1.0)
    exporter = Exporter(parse_config(CONFIG, env={}))
    server = Server(exporter, parse_listen_address("127.0.0.1:0"), "/metrics", max_connections=8)
    await server.start()
    yield server
    await server.stop()
    await exporter.stop()


async def get(port: int, path: str, **headers: str) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}", headers=headers) as response,
    ):
        return response.status, await response.read()


async def idle(port: int, count: int, first_bytes: bytes = b"") -> list[asyncio.StreamWriter]:
    writers = []
    for _ in range(count):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        if first_bytes:
            writer.write(first_bytes)
        writers.append(writer)
    await asyncio.sleep(0.05)
    return writers


async def test_item9_idle_connections_past_the_cap_do_not_keep_scrapes_out(
    running: Server,
) -> None:
    """9: idle and byte-at-a-time connections were never closed nor capped."""
    writers = await idle(running.port, 20) + await idle(running.port, 10, b"GET /metr")
    try:
        started = time.perf_counter()
        status, _ = await get(running.port, "/metrics")
        assert status == 200 and time.perf_counter() - started < 1.0
        assert len(running.limiter) <= 8
    finally:
        for writer in writers:
            writer.close()


async def test_item9_a_silent_or_trickling_connection_is_closed_after_the_idle_timeout(
    running: Server,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    trickle_reader, trickle = await asyncio.open_connection("127.0.0.1", running.port)
    try:
        started = time.perf_counter()
        for byte in b"GET /metrics HTTP/1.1\r\n":
            trickle.write(bytes([byte]))
            await asyncio.sleep(0.1)
            if trickle_reader.at_eof():
                break
        assert await asyncio.wait_for(reader.read(), 3.0) == b""  # closed by the server
        assert await asyncio.wait_for(trickle_reader.read(), 3.0) == b""
        assert time.perf_counter() - started < 3.5
    finally:
        writer.close()
        trickle.close()


@pytest.mark.parametrize(
    "raw",
    [b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
     b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03",
     b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"],
)  # fmt: skip
async def test_item10_malformed_requests_log_one_debug_line_without_a_traceback(
    running: Server, raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """10: aiohttp logged them at ERROR with tracebacks, 1.5 MB/s from any client."""
    caplog.set_level(logging.DEBUG)
    for _ in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        writer.write(raw)
        await writer.drain()
        await asyncio.wait_for(reader.read(), 3.0)
        writer.close()
    await asyncio.sleep(0.05)
    records = [r for r in caplog.records if r.name.startswith("aiohttp")]
    assert all(r.levelno <= logging.DEBUG and not r.exc_info for r in records), [
        (r.levelname, r.getMessage()) for r in records
    ]
    assert all("\n" not in r.getMessage() for r in records)


@pytest.mark.parametrize(
    ("query", "status"),
    [("limit=%C2%B2", 400), ("limit=" + "9" * 4301, 400), ("limit=-1", 400),
     ("limit=1e3", 400), ("q=" + "x" * 300, 400), ("limit=5", 200), ("q=j_1&limit=0", 200)],
)  # fmt: skip
async def test_item11_query_parameters_are_validated(
    running: Server, query: str, status: int
) -> None:
    """11: `limit=²` (or 4,301 digits) answered 500 with a traceback."""
    got, body = await get(running.port, "/api/targets?" + query)
    assert got == status, body
    if status == 400:
        assert b"error" in body and b"Traceback" not in body


def page_of(gzipped: bytes) -> Exposition:
    """A page whose segment is `gzipped` in two parts, the same in both formats."""
    half = len(gzipped) // 2
    rendered = RenderedFormat(TEXT_TYPE, b"", (gzipped[:half], gzipped[half:]), b"")
    return Exposition(rendered, rendered)


def big_page(megabytes: int) -> Exposition:
    line = b'brightdata_job_lines{job_id="j_%08d",collector="c_abcdefghijkl"} 12345\n'
    text = b"".join(line % n for n in range(megabytes * 1024 * 1024 // 64))
    return page_of(gzip.compress(text, 1))


async def test_item12_uncompressed_scrapes_are_streamed_without_a_copy_each(
    running: Server,
) -> None:
    """12: 30 concurrent uncompressed scrapes of an 18 MB page peaked at 1.6 GB."""
    page = big_page(8)
    expected = page.text.body
    exporter = running.app[server_module.EXPORTER_KEY]
    exporter.exposition = page
    sizes: list[int] = []

    async def scrape(session: aiohttp.ClientSession) -> None:
        url = f"http://127.0.0.1:{running.port}/metrics"
        async with session.get(url, headers={"Accept-Encoding": "identity"}) as response:
            assert "Content-Encoding" not in response.headers
            size = 0
            async for chunk in response.content.iter_chunked(1 << 16):
                size += len(chunk)
            sizes.append(size)

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        _, first = await get(running.port, "/metrics", **{"Accept-Encoding": "identity"})
        assert first == expected
        del first, expected
        tracemalloc.start()
        try:
            await asyncio.gather(*(scrape(session) for _ in range(6)))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert sizes == [len(page.text.body)] * 6
    # Six plain copies would be 48 MB; streaming holds a step per scrape and the buffers.
    assert peak < 16 << 20, peak


def test_default_connection_cap_follows_the_open_file_limit() -> None:
    cap = server_module.default_max_connections()
    assert 16 <= cap <= 1024


async def test_the_limiter_refuses_cheaply_when_every_connection_is_busy() -> None:
    calls: list[str] = []

    class Busy(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            calls.append("made")

    limiter = server_module.ConnectionLimiter(Busy, 1)
    first = limiter()
    assert isinstance(first, server_module._Connection)
    first.connection_made(FakeTransport())
    first.busy = 1
    assert isinstance(limiter(), server_module._Refused)
    first.busy = 0
    victim_transport = first.transport
    assert isinstance(limiter(), server_module._Connection)
    assert isinstance(victim_transport, FakeTransport) and victim_transport.aborted


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return socket.socket if name == "socket" else default


async def test_a_client_gone_during_a_gzipped_scrape_is_a_dropped_connection(
    running: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that leaves while a page of megabytes is being written costs one debug line,
    not an error with a traceback: a dropped connection is the client's business."""
    caplog.set_level(logging.DEBUG)
    # More than the socket buffers hold, and not compressible; the server checks no gzip.
    running.app[server_module.EXPORTER_KEY].exposition = page_of(os.urandom(24 << 20))
    for _ in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
        await writer.drain()
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        await reader.readexactly(1024)  # some of the body, far from all of it
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        writer.close()  # a reset: the server's next write fails
    await asyncio.sleep(0.2)
    records = [r for r in caplog.records if r.name.startswith(("aiohttp", "scrapejobs"))]
    assert all(r.levelno <= logging.DEBUG and not r.exc_info for r in records), [
        (r.levelname, r.getMessage()) for r in records
    ]
    # The server still answers.
    status, _ = await get(running.port, "/healthz")
    assert status == 200
