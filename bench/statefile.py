"""The state file's cost per cycle at 10k and 50k tracked jobs (`python -m bench --only statefile`).

A real `Store` of N tracked Scraper Studio jobs, a share of them running, journalled to a real
state file, and one flush per cycle (30 s apart) as the exporter does: `take()` on the event loop
(the targets the store marked changed become rows through `Store.persisted`, the finished
aggregates that moved through `Aggregates.kept`), `write()` in a thread (one
transaction). Each cycle some running jobs' rows move (pages left), some finish (counted, so the
aggregates move too), as many new ones appear and as many old finished ones are evicted. Three
scenarios per N:

- *budget-bound*: what the default budgets allow on the busy world of the budget-bound scenario
  (38 + 16 completions a minute): about 90 running jobs' values move per cycle, 27 finish; the
  rows written do not grow with N;
- *2% running, all move*: every running job's row moves every cycle (the cost scenario's world,
  with a budget large enough to poll them all);
- *20% running, all move*: the same with a fifth of the world running (an upper bound).

Also measured: what the store's marking adds to applying every list row of the world once (each
`observe()` compares what the file keeps of the target before and after), the first flush of a
new file (every target), opening and restoring the file at start, and the file's size.
"""

from __future__ import annotations

import random
import sqlite3
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.common import percentile
from scrapejobs_exporter.aggregates import Aggregates
from scrapejobs_exporter.config import BucketsConfig
from scrapejobs_exporter.providers.brightdata import StudioJob
from scrapejobs_exporter.statefile import StateFile, open_state_file
from scrapejobs_exporter.store import Store, TargetKey, kept_values

__all__ = ["DEFAULT_JOBS", "markdown_section", "measure_all"]

DEFAULT_JOBS = (10_000, 50_000)
COLLECTORS = 50
T0 = 1_700_000_000.0
STEP = 30.0  # seconds between flushes (the default poll_interval)
PAGES = 500
SWEEPS = 5  # passes over every row; the fastest counts


@dataclass(frozen=True)
class Scenario:
    name: str
    running_share: float
    moving: int | None  # running jobs whose row moves per cycle; None: all of them
    finishing: int | None  # per cycle; None: 1% of the running ones


SCENARIOS = (
    Scenario("budget-bound", 0.2, 90, 27),
    Scenario("2% running, all move", 0.02, None, None),
    Scenario("20% running, all move", 0.2, None, None),
)


