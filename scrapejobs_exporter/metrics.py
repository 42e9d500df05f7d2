"""The catalogue of every metric the exporter serves, and how the store becomes samples.

`CATALOGUE` is the single source for names, types, help texts and labels: the client_python
metrics made from it (`make_*`, for the exporter's own metrics and the aggregates), the fast
per-target renderer (`PER_TARGET`, read by `exposition.render_per_target`), `docs/metrics.md`
and the tests all read it. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from scrapejobs_exporter.build_info import build_labels
from scrapejobs_exporter.kinds import AI_FLOW, AITRONOS_JOB, SNAPSHOT, STUDIO_JOB, kind_of
from scrapejobs_exporter.providers import aitronos, brightdata
from scrapejobs_exporter.providers.aitronos import AitronosJob
from scrapejobs_exporter.providers.brightdata import ErrorGroups, SnapshotLog
from scrapejobs_exporter.statefile import STATUSES, StateFile
from scrapejobs_exporter.store import Store, Target

__all__ = [
    "CATALOGUE",
    "MetricSpec",
    "StateFileCollector",
    "TrackedCollector",
    "make_counter",
    "make_gauge",
    "make_histogram",
    "markdown_table",
    "register_build_info",
]

# No `_created` series: nothing reads them, they would double the exporter's own series, and in
# the text format they are families of their own, outside the catalogue.
disable_created_metrics()  # type: ignore[no-untyped-call]

MetricType = Literal["gauge", "counter", "histogram", "stateset", "info"]
CACHED = " Cached from the last poll."


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...]
    section: str
    source: str = ""
    unit: str = ""


CATALOGUE: dict[str, MetricSpec] = {}


def _spec(
    name: str,
    type_: MetricType,
    help_: str,
    labels: tuple[str, ...],
    section: str,
    source: str = "",
    unit: str = "",
) -> MetricSpec:
    spec = MetricSpec(name, type_, help_, labels, section, source, unit)
    assert name not in CATALOGUE, name
    CATALOGUE[name] = spec
    return spec


# --- Bright Data Scraper Studio jobs (GET /dca/log/{job_id}) ---------------------------------

JOB = ("job_id", "collector")
S_JOB = "Bright Data Scraper Studio jobs"
BD_JOB_STATUS = _spec(
    "brightdata_job_status",
    "stateset",
    "Scraper Studio job status; exactly one status is 1 (unknown: missing or unrecognised)."
    + CACHED,
    (*JOB, "status"),
    S_JOB,
    "status",
)
BD_JOB_INFO = _spec(
    "brightdata_job_info",
    "info",
    "Scraper Studio job metadata; always 1." + CACHED,
    (*JOB, "template"),
    S_JOB,
    "template",
)
# (metric, model attribute, help, source field, unit)
_JOB_GAUGES: tuple[tuple[str, str, str, str, str], ...] = (
    ("brightdata_job_inputs", "inputs", "Input rows submitted.", "inputs", ""),
    ("brightdata_job_duplicate_inputs", "dup_inputs", "Inputs dropped as duplicates.", "dup_inputs", ""),
    ("brightdata_job_lines", "lines", "Output records produced.", "lines", ""),
    ("brightdata_job_failures", "fails", "Failed inputs or pages.", "fails", ""),
    ("brightdata_job_successes", "success", "Successful inputs or pages.", "success", ""),
    ("brightdata_job_pages", "pages", "Pages (tasks) in the job.", "pages", ""),
    ("brightdata_job_pages_left", "pages_left", "Pages still to process.", "pages_left", ""),
    ("brightdata_job_navigations", "navigations", "Page loads performed.", "navigations", ""),
    ("brightdata_job_success_ratio", "success_rate", "Success rate, 0 to 1.", "success_rate", "ratio"),
    ("brightdata_job_duration_seconds", "job_time", "Run time (finished - started).", "job_time (ms)", "seconds"),
    ("brightdata_job_queue_seconds", "queue_time", "Time queued (started - created).", "queue_time (ms)", "seconds"),
    ("brightdata_job_created_timestamp_seconds", "created", "When the job was created.", "created", "seconds"),
    ("brightdata_job_started_timestamp_seconds", "started", "When the job started.", "started", "seconds"),
    ("brightdata_job_finished_timestamp_seconds", "finished", "When the job finished.", "finished", "seconds"),
)  # fmt: skip


def _gauges(
    rows: tuple[tuple[str, Any, str, str, str], ...], labels: tuple[str, ...], section: str
) -> tuple[tuple[MetricSpec, Any], ...]:
    """A kind's plain gauges from its table: (spec, how the value is read) per row of (metric,
    model attribute or getter, help, source field, unit)."""
    return tuple(
        (_spec(name, "gauge", help_ + CACHED, labels, section, source, unit), get)
        for name, get, help_, source, unit in rows
    )


JOB_GAUGES = _gauges(_JOB_GAUGES, JOB, S_JOB)
BD_JOB_STALLED = _spec(
    "brightdata_job_stalled",
    "gauge",
    "1 if the running job looks stuck: navigations still 0 after stall.no_worker_after (no "
    "worker allocated) or pages_left unchanged for stall.no_progress_after; present while running.",
    JOB,
    S_JOB,
    "navigations, pages_left over time",
)
BD_JOB_ETA = _spec(
    "brightdata_job_eta_seconds",
    "gauge",
    "Estimated time to completion from the observed rate of pages done; absent without enough data.",
    JOB,
    S_JOB,
    "pages_left over time",
    "seconds",
)

BD_JOB_INPUT_ERRORS = _spec(
    "brightdata_job_input_errors",
    "gauge",
    "Failed inputs of the finished job by error group (page_gone, blocked, scraper_logic, "
    "infrastructure, limits, cancellation, other), from hp_errors: read once, with request "
    "budget left over, only for jobs with failures.",
    (*JOB, "group"),
    S_JOB,
    "hp_errors error",
)

# --- Bright Data Web Scraper API snapshots (GET /datasets/v3/progress/{snapshot_id}) ---------

S_SNAP = "Bright Data Web Scraper API snapshots"
BD_SNAPSHOT_STATUS = _spec(
    "brightdata_snapshot_status",
    "stateset",
    "Snapshot status; exactly one status is 1." + CACHED,
    ("snapshot_id", "dataset_id", "status"),
    S_SNAP,
    "status",
)
SNAP = ("snapshot_id", "dataset_id")
LOGGED = " From the snapshot log, read once it finished (with request budget left over)."


def _snapshot_log(target: Target) -> SnapshotLog | None:
    report = target.report
    return report if isinstance(report, SnapshotLog) else None


def _snapshot_value(attr: str) -> Callable[[Target], float | None]:
    """The list row's or progress poll's value, else the log's."""

    def get(target: Target) -> float | None:
        value: float | None = getattr(target.model, attr, None)
        log = _snapshot_log(target)
        return getattr(log, attr) if value is None and log is not None else value

    return get


