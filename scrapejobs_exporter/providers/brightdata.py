"""Bright Data: Scraper Studio job log and errors, Web Scraper API snapshot progress and log,
AI-flow progress.

Parsers are pure: JSON in, frozen model out. See docs/api.md (BD-1, BD-5, BD-6, BD-8, BD-9).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, ClassVar, Generic, TypedDict, TypeVar
from urllib.parse import quote

from scrapejobs_exporter.providers.fields import Fields, ParseError
from scrapejobs_exporter.providers.http import ApiError, HttpClient, Params
from scrapejobs_exporter.providers.ids import safe_text

__all__ = [
    "AI_FLOW_STATUSES",
    "AI_FLOW_STEPS",
    "INPUT_ERROR_GROUPS",
    "JOB_STATUSES",
    "SNAPSHOT_STATUSES",
    "AiFlow",
    "AiFlowTrigger",
    "BrightDataClient",
    "ErrorGroups",
    "InputError",
    "JobErrors",
    "Parsed",
    "Snapshot",
    "SnapshotLog",
    "StudioJob",
    "error_group",
    "parse_ai_flow_progress",
    "parse_hp_errors",
    "parse_job_log",
    "parse_snapshot_log",
    "parse_snapshot_progress",
    "parse_trigger",
    "status_of",
]

UNKNOWN = "unknown"
JOB_STATUSES = ("building", "running", "done", "failed", "cancelled", "paused", UNKNOWN)
JOB_TERMINAL = frozenset({"done", "failed", "cancelled"})
SNAPSHOT_STATUSES = ("starting", "running", "ready", "failed", UNKNOWN)
SNAPSHOT_TERMINAL = frozenset({"ready", "failed"})
AI_FLOW_STATUSES = ("queued", "running", "done", "failed", "pending_answer", UNKNOWN)
AI_FLOW_TERMINAL = frozenset({"done", "failed"})
# Generation pipeline steps (docs example plus the longer compiled list), then the approval gate.
AI_FLOW_STEPS = (
    "prepare_intent_analyzer",
    "user_intent_analyzer",
    "planner",
    "discovery",
    "collector_maintainer",
    "output_schema_generator",
    "code_generator",
    "input_schema_generator",
    "preview_runner",
    "preview_picker",
    "user_approval",
    UNKNOWN,
)
_STEP_ALIASES = {"collector_mainatiner": "collector_maintainer"}  # the docs' own typo
_JOB_ALIASES = {"canceled": "cancelled"}
# The official CLI's rule: error/cancel end a flow as a failure.
_AI_FLOW_ALIASES = {"error": "failed", "cancelled": "failed", "canceled": "failed"}

EP_JOB_LOG = "/dca/log/{job_id}"
EP_SNAPSHOT_PROGRESS = "/datasets/v3/progress/{snapshot_id}"
EP_AI_FLOW_PROGRESS = "/dca/collectors/{collector_id}/automate_template/progress"
EP_AI_FLOW_TRIGGER = "/dca/collectors/{collector_id}/automate_template"
EP_JOB_ERRORS = "/dca/jobs/{job_id}/hp_errors"
EP_SNAPSHOT_LOG = "/datasets/v3/log/{snapshot_id}"


# (field, reason) of each id a reply named that was not kept; see `ids.check_id`.
Refusals = tuple[tuple[str, str], ...]


_S = TypeVar("_S", bound=str | None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Parsed(Generic[_S]):
    """What every model holds: the provider's status (normalised, and as sent), whether it is
    final, and what parsing a body left out (see `with_invalid`): the keys whose values had the
    wrong type, and the ids refused. Keyword-only, so each model's own fields come first."""

    # The statuses a model's provider never moves on from; each model sets its own.
    terminal_statuses: ClassVar[frozenset[str]] = frozenset()
    status: _S  # AiFlow's is None when the collector never ran a flow
    raw_status: str | None
    invalid: tuple[str, ...] = ()
    refused: Refusals = ()

    @property
    def terminal(self) -> bool:
        return self.status in self.terminal_statuses


def normalize_status(raw: str | None, known: tuple[str, ...], aliases: dict[str, str]) -> str:
    """Map a provider status onto a known state; anything else (or none) is `unknown`."""
    if raw is None:
        return UNKNOWN
    value = raw.strip().lower()
    value = aliases.get(value, value)
    return value if value in known else UNKNOWN


