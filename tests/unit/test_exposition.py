"""Our renderers against prometheus_client's, and the format details Prometheus relies on."""

from __future__ import annotations

import dataclasses
import gzip
import math

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse

from scrapejobs_exporter.exposition import (
    Exposition,
    choose_format,
    format_value,
    render_openmetrics,
    render_text,
    wants_gzip,
)
from scrapejobs_exporter.metrics import CATALOGUE, collect_families
from scrapejobs_exporter.providers.brightdata import parse_job_log
from scrapejobs_exporter.store import Store
from scrapejobs_exporter.telemetry import Telemetry
from tests.helpers import (
    SEED_EXPOSITION_LINES,
    om_samples,
    reference_render,
    samples,
    seeded_store,
)


def _families() -> list:  # type: ignore[type-arg]
    telemetry = Telemetry()
    telemetry.api_requests.inc(("brightdata", "/dca/log/{job_id}", "200"), 3)
    telemetry.api_request_duration.observe(("brightdata", "/dca/log/{job_id}"), 0.02)
    telemetry.api_errors.inc(("aitronos", "/v1/scrape/jobs/{job_id}/progress", "timeout"))
    telemetry.poll_cycle_duration.observe((), 0.3)
    return collect_families(seeded_store(), telemetry)


def test_text_matches_prometheus_client_sample_by_sample() -> None:
    families = _families()
    ours = samples(render_text(families).decode())
    reference = samples(reference_render(families).decode())
    assert ours == reference
    assert len(ours) > 50


def test_openmetrics_parses_and_matches_reference() -> None:
    families = _families()
    ours = om_samples(render_openmetrics(families).decode())
    assert ours == om_samples(reference_render(families, openmetrics=True).decode())


def test_seed_values_in_exposition() -> None:
    text = render_text(_families()).decode()
    expected = [
        *SEED_EXPOSITION_LINES,
        'aitronos_job_progress_ratio{job_id="job_abc123"} 1',
        'brightdata_ai_flow_step{collector="c_m9im5n7v82p2y35la",step="collector_maintainer"} 1',
    ]
    lines = set(text.splitlines())
    for line in expected:
        assert line in lines, line
    assert "amite@brightdata.com" not in text  # the trigger e-mail is PII


def test_state_sets_have_exactly_one_state() -> None:
    parsed = samples(render_text(_families()).decode())
    for metric in ("brightdata_job_status", "brightdata_snapshot_status", "aitronos_job_status"):
        ones = [v for (name, _), v in parsed.items() if name == metric and v == 1]
        assert len(ones) == 1, metric


def test_missing_fields_produce_no_series() -> None:
    store = Store()
    Store.record_success(
        store.add("brightdata", "job", "j_1"), parse_job_log({"status": "running"}, "j_1"), 1.0
    )
    text = render_text(collect_families(store, Telemetry())).decode()
    assert "brightdata_job_lines" not in text
    assert 'brightdata_job_status{job_id="j_1",collector="",status="running"} 1' in text


WEIRD = 'c_"quoted"\\back\nline-ünï'


def _weird_store() -> Store:
    """A job whose collector id needs every kind of escaping. (The parser refuses such an id
    from a reply; the renderer must escape whatever a model holds all the same.)"""
    store = Store()
    Store.record_success(
        store.add("brightdata", "job", "j_1"),
        dataclasses.replace(parse_job_log({"status": "done"}, "j_1"), collector=WEIRD),
        1.0,
    )
    return store


def test_label_values_are_escaped() -> None:
    weird = WEIRD
    store = _weird_store()
    text = render_text(collect_families(store, Telemetry())).decode()
    assert 'collector="c_\\"quoted\\"\\\\back\\nline-ünï"' in text
    parsed = samples(text)
    assert any(dict(labels).get("collector") == weird for _, labels in parsed)


def test_every_catalogue_entry_has_help_and_snake_case_name() -> None:
    for name, spec in CATALOGUE.items():
        assert spec.help and name == name.lower()
        assert (spec.type == "counter") == name.endswith("_total"), name


@pytest.mark.parametrize(
    ("value", "text"),
    [(13.0, "13"), (1.0, "1"), (0.645, "0.645"), (71.459, "71.459"), (math.inf, "+Inf"),
     (-math.inf, "-Inf"), (math.nan, "NaN"), (1e20, "1e+20"), (-2.0, "-2")],
)  # fmt: skip
def test_format_value(value: float, text: str) -> None:
    from scrapejobs_exporter.exposition import _number

    assert format_value(value) == text
    assert _number(value) == text  # the fast path agrees


