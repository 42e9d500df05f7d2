"""Parsers (pure) and the thin clients for every polled endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx

from scrapejobs_exporter.providers import aitronos, brightdata
from scrapejobs_exporter.providers.aitronos import AitronosClient, auth_headers, parse_job_progress
from scrapejobs_exporter.providers.brightdata import (
    BrightDataClient,
    Parsed,
    parse_ai_flow_progress,
    parse_collector_jobs,
    parse_job_log,
    parse_snapshot_log,
    parse_snapshot_progress,
    parse_snapshots_list,
)
from scrapejobs_exporter.providers.fields import ParseError, parse_timestamp
from scrapejobs_exporter.providers.http import ApiError, HttpClient
from scrapejobs_exporter.resilience import Policy, ProviderGate
from scrapejobs_exporter.telemetry import Telemetry
from tests.conftest import seed
from tests.helpers import histogram_counts, value, values

BD = "https://api.brightdata.test"
AIT = "https://api.aitronos.test"


# --- seed bodies -----------------------------------------------------------------------------


def test_job_log_seed_capitalised_keys() -> None:
    job = parse_job_log(seed("job_log_done"), "j_ma13y9ay1piehrso8r")
    assert job.job_id == "j_ma13y9ay1piehrso8r"
    assert job.collector == "c_m9im5n7v82p2y35la"
    assert job.status == "done" and job.terminal
    assert job.template == "t_m9jty150kxgwtzcgi.3"
    assert (job.inputs, job.dup_inputs, job.lines, job.fails) == (1, 0, 60, 0)
    assert (job.pages, job.pages_left, job.success, job.navigations) == (1, 0, 1, 2)
    assert job.success_rate == 1
    assert job.job_time == pytest.approx(71.459)
    assert job.queue_time == pytest.approx(0.645)
    assert job.created == pytest.approx(1745846536.857)
    assert job.started == pytest.approx(1745846537.502)
    assert job.finished == pytest.approx(1745846608.961)
    # The documented arithmetic: job_time = finished - started, queue_time = started - created.
    assert job.finished - job.started == pytest.approx(job.job_time)
    assert job.started - job.created == pytest.approx(job.queue_time)
    assert not hasattr(job, "trigger")


def test_job_log_seed_without_times_leaves_them_missing() -> None:
    job = parse_job_log(seed("job_log_partial"), "j_ma13y9ay1piehrso8r")
    assert job.status == "done"
    assert job.finished is None and job.job_time is None and job.queue_time is None
    assert job.success_rate is None


def test_snapshot_seed() -> None:
    snap = parse_snapshot_progress(seed("snapshot_progress_running"), "s_m4x7enmven8djfqak")
    assert (snap.snapshot_id, snap.dataset_id, snap.status) == (
        "s_m4x7enmven8djfqak",
        "ds_123456789",
        "running",
    )
    assert not snap.terminal


def test_ai_flow_seed_merges_misspelt_step() -> None:
    flow = parse_ai_flow_progress(seed("ai_flow_progress_done"), "c_m9im5n7v82p2y35la")
    assert flow.status == "done" and flow.terminal
    assert flow.step == "collector_maintainer"
    assert flow.raw_step == "collector_mainatiner"
    assert flow.completed_steps == 8


def test_aitronos_seed_unwraps_envelope() -> None:
    job = parse_job_progress(seed("aitronos_progress_timeout"), "job_abc123")
    assert job.status == "completed" and job.terminal
    assert job.completion_reason == "timeout"
    assert (job.current_page, job.pages_scraped, job.items_found) == (1, 1, 13)
    assert job.progress_percentage == 100.0
    assert job.pagination_complete is True
    assert job.processing_time == pytest.approx(60.03)
    assert job.running_time is None
    assert job.created == pytest.approx(1768202360.123456)
    assert job.completed == pytest.approx(1768202426.789012)


# Each model with the statuses its provider knows and the ones it never moves on from, spelt
# out here rather than read from the modules: `terminal` is declared once for every model.
MODEL_STATUSES: list[tuple[Callable[[Any], Parsed], tuple[str, ...], set[str]]] = [
    (lambda b: parse_job_log(b, "j_1"), brightdata.JOB_STATUSES, {"done", "failed", "cancelled"}),
    (
        lambda b: parse_snapshot_progress(b, "s_1"),
        brightdata.SNAPSHOT_STATUSES,
        {"ready", "failed"},
    ),
    (lambda b: parse_snapshot_log(b, "s_1"), brightdata.SNAPSHOT_STATUSES, {"ready", "failed"}),
    (lambda b: parse_ai_flow_progress(b, "c_1"), brightdata.AI_FLOW_STATUSES, {"done", "failed"}),
    (
        lambda b: parse_job_progress(b, "job_1"),
        aitronos.JOB_STATUSES,
        {"completed", "failed", "cancelled"},
    ),
]


@pytest.mark.parametrize(("parse", "statuses", "final"), MODEL_STATUSES)
def test_every_model_is_terminal_exactly_in_its_providers_final_statuses(
    parse: Callable[[Any], Parsed], statuses: tuple[str, ...], final: set[str]
) -> None:
    assert final < set(statuses)
    for status in statuses:
        model = parse({"status": status})
        assert model.status == status and model.terminal is (status in final)


def test_an_ai_flow_that_never_ran_is_not_terminal() -> None:
    flow = parse_ai_flow_progress({}, "c_1")
    assert flow.status is None and not flow.terminal


# --- tolerance -------------------------------------------------------------------------------


def test_lower_and_capitalised_keys_parse_alike() -> None:
    lower = {k.lower(): v for k, v in seed("job_log_done").items()}
    assert parse_job_log(lower, "x") == parse_job_log(seed("job_log_done"), "x")


def test_missing_fields_stay_missing_never_zero() -> None:
    job = parse_job_log({"id": "j_1"}, "j_1")
    assert job.status == "unknown" and job.raw_status is None
    assert job.lines is None and job.pages_left is None and job.job_time is None


def test_nulls_are_missing() -> None:
    job = parse_job_log({"status": "running", "lines": None, "finished": None}, "j_1")
    assert job.lines is None and job.finished is None and job.status == "running"


def test_unknown_status_kept_as_unknown_with_raw_value() -> None:
    job = parse_job_log({"status": "teleporting"}, "j_1")
    assert (job.status, job.raw_status) == ("unknown", "teleporting")


def test_canceled_spelling_is_cancelled() -> None:
    assert parse_job_log({"status": "canceled"}, "j").status == "cancelled"
    assert parse_job_progress({"status": "canceled"}, "a").status == "cancelled"


def test_wrong_types_are_dropped_and_noted() -> None:
    job = parse_job_log({"status": 5, "lines": "12", "fails": [1], "pages": 2.5}, "j")
    assert job.status == "unknown"
    assert job.lines == 12  # a numeric string is still the number
    assert job.fails is None and job.pages is None
    assert set(job.invalid) == {"status", "fails", "pages"}


@pytest.mark.parametrize("body", [[], "text", 3, None, True])
def test_non_object_bodies_are_parse_errors(body: object) -> None:
    with pytest.raises(ParseError):
        parse_job_log(body, "j")
    with pytest.raises(ParseError):
        parse_job_progress(body, "a")


def test_aitronos_flat_body_is_accepted() -> None:
    flat = seed("aitronos_progress_timeout")["data"]
    assert parse_job_progress(flat, "x") == parse_job_progress(
        seed("aitronos_progress_timeout"), "x"
    )


def test_aitronos_failure_envelope_is_a_parse_error() -> None:
    body = {"success": False, "error": {"code": "INVALID_API_KEY", "message": "bad key"}}
    with pytest.raises(ParseError, match="bad key"):
        parse_job_progress(body, "a")


def test_aitronos_running_has_no_reason() -> None:
    job = parse_job_progress(
        {"success": True, "data": {"status": "processing", "completion_reason": None,
                                   "running_time": 42.8, "progress_percentage": 37.5}},
        "a",
    )  # fmt: skip
    assert job.status == "processing" and job.completion_reason is None
    assert job.running_time == 42.8 and job.progress_percentage == 37.5


def test_ai_flow_empty_object_means_no_job() -> None:
    flow = parse_ai_flow_progress({}, "c_1")
    assert flow.status is None and flow.step is None and flow.completed_steps is None


def test_ai_flow_step_name_as_status_means_running() -> None:
    flow = parse_ai_flow_progress({"status": "planner", "completed_steps": []}, "c_1")
    assert (flow.status, flow.step, flow.completed_steps) == ("running", "planner", 0)


def test_ai_flow_error_and_pending_answer() -> None:
    assert parse_ai_flow_progress({"status": "error"}, "c").status == "failed"
    gate = parse_ai_flow_progress({"status": "pending_answer", "step": "user_approval"}, "c")
    assert (gate.status, gate.step) == ("pending_answer", "user_approval")
    odd = parse_ai_flow_progress({"status": "running", "step": "new_fancy_step"}, "c")
    assert odd.step == "unknown" and odd.raw_step == "new_fancy_step"


def test_job_row_times_are_exact_differences() -> None:
    """A list row has no job_time/queue_time: they are the timestamps' differences, without
    the float subtraction's noise (60.91799998283386 would be a wrong value on the page)."""
    row = {
        "id": "j_1",
        "status": "done",
        "queued": "2026-11-22T10:00:00.001Z",
        "started": "2026-11-22T10:00:00.646Z",
        "finished": "2026-11-22T10:01:01.564Z",
    }
    job = parse_collector_jobs({"data": [row]}, "c_1").items[0]
    assert (job.queue_time, job.job_time) == (0.645, 60.918)
    assert repr(job.job_time) == "60.918"


