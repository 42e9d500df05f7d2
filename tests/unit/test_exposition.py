"""The fast per-target renderer against prometheus_client's, and the format details Prometheus
relies on. The rest of the page is client_python's own output."""

from __future__ import annotations

import dataclasses
import gzip
import math

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
from prometheus_client.utils import floatToGoString

from scrapejobs_exporter.exposition import (
    Exposition,
    FamilyCache,
    PerTargetCache,
    Piece,
    choose_format,
    render_per_target,
    wants_gzip,
)
from scrapejobs_exporter.metrics import CATALOGUE, group_targets
from scrapejobs_exporter.providers.brightdata import parse_job_log
from scrapejobs_exporter.store import Store
from scrapejobs_exporter.telemetry import Telemetry
from tests.helpers import (
    SEED_EXPOSITION_LINES,
    om_samples,
    page,
    reference_render,
    samples,
    seeded_store,
)


def _telemetry() -> Telemetry:
    telemetry = Telemetry()
    telemetry.api_requests.labels("brightdata", "/dca/log/{job_id}", "200").inc(3)
    telemetry.api_request_duration.labels("brightdata", "/dca/log/{job_id}").observe(0.02)
    telemetry.api_errors.labels("aitronos", "/v1/scrape/jobs/{job_id}/progress", "timeout").inc()
    telemetry.poll_cycle_duration.observe(0.3)
    return telemetry


def _page() -> Exposition:
    return page(seeded_store(), _telemetry().registry)


def _heads(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("#")]


def test_text_matches_prometheus_client_line_by_line_but_for_number_spelling() -> None:
    """Samples, HELP and TYPE lines: ours (the fast per-target chunks, then client_python's
    part) against client_python rendering the same values alone."""
    store, telemetry = seeded_store(), _telemetry()
    ours = page(store, telemetry.registry).text.body.decode()
    reference = reference_render(store, telemetry.registry).decode()
    assert samples(ours) == samples(reference)
    assert len(samples(ours)) > 50
    assert _heads(ours) == _heads(reference)  # HELP and TYPE, in the same order
    # Sample lines differ only in how integers are spelt (`13`, client_python `13.0`).
    assert len(ours.splitlines()) == len(reference.splitlines())


def test_openmetrics_matches_prometheus_client() -> None:
    store, telemetry = seeded_store(), _telemetry()
    ours = page(store, telemetry.registry).openmetrics.body.decode()
    reference = reference_render(store, telemetry.registry, openmetrics=True).decode()
    assert om_samples(ours) == om_samples(reference)
    assert _heads(ours) == _heads(reference)


def test_seed_values_in_exposition() -> None:
    text = _page().text.body.decode()
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
    parsed = samples(_page().text.body.decode())
    for metric in ("brightdata_job_status", "brightdata_snapshot_status", "aitronos_job_status"):
        ones = [v for (name, _), v in parsed.items() if name == metric and v == 1]
        assert len(ones) == 1, metric


def test_missing_fields_produce_no_series() -> None:
    store = Store()
    Store.record_success(
        store.add("brightdata", "job", "j_1"), parse_job_log({"status": "running"}, "j_1"), 1.0
    )
    text = page(store).text.body.decode()
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
    text = page(store).text.body.decode()
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
def test_number_spelling_agrees_with_prometheus_client(value: float, text: str) -> None:
    """The fast renderer's values parse to client_python's (which writes `13.0` for 13)."""
    from scrapejobs_exporter.exposition import _number

    assert _number(value) == text
    assert float(_number(value)) == float(floatToGoString(value)) or math.isnan(value)


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
    exposition = _page()
    assert gzip.decompress(exposition.text.gzipped) == exposition.text.body
    assert exposition.openmetrics.body.endswith(b"# EOF\n")