@pytest.mark.parametrize(
    ("accept", "fmt"),
    [
        (None, "text"),
        ("text/plain;version=0.0.4", "text"),
        ("application/openmetrics-text;version=1.0.0;q=0.6,application/openmetrics-text;"
         "version=0.0.1;q=0.5,text/plain;version=1.0.0;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
         "openmetrics"),
        ("application/openmetrics-text; version=2.0.0", "text"),
        ("application/openmetrics-text;q=0", "text"),
    ],
)  # fmt: skip
def test_choose_format(accept: str | None, fmt: str) -> None:
    assert choose_format(accept) == fmt


def test_gzip_negotiation_and_bytes() -> None:
    assert wants_gzip("gzip, deflate") and wants_gzip("*")
    assert not wants_gzip(None) and not wants_gzip("gzip;q=0") and not wants_gzip("br")
    exposition = Exposition.build(_families())
    assert gzip.decompress(exposition.text.gzipped) == exposition.text.body
    assert exposition.openmetrics.body.endswith(b"# EOF\n")


def test_label_values_are_escaped_in_openmetrics() -> None:

    from scrapejobs_exporter.exposition import render_openmetrics

    weird = WEIRD
    store = _weird_store()
    text = render_openmetrics(collect_families(store, Telemetry())).decode()
    assert 'collector="c_\\"quoted\\"\\\\back\\nline-ünï"' in text
    assert text.endswith("# EOF\n")
    collectors = {s.labels.get("collector") for f in om_parse(text) for s in f.samples}
    assert weird in collectors


@pytest.mark.parametrize("chunked", [False, True])
async def test_fast_renderer_matches_prometheus_client_on_a_simulated_store(
    chunked: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What /metrics serves (the fast path) against prometheus_client rendering the same
    store through the reference path, sample by sample, in both formats; also in tiny
    chunks, which must not change a byte and give the render a pause point before each."""
    from scrapejobs_exporter import exposition as module
    from scrapejobs_exporter.simulator import SimulatorConfig, SimulatorServer
    from tests.unit.test_exporter import exporter_for, run

    sim = SimulatorServer(SimulatorConfig(seed=9, scale=300, manual_clock=True, stuck_fraction=0.3))
    await sim.start()
    try:
        exporter = exporter_for(sim)
        await exporter.poller.run_cycle()
        await run(sim, exporter, 8)
        await exporter.stop()
    finally:
        await sim.stop()
    whole_pauses: list[None] = []
    whole = exporter.render(pause=lambda: whole_pauses.append(None))
    pauses: list[None] = []
    if chunked:
        monkeypatch.setattr(module, "CHUNK_TARGETS", 7)
        monkeypatch.setattr(module, "CHUNK_SAMPLES", 5)
    served = exporter.render(pause=lambda: pauses.append(None))
    assert len(pauses) > 10 * len(whole_pauses) if chunked else pauses == whole_pauses
    assert (served.text.body, served.openmetrics.body) == (whole.text.body, whole.openmetrics.body)
    reference = collect_families(exporter.store, exporter.telemetry, exporter.aggregates)
    ours = samples(served.text.body.decode())
    assert ours == samples(reference_render(reference).decode())
    names = {name for name, _ in ours}
    assert {"brightdata_job_stalled", "brightdata_job_eta_seconds", "aitronos_job_status",
            "brightdata_snapshot_status", "scrapejobs_exporter_target_up"} <= names  # fmt: skip
    om = om_samples(served.openmetrics.body.decode())
    assert om == om_samples(reference_render(reference, openmetrics=True).decode())


def test_per_target_help_is_the_same_in_both_formats() -> None:
    """The per-target chunks are shared by both formats: their help must need no escaping
    that differs between them."""
    from scrapejobs_exporter.metrics import PER_TARGET

    for per in PER_TARGET:
        assert '"' not in per.spec.help and "\\" not in per.spec.help, per.spec.name


@pytest.mark.parametrize("isal", [True, False])
def test_pages_are_single_valid_gzip_members_sharing_the_body(
    isal: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    import subprocess

    from scrapejobs_exporter import exposition as module
    from scrapejobs_exporter.exposition import render_per_target

    if not isal:
        monkeypatch.setattr(module, "isal_zlib", None)  # the zlib fallback
    store = seeded_store()
    rest = collect_families(store, Telemetry(), per_job=False)
    exposition = Exposition.build(rest, render_per_target(store))
    text, om = exposition.text, exposition.openmetrics
    assert text.parts[1] is om.parts[1]  # the per-target body is stored once
    for page in (text, om):
        plain = gzip.decompress(page.gzipped)
        assert plain == page.body and len(page.gzipped) == page.size
        gunzip = shutil.which("gunzip")
        if gunzip:  # the reference decoder agrees (CRC and length checked)
            out = subprocess.run(
                [gunzip, "-c"], input=page.gzipped, capture_output=True, check=True
            )
            assert out.stdout == plain
    assert om.body.endswith(b"# EOF\n") and b"# EOF" not in text.body
    assert b'brightdata_job_status{job_id="j_ma13y9ay1piehrso8r"' in text.body
