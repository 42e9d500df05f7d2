"""HTTP endpoints served by aiohttp on 127.0.0.1, parsed back with prometheus_client."""

from __future__ import annotations

import gzip
from typing import Any

import pytest
import respx
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse

from scrapejobs_exporter.config import parse_config
from scrapejobs_exporter.exporter import Exporter
from scrapejobs_exporter.server import build_app, parse_listen_address
from tests.conftest import seed
from tests.helpers import samples

CONFIG = """
brightdata:
  api_token: t
  base_url: https://bd.test
  jobs: [j_ma13y9ay1piehrso8r]
"""


async def _client(exporter: Exporter) -> TestClient:  # type: ignore[type-arg]
    client = TestClient(TestServer(build_app(exporter), host="127.0.0.1", port=0))
    await client.start_server()
    return client


async def test_endpoints() -> None:
    exporter = Exporter(parse_config(CONFIG, env={}))
    client = await _client(exporter)
    try:
        for path in ("/healthz", "/-/healthy"):
            assert (await client.get(path)).status == 200
        for path in ("/readyz", "/-/ready"):
            assert (await client.get(path)).status == 503
        with respx.mock() as router:
            router.get("https://bd.test/dca/log/j_ma13y9ay1piehrso8r").respond(
                json=seed("job_log_done")
            )
            await exporter.poller.run_cycle()
        assert (await client.get("/readyz")).status == 200
        assert (await client.get("/-/ready")).status == 200

        plain = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
        assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        parsed = samples(await plain.text())
        job = (("collector", "c_m9im5n7v82p2y35la"), ("job_id", "j_ma13y9ay1piehrso8r"))
        assert parsed[("brightdata_job_duration_seconds", job)] == 71.459

        om = await client.get(
            "/metrics",
            headers={
                "Accept": "application/openmetrics-text;version=1.0.0",
                "Accept-Encoding": "gzip",
            },
            auto_decompress=False,
        )
        assert om.headers["Content-Type"].startswith("application/openmetrics-text")
        assert om.headers["Content-Encoding"] == "gzip"
        body = gzip.decompress(await om.read()).decode()
        names = {f.name for f in om_parse(body)}
        assert "scrapejobs_exporter_api_requests" in names and "brightdata_job_status" in names

        landing = await client.get("/")
        assert landing.status == 200 and "/metrics" in await landing.text()
    finally:
        await client.close()
        await exporter.stop()


async def test_scrape_never_calls_the_api() -> None:
    exporter = Exporter(parse_config(CONFIG, env={}))
    client = await _client(exporter)
    try:
        with respx.mock(assert_all_called=False) as router:
            route = router.route()
            for _ in range(3):
                assert (await client.get("/metrics")).status == 200
            assert not route.called
    finally:
        await client.close()
        await exporter.stop()


def test_parse_listen_address() -> None:
    assert parse_listen_address(":9842").host is None
    assert parse_listen_address("127.0.0.1:0").port == 0
    assert parse_listen_address("[::1]:9842").host == "::1"
    for bad in ("9842", "host:port", "1.2.3.4:99999"):
        try:
            parse_listen_address(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


async def test_a_scrape_holds_the_render_while_it_is_sent() -> None:
    """The render steps aside while a scrape is served (`scrapejobs_exporter.render_scheduling`): the handler
    marks it from before the page is picked until it has been written."""
    exporter = Exporter(parse_config(CONFIG, env={}))
    seen: list[bool] = []
    page = exporter.exposition

    class Watching:
        def pick(self, accept: str | None) -> object:
            seen.append(exporter.serve_first.serving_now)
            return page.pick(accept)

    exporter.exposition = Watching()  # type: ignore[assignment]
    client = await _client(exporter)
    try:
        for encoding in ("gzip", "identity"):
            response = await client.get("/metrics", headers={"Accept-Encoding": encoding})
            assert response.status == 200
    finally:
        await client.close()
        await exporter.stop()
    assert seen == [True, True] and not exporter.serve_first.serving_now


async def test_a_gzipped_scrape_sends_the_rendered_member_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The client gets the rendered bytes, written a part at a time: the head, each region of
    the segment whole (see `exposition.REGION_SIZE`), the tail; no copy of the page made."""
    from prometheus_client import CollectorRegistry

    from scrapejobs_exporter import exposition as module
    from scrapejobs_exporter.exposition import Exposition, Piece

    monkeypatch.setattr(module, "REGION_SIZE", 16 * 1024)
    line = 'brightdata_job_lines{job_id="j_%08x",collector="c_x"} 1\n'
    texts = [
        "".join(line % (n * 2654435761 % 2**32) for n in range(k, k + 600))
        for k in range(0, 9000, 600)
    ]
    page = Exposition.build(CollectorRegistry(), [Piece.of(text) for text in texts])
    assert len(page.openmetrics.segment) >= 3
    exporter = Exporter(parse_config(CONFIG, env={}))
    exporter.exposition = page
    written: list[object] = []
    real = web.StreamResponse.write

    async def write(self: web.StreamResponse, data: Any) -> None:
        written.append(data)
        await real(self, data)

    monkeypatch.setattr(web.StreamResponse, "write", write)
    client = TestClient(TestServer(build_app(exporter, "/metrics")))
    await client.start_server()
    try:
        for accept in ("application/openmetrics-text;version=1.0.0", "text/plain"):
            response = await client.get(
                "/metrics",
                headers={"Accept": accept, "Accept-Encoding": "gzip"},
                auto_decompress=False,
            )
            served = page.pick(accept)
            assert await response.read() == served.gzipped
            assert int(response.headers["Content-Length"]) == served.size
            assert written == list(served.parts)
            assert all(a is b for a, b in zip(written[1:-1], served.segment, strict=True))
            written.clear()
        assert gzip.decompress(page.text.gzipped).decode() == "".join(texts)
    finally:
        await client.close()
        await exporter.stop()
