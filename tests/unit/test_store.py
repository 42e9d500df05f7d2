"""The store and the state file: what it marks as changed (only that), and what a restored target
counts: a run it knew unfinished once, a run it counted never again, a re-run counted."""

from __future__ import annotations

from pathlib import Path

from scrapejobs_exporter.aggregates import Aggregates
from scrapejobs_exporter.config import BucketsConfig
from scrapejobs_exporter.providers.brightdata import AiFlow, Snapshot, StudioJob
from scrapejobs_exporter.statefile import StateFile, open_state_file
from scrapejobs_exporter.store import Store, Target
from tests.helpers import value

T0 = 1_788_000_000.0
WATERMARK = T0 - 600  # the provider's time the file's lists were read up to


def journalled(path: Path) -> tuple[Store, Aggregates, StateFile]:
    state, restored = open_state_file(path)
    aggregates = Aggregates(BucketsConfig())
    store = Store(aggregates)
    store.restore(restored.targets)
    store.journal = state
    return store, aggregates, state


def flush(store: Store, state: StateFile, now: float = T0) -> None:
    assert state.flush(store.persisted, (), {}, now)


def job(status: str, finished: float | None = None, created: float = T0 - 900) -> StudioJob:
    return StudioJob(
        "j_1", "c_1", status=status, raw_status=status, lines=3, created=created, finished=finished
    )


def flow(status: str, run: str) -> AiFlow:
    return AiFlow("c_1", status=status, raw_status=status, ai_job_id=run)


def test_only_what_the_file_keeps_marks_a_target(tmp_path: Path) -> None:
    store, _, state = journalled(tmp_path / "s.db")
    target = store.add("brightdata", "job", "j_1", "c_1", static=False, now=T0)
    assert state.pending == 1  # new
    flush(store, state)
    store.observe(target, job("running"), T0, complete=False, watermark=WATERMARK)
    assert state.pending == 1  # its status
    flush(store, state)
    store.observe(target, job("running"), T0 + 30, complete=False, watermark=WATERMARK)
    assert state.pending == 0  # the same row again: nothing to write
    store.observe(target, job("done", T0), T0 + 60, complete=False, watermark=WATERMARK)
    assert state.pending == 1
    store.remove(target.key)
    flush(store, state)
    state.close()
    assert open_state_file(tmp_path / "s.db")[1].targets == []


def restart(path: Path, store: Store, state: StateFile) -> tuple[Store, Aggregates, StateFile]:
    flush(store, state)
    state.close()
    return journalled(path)


