"""The provider endpoints as plain functions: a parsed request in, a `Reply` out.

No aiohttp here, so the quirks can be read (and tested) in one place.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from scrapejobs_exporter.simulator.aitronos import JOB_STATUSES, AitronosJob
from scrapejobs_exporter.simulator.datasets import SNAPSHOT_STATUSES, Snapshot
from scrapejobs_exporter.simulator.faults import legacy_log_keys
from scrapejobs_exporter.simulator.replies import (
    Family,
    Reply,
    json_reply,
    not_found,
    text_reply,
    validation_failed,
)
from scrapejobs_exporter.simulator.studio import StudioJob
from scrapejobs_exporter.simulator.timefmt import DAY_MS, parse_date_ms
from scrapejobs_exporter.simulator.world import AiFlowLimitError, World

INVALID_JSON = object()
_URL = re.compile(r"^https?://[^\s/]+\S*$")
T = TypeVar("T")


@dataclass(slots=True)
class Call:
    world: World
    path: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    legacy_capitalised: bool = False

    @property
    def now(self) -> int:
        return self.world.now_ms


class BadParam(Exception):
    """A query parameter that the provider would reject."""


def _int_param(query: Mapping[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadParam(f"Invalid {name} parameter") from None


def _one(family: Family, what: str, found: T | None, body: Callable[[T], Any]) -> Reply:
    """The reply for one entity named in the path: its body, or the family's 404."""
    if found is None:
        return not_found(family, what)
    return json_reply(200, body(found))


# ----- Bright Data Scraper Studio ---------------------------------------------


def _studio_job(call: Call, body: Callable[[StudioJob], Any]) -> Reply:
    return _one(Family.DCA, "Job", call.world.jobs.get(call.path["job_id"]), body)


def dca_log(call: Call) -> Reply:
    def log(job: StudioJob) -> Any:
        body = job.log_body(call.now)
        return legacy_log_keys(body) if call.legacy_capitalised else body

    return _studio_job(call, log)


def job_errors(call: Call) -> Reply:
    return _studio_job(call, lambda job: job.hp_errors_body(call.now))


def collector_jobs(call: Call) -> Reply:
    """Needs from_date/to_date and (live behaviour) collector; rows omit `collector`."""
    q = call.query
    dates = {}
    for name in ("from_date", "to_date"):
        if name not in q:
            return text_reply(400, f"Missing {name} parameter")
        dates[name] = parse_date_ms(q[name])
        if dates[name] is None:
            return text_reply(400, f"Invalid {name} parameter, expected YYYY-MM-DD")
    if not q.get("collector"):
        return text_reply(400, "Missing collector parameter")
    try:
        offset = max(0, _int_param(q, "offset", 0))
        limit = min(500, max(0, _int_param(q, "limit", 50)))
        ascending = _int_param(q, "sort_asc", -1) == 1
    except BadParam as exc:
        return text_reply(400, str(exc))
    collector = call.world.collectors.get(q["collector"])
    total, jobs = 0, list[StudioJob]()
    if collector is not None:
        from_ms, to_ms = dates["from_date"] or 0, (dates["to_date"] or 0) + DAY_MS
        total, jobs = collector.jobs_between(from_ms, to_ms, offset, limit, ascending)
    rows = [job.list_row(call.now) for job in jobs]
    return json_reply(200, {"total": total, "offset": offset, "limit": limit, "data": rows})


def collectors_list(call: Call) -> Reply:
    """Paging params are undocumented: without `limit` every collector is returned."""
    search = call.query.get("search", "").lower()
    collectors = [c for c in call.world.collectors if search in c.name.lower()]
    try:
        offset = max(0, _int_param(call.query, "offset", 0))
        limit = max(0, _int_param(call.query, "limit", max(50, len(collectors))))
    except BadParam as exc:
        return text_reply(400, str(exc))
    page = [c.list_row() for c in collectors[offset : offset + limit]]
    return json_reply(
        200, {"total": len(collectors), "offset": offset, "limit": limit, "data": page}
    )


def automate_template(call: Call) -> Reply:
    collector_id = call.path["collector_id"]
    if call.world.collectors.get(collector_id) is None:
        return not_found(Family.DCA, "Collector")
    if call.body is INVALID_JSON or not isinstance(call.body, dict):
        return json_reply(400, {"error": "Request body must be a JSON object"})
    errors = _automate_errors(call.body)
    if errors:
        return json_reply(422, {"error": "Validation failed", "validation_errors": errors})
    try:
        flow = call.world.start_ai_flow(collector_id)
    except AiFlowLimitError:
        return text_reply(429, "Cannot run more than 3 jobs in parallel")
    return json_reply(200, {"id": flow.id, "queued": flow.queue_ms > 0})


def _automate_errors(body: dict[str, Any]) -> list[str]:
    errors = []
    description = body.get("description")
    if not isinstance(description, str) or not description:
        errors.append('"description" is required and must be a non-empty string')
    elif len(description) > 500:
        errors.append('"description" length must be less than or equal to 500 characters long')
    urls = body.get("urls")
    if not isinstance(urls, list) or len(urls) != 1:
        errors.append('"urls" must be an array containing exactly 1 item')
    elif not isinstance(urls[0], str) or not _URL.match(urls[0]):
        errors.append('"urls[0]" must be a valid http(s) uri')
    return errors


def automate_progress(call: Call) -> Reply:
    """The latest flow of the collector; `{}` if it never ran one."""
    collector_id = call.path["collector_id"]
    if call.world.collectors.get(collector_id) is None:
        return not_found(Family.DCA, "Collector")
    flow = call.world.latest_flow.get(collector_id)
    return json_reply(200, flow.progress_body(call.now) if flow else {})


