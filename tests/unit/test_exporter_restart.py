"""Restarts with a state file, against the real simulator on a manual clock: every finished job
is counted once across a clean stop, a kill (no last write), and the time in between."""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scrapejobs_exporter.config import parse_config
from scrapejobs_exporter.exporter import Exporter
from scrapejobs_exporter.scheduler import BARE, NEW
from scrapejobs_exporter.simulator import SimulatorConfig, SimulatorServer
from scrapejobs_exporter.statefile import SeriesState, TargetState, open_state_file
from tests.helpers import value, values
from tests.unit import test_exporter as exporter
from tests.unit.test_statefile import unprivileged

STEP = 30.0  # simulated seconds between cycles: AI flows show only their latest run


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    server = SimulatorServer(
        SimulatorConfig(
            seed=11, scale=300, manual_clock=True, running_fraction=0.1, rate_limits=False
        )
    )
    await server.start()
    yield server
    await server.stop()


def exporter_for(sim: SimulatorServer, state_file: Path | None) -> Exporter:
    """Everything discovered, and the AI flows of every collector that runs them named (with
    `ai_flows: all` only drafts' flows are watched)."""
    extra = "discovery:\n  full_scan_every: 1\n"
    if state_file is not None:
        extra += f"state_file: {state_file}\n"
    flows = sorted({f["collector"] for f in sim.state()["brightdata"]["ai_flows"]})
    stall = "concurrency: 8\nstall:\n  no_worker_after: 10m\n  no_progress_after: 30m\n"
    text = exporter.config_for(sim, stall + extra).replace("ai_flows: all", f"ai_flows: {flows}")
    return Exporter(parse_config(text, env={}), clock=lambda: sim.world.now_ms / 1000)


def finished(e: Exporter) -> dict[str, Any]:
    """Every kind's finished counter, as the simulator's ground truth names it."""
    counts = exporter.finished(e)
    counts["ai_flows"] = Counter(
        {status: int(n) for (status,), n in values(e.aggregates.ai_flows_finished).items()}
    )
    return {k: +v if isinstance(v, Counter) else v for k, v in counts.items()}


def truth(sim: SimulatorServer) -> dict[str, Any]:
    counts = exporter.truth(sim)
    counts["ai_flows"] = +Counter(sim.state()["finished"]["ai_flows"])
    return counts


def total(counts: dict[str, Any]) -> int:
    return (
        sum(sum(c.values()) for c in counts["studio_jobs"].values())
        + sum(sum(c.values()) for c in counts["snapshots"].values())
        + sum(counts["aitronos_jobs"].values())
        + sum(counts["ai_flows"].values())
    )


async def run(sim: SimulatorServer, exporter: Exporter, cycles: int) -> None:
    for _ in range(cycles):
        sim.advance(STEP)
        await exporter.poller.run_cycle()


async def kill(exporter: Exporter) -> None:
    """Stop polling and drop the exporter without its last write, as SIGKILL would."""
    await exporter.poller.stop()
    await exporter.providers.aclose()


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_jobs_finished_while_down_are_counted_once(
    sim: SimulatorServer, tmp_path: Path, how: str
) -> None:
    path = tmp_path / "state.db"
    first = exporter_for(sim, path)
    await first.poller.run_cycle()
    await run(sim, first, 4)
    assert first._flusher is not None and await first._flusher.flush()
    await run(sim, first, 2)  # changes after the last write: lost by a kill
    if how == "stop":
        await first.stop()
    else:
        await kill(first)
    counted_before = finished(first)
    assert total(counted_before) > 0

    down = total(truth(sim))
    while total(truth(sim)) < down + 30:  # jobs finish while no exporter runs
        sim.advance(STEP)

    second = exporter_for(sim, path)
    assert second.state_file is not None and second.state_file.status == "restored"
    await second.poller.run_cycle()
    assert finished(second) == truth(sim)  # the first cycle catches up exactly
    await run(sim, second, 3)
    await second.stop()
    assert finished(second) == truth(sim)


async def test_without_a_state_file_a_restart_counts_from_scratch(sim: SimulatorServer) -> None:
    first = exporter_for(sim, None)
    await first.poller.run_cycle()
    await run(sim, first, 3)
    await first.stop()
    sim.advance(STEP * 5)
    second = exporter_for(sim, None)
    assert second.state_file is None
    await second.poller.run_cycle()
    assert total(finished(second)) == 0
    await second.stop()


