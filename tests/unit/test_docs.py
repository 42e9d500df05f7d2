"""Documentation that must not drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

from scrapejobs_exporter.metrics import CATALOGUE, markdown_table

ROOT = Path(__file__).parents[2]


def test_metrics_doc_catalogue_is_generated_from_code() -> None:
    text = (ROOT / "docs" / "metrics.md").read_text()
    block = re.search(r"<!-- BEGIN CATALOGUE -->\n(.*)<!-- END CATALOGUE -->", text, re.S)
    assert block is not None
    assert block.group(1) == markdown_table(), "run: python -m scrapejobs_exporter.metrics"


def test_every_metric_has_a_readme_example_query() -> None:
    readme = (ROOT / "README.md").read_text()
    families = {name.split("_")[0] + "_" + name.split("_")[1] for name in CATALOGUE}
    for prefix in families:
        assert prefix in readme, prefix


def test_readme_scrape_jobs_are_seen_by_the_exporter_down_alert() -> None:
    """A user who copies the README's scrape config gets a working ScrapejobsExporterDown."""
    import yaml

    rules = yaml.safe_load((ROOT / "prometheus/rules/alerts.rules.yml").read_text())
    (down,) = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "ScrapejobsExporterDown"]  # fmt: skip
    matcher = re.search(r'job=~"([^"]+)"', down["expr"])
    assert matcher is not None
    readme = (ROOT / "README.md").read_text()
    names = re.findall(r"^\s*- job_name:\s*(\S+)", readme, re.M)
    assert names
    for name in names:
        assert re.fullmatch(matcher.group(1), name.strip("\"'")), name


def test_readme_names_the_current_flags() -> None:
    from scrapejobs_exporter.cli import build_parser

    readme = (ROOT / "README.md").read_text()
    assert "Python 3.11" in readme
    assert "demo --web.listen-address" in readme
    run_help = build_parser().parse_args(["run", "--config", "x"])
    assert run_help.log_level == "info" and run_help.log_format == "logfmt"
    for flag in ("--log.level debug|info|warn|error", "--log.format logfmt|json", "/-/healthy"):
        assert flag in readme, flag
