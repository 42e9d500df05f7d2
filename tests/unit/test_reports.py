"""Finished targets' reports (hp_errors, snapshot logs; `kinds.ReportRead`): read once, at the
lowest priority of the provider's scheduler, counted once, and equal to the simulator's truth."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import respx

from scrapejobs_exporter.aggregates import Aggregates
from scrapejobs_exporter.config import BucketsConfig, parse_config
from scrapejobs_exporter.exporter import Exporter
from scrapejobs_exporter.kinds import REPORT_TRIES, SNAPSHOT, STUDIO_JOB
from scrapejobs_exporter.providers.brightdata import (
    parse_hp_errors,
    parse_job_log,
    parse_snapshot_log,
    parse_snapshot_progress,
)
from scrapejobs_exporter.simulator import SimulatorConfig, SimulatorServer
from scrapejobs_exporter.store import Store, Target
from tests.conftest import seed
from tests.helpers import histogram_counts, page, samples, value, values
from tests.unit.test_exporter import exporter_for, run

BD = "https://api.brightdata.test"
NOW = 1_750_000_000.0
WATERMARK = NOW - 600  # the exporter started watching ten minutes before NOW
HP_ERRORS = "GET /dca/jobs/{job_id}/hp_errors"
SNAPSHOT_LOG = "GET /datasets/v3/log/{snapshot_id}"


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    server = SimulatorServer(
        # The exporter's budget is not under test here: the account limits stay off.
        SimulatorConfig(
            seed=11, scale=400, manual_clock=True, running_fraction=0.05, rate_limits=False
        )
    )
    await server.start()
    yield server
    await server.stop()


async def test_counters_and_snapshot_values_equal_ground_truth(sim: SimulatorServer) -> None:
    exporter = exporter_for(sim)
    await exporter.poller.run_cycle()
    await run(sim, exporter, 30)  # an hour of simulated time
    await exporter.stop()
    state = sim.state()
    truth = state["finished_details"]
    a = exporter.aggregates

    errors: dict[str, dict[str, int]] = {}
    for (collector, group), n in values(a.collector_input_errors).items():
        errors.setdefault(collector, {})[group] = int(n)
    expected = {c: g for c, g in truth["studio_job_errors"].items() if sum(g.values())}
    assert {c: g for c, g in errors.items() if sum(g.values())} == expected
    assert sum(sum(g.values()) for g in expected.values()) > 50
    assert len({g for gs in expected.values() for g, n in gs.items() if n}) >= 5

    loads = {c: int(n) for (c,), n in values(a.collector_page_loads).items() if n}
    volume = truth["studio_job_volume"]
    assert loads == {c: v["page_loads"] for c, v in volume.items() if v["page_loads"]}
    records = {d: int(n) for (d,), n in values(a.dataset_records).items() if n}
    assert records == {d: n for d, n in truth["snapshot_records"].items() if n}
    failures = {r: int(n) for (r,), n in values(a.aitronos_failures).items() if n}
    assert failures == truth["aitronos_failures"]

    # Every finished snapshot's own series equal its truth; the histogram saw each counted one.
    shown = samples(exporter.render().text.body.decode())
    seen = 0
    for snap in state["brightdata"]["snapshots"]:
        if "duration_seconds" not in snap:
            continue  # not finished
        labels = (("dataset_id", snap["dataset_id"]), ("snapshot_id", snap["snapshot_id"]))
        if ("brightdata_snapshot_duration_seconds", labels) not in shown:
            assert (*labels, ("status", "ready")) not in {k[1] for k in shown}
            continue  # outside the discovery window: not tracked
        seen += 1
        assert shown[("brightdata_snapshot_records", labels)] == snap["records"]
        assert shown[("brightdata_snapshot_duration_seconds", labels)] == snap["duration_seconds"]
        assert shown[("brightdata_snapshot_inputs", labels)] == snap["inputs"]
        assert shown[("brightdata_snapshot_success_ratio", labels)] == pytest.approx(
            snap["success_ratio"]
        )
    assert seen > 20
    counted = sum(values(a.snapshots_finished).values())
    observed = sum(histogram_counts(a.snapshot_duration).values())
    assert observed == counted > 5

    # Per job: the groups of each finished job with failures, nothing for a clean one.
    jobs = {j["id"]: j for j in state["brightdata"]["jobs"]}
    with_errors = 0
    for target in exporter.store:
        if target.key[:2] != STUDIO_JOB.key or not target.terminal:
            continue
        job = jobs[target.target_id]
        if job["fails"] == 0:
            assert target.report is None
        else:
            with_errors += 1
            assert target.report is not None
            assert target.report.total == job["fails"]  # type: ignore[union-attr]
    assert with_errors > 20
    assert state["requests"][HP_ERRORS] == with_errors  # one call each


# --- the store: kept for the target's own series, counted once --------------------------------


def _store() -> Store:
    return Store(Aggregates(BucketsConfig()))


def _job(store: Store, body: dict[str, object], *, since: bool, key: str = "j_1") -> Target:
    """A job seen finished at its first poll; `since`: it finished after the watermark."""
    target = store.add("brightdata", "job", key, static=False)
    body = {"id": key, "finished": "2025-06-15T15:00:00Z" if since else "2025-06-01T00:00:00Z",
            **body}  # fmt: skip
    store.observe(target, parse_job_log(body, key, "c_1"), NOW, complete=True, watermark=WATERMARK)
    return target


def test_wanted_only_for_finished_jobs_with_failures_and_finished_snapshots() -> None:
    store = _store()
    done = {"status": "done", "collector": "c_1", "fails": 3, "navigations": 9}
    assert STUDIO_JOB.wants_report(_job(store, done, since=True))
    for body in ({**done, "fails": 0}, {**done, "fails": None}, {**done, "status": "running"}):
        assert not STUDIO_JOB.wants_report(_job(_store(), body, since=True))
    snap = store.add("brightdata", "snapshot", "s_1")
    store.observe(snap, parse_snapshot_progress({"status": "running"}, "s_1"), NOW, complete=True)
    assert not SNAPSHOT.wants_report(snap)
    ready = parse_snapshot_progress({"status": "ready", "records": 5}, "s_1")
    store.observe(snap, ready, NOW, complete=True)
    assert SNAPSHOT.wants_report(snap)
    store.observe_report(snap, parse_snapshot_log(seed("snapshot_log_ready"), "s_1"))
    assert not SNAPSHOT.wants_report(snap)


def test_reports_count_once_and_only_for_counted_finishes() -> None:
    store = _store()
    body = {"status": "failed", "collector": "c_1", "fails": 2, "navigations": 7}
    target = _job(store, body, since=True)
    assert target.owed_report
    errors = parse_hp_errors(seed("hp_errors"), "j_1").groups()
    store.observe_report(target, errors)
    store.observe_report(target, errors)  # a second answer changes nothing
    a = store.aggregates
    assert a is not None
    assert value(a.collector_input_errors, "c_1", "page_gone") == 1
    assert value(a.collector_input_errors, "c_1", "other") == 1
    assert value(a.collector_input_errors, "c_1", "blocked") == 0  # present at 0
    assert value(a.collector_page_loads, "c_1") == 7
    # A later poll of the same finished job counts nothing again, and asks for no new report.
    store.observe(target, parse_job_log({**body, "id": "j_1"}, "j_1"), NOW + 60, complete=True)
    assert target.report is errors and value(a.collector_input_errors, "c_1", "other") == 1
    # A job already finished when the exporter started: its own series, no counter change.
    earlier = _store()
    old = _job(earlier, body, since=False)
    assert not old.owed_report
    earlier.observe_report(old, errors)
    assert earlier.aggregates is not None
    assert sum(values(earlier.aggregates.collector_input_errors).values()) == 0
    shown = samples(page(earlier).text.body.decode())
    labels = (("collector", "c_1"), ("group", "page_gone"), ("job_id", "j_1"))
    assert shown[("brightdata_job_input_errors", labels)] == 1
    assert len([k for k in shown if k[0] == "brightdata_job_input_errors"]) == 7


# --- the scheduler: lowest priority, once, giving up on answers that will not change ---------


def _exporter(text: str, clock: list[float]) -> Exporter:
    async def sleep(seconds: float) -> None:
        clock[0] += seconds

    return Exporter(parse_config(text, env={}), clock=lambda: clock[0], sleep=sleep)


BD_CONFIG = f"""
poll_interval: 30s
brightdata:
  api_token: t
  base_url: {BD}
  jobs: [j_1, j_2, j_3]
  snapshots: [s_1]