class World:
    """The store, and the current list row of every job in it."""

    def __init__(self, jobs: int, running_share: float, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.aggregates = Aggregates(BucketsConfig())
        self.store = Store(self.aggregates)
        self.rows: dict[TargetKey, StudioJob] = {}
        self.running: list[TargetKey] = []
        self.finished: list[TargetKey] = []  # oldest first
        self.next_id = 0
        self.now = T0
        # Jobs there before the exporter watched are remembered, not counted.
        self.watermark = T0 + 1e9
        for _ in range(jobs):
            self._add(self.rng.random() < running_share)
        self.watermark = T0

    def _add(self, running: bool) -> TargetKey:
        self.next_id += 1
        job_id, collector = f"j_{self.next_id:08d}", f"c_{self.rng.randrange(COLLECTORS)}"
        status = "running" if running else "done"
        row = StudioJob(
            job_id, collector, status=status, raw_status=status,
            lines=0 if running else 40, fails=0, pages=PAGES, pages_left=PAGES if running else 0,
            navigations=1, created=self.now - 60, started=self.now - 50,
            finished=None if running else self.now - 1, job_time=None if running else 49.0,
            queue_time=10.0,
        )  # fmt: skip
        target = self.store.add("brightdata", "job", job_id, collector, static=False, now=self.now)
        self._apply(target.key, row)
        (self.running if running else self.finished).append(target.key)
        return target.key

    def _apply(self, key: TargetKey, row: StudioJob) -> None:
        self.rows[key] = row
        target = self.store.get(key)
        assert target is not None
        self.store.observe(target, row, self.now, complete=True, watermark=self.watermark)

    def cycle(self, scenario: Scenario) -> None:
        """Move the world one step: the store marks what changed."""
        self.now += STEP
        moving = self.running
        if scenario.moving is not None:
            moving = self.rng.sample(self.running, min(scenario.moving, len(self.running)))
        for key in moving:
            row = self.rows[key]
            self._apply(key, replace(row, pages_left=max(0, (row.pages_left or 0) - 1)))
        finishing = scenario.finishing
        if finishing is None:
            finishing = max(1, round(len(self.running) * 0.01))
        for _ in range(finishing):
            key = self.running.pop(self.rng.randrange(len(self.running)))
            row = replace(self.rows[key], status="done", raw_status="done", pages_left=0,
                          lines=40, finished=self.now, job_time=60.0)  # fmt: skip
            self._apply(key, row)
            self.finished.append(key)
            self._add(True)
            evicted = self.finished.pop(0)
            del self.rows[evicted]
            self.store.remove(evicted)

    def sweep_ms(self) -> float:
        """Milliseconds to apply every row once more (nothing changed), as a sweep does."""
        started = time.perf_counter()
        for key, row in self.rows.items():
            self._apply(key, row)
        return (time.perf_counter() - started) * 1000

    def marking_ms(self) -> float:
        """Milliseconds the state file adds to such a sweep: what `observe()` does more with a
        journal, two looks at what the file keeps of each target and a comparison (timed on
        its own: next to a whole sweep it is within the noise of a shared machine)."""
        targets = list(self.store)
        started = time.perf_counter()
        for target in targets:
            _ = kept_values(target) != kept_values(target)
        return (time.perf_counter() - started) * 1000


def flush(world: World, state: StateFile) -> tuple[float, float, int]:
    """One flush: ms on the loop (`take()`), ms in the writer (`write()`), rows written."""
    started = time.perf_counter()
    batch = state.take(world.store.persisted, world.aggregates.kept(), {}, world.now)
    taken = time.perf_counter()
    assert state.write(batch)
    done = time.perf_counter()
    return (taken - started) * 1000, (done - taken) * 1000, len(batch.upserts) + len(batch.deletes)


def measure(jobs: int, scenario: Scenario, flushes: int, directory: Path) -> dict[str, Any]:
    path = directory / f"state-{jobs}-{SCENARIOS.index(scenario)}.db"
    world = World(jobs, scenario.running_share)
    sweep_ms = min(world.sweep_ms() for _ in range(SWEEPS))
    state, _ = open_state_file(path)
    for target in world.store:
        state.changed(target.key)  # a new file: every target
    world.store.journal = state
    take, write, _ = flush(world, state)
    first_ms = take + write
    marking_ms = min(world.marking_ms() for _ in range(SWEEPS))

    take_ms, write_ms, rows, wal = [], [], [], []
    for _ in range(flushes):
        world.cycle(scenario)
        take, write, written = flush(world, state)
        take_ms.append(take)
        write_ms.append(write)
        rows.append(written)
        wal.append(path.with_name(path.name + "-wal").stat().st_size)
    state.close()
    size = path.stat().st_size

    started = time.perf_counter()
    reopened, restored = open_state_file(path)
    open_ms = (time.perf_counter() - started) * 1000
    reopened.close()
    assert len(restored.targets) == len(world.store), (len(restored.targets), len(world.store))
    total = [t + w for t, w in zip(take_ms, write_ms, strict=True)]
    return {
        "jobs": jobs,
        "scenario": scenario.name,
        "rows_per_flush": statistics.median(rows),
        "flushes": flushes,
        "take_ms_p50": statistics.median(take_ms),
        "write_ms_p50": statistics.median(write_ms),
        "flush_ms_p50": statistics.median(total),
        "flush_ms_p90": percentile(total, 90),
        "flush_ms_max": max(total),
        "sweep_marking_ms": marking_ms,
        "sweep_ms": sweep_ms,
        "first_flush_ms": first_ms,
        "open_ms": open_ms,
        "file_mb": size / 1e6,
        "wal_mb_max": max(wal) / 1e6,
    }


def measure_all(jobs: list[int], quick: bool, log: Any) -> dict[str, Any]:
    flushes = 3 if quick else 20
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for n in jobs:
            for scenario in SCENARIOS:
                rows.append(measure(n, scenario, flushes, Path(directory)))
                log(f"state file: {n:,} tracked, {scenario.name}: done")
    return {"flushes": flushes, "sqlite": sqlite3.sqlite_version, "rows": rows}


COLUMNS = (
    ("Tracked", "jobs", "{:,}"),
    ("Changes per cycle", "scenario", "{}"),
    ("Rows written per flush", "rows_per_flush", "{:,.0f}"),
    ("Flush p50 (ms)", "flush_ms_p50", "{:.1f}"),
    ("of which on the loop (ms)", "take_ms_p50", "{:.1f}"),
    ("in the writer thread (ms)", "write_ms_p50", "{:.1f}"),
    ("Flush p90 / max (ms)", ("flush_ms_p90", "flush_ms_max"), "{:.1f} / {:.1f}"),
    (
        "Sweep of every row: marking / the sweep (ms)",
        ("sweep_marking_ms", "sweep_ms"),
        "{:.0f} / {:.0f}",
    ),
    ("First flush, every target (ms)", "first_flush_ms", "{:,.0f}"),
    ("Open and restore (ms)", "open_ms", "{:,.0f}"),
    ("File (MB)", "file_mb", "{:.1f}"),
    ("WAL max (MB)", "wal_mb_max", "{:.1f}"),
)


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| " + " | ".join(c[0] for c in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = []
        for _, key, fmt in COLUMNS:
            values = [row[k] for k in key] if isinstance(key, tuple) else [row[key]]
            cells.append(fmt.format(*values))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown_section(document: dict[str, Any]) -> list[str]:
    results = document["results"].get("statefile")
    if not results:
        return []
    measured = document["results"].get("statefile_measured", {})
    commit = measured.get("git", {}).get("commit", "")[:12] or "unknown"
    load = (measured.get("load_average", {}).get("start") or ["unknown"])[0]
    what = (__doc__ or "").split("\n\n", 1)[1]
    return [
        "## State file (`state_file:`)",
        "",
        f"Measured {measured.get('date', 'unknown')}, commit {commit}, SQLite "
        f"{results['sqlite']}, {results['flushes']} flushes per row; load average (1 min) "
        f"{load} at the start.",
        "",
        *table(results["rows"]),
        "",
        what.strip(),
        "",
        "A flush's time is `take()` plus `write()`; the write runs in a worker thread, so only "
        "`take()` holds the event loop. Rows written are upserts plus deletes. *Sweep of every "
        "row*: what the state file adds to one pass of `observe()` over every job's row "
        "(`store.kept_values` twice per row and their comparison), next to the pass itself "
        "without a state file; the fastest of five each.",
        "",
    ]
