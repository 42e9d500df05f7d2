"""The simulated world without HTTP: lifecycles, consistency and determinism."""

from __future__ import annotations

import datetime as dt
import json
import time

from scrapejobs_exporter.providers.brightdata import AI_FLOW_STEPS
from scrapejobs_exporter.simulator.aiflow import STEPS
from scrapejobs_exporter.simulator.studio import StudioJob
from scrapejobs_exporter.simulator.world import World, WorldParams

START_MS = 1_788_000_000_000


def world(**overrides: object) -> World:
    params = {"seed": 7, "scale": 400, "start_ms": START_MS, **overrides}
    return World(WorldParams(**params))  # type: ignore[arg-type]


def parse_iso(text: str) -> int:
    assert text.endswith("Z") and len(text) == 24, text
    return int(dt.datetime.fromisoformat(text).timestamp() * 1000)


def newly_created_job(w: World) -> StudioJob:
    """Advance until a fresh, ordinary job arrives, and return it."""
    before = len(w.jobs)
    while True:
        w.advance_to(w.now_ms + 1_000)
        for job in w.jobs[before:]:
            if job.stuck is None and job.hold_ms == 0 and job.pages >= 5:
                return job
        before = len(w.jobs)


def test_studio_job_walks_building_running_terminal() -> None:
    w = world()
    job = newly_created_job(w)
    assert job.status_at(job.created) == "building"
    body = job.log_body(job.created)
    assert "started" not in body and "queue_time" not in body and "finished" not in body
    seen, pages_left = [], []
    for t in [*range(job.started, job.finished, 5_000), job.finished]:
        body = job.log_body(t)
        seen.append(body["status"])
        pages_left.append(body["pages_left"])
        if body["status"] == "running":
            assert "finished" not in body and "job_time" not in body
            processed = body["pages"] - body["pages_left"]
            assert body["navigations"] >= processed
            assert body["success"] + body["fails"] == processed
    assert seen[0] == "running" and seen[-1] in ("done", "failed", "cancelled")
    assert pages_left == sorted(pages_left, reverse=True)
    assert pages_left[0] == job.pages


def test_finished_job_timings_match_timestamps() -> None:
    w = world()
    for job in w.jobs[:300]:
        body = job.log_body(w.now_ms)
        if body["status"] not in ("done", "failed", "cancelled"):
            continue
        created, started = parse_iso(body["created"]), parse_iso(body["started"])
        finished = parse_iso(body["finished"])
        assert body["queue_time"] == started - created
        assert body["job_time"] == finished - started
        total = body["success"] + body["fails"]
        assert body["success_rate"] == body["success"] / max(1, total)
        if body["status"] == "done":
            assert body["pages_left"] == 0