def test_a_job_known_unfinished_counts_once_when_seen_finished(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store, _, state = journalled(path)
    target = store.add("brightdata", "job", "j_1", "c_1", static=False, now=T0)
    store.observe(target, job("running"), T0, complete=False, watermark=WATERMARK)
    store, aggregates, state = restart(path, store, state)
    restored = store.get(target.key)
    assert restored is not None and restored.restored == "running" and restored.model is None
    # Its finish time is before the list's watermark (a static job, polled on its own): it was
    # still known unfinished, so it finished while the exporter was down.
    finished = job("done", WATERMARK - 1)
    store.observe(restored, finished, T0 + 60, complete=True, watermark=WATERMARK)
    assert value(aggregates.jobs_finished, "c_1", "done") == 1
    store, aggregates, state = restart(path, store, state)
    again = store.get(target.key)
    assert again is not None and again.counted == "" and again.final
    store.observe(again, finished, T0 + 90, complete=False, watermark=WATERMARK, first_sweep=True)
    assert value(aggregates.jobs_finished, "c_1", "done") == 0  # counted before: never again
    state.close()


def test_an_ai_flow_run_again_while_down_counts_and_its_counted_run_does_not(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    store, _, state = journalled(path)
    target = store.add("brightdata", "ai_flow", "c_1", "c_1", static=True, now=T0)
    store.observe(target, flow("running", "ai_1"), T0, complete=True)
    store.observe(target, flow("done", "ai_1"), T0 + 30, complete=True)
    store, aggregates, state = restart(path, store, state)
    restored = store.get(target.key)
    assert restored is not None and restored.counted == "ai_1"
    store.observe(restored, flow("done", "ai_1"), T0 + 60, complete=True)
    assert value(aggregates.ai_flows_finished, "done") == 0
    store, aggregates, state = restart(path, store, state)
    restored = store.get(target.key)
    assert restored is not None
    store.observe(restored, flow("failed", "ai_2"), T0 + 90, complete=True)  # re-run meanwhile
    assert value(aggregates.ai_flows_finished, "failed") == 1
    state.close()


def test_a_job_first_seen_after_a_restart_counts_if_it_finished_after_the_watermark(
    tmp_path: Path,
) -> None:
    store, aggregates, state = journalled(tmp_path / "s.db")
    for n, finished in enumerate((WATERMARK - 1, WATERMARK + 1)):
        target = store.add("brightdata", "job", f"j_{n}", "c_1", static=False, now=T0)
        model = job("done", finished)
        store.observe(target, model, T0, complete=False, watermark=WATERMARK, first_sweep=True)
    assert value(aggregates.jobs_finished, "c_1", "done") == 1
    # A snapshot has no finish time: created after the watermark, it finished after it too.
    for n, created in enumerate((WATERMARK - 1, WATERMARK + 1)):
        target = store.add("brightdata", "snapshot", f"s_{n}", static=False, now=T0)
        snapshot = Snapshot(f"s_{n}", "d_1", status="ready", raw_status="ready", created=created)
        store.observe(target, snapshot, T0, complete=True, watermark=WATERMARK, first_sweep=True)
    assert value(aggregates.snapshots_finished, "d_1", "ready") == 1
    state.close()


def test_a_restored_target_keeps_its_stall_history_and_expiry(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store, _, state = journalled(path)
    running = store.add("brightdata", "job", "j_1", "c_1", static=False, now=T0)
    model = StudioJob(
        "j_1", "c_1", status="running", raw_status="running", pages=10, pages_left=8, navigations=3
    )
    store.observe(running, model, T0, complete=True)
    done = store.add("brightdata", "job", "j_2", "c_1", static=False, now=T0)
    store.observe(done, job("done", T0), T0, complete=True, watermark=WATERMARK)
    store, _, state = restart(path, store, state)
    again = store.get(running.key)
    assert again is not None and again.progress == running.progress
    assert again.last_poll is not None  # takes its turn among the running, not as new
    later = T0 + 3600  # past the stall limit with the same pages left
    store.observe(again, model, later, complete=True)
    assert again.stalled
    finished: Target | None = store.get(done.key)
    assert finished is not None and finished.final and finished.finished_at == T0
    assert [t.key for t in store.expire(T0 + 10, ttl=5, max_tracked=100)] == [done.key]
    state.close()


# Target fields the per-target series are not made of: writing them keeps a target's version.
NOT_RENDERED = frozenset(
    {"static", "complete", "first_seen", "last_poll", "last_detail", "last_row", "counted"}
    | {"owed_detail", "last_error", "last_error_reason", "last_error_status", "finished_at"}
    | {"restored", "label_text", "version", "owed_report", "report_tries", "report_retry_at"}
)


def test_every_target_field_is_known_to_be_rendered_or_not() -> None:
    import dataclasses

    from scrapejobs_exporter.store import RENDERED

    assert {f.name for f in dataclasses.fields(Target)} == RENDERED | NOT_RENDERED
    assert not RENDERED & NOT_RENDERED


def test_fields_not_rendered_change_nothing_on_the_page() -> None:
    from scrapejobs_exporter.exposition import PerTargetCache
    from tests.helpers import page, seeded_store
    from tests.unit.test_exposition import made_by

    store = seeded_store()
    before = page(store).text.body
    cache = PerTargetCache()
    assert made_by(cache, store)[1] > 0
    versions = [t.version for t in store]
    odd: dict[str, object] = {"static": True, "complete": True, "counted": "run-9"}
    for target in store:
        for name in NOT_RENDERED - {"label_text", "version"}:
            setattr(target, name, odd.get(name, 4242.5))
    assert [t.version for t in store] == versions
    assert page(store).text.body == before
    assert made_by(cache, store)[1] == 0  # every piece kept


def test_a_target_made_later_has_a_newer_version_than_any_before() -> None:
    """The renderer relies on it (`PerTargetCache._ordered`): a target newer than the last
    render is told from the ones it placed by its version alone."""
    first = Target("brightdata", "job", "j_1")
    first.up = True
    later = Target("aitronos", "job", "job_2")
    assert later.version > first.version > 0


def test_a_new_value_of_a_rendered_field_gives_a_new_version() -> None:
    target = Target("brightdata", "job", "j_1")
    start = target.version
    target.up = True
    assert target.version > start
    bumped = target.version
    target.up = True  # the same object: nothing new
    target.stalled = False
    assert target.version == bumped
    target.label_text = "cached"
    target.collector = "c_2"  # a label: the cached label string goes
    assert target.label_text is None and target.version > bumped
    target.final = True
    bumped = target.version
    target.last_success = 99.0  # a final target shows no last success
    assert target.version == bumped
    target.final = False
    target.last_success = 100.0
    assert target.version > bumped