class StatusFields(TypedDict):
    """A body's `status` as a model's two fields; `parse_*` passes them as `**status_of(f, ...)`."""

    status: str
    raw_status: str | None


def status_of(
    f: Fields, known: tuple[str, ...], aliases: dict[str, str] | None = None
) -> StatusFields:
    raw = f.text("status")
    return StatusFields(status=normalize_status(raw, known, aliases or {}), raw_status=raw)


@dataclass(frozen=True, slots=True)
class StudioJob(Parsed[str]):
    """`GET /dca/log/{job_id}`. Times are seconds; the PII `trigger` field is never kept."""

    terminal_statuses = JOB_TERMINAL
    job_id: str
    collector: str | None  # None for a job watched by id until its log names its collector
    template: str | None = None
    inputs: int | None = None
    dup_inputs: int | None = None
    lines: int | None = None
    fails: int | None = None
    pages: int | None = None
    pages_left: int | None = None
    success: int | None = None
    navigations: int | None = None
    success_rate: float | None = None
    job_time: float | None = None
    queue_time: float | None = None
    created: float | None = None
    started: float | None = None
    finished: float | None = None


@dataclass(frozen=True, slots=True)
class _SnapshotFields(Parsed[str]):
    """What the progress and the log endpoints both tell of a snapshot."""

    terminal_statuses = SNAPSHOT_TERMINAL
    snapshot_id: str
    dataset_id: str | None
    records: int | None = None
    created: float | None = None  # not in a progress body: from a list row or the log


@dataclass(frozen=True, slots=True)
class Snapshot(_SnapshotFields):
    """`GET /datasets/v3/progress/{snapshot_id}`."""

    error_message: str | None = None
    errors: int | None = None


@dataclass(frozen=True, slots=True)
class AiFlow(Parsed[str | None]):
    """`GET /dca/collectors/{id}/automate_template/progress`: the collector's latest AI job.

    `status` is None when the collector never ran an AI flow (the API answers `{}`).
    """

    terminal_statuses = AI_FLOW_TERMINAL
    collector: str  # the key: the endpoint answers for the collector's latest flow only
    step: str | None = None
    raw_step: str | None = None
    completed_steps: int | None = None
    error: str | None = None
    ai_job_id: str | None = None


def _ms_to_seconds(value: float | None) -> float | None:
    return None if value is None else value / 1000.0


def parse_job_log(body: Any, job_id: str, collector: str | None = None) -> StudioJob:
    """Parse a `/dca/log` body (lower-case or legacy Capitalised keys)."""
    f = Fields(body, "job log")
    job = StudioJob(
        job_id=f.ident("id", "job", job_id) or job_id,
        # The collector a job was discovered under is the label; a static job learns it here.
        collector=f.ident("collector", "collector", collector),
        **status_of(f, JOB_STATUSES, _JOB_ALIASES),
        template=f.text("template"),
        inputs=f.integer("inputs"),
        dup_inputs=f.integer("dup_inputs"),
        lines=f.integer("lines"),
        fails=f.integer("fails"),
        pages=f.integer("pages"),
        pages_left=f.integer("pages_left"),
        success=f.integer("success"),
        navigations=f.integer("navigations"),
        success_rate=f.number("success_rate"),
        job_time=_ms_to_seconds(f.number("job_time")),
        queue_time=_ms_to_seconds(f.number("queue_time")),
        created=f.timestamp("created"),
        started=f.timestamp("started"),
        finished=f.timestamp("finished"),
    )
    return with_invalid(job, f)


def parse_snapshot_progress(body: Any, snapshot_id: str) -> Snapshot:
    f = Fields(body, "snapshot progress")
    snapshot = Snapshot(
        snapshot_id=f.ident("snapshot_id", "snapshot", snapshot_id) or snapshot_id,
        dataset_id=f.ident("dataset_id", "dataset"),
        **status_of(f, SNAPSHOT_STATUSES),
        error_message=f.text("error_message") or f.text("error"),
        records=f.integer("records"),
        errors=f.integer("errors"),
    )
    return with_invalid(snapshot, f)