def _logged(attr: str) -> Callable[[Target], float | None]:
    def get(target: Target) -> float | None:
        log = _snapshot_log(target)
        return None if log is None else getattr(log, attr)

    return get


# (metric, reader of the target, help, source field, unit)
_SNAP_GAUGES: tuple[tuple[str, Callable[[Target], float | None], str, str, str], ...] = (
    ("brightdata_snapshot_records", _snapshot_value("records"), "Records collected so far." + CACHED, "dataset_size (list, log), records (progress)", ""),
    ("brightdata_snapshot_created_timestamp_seconds", _snapshot_value("created"), "When the snapshot was created." + CACHED, "created (list, log)", "seconds"),
    ("brightdata_snapshot_duration_seconds", _logged("duration"), "How long the snapshot took." + LOGGED, "Duration (log)", "seconds"),
    ("brightdata_snapshot_success_ratio", _logged("success_ratio"), "Share of inputs collected successfully, 0 to 1." + LOGGED, "Success_rate (log)", "ratio"),
    ("brightdata_snapshot_inputs", _logged("inputs"), "Inputs the snapshot was given." + LOGGED, "Inputs_count (log)", ""),
)  # fmt: skip
SNAP_GAUGES = tuple(
    (_spec(name, "gauge", help_, SNAP, S_SNAP, source, unit), get)
    for name, get, help_, source, unit in _SNAP_GAUGES
)

