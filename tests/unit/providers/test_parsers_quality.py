"""Parsers of why jobs fail (BD-9 hp_errors, Aitronos error_message) and how snapshots ran
(BD-8 snapshot log), and their client methods."""

from __future__ import annotations

import asyncio

import pytest
import respx

from scrapejobs_exporter.providers.aitronos import FAILURE_REASONS, failure_reason
from scrapejobs_exporter.providers.brightdata import (
    ERROR_GROUP_CODES,
    INPUT_ERROR_GROUPS,
    BrightDataClient,
    InputError,
    error_group,
    parse_hp_errors,
    parse_snapshot_log,
    parse_snapshots_list,
)
from scrapejobs_exporter.providers.fields import ParseError
from scrapejobs_exporter.providers.http import ApiError, HttpClient
from scrapejobs_exporter.resilience import ProviderGate
from scrapejobs_exporter.telemetry import Telemetry
from tests.conftest import seed

BD = "https://api.brightdata.test"


# --- hp_errors --------------------------------------------------------------------------------


def test_hp_errors_doc_example_parses_exactly() -> None:
    errors = parse_hp_errors(seed("hp_errors"), "j_ma13y9ay1piehrso8r")
    assert errors.job_id == "j_ma13y9ay1piehrso8r"
    assert errors.errors == (
        InputError(
            "https://shop.example.com/product/echo-speaker", "Error: price missing", "other"
        ),
        InputError("https://shop.example.com/product/ghost", "dead_page", "page_gone"),
    )
    assert errors.by_group() == {
        "page_gone": 1, "blocked": 0, "scraper_logic": 0, "infrastructure": 0,
        "limits": 0, "cancellation": 0, "other": 1,
    }  # fmt: skip
    assert errors.invalid == ()


@pytest.mark.parametrize(
    ("text", "group"),
    [
        ("dead_page", "page_gone"),
        ("bad_input", "page_gone"),
        ("blocked", "blocked"),
        ("detection_block", "blocked"),
        ("captcha_timeout", "blocked"),
        ("proxy_error", "blocked"),
        ("proxy", "blocked"),
        ("no_peers", "blocked"),
        ("parse_error", "scraper_logic"),
        ("wait_element_timeout", "scraper_logic"),
        ("click_timeout", "scraper_logic"),
        ("crawl_error", "scraper_logic"),
        ("load_sitemap", "scraper_logic"),
        ("infra_error", "infrastructure"),
        ("worker_too_busy", "infrastructure"),
        ("net_err_connection_reset", "infrastructure"),
        ("net::ERR_NAME_NOT_RESOLVED", "infrastructure"),
        ("runner_disconnected", "infrastructure"),
        ("too_many_pages", "limits"),
        ("parse_mem_limit_exceeded", "limits"),
        ("parse_cpu_limit_exceeded", "limits"),
        ("job_run_timeout", "limits"),
        ("aborted_page", "cancellation"),
        ("  Dead_Page  ", "page_gone"),
        ("dead_page: HTTP 404", "page_gone"),
        ("Error: price missing", "other"),
        ("aborted", "other"),
        ("blocked by the site today", "other"),  # prose starting with a code word is prose
        ("", "other"),
        (None, "other"),
        ("<script>x</script>", "other"),
    ],
)
def test_error_groups(text: str | None, group: str) -> None:
    assert error_group(text) == group


def test_every_documented_code_has_one_group() -> None:
    codes = [code for codes in ERROR_GROUP_CODES.values() for code in codes]
    assert len(codes) == len(set(codes))
    assert INPUT_ERROR_GROUPS[-1] == "other" and len(set(INPUT_ERROR_GROUPS)) == 7
    for group, group_codes in ERROR_GROUP_CODES.items():
        for code in group_codes:
            assert error_group(code.replace("*", "_x")) == group


def test_hp_errors_empty_bare_array_and_tolerant_rows() -> None:
    assert parse_hp_errors({"errors": []}, "j").errors == ()
    assert parse_hp_errors({"Errors": []}, "j").by_group()["other"] == 0
    body = [
        {"URL": "https://a.example/1", "Error": "blocked"},
        {"url": "https://a.example/2"},  # no error text: still a failed input
        "worker_too_busy",
        {"url": 5, "error": "dead_page"},
    ]
    errors = parse_hp_errors(body, "j")
    assert [e.group for e in errors.errors] == ["blocked", "other", "infrastructure", "page_gone"]
    assert errors.errors[0].url == "https://a.example/1"
    assert errors.errors[3].url is None and errors.invalid == ("url",)


@pytest.mark.parametrize("body", [None, "errors", 3, {"error": "Job not found"}])
def test_hp_errors_bad_bodies_are_parse_errors(body: object) -> None:
    with pytest.raises(ParseError):
        parse_hp_errors(body, "j")


