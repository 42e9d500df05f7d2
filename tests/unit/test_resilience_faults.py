"""The exporter against the simulator under every fault kind: it bends, never breaks.

Cycles are driven with `run_cycle()`; timings are shrunk (0.5 s request timeout, millisecond
backoffs, a breaker that reopens after 0.2 s) so the whole matrix runs in seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from scrapejobs_exporter.config import parse_config
from scrapejobs_exporter.exporter import Exporter
from scrapejobs_exporter.providers.http import HttpClient
from scrapejobs_exporter.resilience import Policy, ProviderGate
from scrapejobs_exporter.server import ListenAddress, Server
from scrapejobs_exporter.simulator import (
    DEFAULT_AITRONOS_KEY,
    DEFAULT_BRIGHTDATA_TOKEN,
    SimulatorConfig,
    SimulatorServer,
    run_simulator_in_thread,
)
from tests.helpers import value

FAST = Policy(
    retry_base=0.01,
    pause_base=0.05,
    pause_cap=0.2,
    max_pause_wait=1.0,
    window_limit=10_000,
    breaker_open=0.2,
    breaker_open_cap=0.4,
)
# Faults that leave no usable body: the targets must go down. The others are tolerated.
UNUSABLE = {
    "http_500": {},
    "http_503": {},
    "http_429": {"retry_after": 0},
    "timeout": {},
    "reset": {},
    "bad_json": {},
    "html": {},
    "huge_body": {},
    "brd_error_header": {},
}
TOLERATED = {
    "slow": {"delay": 0.1},
    "wrong_types": {},
    "missing_fields": {},
    "unknown_status": {},
    "capitalised_keys": {},
}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    # Faults, not the account limits, are under test here: the budget below is far above them.
    config = SimulatorConfig(
        scale=30, seed=11, manual_clock=True, running_fraction=0.6, rate_limits=False
    )
    with run_simulator_in_thread(config) as server:
        yield server


def running_targets(url: str) -> dict[str, list[str]]:
    truth = httpx.get(f"{url}/_sim/state", timeout=5).json()
    bd, ait = truth["brightdata"], truth["aitronos"]
    return {
        "jobs": [j["id"] for j in bd["jobs"] if j["status"] == "running"][:4],
        "snapshots": [s["id"] for s in bd["snapshots"]][:2],
        "ai_flows": [c["id"] for c in bd["collectors"]][:2],
        "aitronos": [j["job_id"] for j in ait["jobs"] if j["status"] == "processing"][:2]
        or [j["job_id"] for j in ait["jobs"]][:2],
    }


def config_text(url: str, ids: dict[str, list[str]], budget: int = 100_000) -> str:
    return f"""
poll_interval: 1s
request_timeout: 0.5s
brightdata:
  api_token: {DEFAULT_BRIGHTDATA_TOKEN}
  base_url: {url}
  max_requests_per_minute: {budget}
  jobs: [{", ".join(ids["jobs"])}]
  snapshots: [{", ".join(ids["snapshots"])}]
  ai_flows: [{", ".join(ids["ai_flows"])}]
aitronos:
  api_key: {DEFAULT_AITRONOS_KEY}
  base_url: {url}
  max_requests_per_minute: {budget}
  max_requests_per_day: null
  jobs: [{", ".join(ids["aitronos"])}]
