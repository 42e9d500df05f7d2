"""The state file on its own: round trips, incremental flushes, atomic writes (an exception
inside the transaction, a SIGKILL mid-write), and files that cannot be used."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scrapejobs_exporter.progress import Progress
from scrapejobs_exporter.statefile import (
    SCHEMA_VERSION,
    Flusher,
    SeriesState,
    StateFile,
    TargetKey,
    TargetState,
    open_state_file,
)

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000.0


def target(n: int, status: str = "running", **changes: object) -> TargetState:
    fields: dict[str, object] = {
        "provider": "brightdata",
        "kind": "job",
        "target_id": f"j_{n}",
        "collector": f"c_{n % 3}",
        "static": False,
        "status": status,
        "counted": None,
        "owed_detail": False,
        "final": False,
        "first_seen": T0 + n,
        "finished_at": None,
        "last_detail": None,
        "progress": Progress(T0, T0 + 1, 100.0, 100.0 - n, T0 + 2) if status == "running" else None,
    }
    fields.update(changes)
    return TargetState(**fields)  # type: ignore[arg-type]


class World:
    """The store's side of a flush: the current state of every target, and its series."""

    def __init__(self, state: StateFile) -> None:
        self.state = state
        self.targets: dict[TargetKey, TargetState] = {}
        self.series: dict[tuple[str, tuple[str, ...]], SeriesState] = {}
        self.looked_up: list[TargetKey] = []

    def put(self, t: TargetState) -> None:
        self.targets[t.key] = t
        self.state.changed(t.key)

    def drop(self, key: TargetKey) -> None:
        del self.targets[key]
        self.state.removed(key)

    def lookup(self, key: TargetKey) -> TargetState | None:
        self.looked_up.append(key)
        return self.targets.get(key)

    def flush(self, now: float = T0 + 100, **meta: float) -> bool:
        return self.state.flush(self.lookup, self.series.values(), meta, now)


def rows(path: Path) -> dict[TargetKey, TargetState]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return {
            (r[0], r[1], r[2]): TargetState.from_row(r)
            for r in conn.execute("SELECT * FROM targets")
        }


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# --- round trip and incremental writes -----------------------------------------------------


