"""The state file: what the exporter must remember across a restart, in one SQLite file.

It holds, per tracked target, what counting and stall detection need (last seen status, which run
was counted, first seen, the progress history), the values of the finished counters and
histograms (so they continue rather than reset), and a few named values (when it was last
written, and per list the newest provider time its rows showed: the restart's watermark).

Writes are incremental: callers mark targets changed or removed (`changed()`, `removed()`), and a
flush writes only those, plus the aggregate series whose values moved, in one transaction: it lands
whole or not at all (WAL journal). A flush that fails leaves its keys marked for the next one.

A file that cannot be used (not a database, damaged, from a newer version, unwritable) is never
fatal: one log line, the exporter starts with an empty store, and `status` says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, NamedTuple

from scrapejobs_exporter.progress import Progress

__all__ = [
    "STATUSES",
    "Batch",
    "Flusher",
    "Restored",
    "SeriesState",
    "StateFile",
    "TargetState",
    "histogram_observations",
    "open_state_file",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 1
# `PRAGMA application_id` of our files ("SJEX"): another program's SQLite file is not ours.
APPLICATION_ID: Final = 0x534A4558
BUSY_TIMEOUT = 5.0  # seconds to wait for a lock held by another process (a stopping exporter)

Status = Literal["restored", "created", "corrupt", "newer_version", "unwritable"]
# The values of `scrapejobs_exporter_state_file_status`; exactly one is 1.
STATUSES: tuple[Status, ...] = ("restored", "created", "corrupt", "newer_version", "unwritable")

TargetKey = tuple[str, str, str]  # provider, kind, id
SeriesKey = tuple[str, tuple[str, ...]]  # metric name, label values

_SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE targets (
    provider TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    collector TEXT,
    static INTEGER NOT NULL,
    status TEXT,
    counted TEXT,
    owed_detail INTEGER NOT NULL,
    final INTEGER NOT NULL,
    first_seen REAL NOT NULL,
    finished_at REAL,
    last_detail REAL,
    running_since REAL,
    progress_first_at REAL,
    progress_first_left REAL,
    progress_last_left REAL,
    progress_changed_at REAL,
    PRIMARY KEY (provider, kind, id)
) WITHOUT ROWID;
CREATE TABLE series (
    metric TEXT NOT NULL,
    labels TEXT NOT NULL,
    value REAL NOT NULL,
    bounds TEXT,
    buckets TEXT,
    PRIMARY KEY (metric, labels)
) WITHOUT ROWID;
"""
_TARGET_COLUMNS = 17
_UPSERT_TARGET = f"INSERT OR REPLACE INTO targets VALUES ({', '.join('?' * _TARGET_COLUMNS)})"
_DELETE_TARGET = "DELETE FROM targets WHERE provider = ? AND kind = ? AND id = ?"
_UPSERT_SERIES = "INSERT OR REPLACE INTO series VALUES (?, ?, ?, ?, ?)"
_UPSERT_META = "INSERT OR REPLACE INTO meta VALUES (?, ?)"
LAST_WRITE = "last_write"  # meta key: when the last successful flush was taken