def test_snapshot_rows_keep_their_creation_time() -> None:
    """The documented example of BD-7: `created` says when a snapshot was requested (the
    state file uses it to tell a snapshot that appeared while the exporter was down)."""
    body = [
        {"id": "s_mt8r0a1b2c3d4e5f6", "created": "2026-08-24T06:00:01.000Z", "status": "ready",
         "dataset_id": "gd_l1viktl72bvl7bjuj0", "dataset_size": 118, "trigger": {"type": "API"}},
        {"id": "s_mt8r9z8y7x6w5v4u3", "created": "2026-08-24T06:30:00.000Z", "status": "running",
         "dataset_id": "gd_l1viktl72bvl7bjuj0", "dataset_size": 0, "trigger": {"type": "CP"}},
    ]  # fmt: skip
    ready, running = parse_snapshots_list(body, "gd_l1viktl72bvl7bjuj0").items
    assert (ready.created, ready.status, ready.records) == (1787551201.0, "ready", 118)
    assert (running.created, running.status) == (1787553000.0, "running")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-04-28T13:22:16.857Z", 1745846536.857),
        ("2026-01-12T07:19:20.123456+00:00", 1768202360.123456),
        ("2026-08-24T10:30:00Z", 1787567400.0),
        ("2026-08-24T12:30:00+02:00", 1787567400.0),
        ("2026-08-24T10:30:00", 1787567400.0),
        ("2026-08-24T10:30:00.1234567Z", 1787567400.123456),
        ("yesterday", None),
        ("", None),
        (12, None),
    ],
)
def test_parse_timestamp(text: object, expected: float | None) -> None:
    result = parse_timestamp(text)
    assert result == (pytest.approx(expected) if expected is not None else None)


