"""Per-account rate limits: Bright Data's 100/min window and IP block, Aitronos' token buckets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from scrapejobs_exporter.simulator import (
    DEFAULT_AITRONOS_KEY,
    DEFAULT_BRIGHTDATA_TOKEN,
    SimulatorConfig,
    SimulatorServer,
)
from scrapejobs_exporter.simulator.ratelimits import (
    AITRONOS_PLANS,
    AitronosLimit,
    AitronosPlan,
    Served,
)

START = 1_788_000_000.0
BRD = {"Authorization": f"Bearer {DEFAULT_BRIGHTDATA_TOKEN}"}
AIT = {"X-API-Key": DEFAULT_AITRONOS_KEY}
# Three Bright Data endpoints of two API families: the limit is across all of them.
BRD_PATHS = ("/dca/collectors_list", "/dca/log/j_unknown", "/datasets/v3/snapshots?dataset_id=gd_x")


async def started(**overrides: Any) -> SimulatorServer:
    base: dict[str, Any] = {"manual_clock": True, "start_time": START, "scale": 50, "seed": 2}
    sim = SimulatorServer(SimulatorConfig(**{**base, **overrides}))
    await sim.start()
    return sim


@pytest.fixture
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    sim = await started(**getattr(request, "param", {}))
    async with httpx.AsyncClient(base_url=sim.url, timeout=10) as c:
        yield c
    await sim.stop()


async def limits(client: httpx.AsyncClient) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get("/_sim/state?compact=1")).json()["rate_limits"]
    return body


async def advance(client: httpx.AsyncClient, seconds: float) -> None:
    assert (await client.post("/_sim/advance", json={"seconds": seconds})).status_code == 200


async def brightdata_calls(client: httpx.AsyncClient, count: int) -> list[httpx.Response]:
    return [await client.get(BRD_PATHS[i % len(BRD_PATHS)], headers=BRD) for i in range(count)]


# ----- Bright Data ---------------------------------------------------------------


async def test_brightdata_101st_request_in_a_minute_gets_429(client: httpx.AsyncClient) -> None:
    answers = await brightdata_calls(client, 100)
    assert {r.status_code for r in answers} == {200, 404}  # 404: the unknown job, still served
    await advance(client, 59.9)
    refused = (await brightdata_calls(client, 1))[0]
    assert refused.status_code == 429
    assert refused.headers["x-brd-error-code"] == "client_10110"
    assert refused.headers["x-brd-error"] == "Requests rate from account is too high"
    assert refused.headers["x-brd-err-msg"]
    assert refused.headers["Retry-After"] == "1"  # the first 100 leave the window at +60 s
    state = (await limits(client))["brightdata"]
    assert state["served"] == 100 and state["rate_limited"] == 1
    assert state["served_last_60s"] == 100 and state["busiest_60s"] == 100
    assert state["blocked"] is False
    await advance(client, 0.1)
    assert (await client.get("/dca/collectors_list", headers=BRD)).status_code == 200


async def test_brightdata_retry_after_is_when_the_window_has_room(
    client: httpx.AsyncClient,
) -> None:
    await brightdata_calls(client, 60)
    await advance(client, 20)
    await brightdata_calls(client, 40)
    refused = (await brightdata_calls(client, 1))[0]
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "40"  # the first 60 leave the window then
    await advance(client, 40)
    assert {r.status_code for r in await brightdata_calls(client, 60)} == {200, 404}
    assert (await brightdata_calls(client, 1))[0].status_code == 429


async def test_aitronos_requests_do_not_use_the_brightdata_limit(
    client: httpx.AsyncClient,
) -> None:
    await brightdata_calls(client, 100)
    assert (await client.get("/v1/scrape/jobs", headers=AIT)).status_code == 200
    assert (await brightdata_calls(client, 1))[0].status_code == 429


async def test_25_429s_within_five_minutes_block_the_ip(client: httpx.AsyncClient) -> None:
    for _ in range(24):  # 24 429s over 4 minutes: near the block, not in it
        await brightdata_calls_within_window(client)
        assert (await client.get("/dca/collectors_list", headers=BRD)).status_code == 429
        await advance(client, 10)
    await brightdata_calls_within_window(client)
    state = (await limits(client))["brightdata"]
    assert state["rate_limited_last_5m"] == 24 and state["blocked"] is False
    assert (await client.get("/dca/collectors_list", headers=BRD)).status_code == 429  # 25th
    blocked = await client.get("/dca/collectors_list", headers=BRD)
    assert blocked.status_code == 403 and "x-brd-error" in blocked.headers
    await advance(client, 3600)  # the block outlasts the window: support has to lift it
    for path in BRD_PATHS:
        assert (await client.get(path, headers=BRD)).status_code == 403
    assert (await client.get("/v1/scrape/jobs", headers=AIT)).status_code == 200
    state = (await limits(client))["brightdata"]
    assert state["blocked"] is True and state["blocked_since"] is not None
    assert state["rate_limited"] == 25 and state["refused_while_blocked"] == 4
    lifted = await client.post("/_sim/unblock")
    assert lifted.status_code == 200 and lifted.json()["blocked"] is False
    assert (await client.get("/dca/collectors_list", headers=BRD)).status_code == 200


async def brightdata_calls_within_window(client: httpx.AsyncClient) -> None:
    """Top the 60 s window up to 100 served again, so the next call is refused."""
    served = (await limits(client))["brightdata"]["served_last_60s"]
    answers = await brightdata_calls(client, 100 - served)
    assert all(r.status_code in (200, 404) for r in answers)


async def test_429s_spread_over_more_than_five_minutes_do_not_block(
    client: httpx.AsyncClient,
) -> None:
    for _ in range(30):
        await brightdata_calls_within_window(client)
        assert (await client.get("/dca/collectors_list", headers=BRD)).status_code == 429
        await advance(client, 13)  # 30 429s over 6.5 minutes: at most 24 in any five
    state = (await limits(client))["brightdata"]
    assert state["rate_limited"] == 30 and state["blocked"] is False


@pytest.mark.parametrize("client", [{"brightdata_per_minute": 5}], indirect=True)
async def test_brightdata_limit_is_configurable(client: httpx.AsyncClient) -> None:
    codes = [r.status_code for r in await brightdata_calls(client, 7)]
    assert codes.count(429) == 2


# ----- Aitronos ------------------------------------------------------------------


async def test_aitronos_burst_then_429_with_headers(client: httpx.AsyncClient) -> None:
    answers = [await client.get("/v1/scrape/jobs", headers=AIT) for _ in range(120)]
    assert {r.status_code for r in answers} == {200}
    assert [r.headers["X-RateLimit-Remaining"] for r in answers[:2]] == ["119", "118"]
    assert answers[-1].headers["X-RateLimit-Remaining"] == "0"
    # Full again once 120 tokens are refilled at 100 per minute: 72 s.
    assert answers[-1].headers["X-RateLimit-Reset"] == str(int(START) + 72)
    refused = await client.get("/v1/scrape/jobs/job_x/progress", headers=AIT)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert refused.headers["Retry-After"] == "1"  # one token comes back in 0.6 s
    assert refused.headers["X-RateLimit-Limit"] == "100"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    await advance(client, 0.6)
    again = await client.get("/v1/scrape/jobs/job_x/progress", headers=AIT)
    assert again.status_code == 404 and again.headers["X-RateLimit-Remaining"] == "0"
    await advance(client, 30)
    after = await client.get("/api/v1/scrape/jobs", headers=AIT)
    assert after.headers["X-RateLimit-Remaining"] == "49"  # 50 refilled in 30 s, one used
    state = (await limits(client))["aitronos"]
    assert state["served"] == 122 and state["rate_limited"] == 1
    assert state["busiest_60s"] == 122 and state["per_minute"] == 100
    assert state["burst"] == 120 and state["per_day"] == 10_000


@pytest.mark.parametrize(
    "client", [{"aitronos_per_day": 150, "aitronos_burst": 100}], indirect=True
)
async def test_aitronos_daily_quota(client: httpx.AsyncClient) -> None:
    for _ in range(100):
        assert (await client.get("/v1/scrape/jobs", headers=AIT)).status_code == 200
    await advance(client, 60)  # the minute bucket is full again, the day has 50 left
    answers = [await client.get("/v1/scrape/jobs", headers=AIT) for _ in range(51)]
    assert [r.status_code for r in answers].count(200) == 50
    assert answers[49].headers["X-RateLimit-Remaining"] == "0"  # the day's bucket tells
    refused = answers[50]
    assert refused.status_code == 429
    # 150 per day refill one token every 576 s; 60 s of refill already came in.
    retry = int(refused.headers["Retry-After"])
    assert 570 - 60 <= retry <= 576
    reset = int(refused.headers["X-RateLimit-Reset"])
    assert reset > START + 20 * 3600  # the day bucket is full again only in about a day
    state = (await limits(client))["aitronos"]
    assert state["rate_limited_daily_quota"] == 1


def test_standard_plan_at_100_per_minute_runs_out_in_under_two_hours() -> None:
    """The issue's arithmetic: a client at 100/min spends the 10,000/day in ~107 minutes."""
    t, limit = START, AitronosLimit(AITRONOS_PLANS["standard"], START)
    served = 0
    while True:
        refused, _ = limit.check(t, enforce=True)
        if refused is not None:
            break
        served += 1
        t += 0.6
    minutes = (t - START) / 60
    assert 100 < minutes < 120, minutes
    assert 10_700 <= served <= 10_800
    assert refused.status == 429 and limit.rate_limited_daily == 1
    assert 1 <= int(refused.headers["Retry-After"]) <= 9  # 10,000/day: a token per 8.64 s


