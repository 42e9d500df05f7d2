"""The landing page in real headless Chromium, served against the simulator.

The simulator runs on a manual clock and the exporter polls once, so the page and `/_sim/state`
describe the same instant. Chromium gets no network but loopback, and nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from scrapejobs_exporter.demo import demo_config
from scrapejobs_exporter.exporter import Exporter
from scrapejobs_exporter.providers.aitronos import AitronosJob
from scrapejobs_exporter.providers.brightdata import StudioJob
from scrapejobs_exporter.providers.http import ApiError
from scrapejobs_exporter.server import build_app
from scrapejobs_exporter.simulator import SimulatorConfig, SimulatorServer
from scrapejobs_exporter.store import Store

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"
HOSTILE_ID = "j_<img src=x onerror=\"document.title='pwned'\">"
HOSTILE_ERROR = "<script>document.title='pwned'</script> & \"quotes\""
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--virtual-time-budget=5000",
)


class Rows(HTMLParser):
    """Each `<tr data-key>` of the targets table: its attributes, cell texts, progress value."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, Any]] = {}
        self.table: dict[str, str | None] = {}
        self.title = ""
        self._row: dict[str, Any] | None = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table" and a.get("id") == "targets":
            self.table = a
        elif tag == "tr" and a.get("data-key"):
            self._row = {"status": a.get("data-status"), "text": "", "progress": None}
            self.rows[str(a["data-key"])] = self._row
        elif tag == "div" and a.get("role") == "progressbar" and self._row is not None:
            self._row["progress"] = a.get("aria-valuenow")
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._row is not None:
            self._row["text"] += data + "|"
        if self._in_title:
            self.title += data


def _require_chromium() -> str:
    """Like `require_binary`, with the right package named: skip locally, fail under CI."""
    path = shutil.which("chromium")
    if path is None:
        message = "chromium is not installed (apt-get install chromium provides it)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run this test: {message}")
        pytest.skip(message)
    return path


async def _chromium(*args: str) -> str:
    chromium = _require_chromium()
    with tempfile.TemporaryDirectory() as profile:
        proc = await asyncio.create_subprocess_exec(
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "HOME": profile},
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


def _expected(state: dict[str, Any]) -> dict[str, tuple[str | None, float | None]]:
    """Ground truth per row key: status and progress percentage (None: no bar value)."""
    bd, ait = state["brightdata"], state["aitronos"]
    out: dict[str, tuple[str | None, float | None]] = {}
    for job in bd["jobs"]:
        done = job["pages"] - (0 if job["status"] == "done" else job["pages_left"])
        ratio = 100.0 * done / job["pages"] if job["pages"] else None
        out[f"brightdata/job/{job['id']}"] = (job["status"], ratio)
    for snap in bd["snapshots"]:
        ratio = 100.0 if snap["status"] == "ready" else None
        out[f"brightdata/snapshot/{snap['snapshot_id']}"] = (snap["status"], ratio)
    for flow in sorted(bd["ai_flows"], key=lambda f: f["created"]):  # the latest one wins
        ratio = 100.0 if flow["status"] == "done" else None
        out[f"brightdata/ai_flow/{flow['collector']}"] = (flow["status"], ratio)
    for job in ait["jobs"]:
        out[f"aitronos/job/{job['job_id']}"] = (job["status"], job.get("progress_percentage"))
    return out