def parse_ai_flow_progress(body: Any, collector: str) -> AiFlow:
    f = Fields(body, "AI flow progress")
    if len(f) == 0:
        return AiFlow(collector=collector, status=None, raw_status=None)
    raw_status, raw_step = f.text("status"), f.text("step")
    steps = f.text_list("completed_steps")
    status = normalize_status(raw_status, AI_FLOW_STATUSES, _AI_FLOW_ALIASES)
    status_as_step = _normalize_step(raw_status)
    if status == UNKNOWN and status_as_step != UNKNOWN:
        # Some responses put the current step name in `status`: the flow is running.
        status = "running"
        raw_step = raw_step or raw_status
    flow = AiFlow(
        collector=collector,
        status=status,
        raw_status=raw_status,
        step=None if raw_step is None else _normalize_step(raw_step),
        raw_step=raw_step,
        completed_steps=None if steps is None else len(steps),
        error=f.text("error"),
        ai_job_id=f.ident("id", "ai_job"),
    )
    return with_invalid(flow, f)


@dataclass(frozen=True, slots=True)
class AiFlowTrigger:
    """`POST /dca/collectors/{id}/automate_template`: `queued` means it waits for a slot."""

    ai_job_id: str
    queued: bool


def parse_trigger(body: Any) -> AiFlowTrigger:
    f = Fields(body, "AI flow trigger")
    ai_job_id = f.ident("id", "ai_job")
    if not ai_job_id:
        raise ParseError("AI flow trigger: no well-formed `id` (ia_...) in the answer")
    return AiFlowTrigger(ai_job_id, bool(f.boolean("queued")))


def _normalize_step(raw: str | None) -> str:
    if raw is None:
        return UNKNOWN
    value = raw.strip().lower()
    value = _STEP_ALIASES.get(value, value)
    return value if value in AI_FLOW_STEPS else UNKNOWN


# --- why inputs failed (BD-9) and how a snapshot ran (BD-8) -----------------------------------

# The documented error-code groups (docs/api.md, BD-9); anything else, prose included, is
# `other`. Label values come only from this table, never from the provider's text.
ERROR_GROUP_CODES: dict[str, tuple[str, ...]] = {
    "page_gone": ("dead_page", "bad_input"),
    "blocked": ("blocked", "detection_block", "captcha_timeout", "proxy*", "no_peers"),
    "scraper_logic": (
        "parse_error",
        "wait_element_timeout",
        "click_timeout",
        "crawl_error",
        "load_sitemap",
    ),
    "infrastructure": ("infra_error", "worker_too_busy", "net_err_*", "runner_disconnected"),
    "limits": (
        "too_many_pages",
        "parse_mem_limit_exceeded",
        "parse_cpu_limit_exceeded",
        "job_run_timeout",
    ),
    "cancellation": ("aborted_page",),
}
INPUT_ERROR_GROUPS = (*ERROR_GROUP_CODES, "other")
_EXACT_CODES = {
    code: group for group, codes in ERROR_GROUP_CODES.items() for code in codes if "*" not in code
}
_PREFIX_CODES = tuple(
    (code.rstrip("*"), group)
    for group, codes in ERROR_GROUP_CODES.items()
    for code in codes
    if code.endswith("*")
)
# A code is one identifier, alone or before a `:` and details ("dead_page: 404"). Chrome's
# `net::ERR_X` is the documented `net_err_x`.
_CODE = re.compile(r"^\s*([a-z][a-z0-9_]*)\s*(?::|$)")


def error_group(text: str | None) -> str:
    """The group of one hp_errors `error` value: a code, a code with details, or free text."""
    if not text:
        return "other"
    match = _CODE.match(text.lower().replace("net::err_", "net_err_", 1))
    if match is None:
        return "other"
    code = match.group(1)
    group = _EXACT_CODES.get(code)
    if group is not None:
        return group
    for prefix, prefixed_group in _PREFIX_CODES:
        if code.startswith(prefix):
            return prefixed_group
    return "other"


@dataclass(frozen=True, slots=True)
class InputError:
    """One row of `hp_errors`; the text stays text (shown escaped, never a label)."""

    url: str | None
    error: str | None
    group: str


@dataclass(frozen=True, slots=True)
class JobErrors:
    """`GET /dca/jobs/{job_id}/hp_errors`: the per-input errors of one job."""

    job_id: str
    errors: tuple[InputError, ...]
    invalid: tuple[str, ...] = ()

    def by_group(self) -> dict[str, int]:
        """Error count per group, every group present (0 when none)."""
        counts = Counter(e.group for e in self.errors)
        return {group: counts.get(group, 0) for group in INPUT_ERROR_GROUPS}

    def groups(self) -> ErrorGroups:
        return ErrorGroups(tuple(self.by_group().values()))


