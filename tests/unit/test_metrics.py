"""The catalogue as client_python metrics, and the families every exporter's page carries."""

from __future__ import annotations

import platform
import re
import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from scrapejobs_exporter.config import parse_config
from scrapejobs_exporter.exporter import Exporter
from scrapejobs_exporter.metrics import (
    CATALOGUE,
    EVICTED,
    TRACKED,
    StateFileCollector,
    TrackedCollector,
    make_counter,
    make_gauge,
    make_histogram,
    markdown_table,
)
from scrapejobs_exporter.statefile import open_state_file
from scrapejobs_exporter.store import Store
from tests.conftest import require_binary
from tests.helpers import samples, seeded_store

BOTH = """
brightdata:
  api_token: t
  base_url: https://bd.test
  jobs: [j_1]
aitronos:
  api_key: k
  base_url: https://ait.test
"""
BD_ONLY = BOTH.split("aitronos:")[0]


def _page(exporter: Exporter) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return samples(exporter.render().text.body.decode())


async def test_the_page_carries_process_and_python_families() -> None:
    exporter = Exporter(parse_config(BOTH, env={}))
    await exporter.stop()
    page = _page(exporter)
    names = {name for name, _ in page}
    assert "python_info" in names and "python_gc_objects_collected_total" in names
    if sys.platform.startswith("linux"):
        rss = page[("process_resident_memory_bytes", ())]
        assert 10_000_000 < rss < 10_000_000_000  # a Python process with its imports
        assert page[("process_open_fds", ())] >= 3
        assert page[("process_cpu_seconds_total", ())] > 0
        assert page[("process_max_fds", ())] > 0
    info = next(dict(labels) for name, labels in page if name == "python_info")
    assert info["version"] == platform.python_version()
    # No `_created` series (they would be families outside the catalogue in the text format).
    assert not [name for name, _ in page if name.endswith("_created")]


async def test_the_whole_page_passes_promtool() -> None:
    exporter = Exporter(parse_config(BOTH, env={}))
    await exporter.stop()
    for seeded in seeded_store():
        target = exporter.store.add(seeded.provider, seeded.kind, seeded.target_id)
        Store.record_success(target, seeded.model, 1_700_000_000.0)  # type: ignore[arg-type]
    exporter.telemetry.api_requests.labels("brightdata", "/dca/log/{job_id}", "200").inc()
    exporter.telemetry.reload_done(True, 1_700_000_000.0)
    body = exporter.render().text.body.decode()
    assert "brightdata_job_status{" in body and "process_resident_memory_bytes" in body
    promtool = require_binary("promtool")
    check = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0 and check.stdout + check.stderr == "", check.stdout + check.stderr


async def test_counters_by_provider_and_kind_start_at_zero_for_configured_providers() -> None:
    exporter = Exporter(parse_config(BD_ONLY, env={}))
    page = _page(exporter)
    for name in ("scrapejobs_exporter_evicted_targets_total",
                 "scrapejobs_exporter_unknown_status_total"):  # fmt: skip
        series = {dict(k)["kind"]: v for (n, k), v in page.items() if n == name}
        assert series == {"job": 0, "snapshot": 0, "ai_flow": 0}, name
        providers = {dict(k)["provider"] for (n, k), _ in page.items() if n == name}
        assert providers == {"brightdata"}  # aitronos is not configured
    # Added by a reload that configures the provider.
    await exporter.reload(parse_config(BOTH, env={}))
    page = _page(exporter)
    await exporter.stop()
    key = (("kind", "job"), ("provider", "aitronos"))
    assert page[("scrapejobs_exporter_evicted_targets_total", key)] == 0


async def test_aitronos_aggregates_appear_with_the_first_aitronos_job_only() -> None:
    exporter = Exporter(parse_config(BD_ONLY, env={}))
    await exporter.stop()
    names = {name for name, _ in _page(exporter)}
    assert "aitronos_items_found_total" not in names
    assert "aitronos_finished_job_processing_seconds_count" not in names
    job = next(t for t in seeded_store() if t.provider == "aitronos").model  # 13 items, timeout
    exporter.aggregates.ensure_aitronos()
    exporter.aggregates.aitronos_job_finished(job)  # type: ignore[arg-type]
    page = _page(exporter)
    assert page[("aitronos_items_found_total", ())] == 13
    assert page[("aitronos_finished_job_processing_seconds_count", ())] == 1
    assert page[("aitronos_jobs_finished_total", (("status", "completed"),))] == 1