async def _serve(exporter: Exporter, grafana_url: str | None = None) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(build_app(exporter, grafana_url=grafana_url), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/"


def _add_hostile_target(exporter: Exporter) -> None:
    target = exporter.store.add("brightdata", "job", HOSTILE_ID)
    error = ApiError("http_4xx", HOSTILE_ERROR, status=404)
    Store.record_failure(target, error, exporter.poller.clock())


async def test_landing_page_in_chromium() -> None:
    _require_chromium()  # before starting anything
    # Small enough that every tracked target fits the 500 rows the page renders.
    sim_config = SimulatorConfig(manual_clock=True, scale=150, seed=3)
    simulator = SimulatorServer(sim_config)
    await simulator.start()
    config = demo_config(simulator.url, simulator.state(), sim_config)
    exporter = Exporter(config)
    runner = None
    try:
        result = await exporter.poller.run_cycle()
        assert result.failed == 0
        _add_hostile_target(exporter)
        runner, url = await _serve(exporter)
        dom = await _chromium("--dump-dom", url)
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "landing.png"
        shot.unlink(missing_ok=True)
        await _chromium(f"--screenshot={shot}", "--window-size=1400,900", url)
        assert shot.stat().st_size > 10_000
        state = simulator.state()
    finally:
        if runner is not None:
            await runner.cleanup()
        await exporter.stop()
        await simulator.stop()

    page = Rows()
    page.feed(dom)
    assert page.table.get("data-source") == "api", "the script did not refresh the table"
    assert page.title == "scrapejobs-exporter", "a hostile id or error ran as markup"
    expected = _expected(state)
    tracked = {"/".join(t.key) for t in exporter.store}
    assert set(page.rows) == tracked
    # Finished jobs known only from a list row carry no pages_left (Aitronos: no percentage):
    # no bar, unless a Studio job is done.
    row_only = {
        "/".join(t.key) for t in exporter.store
        if (isinstance(t.model, StudioJob) and t.model.pages_left is None)
        or (isinstance(t.model, AitronosJob) and t.model.progress_percentage is None)
    }  # fmt: skip
    for key in tracked - {f"brightdata/job/{HOSTILE_ID}"}:
        status, percent = expected[key]
        if key in row_only and status != "done":
            percent = None
        row = page.rows[key]
        assert row["status"] == status, key
        if percent is None:
            assert row["progress"] is None, key
        else:
            assert row["progress"] is not None, key
            assert float(row["progress"]) == pytest.approx(percent, abs=0.06), key
    hostile = page.rows[f"brightdata/job/{HOSTILE_ID}"]
    assert HOSTILE_ID in hostile["text"] and HOSTILE_ERROR in hostile["text"]
    statuses = [row["status"] for row in page.rows.values()]
    assert "running" in statuses and "done" in statuses
    # Failing, then active targets first.
    first_active = statuses.index("running")
    assert all(s in {"running", "building", "processing", "pending", "starting", "queued", ""}
               for s in statuses[:first_active])  # fmt: skip


HOSTILE_MESSAGE = "<img src=x onerror=\"document.title='pwned'\"> blocked by anti-bot"


async def test_landing_filter_sort_failure_reasons_and_grafana_links() -> None:
    """`?q=` filters (and stays in the box), `?sort=&order=` orders the rows, failed rows say
    why (escaped), and ids link to Grafana when --web.grafana-url is given."""
    from dataclasses import replace

    from scrapejobs_exporter.landing import failure_text, targets_payload
    from scrapejobs_exporter.providers.brightdata import parse_hp_errors
    from tests.conftest import seed

    _require_chromium()
    sim_config = SimulatorConfig(manual_clock=True, scale=150, seed=3)
    simulator = SimulatorServer(sim_config)
    await simulator.start()
    # The simulator's (manual, standing) clock: a running job's duration is the same when
    # Chromium renders the page and when the expected rows are computed after it.
    exporter = Exporter(
        demo_config(simulator.url, simulator.state(), sim_config),
        clock=lambda: simulator.world.now_ms / 1000,
    )
    runner = None
    try:
        await exporter.poller.run_cycle()
        now = exporter.poller.clock()
        failed = exporter.store.add("aitronos", "job", "job_hostile")
        model = AitronosJob(
            "job_hostile", status="failed", raw_status="failed", error_message=HOSTILE_MESSAGE
        )
        Store.record_success(failed, model, now)
        studio = next(t for t in exporter.store if isinstance(t.model, StudioJob))
        studio.model = replace(studio.model, status="failed", fails=2)
        exporter.store.observe_report(studio, parse_hp_errors(seed("hp_errors"), "j").groups())
        runner, url = await _serve(exporter, grafana_url="https://grafana.example.com/")
        everything = await _chromium("--dump-dom", url + "?sort=duration_seconds&order=desc")
        filtered = await _chromium("--dump-dom", url + "?q=failed")
        expected_all = targets_payload(exporter, limit=500)["targets"]
        expected_failed = targets_payload(exporter, "failed", limit=500)["targets"]
    finally:
        if runner is not None:
            await runner.cleanup()
        await exporter.stop()
        await simulator.stop()

    page = Rows()
    page.feed(everything)
    assert page.table.get("data-source") == "api" and page.title == "scrapejobs-exporter"
    assert 'aria-sort="descending"><button type="button" data-sort="duration_seconds"' in everything
    # Longest first, rows without a duration last, ties in the server's order.
    key = lambda r: f"{r['provider']}/{r['kind']}/{r['id']}"  # noqa: E731
    with_duration = [r for r in expected_all if r["duration_seconds"] is not None]
    order = sorted(with_duration, key=lambda r: -r["duration_seconds"])
    order += [r for r in expected_all if r["duration_seconds"] is None]
    durations = {key(r): r["duration_seconds"] for r in expected_all}
    assert [(k, durations[k]) for k in page.rows] == [(key(r), durations[key(r)]) for r in order]
    hostile = page.rows["aitronos/job/job_hostile"]
    assert f"blocked: {HOSTILE_MESSAGE}" in hostile["text"]  # as text, never as markup
    studio_row = page.rows[f"brightdata/job/{studio.target_id}"]
    assert "other 1 · page_gone 1" in studio_row["text"]  # by count, then name
    assert failure_text(expected_all[0]["failure"]) in page.rows[key(expected_all[0])]["text"]
    detail = (
        f'href="https://grafana.example.com/d/scrapejobs-job-detail/scrapejobs-job-detail'
        f'?var-collector={studio.model.collector}&amp;var-job_id={studio.target_id}"'
    )
    assert detail in everything
    assert (
        'href="https://grafana.example.com/d/scrapejobs-overview/scrapejobs-overview' in everything
    )

    only_failed = Rows()
    only_failed.feed(filtered)
    assert 'id="filter" type="search"' in filtered and 'value="failed"' in filtered
    assert list(only_failed.rows) == [key(r) for r in expected_failed]
    assert "aitronos/job/job_hostile" in only_failed.rows
    assert 0 < len(only_failed.rows) < len(page.rows)