class TargetState(NamedTuple):
    """What a restart must know about one tracked target (see `store.Target`).

    `status` is the last status seen (None before a first observation); `counted` the run (its
    id, or "") seen finished, counted or from before the exporter watched; `owed_detail` that
    its counter still waits for a detail poll; `final` that nothing more changes;
    `finished_at`, `last_detail` and `progress` (the stall/ETA history) are on the exporter's
    wall clock. A named tuple: a flush makes one per changed target, and a frozen dataclass
    costs several times as much to build (bench/statefile.py).
    """

    provider: str
    kind: str
    target_id: str
    collector: str | None
    static: bool
    status: str | None
    counted: str | None
    owed_detail: bool
    final: bool
    first_seen: float
    finished_at: float | None = None
    last_detail: float | None = None
    progress: Progress | None = None

    @property
    def key(self) -> TargetKey:
        return (self.provider, self.kind, self.target_id)

    def row(self) -> tuple[object, ...]:
        p = self.progress
        history = (None,) * 5 if p is None else (
            p.running_since, p.first_at, p.first_left, p.last_left, p.changed_at
        )  # fmt: skip
        return (
            self.provider, self.kind, self.target_id, self.collector, int(self.static),
            self.status, self.counted, int(self.owed_detail), int(self.final), self.first_seen,
            self.finished_at, self.last_detail, *history,
        )  # fmt: skip

    @classmethod
    def from_row(cls, row: tuple[object, ...]) -> TargetState:
        (provider, kind, target_id, collector, static, status, counted, owed_detail, final,
         first_seen, finished_at, last_detail, running_since, first_at, first_left, last_left,
         changed_at) = row  # fmt: skip
        progress = None
        if running_since is not None:
            progress = Progress(
                float(running_since),  # type: ignore[arg-type]
                float(first_at),  # type: ignore[arg-type]
                _optional_float(first_left),
                _optional_float(last_left),
                float(changed_at),  # type: ignore[arg-type]
            )
        return cls(
            str(provider),
            str(kind),
            str(target_id),
            _optional_str(collector),
            bool(static),
            _optional_str(status),
            _optional_str(counted),
            bool(owed_detail),
            bool(final),
            float(first_seen),  # type: ignore[arg-type]
            _optional_float(finished_at),
            _optional_float(last_detail),
            progress,
        )


# A target's state by its key, as the store holds it now; None: it left the store.
Lookup = Callable[[TargetKey], TargetState | None]


@dataclass(frozen=True, slots=True)
class SeriesState:
    """One series of a finished counter, gauge or histogram.

    A counter's or gauge's `value` is its value; a histogram's is its sum, with `bounds` (its
    finite bucket bounds) and `buckets` (the count in each bucket, not cumulative, +Inf last).
    """

    metric: str
    labels: tuple[str, ...]
    value: float
    bounds: tuple[float, ...] | None = None
    buckets: tuple[float, ...] | None = None

    @property
    def key(self) -> SeriesKey:
        return (self.metric, self.labels)

    def row(self) -> tuple[object, ...]:
        return (
            self.metric,
            json.dumps(self.labels),
            self.value,
            None if self.bounds is None else json.dumps(self.bounds),
            None if self.buckets is None else json.dumps(self.buckets),
        )

    @classmethod
    def from_row(cls, row: tuple[object, ...]) -> SeriesState:
        metric, labels, value, bounds, buckets = row
        return cls(
            str(metric),
            tuple(str(v) for v in json.loads(str(labels))),
            float(value),  # type: ignore[arg-type]
            None if bounds is None else tuple(float(b) for b in json.loads(str(bounds))),
            None if buckets is None else tuple(float(b) for b in json.loads(str(buckets))),
        )


@dataclass(slots=True)
class Restored:
    """What a state file held when it was opened (empty when it was new or refused)."""

    targets: list[TargetState] = field(default_factory=list)
    series: list[SeriesState] = field(default_factory=list)
    meta: dict[str, float] = field(default_factory=dict)

    @property
    def last_write(self) -> float | None:
        return self.meta.get(LAST_WRITE)


@dataclass(frozen=True, slots=True)
class Batch:
    """One flush: what to write, taken on the event loop, written in one transaction."""

    at: float
    upserts: list[tuple[object, ...]]
    deletes: list[TargetKey]
    series: list[SeriesState]
    meta: dict[str, float]
    keys: frozenset[TargetKey]  # the changed keys the upserts came from (to retry on failure)


