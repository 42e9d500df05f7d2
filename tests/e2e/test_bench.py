"""The benchmark's smoke run: every measurement at a tiny scale, end to end, in seconds.

It checks that the runner works and writes complete results, not the numbers: the targets are
measured by the full run (`python -m bench`), whose results are committed in `bench/`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_runs_and_writes_every_measurement(tmp_path: Path) -> None:
    process = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--scales", "200", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    assert "Scrape p50 (ms)" in process.stdout

    document = json.loads((tmp_path / "results.json").read_text())
    assert document["quick"] is True
    assert document["machine"]["cpu_count"] and document["machine"]["python"]
    assert document["machine"]["versions"]["prometheus_client"]

    scale = document["results"]["scales"]["200"]
    for impl in ("ours", "baseline"):
        result = scale[impl]
        assert 150 <= result["tracked"] <= 260, result["tracked"]
        assert result["series"] > 10 * result["tracked"]
        assert result["scrape"]["n"] > 0 and result["scrape"]["p50_ms"] > 0
        assert result["scrape"]["statuses"] == [200]
        assert result["scrape"]["content_encoding"] == "gzip"
        assert result["scrape"]["content_type"].startswith("application/openmetrics-text")
        assert result["render"]["median_ms"] > 0
        assert result["rss"]["after_kb"] > 0 and result["rss"]["before_kb"] > 0
        assert result["steady"]["calls"] > 0
    ours, baseline = scale["ours"], scale["baseline"]
    busy = ours["scrape_during_render"]
    assert busy["n"] > 0 and busy["renders"] > 0 and busy["statuses"] == [200]
    # The baseline fetches every tracked job each cycle; ours only what can still change.
    assert baseline["steady"]["calls"] >= baseline["tracked"]
    assert ours["steady"]["calls"] < baseline["steady"]["calls"]
    for cycle in ours["cycles"]:
        assert cycle["failed"] == 0

    throughput = document["results"]["throughput"]
    for impl in ("ours", "baseline"):
        assert throughput[impl]["per_second"] > 0
        assert throughput[impl]["failed"] == 0

    metrics = {row["metric"] for row in document["targets"]}
    assert {
        "Scrape p50 (ms)",
        "Scrape p99 (ms)",
        "Render per cycle (ms)",
        "Scrape p99 while rendering (ms)",
        "RSS per tracked job (KB)",
        "API calls per cycle",
    } <= metrics
    assert any(m.startswith("Poll throughput") for m in metrics)
    assert all(row["met"] is None for row in document["targets"])  # a smoke run asserts nothing
    markdown = (tmp_path / "RESULTS.md").read_text()
    assert "| Metric | Jobs |" in markdown and "Machine:" in markdown


def test_quick_state_file_rows_are_written_next_to_the_others(tmp_path: Path) -> None:
    process = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "statefile", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    document = json.loads((tmp_path / "results.json").read_text())
    rows = document["results"]["statefile"]["rows"]
    assert [r["scenario"] for r in rows] == [
        "budget-bound",
        "2% running, all move",
        "20% running, all move",
    ]
    for row in rows:
        assert row["jobs"] == 1000 and row["rows_per_flush"] > 0 and row["file_mb"] > 0
        assert row["take_ms_p50"] > 0 and row["write_ms_p50"] > 0 and row["sweep_ms"] > 0
    # The budget-bound world changes about as many rows per cycle whatever its size.
    assert 100 <= rows[0]["rows_per_flush"] <= 250
    assert "| 1,000 | budget-bound |" in (tmp_path / "RESULTS.md").read_text()


def test_quick_budget_scenario_runs_the_exporter_against_the_enforcing_simulator(
    tmp_path: Path,
) -> None:
    """`--only budget --quick`: the real exporter process against the simulator with its rate
    limits on, sampled, frozen, caught up and tabled (the full run measures the targets)."""
    process = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "budget", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    document = json.loads((tmp_path / "results.json").read_text())
    (result,) = document["results"]["budget"]
    assert result["shards"] == 1 and result["quick"] is True
    assert len(result["samples"]) >= 5
    for provider in ("brightdata", "aitronos"):
        figures = result["providers"][provider]
        assert figures["served"] > 0  # the simulator counted the exporter's requests
        assert figures["busiest_60s"] <= figures["served"]
        assert figures["final_truth"] >= 0 and figures["count_lag_max_s"] is not None
        assert figures["ideal"]["list_pages_per_sweep"] >= 1
    assert result["providers"]["brightdata"]["final_truth"] > 0  # jobs finished meanwhile
    metrics = {row["metric"] for row in document["budget_targets"]}
    assert {"Count lag max (s)", "Finished missed (after catch-up)", "Value age max (s)",
            "Requests in the busiest 60 s", "429s answered by the simulator"} <= metrics  # fmt: skip
    assert all(row["met"] is None for row in document["budget_targets"])
    assert "## Budget-bound scenario" in (tmp_path / "RESULTS.md").read_text()
