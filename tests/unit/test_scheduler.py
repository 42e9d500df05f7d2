"""The per-provider schedulers against a busy simulated world with the account limits on, on
the simulator's manual clock: `step()` sends what the budget allows now, then the test moves
time to the next moment something can go out. Nothing sleeps; ten minutes take seconds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from scrapejobs_exporter.config import parse_config
from scrapejobs_exporter.exporter import Exporter
from scrapejobs_exporter.poller import PROVIDERS
from scrapejobs_exporter.sharding import Shard
from scrapejobs_exporter.simulator import SimulatorConfig, SimulatorServer
from tests.helpers import values
from tests.unit.test_exporter import config_for

MINUTE = 60.0


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    # The world (scale 1000, a fifth running), limits on: Bright Data 100 requests in
    # any 60 s and the IP block, Aitronos 100/min (burst 120) and 10,000 a day.
    server = SimulatorServer(
        SimulatorConfig(seed=7, scale=1000, manual_clock=True, running_fraction=0.2)
    )
    await server.start()
    yield server
    await server.stop()


def now(sim: SimulatorServer) -> float:
    return sim.world.now_ms / 1000


def exporter_for(sim: SimulatorServer, shard: Shard | None = None) -> Exporter:
    """The issue's exporter settings, default budgets."""
    text = config_for(sim, poll_interval="30s", budget="", daily="")

    async def sleep(seconds: float) -> None:  # a wait inside a request moves the world on
        sim.advance(seconds)

    return Exporter(parse_config(text, env={}), clock=lambda: now(sim), sleep=sleep, shard=shard)


async def drive(
    sim: SimulatorServer,
    exporters: list[Exporter],
    seconds: float,
    every: Callable[[], None] | None = None,
) -> None:
    """Run the exporters' schedulers for `seconds` of simulated time; `every` after each
    move of the clock."""
    end = now(sim) + seconds
    while (t := now(sim)) < end:
        waits = [
            await scheduler.step()
            for e in exporters
            for p, scheduler in e.poller.schedulers.items()
            if getattr(e.config, p) is not None
        ]
        sim.advance(max(0.01, min(*waits, end - t)))
        if every is not None:
            every()


def counted(exporters: list[Exporter]) -> dict[str, float]:
    total = {"studio_jobs": 0.0, "aitronos_jobs": 0.0, "snapshots": 0.0}
    for e in exporters:
        a = e.aggregates
        total["studio_jobs"] += sum(values(a.jobs_finished).values())
        total["aitronos_jobs"] += sum(values(a.aitronos_finished).values())
        total["snapshots"] += sum(values(a.snapshots_finished).values())
    return total


class Truth:
    """Checks, each time it is called, that every job finished more than a minute ago is
    counted and that nothing is counted that did not finish (so nothing twice)."""

    def __init__(self, sim: SimulatorServer, exporters: list[Exporter]) -> None:
        self.sim, self.exporters = sim, exporters
        self.checks = 0

    def __call__(self) -> None:
        state = self.sim.state(compact=True)
        t = now(self.sim)
        mine = counted(self.exporters)
        for kind, jobs in state["finished_since_start"].items():
            if kind not in mine:
                continue
            done = [j["finished"] for j in jobs.values()]
            assert mine[kind] <= len(done), (kind, "counted more than finished")
            late = sum(1 for f in done if f <= t - MINUTE)
            assert mine[kind] >= late, (kind, "a finish more than a minute old is not counted")
        self.checks += 1


def limits(sim: SimulatorServer) -> dict[str, Any]:
    return sim.state(compact=True)["rate_limits"]  # type: ignore[no-any-return]


async def test_busy_world_counted_within_a_minute_within_budget(sim: SimulatorServer) -> None:
    exporter = exporter_for(sim)
    truth = Truth(sim, [exporter])
    await drive(sim, [exporter], 10 * MINUTE, truth)
    await exporter.stop()
    assert truth.checks > 100
    assert counted([exporter])["studio_jobs"] > 100  # a busy world: ~20 finish a minute
    assert counted([exporter])["aitronos_jobs"] > 30
    for provider in PROVIDERS:
        assert limits(sim)[provider]["rate_limited"] == 0, provider
        assert limits(sim)[provider]["busiest_60s"] <= 100, provider
    assert limits(sim)["brightdata"]["busiest_60s"] >= 95  # and the budget is used
    # Running jobs older than a minute are all shown, and few shown running have finished.
    state = sim.state(compact=True)
    running = {
        job_id
        for job_id, job in state["running"]["studio_jobs"].items()
        if job["created"] <= now(sim) - MINUTE
    }
    shown = {
        t.target_id
        for t in exporter.store
        if t.kind == "job" and t.provider == "brightdata" and t.model and not t.terminal
    }
    assert len(running & shown) >= 0.95 * len(running)
    finished = state["finished_since_start"]["studio_jobs"]
    gone = shown - set(state["running"]["studio_jobs"])
    stale = {i for i in gone if finished[i]["finished"] <= now(sim) - MINUTE}
    assert len(stale) <= 0.02 * len(shown)