async def test_stall_timers_resume(sim: SimulatorServer, tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = exporter_for(sim, path)
    await first.poller.run_cycle()
    await run(sim, first, 2)
    running = {
        t.key: (t.progress.running_since, t.progress.changed_at)
        for t in first.store
        if t.progress is not None
    }
    await first.stop()
    assert running
    second = exporter_for(sim, path)
    for key, (since, changed) in running.items():
        target = second.store.get(key)
        assert target is not None and target.progress is not None
        assert (target.progress.running_since, target.progress.changed_at) == (since, changed)
    await second.stop()


async def test_a_read_only_state_file_starts_empty_with_one_line(
    sim: SimulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    directory = Path(tempfile.mkdtemp())  # not tmp_path: its parents are private to root
    try:
        directory.chmod(0o755)
        path = directory / "state.db"
        first = exporter_for(sim, path)
        await first.poller.run_cycle()
        await first.stop()
        path.chmod(0o444)
        directory.chmod(0o555)
        caplog.clear()
        with unprivileged():
            second = exporter_for(sim, path)
        assert second.state_file is not None and second.state_file.status == "unwritable"
        assert all(t.static for t in second.store)  # before its first cycle: nothing restored
        await second.poller.run_cycle()
        await second.stop()
        text = second.render().text.body.decode()
        assert 'scrapejobs_exporter_state_file_status{status="unwritable"} 1' in text
        assert "brightdata_job_status{" in text
        lines = [
            r
            for r in caplog.records
            if r.levelno >= logging.WARNING and str(path) in r.getMessage()
        ]
        assert len(lines) == 1
    finally:
        directory.chmod(0o755)
        shutil.rmtree(directory)


async def test_restored_targets_take_their_turn_in_the_scheduler(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    path = tmp_path / "state.db"
    flow = sorted({f["collector"] for f in sim.state()["brightdata"]["ai_flows"]})[0]
    now = sim.world.now_ms / 1000
    kept = [
        TargetState("brightdata", "job", "j_running", "c_1", False, "running", None, False,
                    False, now - 600, None, now - 20),
        TargetState("brightdata", "job", "j_done", "c_1", False, "done", "", False, True,
                    now - 600, now - 300),
        TargetState("brightdata", "ai_flow", flow, flow, True, "done", "ai_1", False, True,
                    now - 600, now - 300),
        TargetState("brightdata", "job", "j_gone", "c_1", True, "running", None, False, False,
                    now - 600),  # named in the config before the restart, no longer
    ]  # fmt: skip
    state, _ = open_state_file(path)
    for t in kept:
        state.changed(t.key)
    assert state.flush({t.key: t for t in kept}.get, (), {}, now)
    state.close()

    restarted = exporter_for(sim, path)
    scheduler = restarted.poller.schedulers["brightdata"]
    interval = restarted.config.poll_interval

    def rank(target_id: str, kind: str = "job") -> tuple[int, float]:
        target = restarted.store.get(("brightdata", kind, target_id))
        assert target is not None
        return scheduler._rank(target, now)

    # Known running: among the running ones, due when its values are poll_interval old (its
    # list's first sweep is likely to bring its row before that), not polled at once as new.
    running_rank, due = rank("j_running")
    assert running_rank != NEW and due == now - 20 + interval
    assert rank("j_done")[1] == float("inf")  # finished and counted: its row is all it needs
    # Re-checked at once, as a new target: no status shown yet.
    assert rank(flow, "ai_flow") in ((NEW, now - 600), (BARE, now - 600))
    assert restarted.store.get(("brightdata", "job", "j_gone")) is None
    await restarted.stop()


async def test_a_file_of_another_shard_restores_its_counters_not_its_targets(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    path = tmp_path / "state.db"
    now = sim.world.now_ms / 1000
    job = TargetState("brightdata", "job", "j_1", "c_1", False, "running", None, False, False, now)
    counter = SeriesState("aitronos_jobs_finished_total", ("completed",), 7.0)
    state, _ = open_state_file(path)
    state.changed(job.key)
    meta = {"shard_index": 1.0, "shard_count": 3.0, "watermark:aitronos:aitronos": now}
    assert state.flush({job.key: job}.get, [counter], meta, now)
    state.close()
    restarted = exporter_for(sim, path)
    assert restarted.store.get(job.key) is None
    assert value(restarted.aggregates.aitronos_finished, "completed") == 7.0
    assert restarted.poller.discovery.restored_watermarks == {}
    await restarted.stop()


async def test_a_first_list_read_that_fails_does_not_make_the_next_one_count_the_past(
    sim: SimulatorServer,
) -> None:
    """A provider down when the exporter starts: its lists' watching starts at the first read
    that works, and what finished before it is not counted."""
    e = exporter_for(sim, None)
    async with httpx.AsyncClient(timeout=5) as client:
        rule = {"fault": "http_503", "path": "^/v1/"}
        assert (await client.post(f"{sim.url}/_sim/faults", json=rule)).status_code == 200
        await e.poller.run_cycle()
        await client.delete(f"{sim.url}/_sim/faults")
    (source,) = e.poller.discovery.sources("aitronos")
    assert source.sweeps == 1 and source.watermark is None
    await e.poller.run_cycle()
    assert source.watermark is not None
    assert finished(e) == truth(sim)  # the world stood still: nothing finished since the start
    await e.stop()


async def test_finished_targets_restored_but_never_polled_do_not_hold_readiness_back(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    """Aitronos jobs discovered before a restart, its discovery since switched off: the finished
    one is never polled again, and the exporter is ready once the others were tried."""
    path = tmp_path / "state.db"
    now = sim.world.now_ms / 1000
    done = TargetState("aitronos", "job", "a_1", None, False, "completed", "", False, True, now)
    state, _ = open_state_file(path)
    state.changed(done.key)
    assert state.flush({done.key: done}.get, (), {}, now)
    state.close()
    flows = sorted({f["collector"] for f in sim.state()["brightdata"]["ai_flows"]})
    text = exporter.config_for(sim, f"state_file: {path}\n").replace("discover: true", "")
    text = text.replace("ai_flows: all", f"ai_flows: {flows}")
    e = Exporter(parse_config(text, env={}), clock=lambda: sim.world.now_ms / 1000)
    assert e.store.get(done.key) is not None
    await e.poller.run_cycle()
    assert e.poller.schedulers["aitronos"].ready.is_set()
    await e.stop()