def test_counters_never_decrease_while_running() -> None:
    w = world()
    job = newly_created_job(w)
    previous = job.log_body(job.started)
    for t in range(job.started, job.finished + 1, max(1, (job.finished - job.started) // 50)):
        body = job.log_body(t)
        for key in ("lines", "fails", "success", "navigations"):
            assert body[key] >= previous[key], key
        previous = body


def test_history_mostly_finished_and_running_fraction_respected() -> None:
    w = world(scale=5_000, running_fraction=0.02)
    statuses = [j.status_at(w.now_ms) for j in w.jobs]
    active = sum(s in ("building", "running", "paused") for s in statuses)
    assert len(w.jobs) == 5_000
    assert active == 100
    assert all(w.now_ms - j.created <= 2 * 86_400_000 for j in w.jobs)
    assert all(j.id.startswith(("j_", "vj_")) for j in w.jobs)
    assert {j.id[:2] for j in w.jobs} == {"j_", "vj"}


def test_running_population_stays_roughly_steady() -> None:
    w = world(scale=5_000)
    for _ in range(12):
        w.advance_to(w.now_ms + 600_000)
    active = sum(j.status_at(w.now_ms) in ("building", "running", "paused") for j in w.jobs)
    assert 50 <= active <= 200
    assert len(w.jobs) > 5_000


def test_stuck_jobs_exist_and_look_stuck() -> None:
    w = world(scale=5_000, stuck_fraction=0.5)
    running = [j for j in w.jobs if j.status_at(w.now_ms) == "running"]
    no_worker = [j for j in running if j.stuck == "no_worker"]
    frozen = [j for j in running if j.stuck == "frozen"]
    assert no_worker and frozen
    for job in no_worker:
        assert job.log_body(w.now_ms)["navigations"] == 0
    in_freeze = [j for j in frozen if j.hold_start <= w.now_ms < j.hold_start + j.hold_ms]
    for job in in_freeze:
        assert job.log_body(w.now_ms) == job.log_body(w.now_ms + 60_000)


def test_zero_stuck_fraction_means_no_stuck_jobs() -> None:
    w = world(scale=2_000, stuck_fraction=0.0)
    w.advance_to(w.now_ms + 3_600_000)
    assert not [j for j in w.jobs if j.stuck]


def test_snapshot_lifecycle() -> None:
    w = world()
    snap = w.snapshots[-1]
    assert snap.status_at(snap.created) == "starting"
    assert snap.status_at(snap.running_from) == "running"
    sizes = [snap.size_at(t) for t in range(snap.running_from, snap.finished, 10_000)]
    assert sizes == sorted(sizes)
    final = snap.progress_body(snap.finished)
    assert final["status"] in ("ready", "failed")
    assert ("error_message" in final) == (final["status"] == "failed")


def test_ai_flow_steps_are_the_providers_in_its_order() -> None:
    # The simulator keeps its own list (it fakes the API, it imports no production code).
    known = [step for step in AI_FLOW_STEPS if step in STEPS]
    assert known == list(STEPS)


def test_ai_flow_steps_advance() -> None:
    w = world()
    flow = w.start_ai_flow(w.collectors[0].id) if w.active_flow_count(w.now_ms) < 3 else None
    assert flow is not None
    completed_lengths = []
    t = flow.running_from
    while t < flow.ends:
        body = flow.progress_body(t)
        assert body["status"] == "running"
        assert body["step"] == STEPS[len(body["completed_steps"])]
        completed_lengths.append(len(body["completed_steps"]))
        t += 5_000
    assert completed_lengths == sorted(completed_lengths)
    final = flow.progress_body(flow.ends)
    assert final["status"] in ("done", "failed", "pending_answer")
    if final["status"] == "failed":
        assert final["error"]
    if final["status"] == "pending_answer":
        assert final["step"] == "user_approval"


def test_aitronos_lifecycle() -> None:
    w = world()
    w.advance_to(w.now_ms + 60_000)
    job = w.aitronos_jobs[-1]
    assert job.progress_data(job.created)["status"] == "pending"
    mid = job.processing_from + (job.finished - job.processing_from) // 2
    running = job.progress_data(mid)
    assert running["status"] == "processing"
    assert running["running_time"] > 0 and running["completed_at"] is None
    later = job.progress_data(mid + 1_000)
    assert later["running_time"] > running["running_time"]
    assert later["progress_percentage"] >= running["progress_percentage"]
    done = job.progress_data(job.finished)
    assert done["status"] in ("completed", "failed", "cancelled")
    assert done["running_time"] is None and done["processing_time"] is not None
    if done["status"] == "completed":
        assert done["completion_reason"] in ("done", "timeout")
    if done["status"] == "failed":
        assert done["completion_reason"] == "error" and done["error_message"]


def test_finished_counts_grow_with_time() -> None:
    w = world()
    before = sum(sum(c.values()) for c in w.finished_jobs.values())
    terminal_before = sum(j.status_at(w.now_ms) in ("done", "failed", "cancelled") for j in w.jobs)
    w.advance_to(w.now_ms + 3_600_000)
    after = sum(sum(c.values()) for c in w.finished_jobs.values())
    terminal = sum(j.status_at(w.now_ms) in ("done", "failed", "cancelled") for j in w.jobs)
    assert before == 0  # the generated history is not counted
    assert after > 0
    assert after == terminal - terminal_before


def test_same_seed_and_advances_give_identical_state_regardless_of_chunking() -> None:
    a, b = world(), world()
    for _ in range(60):
        a.advance_to(a.now_ms + 60_000)
    b.advance_to(b.now_ms + 3_600_000)
    assert json.dumps(a.state()) == json.dumps(b.state())


def test_different_seeds_differ() -> None:
    assert world(seed=1).state() != world(seed=2).state()


def test_scale_50000_starts_quickly() -> None:
    began = time.perf_counter()
    w = world(scale=50_000)
    elapsed = time.perf_counter() - began
    print(f"scale 50000 world built in {elapsed:.2f}s")
    assert len(w.jobs) == 50_000 and len(w.collectors) == 250
    assert elapsed < 20
    began = time.perf_counter()
    w.advance_to(w.now_ms + 10_000)
    assert time.perf_counter() - began < 1.0
