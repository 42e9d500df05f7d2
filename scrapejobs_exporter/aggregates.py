"""Aggregates that outlive jobs: counted once per job, when it is first seen finished."""

from __future__ import annotations

import math

from scrapejobs_exporter.config import BucketsConfig
from scrapejobs_exporter.providers.aitronos import FAILURE_REASONS, AitronosJob, failure_reason
from scrapejobs_exporter.providers.aitronos import JOB_TERMINAL as AITRONOS_TERMINAL
from scrapejobs_exporter.providers.brightdata import (
    AI_FLOW_TERMINAL,
    INPUT_ERROR_GROUPS,
    JOB_TERMINAL,
    SNAPSHOT_TERMINAL,
    AiFlow,
    ErrorGroups,
    Snapshot,
    SnapshotLog,
    StudioJob,
)
from scrapejobs_exporter.series import CounterVec, GaugeVec, HistogramVec

__all__ = ["CHECKED", "IGNORED_REASONS", "Aggregates"]

# The aggregates fed from a provider's numbers, and why such a number can be left out.
CHECKED = (
    "brightdata_collector_lines_total",
    "brightdata_collector_failures_total",
    "brightdata_finished_job_duration_seconds",
    "brightdata_finished_job_queue_seconds",
    "aitronos_items_found_total",
    "aitronos_finished_job_processing_seconds",
    "brightdata_collector_page_loads_total",
    "brightdata_dataset_records_total",
    "brightdata_finished_snapshot_duration_seconds",
)
IGNORED_REASONS = ("negative", "not_finite")


