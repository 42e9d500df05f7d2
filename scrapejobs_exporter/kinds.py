"""One declaration per watched kind: how a target of it is fetched, labelled, counted and shown.

The scheduler, discovery, the store, the metrics, the landing page and `watch` all read these
declarations instead of matching on (provider, kind) each in its own place. Adding an endpoint
of an existing kind touches its declaration, its parser and the simulator.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from scrapejobs_exporter.providers.aitronos import AitronosClient, AitronosJob, failure_reason
from scrapejobs_exporter.providers.brightdata import (
    AiFlow,
    BrightDataClient,
    ErrorGroups,
    Snapshot,
    SnapshotLog,
    StudioJob,
)

if TYPE_CHECKING:
    from scrapejobs_exporter.aggregates import Aggregates
    from scrapejobs_exporter.config import Config
    from scrapejobs_exporter.providers import Providers
    from scrapejobs_exporter.store import Target

# What the kinds hold: a poll's or a list row's model, and a finished target's one extra read.
Model = StudioJob | Snapshot | AiFlow | AitronosJob
Report = ErrorGroups | SnapshotLog

__all__ = [
    "AITRONOS_JOB",
    "AI_FLOW",
    "KINDS",
    "REPORT_TRIES",
    "SNAPSHOT",
    "STUDIO_JOB",
    "Bar",
    "Kind",
    "ReportRead",
    "kind_of",
]

Fetch = Callable[["Providers", "Target"], Awaitable["Model"]]
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class Bar:
    """A target's progress as the landing page and `watch` draw it."""

    done: float | None
    total: float | None
    unit: str  # pages, steps or percent
    ratio: float | None  # 0..1 when known


Count = Callable[["Aggregates", Any, str], None]
# A report read that keeps failing (timeouts, 5xx) is tried this many times in all; a 4xx
# answer (the endpoint does not cover this target, or its id expired) ends it at once.
REPORT_TRIES = 3


@dataclass(frozen=True, slots=True)
class ReportRead:
    """A finished target's report: one more read, of what its detail does not say (why a job's
    inputs failed, how a snapshot ran). Made once per finished run, at the provider's lowest
    priority: only with request budget left after list sweeps and detail polls (`scheduler`).

    - `wanted`: whether the finished model calls for it (never for a job without failures);
    - `fetch`: the request;
    - `count`: the aggregate hook (aggregates, model, report, collector), called once when the
      report of a target whose finish was counted arrives.
    """

    what: str  # in logs
    wanted: Callable[[Any], bool]
    fetch: Callable[[Providers, Target], Awaitable[Report]]
    count: Callable[[Aggregates, Any, Any, str], None]


def _own_id(target: Target, _model: Any) -> tuple[str, ...]:
    return (target.target_id,)


@dataclass(frozen=True, slots=True)
class Kind:
    """Everything that differs between the kinds of target.

    - `fetch`: the per-target (detail) request; `row_complete`: a list row carries every value
      the kind exports, so discovered targets are never polled one by one.
    - `final_detail`: after a list row shows a target finished, whether one more detail poll is
      owed: "required" (it adds to a counter: Aitronos items found), "spare" (only fields the
      row lacks, sent when the budget has room) or "none".
    - `recheck_finished`: seconds after which a finished target is polled again (an AI flow can
      be triggered again under the same collector); None: never.
    - `finished_at`: the provider's finish time of a model, to tell what finished before the
      exporter watched (without one, `created_at`: created after, so finished after);
      `run_id`: which run of a re-runnable target a model describes.
    - `labels`: the identifying label values of the target's own series; by default the
      target's id alone.
    - `work_left`: what is left to do (None: the kind has no progress), for stalls and ETAs.
    - `count` / `count_detail`: the aggregate hook when a target is counted finished, and when
      a detail poll brings what its already counted row lacked.
    - `report`: the one read a finished target may still owe (see `ReportRead`).
    - `failure`: why a failed target failed, as its provider says: (a reason from a fixed set
      or None, the provider's text or None); None when it did not fail.
    """

    provider: str
    name: str  # the store's kind and the `kind` label of the exporter's own series
    command: str  # `watch KIND`
    fetch: Fetch
    static_ids: Callable[[Config], list[str]]
    ensure: Count
    count: Callable[[Aggregates, Any, str, float], None]
    labels: Callable[[Target, Any], tuple[str, ...]] = _own_id
    count_detail: Count | None = None
    work_left: Callable[[Any], float | None] | None = None
    finished_at: Callable[[Any], float | None] = lambda _model: None
    created_at: Callable[[Any], float | None] = lambda _model: None
    run_id: Callable[[Any], str | None] = lambda _model: None
    row_complete: bool = False
    final_detail: str = "none"
    recheck_finished: float | None = None
    collector_of: Callable[[Any], str | None] = lambda _model: None
    no_worker: Callable[[Any], bool] = lambda _model: False  # running, but nothing happens yet
    bar: Callable[[Any], Bar | None] = lambda _model: None
    items: Callable[[Any], int | None] = lambda _model: None  # records or items produced
    report: ReportRead | None = None
    failure: Callable[[Any], tuple[str | None, str | None] | None] = lambda _model: None

    @property
    def key(self) -> tuple[str, str]:
        return (self.provider, self.name)

    def wants_report(self, target: Target) -> bool:
        """Whether the target is finished and its report still to be read."""
        read, model = self.report, target.model
        return (
            read is not None
            and model is not None
            and model.terminal
            and target.report is None
            and target.report_tries < REPORT_TRIES
            and read.wanted(model)
        )

    def polled(self, target: Target) -> bool:
        """Whether the target is fetched one by one at all."""
        return target.static or not self.row_complete

    def collector(self, target: Target) -> str:
        model = target.model
        found = None if model is None else self.collector_of(model)
        return found or target.collector or ""


