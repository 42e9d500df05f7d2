"""The finished aggregates as the state file keeps them: they continue after a restart."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from prometheus_client import generate_latest

from scrapejobs_exporter.aggregates import Aggregates
from scrapejobs_exporter.config import BucketsConfig
from scrapejobs_exporter.kinds import AITRONOS_JOB, SNAPSHOT, STUDIO_JOB
from scrapejobs_exporter.providers.aitronos import parse_job_progress
from scrapejobs_exporter.providers.brightdata import parse_job_log, parse_snapshot_progress
from scrapejobs_exporter.statefile import SeriesState, open_state_file
from tests.conftest import seed
from tests.helpers import samples

NOW = 1_700_000_000.0


def filled(buckets: BucketsConfig | None = None) -> Aggregates:
    aggregates = Aggregates(buckets or BucketsConfig())
    job = parse_job_log(seed("job_log_done"), "j_1")
    snapshot = parse_snapshot_progress(seed("snapshot_progress_running"), "s_1")
    ait = parse_job_progress(seed("aitronos_progress_timeout"), "a_1")
    collector = job.collector or ""
    for kind, model in ((STUDIO_JOB, job), (SNAPSHOT, snapshot), (AITRONOS_JOB, ait)):
        kind.ensure(aggregates, model, collector)
    for _ in range(3):
        STUDIO_JOB.count(aggregates, job, collector, NOW)
    AITRONOS_JOB.count(aggregates, ait, "", NOW)
    aggregates.evicted.labels("brightdata", "job").inc(4)
    return aggregates


def page(aggregates: Aggregates) -> dict[object, float]:
    text = generate_latest(aggregates.registry).decode()
    return {k: v for k, v in samples(text).items() if not k[0].startswith("scrapejobs_exporter_")}


def test_the_finished_aggregates_continue_through_the_state_file(tmp_path: Path) -> None:
    before = filled()
    state, _ = open_state_file(tmp_path / "state.db")
    assert state.flush(lambda key: None, before.kept(), {}, NOW)
    state.close()

    _, restored = open_state_file(tmp_path / "state.db")
    after = Aggregates(BucketsConfig())
    assert after.restore(restored.series) == []
    expected, got = page(before), page(after)
    assert got.keys() == expected.keys()
    for key, value in expected.items():  # a histogram's sum is given back to float rounding
        assert abs(got[key] - value) <= 1e-9 * max(1.0, abs(value)), key
    done = (("collector", "c_m9im5n7v82p2y35la"), ("status", "done"))
    assert got[("brightdata_collector_jobs_finished_total", done)] == 3
    assert ("aitronos_items_found_total", ()) in got
    # The exporter's own counter is not an aggregate over finished targets.
    evicted = (("kind", "job"), ("provider", "brightdata"))
    assert (
        samples(generate_latest(after.registry).decode()).get(
            ("scrapejobs_exporter_evicted_targets_total", evicted), 0
        )
        == 0
    )
    # What the next write keeps is what the file held (histogram sums to float rounding).
    kept = {(k.metric, k.labels): k for k in after.kept()}
    assert kept.keys() == {(k.metric, k.labels) for k in restored.series}
    for k in restored.series:
        again = kept[(k.metric, k.labels)]
        assert (again.bounds, again.buckets) == (k.bounds, k.buckets)
        assert abs(again.value - k.value) <= 1e-9 * max(1.0, abs(k.value))


def test_the_last_success_never_goes_back_after_a_restart() -> None:
    after = Aggregates(BucketsConfig())
    assert after.restore(filled().kept()) == []
    job = parse_job_log(seed("job_log_done"), "j_1")
    collector = job.collector or ""
    key = ("brightdata_collector_last_success_timestamp_seconds", (("collector", collector),))
    last = page(after)[key]
    STUDIO_JOB.count(after, replace(job, finished=last - 3600), collector, NOW)
    assert page(after)[key] == last


def test_a_bright_data_only_exporter_keeps_no_aitronos_series() -> None:
    aggregates = Aggregates(BucketsConfig())
    aggregates.ensure_collector("c_1")
    assert {s.metric for s in aggregates.kept()} == {
        "brightdata_collector_jobs_finished_total",
        "brightdata_collector_lines_total",
        "brightdata_collector_failures_total",
        "brightdata_finished_job_duration_seconds",
        "brightdata_finished_job_queue_seconds",
        "brightdata_collector_page_loads_total",
        "brightdata_collector_input_errors_total",
    }


def test_changed_bucket_bounds_restart_that_histogram_only() -> None:
    series = filled().kept()
    after = Aggregates(BucketsConfig(job_duration=[1.0, 2.0]))
    problems = after.restore([*series, SeriesState("gone_total", (), 1.0)])
    assert problems == [
        "gone_total: not an aggregate of this version, dropped",
        "brightdata_finished_job_duration_seconds: bucket bounds changed, starts again from zero",
    ]
    got = page(after)
    collector = (("collector", "c_m9im5n7v82p2y35la"),)
    assert got[("brightdata_finished_job_duration_seconds_count", collector)] == 0
    assert got[("brightdata_finished_job_queue_seconds_count", collector)] == 3
    done = (("collector", "c_m9im5n7v82p2y35la"), ("status", "done"))
    assert got[("brightdata_collector_jobs_finished_total", done)] == 3
