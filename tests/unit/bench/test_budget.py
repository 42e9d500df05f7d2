"""The budget-bound scenario's measurements on hand-made truth and /metrics pages."""

from __future__ import annotations

from bench import budget

SPEED = 2.0
NOW = 10_000.0  # simulated seconds
AT = 5_000.0  # wall seconds of the sample
SINCE = 9_000.0  # wall time the exporter started (finishes after it must be counted)

PAGE = """\
# TYPE brightdata_job_status gauge
brightdata_job_status{job_id="j_old",collector="c_1",status="running"} 1
brightdata_job_status{job_id="j_old",collector="c_1",status="done"} 0
brightdata_job_status{job_id="j_gone",collector="c_1",status="running"} 1
brightdata_job_status{job_id="j_recent",collector="c_1",status="running"} 1
brightdata_job_status{job_id="j_ended",collector="c_1",status="done"} 1
# TYPE aitronos_job_status gauge
aitronos_job_status{job_id="job_a",status="processing"} 1
# TYPE brightdata_collector_jobs_finished_total counter
brightdata_collector_jobs_finished_total{collector="c_1",status="done"} 1
# TYPE aitronos_jobs_finished_total counter
aitronos_jobs_finished_total{status="completed"} 0
# TYPE scrapejobs_exporter_target_last_success_timestamp_seconds gauge
scrapejobs_exporter_target_last_success_timestamp_seconds{provider="brightdata",kind="job",target="j_old"} 4980
scrapejobs_exporter_target_last_success_timestamp_seconds{provider="aitronos",kind="job",target="job_a"} 4900
"""


def truth() -> budget.Truth:
    return budget.Truth(
        now=NOW,
        running={
            "studio_jobs": {
                # Created 1,000 simulated s ago = 500 wall s: counts for "visible".
                "j_old": {"status": "running", "created": NOW - 1_000, "collector": "c_1"},
                # 100 simulated s = 50 wall s: too young to count.
                "j_young": {"status": "running", "created": NOW - 100, "collector": "c_1"},
                "j_unseen": {"status": "running", "created": NOW - 400, "collector": "c_1"},
            },
            "aitronos_jobs": {"job_a": {"status": "processing", "created": NOW - 500}},
        },
        finished={
            "studio_jobs": {
                "j_ended": {"status": "done", "finished": 9_500.0, "collector": "c_1"},
                # Shown running, finished 400 simulated s = 200 wall s ago: stale.
                "j_gone": {"status": "done", "finished": NOW - 400, "collector": "c_1"},
                # Shown running, finished 60 simulated s = 30 wall s ago: not yet stale.
                "j_recent": {"status": "done", "finished": NOW - 60, "collector": "c_1"},
                # Finished before the exporter started: not to be counted.
                "j_before": {"status": "done", "finished": 8_000.0, "collector": "c_1"},
            },
            "aitronos_jobs": {"job_b": {"status": "completed", "finished": NOW - 300}},
        },
    )


def world() -> budget.World:
    return budget.World(
        datasets=[], followed_flows=set(), list_pages={"brightdata": 8, "aitronos": 1}
    )


def test_one_sample() -> None:
    shown = budget.Shown()
    shown.add(PAGE)
    assert shown.status["studio_jobs"]["j_old"] == "running"
    assert shown.status["studio_jobs"]["j_ended"] == "done"
    tallies = {p: budget.Tally() for p in budget.PROVIDERS}
    sample = budget.measure_sample(truth(), shown, AT, world(), SINCE, SPEED, tallies, warm=True)
    bd, ait = sample["brightdata"], sample["aitronos"]
    # Three Studio jobs finished after the start (j_before did not); one is counted, so the
    # oldest uncounted one (sorted: 9,500, 9,600, 9,940) finished 400 simulated s ago.
    assert (bd["truth"], bd["counted"], bd["lag_s"]) == (3, 1, 200.0)
    assert (ait["truth"], ait["counted"], ait["lag_s"]) == (1, 0, 150.0)
    # Older than a minute (wall): j_old (visible) and j_unseen (not); j_young is too young.
    assert (bd["eligible"], bd["visible"], bd["running"]) == (2, 1, 3)
    # Shown running: j_old, j_gone, j_recent; only j_gone finished over a minute ago.
    assert (bd["shown_running"], bd["stale"]) == (3, 1)
    assert tallies["brightdata"].ages == [20.0] and tallies["aitronos"].ages == [100.0]
    assert tallies["brightdata"].deficits == [2]


def test_not_warm_counts_but_leaves_shares_out() -> None:
    shown = budget.Shown()
    shown.add(PAGE)
    tallies = {p: budget.Tally() for p in budget.PROVIDERS}
    budget.measure_sample(truth(), shown, AT, world(), SINCE, SPEED, tallies, warm=False)
    assert tallies["brightdata"].lags == [200.0] and tallies["brightdata"].running == [3]
    assert tallies["brightdata"].eligible == 0 and tallies["brightdata"].ages == []


def test_summary_and_rows_against_the_ideal() -> None:
    shown = budget.Shown()
    shown.add(PAGE)
    tallies = {p: budget.Tally() for p in budget.PROVIDERS}
    budget.measure_sample(truth(), shown, AT, world(), SINCE, SPEED, tallies, warm=True)
    final = budget.counted_truth(truth(), world(), SINCE)
    limits = {
        "brightdata": {"busiest_60s": 101, "served": 500, "rate_limited": 3, "blocked": False},
        "aitronos": {"busiest_60s": 40, "served": 90, "rate_limited": 0},
    }
    result = budget.summarise(
        1, budget.FULL, world(), tallies, [], final, {"brightdata": 4, "aitronos": 0}, limits, ""
    )
    bd = result["providers"]["brightdata"]
    assert (bd["missed"], bd["counted_twice"]) == (0, 1)
    assert bd["visible_pct"] == 50.0 and bd["stale_running_pct"] == 33.3
    # 8 list pages twice a minute leave 84 of 100 for 3 running jobs: poll_interval bounds it.
    assert bd["ideal"]["detail_per_minute"] == 84.0 and bd["ideal"]["value_age_max_s"] == 30.0
    rows = {(r.metric, r.provider): r for r in budget.rows([result])}
    assert rows[("Requests in the busiest 60 s", "Bright Data")].met is False
    assert rows[("429s answered by the simulator", "Bright Data")].met is False
    assert rows[("429s answered by the simulator", "Aitronos")].met is True
    assert rows[("Finished missed (after catch-up)", "Aitronos")].met is False  # 1 of 1 missed
    assert "| Count lag max (s) | Bright Data | 1 | 200 | 30 | <= 60 s | **NO** |" in (
        budget.markdown_table(list(rows.values()))
    )
