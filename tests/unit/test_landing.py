"""The landing page and /api/targets, served by aiohttp on 127.0.0.1 from a filled store."""

from __future__ import annotations

import base64
import hashlib
import re

from aiohttp.test_utils import TestClient, TestServer

from scrapejobs_exporter.config import parse_config
from scrapejobs_exporter.exporter import Exporter
from scrapejobs_exporter.landing import MAX_PAGE_ROWS, config_summary, sorted_rows, target_row
from scrapejobs_exporter.providers.brightdata import parse_ai_flow_progress, parse_job_log
from scrapejobs_exporter.providers.http import ApiError
from scrapejobs_exporter.server import build_app
from scrapejobs_exporter.store import Store
from tests.conftest import seed

NOW = 1_700_000_000.0
TOKEN = "bd-secret-token-123"
KEY = "ait-secret-key-456"
CONFIG = f"""
brightdata:
  api_token: {TOKEN}
  base_url: https://user:hunter2@bd.test
  jobs: [j_ma13y9ay1piehrso8r]
aitronos:
  api_key: {KEY}
  base_url: https://ait.test
"""
HOSTILE_ID = '"><script>alert(1)</script>'
HOSTILE_ERROR = "<img src=x onerror=alert(2)> & 'quote'"


def _exporter() -> Exporter:
    return Exporter(parse_config(CONFIG, env={}), clock=lambda: NOW)


def _running_job(job_id: str, pages_left: int) -> dict[str, object]:
    body = dict(seed("job_log_done"))
    body.update(id=job_id, status="running", pages=40, pages_left=pages_left)
    return body


def _fill(exporter: Exporter) -> None:
    store = exporter.store
    done = store.get(("brightdata", "job", "j_ma13y9ay1piehrso8r"))
    assert done is not None
    store.observe(done, parse_job_log(seed("job_log_done"), "j"), NOW, complete=True)
    running = store.add("brightdata", "job", "j_running")
    model = parse_job_log(_running_job("j_running", 30), "j_running")
    store.observe(running, model, NOW, complete=True)
    hostile = store.add("brightdata", "job", HOSTILE_ID)
    Store.record_failure(hostile, ApiError("http_4xx", HOSTILE_ERROR, status=404), NOW - 5)
    flow = store.add("brightdata", "ai_flow", "c_m9im5n7v82p2y35la")
    body = seed("ai_flow_progress_done")
    store.observe(flow, parse_ai_flow_progress(body, "c_m9im5n7v82p2y35la"), NOW, complete=True)


async def _client(exporter: Exporter) -> TestClient:  # type: ignore[type-arg]
    client = TestClient(TestServer(build_app(exporter), host="127.0.0.1", port=0))
    await client.start_server()
    return client


async def test_page_escapes_hostile_ids_and_errors_and_shows_no_secrets() -> None:
    exporter = _exporter()
    _fill(exporter)
    client = await _client(exporter)
    try:
        page = await client.get("/")
        text = await page.text()
        api = await client.get("/api/targets")
        raw_json = await api.text()
    finally:
        await client.close()
        await exporter.stop()
    assert page.status == 200 and page.content_type == "text/html"
    assert "<script>alert(1)</script>" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=alert(2)&gt; &amp; &#x27;quote&#x27;" in text
    assert text.count("<script>") == 1  # only the page's own
    for secret in (TOKEN, KEY, "hunter2", "@example.com"):
        assert secret not in text and secret not in raw_json
    assert "https://bd.test" in text


async def test_csp_allows_only_the_pages_own_script() -> None:
    exporter = _exporter()
    client = await _client(exporter)
    try:
        page = await client.get("/")
        text = await page.text()
    finally:
        await client.close()
        await exporter.stop()
    script = re.search(r"<script>(.*)</script>", text, re.S)
    assert script is not None
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    csp = page.headers["Content-Security-Policy"]
    assert f"script-src 'sha256-{digest}'" in csp and "default-src 'none'" in csp


async def test_api_targets_rows_sorted_failing_then_running() -> None:
    exporter = _exporter()
    _fill(exporter)
    client = await _client(exporter)
    try:
        data = await (await client.get("/api/targets")).json()
        filtered = await (await client.get("/api/targets?q=RUNNING&limit=5")).json()
        bad = await client.get("/api/targets?limit=-1")
    finally:
        await client.close()
        await exporter.stop()
    ids = [row["id"] for row in data["targets"]]
    assert ids == [HOSTILE_ID, "j_running", "c_m9im5n7v82p2y35la", "j_ma13y9ay1piehrso8r"]
    assert data["counts"] == {"total": 4, "matched": 4, "active": 1, "failing": 1,
                              "stalled": 0, "failed": 0}  # fmt: skip
    hostile, running, flow, done = data["targets"]
    assert hostile["last_error"] == {"status": 404, "reason": "http_4xx",
                                     "message": f"HTTP 404: {HOSTILE_ERROR}"}  # fmt: skip
    assert hostile["status"] is None and hostile["up"] is False
    assert running["progress"] == {"done": 10, "total": 40, "unit": "pages", "ratio": 0.25}
    assert flow["progress"] == {"done": 8, "total": None, "unit": "steps", "ratio": 1.0}
    assert done["duration_seconds"] == 71.5 and done["success_ratio"] is not None
    assert done["collector"] == "c_m9im5n7v82p2y35la"
    assert [r["id"] for r in filtered["targets"]] == ["j_running"]
    assert filtered["counts"]["matched"] == 1 and filtered["counts"]["total"] == 4
    assert bad.status == 400