"""


def _log(job_id: str, status: str, fails: int) -> dict[str, object]:
    return {"id": job_id, "collector": "c_1", "status": status, "fails": fails, "pages": 4,
            "pages_left": 0 if status != "running" else 2, "finished": "2025-06-15T15:00:00Z"}  # fmt: skip


@respx.mock
async def test_reports_wait_for_every_due_poll_and_are_read_once() -> None:
    clock = [NOW]
    running = respx.get(f"{BD}/dca/log/j_1").respond(json=_log("j_1", "running", 1))
    respx.get(f"{BD}/dca/log/j_2").respond(json=_log("j_2", "failed", 3))
    respx.get(f"{BD}/dca/log/j_3").respond(json=_log("j_3", "done", 0))
    respx.get(f"{BD}/datasets/v3/progress/s_1").respond(
        json={"snapshot_id": "s_1", "dataset_id": "gd_1", "status": "ready", "records": 2}
    )
    errors = respx.get(f"{BD}/dca/jobs/j_2/hp_errors").respond(json=seed("hp_errors"))
    clean = respx.get(f"{BD}/dca/jobs/j_3/hp_errors").respond(json={"errors": []})
    log = respx.get(f"{BD}/datasets/v3/log/s_1").respond(json=seed("snapshot_log_ready"))
    exporter = _exporter(BD_CONFIG, clock)
    scheduler = exporter.poller.schedulers["brightdata"]
    for _ in range(6):  # three minutes: the running job is polled every 30 s
        await scheduler.step()
        clock[0] += 30
    await exporter.stop()
    assert errors.call_count == 1 and log.call_count == 1  # once each
    assert clean.call_count == 0  # never for a job without failures
    assert running.call_count >= 6
    # Every target's first poll went out before any report.
    order = [call.request.url.path for call in respx.calls]
    reports = [i for i, path in enumerate(order) if "hp_errors" in path or "/log/s_" in path]
    assert len({p for p in order[: min(reports)]}) == 4
    targets = {t.target_id: t for t in exporter.store}
    assert targets["j_2"].report is not None and targets["s_1"].report is not None
    assert targets["j_3"].report is None and targets["j_1"].report is None


@respx.mock
async def test_report_read_gives_up_on_4xx_and_after_repeated_failures() -> None:
    clock = [NOW]
    respx.get(f"{BD}/dca/log/j_1").respond(json=_log("j_1", "failed", 2))
    respx.get(f"{BD}/dca/log/j_2").respond(json=_log("j_2", "failed", 2))
    respx.get(f"{BD}/dca/log/j_3").respond(json=_log("j_3", "done", 0))
    respx.get(f"{BD}/datasets/v3/progress/s_1").respond(
        json={"snapshot_id": "s_1", "dataset_id": "gd_1", "status": "ready", "records": 2}
    )
    gone = respx.get(f"{BD}/dca/jobs/j_1/hp_errors").respond(404, json={"error": "Job not found"})
    busy = respx.get(f"{BD}/dca/jobs/j_2/hp_errors").respond(503, text="busy")
    respx.get(f"{BD}/datasets/v3/log/s_1").respond(json=seed("snapshot_log_ready"))
    exporter = _exporter(BD_CONFIG, clock)
    scheduler = exporter.poller.schedulers["brightdata"]
    for _ in range(40):  # twenty minutes: a failed read is tried again a poll_interval later
        await scheduler.step()
        clock[0] += 30
    calls = busy.call_count
    for _ in range(10):
        await scheduler.step()
        clock[0] += 30
    await exporter.stop()
    assert gone.call_count == 1  # a 4xx: not tried again
    # Tried REPORT_TRIES times (each with the HTTP client's own retries), then left alone.
    assert REPORT_TRIES <= busy.call_count == calls <= REPORT_TRIES * 3
    targets = {t.target_id: t for t in exporter.store}
    assert targets["j_2"].report_tries == REPORT_TRIES
    assert targets["j_1"].up and targets["j_2"].up  # the targets' own values are still good
    assert targets["s_1"].report is not None
    # Static targets seen finished at their first poll finished before: their own series only.
    a = exporter.aggregates
    assert histogram_counts(a.snapshot_duration).get(("gd_1",)) == 0


@respx.mock
async def test_a_failing_report_endpoint_rests_and_never_stops_the_polls() -> None:
    """hp_errors answering 503 for every job: its reads are spaced out (longer after each
    failure), so that they never trip the provider's breaker; the running job stays polled."""
    clock = [NOW]
    running = respx.get(f"{BD}/dca/log/j_1").respond(json=_log("j_1", "running", 1))
    respx.get(f"{BD}/dca/log/j_2").respond(json=_log("j_2", "failed", 2))
    respx.get(f"{BD}/dca/log/j_3").respond(json=_log("j_3", "failed", 5))
    respx.get(f"{BD}/datasets/v3/progress/s_1").respond(
        json={"snapshot_id": "s_1", "dataset_id": "gd_1", "status": "ready", "records": 2}
    )
    broken = respx.get(url__regex=rf"{BD}/dca/jobs/j_\d/hp_errors").respond(503, text="down")
    log = respx.get(f"{BD}/datasets/v3/log/s_1").respond(json=seed("snapshot_log_ready"))
    exporter = _exporter(BD_CONFIG, clock)
    scheduler = exporter.poller.schedulers["brightdata"]
    for _ in range(20):  # ten minutes
        await scheduler.step()
        clock[0] += 30
    await exporter.stop()
    assert log.call_count == 1  # another kind of report is not held back
    # Reads 30, 60, 120, 240 s apart (3 attempts each), not every target's tries at once.
    assert broken.call_count <= 5 * 3
    assert running.call_count >= 20 and exporter.store.get(("brightdata", "job", "j_1")).up  # type: ignore[union-attr]
    assert not value(exporter.telemetry.circuit_open, "brightdata")


