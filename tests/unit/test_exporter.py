"""Discovery, exactly-once counting, restarts, stalls, retention and the API budget, against the
real simulator on a manual clock: the world moves only when a test says so, nothing sleeps."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
import respx

from scrapejobs_exporter.config import parse_config
from scrapejobs_exporter.exporter import Exporter
from scrapejobs_exporter.sharding import Shard
from scrapejobs_exporter.simulator import SimulatorConfig, SimulatorServer
from tests.helpers import histogram_counts, samples, values

STEP = 120.0  # simulated seconds between poll cycles


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    server = SimulatorServer(
        # Counting is under test here, not the budget: this exporter allows far more than an
        # account's 100/min, so the account limits stay off.
        SimulatorConfig(seed=7, scale=400, manual_clock=True, running_fraction=0.05,
                        stuck_fraction=0.2, rate_limits=False)
    )  # fmt: skip
    await server.start()
    yield server
    await server.stop()


# Budgets far above the simulator's: these tests are about what is counted, not the budget.
UNLIMITED = "  max_requests_per_minute: 100000\n"


def config_for(
    sim: SimulatorServer,
    extra: str = "",
    poll_interval: str = "2m",
    budget: str = UNLIMITED,
    daily: str = "  max_requests_per_day: null\n",
) -> str:
    """Everything discovered: every collector, dataset, AI flow and Aitronos job."""
    state = sim.state()
    datasets = sorted({s["dataset_id"] for s in state["brightdata"]["snapshots"]})
    return f"""