# --- Bright Data AI flows (GET /dca/collectors/{id}/automate_template/progress) --------------

S_AI = "Bright Data AI flows"
BD_AI_STATUS = _spec(
    "brightdata_ai_flow_status",
    "stateset",
    "Status of the collector's latest AI flow; absent when it never ran one." + CACHED,
    ("collector", "status"),
    S_AI,
    "status",
)
BD_AI_STEP = _spec(
    "brightdata_ai_flow_step",
    "stateset",
    "Current or last step of the collector's latest AI flow." + CACHED,
    ("collector", "step"),
    S_AI,
    "step",
)
BD_AI_COMPLETED = _spec(
    "brightdata_ai_flow_completed_steps",
    "gauge",
    "Number of AI flow steps completed so far (repeats included)." + CACHED,
    ("collector",),
    S_AI,
    "len(completed_steps)",
)

# --- Aitronos scrape jobs (GET {prefix}/scrape/jobs/{job_id}/progress) -----------------------

AJOB = ("job_id",)
S_AIT = "Aitronos scrape jobs"
AIT_STATUS = _spec(
    "aitronos_job_status",
    "stateset",
    "Aitronos job status; exactly one status is 1." + CACHED,
    (*AJOB, "status"),
    S_AIT,
    "status",
)
AIT_REASON = _spec(
    "aitronos_job_completion_reason",
    "stateset",
    "Why the job completed; all 0 while it runs." + CACHED,
    (*AJOB, "reason"),
    S_AIT,
    "completion_reason",
)
_AIT_GAUGES: tuple[tuple[str, Callable[[AitronosJob], float | None], str, str, str], ...] = (
    ("aitronos_job_progress_ratio", lambda j: None if j.progress_percentage is None else j.progress_percentage / 100, "Progress, 0 to 1.", "progress_percentage / 100", "ratio"),
    ("aitronos_job_current_page", lambda j: j.current_page, "Page being processed.", "current_page", ""),
    ("aitronos_job_pages_scraped", lambda j: j.pages_scraped, "Pages scraped so far.", "total_pages_scraped", ""),
    ("aitronos_job_items_found", lambda j: j.items_found, "Items extracted so far.", "total_properties_found", ""),
    ("aitronos_job_pagination_complete", lambda j: None if j.pagination_complete is None else float(j.pagination_complete), "1 when pagination finished.", "pagination_complete", ""),
    ("aitronos_job_processing_seconds", lambda j: j.processing_time, "Total processing time (final).", "processing_time", "seconds"),
    ("aitronos_job_running_seconds", lambda j: j.running_time, "Running time while processing.", "running_time", "seconds"),
    ("aitronos_job_created_timestamp_seconds", lambda j: j.created, "When the job was created.", "created_at", "seconds"),
    ("aitronos_job_completed_timestamp_seconds", lambda j: j.completed, "When the job completed.", "completed_at", "seconds"),
)  # fmt: skip
AIT_GAUGES = _gauges(_AIT_GAUGES, AJOB, S_AIT)
AIT_STALLED = _spec(
    "aitronos_job_stalled",
    "gauge",
    "1 if the processing job's progress_percentage has not moved for stall.no_progress_after; "
    "present while processing.",
    AJOB,
    S_AIT,
    "progress_percentage over time",
)
AIT_ETA = _spec(
    "aitronos_job_eta_seconds",
    "gauge",
    "Estimated time to completion from the observed rate of progress; absent without enough data.",
    AJOB,
    S_AIT,
    "progress_percentage over time",
    "seconds",
)