# --- snapshot log -----------------------------------------------------------------------------


def test_snapshot_log_doc_example_parses_exactly() -> None:
    log = parse_snapshot_log(seed("snapshot_log_ready"), "s_mcd3rc6l2md984eoij")
    assert log.snapshot_id == "s_mcd3rc6l2md984eoij"
    assert log.dataset_id == "gd_lsk9ki3u2iishmwrui"
    assert (log.status, log.raw_status, log.terminal) == ("ready", "ready", True)
    assert log.created == pytest.approx(1750925372.781)
    assert (log.records, log.inputs, log.file_size) == (2, 2, 65381)
    assert (log.duration, log.duration_per_input, log.success_ratio) == (6, 3, 1)
    assert (log.dataset_name, log.scraper_name) == (
        "Apple App Store",
        "Apple App Store - collect by URL",
    )
    assert log.trigger_type == "CP"
    assert log.invalid == ()
    assert "user@example.com" not in repr(log) and "192.0.2.17" not in repr(log)


def test_snapshot_log_any_casing_parses_alike() -> None:
    body = seed("snapshot_log_ready")
    lower = {k.lower(): v for k, v in body.items()}
    upper = {k.upper(): v for k, v in body.items()}
    expected = parse_snapshot_log(body, "x")
    assert parse_snapshot_log(lower, "x") == expected == parse_snapshot_log(upper, "x")


def test_snapshot_log_missing_stays_missing_and_bad_values_are_dropped() -> None:
    log = parse_snapshot_log({"Status": "running"}, "s_x")
    assert log.snapshot_id == "s_x" and log.status == "running" and not log.terminal
    assert (log.records, log.inputs, log.duration, log.success_ratio) == (None,) * 4
    odd = parse_snapshot_log(
        {"status": "exploded", "Success_rate": 87, "Duration": -1, "Dataset_size": "12"}, "s"
    )
    assert (odd.status, odd.raw_status) == ("unknown", "exploded")
    assert odd.success_ratio is None and odd.duration is None and odd.records == 12
    assert set(odd.invalid) == {"success_rate", "duration"}


def test_snapshots_list_rows_carry_created_time() -> None:
    page = parse_snapshots_list(
        [{"id": "s_1", "created": "2025-06-26T08:09:32.781Z", "status": "ready",
          "dataset_size": 7}],
        "gd_1",
    )  # fmt: skip
    assert page.items[0].created == pytest.approx(1750925372.781)
    assert page.items[0].records == 7


# --- Aitronos failure reasons -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("Site blocked by anti-bot measures", "blocked"),
        ("Access denied (HTTP 403)", "blocked"),
        ("CAPTCHA challenge could not be solved", "blocked"),
        ("Too Many Requests from target", "blocked"),
        ("Navigation timeout while loading page", "timeout"),
        ("Request timed out after 300s", "timeout"),
        ("Page not found", "not_found"),
        ("Target returned HTTP 404", "not_found"),
        ("Target returned HTTP 503", "other"),
        ("LLM extraction failed", "other"),
        ("", "other"),
        (None, "other"),
    ],
)
def test_aitronos_failure_reason(message: str | None, reason: str) -> None:
    assert failure_reason(message) == reason
    assert reason in FAILURE_REASONS


# --- client methods ---------------------------------------------------------------------------


def _client() -> BrightDataClient:
    return BrightDataClient(HttpClient(ProviderGate("brightdata", 100, Telemetry()), BD, {}, 5.0))


@respx.mock
def test_client_fetches_errors_and_log() -> None:
    errors_route = respx.get(f"{BD}/dca/jobs/j_1%2Fx/hp_errors").respond(json=seed("hp_errors"))
    log_route = respx.get(f"{BD}/datasets/v3/log/s_mcd3rc6l2md984eoij").respond(
        json=seed("snapshot_log_ready")
    )
    client = _client()

    async def go() -> None:
        errors = await client.job_errors("j_1/x")
        assert errors.job_id == "j_1/x" and len(errors.errors) == 2
        log = await client.snapshot_log("s_mcd3rc6l2md984eoij")
        assert log.records == 2
        await client.http.aclose()

    asyncio.run(go())
    assert errors_route.called and log_route.called


@respx.mock
def test_client_snapshot_log_404_is_an_api_error() -> None:
    respx.get(f"{BD}/datasets/v3/log/s_gone").respond(404, json={"error": "Snapshot not found"})
    client = _client()

    async def go() -> None:
        with pytest.raises(ApiError) as info:
            await client.snapshot_log("s_gone")
        assert info.value.status == 404
        await client.http.aclose()

    asyncio.run(go())