def test_a_new_file_is_created_in_wal_mode_with_its_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "state.db"
    state, restored = open_state_file(path)
    assert state.status == "created" and state.enabled
    assert restored.targets == [] and restored.series == [] and restored.last_write is None
    state.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_round_trip_of_targets_series_and_meta(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    state, _ = open_state_file(path)
    world = World(state)
    running = target(1)
    done = target(2, "done", counted="", final=True, finished_at=T0 + 50.5, last_detail=T0 + 3)
    flow = target(5, "running", kind="ai_flow", counted="ai_1", static=True, owed_detail=True)
    unknown = target(3, None, collector=None)  # never observed yet: no status, no collector
    no_left = target(4, progress=Progress(T0, T0, None, None, T0))
    for t in (running, done, unknown, no_left, flow):
        world.put(t)
    world.series = {
        s.key: s
        for s in (
            SeriesState("brightdata_collector_jobs_finished_total", ("c_1", "done"), 7.0),
            SeriesState("aitronos_items_found_total", (), 1234.0),
            SeriesState("h_seconds", ("c_1",), 99.5, (1.0, 10.0), (1.0, 2.0, 0.0)),
        )
    }
    assert world.flush(T0 + 100, watching_since=T0)
    assert state.writes == 1 and state.write_errors == 0 and state.last_write == T0 + 100
    state.close()

    again, restored = open_state_file(path)
    assert again.status == "restored"
    assert sorted(restored.targets, key=lambda t: t.target_id) == [
        running, done, unknown, no_left, flow
    ]  # fmt: skip
    assert {s.key: s for s in restored.series} == world.series
    assert restored.meta["watching_since"] == T0
    assert restored.last_write == T0 + 100
    again.close()


def test_a_flush_writes_only_what_was_marked_and_the_series_that_moved(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    state, _ = open_state_file(path)
    world = World(state)
    for n in range(100):
        world.put(target(n))
    counter = SeriesState("c_total", ("x",), 1.0)
    world.series = {counter.key: counter}
    assert world.flush()
    assert len(world.looked_up) == 100

    # Three targets change, one leaves, nothing else is touched; the counter has not moved.
    world.looked_up.clear()
    for n in (5, 6, 7):
        world.put(target(n, "done", counted="", finished_at=T0 + 60))
    world.drop(("brightdata", "job", "j_9"))
    batch = state.take(world.lookup, world.series.values(), {}, T0 + 200)
    assert sorted(world.looked_up) == [("brightdata", "job", f"j_{n}") for n in (5, 6, 7)]
    assert len(batch.upserts) == 3 and batch.deletes == [("brightdata", "job", "j_9")]
    assert batch.series == []
    assert state.write(batch) and state.pending == 0

    # Nothing marked: a flush writes no target and no series, only its time.
    world.looked_up.clear()
    assert world.flush(T0 + 300)
    assert world.looked_up == []
    world.series[counter.key] = SeriesState("c_total", ("x",), 2.0)
    assert state.take(world.lookup, world.series.values(), {}, T0).series == [
        world.series[counter.key]
    ]
    state.close()

    stored = rows(path)
    assert len(stored) == 99 and ("brightdata", "job", "j_9") not in stored
    assert stored[("brightdata", "job", "j_5")].counted == ""
    assert stored[("brightdata", "job", "j_50")] == target(50)


def test_a_key_changed_then_gone_from_the_store_is_deleted(tmp_path: Path) -> None:
    state, _ = open_state_file(tmp_path / "state.db")
    world = World(state)
    world.put(target(1))
    assert world.flush()
    state.changed(target(1).key)
    del world.targets[target(1).key]  # evicted without being marked removed
    assert world.flush()
    state.close()
    assert rows(tmp_path / "state.db") == {}


# --- atomic writes -------------------------------------------------------------------------


class Exploding(list[tuple[object, ...]]):
    """Rows that raise half-way through, as if the process died inside the transaction."""

    def __iter__(self) -> Iterator[tuple[object, ...]]:
        for i, row in enumerate(super().__iter__()):
            if i == len(self) // 2:
                raise RuntimeError("killed mid-write")
            yield row


def test_an_exception_inside_the_transaction_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    state, _ = open_state_file(path)
    world = World(state)
    for n in range(10):
        world.put(target(n))
    assert world.flush(T0 + 1)
    before = rows(path)

    for n in range(10):
        world.put(target(n, "done", counted=""))
    world.drop(("brightdata", "job", "j_0"))
    batch = state.take(world.lookup, (), {}, T0 + 2)
    broken = type(batch)(batch.at, Exploding(batch.upserts), batch.deletes, batch.series,
                         batch.meta, batch.keys)  # fmt: skip
    with pytest.raises(RuntimeError):
        state.write(broken)
    assert rows(path) == before  # the delete that ran first was rolled back too
    assert state.last_write == T0 + 1

    # A failing statement (a constraint) is a counted, retried write error.
    bad = type(batch)(batch.at, [(None,) * 17], batch.deletes, [], batch.meta, batch.keys)
    assert not state.write(bad)
    assert state.write_errors == 1 and rows(path) == before
    state.retry(bad)
    assert world.flush(T0 + 3)
    after = rows(path)
    assert len(after) == 9 and all(t.counted == "" for t in after.values())


WRITER = """
import sys
from scrapejobs_exporter.statefile import TargetState, open_state_file
state, _ = open_state_file(sys.argv[1])
n = int(sys.argv[2])
generation = 0
print("ready", flush=True)
while True:
    generation += 1
    rows = {("p", "k", str(i)): TargetState("p", "k", str(i), None, False, str(generation), None, False, False, 0.0)
            for i in range(n)}
    for key in rows:
        state.changed(key)
    state.flush(rows.get, (), {"generation": float(generation)}, float(generation))
"""


def test_sigkill_mid_write_leaves_the_last_whole_write(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    for delay in (0.3, 0.45, 0.6):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), "3000"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
        time.sleep(delay)
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
        state, restored = open_state_file(path)
        state.close()
        assert state.status == "restored"
        generation = restored.meta["generation"]
        assert generation >= 1
        assert len(restored.targets) == 3000
        assert {t.status for t in restored.targets} == {str(int(generation))}


# --- files that cannot be used -------------------------------------------------------------


def written_file(path: Path) -> None:
    state, _ = open_state_file(path)
    world = World(state)
    for n in range(2000):
        world.put(target(n))
    assert world.flush()
    state.close()


@pytest.mark.parametrize("damage", ["random", "truncated", "header_only", "foreign"])
def test_a_damaged_file_is_moved_aside_and_a_new_one_started(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.db"
    if damage == "random":
        path.write_bytes(os.urandom(10_000))
    elif damage == "foreign":
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("CREATE TABLE t (x)")
            conn.commit()
    else:
        written_file(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] if damage == "truncated" else data[:100])
    original = path.read_bytes()
    state, restored = open_state_file(path)
    assert state.status == "corrupt" and state.enabled
    assert restored.targets == [] and restored.meta == {}
    assert len(errors(caplog)) == 1 and str(path) in errors(caplog)[0]
    assert (tmp_path / "state.db.corrupt").read_bytes() == original
    world = World(state)
    world.put(target(1))
    assert world.flush()
    state.close()
    assert list(rows(path)) == [target(1).key]


def test_a_file_from_a_newer_version_is_left_untouched(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.db"
    written_file(path)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
        conn.commit()
    original = path.read_bytes()
    state, restored = open_state_file(path)
    assert state.status == "newer_version" and not state.enabled
    assert restored.targets == []
    assert len(errors(caplog)) == 1 and "newer version" in errors(caplog)[0]
    world = World(state)
    world.put(target(1))
    assert not world.flush() and state.write_errors == 0
    state.close()
    assert path.read_bytes() == original


@contextlib.contextmanager
def unprivileged() -> Iterator[None]:
    """Permissions apply: root ignores them, so act as `nobody` meanwhile (the real uid stays
    root, so it can come back)."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_a_read_only_file_gives_an_empty_store_and_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Not tmp_path: its parents are private to the user running the tests.
    directory = Path(tempfile.mkdtemp())
    try:
        directory.chmod(0o755)
        path = directory / "state.db"
        written_file(path)
        path.chmod(0o444)
        directory.chmod(0o555)
        with unprivileged():
            state, restored = open_state_file(path)
            world = World(state)
            world.put(target(1))
            flushed = world.flush()
            state.close()
        assert state.status == "unwritable" and not state.enabled and not flushed
        assert restored.targets == []
        assert len(errors(caplog)) == 1 and str(path) in errors(caplog)[0]
        assert len(rows(path)) == 2000
    finally:
        directory.chmod(0o755)
        for child in directory.iterdir():
            child.unlink()
        directory.rmdir()


def test_a_path_that_cannot_be_created_is_unwritable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "file").write_text("x")
    state, _ = open_state_file(tmp_path / "file" / "state.db")
    assert state.status == "unwritable" and not state.enabled
    assert len(errors(caplog)) == 1


def test_a_full_disk_is_a_counted_error_and_the_changes_wait(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.db"
    state, _ = open_state_file(path)
    world = World(state)
    world.put(target(0))
    assert world.flush(T0 + 1)
    conn = state._conn
    assert conn is not None
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 1}")  # room for almost nothing more
    for n in range(1, 3000):
        world.put(target(n))
    assert not world.flush(T0 + 2)
    assert not world.flush(T0 + 3)
    assert state.write_errors == 2 and state.pending == 2999 and state.last_write == T0 + 1
    assert len(errors(caplog)) == 1  # logged when the failures start, not at every attempt
    conn.execute("PRAGMA max_page_count = 1000000")
    assert world.flush(T0 + 4)
    assert state.pending == 0 and state.writes == 2
    state.close()
    assert len(rows(path)) == 3000


# --- the timer -----------------------------------------------------------------------------


async def test_the_flusher_writes_on_its_timer_and_what_is_left_at_stop(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    state, _ = open_state_file(path)
    world = World(state)
    now = [T0]
    flusher = Flusher(
        state, world.lookup, lambda: world.series.values(), lambda: {"m": 1.0}, 0.01,
        clock=lambda: now[0],
    )  # fmt: skip
    flusher.start()
    world.put(target(1))
    for _ in range(200):
        await asyncio.sleep(0.01)
        if state.writes:
            break
    assert state.writes >= 1 and list(rows(path)) == [target(1).key]
    world.put(target(2))
    now[0] = T0 + 5
    await flusher.stop()
    assert not state.enabled  # closed
    assert set(rows(path)) == {target(1).key, target(2).key}
    _, restored = open_state_file(path)
    assert restored.last_write == T0 + 5 and restored.meta["m"] == 1.0


def test_named_values_are_written_when_they_change(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    state, _ = open_state_file(path)
    marks = {"watermark:a": 1.0, "watermark:b": 2.0}
    batch = state.take(lambda key: None, (), marks, T0)
    assert batch.meta == {**marks, "last_write": T0}
    assert state.write(batch)
    assert state.take(lambda key: None, (), marks, T0 + 1).meta == {"last_write": T0 + 1}
    marks["watermark:b"] = 3.0
    assert state.flush(lambda key: None, (), marks, T0 + 2)
    state.close()
    again, restored = open_state_file(path)
    assert restored.meta["watermark:a"] == 1.0 and restored.meta["watermark:b"] == 3.0
    assert again.take(lambda key: None, (), marks, T0 + 3).meta == {"last_write": T0 + 3}
    again.close()