class _Refused(Exception):
    """The file cannot be used; `status` says why, the message says what happened."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status: Status = status


class StateFile:
    """An open state file and the changes waiting for the next flush.

    Not thread-safe by itself: `take()` and the marking methods run on the event loop; `write()`
    may run in a worker thread, one at a time.
    """

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection | None,
        status: Status,
        series: Iterable[SeriesState] = (),
        meta: Mapping[str, float] | None = None,
    ) -> None:
        self.path = path
        self._conn = conn
        self.status: Status = status
        self._changed: set[TargetKey] = set()
        self._removed: set[TargetKey] = set()
        # What the file holds of each aggregate series, so a flush writes only those that moved.
        self._written: dict[SeriesKey, SeriesState] = {s.key: s for s in series}
        self._meta_written: dict[str, float] = dict(meta or {})  # the same for named values
        self.writes = 0  # successful flushes
        self.write_errors = 0
        self.last_write: float | None = None  # when the last successful flush was taken
        self._failing = False

    @property
    def enabled(self) -> bool:
        """False when the file was refused: nothing is written for the rest of the run."""
        return self._conn is not None

    @property
    def pending(self) -> int:
        return len(self._changed) + len(self._removed)

    # --- marking ---------------------------------------------------------------------------------

    def changed(self, key: TargetKey) -> None:
        """The target's state moved (status, counted, progress, ...): write it at the next flush."""
        self._removed.discard(key)
        self._changed.add(key)

    def removed(self, key: TargetKey) -> None:
        """The target left the store (retention): delete its row at the next flush."""
        self._changed.discard(key)
        self._removed.add(key)

    # --- flushing --------------------------------------------------------------------------------

    def take(
        self, lookup: Lookup, series: Iterable[SeriesState], meta: Mapping[str, float], now: float
    ) -> Batch:
        """Take the marked changes as rows (a key `lookup` no longer finds is deleted), and the
        series whose values differ from what the file holds."""
        upserts: list[tuple[object, ...]] = []
        deletes = list(self._removed)
        for key in self._changed:
            state = lookup(key)
            if state is None:
                deletes.append(key)
            else:
                upserts.append(state.row())
        moved = [s for s in series if self._written.get(s.key) != s]
        named = {k: v for k, v in meta.items() if self._meta_written.get(k) != v}
        batch = Batch(now, upserts, deletes, moved, {**named, LAST_WRITE: now},
                      frozenset(self._changed))  # fmt: skip
        self._changed = set()
        self._removed = set()
        return batch

    def write(self, batch: Batch) -> bool:
        """Write a batch in one transaction; False (and counted, logged once) if it failed. A
        failed batch must be given back with `retry()`, on the thread that marks changes."""
        if self._conn is None:
            return False
        try:
            self._transaction(self._conn, batch)
        except (sqlite3.Error, OSError) as exc:
            self.write_errors += 1
            if not self._failing:
                log.error("state file %s: write failed, will retry: %s", self.path, exc)
            self._failing = True
            return False
        for state in batch.series:
            self._written[state.key] = state
        self._meta_written.update(batch.meta)
        self.writes += 1
        self.last_write = batch.at
        if self._failing:
            log.info("state file %s: writing again", self.path)
            self._failing = False
        return True

    def retry(self, batch: Batch) -> None:
        """Mark a failed batch's targets again (unless marked otherwise since)."""
        for key in batch.keys:
            if key not in self._removed:
                self._changed.add(key)
        for key in batch.deletes:
            if key not in self._changed:
                self._removed.add(key)

    def flush(
        self, lookup: Lookup, series: Iterable[SeriesState], meta: Mapping[str, float], now: float
    ) -> bool:
        """`take()`, `write()` and `retry()` on failure, in the calling thread."""
        if self._conn is None:
            return False
        batch = self.take(lookup, series, meta, now)
        ok = self.write(batch)
        if not ok:
            self.retry(batch)
        return ok

    def _transaction(self, conn: sqlite3.Connection, batch: Batch) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if batch.deletes:
                conn.executemany(_DELETE_TARGET, batch.deletes)
            if batch.upserts:
                conn.executemany(_UPSERT_TARGET, batch.upserts)
            if batch.series:
                conn.executemany(_UPSERT_SERIES, [s.row() for s in batch.series])
            conn.executemany(_UPSERT_META, batch.meta.items())
            conn.execute("COMMIT")
        except BaseException:
            # Whatever stopped it (an error, a cancellation), nothing of the batch lands.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        if self._conn is not None:
            try:
                # Fold the WAL into the main file so a copied file is complete on its own.
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                log.debug("state file %s: checkpoint at close failed: %s", self.path, exc)
            self._conn.close()
            self._conn = None


