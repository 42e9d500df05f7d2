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