@dataclass(frozen=True, slots=True)
class ErrorGroups:
    """All a finished job keeps of its hp_errors: a count per error group, in the order of
    INPUT_ERROR_GROUPS (the rows' URLs and texts are dropped: at 50,000 jobs every byte of a
    target counts, see bench RSS per tracked job)."""

    counts: tuple[int, ...]

    def items(self) -> Iterable[tuple[str, int]]:
        return zip(INPUT_ERROR_GROUPS, self.counts, strict=True)

    @property
    def total(self) -> int:
        return sum(self.counts)


def parse_hp_errors(body: Any, job_id: str) -> JobErrors:
    """`{"errors": [{url, error, consumer}]}` (or the bare array). A row without an `error`
    is still a failed input: it counts as `other`."""
    errors, invalid = [], []
    for row in _rows(body, ("errors", "data"), "job errors"):
        if isinstance(row, str):  # a bare message instead of an object
            message = safe_text(row)
            errors.append(InputError(None, message, error_group(message)))
            continue
        f = Fields(row, "job error row")
        text = f.text("error") or f.text("error_code") or f.text("message")
        errors.append(InputError(f.text("url") or f.text("input"), text, error_group(text)))
        invalid += f.invalid
    return JobErrors(job_id, tuple(errors), tuple(invalid))


@dataclass(frozen=True, slots=True)
class SnapshotLog(_SnapshotFields):
    """`GET /datasets/v3/log/{snapshot_id}`. The `trigger` (user, IP) is never kept."""

    inputs: int | None = None
    file_size: int | None = None
    duration: float | None = None  # seconds (the docs' example: 6 for 2 inputs at 3 each)
    duration_per_input: float | None = None
    success_ratio: float | None = None
    dataset_name: str | None = None
    scraper_name: str | None = None
    trigger_type: str | None = None


def parse_snapshot_log(body: Any, snapshot_id: str) -> SnapshotLog:
    """Keys in any casing (the docs mix `id` with `Dataset_size`)."""
    f = Fields(body, "snapshot log")
    trigger = f.raw("trigger")
    trigger_type = Fields(trigger, "trigger").text("type") if isinstance(trigger, dict) else None
    log = SnapshotLog(
        snapshot_id=f.ident("id" if "id" in f else "snapshot_id", "snapshot", snapshot_id)
        or snapshot_id,
        dataset_id=f.ident("dataset_id", "dataset"),
        **status_of(f, SNAPSHOT_STATUSES),
        created=f.timestamp("created"),
        records=_non_negative(f, f.integer("dataset_size"), "dataset_size"),
        inputs=_non_negative(f, f.integer("inputs_count"), "inputs_count"),
        file_size=_non_negative(f, f.integer("file_size"), "file_size"),
        duration=_non_negative(f, f.number("duration"), "duration"),
        duration_per_input=_non_negative(f, f.number("duration_per_input"), "duration_per_input"),
        success_ratio=_ratio(f, "success_rate"),
        dataset_name=f.text("dataset_name"),
        scraper_name=f.text("scraper_name"),
        trigger_type=trigger_type,
    )
    return with_invalid(log, f)


_N = TypeVar("_N", int, float)


def _non_negative(f: Fields, value: _N | None, key: str) -> _N | None:
    if value is not None and value < 0:
        f.invalid.append(key)
        return None
    return value


def _ratio(f: Fields, key: str) -> float | None:
    """A 0-1 ratio; anything outside is dropped rather than guessed to be a percentage."""
    value = f.number(key)
    if value is not None and not 0 <= value <= 1:
        f.invalid.append(key)
        return None
    return value


_Model = TypeVar("_Model", bound=Parsed[Any])
T = TypeVar("T")


def with_invalid(model: _Model, f: Fields) -> _Model:
    """The parsed model with what its `Fields` dropped (invalid values, refused ids), if any."""
    if f.invalid or f.refused:
        return replace(model, invalid=tuple(f.invalid), refused=tuple(f.refused))
    return model


def unique_rows(
    rows: Iterable[T], key: Callable[[T], str], refused: list[tuple[str, str]]
) -> tuple[T, ...]:
    """Rows with an id, the first of each id only (a repeat is noted in `refused`): one row
    per series, never two competing ones."""
    seen: set[str] = set()
    out: list[T] = []
    for row in rows:
        ident = key(row)
        if not ident:
            continue
        if ident in seen:
            refused.append(("id", "duplicate"))
            continue
        seen.add(ident)
        out.append(row)
    return tuple(out)