def histogram_observations(
    bounds: tuple[float, ...], buckets: tuple[float, ...], total: float
) -> list[float]:
    """Values that, observed one by one, give a histogram exactly these bucket counts (not
    cumulative, +Inf last) and this sum (to float rounding): how a histogram whose only way in
    is `observe()` (client_python's) continues from a state file.

    Every value starts at its bucket's upper bound (+Inf: the last bound + 1); the difference
    to `total` is then taken up by one value in an open-ended bucket (the first goes down
    without limit, +Inf up), or else spread over the values within their buckets' ranges.
    """
    counts = [int(c) for c in buckets]
    tops = [*bounds, (bounds[-1] if bounds else 0.0) + 1.0]
    values = [top for top, n in zip(tops, counts, strict=True) for _ in range(n)]
    if not values:
        return []
    gap = total - sum(values)
    if gap > 0 and counts[-1]:
        values[-1] += gap  # stays above the last bound
    elif gap < 0 and counts[0]:
        values[0] += gap  # stays at or below the first bound
    elif gap < 0:
        # Each value may go down to just above its bucket's lower bound.
        index = 0
        for top, bottom, n in zip(tops, [float("-inf"), *bounds], counts, strict=True):
            room = (top - bottom) * (1 - 1e-9) if bottom != float("-inf") else float("inf")
            for _ in range(n):
                step = max(gap, -room)
                values[index] += step
                gap -= step
                index += 1
    return values


# --- flushing on a timer -------------------------------------------------------------------------


def _writer_thread() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(1, thread_name_prefix="state-file")


