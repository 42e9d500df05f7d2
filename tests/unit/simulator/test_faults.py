"""Fault injection: every kind, rates, path filters and clearing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from scrapejobs_exporter.simulator import SimulatorConfig, SimulatorServer
from tests.unit.simulator.test_api import AIT, BRD, client, config

__all__ = ["client"]  # the shared fixture, used by the tests below


@pytest.fixture
async def server() -> AsyncIterator[SimulatorServer]:
    sim = SimulatorServer(config(scale=200, seed=5))
    await sim.start()
    yield sim
    await sim.stop()


async def add_fault(client: httpx.AsyncClient, **rule: Any) -> None:
    response = await client.post("/_sim/faults", json=rule)
    assert response.status_code == 200, response.text


async def a_job_id(client: httpx.AsyncClient) -> str:
    truth = (await client.get("/_sim/state")).json()
    job_id: str = truth["brightdata"]["jobs"][-1]["id"]
    return job_id


async def test_http_500_and_503(client: httpx.AsyncClient) -> None:
    await add_fault(client, fault="http_500", path="^/dca/")
    assert (await client.get("/dca/collectors_list", headers=BRD)).status_code == 500
    assert (await client.get("/v1/scrape/jobs", headers=AIT)).status_code == 200
    await client.delete("/_sim/faults")
    await add_fault(client, fault="http_503")
    response = await client.get("/v1/scrape/jobs", headers=AIT)
    assert response.status_code == 503
    assert response.json()["success"] is False


async def test_http_429_headers(client: httpx.AsyncClient) -> None:
    await add_fault(client, fault="http_429", retry_after=7)
    brd = await client.get("/dca/collectors_list", headers=BRD)
    assert brd.status_code == 429
    assert brd.headers["Retry-After"] == "7"
    assert brd.headers["x-brd-error"] == "Requests rate from account is too high"
    assert brd.headers["x-brd-error-code"] == "client_10110"
    ait = await client.get("/v1/scrape/jobs", headers=AIT)
    assert ait.status_code == 429 and ait.headers["Retry-After"] == "7"
    assert "x-brd-error" not in ait.headers


async def test_timeout_holds_until_client_gives_up(client: httpx.AsyncClient) -> None:
    await add_fault(client, fault="timeout", path="/dca/log/")
    began = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        await client.get("/dca/log/j_x", headers=BRD, timeout=0.5)
    assert time.monotonic() - began < 5
    assert (await client.get("/dca/collectors_list", headers=BRD)).status_code == 200


async def test_timeout_does_not_block_shutdown() -> None:
    sim = SimulatorServer(SimulatorConfig(manual_clock=True, scale=50))
    await sim.start()
    async with httpx.AsyncClient(base_url=sim.url) as c:
        await add_fault(c, fault="timeout")
        pending = asyncio.create_task(c.get("/dca/collectors_list", headers=BRD, timeout=30))
        await asyncio.sleep(0.3)
        began = time.monotonic()
        await sim.stop()
        assert time.monotonic() - began < 5
        with pytest.raises(httpx.HTTPError):
            await pending


async def test_slow_answers_after_delay(client: httpx.AsyncClient) -> None:
    await add_fault(client, fault="slow", delay=0.3)
    began = time.monotonic()
    response = await client.get("/dca/collectors_list", headers=BRD)
    assert response.status_code == 200
    assert time.monotonic() - began >= 0.3


async def test_reset_drops_connection(client: httpx.AsyncClient) -> None:
    await add_fault(client, fault="reset")
    with pytest.raises(httpx.TransportError):
        await client.get("/dca/collectors_list", headers=BRD)
    log = (await client.get("/_sim/requests")).json()
    assert log[-1]["status"] == 0


async def test_bad_json(client: httpx.AsyncClient) -> None:
    await add_fault(client, fault="bad_json")
    response = await client.get("/dca/collectors_list", headers=BRD)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)


async def test_html(client: httpx.AsyncClient) -> None:
    await add_fault(client, fault="html")
    response = await client.get("/v1/scrape/jobs", headers=AIT)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<html>" in response.text


async def test_wrong_types(client: httpx.AsyncClient) -> None:
    job_id = await a_job_id(client)
    await add_fault(client, fault="wrong_types")
    body = (await client.get(f"/dca/log/{job_id}", headers=BRD)).json()
    assert isinstance(body["status"], int)
    assert not isinstance(body["pages"], int)


async def test_missing_fields(client: httpx.AsyncClient) -> None:
    job_id = await a_job_id(client)
    normal = (await client.get(f"/dca/log/{job_id}", headers=BRD)).json()
    await add_fault(client, fault="missing_fields")
    bodies = [(await client.get(f"/dca/log/{job_id}", headers=BRD)).json() for _ in range(20)]
    assert all(set(b) <= set(normal) for b in bodies)
    assert any(len(b) < len(normal) for b in bodies)
    assert any("status" not in b for b in bodies)


async def test_unknown_status(client: httpx.AsyncClient) -> None:
    await add_fault(client, fault="unknown_status")
    body = (await client.get("/v1/scrape/jobs?limit=3", headers=AIT)).json()
    assert {j["status"] for j in body["jobs"]} == {"mystery_state"}


async def test_capitalised_keys(client: httpx.AsyncClient) -> None:
    job_id = await a_job_id(client)
    await add_fault(client, fault="capitalised_keys")
    log = (await client.get(f"/dca/log/{job_id}", headers=BRD)).json()
    assert {"Id", "Status", "Collector", "Pages_left", "Navigations", "Success_rate"} <= set(log)
    assert {"dup_inputs", "created", "trigger"} <= set(log)
    other = (await client.get("/dca/collectors_list", headers=BRD)).json()
    assert {"Total", "Offset", "Limit", "Data"} == set(other)
    assert "Id" in other["Data"][0]


async def test_legacy_capitalised_flag() -> None:
    sim = SimulatorServer(SimulatorConfig(manual_clock=True, scale=50, legacy_capitalised=True))
    await sim.start()
    try:
        async with httpx.AsyncClient(base_url=sim.url) as c:
            job_id = (await c.get("/_sim/state")).json()["brightdata"]["jobs"][0]["id"]
            body = (await c.get(f"/dca/log/{job_id}", headers=BRD)).json()
        assert "Status" in body and "Job_time" in body and "finished" in body
        assert "status" not in body
    finally:
        await sim.stop()


async def test_huge_body(client: httpx.AsyncClient) -> None:
    await add_fault(client, fault="huge_body", path="collectors_list")
    response = await client.get("/dca/collectors_list", headers=BRD)
    assert len(response.content) >= 20 * 1024 * 1024
    assert "data" in response.json()


async def test_brd_error_header(client: httpx.AsyncClient) -> None:
    await add_fault(client, fault="brd_error_header")
    response = await client.get("/dca/collectors_list", headers=BRD)
    assert response.status_code == 200 and "x-brd-error" in response.headers


async def test_rate_and_listing_and_clearing(client: httpx.AsyncClient) -> None:
    await add_fault(client, fault="http_500", rate=0.5, path="^/v1/")
    await add_fault(client, fault="slow", rate=0.0, delay=9)
    rules = (await client.get("/_sim/faults")).json()
    assert [r["fault"] for r in rules] == ["http_500", "slow"]
    codes = [(await client.get("/v1/scrape/jobs", headers=AIT)).status_code for _ in range(60)]
    assert 10 < codes.count(500) < 50
    assert (await client.get("/api/v1/scrape/jobs", headers=AIT)).status_code == 200
    truth = (await client.get("/_sim/state")).json()
    assert truth["requests"]["GET /v1/scrape/jobs"] == 60
    await client.delete("/_sim/faults")
    assert (await client.get("/_sim/faults")).json() == []
    assert (await client.get("/v1/scrape/jobs", headers=AIT)).status_code == 200


@pytest.mark.parametrize(
    "rule",
    [{"fault": "nope"}, {"fault": "http_500", "rate": 2}, {"fault": "slow", "path": "("}, []],
)
async def test_bad_fault_specs_are_rejected(client: httpx.AsyncClient, rule: Any) -> None:
    assert (await client.post("/_sim/faults", json=rule)).status_code == 400


async def test_faults_do_not_change_the_world(client: httpx.AsyncClient) -> None:
    before = (await client.get("/_sim/state")).json()
    await add_fault(client, fault="wrong_types")
    await client.get("/dca/collectors_list", headers=BRD)
    after = (await client.get("/_sim/state")).json()
    for counts in ("requests", "rate_limits"):
        before.pop(counts)
        after.pop(counts)
    assert before == after