def test_once_reads_reports_of_statically_listed_targets(tmp_path: Path) -> None:
    """`once` on finished static targets: one hp_errors call for the job with failures (none
    for the clean one), one log call for the snapshot; values equal the simulator's truth."""
    from scrapejobs_exporter.simulator import run_simulator_in_thread
    from scrapejobs_exporter.simulator.studio import ERROR_CODES

    group_of = {code: group for group, codes in ERROR_CODES.items() for code in codes}
    config = SimulatorConfig(seed=4, scale=200, manual_clock=True)
    with run_simulator_in_thread(config) as server:
        state = httpx.get(f"{server.url}/_sim/state").json()
        jobs = state["brightdata"]["jobs"]
        failed = next(j for j in jobs if j["status"] in ("done", "failed") and j["fails"] > 2)
        clean = next(j for j in jobs if j["status"] == "done" and j["fails"] == 0)
        snap = next(s for s in state["brightdata"]["snapshots"] if s["status"] == "ready")
        path = tmp_path / "c.yml"
        path.write_text(
            f"brightdata:\n  api_token: {config.brightdata_token}\n  base_url: {server.url}\n"
            f"  jobs: [{failed['id']}, {clean['id']}]\n  snapshots: [{snap['snapshot_id']}]\n"
        )
        result = subprocess.run(
            [sys.executable, "-m", "scrapejobs_exporter", "once", "--config", str(path)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        requests = httpx.get(f"{server.url}/_sim/state").json()["requests"]
        errors = httpx.get(
            f"{server.url}/dca/jobs/{failed['id']}/hp_errors",
            headers={"Authorization": f"Bearer {config.brightdata_token}"},
        ).json()["errors"]
    assert result.returncode == 0, result.stderr
    shown = samples(result.stdout)
    expected = Counter(group_of[e["error"]] for e in errors)
    got = {
        dict(labels)["group"]: n
        for (name, labels), n in shown.items()
        if name == "brightdata_job_input_errors" and dict(labels)["job_id"] == failed["id"]
    }
    assert got == {g: float(expected.get(g, 0)) for g in got}
    assert sum(got.values()) == failed["fails"] and len(got) == 7
    assert not any(
        dict(labels).get("job_id") == clean["id"]
        for (name, labels) in shown
        if name == "brightdata_job_input_errors"
    )
    assert requests[HP_ERRORS] == 1
    assert requests[SNAPSHOT_LOG] == 1
    labels = (("dataset_id", snap["dataset_id"]), ("snapshot_id", snap["snapshot_id"]))
    assert shown[("brightdata_snapshot_duration_seconds", labels)] == snap["duration_seconds"]
    assert shown[("brightdata_snapshot_inputs", labels)] == snap["inputs"]
    assert shown[("brightdata_snapshot_records", labels)] == snap["records"]
    # Finished before the exporter started: their own series, but no counter change.
    other = (("collector", failed["collector"]), ("group", "other"))
    assert shown[("brightdata_collector_input_errors_total", other)] == 0


# --- within the budget: the enforcing simulator, the account limits on -----------------------


async def test_reports_keep_every_provider_within_its_budget() -> None:
    """A world with budget to spare, the simulator refusing like the real APIs: the reports
    use what the lists and detail polls leave, and never push a provider over its limit."""
    from tests.unit.test_scheduler import MINUTE, drive, limits, now
    from tests.unit.test_scheduler import exporter_for as budgeted

    sim = SimulatorServer(SimulatorConfig(seed=3, scale=300, manual_clock=True,
                                          running_fraction=0.05))  # fmt: skip
    await sim.start()
    try:
        exporter = budgeted(sim)  # default budgets, poll_interval 30s, everything discovered
        worst: list[float] = []

        def fresh() -> None:  # reports never hold back a running job's detail poll
            t = now(sim)
            worst.append(max((t - (j.last_detail or j.first_seen) for j in exporter.store
                              if j.kind == "job" and j.model and not j.terminal), default=0))  # fmt: skip

        await drive(sim, [exporter], 5 * MINUTE, fresh)
        await exporter.stop()
        state = sim.state(compact=True)
    finally:
        await sim.stop()
    for provider in ("brightdata", "aitronos"):
        assert limits(sim)[provider]["rate_limited"] == 0, provider
        assert limits(sim)[provider]["busiest_60s"] <= 100, provider
    requests = state["requests"]
    read = [t for t in exporter.store if t.report is not None]
    jobs = sum(1 for t in read if t.key[:2] == STUDIO_JOB.key)
    assert jobs > 20 and len(read) - jobs > 5  # hp_errors and snapshot logs were read ...
    assert requests[HP_ERRORS] == jobs and requests[SNAPSHOT_LOG] == len(read) - jobs  # once
    assert max(worst) <= 2 * 30 + 5  # ... while running jobs stayed within two poll intervals
    # Every job counted finished a minute before the end has had its report, if it needs one.
    owed = [t for t in exporter.store if t.owed_report and STUDIO_JOB.wants_report(t)]
    late = [t for t in owed if (t.finished_at or 0) <= now(sim) - MINUTE]
    assert not late, len(late)


@respx.mock
async def test_reports_of_a_round_stop_at_the_spare_room_on_a_clock_that_stands_still() -> None:
    """`once` and the benchmark move their clock only between rounds: the round's reports go
    out while the gate lets them out at once with room to spare, and stop there, none waiting
    in the gate for a slot that time would free (before: 64 workers went past the room and
    waited for ever)."""
    import asyncio

    log = respx.get(url__regex=rf"{BD}/datasets/v3/log/s_\d+").respond(
        json=seed("snapshot_log_ready")
    )
    exporter = Exporter(
        parse_config(
            f"brightdata:\n  api_token: t\n  base_url: {BD}\n  max_requests_per_minute: 20\n",
            env={},
        ),
        clock=lambda: NOW,
    )
    store = exporter.store
    for i in range(30):
        target = store.add("brightdata", "snapshot", f"s_{i}", static=False, now=NOW)
        for status in ("running", "ready"):  # seen running: its finish counts
            model = parse_snapshot_progress({"status": status, "dataset_id": "gd_1"}, f"s_{i}")
            store.observe(target, model, NOW, complete=True, watermark=WATERMARK)
        assert target.owed_report
    scheduler = exporter.poller.schedulers["brightdata"]
    async with asyncio.timeout(10):
        read = await scheduler.read_reports()
    await exporter.stop()
    gate = scheduler.gate
    assert gate is not None
    assert read == log.call_count > 0
    assert read <= 20 - gate.window.burst  # a burst's room is kept for due polls
    assert not gate.spare() or gate.wait_time() > 0  # stopped where the gate would wait
    assert sum(1 for t in store if t.owed_report) == 30 - read  # the rest in later rounds
