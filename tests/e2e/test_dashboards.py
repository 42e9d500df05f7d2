"""Tests of the generated Grafana dashboards, their queries and the provisioning files."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from grafana.generate import DASHBOARD_DIR, DASHBOARDS, generate  # noqa: E402
from grafana.queries import dashboard_queries, substitute  # noqa: E402

CI = bool(os.environ.get("CI"))

# The exporter's metric contract (names without _total/_bucket suffixes handled below).
CONTRACT_METRICS = {
    "brightdata_job_status",
    "brightdata_job_info",
    "brightdata_job_inputs",
    "brightdata_job_duplicate_inputs",
    "brightdata_job_lines",
    "brightdata_job_failures",
    "brightdata_job_successes",
    "brightdata_job_pages",
    "brightdata_job_pages_left",
    "brightdata_job_navigations",
    "brightdata_job_success_ratio",
    "brightdata_job_duration_seconds",
    "brightdata_job_queue_seconds",
    "brightdata_job_created_timestamp_seconds",
    "brightdata_job_started_timestamp_seconds",
    "brightdata_job_finished_timestamp_seconds",
    "brightdata_job_stalled",
    "brightdata_job_eta_seconds",
    "brightdata_snapshot_status",
    "brightdata_ai_flow_status",
    "brightdata_ai_flow_step",
    "brightdata_ai_flow_completed_steps",
    "aitronos_job_status",
    "aitronos_job_completion_reason",
    "aitronos_job_progress_ratio",
    "aitronos_job_current_page",
    "aitronos_job_pages_scraped",
    "aitronos_job_items_found",
    "aitronos_job_pagination_complete",
    "aitronos_job_processing_seconds",
    "aitronos_job_running_seconds",
    "aitronos_job_created_timestamp_seconds",
    "aitronos_job_completed_timestamp_seconds",
    "aitronos_job_stalled",
    "aitronos_job_eta_seconds",
    "brightdata_collector_jobs_finished_total",
    "brightdata_dataset_snapshots_finished_total",
    "brightdata_ai_flows_finished_total",
    "aitronos_jobs_finished_total",
    "brightdata_collector_lines_total",
    "brightdata_collector_failures_total",
    "aitronos_items_found_total",
    "brightdata_finished_job_duration_seconds_bucket",
    "brightdata_finished_job_queue_seconds_bucket",
    "aitronos_finished_job_processing_seconds_bucket",
    "brightdata_collector_last_success_timestamp_seconds",
    "scrapejobs_exporter_target_up",
    "scrapejobs_exporter_target_last_success_timestamp_seconds",
    "scrapejobs_exporter_api_requests_total",
    "scrapejobs_exporter_api_request_duration_seconds_bucket",
    "scrapejobs_exporter_api_errors_total",
    "scrapejobs_exporter_rate_limit_wait_seconds_total",
    "scrapejobs_exporter_api_rate_limit_limit",
    "scrapejobs_exporter_api_rate_limit_remaining",
    "scrapejobs_exporter_circuit_open",
    "scrapejobs_exporter_poll_cycle_duration_seconds_bucket",
    "scrapejobs_exporter_tracked_targets",
    "scrapejobs_exporter_evicted_targets_total",
    "scrapejobs_exporter_unknown_status_total",
    "scrapejobs_exporter_build_info",
    "scrapejobs_exporter_config_last_reload_successful",
    "scrapejobs_exporter_config_last_reload_success_timestamp_seconds",
    "brightdata_job_input_errors",
    "brightdata_snapshot_records",
    "brightdata_snapshot_created_timestamp_seconds",
    "brightdata_snapshot_duration_seconds",
    "brightdata_snapshot_success_ratio",
    "brightdata_snapshot_inputs",
    "brightdata_collector_page_loads_total",
    "brightdata_collector_input_errors_total",
    "brightdata_dataset_records_total",
    "brightdata_finished_snapshot_duration_seconds_bucket",
    "aitronos_job_failures_total",
}


def _missing(what: str) -> None:
    """Skip because ``what`` is unavailable, or fail when running in CI."""
    if CI:
        pytest.fail(f"{what} is required in CI (CI is set)")
    pytest.skip(f"{what} is not available")


def _load_committed() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(DASHBOARD_DIR.glob("*.json"))
    }


def _panels(model: dict[str, Any]) -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = []
    for panel in model["panels"]:
        if panel["type"] == "row":
            panels.extend(panel.get("panels", []))
        else:
            panels.append(panel)
    return panels


def _recording_rule_names() -> set[str]:
    data = yaml.safe_load((ROOT / "prometheus/rules/recording.rules.yml").read_text())
    return {rule["record"] for group in data["groups"] for rule in group["rules"]}


COMMITTED = _load_committed()
QUERIES = dashboard_queries()


def test_committed_json_equals_fresh_generation() -> None:
    fresh = generate()
    assert sorted(fresh) == sorted(p.name for p in DASHBOARD_DIR.glob("*.json")), (
        "grafana/dashboards/ has files the generator does not produce (or lacks some); "
        "run `make dashboards`"
    )
    for name, text in fresh.items():
        committed = (DASHBOARD_DIR / name).read_text(encoding="utf-8")
        assert committed == text, f"{name} is out of date: run `make dashboards`"


def test_generation_is_deterministic() -> None:
    assert generate() == generate()


def test_three_dashboards_with_stable_unique_uids() -> None:
    uids = [model["uid"] for model in COMMITTED.values()]
    assert sorted(uids) == [
        "scrapejobs-exporter-health",
        "scrapejobs-job-detail",
        "scrapejobs-overview",
    ]
    assert [spec.uid for spec in DASHBOARDS] == [
        COMMITTED[spec.filename]["uid"] for spec in DASHBOARDS
    ]
    for model in COMMITTED.values():
        assert len(model["uid"]) <= 40  # Grafana's uid length limit
        ids = [panel["id"] for panel in model["panels"]]
        assert len(ids) == len(set(ids)), f"{model['uid']}: duplicate panel ids"


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_datasource_variable_and_panel_datasources(name: str) -> None:
    model = COMMITTED[name]
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"]["uid"] == "${datasource}"
    for panel in _panels(model):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert target["refId"], f"{panel['title']}: target without refId"


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_every_panel_has_a_unit(name: str) -> None:
    for panel in _panels(COMMITTED[name]):
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        assert unit, f"{name}: panel {panel['title']!r} has no unit"


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_rates_use_rate_interval(name: str) -> None:
    for panel in _panels(COMMITTED[name]):
        for target in panel["targets"]:
            for window in re.findall(r"\[([^\]]*)\]", target["expr"]):
                assert window == "$__rate_interval", (
                    f"{name}: {panel['title']!r} uses [{window}]; use [$__rate_interval] "
                    "or a recording rule"
                )


def test_expected_variables() -> None:
    by_uid = {model["uid"]: model for model in COMMITTED.values()}
    names = {uid: {v["name"] for v in model["templating"]["list"]} for uid, model in by_uid.items()}
    assert {"datasource", "collector"} <= names["scrapejobs-overview"]
    assert {"datasource", "collector", "job_id"} <= names["scrapejobs-job-detail"]
    assert {"datasource", "provider"} <= names["scrapejobs-exporter-health"]


def _exprs(uid: str) -> str:
    return "\n".join(expr for dash, _title, expr in QUERIES if dash == uid)


@pytest.mark.parametrize(
    ("uid", "metrics"),
    [
        (
            "scrapejobs-overview",
            [
                "collector_status:brightdata_job_status:sum",
                "collector:brightdata_collector_jobs_success:ratio_rate1h",
                "brightdata_collector_jobs_finished_total",
                "collector:brightdata_finished_job_duration_seconds:p95_rate1h",
                "collector:brightdata_finished_job_queue_seconds:p50_rate1h",
                "brightdata_job_pages_left",
                "brightdata_job_stalled",
                "brightdata_snapshot_status",
                "brightdata_ai_flow_step",
                "aitronos_job_progress_ratio",
            ],
        ),
        (
            "scrapejobs-job-detail",
            [
                "brightdata_job_pages",
                "brightdata_job_pages_left",
                "brightdata_job_lines",
                "brightdata_job_failures",
                "brightdata_job_eta_seconds",
            ],
        ),
        (
            "scrapejobs-exporter-health",
            [
                "scrapejobs_exporter_target_up",
                "scrapejobs_exporter_api_requests_total",
                "scrapejobs_exporter_api_errors_total",
                "scrapejobs_exporter_api_request_duration_seconds_bucket",
                "scrapejobs_exporter_rate_limit_wait_seconds_total",
                "scrapejobs_exporter_tracked_targets",
                "scrapejobs_exporter_evicted_targets_total",
                "scrapejobs_exporter_poll_cycle_duration_seconds_bucket",
            ],
        ),
    ],
)
def test_dashboards_cover_the_spec(uid: str, metrics: list[str]) -> None:
    exprs = _exprs(uid)
    for metric in metrics:
        assert re.search(rf"\b{re.escape(metric)}\b", exprs), f"{uid} does not show {metric}"


def test_queries_only_use_known_metrics() -> None:
    known = CONTRACT_METRICS | _recording_rule_names() | {"up"}
    names: set[str] = set()
    for _uid, _title, expr in QUERIES:
        recorded = set(re.findall(r"\b\w+:\w+:\w+\b", expr))
        plain = re.sub(r"\b\w+:\w+:\w+\b", " ", expr)
        names |= recorded
        names |= set(re.findall(r"\b(?:brightdata|aitronos|scrapejobs_exporter)_\w+", plain))
    assert names, "no metric names found"
    assert names <= known, f"unknown metrics: {sorted(names - known)}"


def test_dashboard_queries_matches_json() -> None:
    in_json = [
        (model["uid"], panel["title"], substitute(target["expr"]))
        for spec in DASHBOARDS
        for model in [COMMITTED[spec.filename]]
        for panel in _panels(model)
        for target in panel["targets"]
    ]
    assert in_json == QUERIES
    for _uid, title, expr in QUERIES:
        assert "$" not in expr, f"{title}: unsubstituted variable in {expr}"
    sparse_free = dashboard_queries(include_sparse=False)
    assert 0 < len(sparse_free) < len(QUERIES)


def test_substitute_overrides() -> None:
    expr = 'rate(x{collector=~"$collector"}[$__rate_interval]) + y{a="${job_id}"}'
    assert substitute(expr, {"collector": "c_1", "job_id": "j_1"}) == (
        'rate(x{collector=~"c_1"}[1m]) + y{a="j_1"}'
    )


@pytest.mark.parametrize(
    ("uid", "title", "expr"), QUERIES, ids=[f"{u}:{t}" for u, t, _e in QUERIES]
)
def test_query_parses_with_promql_parser(uid: str, title: str, expr: str) -> None:
    try:
        import promql_parser
    except ImportError:
        _missing("the promql-parser package")
    promql_parser.parse(expr)


def test_queries_parse_with_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        _missing("promtool (Debian package prometheus)")
    rules = {
        "groups": [
            {
                "name": "dashboard-queries",
                "rules": [
                    {"record": f"dashboard:query_{index}:check", "expr": expr}
                    for index, (_uid, _title, expr) in enumerate(QUERIES)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_datasource_provisioning() -> None:
    files = sorted((ROOT / "grafana/provisioning/datasources").glob("*.yml"))
    assert files
    data = yaml.safe_load(files[0].read_text())
    assert data["apiVersion"] == 1
    (datasource,) = data["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["uid"] == "prometheus"
    assert datasource["url"].startswith("http")


def test_dashboard_provisioning_matches_compose_mount() -> None:
    files = sorted((ROOT / "grafana/provisioning/dashboards").glob("*.yml"))
    assert files
    data = yaml.safe_load(files[0].read_text())
    assert data["apiVersion"] == 1
    (provider,) = data["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    volumes = compose["services"]["grafana"]["volumes"]
    assert any(str(v).startswith("./grafana/dashboards:" + path) for v in volumes), volumes
