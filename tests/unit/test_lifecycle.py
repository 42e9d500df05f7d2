"""One lifecycle for `run`, `demo`, `simulate` and `watch`: the exporter as an async context
manager, signals, exit codes. Signals are sent to this very process; the handlers are the event
loop's own."""

from __future__ import annotations

import asyncio
import os
import signal
import socket

import httpx
import pytest
import respx

from scrapejobs_exporter.config import parse_config
from scrapejobs_exporter.exporter import Exporter
from scrapejobs_exporter.lifecycle import (
    EXIT_FAILED,
    EXIT_OK,
    bounded,
    serve_until_signal,
    stop_on_signals,
)
from scrapejobs_exporter.server import ListenAddress, Server

CONFIG = """
poll_interval: 1h
brightdata:
  api_token: t
  base_url: https://bd.test
  jobs: [j_1]
"""


async def test_the_exporter_polls_inside_its_context_and_stops_on_leaving() -> None:
    with respx.mock() as router:
        route = router.get("https://bd.test/dca/log/j_1").respond(json={"status": "running"})
        async with Exporter(parse_config(CONFIG, env={})) as exporter:
            for _ in range(200):
                if exporter.poller.ready:
                    break
                await asyncio.sleep(0.05)
            assert exporter.poller.ready and route.call_count == 1
        calls = route.call_count
        await asyncio.sleep(0.1)
        assert route.call_count == calls  # stopped: no more polls
        assert exporter.providers.brightdata is not None
        assert exporter.providers.brightdata.http._client.is_closed


async def test_signals_stop_and_sighup_reloads() -> None:
    reloads: list[None] = []

    async def reload() -> None:
        reloads.append(None)

    with stop_on_signals(reload) as stop:
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.sleep(0.05)
        assert reloads == [None] and not stop.is_set()
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(stop.wait(), 5)
    # The handlers are gone with the context: the default ones are back.
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


async def test_bounded_gives_up_on_a_step_that_hangs() -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    await bounded(asyncio.sleep(30), 0.05)
    assert loop.time() - began < 5


class _Recorder:
    def __init__(self, name: str, log: list[str], fail: bool = False) -> None:
        self.name, self.log, self.fail = name, log, fail

    async def start(self) -> None:
        self.log.append(f"start {self.name}")
        if self.fail:
            raise OSError(98, f"cannot listen on {self.name}: Address already in use")

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")


async def test_services_start_in_order_and_stop_in_reverse_on_sigint() -> None:
    log: list[str] = []

    def ready() -> None:
        log.append("ready")
        asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGINT)

    services = [_Recorder("a", log), _Recorder("b", log)]
    assert await serve_until_signal(services, ready=ready) == EXIT_OK
    assert log == ["start a", "start b", "ready", "stop b", "stop a"]


async def test_a_service_that_cannot_start_ends_it_with_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[str] = []
    services = [_Recorder("a", log, fail=True), _Recorder("b", log)]
    assert await serve_until_signal(services, ready=lambda: log.append("ready")) == EXIT_FAILED
    assert log == ["start a", "stop b", "stop a"]  # b never started; every one released
    assert [r.getMessage() for r in caplog.records] == [
        "cannot listen on a: Address already in use"
    ]


async def test_run_serves_then_ends_with_exit_ok_on_sigterm() -> None:
    exporter = Exporter(parse_config(CONFIG, env={}))
    server = Server(exporter, ListenAddress("127.0.0.1", 0), "/metrics")
    scraped: list[httpx.Response] = []

    async def scrape_then_stop() -> None:
        async with httpx.AsyncClient() as client:
            scraped.append(await client.get(f"http://127.0.0.1:{server.port}/metrics"))
        os.kill(os.getpid(), signal.SIGTERM)

    tasks: list[asyncio.Task[None]] = []
    with respx.mock(assert_all_called=False) as router:
        router.route(host="127.0.0.1").pass_through()
        router.get("https://bd.test/dca/log/j_1").respond(json={"status": "running"})
        ready = lambda: tasks.append(asyncio.ensure_future(scrape_then_stop()))  # noqa: E731
        code = await asyncio.wait_for(serve_until_signal([server, exporter], ready=ready), 30)
    await tasks[0]
    assert code == EXIT_OK and server.port > 0
    assert scraped[0].status_code == 200
    assert "process_resident_memory_bytes" in scraped[0].text


async def test_a_taken_port_fails_at_once_without_calling_a_provider(
    caplog: pytest.LogCaptureFixture,
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        exporter = Exporter(parse_config(CONFIG, env={}))
        server = Server(exporter, ListenAddress("127.0.0.1", port), "/metrics")
        with respx.mock(assert_all_called=False) as router:
            route = router.get("https://bd.test/dca/log/j_1").respond(json={})
            code = await serve_until_signal([server, exporter])
        assert code == EXIT_FAILED and not route.called
        [line] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert line.startswith(f"cannot listen on 127.0.0.1:{port}: ")
    finally:
        taken.close()