@pytest.mark.parametrize("client", [{"aitronos_plan": "premium"}], indirect=True)
async def test_aitronos_premium_plan(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/scrape/jobs", headers=AIT)
    assert answer.headers["X-RateLimit-Limit"] == "1000"
    assert answer.headers["X-RateLimit-Remaining"] == "1199"
    assert (await limits(client))["aitronos"]["per_day"] == 100_000


# ----- switched off, and counting -----------------------------------------------


@pytest.mark.parametrize("client", [{"rate_limits": False}], indirect=True)
async def test_limits_off_count_but_never_refuse(client: httpx.AsyncClient) -> None:
    answers = await brightdata_calls(client, 150)
    assert 429 not in {r.status_code for r in answers}
    ait = [await client.get("/v1/scrape/jobs", headers=AIT) for _ in range(130)]
    assert {r.status_code for r in ait} == {200}
    assert "X-RateLimit-Limit" not in ait[0].headers
    state = await limits(client)
    assert state["enabled"] is False
    assert state["brightdata"]["served"] == 150 and state["brightdata"]["busiest_60s"] == 150
    assert state["brightdata"]["per_minute"] is None
    assert state["aitronos"]["busiest_60s"] == 130 and state["aitronos"]["rate_limited"] == 0


def test_busiest_window_slides() -> None:
    served = Served()
    for t in (0.0, 10.0, 20.0, 59.9, 60.0, 61.0, 200.0):
        served.add(t)
    assert served.busiest_60s == 5  # 10.0 .. 61.0 (0.0 has left the window at 60.0)
    assert served.busiest_60s_ending == 61.0
    assert len(served.window(200.0)) == 1


def test_requests_log_names_the_provider() -> None:
    plan = AitronosPlan(per_minute=2, burst=2, per_day=10)
    limit = AitronosLimit(plan, 0.0)
    outcomes = [limit.check(0.0, enforce=True)[0] for _ in range(3)]
    assert [o is None for o in outcomes] == [True, True, False]


async def test_requests_log_shows_provider_and_429(client: httpx.AsyncClient) -> None:
    await brightdata_calls(client, 101)
    log = (await client.get("/_sim/requests")).json()
    assert {e["provider"] for e in log} == {"brightdata"}
    assert [e["status"] for e in log].count(429) == 1


# ----- ground truth per object, and the speed control ----------------------------


async def test_running_and_finished_since_start_are_per_id(client: httpx.AsyncClient) -> None:
    before = (await client.get("/_sim/state?compact=1")).json()
    assert "brightdata" not in before and "aitronos" not in before
    running = before["running"]
    assert set(running) == {"studio_jobs", "snapshots", "ai_flows", "aitronos_jobs"}
    assert all(not ids for ids in before["finished_since_start"].values())
    job_id, job = next(iter(running["studio_jobs"].items()))
    assert job["status"] in ("building", "running", "paused") and job["collector"]
    assert job["created"] <= before["now"]
    await advance(client, 4 * 3600)
    after = (await client.get("/_sim/state?compact=1")).json()
    assert job_id not in after["running"]["studio_jobs"]
    ended = after["finished_since_start"]["studio_jobs"][job_id]
    assert ended["collector"] == job["collector"]
    assert before["now"] < ended["finished"] <= after["now"]
    # The per-id truth and the counts agree, kind by kind.
    for kind, counts in after["finished"].items():
        ids = after["finished_since_start"][kind]
        if kind in ("studio_jobs", "snapshots"):
            assert sum(sum(c.values()) for c in counts.values()) == len(ids)
        elif kind == "ai_flows":  # pending_answer ends a flow without being counted
            done = [i for i in ids.values() if i["status"] in ("done", "failed")]
            assert sum(counts.values()) == len(done)
        else:
            assert sum(counts.values()) == len(ids)
    later = after["now"] - 60
    recent = (await client.get(f"/_sim/state?compact=1&finished_since={later}")).json()
    for kind, ids in recent["finished_since_start"].items():
        assert all(row["finished"] > later for row in ids.values())
        assert len(ids) <= len(after["finished_since_start"][kind])


async def test_a_failed_job_moves_to_finished_at_once(client: httpx.AsyncClient) -> None:
    truth = (await client.get("/_sim/state?compact=1")).json()
    job_id = next(i for i, j in truth["running"]["studio_jobs"].items() if j["status"] == "running")
    assert (await client.post("/_sim/fail", json={"job_id": job_id})).status_code == 200
    after = (await client.get("/_sim/state?compact=1")).json()
    assert job_id not in after["running"]["studio_jobs"]
    assert after["finished_since_start"]["studio_jobs"][job_id]["status"] == "failed"
    assert after["finished_since_start"]["studio_jobs"][job_id]["finished"] == after["now"]


async def test_speed_zero_freezes_the_world_but_not_the_limits() -> None:
    sim = await started(manual_clock=False, speed=60.0)
    try:
        async with httpx.AsyncClient(base_url=sim.url) as c:
            frozen = await c.post("/_sim/speed", json={"speed": 0})
            assert frozen.status_code == 200
            first = (await c.get("/_sim/state?compact=1")).json()
            assert first["speed"] == 0.0
            again = (await c.get("/_sim/state?compact=1")).json()
            assert again["now"] == first["now"]
            assert (await c.post("/_sim/speed", json={"speed": -1})).status_code == 400
    finally:
        await sim.stop()


async def test_manual_clock_has_no_speed(client: httpx.AsyncClient) -> None:
    assert (await client.post("/_sim/speed", json={"speed": 2})).status_code == 409
