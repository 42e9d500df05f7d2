"""The simulator over HTTP: endpoints, quirks, auth, pagination and /_sim/*."""

from __future__ import annotations

import datetime as dt
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

START = 1_788_000_000.0  # 2026-08-29T10:40:00Z
BRD = {"Authorization": f"Bearer {DEFAULT_BRIGHTDATA_TOKEN}"}
AIT = {"X-API-Key": DEFAULT_AITRONOS_KEY}


def config(**overrides: Any) -> SimulatorConfig:
    base: dict[str, Any] = {"manual_clock": True, "start_time": START, "scale": 400, "seed": 3}
    return SimulatorConfig(**{**base, **overrides})


@pytest.fixture
async def server() -> AsyncIterator[SimulatorServer]:
    sim = SimulatorServer(config())
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def client(server: SimulatorServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as c:
        yield c


async def state(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/_sim/state")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def days(now: float) -> dict[str, str]:
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    return {"from_date": str(today - dt.timedelta(days=2)), "to_date": str(today)}


async def busiest_collector(client: httpx.AsyncClient) -> str:
    truth = await state(client)
    counts: dict[str, int] = {}
    for job in truth["brightdata"]["jobs"]:
        counts[job["collector"]] = counts.get(job["collector"], 0) + 1
    return max(counts, key=lambda c: counts[c])


def test_server_url_uses_the_bound_port(server: SimulatorServer) -> None:
    assert server.url.startswith("http://127.0.0.1:")
    assert not server.url.endswith(":0")


# ----- /dca/log and the jobs list ----------------------------------------------


async def test_dca_log_matches_ground_truth(client: httpx.AsyncClient) -> None:
    truth = await state(client)
    for job in truth["brightdata"]["jobs"][-20:]:
        response = await client.get(f"/dca/log/{job['id']}", headers=BRD)
        assert response.status_code == 200
        expected = {k: v for k, v in job.items() if k != "stuck"}
        assert response.json() == expected


async def test_dca_log_unknown_job_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/dca/log/j_doesnotexist", headers=BRD)
    assert response.status_code == 404
    assert response.json() == {"error": "Job not found"}


async def test_job_lifecycle_through_manual_clock(client: httpx.AsyncClient) -> None:
    truth = await state(client)
    job = next(
        j for j in truth["brightdata"]["jobs"] if j["status"] == "running" and j["stuck"] is None
    )
    statuses, pages_left = [], []
    for _ in range(400):
        body = (await client.get(f"/dca/log/{job['id']}", headers=BRD)).json()
        statuses.append(body["status"])
        pages_left.append(body["pages_left"])
        if body["status"] in ("done", "failed", "cancelled"):
            break
        assert "finished" not in body and "job_time" not in body
        await client.post("/_sim/advance", json={"seconds": 30})
    assert statuses[-1] in ("done", "failed", "cancelled")
    assert pages_left == sorted(pages_left, reverse=True)
    created = dt.datetime.fromisoformat(body["created"])
    started = dt.datetime.fromisoformat(body["started"])
    finished = dt.datetime.fromisoformat(body["finished"])
    assert body["queue_time"] == round((started - created).total_seconds() * 1000)
    assert body["job_time"] == round((finished - started).total_seconds() * 1000)


async def test_jobs_list_requires_dates_and_collector(client: httpx.AsyncClient) -> None:
    now = (await state(client))["now"]
    collector = await busiest_collector(client)
    missing_date = await client.get(
        "/dca/collector/jobs",
        params={"to_date": days(now)["to_date"], "collector": collector},
        headers=BRD,
    )
    assert missing_date.status_code == 400
    bad_date = await client.get(
        "/dca/collector/jobs",
        params={"from_date": "29/08/2026", "to_date": "2026-08-29", "collector": collector},
        headers=BRD,
    )
    assert bad_date.status_code == 400
    no_collector = await client.get("/dca/collector/jobs", params=days(now), headers=BRD)
    assert no_collector.status_code == 400
    assert no_collector.text == "Missing collector parameter"
    assert no_collector.headers["content-type"].startswith("text/plain")


async def test_jobs_list_paginates_with_total(client: httpx.AsyncClient) -> None:
    now = (await state(client))["now"]
    collector = await busiest_collector(client)
    params: dict[str, Any] = {**days(now), "collector": collector, "limit": 7}
    seen: list[str] = []
    total = None
    offset = 0
    while True:
        response = await client.get(
            "/dca/collector/jobs", params={**params, "offset": offset}, headers=BRD
        )
        page = response.json()
        assert page["offset"] == offset and page["limit"] == 7
        total = page["total"]
        seen += [row["id"] for row in page["data"]]
        assert all("collector" not in row for row in page["data"])
        offset += 7
        if offset >= total:
            break
    truth = await state(client)
    expected = {j["id"] for j in truth["brightdata"]["jobs"] if j["collector"] == collector}
    assert len(seen) == total == len(set(seen)) == len(expected)
    assert set(seen) == expected
    assert {i.split("_")[0] for i in seen} == {"j", "vj"}


async def test_jobs_list_limit_is_clamped_and_sorted(client: httpx.AsyncClient) -> None:
    now = (await state(client))["now"]
    collector = await busiest_collector(client)
    base = {**days(now), "collector": collector}
    big = await client.get("/dca/collector/jobs", params={**base, "limit": 9999}, headers=BRD)
    assert big.json()["limit"] == 500
    default = (await client.get("/dca/collector/jobs", params=base, headers=BRD)).json()
    assert default["limit"] == 50
    queued = [row["queued"] for row in default["data"]]
    assert queued == sorted(queued, reverse=True)
    ascending = (
        await client.get("/dca/collector/jobs", params={**base, "sort_asc": 1}, headers=BRD)
    ).json()
    assert [r["queued"] for r in ascending["data"]] == sorted(
        r["queued"] for r in ascending["data"]
    )


async def test_list_rows_agree_with_dca_log(client: httpx.AsyncClient) -> None:
    now = (await state(client))["now"]
    collector = await busiest_collector(client)
    page = (
        await client.get(
            "/dca/collector/jobs", params={**days(now), "collector": collector}, headers=BRD
        )
    ).json()
    for row in page["data"][:10]:
        log = (await client.get(f"/dca/log/{row['id']}", headers=BRD)).json()
        assert row["status"] == log["status"]
        assert row["failed_pages"] == log["fails"]
        assert row["data_lines"] == log["lines"]
        assert row["page_loads"] == log["navigations"]
        assert row["queued"] == log["created"]
        assert isinstance(row["trigger"], dict) and isinstance(log["trigger"], str)
        assert row["trigger"]["user"] == log["trigger"]


async def test_collectors_list(client: httpx.AsyncClient) -> None:
    body = (await client.get("/dca/collectors_list", headers=BRD)).json()
    assert body["total"] == len(body["data"]) >= 3
    assert all(c["id"].startswith("c_") for c in body["data"])
    paged = (await client.get("/dca/collectors_list?offset=1&limit=1", headers=BRD)).json()
    assert paged["data"] == body["data"][1:2]
    name = body["data"][0]["name"]
    searched = (await client.get(f"/dca/collectors_list?search={name}", headers=BRD)).json()
    assert [c["name"] for c in searched["data"]] == [name]


# ----- AI flow -----------------------------------------------------------------


async def test_ai_flow_validation(client: httpx.AsyncClient) -> None:
    collector = (await state(client))["brightdata"]["collectors"][0]["id"]
    url = f"/dca/collectors/{collector}/automate_template"
    bad_bodies = [
        {"description": "", "urls": ["https://example.com"]},
        {"description": "x" * 501, "urls": ["https://example.com"]},
        {"description": "ok", "urls": []},
        {"description": "ok", "urls": ["https://a.example", "https://b.example"]},
        {"description": "ok", "urls": ["ftp://example.com"]},
        {"urls": ["https://example.com"]},
    ]
    for body in bad_bodies:
        response = await client.post(url, json=body, headers=BRD)
        assert response.status_code == 422, body
        assert response.json()["validation_errors"]
    broken = await client.post(url, content=b"{not json", headers=BRD)
    assert broken.status_code == 400
    unknown = await client.post(
        "/dca/collectors/c_nope/automate_template",
        json={"description": "ok", "urls": ["https://example.com"]},
        headers=BRD,
    )
    assert unknown.status_code == 404


async def test_ai_flow_parallel_limit(client: httpx.AsyncClient) -> None:
    truth = await state(client)
    collectors = [c["id"] for c in truth["brightdata"]["collectors"]]
    active = sum(f["status"] in ("queued", "running") for f in truth["brightdata"]["ai_flows"])
    body = {"description": "Extract product data", "urls": ["https://example.com/p/1"]}
    for i in range(3 - active):
        response = await client.post(
            f"/dca/collectors/{collectors[i]}/automate_template", json=body, headers=BRD
        )
        assert response.status_code == 200
        answer = response.json()
        assert answer["id"].startswith("ia_") and isinstance(answer["queued"], bool)
    refused = await client.post(
        f"/dca/collectors/{collectors[-1]}/automate_template", json=body, headers=BRD
    )
    assert refused.status_code == 429
    assert refused.text == "Cannot run more than 3 jobs in parallel"
    await client.post("/_sim/advance", json={"seconds": 3600})
    again = await client.post(
        f"/dca/collectors/{collectors[-1]}/automate_template", json=body, headers=BRD
    )
    assert again.status_code == 200


async def test_ai_flow_progress(client: httpx.AsyncClient) -> None:
    truth = await state(client)
    ran = {f["collector"] for f in truth["brightdata"]["ai_flows"]}
    idle = [c["id"] for c in truth["brightdata"]["collectors"] if c["id"] not in ran]
    if idle:
        empty = await client.get(
            f"/dca/collectors/{idle[0]}/automate_template/progress", headers=BRD
        )
        assert empty.status_code == 200 and empty.json() == {}
    target = idle[0] if idle else truth["brightdata"]["collectors"][0]["id"]
    await client.post("/_sim/advance", json={"seconds": 3600})
    started = await client.post(
        f"/dca/collectors/{target}/automate_template",
        json={"description": "d", "urls": ["http://example.com"]},
        headers=BRD,
    )
    flow_id = started.json()["id"]
    progress_url = f"/dca/collectors/{target}/automate_template/progress"
    lengths = []
    for _ in range(200):
        body = (await client.get(progress_url, headers=BRD)).json()
        assert body["id"] == flow_id
        lengths.append(len(body["completed_steps"]))
        if body["status"] not in ("queued", "running"):
            break
        await client.post("/_sim/advance", json={"seconds": 15})
    assert body["status"] in ("done", "failed", "pending_answer")
    assert lengths == sorted(lengths)
    missing = await client.get("/dca/collectors/c_nope/automate_template/progress", headers=BRD)
    assert missing.status_code == 404


# ----- Datasets v3 -------------------------------------------------------------


async def test_snapshot_progress_and_list(client: httpx.AsyncClient) -> None:
    truth = await state(client)
    snap = truth["brightdata"]["snapshots"][-1]
    progress = await client.get(f"/datasets/v3/progress/{snap['snapshot_id']}", headers=BRD)
    assert progress.status_code == 200
    body = progress.json()
    assert body["snapshot_id"] == snap["snapshot_id"] and body["dataset_id"] == snap["dataset_id"]
    assert body["status"] == snap["status"]
    listing = await client.get(
        "/datasets/v3/snapshots", params={"dataset_id": snap["dataset_id"]}, headers=BRD
    )
    rows = listing.json()
    assert isinstance(rows, list)
    expected = [
        s for s in truth["brightdata"]["snapshots"] if s["dataset_id"] == snap["dataset_id"]
    ]
    assert len(rows) == len(expected)
    by_id = {row["id"]: row for row in rows}
    assert by_id[snap["id"]]["dataset_size"] == snap["dataset_size"]
    page = await client.get(
        "/datasets/v3/snapshots",
        params={"dataset_id": snap["dataset_id"], "skip": 2, "limit": 3},
        headers=BRD,
    )
    assert page.json() == rows[2:5]
    missing = await client.get("/datasets/v3/progress/s_nope", headers=BRD)
    assert missing.status_code == 404 and missing.json() == {"error": "Snapshot not found"}
    no_dataset = await client.get("/datasets/v3/snapshots", headers=BRD)
    assert no_dataset.status_code == 400


# ----- Aitronos ----------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/v1", "/api/v1"])
async def test_aitronos_served_under_both_prefixes(client: httpx.AsyncClient, prefix: str) -> None:
    listing = (await client.get(f"{prefix}/scrape/jobs", params={"limit": 5}, headers=AIT)).json()
    assert set(listing) == {"jobs", "total", "limit", "offset"}
    job = listing["jobs"][0]
    status = (await client.get(f"{prefix}/scrape/jobs/{job['job_id']}", headers=AIT)).json()
    assert "success" not in status and status == job
    progress = (
        await client.get(f"{prefix}/scrape/jobs/{job['job_id']}/progress", headers=AIT)
    ).json()
    assert progress["success"] is True and progress["data"]["job_id"] == job["job_id"]
    missing = await client.get(f"{prefix}/scrape/jobs/job_nope", headers=AIT)
    assert missing.status_code == 404
    assert missing.json()["success"] is False and missing.json()["error"]["status"] == 404


async def test_aitronos_list_pagination_and_filter(client: httpx.AsyncClient) -> None:
    first = (await client.get("/v1/scrape/jobs", params={"limit": 100}, headers=AIT)).json()
    total = first["total"]
    ids = [j["job_id"] for j in first["jobs"]]
    offset = 100
    while offset < total:
        page = await client.get(
            "/v1/scrape/jobs", params={"limit": 100, "offset": offset}, headers=AIT
        )
        ids += [j["job_id"] for j in page.json()["jobs"]]
        offset += 100
    truth = await state(client)
    assert sorted(ids) == sorted(j["job_id"] for j in truth["aitronos"]["jobs"])
    failed = (await client.get("/v1/scrape/jobs?status=failed&limit=100", headers=AIT)).json()
    assert all(j["status"] == "failed" for j in failed["jobs"])
    assert failed["total"] == sum(j["status"] == "failed" for j in truth["aitronos"]["jobs"])
    for bad in ("limit=0", "limit=101", "offset=-1", "status=weird"):
        response = await client.get(f"/v1/scrape/jobs?{bad}", headers=AIT)
        assert response.status_code == 422, bad


# ----- auth --------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-Key": DEFAULT_AITRONOS_KEY},
        {"api-key": DEFAULT_AITRONOS_KEY},
        {"Authorization": f"Bearer {DEFAULT_AITRONOS_KEY}"},
    ],
)
async def test_aitronos_accepts_three_header_styles(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    assert (await client.get("/api/v1/scrape/jobs", headers=headers)).status_code == 200


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "ak_wrong"}, BRD])
async def test_aitronos_401_envelope(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.get("/v1/scrape/jobs", headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert body["success"] is False and body["error"]["code"] == "INVALID_API_KEY"


async def test_brightdata_401_bodies(client: httpx.AsyncClient) -> None:
    wrong = {"Authorization": "Bearer nope"}
    dca = await client.get("/dca/collectors_list", headers=wrong)
    assert (dca.status_code, dca.text) == (401, "Unauthorized")
    assert (await client.get("/dca/log/j_x")).status_code == 401
    missing = await client.get("/datasets/v3/snapshots?dataset_id=gd_x")
    assert (missing.status_code, missing.text) == (401, "Credentials are missing")
    invalid = await client.get("/datasets/v3/snapshots?dataset_id=gd_x", headers=wrong)
    assert (invalid.status_code, invalid.text) == (401, "Invalid credentials")
    basic = await client.get(
        "/datasets/v3/snapshots?dataset_id=gd_x", headers={"Authorization": "Basic eDp5"}
    )
    assert basic.text == "Auth method is not supported"
    progress = await client.get("/datasets/v3/progress/s_x", headers=wrong)
    assert progress.status_code == 401
    assert progress.json() == {"error": "User authentication is required"}
    aitronos_key = await client.get("/dca/collectors_list", headers=AIT)
    assert aitronos_key.status_code == 401


async def test_custom_credentials() -> None:
    sim = SimulatorServer(config(brightdata_token="tok", aitronos_key="ak_" + "z" * 39, scale=50))
    await sim.start()
    try:
        async with httpx.AsyncClient(base_url=sim.url) as c:
            assert (await c.get("/dca/collectors_list", headers=BRD)).status_code == 401
            ok = await c.get("/dca/collectors_list", headers={"Authorization": "Bearer tok"})
            assert ok.status_code == 200
            assert (
                await c.get("/v1/scrape/jobs", headers={"api-key": "ak_" + "z" * 39})
            ).status_code == 200
    finally:
        await sim.stop()


# ----- /_sim -------------------------------------------------------------------


async def test_sim_state_shape(client: httpx.AsyncClient) -> None:
    await client.get("/dca/log/j_nope", headers=BRD)
    await client.get("/dca/log/j_nope2")
    truth = await state(client)
    assert set(truth) == {
        "now",
        "speed",
        "brightdata",
        "aitronos",
        "finished",
        "finished_details",
        "running",
        "finished_since_start",
        "requests",
        "rate_limits",
    }
    assert truth["now"] == START
    assert set(truth["brightdata"]) == {"collectors", "jobs", "snapshots", "ai_flows", "yield_drop"}
    job = truth["brightdata"]["jobs"][0]
    assert {"id", "collector", "status", "pages_left", "navigations", "created"} <= set(job)
    snap = truth["brightdata"]["snapshots"][0]
    assert {"snapshot_id", "dataset_id", "status", "dataset_size"} <= set(snap)
    flow = truth["brightdata"]["ai_flows"][0]
    assert {"id", "collector", "status", "completed_steps"} <= set(flow)
    assert {"job_id", "status", "running_time"} <= set(truth["aitronos"]["jobs"][0])
    finished = truth["finished"]
    assert set(finished) == {"studio_jobs", "snapshots", "ai_flows", "aitronos_jobs"}
    # Only what finishes after the start counts: the generated history is not ground truth.
    assert sum(sum(v.values()) for v in finished["studio_jobs"].values()) == 0
    assert truth["requests"] == {"GET /dca/log/{job_id}": 2}


async def test_sim_requests_log(client: httpx.AsyncClient) -> None:
    await client.get("/v1/scrape/jobs", headers=AIT)
    await client.get("/api/v1/scrape/jobs")
    await client.get("/no/such/path")
    log = (await client.get("/_sim/requests")).json()
    assert [(e["endpoint"], e["status"]) for e in log] == [
        ("GET /v1/scrape/jobs", 200),
        ("GET /api/v1/scrape/jobs", 401),
        ("GET <unmatched>", 404),
    ]
    assert all(e["method"] == "GET" and e["t"] > 1e9 for e in log)


async def test_advance_moves_time_and_rejects_bad_input(client: httpx.AsyncClient) -> None:
    moved = await client.post("/_sim/advance", json={"seconds": 90})
    assert moved.json() == {"now": START + 90}
    assert (await client.post("/_sim/advance", json={"seconds": -1})).status_code == 400
    assert (await client.post("/_sim/advance", json={})).status_code == 400


async def test_new_jobs_keep_arriving(client: httpx.AsyncClient) -> None:
    before = await state(client)
    await client.post("/_sim/advance", json={"seconds": 7200})
    after = await state(client)
    for section, key in (("brightdata", "jobs"), ("brightdata", "snapshots"), ("aitronos", "jobs")):
        assert len(after[section][key]) > len(before[section][key]), key


def strip_requests(truth: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in truth.items() if k != "requests"}


async def test_same_seed_same_advances_identical_state() -> None:
    states = []
    for _ in range(2):
        sim = SimulatorServer(config(seed=11))
        await sim.start()
        try:
            async with httpx.AsyncClient(base_url=sim.url) as c:
                for seconds in (10, 300, 1800):
                    await c.post("/_sim/advance", json={"seconds": seconds})
                    await c.get("/dca/collectors_list", headers=BRD)
                states.append(strip_requests(await state(c)))
        finally:
            await sim.stop()
    assert states[0] == states[1]


async def test_real_clock_speed_compresses_time() -> None:
    sim = SimulatorServer(config(manual_clock=False, speed=3600.0, scale=50))
    await sim.start()
    try:
        async with httpx.AsyncClient(base_url=sim.url) as c:
            first = (await state(c))["now"]
            await c.post("/_sim/advance", json={"seconds": 100})
            second = (await state(c))["now"]
        assert second - first >= 100
    finally:
        await sim.stop()


async def test_aitronos_answers_carry_rate_limit_headers(client: httpx.AsyncClient) -> None:
    first = await client.get("/v1/scrape/jobs", headers=AIT)
    second = await client.get("/api/v1/scrape/jobs", headers=AIT)
    assert first.headers["X-RateLimit-Limit"] == "100"  # the Standard plan by default
    assert first.headers["X-RateLimit-Remaining"] == "119"  # burst 120, one used
    assert second.headers["X-RateLimit-Remaining"] == "118"
    # Full again once the two tokens are refilled at 100/min: 1.2 s on the manual clock.
    assert first.headers["X-RateLimit-Reset"] == str(int(START) + 1)
    assert second.headers["X-RateLimit-Reset"] == str(int(START) + 2)
    brightdata = await client.get("/dca/collectors_list", headers=BRD)
    assert "X-RateLimit-Limit" not in brightdata.headers


async def test_injected_job_failure_is_counted_once(client: httpx.AsyncClient) -> None:
    truth = await state(client)
    running = next(j for j in truth["brightdata"]["jobs"] if j["status"] == "running")
    failed = await client.post("/_sim/fail", json={"job_id": running["id"]})
    assert failed.status_code == 200
    log = (await client.get(f"/dca/log/{running['id']}", headers=BRD)).json()
    assert log["status"] == "failed"
    assert log["finished"] and log["job_time"] >= 0
    assert log["pages_left"] == running["pages_left"]  # progress stops where it was
    counts = (await state(client))["finished"]["studio_jobs"][running["collector"]]
    assert counts["failed"] >= 1
    await client.post("/_sim/advance", json={"seconds": 4 * 3600})  # past its original end
    later = (await state(client))["finished"]["studio_jobs"][running["collector"]]
    job = next(j for j in (await state(client))["brightdata"]["jobs"] if j["id"] == running["id"])
    assert job["status"] == "failed"
    assert (await client.post("/_sim/fail", json={"job_id": running["id"]})).status_code == 409
    assert (await client.post("/_sim/fail", json={})).status_code == 400
    # Every job that ended since the start is counted exactly once, the injected one included.
    end = await state(client)
    terminal = ("done", "failed", "cancelled")
    ended_before = {j["id"] for j in truth["brightdata"]["jobs"] if j["status"] in terminal}
    ended_now = {j["id"] for j in end["brightdata"]["jobs"] if j["status"] in terminal}
    counted = sum(sum(c.values()) for c in end["finished"]["studio_jobs"].values())
    assert counted == len(ended_now - ended_before)
    assert later["failed"] >= counts["failed"]
