"""Sharding: three exporters against one simulator cover every target exactly once."""

from __future__ import annotations

import pytest

from scrapejobs_exporter.exporter import Exporter
from scrapejobs_exporter.sharding import Shard, ShardError, shard_from
from scrapejobs_exporter.simulator import SimulatorConfig, SimulatorServer
from tests.unit.test_exporter import exporter_for, run


def test_shard_from_flags_and_pod_names() -> None:
    assert shard_from(None, 1) == Shard(0, 1)
    assert shard_from(2, 3) == Shard(2, 3)
    assert shard_from(None, 3, {"HOSTNAME": "scrapejobs-exporter-2"}) == Shard(2, 3)
    assert shard_from(None, 3, {"POD_NAME": "x-1", "HOSTNAME": "x-2"}) == Shard(1, 3)
    with pytest.raises(ShardError, match="no ordinal"):
        shard_from(None, 3, {"HOSTNAME": "laptop"})
    with pytest.raises(ShardError, match=r"outside 0\.\.2"):
        shard_from(3, 3)
    with pytest.raises(ShardError, match="outside"):
        shard_from(None, 3, {"HOSTNAME": "exporter-7"})


def test_ownership_is_a_partition() -> None:
    ids = [f"j_{n:05d}" for n in range(3000)]
    shards = [Shard(i, 3) for i in range(3)]
    owners = [[s.index for s in shards if s.owns(i)] for i in ids]
    assert all(len(o) == 1 for o in owners)
    counts = [sum(o == [i] for o in owners) for i in range(3)]
    assert min(counts) > 800  # roughly even


async def test_three_shards_cover_every_target_once() -> None:
    # Four exporters at the same simulated instant: the account limits would refuse them.
    sim = SimulatorServer(SimulatorConfig(seed=5, scale=300, manual_clock=True, rate_limits=False))
    await sim.start()
    try:
        whole = exporter_for(sim)
        # What --shard-index/--shard-count do.
        shards = [exporter_for(sim, shard=Shard(index, 3)) for index in range(3)]
        for exporter in [whole, *shards]:
            await exporter.poller.run_cycle()
        await run(sim, whole, 5)
        for exporter in shards:
            await exporter.poller.run_cycle()
        # Advance once more for everyone in lock step, then compare.
        sim.advance(60)
        for exporter in [whole, *shards]:
            await exporter.poller.run_cycle()
        everything = {t.key for t in whole.store}
        parts = [{t.key for t in e.store} for e in shards]
        assert len(everything) > 300
        assert set().union(*parts) == everything
        for i in range(3):
            for j in range(i + 1, 3):
                assert not parts[i] & parts[j]

        # Each list call is made by exactly one shard (the collectors list aside: every shard
        # reads it, at a low rate, to learn which collectors exist).
        def lists(exporter: Exporter) -> set[str]:
            found = exporter.poller.discovery
            keys = {s.key for p in ("brightdata", "aitronos") for s in found.sources(p)}
            return keys - {"collectors"}

        owned = [lists(e) for e in shards]
        assert sum(len(o) for o in owned) == len(set().union(*owned)) == len(lists(whole)) > 3
        for exporter in [whole, *shards]:
            await exporter.stop()
    finally:
        await sim.stop()


def test_cli_rejects_bad_shard_flags(tmp_path: object) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "scrapejobs_exporter", "once", "--config", "/nonexistent.yml",
         "--shard-count", "3", "--shard-index", "5"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--shard-index 5 is outside 0..2" in result.stderr