# --- Aggregates: counted once per finished job, kept when the job's own series expire --------

S_AGG = "Aggregates over finished targets"
COL = ("collector",)
AGG_JOBS_FINISHED = _spec(
    "brightdata_collector_jobs_finished_total",
    "counter",
    "Scraper Studio jobs seen finishing, by final status.",
    (*COL, "status"),
    S_AGG,
    "status",
)
AGG_LINES = _spec(
    "brightdata_collector_lines_total",
    "counter",
    "Output records of finished Scraper Studio jobs.",
    COL,
    S_AGG,
    "lines",
)
AGG_FAILURES = _spec(
    "brightdata_collector_failures_total",
    "counter",
    "Failures of finished Scraper Studio jobs.",
    COL,
    S_AGG,
    "fails",
)
AGG_DURATION = _spec(
    "brightdata_finished_job_duration_seconds",
    "histogram",
    "Run time of finished Scraper Studio jobs.",
    COL,
    S_AGG,
    "job_time (ms)",
    "seconds",
)
AGG_QUEUE = _spec(
    "brightdata_finished_job_queue_seconds",
    "histogram",
    "Queue time of finished Scraper Studio jobs.",
    COL,
    S_AGG,
    "queue_time (ms)",
    "seconds",
)
AGG_LAST_SUCCESS = _spec(
    "brightdata_collector_last_success_timestamp_seconds",
    "gauge",
    "When a job of the collector last finished done.",
    COL,
    S_AGG,
    "finished",
    "seconds",
)
AGG_SNAPSHOTS_FINISHED = _spec(
    "brightdata_dataset_snapshots_finished_total",
    "counter",
    "Snapshots seen finishing, by final status.",
    ("dataset_id", "status"),
    S_AGG,
    "status",
)
AGG_AI_FLOWS_FINISHED = _spec(
    "brightdata_ai_flows_finished_total",
    "counter",
    "AI flows seen finishing, by final status.",
    ("status",),
    S_AGG,
    "status",
)
AGG_AIT_FINISHED = _spec(
    "aitronos_jobs_finished_total",
    "counter",
    "Aitronos jobs seen finishing, by final status.",
    ("status",),
    S_AGG,
    "status",
)
AGG_AIT_ITEMS = _spec(
    "aitronos_items_found_total",
    "counter",
    "Items extracted by finished Aitronos jobs.",
    (),
    S_AGG,
    "total_properties_found",
)
AGG_AIT_PROCESSING = _spec(
    "aitronos_finished_job_processing_seconds",
    "histogram",
    "Processing time of finished Aitronos jobs.",
    (),
    S_AGG,
    "processing_time",
    "seconds",
)

AGG_PAGE_LOADS = _spec(
    "brightdata_collector_page_loads_total",
    "counter",
    "Billable page loads of finished Scraper Studio jobs.",
    COL,
    S_AGG,
    "page_loads (list), navigations (log)",
)
AGG_INPUT_ERRORS = _spec(
    "brightdata_collector_input_errors_total",
    "counter",
    "Failed inputs of finished Scraper Studio jobs by error group (see "
    "brightdata_job_input_errors); added when a counted job's hp_errors are read.",
    (*COL, "group"),
    S_AGG,
    "hp_errors error",
)
AGG_DATASET_RECORDS = _spec(
    "brightdata_dataset_records_total",
    "counter",
    "Records of finished snapshots.",
    ("dataset_id",),
    S_AGG,
    "dataset_size (list), records (progress)",
)
AGG_SNAPSHOT_DURATION = _spec(
    "brightdata_finished_snapshot_duration_seconds",
    "histogram",
    "Duration of finished snapshots, from their logs.",
    ("dataset_id",),
    S_AGG,
    "Duration (log)",
    "seconds",
)
AGG_AIT_FAILURES = _spec(
    "aitronos_job_failures_total",
    "counter",
    "Failed Aitronos jobs by reason: blocked, timeout, not_found or other, from the words of "
    "their error_message (the text itself is only on the landing page).",
    ("reason",),
    S_AGG,
    "error_message",
)

