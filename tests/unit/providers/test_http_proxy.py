"""Outbound proxies: the environment's HTTPS_PROXY / HTTP_PROXY / NO_PROXY (httpx's trust_env
rules) and the per-provider `proxy_url`, through a real forwarding proxy on 127.0.0.1 that
counts what passes through it."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from aiohttp import web

from scrapejobs_exporter.config import ConfigError, load_config, parse_config
from scrapejobs_exporter.exporter import Exporter
from scrapejobs_exporter.providers.http import ApiError, HttpClient
from scrapejobs_exporter.resilience import ProviderGate
from scrapejobs_exporter.simulator import SimulatorConfig, SimulatorServer
from scrapejobs_exporter.telemetry import Telemetry
from tests.e2e import LOOPBACK, free_port
from tests.helpers import values
from tests.unit.test_webconfig import Pki, pki  # noqa: F401  (the certificates fixture)

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


class ForwardProxy:
    """A forwarding HTTP proxy: absolute-form requests (`GET http://host/path`) are sent on
    with `Connection: close`, so each one is a connection of its own and counted; `CONNECT
    host:port` opens a tunnel, whose upstream port is kept so that the server behind can tell
    which of its connections came through the proxy."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []  # (method, absolute URL)
        self.tunnels: list[str] = []  # CONNECT targets
        self.upstream_ports: set[int] = set()  # local ports of the proxy's upstream sockets
        self.url = ""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> ForwardProxy:
        self._server = await asyncio.start_server(self._handle, LOOPBACK, 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://{LOOPBACK}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, target, version = request_line.split(" ")
            if method == "CONNECT":
                await self._tunnel(target, reader, writer)
            else:
                await self._forward(method, target, version, header_lines, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _upstream(self, host: str, port: int) -> tuple[Any, asyncio.StreamWriter]:
        up_reader, up_writer = await asyncio.open_connection(host, port)
        self.upstream_ports.add(up_writer.get_extra_info("sockname")[1])
        return up_reader, up_writer

    async def _tunnel(
        self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host, port = target.rsplit(":", 1)
        self.tunnels.append(target)
        up_reader, up_writer = await self._upstream(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))

    async def _forward(
        self,
        method: str,
        target: str,
        version: str,
        header_lines: list[str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        url = urlsplit(target)
        assert url.scheme == "http" and url.hostname, f"not an absolute-form request: {target}"
        self.requests.append((method, target))
        hop = ("connection:", "proxy-connection:", "proxy-authorization:", "keep-alive:")
        headers = [h for h in header_lines if h and not h.lower().startswith(hop)]
        length = next(
            (int(h.split(":", 1)[1]) for h in headers if h.lower().startswith("content-length:")),
            0,
        )
        body = await reader.readexactly(length) if length else b""
        up_reader, up_writer = await self._upstream(url.hostname, url.port or 80)
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        lines = [f"{method} {path} {version}", *headers, "Connection: close", "", ""]
        up_writer.write("\r\n".join(lines).encode("latin-1") + body)
        await up_writer.drain()
        await _copy(up_reader, writer)
        up_writer.close()


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    with contextlib.suppress(OSError):
        sink.write_eof()


@pytest.fixture(autouse=True)
def _no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    server = SimulatorServer(SimulatorConfig(seed=3, scale=40, manual_clock=True))
    await server.start()
    yield server
    await server.stop()


def _config(sim: SimulatorServer, extra: str = "") -> str:
    c = sim.config
    return (
        f"brightdata:\n  api_token: {c.brightdata_token}\n  base_url: {sim.url}\n"
        f"  collectors: all\n  ai_flows: all\n  max_requests_per_minute: 100000\n{extra}"
        f"aitronos:\n  api_key: {c.aitronos_key}\n  base_url: {sim.url}\n"
        f"  path_prefix: /api/v1\n  discover: true\n  max_requests_per_minute: 100000\n{extra}"
    )


async def _api_requests(sim: SimulatorServer) -> int:
    async with httpx.AsyncClient(trust_env=False) as client:
        return len((await client.get(f"{sim.url}/_sim/requests")).json())


async def _one_cycle(text: str, tmp_path: Path) -> tuple[Exporter, int]:
    path = tmp_path / "config.yml"
    path.write_text(text)
    exporter = Exporter(load_config(path))
    try:
        result = await exporter.poller.run_cycle()
    finally:
        await exporter.stop()
    return exporter, result.failed


async def test_http_proxy_from_the_environment_carries_every_request(
    sim: SimulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        exporter, failed = await _one_cycle(_config(sim), tmp_path)
    assert failed == 0 and len(list(exporter.store)) > 20
    sent = await _api_requests(sim)
    assert sent >= 5
    assert len(proxy.requests) == sent  # every provider request, and nothing else
    assert all(url.startswith(sim.url + "/") for _, url in proxy.requests)
    paths = {urlsplit(url).path.split("/")[1] for _, url in proxy.requests}
    assert {"dca", "api", "datasets"} & paths >= {"dca", "api"}  # both providers
    assert {"brightdata", "aitronos"} == {t.provider for t in exporter.store}


async def test_no_proxy_exempts_the_provider(
    sim: SimulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", LOOPBACK)
        _, failed = await _one_cycle(_config(sim), tmp_path)
    assert failed == 0 and await _api_requests(sim) >= 5
    assert proxy.requests == []


async def test_a_dead_proxy_in_the_environment_makes_requests_fail(
    sim: SimulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://{LOOPBACK}:{free_port()}")  # nothing listens
    exporter, _ = await _one_cycle(
        _config(sim).replace("discover: true", "jobs: [job_1]"), tmp_path
    )
    assert await _api_requests(sim) == 0
    errors = values(exporter.telemetry.api_errors)
    assert errors and {labels[2] for labels in errors} == {"connect"}


async def test_proxy_url_in_the_config_wins_over_the_environment(
    sim: SimulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://{LOOPBACK}:{free_port()}")  # dead: not used
    async with ForwardProxy() as proxy:
        text = _config(sim, extra=f"  proxy_url: {proxy.url}\n")
        _, failed = await _one_cycle(text, tmp_path)
    assert failed == 0
    assert len(proxy.requests) == await _api_requests(sim) >= 5


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in values.items():
            patch.setenv(name, value)
        yield


async def test_https_proxy_tunnels_https_requests(pki: Pki) -> None:  # noqa: F811
    """An https:// provider through HTTPS_PROXY: a CONNECT tunnel, and every request the
    provider receives arrives on a connection the proxy opened."""
    peers: list[int] = []

    async def job(request: web.Request) -> web.Response:
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peername")[1])
        return web.json_response({"id": request.match_info["id"], "status": "running"})

    app = web.Application()
    app.router.add_get("/dca/log/{id}", job)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port, ssl_context=context).start()
    try:
        async with ForwardProxy() as proxy:
            # The provider's CA comes from SSL_CERT_FILE, which trust_env honours as well.
            with _env(HTTPS_PROXY=proxy.url, SSL_CERT_FILE=str(pki.ca)):
                gate = ProviderGate("brightdata", 100, Telemetry())
                client = HttpClient(gate, f"https://{LOOPBACK}:{port}", {}, 5)
            try:
                for n in range(5):
                    body = await client.fetch("log", f"/dca/log/j_{n}", lambda b: b)
                    assert body["id"] == f"j_{n}"
            finally:
                await client.aclose()
        assert proxy.tunnels and set(proxy.tunnels) == {f"{LOOPBACK}:{port}"}
        assert len(peers) == 5 and set(peers) <= proxy.upstream_ports
    finally:
        await runner.cleanup()


async def test_a_dead_https_proxy_fails_https_requests(pki: Pki) -> None:  # noqa: F811
    with _env(HTTPS_PROXY=f"http://{LOOPBACK}:{free_port()}", SSL_CERT_FILE=str(pki.ca)):
        gate = ProviderGate("brightdata", 100, Telemetry())
        client = HttpClient(gate, f"https://{LOOPBACK}:{free_port()}", {}, 2)
    try:
        with pytest.raises(ApiError) as raised:
            await client.fetch("log", "/dca/log/j_1", lambda b: b)
        assert raised.value.reason == "connect"
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    "value",
    [
        "proxy.example:3128",  # no scheme
        "ftp://proxy.example",
        "http://proxy.example:3128/path",
        "http://",
        "http://user:secret-pass@ proxy",
    ],
)
def test_proxy_url_is_validated_without_echoing_it(value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(f"brightdata:\n  api_token: t\n  proxy_url: '{value}'\n", env={})
    [problem] = raised.value.problems
    assert problem.startswith("brightdata.proxy_url: invalid proxy URL")
    assert "secret-pass" not in problem


@pytest.mark.parametrize(
    "value", ["http://proxy.example:3128", "https://u:p@proxy.example", "http://[::1]:8080"]
)
def test_proxy_url_accepted(value: str) -> None:
    config = parse_config(f"aitronos:\n  api_key: k\n  proxy_url: '{value}'\n", env={})
    assert config.aitronos is not None and config.aitronos.proxy_url == value