# --- clients ---------------------------------------------------------------------------------


FAST_RETRIES = Policy(retry_base=0.001)


def _bd(telemetry: Telemetry) -> BrightDataClient:
    return BrightDataClient(
        HttpClient(
            ProviderGate("brightdata", 100, telemetry, FAST_RETRIES),
            BD,
            {"Authorization": "Bearer t"},
            5,
        )
    )


@respx.mock
async def test_brightdata_endpoints_send_bearer_and_parse() -> None:
    telemetry = Telemetry()
    client = _bd(telemetry)
    log_route = respx.get(f"{BD}/dca/log/j_ma13y9ay1piehrso8r").respond(json=seed("job_log_done"))
    respx.get(f"{BD}/datasets/v3/progress/s_m4x7enmven8djfqak").respond(
        json=seed("snapshot_progress_running")
    )
    respx.get(f"{BD}/dca/collectors/c_m9im5n7v82p2y35la/automate_template/progress").respond(
        json=seed("ai_flow_progress_done")
    )
    job = await client.job_log("j_ma13y9ay1piehrso8r")
    snap = await client.snapshot_progress("s_m4x7enmven8djfqak")
    flow = await client.ai_flow_progress("c_m9im5n7v82p2y35la")
    await client.http.aclose()
    assert log_route.calls.last.request.headers["Authorization"] == "Bearer t"
    assert (job.job_time, snap.status, flow.completed_steps) == (71.459, "running", 8)
    assert value(telemetry.api_requests, "brightdata", "/dca/log/{job_id}", "200") == 1
    assert ("brightdata", "/datasets/v3/progress/{snapshot_id}") in (
        histogram_counts(telemetry.api_request_duration)
    )


@respx.mock
@pytest.mark.parametrize(
    ("header", "expected"),
    [("X-API-Key", ("X-API-Key", "k")), ("api-key", ("api-key", "k")),
     ("Authorization", ("Authorization", "Bearer k"))],
)  # fmt: skip
async def test_aitronos_client_prefix_and_auth(header: str, expected: tuple[str, str]) -> None:
    telemetry = Telemetry()
    http = HttpClient(ProviderGate("aitronos", 100, telemetry), AIT, auth_headers(header, "k"), 5)
    client = AitronosClient(http, "/api/v1")
    route = respx.get(f"{AIT}/api/v1/scrape/jobs/job_abc123/progress").respond(
        json=seed("aitronos_progress_timeout")
    )
    job = await client.job_progress("job_abc123")
    await http.aclose()
    assert route.calls.last.request.headers[expected[0]] == expected[1]
    assert job.items_found == 13
    key = ("aitronos", "/api/v1/scrape/jobs/{job_id}/progress", "200")
    assert value(telemetry.api_requests, *key) == 1


