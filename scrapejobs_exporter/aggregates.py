"""Aggregates that outlive jobs: counted once per job, when it is first seen finished.

client_python metrics made from the catalogue, on the exporter's registry.
"""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.samples import Sample

from scrapejobs_exporter import metrics as m
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
from scrapejobs_exporter.statefile import SeriesState, histogram_observations

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
    def __init__(self, buckets: BucketsConfig, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self.jobs_finished = m.make_counter(m.AGG_JOBS_FINISHED, r)  # collector, status
        self.collector_lines = m.make_counter(m.AGG_LINES, r)  # collector
        self.collector_failures = m.make_counter(m.AGG_FAILURES, r)  # collector
        self.job_duration = m.make_histogram(m.AGG_DURATION, r, buckets.job_duration)
        self.job_queue = m.make_histogram(m.AGG_QUEUE, r, buckets.job_queue)  # collector
        self.collector_last_success = m.make_gauge(m.AGG_LAST_SUCCESS, r)  # collector
        self.snapshots_finished = m.make_counter(m.AGG_SNAPSHOTS_FINISHED, r)  # dataset_id, status
        self.ai_flows_finished = m.make_counter(m.AGG_AI_FLOWS_FINISHED, r)  # status
        self.aitronos_finished = m.make_counter(m.AGG_AIT_FINISHED, r)  # status
        # Without labels, client_python shows a metric as soon as it is registered: these are
        # registered with the first Aitronos job, so a Bright Data-only exporter has none.
        self.aitronos_items = m.make_counter(m.AGG_AIT_ITEMS, None)
        self.aitronos_processing = m.make_histogram(
            m.AGG_AIT_PROCESSING, None, buckets.aitronos_processing
        )
        self.evicted = m.make_counter(m.EVICTED, r)  # provider, kind
        self.collector_page_loads = m.make_counter(m.AGG_PAGE_LOADS, r)  # collector
        self.collector_input_errors = m.make_counter(m.AGG_INPUT_ERRORS, r)  # collector, group
        self.dataset_records = m.make_counter(m.AGG_DATASET_RECORDS, r)  # dataset_id
        self.snapshot_duration = m.make_histogram(
            m.AGG_SNAPSHOT_DURATION, r, buckets.snapshot_duration
        )  # dataset_id
        self.aitronos_failures = m.make_counter(m.AGG_AIT_FAILURES, r)  # reason
        # Values a counter or histogram cannot take (a provider's negative count): metric, reason
        self.ignored = m.make_counter(m.IGNORED_SAMPLES, r)
        for metric in CHECKED:
            for reason in IGNORED_REASONS:
                self.ignored.labels(metric, reason)
        self._collectors: set[str] = set()
        self._last_success: dict[str, float] = {}
        self._aitronos_seen = False
        # The aggregates over finished targets, as the state file keeps them across restarts
        # (not the exporter's own counters: evicted, ignored), with each histogram's bounds.
        self._kept: dict[str, tuple[m.MetricSpec, Counter | Gauge | Histogram]] = {
            spec.name: (spec, metric)
            for spec, metric in (
                (m.AGG_JOBS_FINISHED, self.jobs_finished),
                (m.AGG_LINES, self.collector_lines),
                (m.AGG_FAILURES, self.collector_failures),
                (m.AGG_DURATION, self.job_duration),
                (m.AGG_QUEUE, self.job_queue),
                (m.AGG_LAST_SUCCESS, self.collector_last_success),
                (m.AGG_SNAPSHOTS_FINISHED, self.snapshots_finished),
                (m.AGG_AI_FLOWS_FINISHED, self.ai_flows_finished),
                (m.AGG_AIT_FINISHED, self.aitronos_finished),
                (m.AGG_AIT_ITEMS, self.aitronos_items),
                (m.AGG_AIT_PROCESSING, self.aitronos_processing),
                (m.AGG_PAGE_LOADS, self.collector_page_loads),
                (m.AGG_INPUT_ERRORS, self.collector_input_errors),
                (m.AGG_DATASET_RECORDS, self.dataset_records),
                (m.AGG_SNAPSHOT_DURATION, self.snapshot_duration),
                (m.AGG_AIT_FAILURES, self.aitronos_failures),
            )
        }
        self._bounds = {
            m.AGG_DURATION.name: tuple(buckets.job_duration),
            m.AGG_QUEUE.name: tuple(buckets.job_queue),
            m.AGG_AIT_PROCESSING.name: tuple(buckets.aitronos_processing),
            m.AGG_SNAPSHOT_DURATION.name: tuple(buckets.snapshot_duration),
        }

    # Every counter of a newly seen collector, dataset or kind starts at 0, so that
    # `increase()` sees the first finished job and the series exist before anything finishes.

    def ensure_collector(self, collector: str) -> None:
        if collector not in self._collectors:
            self._collectors.add(collector)
            for status in JOB_TERMINAL:
                self.jobs_finished.labels(collector, status)
            for metric in (
                self.collector_lines,
                self.collector_failures,
                self.collector_page_loads,
                self.job_duration,
                self.job_queue,
            ):
                metric.labels(collector)
            for group in INPUT_ERROR_GROUPS:  # a fixed set: bounded per collector
                self.collector_input_errors.labels(collector, group)

    def ensure_dataset(self, dataset: str) -> None:
        for status in SNAPSHOT_TERMINAL:
            self.snapshots_finished.labels(dataset, status)
        self.dataset_records.labels(dataset)
        self.snapshot_duration.labels(dataset)

    def ensure_ai_flows(self) -> None:
        for status in AI_FLOW_TERMINAL:
            self.ai_flows_finished.labels(status)

    def ensure_aitronos(self) -> None:
        if not self._aitronos_seen:
            self._aitronos_seen = True
            for status in AITRONOS_TERMINAL:
                self.aitronos_finished.labels(status)
            for reason in FAILURE_REASONS:
                self.aitronos_failures.labels(reason)
            self.registry.register(self.aitronos_items)
            self.registry.register(self.aitronos_processing)

    # Each counts one finished target; the store guarantees it happens once per target (run).

    def snapshot_finished(self, snapshot: Snapshot) -> None:
        dataset = snapshot.dataset_id or ""
        self.snapshots_finished.labels(dataset, snapshot.status).inc()
        self._add(
            self.dataset_records.labels(dataset),
            "brightdata_dataset_records_total",
            snapshot.records,
        )

    def ai_flow_finished(self, flow: AiFlow) -> None:
        self.ai_flows_finished.labels(flow.status or "unknown").inc()

    def aitronos_job_finished(self, job: AitronosJob) -> None:
        self.ensure_aitronos()
        self.aitronos_finished.labels(job.status).inc()
        if job.status == "failed":  # its message in a fixed set of reasons, never as a label
            self.aitronos_failures.labels(failure_reason(job.error_message)).inc()
        self.aitronos_items_found(job)
        self._observe(
            self.aitronos_processing,
            "aitronos_finished_job_processing_seconds",
            job.processing_time,
        )

    def aitronos_items_found(self, job: AitronosJob) -> None:
        """Items found are only in the detail: added when it arrives (once, by the store)."""
        self.ensure_aitronos()
        self._add(self.aitronos_items, "aitronos_items_found_total", job.items_found)

    def job_finished(self, job: StudioJob, collector: str, now: float) -> None:
        self.jobs_finished.labels(collector, job.status).inc()
        for counter, name, value in (
            (self.collector_lines, "brightdata_collector_lines_total", job.lines),
            (self.collector_failures, "brightdata_collector_failures_total", job.fails),
            (self.collector_page_loads, "brightdata_collector_page_loads_total", job.navigations),
        ):
            self._add(counter.labels(collector), name, value)
        for histogram, name, seconds in (
            (self.job_duration, "brightdata_finished_job_duration_seconds", job.job_time),
            (self.job_queue, "brightdata_finished_job_queue_seconds", job.queue_time),
        ):
            self._observe(histogram.labels(collector), name, seconds)
        if job.status == "done":
            finished = job.finished if job.finished is not None else now
            previous = self._last_success.get(collector)
            if previous is None or finished > previous:
                self._last_success[collector] = finished
                self.collector_last_success.labels(collector).set(finished)

    # A counted target's report (read after it finished; the store calls these once).

    def job_input_errors(self, collector: str, groups: ErrorGroups) -> None:
        """A counted job's failed inputs per error group (hp_errors)."""
        for group, count in groups.items():
            if count > 0:
                self.collector_input_errors.labels(collector, group).inc(count)

    def snapshot_logged(self, dataset: str, log: SnapshotLog) -> None:
        """A counted snapshot's duration, from its log."""
        self._observe(
            self.snapshot_duration.labels(dataset),
            "brightdata_finished_snapshot_duration_seconds",
            log.duration,
        )

    # Counters only go up and durations are never negative: a provider's nonsensical value is
    # ignored and counted (scrapejobs_exporter_ignored_samples_total), never raised: one bad
    # job must not cost the others their cycle or their render.
    def _valid(self, metric: str, value: float | None) -> bool:
        if value is None:
            return False
        if not math.isfinite(value):
            self.ignored.labels(metric, "not_finite").inc()
            return False
        if value < 0:
            self.ignored.labels(metric, "negative").inc()
            return False
        return True

    def _add(self, counter: Counter, metric: str, value: float | None) -> None:
        if self._valid(metric, value) and value:
            counter.inc(float(value))

    def _observe(self, histogram: Histogram, metric: str, value: float | None) -> None:
        if self._valid(metric, value):
            assert value is not None
            histogram.observe(float(value))

    # --- the state file ----------------------------------------------------------------------

    def kept(self) -> list[SeriesState]:
        """Every series of the aggregates over finished targets, as the state file keeps them:
        a histogram as its finite bounds, its count per bucket (+Inf last) and its sum."""
        out: list[SeriesState] = []
        for name, (spec, metric) in self._kept.items():
            if not spec.labels and not self._aitronos_seen:
                continue  # not shown yet (see `ensure_aitronos`): nothing to keep
            bounds = self._bounds.get(name)
            for family in metric.collect():
                if bounds is None:
                    out += [
                        SeriesState(name, _values(spec, s.labels), s.value)
                        for s in family.samples
                        if not s.name.endswith("_created")
                    ]
                else:
                    out += _histogram_series(name, spec, bounds, family.samples)
        return out

    def restore(self, series: list[SeriesState]) -> list[str]:
        """Continue from the state file's values (into aggregates that counted nothing yet);
        the problems, one line each: a histogram whose bucket bounds changed in the config
        starts again from zero, a series of another version is dropped."""
        problems: list[str] = []
        changed: set[str] = set()
        for state in series:
            kept = self._kept.get(state.metric)
            if kept is None or len(state.labels) != len(kept[0].labels):
                problems.append(f"{state.metric}: not an aggregate of this version, dropped")
                continue
            if not math.isfinite(state.value):
                problems.append(f"{state.metric}{list(state.labels)}: not a number, dropped")
                continue
            spec, metric = kept
            if not spec.labels:
                self.ensure_aitronos()
            child = metric.labels(*state.labels) if spec.labels else metric
            if spec is m.AGG_JOBS_FINISHED:
                self.ensure_collector(state.labels[0])
            elif spec is m.AGG_SNAPSHOTS_FINISHED:
                self.ensure_dataset(state.labels[0])
            if isinstance(child, Counter):
                child.inc(max(0.0, state.value))
            elif isinstance(child, Gauge):
                child.set(state.value)
                if spec is m.AGG_LAST_SUCCESS:
                    self._last_success[state.labels[0]] = state.value
            else:
                bounds = self._bounds[spec.name]
                buckets = state.buckets or ()
                if state.bounds != bounds or len(buckets) != len(bounds) + 1:
                    changed.add(spec.name)
                    continue
                for value in histogram_observations(bounds, buckets, state.value):
                    child.observe(value)
        problems += [
            f"{name}: bucket bounds changed, starts again from zero" for name in sorted(changed)
        ]
        return problems


def _values(spec: m.MetricSpec, labels: dict[str, str]) -> tuple[str, ...]:
    return tuple(labels[name] for name in spec.labels)


def _histogram_series(
    name: str, spec: m.MetricSpec, bounds: tuple[float, ...], samples: list[Sample]
) -> list[SeriesState]:
    """client_python's cumulative `_bucket` samples and `_sum` per label set, as counts per
    bucket and a sum."""
    cumulative: dict[tuple[str, ...], dict[float, float]] = {}
    sums: dict[tuple[str, ...], float] = {}
    for sample in samples:
        values = _values(spec, sample.labels)
        if sample.name.endswith("_bucket"):
            cumulative.setdefault(values, {})[float(sample.labels["le"])] = sample.value
        elif sample.name.endswith("_sum"):
            sums[values] = sample.value
    out = []
    for values, counts in cumulative.items():
        running = [counts.get(b, 0.0) for b in (*bounds, math.inf)]
        per_bucket = tuple(n - p for n, p in zip(running, [0.0, *running[:-1]], strict=True))
        out.append(SeriesState(name, values, sums.get(values, 0.0), bounds, per_bucket))
    return out