# ----- Bright Data Datasets v3 -----------------------------------------------


def _snapshot(call: Call, body: Callable[[Snapshot], Any]) -> Reply:
    snapshot = call.world.snapshots.get(call.path["snapshot_id"])
    return _one(Family.DATASETS_PROGRESS, "Snapshot", snapshot, body)


def snapshot_progress(call: Call) -> Reply:
    return _snapshot(call, lambda snapshot: snapshot.progress_body(call.now))


def snapshot_log(call: Call) -> Reply:
    return _snapshot(call, lambda snapshot: snapshot.log_body(call.now))


def snapshots_list(call: Call) -> Reply:
    """A bare array, newest first, paginated with skip/limit (limit <= 5000)."""
    q = call.query
    dataset_id = q.get("dataset_id")
    if not dataset_id:
        return json_reply(400, {"error": "dataset_id is required"})
    status = q.get("status")
    if status is not None and status not in SNAPSHOT_STATUSES:
        return json_reply(400, {"error": f"status must be one of {', '.join(SNAPSHOT_STATUSES)}"})
    trigger = q.get("trigger_type", q.get("type", "ALL")).upper()
    if trigger not in ("ALL", "CP", "API"):
        return json_reply(400, {"error": "trigger_type must be one of ALL, CP, API"})
    try:
        skip = max(0, _int_param(q, "skip", 0))
        limit = min(5000, max(0, _int_param(q, "limit", 1000)))
        window = _date_window(q)
    except BadParam as exc:
        return json_reply(400, {"error": str(exc)})
    dataset = call.world.datasets.get(dataset_id)
    if dataset is None:
        return json_reply(200, [])
    t = call.now
    rows = []
    for snap in reversed(dataset.snapshots_between(*window)):
        if trigger != "ALL" and snap.trigger_type != trigger:
            continue
        if status is not None and snap.status_at(t) != status:
            continue
        rows.append(snap)
    return json_reply(200, [s.list_row(t) for s in rows[skip : skip + limit]])


def _date_window(q: Mapping[str, str]) -> tuple[int, int]:
    bounds = []
    for name, default in (("from_date", 0), ("to_date", 1 << 62)):
        if name not in q:
            bounds.append(default)
            continue
        parsed = parse_date_ms(q[name])
        if parsed is None:
            raise BadParam(f"Invalid {name} parameter, expected YYYY-MM-DD")
        bounds.append(parsed + (DAY_MS if name == "to_date" else 0))
    return bounds[0], bounds[1]


# ----- Aitronos ----------------------------------------------------------------


def aitronos_list(call: Call) -> Reply:
    """Not wrapped; newest first; rows carry no progress counters."""
    q = call.query
    status = q.get("status")
    if status is not None and status not in JOB_STATUSES:
        return validation_failed(
            Family.AITRONOS, f"status must be one of {', '.join(JOB_STATUSES)}"
        )
    try:
        limit = _int_param(q, "limit", 50)
        offset = _int_param(q, "offset", 0)
    except BadParam as exc:
        return validation_failed(Family.AITRONOS, str(exc))
    if not 1 <= limit <= 100 or offset < 0:
        return validation_failed(Family.AITRONOS, "limit must be 1-100 and offset >= 0")
    t = call.now
    jobs = call.world.aitronos_jobs[::-1]
    if status is not None:
        jobs = [j for j in jobs if j.status_at(t) == status]
    page = [j.status_body(t) for j in jobs[offset : offset + limit]]
    return json_reply(200, {"jobs": page, "total": len(jobs), "limit": limit, "offset": offset})


def aitronos_status(call: Call) -> Reply:
    return _aitronos_job(call, lambda job: job.status_body(call.now))


def aitronos_progress(call: Call) -> Reply:
    """Wrapped in {success, data}, unlike the status and list endpoints."""
    return _aitronos_job(call, lambda job: {"success": True, "data": job.progress_data(call.now)})


def _aitronos_job(call: Call, body: Callable[[AitronosJob], Any]) -> Reply:
    job = call.world.aitronos_jobs.get(call.path["job_id"])
    return _one(Family.AITRONOS, "Scrape job", job, body)


Handler = Callable[[Call], Reply]

# (method, path template, family, handler); Aitronos is served under both prefixes.
ENDPOINTS: tuple[tuple[str, str, Family, Handler], ...] = (
    ("GET", "/dca/log/{job_id}", Family.DCA, dca_log),
    ("GET", "/dca/jobs/{job_id}/hp_errors", Family.DCA, job_errors),
    ("GET", "/dca/collector/jobs", Family.DCA, collector_jobs),
    ("GET", "/dca/collectors_list", Family.DCA, collectors_list),
    ("POST", "/dca/collectors/{collector_id}/automate_template", Family.DCA, automate_template),
    (
        "GET",
        "/dca/collectors/{collector_id}/automate_template/progress",
        Family.DCA,
        automate_progress,
    ),
    ("GET", "/datasets/v3/progress/{snapshot_id}", Family.DATASETS_PROGRESS, snapshot_progress),
    ("GET", "/datasets/v3/log/{snapshot_id}", Family.DATASETS_PROGRESS, snapshot_log),
    ("GET", "/datasets/v3/snapshots", Family.DATASETS, snapshots_list),
    *(
        (method, prefix + path, Family.AITRONOS, handler)
        for prefix in ("/v1", "/api/v1")
        for method, path, handler in (
            ("GET", "/scrape/jobs", aitronos_list),
            ("GET", "/scrape/jobs/{job_id}", aitronos_status),
            ("GET", "/scrape/jobs/{job_id}/progress", aitronos_progress),
        )
    ),
)