def _client(providers: Providers, provider: str) -> Any:
    client = getattr(providers, provider)
    if client is None:
        raise RuntimeError(f"no {provider} client configured")
    return client


def _read_by_id(
    provider: str, read: Callable[[Any, str], Awaitable[_R]]
) -> Callable[[Providers, Target], Awaitable[_R]]:
    """A target's read that needs only its id: `read` is the provider client's method."""

    async def by_id(providers: Providers, target: Target) -> _R:
        return await read(_client(providers, provider), target.target_id)

    return by_id


# --- Bright Data Scraper Studio jobs ----------------------------------------------------------


async def _fetch_job(providers: Providers, target: Target) -> Model:
    return await _client(providers, "brightdata").job_log(target.target_id, target.collector)  # type: ignore[no-any-return]


def _job_labels(target: Target, model: StudioJob) -> tuple[str, ...]:
    return (target.target_id, model.collector or target.collector or "")


def _job_bar(model: StudioJob) -> Bar | None:
    if not model.pages:
        return None
    # A job known only from a list row has no pages_left: no bar, unless it is done.
    left = 0 if model.status == "done" else model.pages_left
    if left is None:
        return None
    done = max(0, model.pages - left)
    return Bar(done, model.pages, "pages", min(1.0, done / model.pages))


def _job_left(model: StudioJob) -> float | None:
    return None if model.pages_left is None else float(model.pages_left)


async def _fetch_job_errors(providers: Providers, target: Target) -> Report:
    errors = await _client(providers, "brightdata").job_errors(target.target_id)
    return errors.groups()  # type: ignore[no-any-return]


def _count_job_errors(a: Aggregates, _m: StudioJob, groups: ErrorGroups, collector: str) -> None:
    a.job_input_errors(collector, groups)


STUDIO_JOB = Kind(
    provider="brightdata",
    name="job",
    command="job",
    fetch=_fetch_job,
    labels=_job_labels,
    static_ids=lambda c: list(c.brightdata.jobs) if c.brightdata else [],
    ensure=lambda a, m, collector: a.ensure_collector(collector),
    count=lambda a, m, collector, now: a.job_finished(m, collector, now),
    work_left=_job_left,
    finished_at=lambda m: m.finished,
    created_at=lambda m: m.created,
    final_detail="spare",
    collector_of=lambda m: m.collector,
    # Navigations still 0 while running: no worker was ever allocated (api-reference BD-1).
    no_worker=lambda m: m.navigations == 0,
    bar=_job_bar,
    items=lambda m: m.lines,
    # Why its inputs failed (hp_errors, BD-9): only for a job with failures.
    report=ReportRead(
        "hp_errors", lambda m: (m.fails or 0) > 0, _fetch_job_errors, _count_job_errors
    ),
)


# --- Bright Data Web Scraper API snapshots ----------------------------------------------------