poll_interval: {poll_interval}
brightdata:
  api_token: {sim.config.brightdata_token}
  base_url: {sim.url}
  collectors: all
  datasets: {datasets}
  ai_flows: all
{budget}aitronos:
  api_key: {sim.config.aitronos_key}
  base_url: {sim.url}
  discover: true
{budget}{daily}{extra}
"""


def exporter_for(sim: SimulatorServer, extra: str = "", shard: Shard | None = None) -> Exporter:
    stall = "concurrency: 8\nstall:\n  no_worker_after: 10m\n  no_progress_after: 30m\n"
    text = config_for(sim, stall + extra)
    return Exporter(parse_config(text, env={}), clock=lambda: sim.world.now_ms / 1000, shard=shard)


async def run(sim: SimulatorServer, exporter: Exporter, cycles: int) -> None:
    for _ in range(cycles):
        sim.advance(STEP)
        await exporter.poller.run_cycle()


def finished(exporter: Exporter) -> dict[str, Any]:
    a = exporter.aggregates
    jobs: dict[str, Counter[str]] = {}
    for (collector, status), n in values(a.jobs_finished).items():
        jobs.setdefault(collector, Counter())[status] += int(n)
    snapshots: dict[str, Counter[str]] = {}
    for (dataset, status), n in values(a.snapshots_finished).items():
        snapshots.setdefault(dataset, Counter())[status] += int(n)
    aitronos = Counter({status: int(n) for (status,), n in values(a.aitronos_finished).items()})
    # Counters start at 0 for every collector and dataset seen; compare what actually counted.
    return {
        "studio_jobs": {c: +v for c, v in jobs.items() if +v},
        "snapshots": {d: +v for d, v in snapshots.items() if +v},
        "aitronos_jobs": +aitronos,
    }


def truth(sim: SimulatorServer) -> dict[str, Any]:
    f = sim.state()["finished"]
    return {
        "studio_jobs": {c: Counter(v) for c, v in f["studio_jobs"].items()},
        "snapshots": {d: Counter(v) for d, v in f["snapshots"].items()},
        "aitronos_jobs": Counter(f["aitronos_jobs"]),
    }


def minus(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in a:
        if isinstance(a[key], Counter):
            out[key] = +(a[key] - b.get(key, Counter()))
        else:
            out[key] = {k: d for k in a[key] if (d := +(a[key][k] - b[key].get(k, Counter())))}
    return out


async def test_finished_counters_equal_ground_truth(sim: SimulatorServer) -> None:
    exporter = exporter_for(sim)
    await exporter.poller.run_cycle()
    assert finished(exporter) == {"studio_jobs": {}, "snapshots": {}, "aitronos_jobs": {}}
    await run(sim, exporter, 30)  # an hour of simulated time, jobs arriving all along
    await exporter.stop()
    expected = truth(sim)
    assert sum(sum(c.values()) for c in expected["studio_jobs"].values()) > 10
    assert sum(sum(c.values()) for c in expected["snapshots"].values()) > 0
    assert finished(exporter) == expected
    # Lines and failures of every counted job are summed, and durations observed once each.
    a = exporter.aggregates
    counted = sum(values(a.jobs_finished).values())
    observed = sum(histogram_counts(a.job_duration).values())
    assert observed == counted
    assert sum(values(a.collector_lines).values()) > 0


async def test_restart_does_not_double_count(sim: SimulatorServer) -> None:
    first = exporter_for(sim)
    await first.poller.run_cycle()
    await run(sim, first, 10)
    await first.stop()
    before_restart = truth(sim)
    second = exporter_for(sim)
    await second.poller.run_cycle()  # sees everything finished so far: counts none of it
    assert finished(second) == {"studio_jobs": {}, "snapshots": {}, "aitronos_jobs": {}}
    await run(sim, second, 15)
    await second.stop()
    assert finished(second) == minus(truth(sim), before_restart)


async def test_budget_scales_with_running_jobs_not_tracked(sim: SimulatorServer) -> None:
    exporter = exporter_for(sim)
    await exporter.poller.run_cycle()
    await run(sim, exporter, 5)
    requests = exporter.telemetry.api_requests
    before = sum(values(requests).values())
    polled = [t for t in exporter.store if not t.final and (t.static or t.kind != "snapshot")]
    sim.advance(STEP)
    await exporter.poller.run_cycle()
    calls = sum(values(requests).values()) - before
    await exporter.stop()
    list_calls = sum(
        n for (_, endpoint, _), n in values(requests).items()
        if endpoint.endswith(("/jobs", "collectors_list", "/snapshots"))
    )  # fmt: skip
    tracked = len(exporter.store)
    assert tracked > 300
    # One cycle's calls: the running targets, the list pages, and a few jobs that finished or
    # appeared since the last cycle.
    assert calls < tracked / 5
    assert calls <= len(polled) + list_calls + 20
    state = sim.state()
    running = sum(j["status"] in ("running", "building") for j in state["brightdata"]["jobs"])
    # Running ones (a job whose row showed it finished still owes one detail poll: not counted).
    unfinished = [t for t in polled if t.kind == "job" and not t.terminal]
    assert len(unfinished) <= running + len(state["aitronos"]["jobs"])


async def test_stuck_jobs_are_stalled(sim: SimulatorServer) -> None:
    exporter = exporter_for(sim)
    await exporter.poller.run_cycle()
    await run(sim, exporter, 20)  # 40 minutes: past both stall thresholds
    await exporter.stop()
    state = sim.state()
    stuck_running = {
        j["id"] for j in state["brightdata"]["jobs"] if j["stuck"] and j["status"] == "running"
    }
    assert stuck_running, "the simulator should have stuck jobs at this stuck_fraction"
    text = exporter.render().text.body.decode()
    parsed = samples(text)
    stalled = {
        dict(labels)["job_id"]
        for (name, labels), value in parsed.items()
        if name == "brightdata_job_stalled" and value == 1
    }
    long_running = {
        t.target_id for t in exporter.store
        if t.kind == "job" and t.progress is not None
        and exporter.poller.clock() - t.progress.running_since >= 30 * 60
    }  # fmt: skip
    assert stuck_running & long_running <= stalled
    assert stalled, "at least one stuck job is seen stalled"
    healthy = {
        j["id"] for j in state["brightdata"]["jobs"] if not j["stuck"] and j["status"] == "running"
    }
    assert not (stalled & healthy & long_running)


async def test_retention_keeps_series_bounded(sim: SimulatorServer) -> None:
    exporter = exporter_for(sim, "retention:\n  finished_ttl: 20m\n  max_tracked: 250\n")
    await exporter.poller.run_cycle()
    sizes = []
    for _ in range(3):
        await run(sim, exporter, 10)
        sizes.append(len(exporter.store))
        series = len(exporter.render().text.body.splitlines())
        assert series < 250 * 30
    await exporter.stop()
    assert max(sizes) <= 250
    evicted = values(exporter.aggregates.evicted)
    assert sum(evicted.values()) > 0
    # Evicted ids are not rediscovered while they are still in the list window.
    assert all(key not in exporter.store for key in exporter.store.forgotten)


async def test_per_job_metrics_off_keeps_only_aggregates(sim: SimulatorServer) -> None:
    exporter = exporter_for(sim, "per_job_metrics: false\n")
    await exporter.poller.run_cycle()
    await run(sim, exporter, 10)
    await exporter.stop()
    text = exporter.render().text.body.decode()
    assert "brightdata_job_status" not in text and "aitronos_job_status" not in text
    assert "scrapejobs_exporter_target_up" not in text
    assert "brightdata_collector_jobs_finished_total" in text


async def test_evicted_static_job_is_not_rediscovered_and_counted(sim: SimulatorServer) -> None:
    state = sim.state()
    finished_job = next(j for j in state["brightdata"]["jobs"] if j["status"] == "done")
    exporter = exporter_for(sim, "retention:\n  finished_ttl: 5m\n")
    exporter.store.add("brightdata", "job", finished_job["id"])  # as if listed in the config
    await exporter.poller.run_cycle()
    await run(sim, exporter, 10)  # well past the TTL: the static job is evicted
    await exporter.stop()
    assert ("brightdata", "job", finished_job["id"]) not in exporter.store
    assert finished(exporter) == truth(sim)


@respx.mock
async def test_collectors_list_that_ignores_offset_is_read_once() -> None:
    from scrapejobs_exporter.discovery import Discovery, ListSource
    from scrapejobs_exporter.providers.brightdata import BrightDataClient
    from scrapejobs_exporter.providers.http import HttpClient
    from scrapejobs_exporter.resilience import ProviderGate
    from scrapejobs_exporter.telemetry import Telemetry

    page = {"total": 5, "data": [{"id": "c_1", "active": True}, {"id": "c_2", "active": False}]}
    route = respx.get("https://bd.test/dca/collectors_list").respond(json=page)
    gate = ProviderGate("brightdata", 100, Telemetry())
    client = BrightDataClient(HttpClient(gate, "https://bd.test", {}, 5))
    config = parse_config("brightdata:\n  api_token: t\n  collectors: all\n", env={})
    discovery = Discovery(config, exporter_store())
    collectors = await discovery._list_collectors(client, ListSource("brightdata", "collectors"))
    await client.http.aclose()
    assert [c.collector_id for c in collectors] == ["c_1", "c_2"]
    assert route.call_count == 2  # the second page brought nothing new


def exporter_store() -> Any:
    from scrapejobs_exporter.store import Store

    return Store()


async def test_metrics_rerendered_soon_after_a_change_and_on_a_timer() -> None:
    """A change in the store (a job counted, a status) is on /metrics within about a second;
    without changes the page is still re-rendered every poll_interval / 2."""
    config = parse_config(
        "poll_interval: 30s\nbrightdata:\n  api_token: t\n  jobs: [j_1]\n", env={}
    )
    now = [0.0]
    renders: list[float] = []

    async def sleep(seconds: float) -> None:
        before, now[0] = now[0], now[0] + seconds
        if before < 19.5 <= now[0]:
            exporter.store.changes += 2  # two changes within one look
        if now[0] > 45:
            raise asyncio.CancelledError

    exporter = Exporter(config, clock=lambda: now[0], sleep=sleep)
    for scheduler in exporter.poller.schedulers.values():
        scheduler.ready.set()

    async def counted_render() -> None:
        renders.append(now[0])

    exporter.refresh_exposition = counted_render  # type: ignore[method-assign]
    with pytest.raises(asyncio.CancelledError):
        await exporter._render_loop()
    # The first render once ready (looked at every 0.2 s), then every second: the timer at
    # 15.2 (nothing changed), the changes at 19.5 at the next look, the timer 15 s later.
    assert renders == pytest.approx([0.2, 15.2, 20.2, 35.2])