async def test_reload_gauges_appear_with_the_first_load_of_a_config_file() -> None:
    exporter = Exporter(parse_config(BD_ONLY, env={}))
    await exporter.stop()
    assert not [n for n, _ in _page(exporter) if "config_last_reload" in n]
    exporter.telemetry.reload_done(False, 5.0)  # a first load that failed: no success time
    page = _page(exporter)
    assert page[("scrapejobs_exporter_config_last_reload_successful", ())] == 0
    assert page[("scrapejobs_exporter_config_last_reload_success_timestamp_seconds", ())] == 0
    exporter.telemetry.reload_done(True, 7.0)
    page = _page(exporter)
    assert page[("scrapejobs_exporter_config_last_reload_successful", ())] == 1
    assert page[("scrapejobs_exporter_config_last_reload_success_timestamp_seconds", ())] == 7


def test_metrics_are_made_as_the_catalogue_says() -> None:
    registry = CollectorRegistry()
    make_counter(EVICTED, registry).labels("brightdata", "job").inc(2)
    text = generate_latest(registry).decode()
    assert f"# HELP {EVICTED.name} {EVICTED.help}\n# TYPE {EVICTED.name} counter" in text
    key = (("kind", "job"), ("provider", "brightdata"))
    assert samples(text)[(EVICTED.name, key)] == 2
    for spec in CATALOGUE.values():
        one = CollectorRegistry()
        if spec.type == "counter":
            make_counter(spec, one)
        elif spec.type == "histogram":
            make_histogram(spec, one, (1.0,))
        else:
            make_gauge(spec, one)
        [family] = one.collect()
        assert family.type == ("gauge" if spec.type in ("stateset", "info") else spec.type)
        assert family.documentation == spec.help
        assert family.name == spec.name.removesuffix("_total")  # client_python's family name
        # The legacy character set: OpenMetrics is rendered with allow-utf-8 escaping, which
        # gives the default's bytes only for such names (see exposition.FamilyCache).
        for name in (spec.name, *spec.labels):
            assert re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", name), name


def test_tracked_targets_count_every_kind() -> None:
    store = Store()
    store.add("brightdata", "job", "j_1")
    store.add("brightdata", "job", "j_2")
    registry = CollectorRegistry()
    registry.register(TrackedCollector(store))
    page = samples(generate_latest(registry).decode())
    assert page[(TRACKED.name, (("kind", "job"), ("provider", "brightdata")))] == 2
    assert page[(TRACKED.name, (("kind", "job"), ("provider", "aitronos")))] == 0


async def test_two_exporters_in_one_process_count_apart() -> None:
    first = Exporter(parse_config(BOTH, env={}))
    second = Exporter(parse_config(BOTH, env={}))  # its own registry: no name clash
    first.aggregates.evicted.labels("brightdata", "job").inc()
    await first.stop()
    await second.stop()
    key = (("kind", "job"), ("provider", "brightdata"))
    assert _page(first)[("scrapejobs_exporter_evicted_targets_total", key)] == 1
    assert _page(second)[("scrapejobs_exporter_evicted_targets_total", key)] == 0


def test_the_markdown_table_names_every_metric() -> None:
    table = markdown_table()
    assert all(f"`{name}`" in table for name in CATALOGUE)


def test_state_file_families(tmp_path: Path) -> None:
    state, _ = open_state_file(tmp_path / "state.db")
    assert state.flush(lambda key: None, (), {}, 1_700_000_000.0)
    registry = CollectorRegistry()
    registry.register(StateFileCollector(state))
    page = samples(generate_latest(registry).decode())
    state.close()
    assert page[("scrapejobs_exporter_state_file_writes_total", ())] == 1
    assert page[("scrapejobs_exporter_state_file_write_errors_total", ())] == 0
    assert page[("scrapejobs_exporter_state_file_last_write_timestamp_seconds", ())] == 1.7e9
    statuses = {
        dict(labels)["status"]: v
        for (name, labels), v in page.items()
        if name == "scrapejobs_exporter_state_file_status"
    }
    assert statuses == {
        "restored": 0, "created": 1, "corrupt": 0, "newer_version": 0, "unwritable": 0
    }  # fmt: skip


async def test_without_a_state_file_no_state_file_family() -> None:
    exporter = Exporter(parse_config(BOTH, env={}))
    await exporter.stop()
    assert not any(name.startswith("scrapejobs_exporter_state_file") for name, _ in _page(exporter))