async def test_ready_after_the_first_list_sweeps_and_values_age_evenly(
    sim: SimulatorServer,
) -> None:
    exporter = exporter_for(sim)
    started = now(sim)
    while not exporter.poller.ready:  # the sweeps are in (the page turns at its next render)
        await drive(sim, [exporter], 1.0)
    assert now(sim) - started < 30  # seconds, not the minutes every detail poll would take
    await drive(sim, [exporter], 6 * MINUTE)
    await exporter.stop()
    t = now(sim)
    ages = sorted(
        t - (target.last_detail or target.first_seen)
        for target in exporter.store
        if target.provider == "brightdata" and target.kind == "job" and not target.terminal
    )
    running, per_minute = len(ages), 100 - 8 * 2  # lists: about 8 calls every 30 s
    assert running > 100
    # Oldest value first: no running job's detail is much older than R / D minutes.
    assert ages[-1] <= (running / per_minute) * MINUTE * 1.5 + 60


async def test_three_shards_share_the_account(sim: SimulatorServer) -> None:
    shards = [exporter_for(sim, Shard(i, 3)) for i in range(3)]
    truth = Truth(sim, shards)
    await drive(sim, shards, 6 * MINUTE, truth)
    for e in shards:
        await e.stop()
    for provider in PROVIDERS:
        assert limits(sim)[provider]["rate_limited"] == 0, provider
        assert limits(sim)[provider]["busiest_60s"] <= 100, provider
    # Each job is watched by one shard only.
    keys = [{t.key for t in e.store} for e in shards]
    assert sum(len(k) for k in keys) == len(set().union(*keys))
    assert counted(shards)["studio_jobs"] > 50


async def test_restart_counts_only_what_finished_after_it(sim: SimulatorServer) -> None:
    first = exporter_for(sim)
    await drive(sim, [first], 3 * MINUTE)
    await first.stop()
    sim.advance(MINUTE)  # down for a minute: what finishes meanwhile is nobody's
    restarted_at = now(sim)
    second = exporter_for(sim)
    await drive(sim, [second], 4 * MINUTE)
    await second.stop()
    finished = sim.state(compact=True)["finished_since_start"]
    after = {
        kind: sum(1 for j in jobs.values() if j["finished"] > restarted_at)
        for kind, jobs in finished.items()
    }
    mine = counted([second])
    for kind in ("studio_jobs", "aitronos_jobs"):
        # Everything that finished after the restart, but for the last minute's finishes;
        # nothing from before it.
        recent = sum(1 for j in finished[kind].values() if j["finished"] > now(sim) - MINUTE)
        assert after[kind] - recent <= mine[kind] <= after[kind], kind


async def test_outage_of_one_provider_leaves_the_other_fresh(sim: SimulatorServer) -> None:
    exporter = exporter_for(sim)
    await drive(sim, [exporter], 2 * MINUTE)
    async with httpx.AsyncClient(timeout=5) as client:
        rule = {"fault": "http_503", "path": "^/v1/"}
        assert (await client.post(f"{sim.url}/_sim/faults", json=rule)).status_code == 200
        worst: list[float] = []

        def fresh() -> None:
            t = now(sim)
            ages = [
                t - target.last_success
                for target in exporter.store
                if target.provider == "brightdata" and target.kind == "job"
                and not target.final and target.last_success is not None
            ]  # fmt: skip
            worst.append(max(ages))

        await drive(sim, [exporter], 10 * MINUTE, fresh)
        aitronos = [t for t in exporter.store if t.provider == "aitronos" and not t.final]
        assert aitronos and not any(t.up for t in aitronos)  # the outage shows
        # Bright Data's running jobs stay as fresh as its list sweeps keep them.
        assert max(worst) <= 2 * MINUTE
        await client.delete(f"{sim.url}/_sim/faults")
    back = now(sim)
    while any(t.up is False for t in exporter.store if t.provider == "aitronos"):
        await drive(sim, [exporter], 5.0)
        assert now(sim) - back <= 2 * MINUTE, "targets not up again within two minutes"
    await exporter.stop()