def test_label_values_are_escaped_in_openmetrics() -> None:
    weird = WEIRD
    store = _weird_store()
    text = page(store).openmetrics.body.decode()
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

    # The renderers are under test, not the budget: the account limits stay off (the exporter
    # here allows far more than an account's 100/min).
    sim = SimulatorServer(
        SimulatorConfig(seed=9, scale=300, manual_clock=True, stuck_fraction=0.3, rate_limits=False)
    )
    await sim.start()
    try:
        exporter = exporter_for(sim)
        await exporter.poller.run_cycle()
        await run(sim, exporter, 8)
        await exporter.stop()
    finally:
        await sim.stop()
    # What the cycles' renders kept (chunks and families) gives the page a render anew gives.
    cached = exporter.render()
    whole_pauses: list[None] = []
    exporter.per_target.clear()
    exporter.families.clear()
    whole = exporter.render(pause=lambda: whole_pauses.append(None))
    pauses: list[None] = []
    mask = module.CHUNK_MASK
    if chunked:
        monkeypatch.setattr(module, "CHUNK_MASK", 7)
    exporter.per_target.clear()  # made anew, both times
    exporter.families.clear()
    served = exporter.render(pause=lambda: pauses.append(None))
    if chunked:
        # A chunk ends after a target whose id hashes to 0 under the mask, and each chunk made
        # gets a pause before it is looked at and one before each of its pieces (at least one):
        # the smaller mask's extra chunks give at least two pauses each. Counted, not guessed:
        # the number of chunks follows the string-hash seed.
        groups = group_targets(exporter.store)
        ids = [t.target_id for targets in groups.values() for t in targets]
        ends = [sum(1 for i in ids if not hash(i) & m) for m in (7, mask)]
        extra = ends[0] - ends[1] - len(groups)  # a group's tail chunk may be cut at 7 only
        assert extra > 50
        assert len(pauses) - len(whole_pauses) >= 2 * extra
    else:
        assert pauses == whole_pauses
    moving = ("process_", "python_gc_")  # they change between two renders

    def steady(body: bytes) -> list[bytes]:
        return [line for line in body.splitlines() if moving[0].encode() not in line
                and moving[1].encode() not in line]  # fmt: skip

    for fmt in ("text", "openmetrics"):
        assert steady(getattr(served, fmt).body) == steady(getattr(whole, fmt).body)

    def keep(parsed: dict) -> dict:  # type: ignore[type-arg]
        return {k: v for k, v in parsed.items() if not k[0].startswith(moving)}

    ours = samples(served.text.body.decode())
    reference = reference_render(exporter.store, exporter.registry).decode()
    assert keep(ours) == keep(samples(reference))
    assert keep(samples(cached.text.body.decode())) == keep(ours)
    assert _heads(served.text.body.decode()) == _heads(reference)
    names = {name for name, _ in ours}
    assert {"brightdata_job_stalled", "brightdata_job_eta_seconds", "aitronos_job_status",
            "brightdata_snapshot_status", "scrapejobs_exporter_target_up"} <= names  # fmt: skip
    om = om_samples(served.openmetrics.body.decode())
    om_reference = reference_render(exporter.store, exporter.registry, openmetrics=True).decode()
    assert keep(om) == keep(om_samples(om_reference))


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
    exposition = Exposition.build(_telemetry().registry, render_per_target(store))
    text, om = exposition.text, exposition.openmetrics
    assert text.segment is om.segment  # the per-target body is stored once
    for served in (text, om):
        plain = gzip.decompress(served.gzipped)
        assert plain == served.body and len(served.gzipped) == served.size
        gunzip = shutil.which("gunzip")
        if gunzip:  # the reference decoder agrees (CRC and length checked)
            out = subprocess.run(
                [gunzip, "-c"], input=served.gzipped, capture_output=True, check=True
            )
            assert out.stdout == plain
    assert om.body.endswith(b"# EOF\n") and b"# EOF" not in text.body
    assert b'brightdata_job_status{job_id="j_ma13y9ay1piehrso8r"' in text.body