"""


def speed_up(exporter: Exporter, policy: Policy = FAST) -> None:
    for client in (exporter.providers.brightdata, exporter.providers.aitronos):
        assert client is not None
        http: HttpClient = client.http
        per_minute = http.gate.per_minute
        http.gate = ProviderGate(http.provider, per_minute, exporter.telemetry, policy)


@pytest.fixture
async def running(sim: SimulatorServer) -> AsyncIterator[tuple[Exporter, Server]]:
    exporter = Exporter(parse_config(config_text(sim.url, running_targets(sim.url))))
    speed_up(exporter)
    server = Server(exporter, ListenAddress("127.0.0.1", 0), "/metrics")
    await server.start()
    yield exporter, server
    await server.stop()
    await exporter.stop()


async def set_fault(client: httpx.AsyncClient, url: str, fault: str, **extra: Any) -> None:
    await client.delete(f"{url}/_sim/faults")
    if fault:
        response = await client.post(f"{url}/_sim/faults", json={"fault": fault, **extra})
        assert response.status_code == 200, response.text


def live(exporter: Exporter) -> list[Any]:
    """Targets still polled each cycle (finished ones are not asked again)."""
    return [t for t in exporter.store if not getattr(t, "final", False)]


async def scrape(client: httpx.AsyncClient, server: Server) -> str:
    response = await client.get(f"http://127.0.0.1:{server.port}/metrics")
    assert response.status_code == 200
    return response.text


async def recover(exporter: Exporter) -> None:
    """Cycles until every live target is up again; bounded in count and time."""
    deadline = time.monotonic() + 10
    for _ in range(20):
        await exporter.poller.run_cycle()
        if all(t.up for t in live(exporter)) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.25)  # lets a 429 pause or an open circuit run out
    assert [t.target_id for t in live(exporter) if not t.up] == []


def assert_no_unhandled(records: list[logging.LogRecord]) -> None:
    bad = [
        r
        for r in records
        if r.exc_info or "Traceback" in r.getMessage() or r.levelno >= logging.ERROR
    ]
    assert bad == [], [r.getMessage() for r in bad]


async def test_every_fault_in_turn(
    sim: SimulatorServer,
    running: tuple[Exporter, Server],
    caplog: pytest.LogCaptureFixture,
) -> None:
    exporter, server = running
    caplog.set_level(logging.DEBUG)
    async with httpx.AsyncClient(timeout=10) as client:
        await exporter.poller.run_cycle()
        assert len(live(exporter)) >= 4
        assert all(t.up for t in live(exporter))
        for fault, extra in {**UNUSABLE, **TOLERATED}.items():
            await set_fault(client, sim.url, fault, **extra)
            for _ in range(2):
                await exporter.poller.run_cycle()
                await scrape(client, server)
            downs = [t.up for t in live(exporter)]
            if fault in UNUSABLE:
                assert not any(downs), fault
            else:
                assert all(downs), fault
            await set_fault(client, sim.url, "")
            await recover(exporter)
            assert "scrapejobs_exporter_target_up" in await scrape(client, server)
    assert_no_unhandled(caplog.records)


async def test_a_mix_of_faults(
    sim: SimulatorServer,
    running: tuple[Exporter, Server],
    caplog: pytest.LogCaptureFixture,
) -> None:
    exporter, server = running
    caplog.set_level(logging.DEBUG)
    async with httpx.AsyncClient(timeout=10) as client:
        await client.delete(f"{sim.url}/_sim/faults")
        for fault, extra in {**UNUSABLE, **TOLERATED}.items():
            rule = {"fault": fault, "rate": 0.07, **extra}
            assert (await client.post(f"{sim.url}/_sim/faults", json=rule)).status_code == 200
        for _ in range(4):
            await exporter.poller.run_cycle()
            await scrape(client, server)
        await set_fault(client, sim.url, "")
        await recover(exporter)
    assert_no_unhandled(caplog.records)


async def test_429_storm_stays_within_budget(sim: SimulatorServer) -> None:
    """A sustained 429 storm with a tiny budget: the simulator's log shows the exporter held it."""
    budget = 30
    exporter = Exporter(parse_config(config_text(sim.url, running_targets(sim.url), budget)))
    async with httpx.AsyncClient(timeout=10) as client:
        await set_fault(client, sim.url, "http_429", retry_after=0)
        since = time.time()
        try:
            await exporter.start()
            await asyncio.sleep(4.0)
        finally:
            await exporter.stop()
            await set_fault(client, sim.url, "")
        elapsed = time.time() - since
        log = (await client.get(f"{sim.url}/_sim/requests", params={"since": since})).json()
    bd = [e for e in log if not e["endpoint"].startswith(("GET /v1", "GET /api/v1"))]
    refused = [e for e in bd if e["status"] == 429]
    assert elapsed < 60
    assert len(bd) <= budget  # the window's bound: the budget in any 60 s
    assert 1 <= len(refused) <= 5  # the pause after a 429 holds every other call back
    assert value(exporter.telemetry.rate_limit_wait, "brightdata") > 0