# --- The exporter itself ---------------------------------------------------------------------

TGT = ("provider", "kind", "target")
S_SELF = "The exporter itself"
TARGET_UP = _spec(
    "scrapejobs_exporter_target_up",
    "gauge",
    "1 if the latest poll of the target worked, 0 if it failed.",
    TGT,
    S_SELF,
)
TARGET_LAST_SUCCESS = _spec(
    "scrapejobs_exporter_target_last_success_timestamp_seconds",
    "gauge",
    "When the target was last polled successfully; for targets still polled.",
    TGT,
    S_SELF,
    unit="seconds",
)
API_REQUESTS = _spec(
    "scrapejobs_exporter_api_requests_total",
    "counter",
    "Provider API requests by endpoint template and HTTP status (or timeout/connect).",
    ("provider", "endpoint", "code"),
    S_SELF,
)
API_DURATION = _spec(
    "scrapejobs_exporter_api_request_duration_seconds",
    "histogram",
    "Provider API request latency.",
    ("provider", "endpoint"),
    S_SELF,
    unit="seconds",
)
API_ERRORS = _spec(
    "scrapejobs_exporter_api_errors_total",
    "counter",
    "Failed provider API calls by reason: timeout, connect, http_4xx, http_5xx, rate_limited, "
    "bad_body, too_large.",
    ("provider", "endpoint", "reason"),
    S_SELF,
)
RATE_LIMIT_LIMIT = _spec(
    "scrapejobs_exporter_api_rate_limit_limit",
    "gauge",
    "Request limit the provider announced in its X-RateLimit-Limit header.",
    ("provider",),
    S_SELF,
)
RATE_LIMIT_REMAINING = _spec(
    "scrapejobs_exporter_api_rate_limit_remaining",
    "gauge",
    "Requests left the provider announced in its X-RateLimit-Remaining header.",
    ("provider",),
    S_SELF,
)
POLL_CYCLE = _spec(
    "scrapejobs_exporter_poll_cycle_duration_seconds",
    "histogram",
    "Time one list sweep took (a list's pages read and its rows applied).",
    (),
    S_SELF,
    unit="seconds",
)
TRACKED = _spec(
    "scrapejobs_exporter_tracked_targets",
    "gauge",
    "Targets currently tracked.",
    ("provider", "kind"),
    S_SELF,
)
UNKNOWN_STATUS = _spec(
    "scrapejobs_exporter_unknown_status_total",
    "counter",
    "Polled responses whose status was missing or not recognised (exported as unknown).",
    ("provider", "kind"),
    S_SELF,
)
EVICTED = _spec(
    "scrapejobs_exporter_evicted_targets_total",
    "counter",
    "Targets dropped by retention.finished_ttl or retention.max_tracked.",
    ("provider", "kind"),
    S_SELF,
)
BUILD_INFO = _spec(
    "scrapejobs_exporter_build_info",
    "info",
    "Build information; always 1. `revision` and `branch` are `unknown` outside a git checkout.",
    ("version", "revision", "branch", "pythonversion"),
    S_SELF,
)
API_RETRIES = _spec(
    "scrapejobs_exporter_api_retries_total",
    "counter",
    "Provider API calls retried after a timeout, a dropped connection or a 5xx.",
    ("provider", "endpoint"),
    S_SELF,
)
RATE_LIMIT_WAIT = _spec(
    "scrapejobs_exporter_rate_limit_wait_seconds_total",
    "counter",
    "Time calls spent waiting for the provider's request budget or a pause after a 429.",
    ("provider",),
    S_SELF,
    unit="seconds",
)
CIRCUIT_OPEN = _spec(
    "scrapejobs_exporter_circuit_open",
    "gauge",
    "1 while calls to the provider are suspended after repeated failures (probing at a low rate).",
    ("provider",),
    S_SELF,
)
RELOAD_OK = _spec(
    "scrapejobs_exporter_config_last_reload_successful",
    "gauge",
    "1 if the last configuration reload attempt succeeded.",
    (),
    S_SELF,
)
RELOAD_TIME = _spec(
    "scrapejobs_exporter_config_last_reload_success_timestamp_seconds",
    "gauge",
    "When the configuration was last loaded successfully.",
    (),
    S_SELF,
    unit="seconds",
)
REFUSED_IDS = _spec(
    "scrapejobs_exporter_refused_ids_total",
    "counter",
    "Ids in provider replies that were not used, by reason: too_long or bad_shape (not the "
    "documented form, e.g. j_... or s_...; never put in a URL), mismatch (a reply about another "
    "id than the one asked for), duplicate (a list naming an id twice).",
    ("provider", "reason"),
    S_SELF,
)
IGNORED_SAMPLES = _spec(
    "scrapejobs_exporter_ignored_samples_total",
    "counter",
    "Provider values a counter or histogram cannot take (reason: negative, not_finite); the "
    "finished job is counted, the value is left out.",
    ("metric", "reason"),
    S_SELF,
)

