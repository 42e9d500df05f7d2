"""Aitronos (Freddy) scrape jobs: `GET {prefix}/scrape/jobs/{job_id}/progress`.

The progress body is documented wrapped in `{success, data}` while the field table lists it flat;
both are accepted. See docs/api.md (AI-1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from scrapejobs_exporter.providers.brightdata import (
    UNKNOWN,
    Page,
    Parsed,
    row_refusals,
    status_of,
    unique_rows,
    with_invalid,
)
from scrapejobs_exporter.providers.fields import Fields, ParseError
from scrapejobs_exporter.providers.http import HttpClient, Params
from scrapejobs_exporter.providers.ids import safe_text

__all__ = [
    "COMPLETION_REASONS",
    "FAILURE_REASONS",
    "JOB_STATUSES",
    "AitronosClient",
    "AitronosJob",
    "failure_reason",
    "parse_job_progress",
    "parse_job_row",
    "parse_jobs_list",
    "unwrap_envelope",
]

JOB_STATUSES = ("pending", "processing", "completed", "failed", "cancelled", UNKNOWN)
JOB_TERMINAL = frozenset({"completed", "failed", "cancelled"})
COMPLETION_REASONS = ("done", "timeout", "error")
_ALIASES = {"canceled": "cancelled"}

EP_JOB_PROGRESS = "{prefix}/scrape/jobs/{job_id}/progress"

# A failed job's free-text `error_message` in a small fixed set, so that it can be counted (the
# text itself is only shown, escaped, on the landing page). Checked in this order: "blocked
# (HTTP 403) after timeout" is blocked.
FAILURE_REASONS = ("blocked", "timeout", "not_found", "other")
_REASON_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "blocked",
        re.compile(
            r"block|captcha|anti-?bot|bot detect|forbidden|access denied|denied access"
            r"|\b403\b|\b429\b|rate.?limit|too many requests|cloudflare|challenge",
        ),
    ),
    ("timeout", re.compile(r"time[ds]?[ -]?out|timed out|deadline exceeded|\b504\b")),
    (
        "not_found",
        re.compile(r"not found|\b404\b|\b410\b|no such|does not exist|dead page|page gone"),
    ),
)


def failure_reason(message: str | None) -> str:
    """One of FAILURE_REASONS for a failed job's `error_message` (`other` when missing)."""
    if not message:
        return "other"
    text = message.lower()
    for reason, pattern in _REASON_PATTERNS:
        if pattern.search(text):
            return reason
    return "other"


@dataclass(frozen=True, slots=True)
class AitronosJob(Parsed[str]):
    """`GET {prefix}/scrape/jobs/{job_id}/progress`, or a list row (no progress counters).
    `created` and `completed` are epoch seconds; the two durations are seconds."""

    terminal_statuses = JOB_TERMINAL
    job_id: str
    completion_reason: str | None = None
    url: str | None = None
    current_page: int | None = None
    pages_scraped: int | None = None
    items_found: int | None = None
    progress_percentage: float | None = None
    pagination_complete: bool | None = None
    processing_time: float | None = None
    running_time: float | None = None
    created: float | None = None
    completed: float | None = None
    error_message: str | None = None


def unwrap_envelope(body: Any) -> Any:
    """`{"success": true, "data": {...}}` -> the inner object; a flat body passes through."""
    if isinstance(body, dict):
        lowered = {str(k).lower(): v for k, v in body.items()}
        data = lowered.get("data")
        if "success" in lowered and lowered["success"] is False:
            raise ParseError(f"provider answered success=false: {_error_text(lowered)}")
        if isinstance(data, dict) and "success" in lowered:
            return data
    return body


def _error_text(body: dict[str, Any]) -> str:
    # Not cut short here: the HTTP client redacts credentials first, then shortens.
    error = body.get("error")
    if isinstance(error, dict):
        return safe_text(str(error.get("message") or error.get("code") or "no message"))
    return safe_text(str(error or body.get("detail") or "no message"))


def parse_job_progress(body: Any, job_id: str) -> AitronosJob:
    f = Fields(unwrap_envelope(body), "job progress")
    reason = f.text("completion_reason")
    job = AitronosJob(
        job_id=f.ident("job_id", "aitronos_job", job_id) or job_id,
        **status_of(f, JOB_STATUSES, _ALIASES),
        completion_reason=None if reason is None else reason.strip().lower(),
        url=f.text("url"),
        current_page=f.integer("current_page"),
        pages_scraped=f.integer("total_pages_scraped"),
        items_found=f.integer("total_properties_found"),
        progress_percentage=f.number("progress_percentage"),
        pagination_complete=f.boolean("pagination_complete"),
        processing_time=f.number("processing_time"),
        running_time=f.number("running_time"),
        created=f.timestamp("created_at"),
        completed=f.timestamp("completed_at"),
        error_message=f.text("error_message"),
    )
    return with_invalid(job, f)


EP_JOBS_LIST = "{prefix}/scrape/jobs"


def parse_job_row(row: Any) -> AitronosJob:
    """A jobs-list row (or `GET /scrape/jobs/{id}`): status and times, no progress counters."""
    f = Fields(row, "job row")
    metadata = f.raw("metadata")
    processing = (
        Fields(metadata, "metadata").number("processing_time")
        if isinstance(metadata, dict)
        else None
    )
    job = AitronosJob(
        job_id=f.ident("job_id", "aitronos_job") or "",
        **status_of(f, JOB_STATUSES, _ALIASES),
        url=f.text("url"),
        processing_time=processing,
        created=f.timestamp("created_at"),
        completed=f.timestamp("completed_at"),
        error_message=f.text("error_message"),
    )
    return with_invalid(job, f)


def parse_jobs_list(body: Any) -> Page[AitronosJob]:
    """`GET {prefix}/scrape/jobs`: `{jobs, total, limit, offset}`, not wrapped."""
    f = Fields(unwrap_envelope(body), "jobs list")
    rows = f.raw("jobs")
    if not isinstance(rows, list):
        raise ParseError("jobs list: no `jobs` array")
    jobs = [parse_job_row(row) for row in rows]
    refused = row_refusals(jobs)
    unique = unique_rows(jobs, lambda j: j.job_id, refused)
    return Page(unique, f.integer("total"), tuple(refused))


class AitronosClient:
    provider = "aitronos"

    def __init__(self, http: HttpClient, path_prefix: str) -> None:
        self.http = http
        self.prefix = path_prefix

    def _endpoint(self, template: str) -> str:
        return template.replace("{prefix}", self.prefix)

    async def list_jobs(
        self, offset: int, limit: int, status: str | None = None
    ) -> Page[AitronosJob]:
        """AI-2, newest first; `status` lists only the jobs in that status."""
        params: Params = {"offset": offset, "limit": limit}
        if status is not None:
            params["status"] = status
        return await self.http.fetch(
            self._endpoint(EP_JOBS_LIST), f"{self.prefix}/scrape/jobs", parse_jobs_list, params
        )

    async def job_progress(self, job_id: str) -> AitronosJob:
        path = f"{self.prefix}/scrape/jobs/{quote(job_id, safe='')}/progress"
        return await self.http.fetch(
            self._endpoint(EP_JOB_PROGRESS), path, lambda body: parse_job_progress(body, job_id)
        )


def auth_headers(header: str, key: str) -> dict[str, str]:
    """The documented styles: `X-API-Key: k`, `api-key: k` or `Authorization: Bearer k`."""
    if header == "Authorization":
        return {"Authorization": f"Bearer {key}"}
    return {header: key}
