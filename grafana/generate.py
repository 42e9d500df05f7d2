"""Generate the Grafana dashboards of scrapejobs-exporter.

The dashboards are described declaratively below (``PanelSpec``/``Query``) and turned into
Grafana JSON with the pinned ``grafana-foundation-sdk`` builders. Run
``python -m grafana.generate`` (``make dashboards``) from the repository root to rewrite
``grafana/dashboards/*.json``; ``--check`` only reports whether the committed files are
up to date.

Conventions every panel follows (and tests/test_dashboards.py checks):

* the data source is the ``$datasource`` template variable;
* every range selector in a ``rate()``-like function is ``[$__rate_interval]``; longer
  windows come from the recording rules in ``prometheus/rules/recording.rules.yml``;
* every panel sets a unit.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    DataTransformerConfig,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"
TAG = "scrapejobs-exporter"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")

PanelKind = Literal["timeseries", "stat", "table"]


@dataclass(frozen=True)
class Query:
    """One PromQL query of a panel.

    ``sparse`` marks queries that may legitimately return nothing, e.g. because they
    only show jobs in a certain state or data the provider sends only sometimes.
    """

    expr: str
    legend: str = ""
    sparse: bool = False


@dataclass(frozen=True)
class PanelSpec:
    title: str
    kind: PanelKind
    unit: str
    queries: Sequence[Query]
    description: str = ""
    width: int = 12
    height: int = 8
    # Table panels: column renames ("Value #A" -> "Pages") and hidden columns.
    columns: dict[str, str] = field(default_factory=dict)
    column_units: dict[str, str] = field(default_factory=dict)
    hidden_columns: Sequence[str] = ()
    stacked: bool = False
    min: float | None = None
    max: float | None = None
    text_mode: common.BigValueTextMode | None = None


@dataclass(frozen=True)
class RowSpec:
    title: str
    panels: Sequence[PanelSpec]


@dataclass(frozen=True)
class VariableSpec:
    name: str
    label: str
    query: str
    multi: bool = True
    include_all: bool = True


@dataclass(frozen=True)
class DashboardSpec:
    uid: str
    title: str
    description: str
    variables: Sequence[VariableSpec]
    rows: Sequence[RowSpec]
    filename: str


# --------------------------------------------------------------------------------------
# Dashboard definitions
# --------------------------------------------------------------------------------------

C = 'collector=~"$collector"'
JOB = 'collector=~"$collector", job_id=~"$job_id"'
RUNNING = 'and on (collector, job_id) brightdata_job_status{status="running"} == 1'
E = 'job=~"$job", provider=~"$provider"'
TRACKED = f"sum by (provider, kind) (scrapejobs_exporter_tracked_targets{{{E}}})"


def progress(selector: str) -> str:
    """The fraction of a Studio job's pages done: `pages` is the job's total (the landing page
    and `watch` show the same), so done = pages - pages_left."""
    return (
        f"(brightdata_job_pages{{{selector}}} - brightdata_job_pages_left{{{selector}}})"
        f"\n/\n(brightdata_job_pages{{{selector}}} > 0)"
    )


def _or_zero(expr: str, fallback: str) -> str:
    """``expr`` or, for label sets it lacks, zeros shaped like ``fallback``.

    Counters with labels only appear once incremented; this keeps a 0 line instead of
    an empty panel for a counter (e.g. failed jobs) that has not been incremented yet.
    """
    return f"{expr}\nor\n{fallback} * 0"


OVERVIEW = DashboardSpec(
    uid="scrapejobs-overview",
    title="Scrape jobs / Overview",
    description="Bright Data and Aitronos scraping jobs as seen by scrapejobs-exporter.",
    filename="overview.json",
    variables=(
        VariableSpec("collector", "Collector", "label_values(brightdata_job_status, collector)"),
    ),
    rows=(
        RowSpec(
            "Bright Data jobs",
            (
                PanelSpec(
                    "Running jobs",
                    "stat",
                    "short",
                    (Query(f'sum(brightdata_job_status{{{C}, status="running"}})'),),
                    width=6,
                    height=4,
                ),
                PanelSpec(
                    "Stalled jobs",
                    "stat",
                    "short",
                    (Query(f"sum(brightdata_job_stalled{{{C}}})"),),
                    description="Running Bright Data jobs the exporter marks as stalled.",
                    width=6,
                    height=4,
                ),
                PanelSpec(
                    "Success ratio (1h)",
                    "stat",
                    "percentunit",
                    (
                        Query(
                            f"sum(collector:brightdata_collector_jobs_done:rate1h{{{C}}})\n/\n"
                            f"sum(collector:brightdata_collector_jobs_finished:rate1h{{{C}}})"
                        ),
                    ),
                    description="Share of the jobs finished in the last hour that ended done.",
                    width=6,
                    height=4,
                    min=0,
                    max=1,
                ),
                PanelSpec(
                    "Failed jobs (1h)",
                    "stat",
                    "short",
                    (
                        Query(
                            f"sum(collector:brightdata_collector_jobs_failed:rate1h{{{C}}}) * 3600"
                        ),
                    ),
                    description="Jobs that finished with status failed in the last hour.",
                    width=6,
                    height=4,
                ),
                PanelSpec(
                    "Jobs by status per collector",
                    "timeseries",
                    "short",
                    (
                        Query(
                            f"collector_status:brightdata_job_status:sum{{{C}}}",
                            "{{collector}} {{status}}",
                        ),
                    ),
                    description="Tracked Bright Data jobs by collector and current status.",
                    stacked=True,
                ),
                PanelSpec(
                    "Success ratio by collector (1h)",
                    "timeseries",
                    "percentunit",
                    (
                        Query(
                            f"collector:brightdata_collector_jobs_success:ratio_rate1h{{{C}}}",
                            "{{collector}}",
                        ),
                    ),
                    min=0,
                    max=1,
                ),
                PanelSpec(
                    "Finished jobs per hour by status",
                    "timeseries",
                    "short",
                    (
                        Query(
                            "sum by (collector, status) (rate(brightdata_collector_jobs_finished"
                            f"_total{{{C}}}[$__rate_interval])) * 3600",
                            "{{collector}} {{status}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Failure rate",
                    "timeseries",
                    "short",
                    (
                        Query(
                            _or_zero(
                                "sum by (collector) (rate(brightdata_collector_jobs_finished_total"
                                f'{{{C}, status="failed"}}[$__rate_interval])) * 3600',
                                "sum by (collector) (rate(brightdata_collector_jobs_finished_total"
                                f"{{{C}}}[$__rate_interval]))",
                            ),
                            "{{collector}} failed jobs/h",
                        ),
                        Query(
                            _or_zero(
                                "sum by (collector) (rate(brightdata_collector_failures_total"
                                f"{{{C}}}[$__rate_interval])) * 3600",
                                "sum by (collector) (rate(brightdata_collector_lines_total"
                                f"{{{C}}}[$__rate_interval]))",
                            ),
                            "{{collector}} failed inputs/h",
                        ),
                    ),
                    description="Jobs that finished failed and failed inputs, per hour.",
                ),
                PanelSpec(
                    "Finished job duration p50 / p95 (1h)",
                    "timeseries",
                    "s",
                    (
                        Query(
                            f"collector:brightdata_finished_job_duration_seconds:p50_rate1h{{{C}}}",
                            "{{collector}} p50",
                        ),
                        Query(
                            f"collector:brightdata_finished_job_duration_seconds:p95_rate1h{{{C}}}",
                            "{{collector}} p95",
                        ),
                    ),
                ),
                PanelSpec(
                    "Queue time p50 / p95 (1h)",
                    "timeseries",
                    "s",
                    (
                        Query(
                            f"collector:brightdata_finished_job_queue_seconds:p50_rate1h{{{C}}}",
                            "{{collector}} p50",
                        ),
                        Query(
                            f"collector:brightdata_finished_job_queue_seconds:p95_rate1h{{{C}}}",
                            "{{collector}} p95",
                        ),
                    ),
                ),
                PanelSpec(
                    "Lines per second",
                    "timeseries",
                    "short",
                    (
                        Query(
                            "sum by (collector) (rate(brightdata_collector_lines_total"
                            f"{{{C}}}[$__rate_interval]))",
                            "{{collector}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Stalled jobs by collector",
                    "timeseries",
                    "short",
                    (
                        Query(
                            f"sum by (collector) (brightdata_job_stalled{{{C}}})",
                            "{{collector}}",
                        ),
                    ),
                ),
            ),
        ),
        RowSpec(
            "Running jobs",
            (
                PanelSpec(
                    "Running jobs",
                    "table",
                    "short",
                    (
                        Query(
                            f"{progress(C)}\n{RUNNING}",
                            sparse=True,
                        ),
                        Query(f"brightdata_job_pages{{{C}}}\n{RUNNING}", sparse=True),
                        Query(f"brightdata_job_pages_left{{{C}}}\n{RUNNING}", sparse=True),
                        Query(f"brightdata_job_lines{{{C}}}\n{RUNNING}", sparse=True),
                        Query(f"brightdata_job_failures{{{C}}}\n{RUNNING}", sparse=True),
                        Query(f"brightdata_job_eta_seconds{{{C}}}\n{RUNNING}", sparse=True),
                        Query(f"brightdata_job_stalled{{{C}}}\n{RUNNING}", sparse=True),
                    ),
                    description="Bright Data jobs with status running and their progress "
                    "(pages done / pages, where `pages` is the job's total).",
                    width=24,
                    height=10,
                    columns={
                        "Value #A": "Progress",
                        "Value #B": "Pages",
                        "Value #C": "Pages left",
                        "Value #D": "Lines",
                        "Value #E": "Failures",
                        "Value #F": "ETA",
                        "Value #G": "Stalled",
                    },
                    column_units={"Value #A": "percentunit", "Value #F": "s"},
                    hidden_columns=("Time", "__name__", "instance", "job"),
                ),
            ),
        ),
        RowSpec(
            "Snapshots and AI flows",
            (
                PanelSpec(
                    "Snapshots by status",
                    "timeseries",
                    "short",
                    (
                        Query(
                            "sum by (status) (brightdata_snapshot_status)",
                            "{{status}}",
                        ),
                    ),
                    description="Tracked Bright Data dataset snapshots by current status.",
                    stacked=True,
                ),
                PanelSpec(
                    "AI flows by status",
                    "timeseries",
                    "short",
                    (
                        Query(
                            f"sum by (status) (brightdata_ai_flow_status{{{C}}})",
                            "{{status}}",
                        ),
                    ),
                    stacked=True,
                ),
                PanelSpec(
                    "AI flows and their current step",
                    "table",
                    "short",
                    (
                        Query(f"brightdata_ai_flow_step{{{C}}} == 1"),
                        Query(f"brightdata_ai_flow_completed_steps{{{C}}}"),
                    ),
                    description="Current step (state set value 1) and completed steps "
                    "of every tracked AI flow.",
                    width=24,
                    columns={"Value #A": "In step", "Value #B": "Completed steps"},
                    hidden_columns=("Time", "__name__", "instance", "job", "Value #A"),
                ),
            ),
        ),
        RowSpec(
            "Aitronos",
            (
                PanelSpec(
                    "Aitronos job progress",
                    "timeseries",
                    "percentunit",
                    (Query("aitronos_job_progress_ratio", "{{job_id}}"),),
                    min=0,
                    max=1,
                ),
                PanelSpec(
                    "Aitronos jobs by status",
                    "timeseries",
                    "short",
                    (Query("sum by (status) (aitronos_job_status)", "{{status}}"),),
                    stacked=True,
                ),
                PanelSpec(
                    "Aitronos jobs",
                    "table",
                    "short",
                    (
                        Query("aitronos_job_status == 1"),
                        Query("aitronos_job_progress_ratio"),
                        Query("aitronos_job_pages_scraped"),
                        Query("aitronos_job_items_found"),
                        Query("aitronos_job_processing_seconds"),
                        Query("aitronos_job_eta_seconds", sparse=True),
                    ),
                    width=24,
                    columns={
                        "Value #B": "Progress",
                        "Value #C": "Pages scraped",
                        "Value #D": "Items found",
                        "Value #E": "Processing time",
                        "Value #F": "ETA",
                    },
                    column_units={"Value #B": "percentunit", "Value #E": "s", "Value #F": "s"},
                    hidden_columns=("Time", "__name__", "instance", "job", "Value #A"),
                ),
                PanelSpec(
                    "Aitronos finished jobs per hour",
                    "timeseries",
                    "short",
                    (
                        Query(
                            "sum by (status) (rate(aitronos_jobs_finished_total"
                            "[$__rate_interval])) * 3600",
                            "{{status}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Aitronos processing time p50 / p95 (1h)",
                    "timeseries",
                    "s",
                    (
                        Query("job:aitronos_finished_job_processing_seconds:p50_rate1h", "p50"),
                        Query("job:aitronos_finished_job_processing_seconds:p95_rate1h", "p95"),
                    ),
                ),
            ),
        ),
        RowSpec(
            "Yield and failure reasons",
            (
                PanelSpec(
                    "Records per finished job",
                    "timeseries",
                    "short",
                    (
                        Query(
                            f"sum by (collector) (rate(brightdata_collector_lines_total{{{C}}}"
                            "[$__rate_interval]))\n/\n"
                            "(sum by (collector) (rate(brightdata_collector_jobs_finished_total"
                            f"{{{C}}}[$__rate_interval])) > 0)",
                            "{{collector}}",
                        ),
                        Query(
                            f"collector:brightdata_collector_lines_per_job:ratio_increase7d{{{C}}}",
                            "{{collector}} 7-day level",
                        ),
                    ),
                    description="Output records per job finished, by collector, against the "
                    "collector's 7-day level: BrightDataCollectorOutputDropped fires below half.",
                ),
                PanelSpec(
                    "Page loads per record",
                    "timeseries",
                    "short",
                    (
                        Query(
                            "sum by (collector) (rate(brightdata_collector_page_loads_total"
                            f"{{{C}}}[$__rate_interval]))\n/\n"
                            f"(sum by (collector) (rate(brightdata_collector_lines_total{{{C}}}"
                            "[$__rate_interval])) > 0)",
                            "{{collector}}",
                        ),
                    ),
                    description="Billable page loads of finished jobs per output record: "
                    "rising means retries or pages that no longer yield.",
                ),
                PanelSpec(
                    "Failed inputs by error group per hour",
                    "timeseries",
                    "short",
                    (
                        Query(
                            "sum by (group) (rate(brightdata_collector_input_errors_total"
                            f"{{{C}}}[$__rate_interval])) * 3600",
                            "{{group}}",
                        ),
                    ),
                    description="Why inputs of finished jobs failed (hp_errors, read once per "
                    "finished job with failures), in Bright Data's documented error groups.",
                    stacked=True,
                ),
                PanelSpec(
                    "Failed page loads, 6 h against 7 d",
                    "timeseries",
                    "percentunit",
                    (
                        Query(
                            "collector:brightdata_collector_failures_per_page_load"
                            f":ratio_increase6h{{{C}}}",
                            "{{collector}} 6 h",
                        ),
                        Query(
                            "collector:brightdata_collector_failures_per_page_load"
                            f":ratio_increase7d{{{C}}}",
                            "{{collector}} 7 d",
                        ),
                    ),
                    description="Failed pages per billable page load: "
                    "BrightDataCollectorFailureRatioHigh fires above twice the 7-day level.",
                    min=0,
                ),
                PanelSpec(
                    "Aitronos failed jobs by reason per hour",
                    "timeseries",
                    "short",
                    (
                        Query(
                            "sum by (reason) (rate(aitronos_job_failures_total"
                            "[$__rate_interval])) * 3600",
                            "{{reason}}",
                        ),
                    ),
                    description="Failed Aitronos jobs by the reason their error message gives.",
                    stacked=True,
                ),
                PanelSpec(
                    "Aitronos items per finished job, 6 h against 7 d",
                    "timeseries",
                    "short",
                    (
                        Query("job:aitronos_items_found_per_job:ratio_increase6h", "6 h"),
                        Query("job:aitronos_items_found_per_job:ratio_increase7d", "7 d"),
                    ),
                    description="AitronosItemsFoundDropped fires when 6 h falls below half 7 d.",
                ),
            ),
        ),
        RowSpec(
            "Snapshots in depth",
            (
                PanelSpec(
                    "Records of finished snapshots per hour",
                    "timeseries",
                    "short",
                    (
                        Query(
                            "sum by (dataset_id) (rate(brightdata_dataset_records_total"
                            "[$__rate_interval])) * 3600",
                            "{{dataset_id}}",
                        ),
                    ),
                    stacked=True,
                ),
                PanelSpec(
                    "Snapshot duration p50 / p95",
                    "timeseries",
                    "s",
                    (
                        Query(
                            "histogram_quantile(0.5, sum by (dataset_id, le) (rate("
                            "brightdata_finished_snapshot_duration_seconds_bucket"
                            "[$__rate_interval])))",
                            "p50 {{dataset_id}}",
                        ),
                        Query(
                            "histogram_quantile(0.95, sum by (dataset_id, le) (rate("
                            "brightdata_finished_snapshot_duration_seconds_bucket"
                            "[$__rate_interval])))",
                            "p95 {{dataset_id}}",
                        ),
                    ),
                    description="From the logs of finished snapshots.",
                ),
                PanelSpec(
                    "Snapshots",
                    "table",
                    "short",
                    (
                        Query("brightdata_snapshot_status == 1"),
                        Query("brightdata_snapshot_records"),
                        Query("brightdata_snapshot_duration_seconds"),
                        Query("brightdata_snapshot_success_ratio"),
                        Query("brightdata_snapshot_inputs"),
                        Query("brightdata_snapshot_created_timestamp_seconds * 1000"),
                    ),
                    width=24,
                    columns={
                        "Value #B": "Records",
                        "Value #C": "Duration",
                        "Value #D": "Success ratio",
                        "Value #E": "Inputs",
                        "Value #F": "Created",
                    },
                    column_units={
                        "Value #C": "s",
                        "Value #D": "percentunit",
                        "Value #F": "dateTimeAsIso",
                    },
                    hidden_columns=("Time", "__name__", "instance", "job", "Value #A"),
                ),
            ),
        ),
    ),
)


JOB_DETAIL = DashboardSpec(
    uid="scrapejobs-job-detail",
    title="Scrape jobs / Job detail",
    description="One Bright Data job: progress, pages, lines, failures and ETA.",
    filename="job-detail.json",
    variables=(
        VariableSpec(
            "collector",
            "Collector",
            "label_values(brightdata_job_status, collector)",
            multi=False,
        ),
        VariableSpec(
            "job_id",
            "Job",
            # Every job has a status series; the info series needs a template, which list
            # rows lack.
            'label_values(brightdata_job_status{collector=~"$collector"}, job_id)',
            multi=False,
            include_all=False,
        ),
    ),
    rows=(
        RowSpec(
            "Job",
            (
                PanelSpec(
                    "Status",
                    "stat",
                    "none",
                    (Query(f"brightdata_job_status{{{JOB}}} == 1", "{{status}}"),),
                    width=4,
                    height=4,
                    text_mode=common.BigValueTextMode.NAME,
                ),
                PanelSpec(
                    "Progress",
                    "stat",
                    "percentunit",
                    (Query(progress(JOB)),),
                    width=4,
                    height=4,
                    min=0,
                    max=1,
                ),
                PanelSpec(
                    "ETA",
                    "stat",
                    "s",
                    (Query(f"brightdata_job_eta_seconds{{{JOB}}}", sparse=True),),
                    description="Estimated time until the job finishes (empty when unknown).",
                    width=4,
                    height=4,
                ),
                PanelSpec(
                    "Success ratio",
                    "stat",
                    "percentunit",
                    (Query(f"brightdata_job_success_ratio{{{JOB}}}"),),
                    width=4,
                    height=4,
                    min=0,
                    max=1,
                ),
                PanelSpec(
                    "Duration",
                    "stat",
                    "s",
                    (Query(f"brightdata_job_duration_seconds{{{JOB}}}"),),
                    width=4,
                    height=4,
                ),
                PanelSpec(
                    "Queue time",
                    "stat",
                    "s",
                    (Query(f"brightdata_job_queue_seconds{{{JOB}}}"),),
                    width=4,
                    height=4,
                ),
            ),
        ),
        RowSpec(
            "Progress over time",
            (
                PanelSpec(
                    "Progress",
                    "timeseries",
                    "percentunit",
                    (
                        Query(
                            progress(JOB),
                            "{{job_id}}",
                        ),
                    ),
                    description="(pages - pages left) / pages: `pages` is the job's total.",
                    min=0,
                    max=1,
                ),
                PanelSpec(
                    "Pages and pages left",
                    "timeseries",
                    "short",
                    (
                        Query(f"brightdata_job_pages{{{JOB}}}", "pages {{job_id}}"),
                        Query(f"brightdata_job_pages_left{{{JOB}}}", "pages left {{job_id}}"),
                    ),
                ),
                PanelSpec(
                    "Lines",
                    "timeseries",
                    "short",
                    (
                        Query(f"brightdata_job_lines{{{JOB}}}", "lines {{job_id}}"),
                        Query(
                            f"deriv(brightdata_job_lines{{{JOB}}}[$__rate_interval])",
                            "lines/s {{job_id}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Failures and successes",
                    "timeseries",
                    "short",
                    (
                        Query(f"brightdata_job_failures{{{JOB}}}", "failures {{job_id}}"),
                        Query(f"brightdata_job_successes{{{JOB}}}", "successes {{job_id}}"),
                    ),
                ),
                PanelSpec(
                    "ETA",
                    "timeseries",
                    "s",
                    (Query(f"brightdata_job_eta_seconds{{{JOB}}}", "{{job_id}}", sparse=True),),
                ),
                PanelSpec(
                    "Stalled",
                    "timeseries",
                    "bool",
                    (Query(f"brightdata_job_stalled{{{JOB}}}", "{{job_id}}"),),
                    min=0,
                    max=1,
                ),
            ),
        ),
        RowSpec(
            "Why inputs failed",
            (
                PanelSpec(
                    "Failed inputs by error group",
                    "table",
                    "short",
                    (Query(f"brightdata_job_input_errors{{{JOB}}} > 0", sparse=True),),
                    description="Read once the job finished with failures (hp_errors), in "
                    "Bright Data's documented error groups; empty for a job without failures.",
                    width=24,
                    height=6,
                    columns={"Value": "Failed inputs"},
                    hidden_columns=("Time", "__name__", "instance", "job"),
                ),
            ),
        ),
        RowSpec(
            "Inputs",
            (
                PanelSpec(
                    "Job info",
                    "table",
                    "short",
                    (
                        Query(f"brightdata_job_info{{{JOB}}}"),
                        Query(f"brightdata_job_inputs{{{JOB}}}"),
                        Query(f"brightdata_job_duplicate_inputs{{{JOB}}}"),
                        Query(f"brightdata_job_navigations{{{JOB}}}"),
                        Query(f"brightdata_job_created_timestamp_seconds{{{JOB}}} * 1000"),
                    ),
                    width=24,
                    height=6,
                    columns={
                        "Value #B": "Inputs",
                        "Value #C": "Duplicate inputs",
                        "Value #D": "Navigations",
                        "Value #E": "Created",
                    },
                    column_units={"Value #E": "dateTimeAsIso"},
                    hidden_columns=("Time", "__name__", "instance", "job", "Value #A"),
                ),
            ),
        ),
    ),
)


EXPORTER_HEALTH = DashboardSpec(
    uid="scrapejobs-exporter-health",
    title="Scrape jobs / Exporter health",
    description="Health of scrapejobs-exporter itself: targets, API calls, rate limits, polls.",
    filename="exporter-health.json",
    variables=(
        VariableSpec("job", "Scrape job", "label_values(scrapejobs_exporter_build_info, job)"),
        VariableSpec(
            "provider",
            "Provider",
            'label_values(scrapejobs_exporter_tracked_targets{job=~"$job"}, provider)',
        ),
    ),
    rows=(
        RowSpec(
            "Exporter",
            (
                PanelSpec(
                    "Exporter instances up",
                    "stat",
                    "short",
                    (Query('sum(up{job=~"$job"})'),),
                    width=6,
                    height=4,
                ),
                PanelSpec(
                    "Version",
                    "stat",
                    "none",
                    (
                        Query(
                            'count by (version) (scrapejobs_exporter_build_info{job=~"$job"})',
                            "{{version}}",
                        ),
                    ),
                    width=6,
                    height=4,
                    text_mode=common.BigValueTextMode.NAME,
                ),
                PanelSpec(
                    "Config reload successful",
                    "stat",
                    "bool",
                    (Query('min(scrapejobs_exporter_config_last_reload_successful{job=~"$job"})'),),
                    width=6,
                    height=4,
                ),
                PanelSpec(
                    "Last config reload",
                    "stat",
                    "dateTimeFromNow",
                    (
                        Query(
                            "max(scrapejobs_exporter_config_last_reload_success_timestamp_seconds"
                            '{job=~"$job"}) * 1000'
                        ),
                    ),
                    width=6,
                    height=4,
                ),
            ),
        ),
        RowSpec(
            "Targets",
            (
                PanelSpec(
                    "Targets up / down",
                    "timeseries",
                    "short",
                    (
                        Query(
                            f"sum by (provider, kind) (scrapejobs_exporter_target_up{{{E}}})",
                            "up {{provider}} {{kind}}",
                        ),
                        Query(
                            "count by (provider, kind) "
                            f"(scrapejobs_exporter_target_up{{{E}}} == 0)",
                            "down {{provider}} {{kind}}",
                            sparse=True,
                        ),
                    ),
                ),
                PanelSpec(
                    "Tracked targets",
                    "timeseries",
                    "short",
                    (
                        Query(
                            f"sum by (provider, kind) (scrapejobs_exporter_tracked_targets{{{E}}})",
                            "{{provider}} {{kind}}",
                        ),
                    ),
                    stacked=True,
                ),
                PanelSpec(
                    "Evicted targets per second",
                    "timeseries",
                    "ops",
                    (
                        Query(
                            _or_zero(
                                "sum by (provider, kind) (rate(scrapejobs_exporter_evicted_targets"
                                f"_total{{{E}}}[$__rate_interval]))",
                                TRACKED,
                            ),
                            "{{provider}} {{kind}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Time since last successful poll (max)",
                    "timeseries",
                    "s",
                    (
                        Query(
                            "max by (provider, kind) (time() - "
                            f"scrapejobs_exporter_target_last_success_timestamp_seconds{{{E}}})",
                            "{{provider}} {{kind}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Unknown statuses per second",
                    "timeseries",
                    "ops",
                    (
                        Query(
                            _or_zero(
                                "sum by (provider, kind) (rate(scrapejobs_exporter_unknown_status"
                                f"_total{{{E}}}[$__rate_interval]))",
                                TRACKED,
                            ),
                            "{{provider}} {{kind}}",
                        ),
                    ),
                    description="Provider statuses the exporter did not recognise.",
                ),
                PanelSpec(
                    "Poll cycle duration",
                    "timeseries",
                    "s",
                    (
                        Query(
                            "histogram_quantile(0.5, sum by (le) (rate("
                            'scrapejobs_exporter_poll_cycle_duration_seconds_bucket{job=~"$job"}'
                            "[$__rate_interval])))",
                            "p50",
                        ),
                        Query(
                            "histogram_quantile(0.95, sum by (le) (rate("
                            'scrapejobs_exporter_poll_cycle_duration_seconds_bucket{job=~"$job"}'
                            "[$__rate_interval])))",
                            "p95",
                        ),
                    ),
                ),
            ),
        ),
        RowSpec(
            "Provider APIs",
            (
                PanelSpec(
                    "API requests by endpoint and code",
                    "timeseries",
                    "reqps",
                    (
                        Query(
                            "sum by (provider, endpoint, code) (rate("
                            f"scrapejobs_exporter_api_requests_total{{{E}}}[$__rate_interval]))",
                            "{{provider}} {{endpoint}} {{code}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "API errors by reason",
                    "timeseries",
                    "reqps",
                    (
                        Query(
                            _or_zero(
                                "sum by (provider, reason) (rate("
                                f"scrapejobs_exporter_api_errors_total{{{E}}}[$__rate_interval]))",
                                "sum by (provider) (rate("
                                f"scrapejobs_exporter_api_requests_total{{{E}}}[$__rate_interval]))",
                            ),
                            "{{provider}} {{reason}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "API error ratio (5m)",
                    "timeseries",
                    "percentunit",
                    (
                        Query(
                            # The recording rule aggregates `job` away: filter by provider only.
                            'provider:scrapejobs_exporter_api_errors:ratio_rate5m{provider=~"$provider"}',
                            "{{provider}}",
                        ),
                    ),
                    min=0,
                ),
                PanelSpec(
                    "API request latency",
                    "timeseries",
                    "s",
                    (
                        Query(
                            "histogram_quantile(0.5, sum by (provider, le) (rate("
                            f"scrapejobs_exporter_api_request_duration_seconds_bucket{{{E}}}"
                            "[$__rate_interval])))",
                            "{{provider}} p50",
                        ),
                        Query(
                            "histogram_quantile(0.95, sum by (provider, le) (rate("
                            f"scrapejobs_exporter_api_request_duration_seconds_bucket{{{E}}}"
                            "[$__rate_interval])))",
                            "{{provider}} p95",
                        ),
                    ),
                ),
                PanelSpec(
                    "Time waiting for rate limits",
                    "timeseries",
                    "percentunit",
                    (
                        Query(
                            _or_zero(
                                "sum by (provider) (rate("
                                "scrapejobs_exporter_rate_limit_wait_seconds_total"
                                f"{{{E}}}[$__rate_interval]))",
                                "sum by (provider) (rate("
                                f"scrapejobs_exporter_api_requests_total{{{E}}}[$__rate_interval]))",
                            ),
                            "{{provider}}",
                        ),
                    ),
                    description="Seconds per second the exporter waited for provider rate limits.",
                    min=0,
                ),
                PanelSpec(
                    "Rate limit remaining",
                    "timeseries",
                    "short",
                    (
                        Query(
                            f"scrapejobs_exporter_api_rate_limit_remaining{{{E}}}",
                            "{{provider}} remaining",
                            sparse=True,
                        ),
                        Query(
                            f"scrapejobs_exporter_api_rate_limit_limit{{{E}}}",
                            "{{provider}} limit",
                            sparse=True,
                        ),
                    ),
                    description="From the providers' rate-limit headers, when they send them.",
                ),
                PanelSpec(
                    "Circuit breaker open",
                    "timeseries",
                    "bool",
                    (
                        Query(
                            f"max by (provider) (scrapejobs_exporter_circuit_open{{{E}}})",
                            "{{provider}}",
                        ),
                    ),
                    min=0,
                    max=1,
                ),
            ),
        ),
    ),
)

DASHBOARDS: tuple[DashboardSpec, ...] = (OVERVIEW, JOB_DETAIL, EXPORTER_HEALTH)


# --------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------

RefIds = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _target(query: Query, ref_id: str, instant: bool) -> prom.Dataquery:
    target = prom.Dataquery().expr(query.expr).ref_id(ref_id).datasource(DATASOURCE)
    if query.legend:
        target = target.legend_format(query.legend)
    return target.instant().format(PromQueryFormat.TABLE) if instant else target.range()


def _panel(spec: PanelSpec) -> dash.Panel | stat.Panel | table.Panel | timeseries.Panel:
    panel: stat.Panel | table.Panel | timeseries.Panel
    instant = spec.kind == "table"
    if spec.kind == "stat":
        panel = (
            stat.Panel()
            .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
            .graph_mode(common.BigValueGraphMode.AREA)
            .color_mode(common.BigValueColorMode.VALUE)
            .text_mode(spec.text_mode or common.BigValueTextMode.AUTO)
        )
    elif spec.kind == "table":
        panel = table.Panel().show_header(True)
        transformations = [DataTransformerConfig(id_val="merge", options={})]
        transformations.append(
            DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": dict.fromkeys(spec.hidden_columns, True),
                    "renameByName": dict(spec.columns),
                },
            )
        )
        panel = panel.transformations(transformations)
        for column, unit in sorted(spec.column_units.items()):
            # Overrides match the renamed column.
            panel = panel.override_by_name(
                spec.columns.get(column, column),
                [_dynamic("unit", unit)],
            )
    else:
        panel = (
            timeseries.Panel()
            .legend(
                common_builders.VizLegendOptions()
                .show_legend(True)
                .display_mode(common.LegendDisplayMode.LIST)
                .placement(common.LegendPlacement.BOTTOM)
            )
            .tooltip(
                common_builders.VizTooltipOptions()
                .mode(common.TooltipDisplayMode.MULTI)
                .sort(common.SortOrder.DESCENDING)
            )
            .fill_opacity(20 if spec.stacked else 10)
            .line_width(1)
        )
        if spec.stacked:
            panel = panel.stacking(
                common_builders.StackingConfig().mode(common.StackingMode.NORMAL)
            )
    panel = (
        panel.title(spec.title)
        .datasource(DATASOURCE)
        .unit(spec.unit)
        .span(spec.width)
        .height(spec.height)
    )
    if spec.description:
        panel = panel.description(spec.description)
    if spec.min is not None:
        panel = panel.min(spec.min)
    if spec.max is not None:
        panel = panel.max(spec.max)
    for index, query in enumerate(spec.queries):
        panel = panel.with_target(_target(query, RefIds[index], instant))
    return panel


def _dynamic(prop: str, value: object) -> Any:
    from grafana_foundation_sdk.models.dashboard import DynamicConfigValue

    return DynamicConfigValue(id_val=prop, value=value)


def _variable(spec: VariableSpec) -> dash.QueryVariable:
    variable = (
        dash.QueryVariable(spec.name)
        .label(spec.label)
        .datasource(DATASOURCE)
        .query(spec.query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(spec.multi)
        .include_all(spec.include_all)
    )
    if spec.include_all:
        variable = variable.all_value(".*")
    return variable


def build_dashboard(spec: DashboardSpec) -> dict[str, Any]:
    """Return the Grafana JSON model of one dashboard as plain data."""
    builder = (
        dash.Dashboard(spec.title)
        .uid(spec.uid)
        .description(spec.description)
        .tags([TAG])
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .time("now-3h", "now")
        .timezone("browser")
        .link(
            dash.DashboardLink("Scrape jobs")
            .type(DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
        .with_variable(
            dash.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
    )
    for variable in spec.variables:
        builder = builder.with_variable(_variable(variable))
    for row in spec.rows:
        builder = builder.with_row(dash.Row(row.title))
        for panel in row.panels:
            builder = builder.with_panel(_panel(panel))
    model: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return _normalise(model)


def _normalise(model: dict[str, Any]) -> dict[str, Any]:
    """Fill in what the SDK leaves empty: stable panel ids and non-null options."""
    for number, panel in enumerate(model["panels"], start=1):
        panel["id"] = number
        if panel.get("options") is None and panel["type"] != "row":
            panel["options"] = {}
    for variable in model["templating"]["list"]:
        # The SDK writes a zero UUID into every variable; Grafana does not need it.
        variable.pop("id", None)
        if variable["type"] != "interval":
            for key in ("auto", "auto_count", "auto_min"):
                variable.pop(key, None)
    return model


def render(model: dict[str, Any]) -> str:
    return json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate() -> dict[str, str]:
    """Map of file name -> JSON text for every dashboard."""
    return {spec.filename: render(build_dashboard(spec)) for spec in DASHBOARDS}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=DASHBOARD_DIR)
    parser.add_argument(
        "--check", action="store_true", help="only report files that are out of date"
    )
    args = parser.parse_args(argv)
    outdated = []
    for name, text in generate().items():
        path: Path = args.output / name
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        outdated.append(name)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if args.check and outdated:
        print("out of date: " + ", ".join(outdated), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