S_STATE = "The exporter's state file (`state_file:`; absent without one)"
STATE_FILE_STATUS = _spec(
    "scrapejobs_exporter_state_file_status",
    "stateset",
    "How the state file was found at start, exactly one is 1: restored, created (new or empty), "
    "corrupt (moved aside to <file>.corrupt, started empty), newer_version (left untouched, "
    "started empty, not written) or unwritable (started empty, not written).",
    ("status",),
    S_STATE,
)
STATE_FILE_WRITES = _spec(
    "scrapejobs_exporter_state_file_writes_total",
    "counter",
    "Successful writes of the state file (each one transaction with every change since the last).",
    (),
    S_STATE,
)
STATE_FILE_WRITE_ERRORS = _spec(
    "scrapejobs_exporter_state_file_write_errors_total",
    "counter",
    "Failed writes of the state file; their changes are retried with the next write.",
    (),
    S_STATE,
)
STATE_FILE_LAST_WRITE = _spec(
    "scrapejobs_exporter_state_file_last_write_timestamp_seconds",
    "gauge",
    "When the last successful write of the state file was taken.",
    (),
    S_STATE,
    unit="seconds",
)


# --- per-target families: one declaration, read by both renderers ---------------------------


@dataclass(frozen=True, slots=True)
class PerTarget:
    """How one per-target family's samples come from each target of `kind`.

    A gauge has `value`; a state set has `states` and `current` (the state that is 1); an info
    metric has only `current` (the value of its last label). They read the target's model, or
    the target itself with `of_target`. `kind` None means every target (the exporter's own
    per-target metrics, present even before a first successful poll).
    """

    spec: MetricSpec
    kind: tuple[str, str] | None
    value: Callable[[Any], float | None] | None = None
    states: tuple[str, ...] = ()
    current: Callable[[Any], str | None] | None = None
    of_target: bool = False
    # Several samples per target, one per value of the last label (a count per error group).
    by_label: Callable[[Any], Iterable[tuple[str, float]] | None] | None = None


def _stalled(target: Target) -> float | None:
    return None if target.progress is None else (1.0 if target.stalled else 0.0)


def _eta(target: Target) -> float | None:
    return None if target.progress is None else target.eta


def _up(target: Target) -> float | None:
    return None if target.up is None else (1.0 if target.up else 0.0)


# Only for targets still polled. A final target is never polled again: its last success would
# grow stale without bound on the staleness panel (`time() - last_success`), and at 50,000
# finished jobs these frozen series would be a tenth of the page.
def _last_success(target: Target) -> float | None:
    return None if target.up is None or target.final else target.last_success