def _count_snapshot_log(a: Aggregates, m: Snapshot, log: SnapshotLog, _c: str) -> None:
    a.snapshot_logged(m.dataset_id or "", log)  # the label its finish was counted under


SNAPSHOT = Kind(
    provider="brightdata",
    name="snapshot",
    command="snapshot",
    fetch=_read_by_id("brightdata", BrightDataClient.snapshot_progress),
    labels=lambda target, m: (target.target_id, m.dataset_id or ""),
    static_ids=lambda c: list(c.brightdata.snapshots) if c.brightdata else [],
    ensure=lambda a, m, _c: a.ensure_dataset(m.dataset_id or ""),
    count=lambda a, m, _c, _now: a.snapshot_finished(m),
    created_at=lambda m: m.created,
    row_complete=True,
    bar=lambda m: Bar(None, None, "percent", 1.0) if m.status == "ready" else None,
    items=lambda m: m.records,
    # Its duration, inputs and success rate (the snapshot log, BD-8): once it finished.
    report=ReportRead(
        "snapshot log",
        lambda m: True,
        _read_by_id("brightdata", BrightDataClient.snapshot_log),
        _count_snapshot_log,
    ),
    failure=lambda m: (None, m.error_message) if m.status == "failed" else None,
)


# --- Bright Data AI flows (named by their collector) ------------------------------------------


def _ai_flow_bar(model: AiFlow) -> Bar | None:
    if model.completed_steps is None:
        return None
    # Steps may repeat and the pipeline length varies: no total until it is over.
    return Bar(model.completed_steps, None, "steps", 1.0 if model.status == "done" else None)


def _static_ai_flows(config: Config) -> list[str]:
    bd = config.brightdata
    return [] if bd is None or bd.ai_flows == "all" else list(bd.ai_flows)


AI_FLOW = Kind(
    provider="brightdata",
    name="ai_flow",
    command="ai-flow",
    fetch=_read_by_id("brightdata", BrightDataClient.ai_flow_progress),
    static_ids=_static_ai_flows,
    ensure=lambda a, m, _c: a.ensure_ai_flows(),
    count=lambda a, m, _c, _now: a.ai_flow_finished(m),
    run_id=lambda m: m.ai_job_id,
    recheck_finished=300.0,  # a re-trigger of the collector is seen within five minutes
    collector_of=lambda m: m.collector,
    bar=_ai_flow_bar,
    failure=lambda m: (None, m.error) if m.status == "failed" else None,
)


# --- Aitronos scrape jobs ---------------------------------------------------------------------


def _aitronos_bar(model: AitronosJob) -> Bar | None:
    if model.progress_percentage is None:
        return None
    percent = max(0.0, min(100.0, model.progress_percentage))
    return Bar(percent, 100.0, "percent", percent / 100.0)


def _aitronos_left(model: AitronosJob) -> float | None:
    if model.progress_percentage is None:
        return None
    return max(0.0, 100.0 - model.progress_percentage)


AITRONOS_JOB = Kind(
    provider="aitronos",
    name="job",
    command="aitronos-job",
    fetch=_read_by_id("aitronos", AitronosClient.job_progress),
    static_ids=lambda c: list(c.aitronos.jobs) if c.aitronos else [],
    ensure=lambda a, m, _c: a.ensure_aitronos(),
    count=lambda a, m, _c, _now: a.aitronos_job_finished(m),
    count_detail=lambda a, m, _c: a.aitronos_items_found(m),
    work_left=_aitronos_left,
    finished_at=lambda m: m.completed,
    created_at=lambda m: m.created,
    final_detail="required",  # items found is only in the detail, and feeds a counter
    bar=_aitronos_bar,
    items=lambda m: m.items_found,
    # The message in a fixed set of reasons (counted); the text itself only shown, escaped.
    failure=lambda m: (
        (failure_reason(m.error_message), m.error_message) if m.status == "failed" else None
    ),
)


# In the order they are shown and rendered.
KINDS: tuple[Kind, ...] = (STUDIO_JOB, SNAPSHOT, AI_FLOW, AITRONOS_JOB)
_BY_KEY = {k.key: k for k in KINDS}
BY_COMMAND = {k.command: k for k in KINDS}


def kind_of(provider: str, name: str) -> Kind:
    return _BY_KEY[(provider, name)]