def _texts(sizes: list[int]) -> list[str]:
    """Lines of page text that deflate poorly (ids vary), about `size` bytes each."""
    line = 'brightdata_job_lines{job_id="j_%08x",collector="c_x"} %d\n'
    texts, n = [], 0
    for size in sizes:
        lines = []
        while sum(map(len, lines)) < size:
            n += 1
            lines.append(line % (n * 2654435761 % 2**32, n))
        texts.append("".join(lines))
    return texts


def test_the_segment_is_a_few_regions_that_the_pieces_point_into(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mmap

    from prometheus_client import CollectorRegistry

    from scrapejobs_exporter import exposition as module

    monkeypatch.setattr(module, "REGION_SIZE", 16 * 1024)
    texts = _texts([30_000] * 12 + [400_000, 20_000])  # one piece larger than a region
    pieces = [Piece.of(text) for text in texts]
    page = Exposition.build(CollectorRegistry(), pieces)
    segment = page.text.segment
    assert segment is page.openmetrics.segment
    # Each region holds whole pieces, one after the other: fewer parts than pieces, and the one
    # larger than a region has a region of its own.
    assert 3 <= len(segment) < len(pieces)
    assert max(len(part) for part in segment) >= len(pieces[-2].data) > 16 * 1024
    assert b"".join(segment) == b"".join(bytes(piece.data) for piece in pieces)
    # Each piece now points into its region: the caches keep no second copy of the page.
    regions = {id(part.obj) for part in segment if isinstance(part, memoryview)}
    for piece in pieces:
        assert isinstance(piece.data, memoryview) and isinstance(piece.data.obj, mmap.mmap)
        assert id(piece.data.obj) in regions
    assert gzip.decompress(page.text.gzipped).decode() == "".join(texts)
    assert gzip.decompress(page.openmetrics.gzipped).decode() == "".join(texts) + "# EOF\n"
    # A page made from the kept pieces is the same page, in new regions.
    again = Exposition.build(CollectorRegistry(), pieces)
    assert again.text.gzipped == page.text.gzipped
    assert not regions & {id(part.obj) for part in again.text.segment}  # type: ignore[union-attr]


# --- the render caches ------------------------------------------------------------------------


def _many_jobs(count: int, now: float = 1_700_000_000.0) -> Store:
    from tests.conftest import seed

    store = Store()
    model = parse_job_log(seed("job_log_done"), "j")
    for index in range(count):
        Store.record_success(store.add("brightdata", "job", f"j_{index:04d}"), model, now)
    return store


def _plain(pieces: list[Piece]) -> bytes:
    from prometheus_client import CollectorRegistry

    return Exposition.build(CollectorRegistry(), pieces).text.body


def made_by(cache: PerTargetCache, store: Store) -> tuple[list[Piece], int]:
    """A render's pieces, and how many were made rather than kept: a kept piece points into the
    page it was last joined into; family heads are always made and not counted."""
    import zlib

    pieces = list(cache.render(store))
    fresh = [p.data for p in pieces if isinstance(p.data, bytes)]
    heads = sum(1 for data in fresh if zlib.decompressobj(-15).decompress(data)[:6] == b"# HELP")
    _plain(pieces)  # joined into a page, as a render's pieces always are
    return pieces, len(fresh) - heads


def test_the_per_target_cache_remakes_only_what_changed_and_matches_a_render_anew(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from scrapejobs_exporter import exposition as module
    from scrapejobs_exporter.providers.brightdata import INPUT_ERROR_GROUPS, ErrorGroups

    monkeypatch.setattr(module, "CHUNK_MASK", 3)  # chunks of 4 targets on average
    store = _many_jobs(80)
    cache = PerTargetCache()
    first, made = made_by(cache, store)
    assert made > 20
    page_first = _plain(first)  # joined: every kept piece now points into this page
    again, made = made_by(cache, store)
    assert made == 0 and _plain(again) == page_first  # nothing made twice

    targets = list(store)
    for target in targets[5:9]:
        target.last_poll = 123.0  # not on the page: changes nothing
    assert made_by(cache, store)[1] == 0

    assert targets[3].model is not None
    targets[3].model = dataclasses.replace(targets[3].model, status="failed")
    targets[10].up = False
    targets[20].report = ErrorGroups(tuple(range(len(INPUT_ERROR_GROUPS))))
    targets[50].final = True
    store.remove(targets[30].key)
    Store.record_success(store.add("brightdata", "job", "j_new"), targets[0].model, 5.0)
    after, made = made_by(cache, store)
    # The same families in the same order, each with the same lines (changed targets move to
    # the end of their family: the order within one means nothing).
    anew = _plain(render_per_target(store)).decode()
    assert _heads(_plain(after).decode()) == _heads(anew)
    assert sorted(_plain(after).decode().splitlines()) == sorted(anew.splitlines())
    assert 0 < made < len(after) / 2
    plain = _plain(after).decode()
    assert 'brightdata_job_status{job_id="j_0003",collector="c_m9im5n7v82p2y35la",' \
        'status="failed"} 1' in plain  # fmt: skip
    assert 'scrapejobs_exporter_target_up{provider="brightdata",kind="job",target="j_0010"} 0' \
        in plain  # fmt: skip
    assert 'target="j_0050"' not in plain.split("target_last_success")[1]
    assert '"j_0030"' not in plain and '"j_new"' in plain


def test_a_first_render_puts_running_targets_last_so_the_next_remakes_only_the_tail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import re
    from collections import defaultdict

    from scrapejobs_exporter import exposition as module

    monkeypatch.setattr(module, "CHUNK_MASK", 3)  # chunks of 4 targets on average
    store = _many_jobs(200)
    targets = list(store)
    running = targets[::4]  # spread over the store's order, as discovery finds them
    for target in targets:
        target.final = target not in running
    cache = PerTargetCache()
    first, made_first = made_by(cache, store)

    families: dict[str, list[bool]] = defaultdict(list)
    for line in _plain(first).decode().splitlines():
        found = re.match(r'(\w+)\{.*(?:job_id|target)="(j_\d+)"', line)
        if found:
            families[found[1]].append(found[2] in {t.target_id for t in running})
    assert len(families) > 5
    for name, is_running in families.items():
        assert is_running == sorted(is_running), name  # the final ones first, then the running

    for target in running:
        assert target.model is not None
        target.model = dataclasses.replace(target.model, pages_left=7)
    after, made = made_by(cache, store)
    # Only the chunks at each family's end are made again. Chunk ends fall by the per-process
    # string hash: over 430 hash seeds the tail was 20-42% of the pieces (more than half needs
    # 50 final targets before it without a chunk end, p < 1e-6); spread, the 50 running
    # targets touched 67-92%.
    assert 0 < made < made_first / 2
    assert sorted(_plain(after).decode().splitlines()) == sorted(
        _plain(render_per_target(store)).decode().splitlines()
    )


def test_the_family_cache_gives_client_pythons_page_and_keeps_unchanged_families() -> None:
    from prometheus_client import generate_latest
    from prometheus_client.openmetrics import exposition as om_exposition

    telemetry = _telemetry()
    cache = FamilyCache()
    for step in range(3):
        families = list(telemetry.registry.collect())
        text, om = cache.render(families)
        assert text == generate_latest(telemetry.registry)
        assert om == om_exposition.generate_latest(telemetry.registry)
        kept = dict(cache._kept)
        text_again, _ = cache.render(list(telemetry.registry.collect()))
        assert text_again == text
        moving = ("process_", "python_gc")  # they change by themselves between two collects
        same = [n for n, e in cache._kept.items() if e is kept[n] and not n.startswith(moving)]
        assert len(same) >= len(kept) - 6
        telemetry.api_requests.labels("brightdata", "/dca/log/{job_id}", "200").inc(step + 1)
        changed = "scrapejobs_exporter_api_requests"
        cache.render(list(telemetry.registry.collect()))
        assert cache._kept[changed] is not kept[changed]


def test_the_family_cache_writes_every_kind_of_family_as_client_python_does() -> None:
    """The text format is made from the OpenMetrics sample lines where client_python writes
    them alike; the families where it does not (timestamps, exemplars, `_created`, gauge
    histograms) must come out as client_python writes them too."""
    from prometheus_client import generate_latest
    from prometheus_client.metrics_core import (
        CounterMetricFamily,
        GaugeHistogramMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        InfoMetricFamily,
        Metric,
        StateSetMetricFamily,
        SummaryMetricFamily,
    )
    from prometheus_client.openmetrics import exposition as om_exposition
    from prometheus_client.samples import Exemplar

    odd = 'a "quoted" \\ back\nslash'
    counter = CounterMetricFamily("jobs", "Jobs.\nTwo lines \\ here.", labels=["c"])
    counter.add_metric([odd], 3)
    counter.add_metric(["b"], 1e21)
    gauge = GaugeMetricFamily("age", "Age.", labels=["c"], unit="seconds")
    gauge.add_metric(["x"], float("nan"))
    gauge.add_metric(["y"], float("-inf"))
    histogram = HistogramMetricFamily("took", "Took.", labels=["c"])
    histogram.add_metric(["x"], [("1.0", 2), ("+Inf", 5)], 7.5)
    info = InfoMetricFamily("build", "Build.", value={"version": "1.2"})
    states = StateSetMetricFamily("state", "State.", value={"up": True, "down": False})
    summary = SummaryMetricFamily("lat", "Latency.", count_value=3, sum_value=1.5)
    unknown = Metric("raw", "Raw.", "unknown")
    unknown.add_sample("raw", {}, 2.0)
    stamped = GaugeMetricFamily("stamped", "Stamped.", labels=["c"])
    stamped.add_metric(["x"], 1, timestamp=1700000000.5)
    created = CounterMetricFamily("made", "Made.", labels=["c"], created=1700000000.0)
    created.add_metric(["x"], 2, created=1700000000.0)
    exemplified = Metric("ex", "Ex.", "counter")
    exemplified.add_sample("ex_total", {}, 1.0, exemplar=Exemplar({"trace": "t"}, 1.0))
    gauge_histogram = GaugeHistogramMetricFamily(
        "queue", "Queue.", buckets=[("1.0", 4), ("+Inf", 5)], gsum_value=3.0
    )
    empty = GaugeMetricFamily("none", "Nothing yet.", labels=["c"])
    families = [
        counter, gauge, histogram, info, states, summary, unknown, stamped, created,
        exemplified, gauge_histogram, empty,
    ]  # fmt: skip

    class Families:
        def __init__(self, of: list[Metric]) -> None:
            self.of = of

        def collect(self) -> list[Metric]:
            return self.of

    for family in families:
        text, om = FamilyCache().render([family])
        assert text == generate_latest(Families([family])), family.name
        assert om == om_exposition.generate_latest(Families([family])), family.name
    text, om = FamilyCache().render(families)
    assert text == generate_latest(Families(families))
    assert om == om_exposition.generate_latest(Families(families))


def test_crcs_combine_with_or_without_isal(monkeypatch: pytest.MonkeyPatch) -> None:
    import zlib

    from scrapejobs_exporter import exposition as module

    a, b = b"brightdata_job_status{...} 1\n" * 37, b"\xc3\xa9 and more\n" * 11
    whole = zlib.crc32(a + b)
    assert module._crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == whole
    monkeypatch.setattr(module, "isal_zlib", None)
    assert module._crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == whole
    assert module._crc32_combine(0, zlib.crc32(b), len(b)) == zlib.crc32(b)