def _input_errors(target: Target) -> Iterable[tuple[str, float]] | None:
    report = target.report
    return report.items() if isinstance(report, ErrorGroups) else None


BD_JOB_KIND, BD_SNAP_KIND = STUDIO_JOB.key, SNAPSHOT.key
BD_AI_KIND, AIT_KIND = AI_FLOW.key, AITRONOS_JOB.key
PER_TARGET: tuple[PerTarget, ...] = (
    PerTarget(
        BD_JOB_STATUS, BD_JOB_KIND, states=brightdata.JOB_STATUSES, current=attrgetter("status")
    ),
    PerTarget(BD_JOB_INFO, BD_JOB_KIND, current=attrgetter("template")),
    *(PerTarget(spec, BD_JOB_KIND, value=attrgetter(attr)) for spec, attr in JOB_GAUGES),
    PerTarget(BD_JOB_STALLED, BD_JOB_KIND, value=_stalled, of_target=True),
    PerTarget(BD_JOB_ETA, BD_JOB_KIND, value=_eta, of_target=True),
    PerTarget(BD_JOB_INPUT_ERRORS, BD_JOB_KIND, of_target=True, by_label=_input_errors),
    PerTarget(
        BD_SNAPSHOT_STATUS,
        BD_SNAP_KIND,
        states=brightdata.SNAPSHOT_STATUSES,
        current=attrgetter("status"),
    ),
    *(PerTarget(spec, BD_SNAP_KIND, value=get, of_target=True) for spec, get in SNAP_GAUGES),
    PerTarget(
        BD_AI_STATUS, BD_AI_KIND, states=brightdata.AI_FLOW_STATUSES, current=attrgetter("status")
    ),
    PerTarget(BD_AI_STEP, BD_AI_KIND, states=brightdata.AI_FLOW_STEPS, current=attrgetter("step")),
    PerTarget(BD_AI_COMPLETED, BD_AI_KIND, value=attrgetter("completed_steps")),
    PerTarget(AIT_STATUS, AIT_KIND, states=aitronos.JOB_STATUSES, current=attrgetter("status")),
    # No reason yet (still running): every reason is 0, hence "" rather than None.
    PerTarget(
        AIT_REASON,
        AIT_KIND,
        states=aitronos.COMPLETION_REASONS,
        current=lambda j: j.completion_reason or "",
    ),
    *(PerTarget(spec, AIT_KIND, value=get) for spec, get in AIT_GAUGES),
    PerTarget(AIT_STALLED, AIT_KIND, value=_stalled, of_target=True),
    PerTarget(AIT_ETA, AIT_KIND, value=_eta, of_target=True),
    PerTarget(TARGET_UP, None, value=_up, of_target=True),
    PerTarget(TARGET_LAST_SUCCESS, None, value=_last_success, of_target=True),
)


def group_targets(store: Store) -> dict[tuple[str, str] | None, list[Target]]:
    """Targets with a model by (provider, kind), and every target under None."""
    groups: dict[tuple[str, str] | None, list[Target]] = {None: []}
    for target in store:
        groups[None].append(target)
        if target.model is not None:
            groups.setdefault((target.provider, target.kind), []).append(target)
    return groups


def base_labels(target: Target) -> tuple[str, ...]:
    """The identifying label values of a target's own series (see each family's labels).

    The id is always the one we asked for (the target's), never one a reply names: two replies
    naming the same id must not make two targets' series collide."""
    if target.model is None:
        raise ValueError(f"no model to label {target.key}")
    return kind_of(target.provider, target.kind).labels(target, target.model)


def target_labels(target: Target) -> tuple[str, str, str]:
    """`provider`, `kind`, `target` of the exporter's own per-target series."""
    return (target.provider, target.kind, target.target_id)


# --- client_python metrics made from the catalogue ------------------------------------------