def row_refusals(models: Iterable[Any]) -> list[tuple[str, str]]:
    return [r for m in models for r in m.refused]


class BrightDataClient:
    """One method per Bright Data endpoint; each returns a parsed model."""

    provider = "brightdata"

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    async def job_log(self, job_id: str, collector: str | None = None) -> StudioJob:
        path = f"/dca/log/{quote(job_id, safe='')}"
        return await self.http.fetch(
            EP_JOB_LOG, path, lambda body: parse_job_log(body, job_id, collector)
        )

    async def snapshot_progress(self, snapshot_id: str) -> Snapshot:
        path = f"/datasets/v3/progress/{quote(snapshot_id, safe='')}"
        return await self.http.fetch(
            EP_SNAPSHOT_PROGRESS, path, lambda body: parse_snapshot_progress(body, snapshot_id)
        )

    async def job_errors(self, job_id: str) -> JobErrors:
        """Why a job's inputs failed (BD-9); worth a call only for a finished job with fails."""
        path = f"/dca/jobs/{quote(job_id, safe='')}/hp_errors"
        return await self.http.fetch(
            EP_JOB_ERRORS, path, lambda body: parse_hp_errors(body, job_id)
        )

    async def snapshot_log(self, snapshot_id: str) -> SnapshotLog:
        path = f"/datasets/v3/log/{quote(snapshot_id, safe='')}"
        return await self.http.fetch(
            EP_SNAPSHOT_LOG, path, lambda body: parse_snapshot_log(body, snapshot_id)
        )

    async def _list(self, endpoint: str, parse: Callable[[Any], T], params: Params) -> T:
        """A list endpoint: its path is its name; an empty query is sent as none."""
        return await self.http.fetch(endpoint, endpoint, parse, params or None)

    async def list_collectors(self, offset: int = 0, limit: int | None = None) -> Page[Collector]:
        params: Params = {"offset": offset} if offset else {}
        if limit is not None:
            params["limit"] = limit
        return await self._list(EP_COLLECTORS_LIST, parse_collectors_list, params)

    async def list_collector_jobs(
        self, collector: str, from_date: str, to_date: str, offset: int, limit: int
    ) -> Page[StudioJob]:
        """A page of the jobs a collector queued in [from_date, to_date], newest first."""
        params: Params = {
            "collector": collector,
            "from_date": from_date,
            "to_date": to_date,
            "offset": offset,
            "limit": limit,
            "sort_asc": -1,  # newest first: discovery stops at the first page with nothing new
        }
        parse = partial(parse_collector_jobs, collector=collector)
        return await self._list(EP_COLLECTOR_JOBS, parse, params)

    async def list_snapshots(
        self, dataset_id: str, from_date: str, skip: int, limit: int
    ) -> Page[Snapshot]:
        params: Params = dict(dataset_id=dataset_id, from_date=from_date, skip=skip, limit=limit)
        parse = partial(parse_snapshots_list, dataset_id=dataset_id)
        return await self._list(EP_SNAPSHOTS_LIST, parse, params)

    async def ai_flow_progress(self, collector: str) -> AiFlow:
        path = f"/dca/collectors/{quote(collector, safe='')}/automate_template/progress"
        return await self.http.fetch(
            EP_AI_FLOW_PROGRESS, path, lambda body: parse_ai_flow_progress(body, collector)
        )

    async def trigger_ai_flow(self, collector: str, description: str, url: str) -> AiFlowTrigger:
        """Start an AI flow. A 429 (3 flows already running account-wide) is not retried: the
        HTTP client retries only timeouts, dropped connections and 5xx."""
        path = f"/dca/collectors/{quote(collector, safe='')}/automate_template"
        body = await self.http.request_json(
            "POST", EP_AI_FLOW_TRIGGER, path, body={"description": description, "urls": [url]}
        )
        try:
            return parse_trigger(body)
        except ParseError as exc:
            raise ApiError("bad_body", str(exc)) from None


# --- discovery: list endpoints ---------------------------------------------------------------

EP_COLLECTORS_LIST = "/dca/collectors_list"
EP_COLLECTOR_JOBS = "/dca/collector/jobs"
EP_SNAPSHOTS_LIST = "/datasets/v3/snapshots"