@dataclass(eq=False, repr=False)
class Flusher:
    """Flushes a state file every `interval` and once more at `stop()`.

    `take()` runs on the event loop (it reads the store, so the targets' rows and the aggregates
    are one consistent snapshot); the transaction runs in a worker thread of its own.
    """

    state: StateFile
    lookup: Lookup
    series: Callable[[], Iterable[SeriesState]]  # the aggregates kept across restarts
    meta: Callable[[], Mapping[str, float]]  # named values (watermarks, the shard)
    interval: float
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    _executor: ThreadPoolExecutor = field(init=False, default_factory=_writer_thread)
    _lock: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)
    _task: asyncio.Task[None] | None = field(init=False, default=None)

    def start(self) -> None:
        if self._task is None and self.state.enabled:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="state-file")

    async def flush(self) -> bool:
        """Write every change since the last flush; False if nothing could be written."""
        if not self.state.enabled:
            return False
        async with self._lock:  # one transaction at a time, in the order they were taken
            batch = self.state.take(self.lookup, self.series(), self.meta(), self.clock())
            loop = asyncio.get_running_loop()
            ok = await loop.run_in_executor(self._executor, self.state.write, batch)
            if not ok:
                self.state.retry(batch)
            return ok

    async def stop(self) -> None:
        """Stop the timer, write what is left and close the file."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
        await asyncio.get_running_loop().run_in_executor(self._executor, self.state.close)
        self._executor.shutdown(wait=True)

    async def _loop(self) -> None:
        while True:
            await self.sleep(self.interval)
            try:
                # Shielded: a stop() during a write lets it finish (and retry on failure).
                await asyncio.shield(self.flush())
            except Exception:  # a bug in one flush must not end the flushing
                log.exception("state file %s: flush failed unexpectedly", self.state.path)


# --- opening -------------------------------------------------------------------------------------


def open_state_file(path: str | os.PathLike[str]) -> tuple[StateFile, Restored]:
    """Open (or create) the state file and read what it holds. Never raises for a bad file: a
    refused one gives an empty `Restored` and a StateFile whose `status` says why, after one log
    line. A damaged file is moved aside to `<path>.corrupt` and a new one started."""
    path = Path(path)
    try:
        conn, restored, status = _open(path)
    except _Refused as refused:
        if refused.status != "corrupt":
            log.error("state file %s: %s; starting with an empty store", path, refused)
            return StateFile(path, None, refused.status), Restored()
        fresh, aside = _start_over(path)
        where = f"moved to {aside}" if fresh is not None else "could not start a new one"
        log.error("state file %s: %s (%s); starting with an empty store", path, refused, where)
        return StateFile(path, fresh, "corrupt" if fresh else "unwritable"), Restored()
    if status == "restored":
        written = restored.last_write
        when = "never" if written is None else _utc(written)
        log.info(
            "state file %s: restored %d targets and %d aggregate series (last written %s)",
            path,
            len(restored.targets),
            len(restored.series),
            when,
        )
    else:
        log.info("state file %s: created", path)
    return StateFile(path, conn, status, restored.series, restored.meta), restored


def _open(path: Path) -> tuple[sqlite3.Connection, Restored, Status]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or exc
        raise _Refused("unwritable", f"cannot create its directory: {reason}") from None
    if path.exists() and not path.is_file():
        raise _Refused("unwritable", "not a regular file")
    try:
        conn = _connect(path)
    except sqlite3.Error as exc:
        raise _Refused("unwritable", f"cannot open it: {exc}") from None
    try:
        restored, status = _read(conn)
        _check_writable(conn, status)
    except BaseException:
        conn.close()
        raise
    return conn, restored, status


def _connect(path: Path) -> sqlite3.Connection:
    # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE ... COMMIT in one flush).
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
    )
    return conn


def _read(conn: sqlite3.Connection) -> tuple[Restored, Status]:
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        application_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if not tables and application_id == 0:
            return Restored(), "created"
        if application_id != APPLICATION_ID or "schema_version" not in tables:
            raise _Refused("corrupt", "not a scrapejobs-exporter state file")
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        version = row[0] if row else None
        if not isinstance(version, int):
            raise _Refused("corrupt", "no schema version")
        if version > SCHEMA_VERSION:
            raise _Refused(
                "newer_version",
                f"written by a newer version (schema {version}, this one reads up to "
                f"{SCHEMA_VERSION}); left untouched and not written",
            )
        check = conn.execute("PRAGMA quick_check").fetchone()
        if check is None or check[0] != "ok":
            raise _Refused("corrupt", f"damaged ({check[0] if check else 'no check result'})")
        restored = Restored(
            [TargetState.from_row(r) for r in conn.execute("SELECT * FROM targets")],
            [SeriesState.from_row(r) for r in conn.execute("SELECT * FROM series")],
            {str(k): float(v) for k, v in conn.execute("SELECT key, value FROM meta")},
        )
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError) and not _damaged(exc):
            # Not the file's fault (a read-only volume its journal cannot be opened on).
            raise _Refused("unwritable", f"cannot read it: {exc}") from None
        raise _Refused("corrupt", f"not a readable SQLite database ({exc})") from None
    except (TypeError, ValueError) as exc:  # a row whose values are not what we wrote
        raise _Refused("corrupt", f"unexpected contents ({exc})") from None
    return restored, "restored"


def _check_writable(conn: sqlite3.Connection, status: Status) -> None:
    """Set up a new file, or switch an existing one to WAL; both write, so an unwritable file
    (permissions, a read-only volume) is found here rather than at the first flush."""
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot use a WAL journal (mode {mode})")
        # In WAL mode NORMAL keeps every commit atomic and the file consistent after a crash;
        # only the last commits before a power loss may be lost (they are rewritten next time).
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        if status == "created":
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        conn.execute(_UPSERT_META, ("opened", time.time()))
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if _damaged(exc):
            raise _Refused("corrupt", f"damaged ({exc})") from None
        raise _Refused("unwritable", f"cannot write it: {exc}") from None


def _damaged(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB")


def _start_over(path: Path) -> tuple[sqlite3.Connection | None, Path]:
    """Move a damaged file (and its journal) aside and start a new one; None if that fails."""
    aside = path.with_name(path.name + ".corrupt")
    try:
        for suffix in ("", "-wal", "-shm"):
            source = path.with_name(path.name + suffix)
            if source.exists():
                os.replace(source, aside.with_name(aside.name + suffix))
        conn = _connect(path)
    except (OSError, sqlite3.Error) as exc:
        log.debug("state file %s: cannot start a new one: %s", path, exc)
        return None, aside
    try:
        _check_writable(conn, "created")
    except _Refused as exc:
        conn.close()
        log.debug("state file %s: cannot start a new one: %s", path, exc)
        return None, aside
    return conn, aside


def _utc(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _optional_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)