def make_counter(spec: MetricSpec, registry: CollectorRegistry | None) -> Counter:
    """The client_python counter for `spec`, registered on `registry` (None: not yet)."""
    assert spec.type == "counter", spec.name
    return Counter(spec.name, spec.help, spec.labels, registry=registry)


def make_gauge(spec: MetricSpec, registry: CollectorRegistry | None) -> Gauge:
    """The client_python gauge for `spec` (state sets and info metrics are gauges too)."""
    assert spec.type in ("gauge", "stateset", "info"), spec.name
    return Gauge(spec.name, spec.help, spec.labels, registry=registry)


def make_histogram(
    spec: MetricSpec, registry: CollectorRegistry | None, buckets: Sequence[float]
) -> Histogram:
    assert spec.type == "histogram", spec.name
    return Histogram(spec.name, spec.help, spec.labels, registry=registry, buckets=buckets)


class TrackedCollector(Collector):
    """`scrapejobs_exporter_tracked_targets`, counted from the store when the page is made."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(TRACKED.name, TRACKED.help, labels=TRACKED.labels)
        for (provider, kind), count in self.store.count_by_kind().items():
            family.add_metric((provider, kind), count)
        yield family


class StateFileCollector(Collector):
    """The state file's status and writes, read from it when the page is made."""

    def __init__(self, state: StateFile) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        state = self.state
        status = GaugeMetricFamily(
            STATE_FILE_STATUS.name, STATE_FILE_STATUS.help, labels=STATE_FILE_STATUS.labels
        )
        for name in STATUSES:
            status.add_metric((name,), 1.0 if name == state.status else 0.0)
        yield status
        yield CounterMetricFamily(STATE_FILE_WRITES.name, STATE_FILE_WRITES.help, state.writes)
        yield CounterMetricFamily(
            STATE_FILE_WRITE_ERRORS.name, STATE_FILE_WRITE_ERRORS.help, state.write_errors
        )
        if state.last_write is not None:
            yield GaugeMetricFamily(
                STATE_FILE_LAST_WRITE.name, STATE_FILE_LAST_WRITE.help, state.last_write
            )


def register_build_info(registry: CollectorRegistry) -> None:
    make_gauge(BUILD_INFO, registry).labels(*build_labels()).set(1)


def markdown_table() -> str:
    """The metric reference for docs/metrics.md, generated so it cannot drift."""
    out: list[str] = []
    section = ""
    for spec in CATALOGUE.values():
        if spec.section != section:
            section = spec.section
            out += ["", f"### {section}", "", "| Metric | Type | Labels | Source | Unit | Help |"]
            out.append("| --- | --- | --- | --- | --- | --- |")
        labels = ", ".join(f"`{label}`" for label in spec.labels) or "-"
        source = f"`{spec.source}`" if spec.source else "-"
        help_ = spec.help.removesuffix(CACHED)
        row = (
            f"| `{spec.name}` | {spec.type} | {labels} | {source} | {spec.unit or '-'} | {help_} |"
        )
        out.append(row)
    return "\n".join(out).strip() + "\n"


def update_doc(path: str) -> None:
    """Rewrite the generated block of docs/metrics.md in place."""
    import re
    from pathlib import Path

    doc = Path(path)
    block = f"<!-- BEGIN CATALOGUE -->\n{markdown_table()}<!-- END CATALOGUE -->"
    text = re.sub(
        r"<!-- BEGIN CATALOGUE -->\n.*<!-- END CATALOGUE -->", block, doc.read_text(), flags=re.S
    )
    doc.write_text(text)


if (
    __name__ == "__main__"
):  # pragma: no cover - `python -m scrapejobs_exporter.metrics [--update FILE]`
    import sys

    if sys.argv[1:2] == ["--update"]:
        update_doc(sys.argv[2] if len(sys.argv) > 2 else "docs/metrics.md")
    else:
        print(markdown_table(), end="")