@dataclass(frozen=True, slots=True)
class Collector:
    collector_id: str
    name: str | None
    active: bool | None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list endpoint; `total` is None when the API does not say."""

    items: tuple[T, ...]
    total: int | None
    refused: Refusals = ()


def _rows(body: Any, keys: tuple[str, ...], what: str) -> list[Any]:
    """A bare array, or the array under one of `keys` (the docs and clients disagree)."""
    if isinstance(body, list):
        return body
    f = Fields(body, what)
    for key in keys:
        rows = f.raw(key)
        if isinstance(rows, list):
            return rows
    raise ParseError(f"{what}: no list of rows under {' or '.join(keys)}")


def _total(body: Any) -> int | None:
    return Fields(body, "list").integer("total") if isinstance(body, dict) else None


def parse_collectors_list(body: Any) -> Page[Collector]:
    """`GET /dca/collectors_list`: `{total, offset, limit, data}`, `{collectors}` or an array."""
    items, refused = [], []
    for row in _rows(body, ("data", "collectors"), "collectors list"):
        f = Fields(row, "collector row")
        collector_id = f.ident("id", "collector")
        refused += f.refused
        if collector_id:
            items.append(Collector(collector_id, f.text("name"), f.boolean("active")))
    unique = unique_rows(items, lambda c: c.collector_id, refused)
    return Page(unique, _total(body), tuple(refused))


def parse_job_row(row: Any, collector: str) -> StudioJob:
    """A `/dca/collector/jobs` row as a job model; the rows omit `collector`, it is added back.

    Row fields map onto the job log's: `data_lines` -> lines, `failed_pages` -> fails,
    `total_pages` -> pages, `page_loads` -> navigations, `queued` -> created; the times
    follow from the documented definitions (job_time = finished - started, ...).
    """
    f = Fields(row, "job row")
    created, started, finished = (
        f.timestamp("queued"),
        f.timestamp("started"),
        f.timestamp("finished"),
    )
    job = StudioJob(
        job_id=f.ident("id", "job") or "",
        collector=collector,
        **status_of(f, JOB_STATUSES, _JOB_ALIASES),
        inputs=f.integer("inputs"),
        lines=f.integer("data_lines"),
        fails=f.integer("failed_pages"),
        pages=f.integer("total_pages"),
        navigations=f.integer("page_loads"),
        created=created,
        started=started,
        finished=finished,
        job_time=_elapsed(started, finished),
        queue_time=_elapsed(created, started),
    )
    return with_invalid(job, f)


def _elapsed(start: float | None, end: float | None) -> float | None:
    """`end - start` of two timestamps, exact: they have microsecond resolution, and rounding
    drops the float subtraction's noise (60.918, not 60.91799998283386)."""
    return None if start is None or end is None else round(end - start, 6)


def parse_collector_jobs(body: Any, collector: str) -> Page[StudioJob]:
    jobs = [parse_job_row(row, collector) for row in _rows(body, ("data",), "collector jobs")]
    refused = row_refusals(jobs)
    unique = unique_rows(jobs, lambda j: j.job_id, refused)
    return Page(unique, _total(body), tuple(refused))


def parse_snapshots_list(body: Any, dataset_id: str) -> Page[Snapshot]:
    """`GET /datasets/v3/snapshots`: a bare array of `{id, created, status, dataset_id, ...}`."""
    items: list[Snapshot] = []
    refused: list[tuple[str, str]] = []
    for row in _rows(body, ("data", "snapshots"), "snapshots list"):
        f = Fields(row, "snapshot row")
        key = "id" if f.raw("id") is not None else "snapshot_id"
        snapshot_id = f.ident(key, "snapshot")
        if not snapshot_id:
            refused += f.refused
            continue
        snapshot = Snapshot(
            snapshot_id=snapshot_id,
            dataset_id=f.ident("dataset_id", "dataset", dataset_id),
            **status_of(f, SNAPSHOT_STATUSES),
            error_message=f.text("error_message"),
            records=f.integer("dataset_size"),
            created=f.timestamp("created"),
        )
        items.append(with_invalid(snapshot, f))
    refused += row_refusals(items)
    unique = unique_rows(items, lambda s: s.snapshot_id, refused)
    return Page(unique, _total(body), tuple(refused))