def test_a_running_target_without_list_rows_goes_before_listed_ones() -> None:
    """A job named in the config (or an AI flow) is only seen finishing by its own poll; a
    listed job's status comes with every sweep. So the unlisted one is polled every
    poll_interval, ahead of listed jobs whose details are older."""
    from scrapejobs_exporter.providers.brightdata import StudioJob

    config = parse_config(
        "poll_interval: 30s\nbrightdata:\n  api_token: t\n  jobs: [j_static]\n", env={}
    )
    t = 1_700_000_000.0
    exporter = Exporter(config, clock=lambda: t)
    store = exporter.store
    static = store.get(("brightdata", "job", "j_static"))
    assert static is not None
    store.observe(
        static,
        StudioJob("j_static", "c_1", status="running", raw_status="running"),
        t - 40,
        complete=True,
    )
    listed = store.add("brightdata", "job", "j_listed", "c_1", static=False, now=t - 300)
    store.observe(
        listed,
        StudioJob("j_listed", "c_1", status="running", raw_status="running"),
        t - 300,
        complete=True,
    )
    row = StudioJob("j_listed", "c_1", status="running", raw_status="running")
    store.observe(listed, row, t - 5, complete=False)  # its row from the last sweep
    scheduler = exporter.poller.schedulers["brightdata"]
    unit, _ = scheduler.choose(t)
    assert unit is not None and unit.target is static  # type: ignore[union-attr]
    # Once polled, the listed job's old detail is next; the static one is due again 30 s on.
    store.observe(
        static,
        StudioJob("j_static", "c_1", status="running", raw_status="running"),
        t,
        complete=True,
    )
    unit, _ = scheduler.choose(t)
    assert unit is not None and unit.target is listed  # type: ignore[union-attr]


async def test_a_provider_clock_twice_ours_counts_every_start_up_finish(
    sim: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider's clock runs twice as fast as ours (a simulator at `--speed 2`) and the
    first list reads come 5 s of ours after the process start: 10 s of the provider's, whose
    finishes count. The first reads take the clocks to run alike until the rate is measured;
    then the finishes they held count, and nothing from before the start does."""
    from scrapejobs_exporter.store import Store

    sim.advance(5 * MINUTE)  # a world well under way
    origin = now(sim)
    started_on_provider = origin - 10.0

    def ours() -> float:
        return origin + (now(sim) - origin) / 2

    async def sleep(seconds: float) -> None:
        sim.advance(2 * seconds)

    text = config_for(sim, poll_interval="30s", budget="", daily="")
    exporter = Exporter(parse_config(text, env={}), clock=ours, sleep=sleep, started=ours() - 5.0)
    counted_keys: list[tuple[str, str, str]] = []
    count = Store._count

    def spy(store: Store, kind: Any, target: Any, *args: Any) -> None:
        counted_keys.append(target.key)
        count(store, kind, target, *args)

    monkeypatch.setattr(Store, "_count", spy)
    end = now(sim) + 4 * MINUTE
    while (t := now(sim)) < end:
        waits = [await s.step() for s in exporter.poller.schedulers.values()]
        sim.advance(2 * max(0.01, min(*waits, (end - t) / 2)))
    await exporter.stop()
    assert len(counted_keys) == len(set(counted_keys))  # none twice
    settled = now(sim) - 2 * MINUTE  # everything that finished by then is counted
    finished = sim.state(compact=True)["finished_since_start"]
    names = {"studio_jobs": ("brightdata", "job"), "aitronos_jobs": ("aitronos", "job")}
    for name, (provider, kind) in names.items():
        mine = {k[2] for k in counted_keys if k[:2] == (provider, kind)}
        truth = {i for i, j in finished[name].items() if started_on_provider < j["finished"]}
        upto = {i for i in truth if finished[name][i]["finished"] <= settled}
        assert upto <= mine <= truth, name
        start_up = {i for i in truth if finished[name][i]["finished"] <= origin}
        assert start_up, name  # the start-up finishes the test is about
