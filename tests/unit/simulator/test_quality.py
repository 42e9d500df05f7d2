"""The simulator's failure reasons (hp_errors), snapshot logs, their ground truth, and the
yield-drop scenario."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from scrapejobs_exporter.simulator import SimulatorServer
from scrapejobs_exporter.simulator.studio import ERROR_CODES, ERROR_GROUPS
from scrapejobs_exporter.simulator.world import World, WorldParams
from tests.unit.simulator.test_api import BRD, config

START_MS = 1_788_000_000_000
CODE_GROUP = {code: group for group, codes in ERROR_CODES.items() for code in codes}


def world(**overrides: Any) -> World:
    return World(WorldParams(**{"seed": 5, "scale": 600, "start_ms": START_MS, **overrides}))


def test_errors_match_each_jobs_failed_pages_and_only_grow() -> None:
    w = world()
    w.advance_to(START_MS + 1_800_000)
    with_errors = 0
    for job in w.jobs:
        t = w.now_ms
        fails = job.counters_at(t)["fails"]
        rows = job.hp_errors_body(t)["errors"]
        assert len(rows) == fails
        with_errors += bool(rows)
        earlier = job.hp_errors_body(max(job.started, t - 120_000))["errors"]
        assert rows[: len(earlier)] == earlier  # a running job's list only grows
    assert with_errors > 20


def test_cancelled_jobs_report_aborted_pages_and_the_mix_is_varied() -> None:
    w = world()
    groups: Counter[str] = Counter()
    aborted = 0
    for job in w.jobs:
        codes = job.error_codes(job.finished)
        groups.update(g for g, _ in codes)
        if job.outcome == "cancelled":
            aborted += sum(code == "aborted_page" for _, code in codes)
    assert aborted > 0
    assert {g for g in ERROR_GROUPS if g != "cancellation"} <= set(groups)
    assert max(groups.values()) < 0.6 * sum(groups.values())


def test_ground_truth_counts_the_errors_of_jobs_finished_since_start() -> None:
    w = world()
    w.advance_to(START_MS + 3_600_000)
    expected: dict[str, Counter[str]] = {}
    volume: dict[str, Counter[str]] = {}
    for job in w.jobs:
        if not START_MS < job.finished <= w.now_ms:
            continue
        counts = expected.setdefault(job.collector, Counter())
        for row in job.hp_errors_body(w.now_ms)["errors"]:
            counts[CODE_GROUP[row["error"]]] += 1
        c = job.counters_at(w.now_ms)
        v = volume.setdefault(job.collector, Counter())
        v.update(jobs=1, lines=c["lines"], fails=c["fails"], page_loads=c["navigations"])
    truth = w.finished_details()
    got = {
        c: Counter({g: n for g, n in groups.items() if n})
        for c, groups in truth["studio_job_errors"].items()
    }
    assert got == expected and sum(sum(c.values()) for c in got.values()) > 50
    assert {c: Counter(v) for c, v in truth["studio_job_volume"].items()} == volume
    for groups in truth["studio_job_errors"].values():
        assert set(groups) == set(ERROR_GROUPS)  # every group present, 0 when none


def test_snapshot_truth_and_log_agree() -> None:
    w = world()
    w.advance_to(START_MS + 3_600_000)
    records: Counter[str] = Counter()
    for snap in w.snapshots:
        state = snap.state(w.now_ms)
        log = snap.log_body(w.now_ms)
        assert log["Dataset_size"] == state["dataset_size"]
        if state["status"] in ("ready", "failed"):
            assert log["Duration"] == state["duration_seconds"] > 0
            assert log["Inputs_count"] == state["inputs"] >= 1
            assert log["Success_rate"] == state["success_ratio"]
            assert 0 <= log["Success_rate"] <= 1
            if START_MS < snap.finished <= w.now_ms:
                records[snap.dataset_id] += state["records"]
        else:
            assert log["Duration"] is None and log["Success_rate"] is None
    assert w.finished_details()["snapshot_records"] == dict(records)


def test_yield_drop_lowers_records_per_job_and_raises_failures() -> None:
    normal, dropped = world(), world(yield_drop="busiest", yield_drop_after_ms=600_000)
    for w in (normal, dropped):
        w.advance_to(START_MS + 4 * 3_600_000)
    collector = dropped.yield_drop_collector
    assert collector == max(dropped.collectors, key=lambda c: c.weight).id
    before = normal.finished_details()["studio_job_volume"][collector]
    after = dropped.finished_details()["studio_job_volume"][collector]
    assert after["jobs"] == before["jobs"] > 20  # same jobs, the same world otherwise
    assert after["lines"] / after["jobs"] < 0.3 * before["lines"] / before["jobs"]
    assert after["fails"] > 2 * before["fails"]
    others = [c.id for c in normal.collectors if c.id != collector and c.weight > 0]
    for c in others:  # nothing else changes
        assert normal.finished_details()["studio_job_volume"].get(c) == dropped.finished_details()[
            "studio_job_volume"
        ].get(c)
    assert dropped.state()["brightdata"]["yield_drop"] == {
        "collector": collector,
        "from": START_MS / 1000 + 600,
    }
    assert normal.state()["brightdata"]["yield_drop"] is None


def test_yield_drop_of_an_unknown_collector_is_refused() -> None:
    with pytest.raises(ValueError, match="no collector 'c_nope'"):
        world(yield_drop="c_nope")


# ----- over HTTP -----------------------------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[SimulatorServer]:
    sim = SimulatorServer(config())
    await sim.start()
    yield sim
    await sim.stop()


async def test_endpoints_serve_errors_and_logs(server: SimulatorServer) -> None:
    server.advance(1800)
    state = server.state()
    async with httpx.AsyncClient(base_url=server.url, headers=BRD, timeout=10) as client:
        failed = next(j for j in state["brightdata"]["jobs"] if j["fails"] > 0)
        body = (await client.get(f"/dca/jobs/{failed['id']}/hp_errors")).json()
        assert len(body["errors"]) == failed["fails"]
        assert set(body["errors"][0]) == {"url", "error", "consumer"}
        clean = next(j for j in state["brightdata"]["jobs"] if j["fails"] == 0)
        assert (await client.get(f"/dca/jobs/{clean['id']}/hp_errors")).json() == {"errors": []}
        missing = await client.get("/dca/jobs/j_nope/hp_errors")
        assert (missing.status_code, missing.json()) == (404, {"error": "Job not found"})

        ready = next(s for s in state["brightdata"]["snapshots"] if s["status"] == "ready")
        log = (await client.get(f"/datasets/v3/log/{ready['snapshot_id']}")).json()
        assert {"id", "Status", "Dataset_size", "Inputs_count", "Duration", "Success_rate"} <= set(
            log
        )
        assert (log["Dataset_size"], log["Duration"], log["Inputs_count"]) == (
            ready["records"], ready["duration_seconds"], ready["inputs"],
        )  # fmt: skip
        missing = await client.get("/datasets/v3/log/s_nope")
        assert (missing.status_code, missing.json()) == (404, {"error": "Snapshot not found"})
        unauthorised = await client.get(
            f"/datasets/v3/log/{ready['snapshot_id']}", headers={"Authorization": "Bearer x"}
        )
        assert unauthorised.status_code == 401
    assert set(state["finished_details"]) == {
        "studio_job_errors", "studio_job_volume", "snapshot_records", "aitronos_failures"
    }  # fmt: skip
