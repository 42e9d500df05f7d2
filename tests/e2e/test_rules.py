"""Prometheus rules, their unit tests, runbooks and the example Prometheus/Alertmanager configs.

promtool and amtool come from Debian's `prometheus` and `prometheus-alertmanager` packages.
Without them these tests skip, unless the environment variable CI is set: then they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = sorted((ROOT / "prometheus" / "rules").glob("*.yml"))
RULE_TESTS = sorted((ROOT / "prometheus" / "tests").glob("*.yml"))
RUNBOOKS = ROOT / "docs" / "runbooks.md"
RUNBOOK_BASE = (
    "https://github.com/scrapejobs-exporter/scrapejobs-exporter/blob/main/docs/runbooks.md#"
)
CI = bool(os.environ.get("CI"))


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        if CI:
            pytest.fail(f"{name} (Debian package {package}) is required in CI (CI is set)")
        pytest.skip(f"{name} not found: install the Debian package {package}")
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, cwd=ROOT)


def _rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for path in RULES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            rules.extend(group["rules"])
    return rules


ALERTS = [rule for rule in _rules() if "alert" in rule]
RECORDS = [rule for rule in _rules() if "record" in rule]


def _github_anchor(heading: str) -> str:
    anchor = heading.strip().lower()
    anchor = re.sub(r"[^\w\- ]", "", anchor)
    return anchor.replace(" ", "-")


def test_rule_files_exist() -> None:
    assert RULES and RULE_TESTS
    assert len(ALERTS) >= 14 and RECORDS


def test_promtool_check_rules() -> None:
    promtool = _tool("promtool", "prometheus")
    result = _run(promtool, "check", "rules", *map(str, RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules() -> None:
    promtool = _tool("promtool", "prometheus")
    result = _run(promtool, "test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("config", ["prometheus/prometheus.yml", "deploy/compose/prometheus.yml"])
def test_promtool_check_config(config: str) -> None:
    promtool = _tool("promtool", "prometheus")
    result = _run(promtool, "check", "config", config)
    assert result.returncode == 0, result.stdout + result.stderr
    # The referenced rule files were found and checked, not silently matched by nothing.
    assert "alerts.rules.yml" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "config", ["prometheus/alertmanager.yml", "deploy/compose/alertmanager.yml"]
)
def test_amtool_check_config(config: str) -> None:
    amtool = _tool("amtool", "prometheus-alertmanager")
    result = _run(amtool, "check-config", config)
    assert result.returncode == 0, result.stdout + result.stderr


def test_required_alerts_exist() -> None:
    names = {rule["alert"] for rule in ALERTS}
    required = {
        "BrightDataJobFailed",
        "BrightDataCollectorSuccessRatioLow",
        "BrightDataJobStalled",
        "AitronosJobStalled",
        "BrightDataJobQueueTimeHigh",
        "BrightDataSnapshotFailed",
        "BrightDataAIFlowFailed",
        "BrightDataAIFlowAwaitingApproval",
        "AitronosJobTimedOut",
        "BrightDataCollectorNoSuccessfulJob",
        "ScrapejobsExporterDown",
        "ScrapejobsExporterTargetDown",
        "ScrapejobsExporterApiErrorsHigh",
        "ScrapejobsExporterRateLimited",
    }
    assert required <= names, sorted(required - names)
    assert len(names) == len(ALERTS), "duplicate alert names"


@pytest.mark.parametrize("rule", ALERTS, ids=[rule["alert"] for rule in ALERTS])
def test_alert_labels_and_annotations(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    annotations = rule["annotations"]
    assert {"summary", "description", "runbook_url"} <= set(annotations)
    assert annotations["runbook_url"] == RUNBOOK_BASE + rule["alert"].lower()


def test_every_alert_has_a_runbook_section() -> None:
    text = RUNBOOKS.read_text(encoding="utf-8")
    sections: dict[str, str] = {}
    for match in re.finditer(r"^## ([^\n]+)\n(.*?)(?=^## |\Z)", text, re.M | re.S):
        sections[_github_anchor(match.group(1))] = match.group(2)
    for rule in ALERTS:
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert anchor in sections, f"docs/runbooks.md has no section for #{anchor}"
        body = sections[anchor]
        for part in ("**Meaning.**", "**What to check.**", "**What to do.**"):
            assert part in body, f"runbook section #{anchor} lacks {part}"


def test_recording_rule_names_follow_convention() -> None:
    for rule in RECORDS:
        assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", rule["record"]), rule["record"]


def _unit_tests() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for path in RULE_TESTS:
        cases.extend(yaml.safe_load(path.read_text(encoding="utf-8"))["tests"])
    return cases


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for case in _unit_tests():
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in ALERTS}
    assert names <= firing, f"no firing test for {sorted(names - firing)}"
    assert names <= silent, f"no not-firing test for {sorted(names - silent)}"


def test_dashboards_recording_rules_exist() -> None:
    """Every recorded series a dashboard uses is defined here."""
    records = {rule["record"] for rule in RECORDS}
    for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
        used = set(re.findall(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b", path.read_text()))
        assert used <= records, f"{path.name}: unknown recording rules {sorted(used - records)}"