class Aggregates:
    def __init__(self, buckets: BucketsConfig) -> None:
        self.jobs_finished = CounterVec()  # collector, status
        self.snapshots_finished = CounterVec()  # dataset_id, status
        self.ai_flows_finished = CounterVec()  # status
        self.aitronos_finished = CounterVec()  # status
        self.collector_lines = CounterVec()  # collector
        self.collector_failures = CounterVec()  # collector
        self.aitronos_items = CounterVec()  # (no labels)
        self.job_duration = HistogramVec(buckets.job_duration)  # collector
        self.job_queue = HistogramVec(buckets.job_queue)  # collector
        self.aitronos_processing = HistogramVec(buckets.aitronos_processing)
        self.collector_last_success = GaugeVec()  # collector
        self.evicted = CounterVec()  # provider, kind
        self.collector_page_loads = CounterVec()  # collector
        self.collector_input_errors = CounterVec()  # collector, group
        self.dataset_records = CounterVec()  # dataset_id
        self.snapshot_duration = HistogramVec(buckets.snapshot_duration)  # dataset_id
        self.aitronos_failures = CounterVec()  # reason
        # Values a counter or histogram cannot take (a provider's negative count): metric, reason
        self.ignored = CounterVec()
        for metric in CHECKED:
            for reason in IGNORED_REASONS:
                self.ignored.inc((metric, reason), 0)

    # Every counter of a newly seen collector, dataset or kind starts at 0, so that
    # `increase()` sees the first finished job and the series exist before anything finishes.

    def ensure_collector(self, collector: str) -> None:
        key = (collector,)
        if key not in self.collector_lines.values:
            for status in JOB_TERMINAL:
                self.jobs_finished.inc((*key, status), 0)
            self.collector_lines.inc(key, 0)
            self.collector_failures.inc(key, 0)
            self.collector_page_loads.inc(key, 0)
            for group in INPUT_ERROR_GROUPS:  # a fixed set: bounded per collector
                self.collector_input_errors.inc((*key, group), 0)
            self.job_duration.ensure(key)
            self.job_queue.ensure(key)

    def ensure_dataset(self, dataset: str) -> None:
        for status in SNAPSHOT_TERMINAL:
            self.snapshots_finished.inc((dataset, status), 0)
        self.dataset_records.inc((dataset,), 0)
        self.snapshot_duration.ensure((dataset,))

    def ensure_ai_flows(self) -> None:
        for status in AI_FLOW_TERMINAL:
            self.ai_flows_finished.inc((status,), 0)

    def ensure_aitronos(self) -> None:
        if () not in self.aitronos_items.values:
            for status in AITRONOS_TERMINAL:
                self.aitronos_finished.inc((status,), 0)
            self.aitronos_items.inc((), 0)
            self.aitronos_processing.ensure(())
            for reason in FAILURE_REASONS:
                self.aitronos_failures.inc((reason,), 0)

    # Each counts one finished target; the store guarantees it happens once per target (run).

    def snapshot_finished(self, snapshot: Snapshot) -> None:
        dataset = snapshot.dataset_id or ""
        self.snapshots_finished.inc((dataset, snapshot.status))
        self._add(
            self.dataset_records, "brightdata_dataset_records_total", (dataset,), snapshot.records
        )

    def ai_flow_finished(self, flow: AiFlow) -> None:
        self.ai_flows_finished.inc((flow.status or "unknown",))

    def aitronos_job_finished(self, job: AitronosJob) -> None:
        self.aitronos_finished.inc((job.status,))
        if job.status == "failed":  # its message in a fixed set of reasons, never as a label
            self.aitronos_failures.inc((failure_reason(job.error_message),))
        self.aitronos_items_found(job)
        self._observe(
            self.aitronos_processing,
            "aitronos_finished_job_processing_seconds",
            (),
            job.processing_time,
        )

    def aitronos_items_found(self, job: AitronosJob) -> None:
        """Items found are only in the detail: added when it arrives (once, by the store)."""
        self._add(self.aitronos_items, "aitronos_items_found_total", (), job.items_found)

    def job_finished(self, job: StudioJob, collector: str, now: float) -> None:
        self._job(job, collector, now)

    def _job(self, job: StudioJob, collector: str, now: float) -> None:
        labels = (collector,)
        self.jobs_finished.inc((collector, job.status))
        self._add(self.collector_lines, "brightdata_collector_lines_total", labels, job.lines)
        self._add(self.collector_failures, "brightdata_collector_failures_total", labels, job.fails)
        self._add(
            self.collector_page_loads, "brightdata_collector_page_loads_total", labels,
            job.navigations,
        )  # fmt: skip
        self._observe(
            self.job_duration, "brightdata_finished_job_duration_seconds", labels, job.job_time
        )
        self._observe(
            self.job_queue, "brightdata_finished_job_queue_seconds", labels, job.queue_time
        )
        if job.status == "done":
            finished = job.finished if job.finished is not None else now
            previous = self.collector_last_success.get(labels)
            if previous is None or finished > previous:
                self.collector_last_success.set(labels, finished)

    # A counted target's report (read after it finished; the store calls these once).

    def job_input_errors(self, collector: str, groups: ErrorGroups) -> None:
        """A counted job's failed inputs per error group (hp_errors)."""
        for group, count in groups.items():
            if count > 0:
                self.collector_input_errors.inc((collector, group), count)

    def snapshot_logged(self, dataset: str, log: SnapshotLog) -> None:
        """A counted snapshot's duration, from its log."""
        self._observe(
            self.snapshot_duration,
            "brightdata_finished_snapshot_duration_seconds",
            (dataset,),
            log.duration,
        )

    # Counters only go up and durations are never negative: a provider's nonsensical value is
    # ignored and counted (scrapejobs_exporter_ignored_samples_total), never raised: one bad
    # job must not cost the others their cycle or their render.
    def _valid(self, metric: str, value: float | None) -> bool:
        if value is None:
            return False
        if not math.isfinite(value):
            self.ignored.inc((metric, "not_finite"))
            return False
        if value < 0:
            self.ignored.inc((metric, "negative"))
            return False
        return True

    def _add(
        self, counter: CounterVec, metric: str, labels: tuple[str, ...], value: float | None
    ) -> None:
        if self._valid(metric, value) and value:
            counter.inc(labels, float(value))

    def _observe(
        self, histogram: HistogramVec, metric: str, labels: tuple[str, ...], value: float | None
    ) -> None:
        if self._valid(metric, value):
            assert value is not None
            histogram.observe(labels, float(value))