async def test_thousands_of_targets_cap_the_page_not_the_json() -> None:
    exporter = _exporter()
    for i in range(MAX_PAGE_ROWS + 700):
        target = exporter.store.add("aitronos", "job", f"job_{i:05d}")
        Store.record_failure(target, ApiError("timeout", "no answer"), NOW)
    client = await _client(exporter)
    try:
        text = await (await client.get("/")).text()
        data = await (await client.get("/api/targets")).json()
    finally:
        await client.close()
        await exporter.stop()
    assert text.count("<tr data-key=") == MAX_PAGE_ROWS
    assert f"Showing the first {MAX_PAGE_ROWS} of {MAX_PAGE_ROWS + 701} targets" in text
    assert len(data["targets"]) == MAX_PAGE_ROWS + 701


def test_empty_store_renders_a_note_row() -> None:
    store = Store()
    assert sorted_rows(store, NOW) == []
    target = store.add("brightdata", "snapshot", "s_1")
    row = target_row(target, NOW)
    assert row["status"] is None and row["progress"] is None and row["last_error"] is None


def test_config_summary_has_settings_not_credentials() -> None:
    summary = config_summary(parse_config(CONFIG, env={}))
    assert summary["brightdata"]["base_url"] == "https://bd.test"
    assert summary["brightdata"]["jobs"] == 1
    assert TOKEN not in str(summary) and KEY not in str(summary)


# --- failure reasons, the filter in the URL, Grafana links ------------------------------------


def _failures(exporter: Exporter) -> None:
    from scrapejobs_exporter.providers.aitronos import parse_job_progress
    from scrapejobs_exporter.providers.brightdata import parse_hp_errors

    store = exporter.store
    failed = store.add("brightdata", "job", "j_failed")
    body = {**seed("job_log_done"), "Id": "j_failed", "Status": "failed", "Fails": 2}
    store.observe(failed, parse_job_log(body, "j_failed"), NOW, complete=True)
    store.observe_report(failed, parse_hp_errors(seed("hp_errors"), "j_failed").groups())
    ait = store.add("aitronos", "job", "job_blocked")
    progress = {"status": "failed", "error_message": HOSTILE_ERROR + " blocked by captcha"}
    store.observe(ait, parse_job_progress(progress, "job_blocked"), NOW, complete=True)


def test_failure_reasons_in_rows() -> None:
    from scrapejobs_exporter.landing import failure_text

    exporter = _exporter()
    _fill(exporter)
    _failures(exporter)
    rows = {r["id"]: r for r in sorted_rows(exporter.store, NOW)}
    studio = rows["j_failed"]["failure"]
    assert studio == {"groups": {"page_gone": 1, "other": 1}, "reason": None, "message": None}
    assert failure_text(studio) == "other 1 · page_gone 1"
    ait = rows["job_blocked"]["failure"]
    assert ait["reason"] == "blocked" and ait["message"].startswith(HOSTILE_ERROR)
    assert failure_text(ait) == f"blocked: {HOSTILE_ERROR} blocked by captcha"
    assert rows["j_running"]["failure"] is None
    assert rows["j_ma13y9ay1piehrso8r"]["failure"] is None  # done, no failed inputs read


async def test_page_filter_from_the_url_and_grafana_links() -> None:
    exporter = _exporter()
    _fill(exporter)
    _failures(exporter)
    client = TestClient(
        TestServer(build_app(exporter, grafana_url="https://g.example/grafana"), host="127.0.0.1",
                   port=0)
    )  # fmt: skip
    await client.start_server()
    try:
        page = await (await client.get("/", params={"q": "captcha"})).text()
        everything = await (await client.get("/")).text()
        api = await (await client.get("/api/targets", params={"q": "page_gone"})).json()
    finally:
        await client.close()
    await exporter.stop()
    keys = re.findall(r'<tr data-key="([^"]+)"', page)
    assert keys == ["aitronos/job/job_blocked"]  # the filter searches failure reasons too
    assert 'value="captcha"' in page
    assert HOSTILE_ERROR not in page and "&lt;img src=x" in page  # escaped
    assert [t["id"] for t in api["targets"]] == ["j_failed"]
    assert (
        'href="https://g.example/grafana/d/scrapejobs-job-detail/scrapejobs-job-detail'
        '?var-collector=c_m9im5n7v82p2y35la&amp;var-job_id=j_running"'
    ) in everything
    assert (
        'href="https://g.example/grafana/d/scrapejobs-overview/scrapejobs-overview'
        '?var-collector=c_m9im5n7v82p2y35la"'
    ) in everything  # the AI flow
    assert 'data-grafana="https://g.example/grafana"' in everything
    assert '<button type="button" data-sort="failure">Failure reason</button>' in everything


async def test_no_links_without_a_grafana_url() -> None:
    exporter = _exporter()
    _fill(exporter)
    client = await _client(exporter)
    try:
        page = await (await client.get("/")).text()
    finally:
        await client.close()
    await exporter.stop()
    assert '<a href="http' not in page and 'data-grafana=""' in page