@respx.mock
@pytest.mark.parametrize(
    ("response", "reason", "status"),
    [
        (httpx.Response(404, json={"error": "Snapshot not found"}), "http_4xx", 404),
        (httpx.Response(401, text="Invalid credentials"), "http_4xx", 401),
        (httpx.Response(503, text="busy"), "http_5xx", 503),
        (httpx.Response(429, headers={"Retry-After": "7"}, text="slow down"), "rate_limited", 429),
        (httpx.Response(200, text="<html><body>Oops</body></html>",
                        headers={"content-type": "text/html"}), "bad_body", 200),
        (httpx.Response(200, json=["not", "an", "object"]), "bad_body", None),
        (httpx.Response(200, text=""), "bad_body", 200),
        (httpx.Response(200, json={"status": "ready"},
                        headers={"x-brd-error": "Account is suspended"}), "http_4xx", 200),
        (httpx.Response(200, json={}, headers={"x-brd-error": "Requests rate from account is "
                                                              "too high"}), "rate_limited", 200),
    ],
)  # fmt: skip
async def test_errors_are_typed(response: httpx.Response, reason: str, status: int | None) -> None:
    telemetry = Telemetry()
    client = _bd(telemetry)
    respx.get(f"{BD}/datasets/v3/progress/s_1").mock(return_value=response)
    with pytest.raises(ApiError) as info:
        await client.snapshot_progress("s_1")
    await client.http.aclose()
    assert info.value.reason == reason
    assert info.value.status == status
    assert value(telemetry.api_errors, "brightdata", "/datasets/v3/progress/{snapshot_id}", reason)
    if reason == "rate_limited" and status == 429:
        assert info.value.retry_after == 7


@respx.mock
@pytest.mark.parametrize(
    ("exc", "reason"),
    [(httpx.ConnectTimeout("t"), "timeout"), (httpx.ReadTimeout("t"), "timeout"),
     (httpx.ConnectError("refused"), "connect"), (httpx.RemoteProtocolError("reset"), "connect")],
)  # fmt: skip
async def test_transport_errors(exc: Exception, reason: str) -> None:
    telemetry = Telemetry()
    client = _bd(telemetry)
    respx.get(f"{BD}/dca/log/j_1").mock(side_effect=exc)
    with pytest.raises(ApiError) as info:
        await client.job_log("j_1")
    await client.http.aclose()
    assert info.value.reason == reason and info.value.status is None
    # Timeouts and dropped connections are retried, each attempt counted.
    attempts = FAST_RETRIES.attempts
    assert value(telemetry.api_requests, "brightdata", "/dca/log/{job_id}", reason) == attempts


@respx.mock
async def test_oversized_body_is_refused() -> None:
    telemetry = Telemetry()
    http = HttpClient(ProviderGate("brightdata", 100, telemetry), BD, {}, 5, max_body_bytes=1000)
    client = BrightDataClient(http)
    respx.get(f"{BD}/dca/log/j_1").respond(json={"status": "done", "pad": "x" * 5000})
    with pytest.raises(ApiError) as info:
        await client.job_log("j_1")
    await http.aclose()
    assert info.value.reason == "too_large"


@respx.mock
async def test_ids_are_quoted_into_paths() -> None:
    client = _bd(Telemetry())
    route = respx.get(f"{BD}/dca/log/j%2F..%2Fx").respond(json={"status": "done"})
    await client.job_log("j/../x")
    await client.http.aclose()
    assert route.called


@pytest.mark.parametrize("server_closes_idle", [False, True])
async def test_real_connections_survive_a_server_closing_idle_ones(
    server_closes_idle: bool,
) -> None:
    """Against a real server on 127.0.0.1: a keep-alive connection the server closed while idle
    is replaced, not failed on."""
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"status": "running"})

    app = web.Application()
    app.router.add_get("/dca/log/{job}", handler)
    # Without the idle close the server keeps connections long: a loaded machine may leave more
    # than 50 ms between two requests, and a close racing a request is then a real retry.
    keepalive = 0.05 if server_closes_idle else 75.0
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=keepalive)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    http = gate = ProviderGate("brightdata", 100, Telemetry())
    http = HttpClient(gate, f"http://127.0.0.1:{port}", {}, 5.0)
    try:
        for _ in range(3):
            if server_closes_idle:
                await asyncio.sleep(0.2)  # past the server's keep-alive timeout
            assert await http.get_json("/dca/log/{job_id}", "/dca/log/j_1") == {"status": "running"}
        errors = values(http.telemetry.api_errors)
        assert not errors
    finally:
        await http.aclose()
        await runner.cleanup()
