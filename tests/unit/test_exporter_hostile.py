"""Issue 17: a provider answering with items 1-8 mixed must not cost the well-behaved targets
their cycle, their render, their landing row, or leak the credential.

A scripted transport (no sockets) plays a hostile Bright Data and Aitronos next to good targets.
"""

from __future__ import annotations

import gzip
import logging

import httpx
import pytest
from aiohttp.test_utils import TestClient, TestServer

from scrapejobs_exporter.config import parse_config
from scrapejobs_exporter.exporter import Exporter
from scrapejobs_exporter.server import build_app
from tests.helpers import reply, samples, value

TOKEN = "brd_tok_0123456789abcdefghijklmnopqrstuvwxyzAB"
KEY = "ait_key_9876543210zyxwvutsrqponmlkjihgfedcbaZY"
CONFIG = f"""
poll_interval: 30s
brightdata:
  api_token: {TOKEN}
  base_url: https://bd.test
  jobs: [j_good, j_surrogate, j_other, j_echo, j_markup, j_bomb]
  collectors: [c_list]
  max_requests_per_minute: 100000
aitronos:
  api_key: {KEY}
  base_url: https://ait.test
  jobs: [job_good, job_negative]
  max_requests_per_minute: 100000
"""


BOMB = gzip.compress(b"0" * (64 << 20), 1)


def hostile(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    running = {"status": "running", "collector": "c_list", "pages": 10, "pages_left": 5}
    if path == "/dca/log/j_good":
        return reply(200, {"id": "j_good", **running})
    if path == "/dca/log/j_surrogate":  # 1
        return reply(200, {"id": "j_\ud800", "status": "done", "template": "\ud800",
                           "collector": "c_\ud800"})  # fmt: skip
    if path == "/dca/log/j_other":  # 5: the body names a job we also poll
        return reply(200, {"id": "j_good", **running, "pages_left": 1})
    if path == "/dca/log/j_echo":  # 8
        echo = "x" * 100 + " bad token " + request.headers["authorization"]
        return reply(401, echo.encode())
    if path == "/dca/log/j_markup":  # 3
        return reply(403, b"<" * 200_000)
    if path == "/dca/log/j_bomb":  # 4
        return reply(200, BOMB, {"content-encoding": "gzip"})
    if path == "/dca/collector/jobs":  # 2: a huge id and a surrogate id in the list
        rows = [{"id": "j_" + "a" * 65_536, "status": "running"},
                {"id": "j_\ud800", "status": "running"}, {"id": "j_listed", "status": "running"},
                {"id": "j_listed", "status": "done"}]  # fmt: skip
        return reply(200, {"data": rows})
    if path == "/dca/log/j_listed":
        return reply(200, {"id": "j_listed", "status": "running"})
    if path == "/v1/scrape/jobs/job_good/progress":
        return reply(200, {"success": True, "data": {"job_id": "job_good", "status": "processing",
                                                     "progress_percentage": 50}})  # fmt: skip
    if path == "/v1/scrape/jobs/job_negative/progress":  # 6
        return reply(200, {"job_id": "job_negative", "status": "completed",
                           "total_properties_found": -40, "processing_time": -3})  # fmt: skip
    return reply(404, {"error": "no"})


async def test_hostile_replies_leave_good_targets_current(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    exporter = Exporter(parse_config(CONFIG, env={}), transport=httpx.MockTransport(hostile))
    client = TestClient(TestServer(build_app(exporter), host="127.0.0.1", port=0))
    await client.start_server()
    try:
        for _ in range(3):  # counting starts with the second cycle (item 6 needs it)
            await exporter.poller.run_cycle()
        responses = [
            await client.get("/metrics", headers={"Accept-Encoding": "identity"}),
            await client.get("/"),
            await client.get("/api/targets"),
        ]
        assert [r.status for r in responses] == [200, 200, 200]  # 1: `/` answered 500
        page, landing, api = [await r.text() for r in responses]
        readyz = await client.get("/readyz")
    finally:
        await client.close()
        await exporter.stop()

    assert readyz.status == 200
    parsed = samples(page)
    # Good targets are current; the hostile ones are labelled by the id we asked for.
    good = (("collector", "c_list"), ("job_id", "j_good"))
    assert parsed[("brightdata_job_pages_left", good)] == 5
    other = (("collector", "c_list"), ("job_id", "j_other"))
    assert parsed[("brightdata_job_pages_left", other)] == 1  # 5: its own series, no collision
    assert parsed[("aitronos_job_progress_ratio", (("job_id", "job_good"),))] == 0.5
    assert ("brightdata_job_info", (("collector", ""), ("job_id", "j_surrogate"),
                                    ("template", "\ufffd"))) in parsed  # fmt: skip
    job_ids = {dict(labels).get("job_id") for _, labels in parsed}
    assert "j_listed" in job_ids and not any(i and len(i) > 200 for i in job_ids)  # 2
    # 6: job_negative finished before we watched it (not counted, see the next test); its
    # negative count is still a gauge value, and no cycle or render was skipped.
    assert ("aitronos_job_items_found", (("job_id", "job_negative"),)) in parsed
    refused = {
        dict(labels)["reason"]: value
        for (name, labels), value in parsed.items()
        if name == "scrapejobs_exporter_refused_ids_total"
        and dict(labels)["provider"] == "brightdata"
    }
    assert refused["too_long"] >= 1 and refused["bad_shape"] >= 1 and refused["mismatch"] >= 1
    assert refused["duplicate"] >= 1
    errors = {
        dict(labels)["reason"]
        for (name, labels), value in parsed.items()
        if name == "scrapejobs_exporter_api_errors_total" and value
    }
    assert {"too_large", "http_4xx"} <= errors  # 4 and 3, 8
    # 8: no 20-character slice of a credential anywhere we show text.
    shown = page + landing + api + "\n".join(r.getMessage() for r in caplog.records)
    for secret in (TOKEN, KEY):
        assert not any(secret[i : i + 20] in shown for i in range(len(secret) - 19))
    assert not any(r.exc_info for r in caplog.records), "a traceback was logged"


async def test_item6_a_negative_count_is_ignored_and_counted_once_finished() -> None:
    polls = 0

    def running_then_hostile(request: httpx.Request) -> httpx.Response:
        # Seen running first (so watched), then finished with negative numbers: counted once.
        nonlocal polls
        if request.url.path == "/v1/scrape/jobs/job_negative/progress":
            polls += 1
            if polls == 1:
                return reply(200, {"job_id": "job_negative", "status": "processing"})
        return hostile(request)

    transport = httpx.MockTransport(running_then_hostile)
    exporter = Exporter(parse_config(CONFIG, env={}), transport=transport)
    try:
        await exporter.poller.run_cycle()
        await exporter.poller.run_cycle()
        assert polls == 2
    finally:
        await exporter.stop()
    ignored = exporter.aggregates.ignored
    assert value(ignored, "aitronos_items_found_total", "negative") == 1
    assert value(ignored, "aitronos_finished_job_processing_seconds", "negative") == 1
    assert value(exporter.aggregates.aitronos_finished, "completed") == 1


def test_the_checked_aggregates_are_catalogue_names() -> None:
    from scrapejobs_exporter.aggregates import CHECKED
    from scrapejobs_exporter.metrics import CATALOGUE

    assert set(CHECKED) <= set(CATALOGUE)
