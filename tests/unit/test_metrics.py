"""The finished aggregates as the state file keeps them, and the state file's own metrics."""

from __future__ import annotations

from pathlib import Path

from scrapejobs_exporter.aggregates import Aggregates
from scrapejobs_exporter.config import BucketsConfig
from scrapejobs_exporter.exposition import render_text
from scrapejobs_exporter.kinds import AITRONOS_JOB, SNAPSHOT, STUDIO_JOB
from scrapejobs_exporter.metrics import collect_families, finished_series, restore_finished
from scrapejobs_exporter.providers.aitronos import parse_job_progress
from scrapejobs_exporter.providers.brightdata import parse_job_log, parse_snapshot_progress
from scrapejobs_exporter.statefile import SeriesState, open_state_file
from scrapejobs_exporter.store import Store
from scrapejobs_exporter.telemetry import Telemetry
from tests.conftest import seed
from tests.helpers import samples

NOW = 1_700_000_000.0


def filled() -> Aggregates:
    aggregates = Aggregates(BucketsConfig())
    job = parse_job_log(seed("job_log_done"), "j_1")
    snapshot = parse_snapshot_progress(seed("snapshot_progress_running"), "s_1")
    ait = parse_job_progress(seed("aitronos_progress_timeout"), "a_1")
    collector = job.collector or ""
    for kind, model in ((STUDIO_JOB, job), (SNAPSHOT, snapshot), (AITRONOS_JOB, ait)):
        kind.ensure(aggregates, model, collector)
    for _ in range(3):
        STUDIO_JOB.count(aggregates, job, collector, NOW)
    AITRONOS_JOB.count(aggregates, ait, "", NOW)
    aggregates.evicted.inc(("brightdata", "job"), 4)
    return aggregates


def aggregate_samples(aggregates: Aggregates) -> dict[object, float]:
    text = render_text(collect_families(Store(), Telemetry(), aggregates)).decode()
    return {k: v for k, v in samples(text).items() if not k[0].startswith("scrapejobs_exporter_")}


def test_finished_aggregates_continue_through_the_state_file(tmp_path: Path) -> None:
    before = filled()
    state, _ = open_state_file(tmp_path / "state.db")
    assert state.flush(lambda key: None, finished_series(before), {}, NOW)
    state.close()

    _, restored = open_state_file(tmp_path / "state.db")
    after = Aggregates(BucketsConfig())
    assert restore_finished(after, restored.series) == []
    expected = aggregate_samples(before)
    assert aggregate_samples(after) == expected
    done = (("collector", "c_m9im5n7v82p2y35la"), ("status", "done"))
    assert expected[("brightdata_collector_jobs_finished_total", done)] == 3
    assert after.evicted.values == {}  # the exporter's own counter is not an aggregate


def test_changed_bucket_bounds_restart_that_histogram_only() -> None:
    series = finished_series(filled())
    buckets = BucketsConfig(job_duration=[1.0, 2.0])
    after = Aggregates(buckets)
    problems = restore_finished(after, [*series, SeriesState("gone_total", (), 1.0)])
    assert problems == [
        "gone_total: not an aggregate of this version, dropped",
        "brightdata_finished_job_duration_seconds: bucket bounds changed, starts again from zero",
    ]
    assert after.job_duration.values == {}
    assert after.job_queue.values and after.jobs_finished.get(("c_m9im5n7v82p2y35la", "done")) == 3


def test_state_file_metrics(tmp_path: Path) -> None:
    state, _ = open_state_file(tmp_path / "state.db")
    assert state.flush(lambda key: None, (), {}, NOW)
    text = render_text(collect_families(Store(), Telemetry(), state_file=state)).decode()
    found = samples(text)
    assert found[("scrapejobs_exporter_state_file_writes_total", ())] == 1
    assert found[("scrapejobs_exporter_state_file_write_errors_total", ())] == 0
    assert found[("scrapejobs_exporter_state_file_last_write_timestamp_seconds", ())] == NOW
    statuses = {
        k[1][0][1]: v for k, v in found.items() if k[0] == "scrapejobs_exporter_state_file_status"
    }
    assert statuses == {
        "restored": 0, "created": 1, "corrupt": 0, "newer_version": 0, "unwritable": 0
    }  # fmt: skip
    state.close()
    plain = samples(render_text(collect_families(Store(), Telemetry())).decode())
    assert not any(name.startswith("scrapejobs_exporter_state_file") for name, _ in plain)
