"""The simulated world: every entity, its lifecycle, arrivals and ground truth.

Pure and synchronous: no I/O and no wall clock. The caller moves time forward
with `advance_to`; work is proportional to what happened since the last call
(new arrivals, objects reaching a terminal state), never to the world's size.
Each kind of arrival has its own seeded RNG stream, and arrivals are generated
in time order, so the state only depends on the seed, the start time and the
instants the world was advanced to, not on how those advances were chunked.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scrapejobs_exporter.simulator.aiflow import PARALLEL_LIMIT, AiFlow, new_ai_flow
from scrapejobs_exporter.simulator.aitronos import (
    MEAN_AITRONOS_S,
    AitronosJob,
    failure_reason,
    new_aitronos_job,
)
from scrapejobs_exporter.simulator.collectors import Collector, Dataset, new_collector, new_dataset
from scrapejobs_exporter.simulator.datasets import MEAN_SNAPSHOT_S, Snapshot, new_snapshot
from scrapejobs_exporter.simulator.registry import Registry
from scrapejobs_exporter.simulator.studio import (
    ERROR_GROUPS,
    TERMINAL_STATUSES,
    StudioJob,
    mean_job_seconds,
    new_studio_job,
    shift_job,
    stuck_arrival_probability,
)

HISTORY_MS = 86_400_000
AI_FLOW_MEAN_S = 420.0


@dataclass(frozen=True, slots=True)
class KindTruth:
    """How one kind of object shows in the per-id ground truth of /_sim/state."""

    name: str  # its key in `running` / `finished_since_start` (as in `finished`)
    group: str | None  # the attribute (and key) that groups it: collector, dataset_id
    id_attr: str
    started_attr: str  # when it left its queue


KINDS = {
    "job": KindTruth("studio_jobs", "collector", "id", "started"),
    "snapshot": KindTruth("snapshots", "dataset_id", "snapshot_id", "running_from"),
    "ai_flow": KindTruth("ai_flows", "collector", "id", "running_from"),
    "aitronos": KindTruth("aitronos_jobs", None, "job_id", "processing_from"),
}


@dataclass(frozen=True, slots=True)
class WorldParams:
    seed: int = 1
    scale: int = 200
    running_fraction: float = 0.02
    stuck_fraction: float = 0.05
    start_ms: int = 1_788_000_000_000
    # The quiet-failure scenario: from `yield_drop_after_ms` after the start, new jobs of this
    # collector ("busiest" or an id) yield a tenth of their records and fail more pages.
    yield_drop: str | None = None
    yield_drop_after_ms: int = 0


class AiFlowLimitError(Exception):
    """The account already has PARALLEL_LIMIT AI flows queued or running."""


class Arrivals:
    """A Poisson arrival process with its own RNG stream."""

    def __init__(self, rng: random.Random, per_second: float, start_ms: int) -> None:
        self.rng = rng
        self._per_ms = per_second / 1000.0
        self.next_at = start_ms + self._gap()

    def _gap(self) -> int:
        return max(1, int(self.rng.expovariate(self._per_ms))) if self._per_ms > 0 else 1 << 62

    def step(self) -> None:
        self.next_at += self._gap()


class World:
    def __init__(self, params: WorldParams) -> None:
        self.params = params
        self.now_ms = params.start_ms
        self._streams = _Streams(params.seed)
        self.collectors: Registry[Collector] = Registry(lambda c: c.id)
        self.datasets: Registry[Dataset] = Registry(lambda d: d.id)
        self.jobs: Registry[StudioJob] = Registry(lambda j: j.id)
        self.snapshots: Registry[Snapshot] = Registry(lambda s: s.snapshot_id)
        self.aitronos_jobs: Registry[AitronosJob] = Registry(lambda j: j.job_id)
        # Every AI flow, and per collector its latest (what automate_progress reports).
        self.ai_flows: list[AiFlow] = []
        self.latest_flow: dict[str, AiFlow] = {}
        self._endings: list[tuple[int, int, str, Any]] = []
        self._seq = itertools.count()
        self.finished_jobs: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.finished_snapshots: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.finished_flows: Counter[str] = Counter()
        self.finished_aitronos: Counter[str] = Counter()
        # Ground truth of the finished objects' details (hp_errors groups, page loads, records,
        # Aitronos failure reasons), counted like `finished_*`.
        self.finished_job_errors: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.finished_job_volume: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.finished_snapshot_records: Counter[str] = Counter()
        self.finished_aitronos_failures: Counter[str] = Counter()
        self.yield_drop_collector: str | None = None
        # Off while the history is generated: its counts are reset anyway, and drawing every
        # past job's error codes would slow a scale-50,000 start several times over.
        self._count_details = False
        # Ground truth per object: what is not finished yet, and what finished since the start
        # (id -> (finish ms, final status)), so that a measurement can tell which ids it missed.
        self.active: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
        self.ended: dict[str, dict[str, tuple[int, str, Any]]] = {kind: {} for kind in KINDS}
        self._stuck_p = stuck_arrival_probability(params.stuck_fraction)
        self._populate()
        self._set_yield_drop()
        # `finished` is ground truth for what happened since the start: the generated history
        # finished before anyone could watch it, so it is not part of the counts.
        self._reset_finished_counts()
        self._count_details = True
        self._arrivals = self._make_arrivals()
        self._arrival_pick = self._collector_picker(self._streams.jobs)
        self._dataset_cum = list(itertools.accumulate(d.weight for d in self.datasets))

    def _reset_finished_counts(self) -> None:
        self.finished_jobs.clear()
        self.finished_snapshots.clear()
        self.finished_flows.clear()
        self.finished_aitronos.clear()
        self.finished_job_errors.clear()
        self.finished_job_volume.clear()
        self.finished_snapshot_records.clear()
        self.finished_aitronos_failures.clear()
        for ended in self.ended.values():
            ended.clear()

    def _set_yield_drop(self) -> None:
        name = self.params.yield_drop
        if name is None:
            return
        if name == "busiest":
            name = max(self.collectors, key=lambda c: c.weight).id
        elif self.collectors.get(name) is None:
            raise ValueError(f"--yield-drop: no collector {name!r} in this world")
        self.yield_drop_collector = name

    def _degrade(self, job: StudioJob) -> None:
        """A site change: a tenth of the records per page, and at least a third of the pages
        failing (from the job's own stream: the world's other draws are not shifted)."""
        if job.collector != self.yield_drop_collector:
            return
        if job.created < self.params.start_ms + self.params.yield_drop_after_ms:
            return
        rng = random.Random(f"{job.id}:yield-drop")
        job.degraded = True
        job.lines_per_page //= 10
        if job.stuck is None:
            job.fail_ratio = max(job.fail_ratio, rng.uniform(0.3, 0.6))

    # ----- construction -------------------------------------------------

    def _populate(self) -> None:
        p, rng, now = self.params, self._streams.setup, self.params.start_ms
        n_collectors = max(3, p.scale // 200)
        for i in range(n_collectors):
            self.collectors.add(new_collector(rng, i, n_collectors, now))
        for i in range(max(2, p.scale // 1000)):
            self.datasets.add(new_dataset(rng, i, now))
        self._populate_studio_jobs(rng)
        self._populate_snapshots(rng)
        self._populate_ai_flows(rng)
        self._populate_aitronos(rng)

    def _running_count(self, total: int) -> int:
        return min(total, max(1, round(total * self.params.running_fraction)))

    def _populate_studio_jobs(self, rng: random.Random) -> None:
        total = max(1, self.params.scale)
        running = self._running_count(total)
        pick = self._collector_picker(rng)
        jobs = [self._past_job(rng, pick(), self._stuck_p, False) for _ in range(total - running)]
        jobs += [
            self._past_job(rng, pick(), self.params.stuck_fraction, True) for _ in range(running)
        ]
        jobs.sort(key=lambda j: j.created)
        for job in jobs:
            self._add_job(job)

    def _past_job(
        self, rng: random.Random, collector: Collector, stuck_p: float, running: bool
    ) -> StudioJob:
        """A job placed so that it is finished (history) or running at start."""
        now = self.params.start_ms
        created = now - rng.randint(0, HISTORY_MS) if not running else now
        job = new_studio_job(rng, collector.id, collector.template_at(created), created, stuck_p)
        lifetime = job.finished - job.created
        if running:
            shift_job(job, -rng.randint(0, max(0, lifetime - 1)))
        elif job.finished >= now:
            shift_job(job, now - job.finished - rng.randint(1, 600_000))
        return job

    def _collector_picker(self, rng: random.Random) -> Callable[[], Collector]:
        usable = [c for c in self.collectors if c.weight > 0]
        cum = list(itertools.accumulate(c.weight for c in usable))
        return lambda: rng.choices(usable, cum_weights=cum)[0]

    def _populate_snapshots(self, rng: random.Random) -> None:
        total = max(10, self.params.scale // 4)
        running = self._running_count(total)
        now = self.params.start_ms
        cum = list(itertools.accumulate(d.weight for d in self.datasets))
        snaps = []
        for i in range(total):
            dataset = rng.choices(self.datasets, cum_weights=cum)[0]
            is_running = i >= total - running
            snap = new_snapshot(
                rng, dataset.id, now if is_running else now - rng.randint(0, HISTORY_MS)
            )
            delta = (
                -rng.randint(0, snap.finished - snap.created - 1)
                if is_running
                else min(0, now - snap.finished - rng.randint(1, 600_000))
            )
            snaps.append(_shift_snapshot(snap, delta))
        snaps.sort(key=lambda s: s.created)
        for snap in snaps:
            self._add_snapshot(snap)

    def _populate_ai_flows(self, rng: random.Random) -> None:
        now = self.params.start_ms
        total = max(5, self.params.scale // 100)
        flows = []
        for _ in range(total):
            collector = rng.choice(self.collectors)
            flow = new_ai_flow(rng, collector.id, now - rng.randint(0, HISTORY_MS), 0)
            if flow.ends >= now:
                flow.created -= flow.ends - now + rng.randint(1, 600_000)
            flows.append(flow)
        active = new_ai_flow(rng, rng.choice(self.collectors).id, now, 0)
        active.created -= rng.randint(0, active.ends - active.created - 1)
        flows.append(active)
        flows.sort(key=lambda f: f.created)
        for flow in flows:
            self._add_flow(flow)

    def _populate_aitronos(self, rng: random.Random) -> None:
        total = max(10, self.params.scale // 10)
        running = self._running_count(total)
        now = self.params.start_ms
        jobs = []
        for i in range(total):
            is_running = i >= total - running
            job = new_aitronos_job(rng, now if is_running else now - rng.randint(0, HISTORY_MS))
            lifetime = job.finished - job.created
            delta = (
                -rng.randint(0, lifetime - 1)
                if is_running
                else min(0, now - job.finished - rng.randint(1, 600_000))
            )
            job.created += delta
            job.processing_from += delta
            job.finished += delta
            jobs.append(job)
        jobs.sort(key=lambda j: j.created)
        for job in jobs:
            self._add_aitronos(job)

    def _make_arrivals(self) -> dict[str, Arrivals]:
        p, s, start = self.params, self._streams, self.params.start_ms
        studio_rate = self._running_count(max(1, p.scale)) / mean_job_seconds(self._stuck_p)
        snap_rate = self._running_count(max(10, p.scale // 4)) / MEAN_SNAPSHOT_S
        ait_rate = self._running_count(max(10, p.scale // 10)) / MEAN_AITRONOS_S
        return {
            "job": Arrivals(s.jobs, studio_rate, start),
            "snapshot": Arrivals(s.snapshots, snap_rate, start),
            "ai_flow": Arrivals(s.flows, 0.5 / AI_FLOW_MEAN_S, start),
            "aitronos": Arrivals(s.aitronos, ait_rate, start),
        }

    # ----- registration and endings ---------------------------------------

    def _add_job(self, job: StudioJob) -> None:
        if self.yield_drop_collector is not None:
            self._degrade(job)
        self.jobs.add(job)
        self.collectors.by_id(job.collector).add_job(job)
        self._track(job.finished, "job", job)

    def _add_snapshot(self, snap: Snapshot) -> None:
        self.snapshots.add(snap)
        self.datasets.by_id(snap.dataset_id).add_snapshot(snap)
        self._track(snap.finished, "snapshot", snap)

    def _add_flow(self, flow: AiFlow) -> None:
        self.ai_flows.append(flow)
        latest = self.latest_flow.get(flow.collector)
        if latest is None or flow.created >= latest.created:
            self.latest_flow[flow.collector] = flow
        self._track(flow.ends, "ai_flow", flow)

    def _add_aitronos(self, job: AitronosJob) -> None:
        self.aitronos_jobs.add(job)
        self._track(job.finished, "aitronos", job)

    def _track(self, ends_ms: int, kind: str, obj: Any) -> None:
        if ends_ms <= self.now_ms:
            self._count_finished(kind, obj, ends_ms)
        else:
            heapq.heappush(self._endings, (ends_ms, next(self._seq), kind, obj))
            self.active[kind][_object_id(kind, obj)] = obj

    def _count_finished(self, kind: str, obj: Any, ends_ms: int) -> None:
        object_id = _object_id(kind, obj)
        self.active[kind].pop(object_id, None)
        self.ended[kind][object_id] = (ends_ms, obj.outcome, obj)
        if kind == "job":
            self.finished_jobs[obj.collector][obj.outcome] += 1
            if self._count_details:
                self._count_job_details(obj)
        elif kind == "snapshot":
            self.finished_snapshots[obj.dataset_id][obj.outcome] += 1
            self.finished_snapshot_records[obj.dataset_id] += obj.final_size
        elif kind == "ai_flow":
            if obj.outcome in ("done", "failed"):
                self.finished_flows[obj.outcome] += 1
        else:
            self.finished_aitronos[obj.outcome] += 1
            if obj.outcome == "failed" and self._count_details:
                self.finished_aitronos_failures[failure_reason(obj.error_message)] += 1

    def _count_job_details(self, job: StudioJob) -> None:
        end = job.finished
        errors = self.finished_job_errors[job.collector]
        for group in ERROR_GROUPS:
            errors[group] += 0  # every group present, 0 when none
        for group, _ in job.error_codes(end):
            errors[group] += 1
        counters = job.counters_at(end)
        volume = self.finished_job_volume[job.collector]
        volume["jobs"] += 1
        volume["lines"] += counters["lines"]
        volume["fails"] += counters["fails"]
        volume["page_loads"] += counters["navigations"]

    # ----- time -----------------------------------------------------------

    def advance_to(self, now_ms: int) -> None:
        """Bring the world to `now_ms`; moving backwards is a no-op."""
        if now_ms <= self.now_ms:
            return
        # One arrival at a time, earliest first, each drawing its parameters before
        # the next gap: the RNG draw order is then independent of how time is chunked.
        while True:
            kind, arrivals = min(self._arrivals.items(), key=lambda item: item[1].next_at)
            if arrivals.next_at > now_ms:
                break
            self._settle_until(arrivals.next_at)
            self._arrive(kind, arrivals.next_at)
            arrivals.step()
        self._settle_until(now_ms)

    def _settle_until(self, t: int) -> None:
        self.now_ms = max(self.now_ms, t)
        while self._endings and self._endings[0][0] <= t:
            ends, _, kind, obj = heapq.heappop(self._endings)
            if kind == "job" and obj.finished != ends:
                continue  # a job failed on purpose ended earlier and was counted then
            self._count_finished(kind, obj, ends)

    def fail_job(self, job_id: str) -> bool:
        """Make a building/running Studio job fail now (an injected failure); False if it
        is unknown or already finished."""
        job = self.jobs.get(job_id)
        if job is None or job.status_at(self.now_ms) in TERMINAL_STATUSES:
            return False
        job.end_processed = job.processed_at(self.now_ms)
        job.outcome = "failed"
        job.end_now(self.now_ms)
        self._count_finished("job", job, self.now_ms)
        return True

    def _arrive(self, kind: str, at: int) -> None:
        s = self._streams
        if kind == "job":
            collector = self._arrival_pick()
            self._add_job(
                new_studio_job(s.jobs, collector.id, collector.template_at(at), at, self._stuck_p)
            )
        elif kind == "snapshot":
            dataset = s.snapshots.choices(self.datasets, cum_weights=self._dataset_cum)[0]
            self._add_snapshot(new_snapshot(s.snapshots, dataset.id, at))
        elif kind == "ai_flow":
            collector = s.flows.choice(self.collectors)
            # Background flows only start on an idle account, leaving slots for clients.
            if self.active_flow_count(at) == 0:
                self._add_flow(new_ai_flow(s.flows, collector.id, at, 0))
        else:
            self._add_aitronos(new_aitronos_job(s.aitronos, at))

    # ----- AI flow API ------------------------------------------------------

    def active_flow_count(self, t: int) -> int:
        # Flows last minutes, so only the tail of the creation-ordered list matters.
        count = 0
        for flow in reversed(self.ai_flows):
            if flow.created + 3_600_000 < t:
                break
            count += flow.is_active_at(t)
        return count

    def start_ai_flow(self, collector_id: str) -> AiFlow:
        """Start a client-requested flow now, or raise AiFlowLimitError."""
        t = self.now_ms
        active = self.active_flow_count(t)
        if active >= PARALLEL_LIMIT:
            raise AiFlowLimitError
        rng = self._streams.posted
        queue_ms = rng.randint(5_000, 60_000) if active else 0
        flow = new_ai_flow(rng, collector_id, t, queue_ms)
        self._add_flow(flow)
        return flow

    # ----- ground truth -------------------------------------------------

    def finished_counts(self) -> dict[str, Any]:
        return {
            "studio_jobs": {c: dict(v) for c, v in self.finished_jobs.items()},
            "snapshots": {d: dict(v) for d, v in self.finished_snapshots.items()},
            "ai_flows": dict(self.finished_flows),
            "aitronos_jobs": dict(self.finished_aitronos),
        }

    def finished_details(self) -> dict[str, Any]:
        """Ground truth of what the objects counted in `finished` carried: failed inputs by
        group and volume per collector, records per dataset, Aitronos failures by reason."""
        return {
            "studio_job_errors": {c: dict(v) for c, v in self.finished_job_errors.items()},
            "studio_job_volume": {c: dict(v) for c, v in self.finished_job_volume.items()},
            "snapshot_records": dict(self.finished_snapshot_records),
            "aitronos_failures": dict(self.finished_aitronos_failures),
        }

    def _yield_drop_state(self) -> dict[str, Any] | None:
        if self.yield_drop_collector is None:
            return None
        after = self.params.start_ms + self.params.yield_drop_after_ms
        return {"collector": self.yield_drop_collector, "from": after / 1000}

    def running(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Every object not finished yet, by kind and id: status, created, started (or None)."""
        t = self.now_ms
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for kind, objects in self.active.items():
            truth = KINDS[kind]
            group = truth.group
            rows = out[truth.name] = {}
            for object_id, obj in objects.items():
                started = int(getattr(obj, truth.started_attr))
                row: dict[str, Any] = {
                    "status": obj.status_at(t),
                    "created": obj.created / 1000,
                    "started": started / 1000 if started <= t else None,
                }
                if group is not None:
                    row[group] = getattr(obj, group)
                rows[object_id] = row
        return out

    def finished_since_start(self, since_ms: int = 0) -> dict[str, dict[str, dict[str, Any]]]:
        """Every object that finished since the simulator started (after `since_ms` if given),
        by kind and id: final status and finish time."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for kind, ended in self.ended.items():
            group = KINDS[kind].group
            rows = out[KINDS[kind].name] = {}
            for object_id, (at_ms, status, obj) in ended.items():
                if at_ms <= since_ms:
                    continue
                row: dict[str, Any] = {"status": status, "finished": at_ms / 1000}
                if group is not None:
                    row[group] = getattr(obj, group)
                rows[object_id] = row
        return out

    def state(self, compact: bool = False, finished_since_ms: int = 0) -> dict[str, Any]:
        t = self.now_ms
        state: dict[str, Any] = {"now": t / 1000}
        if not compact:
            state["brightdata"] = {
                "yield_drop": self._yield_drop_state(),
                "collectors": [c.state() for c in self.collectors],
                "jobs": [{**j.log_body(t), "stuck": j.stuck} for j in self.jobs],
                "snapshots": [s.state(t) for s in self.snapshots],
                "ai_flows": [f.state(t) for f in self.ai_flows],
            }
            state["aitronos"] = {"jobs": [j.progress_data(t) for j in self.aitronos_jobs]}
        state["finished"] = self.finished_counts()
        state["finished_details"] = self.finished_details()
        state["running"] = self.running()
        state["finished_since_start"] = self.finished_since_start(finished_since_ms)
        return state


def _object_id(kind: str, obj: Any) -> str:
    return str(getattr(obj, KINDS[kind].id_attr))


class _Streams:
    """Independent RNG streams, so that one kind's draws never shift another's."""

    def __init__(self, seed: int) -> None:
        def stream(name: str) -> random.Random:
            return random.Random(f"{seed}:{name}")

        self.setup = stream("setup")
        self.jobs = stream("jobs")
        self.snapshots = stream("snapshots")
        self.flows = stream("flows")
        self.aitronos = stream("aitronos")
        self.posted = stream("posted")


def _shift_snapshot(snap: Snapshot, delta: int) -> Snapshot:
    snap.created += delta
    snap.running_from += delta
    snap.finished += delta
    return snap
