"""Scraper Studio jobs: timeline parameters and their rendering at an instant.

A job is fully described by numbers drawn once at creation. Its state at any
time `t` is a pure function of those numbers, which makes evaluation cheap
(no per-tick work for 50,000 jobs) and reproducible.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any

from scrapejobs_exporter.simulator.timefmt import DAY_MS, day_start_ms, iso_ms, make_id

TERMINAL_STATUSES = ("done", "failed", "cancelled")
TRIGGER_USERS = ("ops@example.com", "data-team@example.com", "scheduler@example.com")
NORMAL_RUN_MS = (30_000, 1_200_000)
STUCK_RUN_MS = (1_800_000, 10_800_000)
MEAN_NORMAL_TOTAL_S = 632.0
MEAN_STUCK_TOTAL_S = 6_600.0

# What `/dca/jobs/{id}/hp_errors` reports for a failed page, by the group Bright Data's error-code
# page puts it in (`other`: prose and codes outside the table). The simulator draws the group
# first, so the ground truth is what it drew, not a mapping shared with the exporter.
ERROR_CODES: dict[str, tuple[str, ...]] = {
    "page_gone": ("dead_page", "bad_input"),
    "blocked": ("blocked", "detection_block", "captcha_timeout", "proxy_error", "no_peers"),
    "scraper_logic": ("parse_error", "wait_element_timeout", "click_timeout", "crawl_error"),
    "infrastructure": ("infra_error", "worker_too_busy", "net_err_connection_reset"),
    "limits": ("too_many_pages", "parse_mem_limit_exceeded", "job_run_timeout"),
    "cancellation": ("aborted_page",),
    "other": ("Error: price missing", "Error: title not found", "aborted"),
}
ERROR_GROUPS = tuple(ERROR_CODES)
_BASE_WEIGHTS = {"page_gone": 3.0, "blocked": 4.0, "scraper_logic": 2.0, "infrastructure": 1.5,
                 "limits": 0.5, "cancellation": 0.0, "other": 1.5}  # fmt: skip
# A site change: the scraper's selectors miss, so parse errors and "price missing" dominate.
_DEGRADED_WEIGHTS = {**_BASE_WEIGHTS, "scraper_logic": 12.0, "other": 8.0}


@dataclass(slots=True)
class StudioJob:
    id: str
    collector: str
    template: str
    created: int
    started: int
    run_ms: int  # time spent actually working (excludes the hold window)
    hold_start: int  # start of a pause / freeze window (0 = none)
    hold_ms: int
    hold_status: str  # "paused" or "running" (a freeze looks like running)
    outcome: str  # terminal status
    stuck: str | None  # None, "no_worker" or "frozen"
    pages: int
    end_processed: int  # pages processed when the job ends
    inputs: int
    dup_inputs: int
    fail_ratio: float
    retry_ratio: float
    lines_per_page: int
    deliver_fails: int
    trigger_type: str
    trigger_user: str
    trigger_ip: str
    degraded: bool = False  # created during a yield drop (see World.degrade_job)

    @property
    def finished(self) -> int:
        return self.started + self.run_ms + self.hold_ms

    def end_now(self, t: int) -> None:
        """Re-time the job so that it finishes exactly at `t` (used to inject a failure)."""
        if t < self.started:
            self.started = t
        if self.hold_ms and self.hold_start >= t:
            self.hold_ms = 0  # the pause had not begun
        elif self.hold_ms and t < self.hold_start + self.hold_ms:
            self.hold_ms = t - self.hold_start  # cut the pause short
        self.run_ms = max(0, t - self.started - self.hold_ms)

    def status_at(self, t: int) -> str:
        if t < self.started:
            return "building"
        if t >= self.finished:
            return self.outcome
        if self.hold_ms and self.hold_start <= t < self.hold_start + self.hold_ms:
            return self.hold_status
        return "running"

    def processed_at(self, t: int) -> int:
        """Pages processed by `t`, progress frozen inside the hold window."""
        if t < self.started or self.stuck == "no_worker":
            return 0
        if t >= self.finished:
            return self.end_processed
        worked = t - self.started
        if self.hold_ms and t > self.hold_start:
            worked -= min(t, self.hold_start + self.hold_ms) - self.hold_start
        return min(self.end_processed, self.end_processed * worked // max(1, self.run_ms))

    def counters_at(self, t: int) -> dict[str, Any]:
        processed = self.processed_at(t)
        fails = int(processed * self.fail_ratio)
        success = processed - fails
        navigations = (
            0 if self.stuck == "no_worker" else processed + int(processed * self.retry_ratio)
        )
        return {
            "lines": success * self.lines_per_page,
            "fails": fails,
            "pages_left": self.pages - processed,
            "success": success,
            "navigations": navigations,
            "success_rate": success / max(1, success + fails),
        }

    def log_body(self, t: int) -> dict[str, Any]:
        """The `/dca/log/{job_id}` body (lower-case canonical keys)."""
        status = self.status_at(t)
        c = self.counters_at(t)
        body: dict[str, Any] = {
            "id": self.id,
            "status": status,
            "collector": self.collector,
            "template": self.template,
            "inputs": self.inputs,
            "dup_inputs": self.dup_inputs,
            "lines": c["lines"],
            "fails": c["fails"],
            "pages": self.pages,
            "pages_left": c["pages_left"],
            "success": c["success"],
            "navigations": c["navigations"],
            "created": iso_ms(self.created),
        }
        if status != "building":
            body["started"] = iso_ms(self.started)
        terminal = status in TERMINAL_STATUSES
        if terminal:
            body["finished"] = iso_ms(self.finished)
        body["trigger"] = self.trigger_user
        body["success_rate"] = c["success_rate"]
        if terminal:
            body["job_time"] = self.finished - self.started
        if status != "building":
            body["queue_time"] = self.started - self.created
        body["deliver_fails"] = self.deliver_fails if terminal else 0
        return body

    def error_codes(self, t: int) -> list[tuple[str, str]]:
        """(group, code) of each failed page so far: one per `fails`, drawn from the job's own
        stream, so a running job's list only grows and the world's other draws never shift."""
        count = self.counters_at(t)["fails"]
        if count <= 0:
            return []
        rng = random.Random(f"{self.id}:errors")
        weights = dict(_DEGRADED_WEIGHTS if self.degraded else _BASE_WEIGHTS)
        if self.outcome == "cancelled":
            weights["cancellation"] = 10.0  # pages still queued when the job was cancelled
        profile = random.Random(f"{self.collector}:errors")  # each collector fails its own way
        groups = list(weights)
        cum = list(itertools.accumulate(weights[g] * profile.uniform(0.3, 2.0) for g in groups))
        out = []
        for _ in range(count):
            group = rng.choices(groups, cum_weights=cum)[0]
            out.append((group, rng.choice(ERROR_CODES[group])))
        return out

    def hp_errors_body(self, t: int) -> dict[str, Any]:
        """`/dca/jobs/{job_id}/hp_errors`: one row per failed page, `[]` for a clean job."""
        consumer = f"dca-hp-so-{self.id[-5:]}"
        rows = [
            {"url": f"https://shop.example.com/item/{self.id[-6:]}/{i}", "error": code,
             "consumer": consumer}
            for i, (_, code) in enumerate(self.error_codes(t))
        ]  # fmt: skip
        return {"errors": rows}

    def list_row(self, t: int) -> dict[str, Any]:
        """A `/dca/collector/jobs` row: different names, no `collector`."""
        status = self.status_at(t)
        c = self.counters_at(t)
        row: dict[str, Any] = {"id": self.id, "status": status, "queued": iso_ms(self.created)}
        if status != "building":
            row["started"] = iso_ms(self.started)
        if status in TERMINAL_STATUSES:
            row["finished"] = iso_ms(self.finished)
        row.update(
            inputs=self.inputs,
            page_loads=c["navigations"],
            total_pages=self.pages,
            failed_pages=c["fails"],
            data_lines=c["lines"],
            trigger={"type": self.trigger_type, "user": self.trigger_user, "ip": self.trigger_ip},
            expired=iso_ms(day_start_ms(self.created) + self.retention_days * DAY_MS),
        )
        return row

    @property
    def retention_days(self) -> int:
        return 7 if self.id.startswith("vj_") else 16


def new_studio_job(
    rng: random.Random, collector: str, template: str, created: int, stuck_p: float
) -> StudioJob:
    """Draw every timeline parameter of a job created at `created` (ms)."""
    realtime = rng.random() < 0.25
    job_id = make_id("vj_" if realtime else "j_", created, rng)
    queue_ms = rng.randint(200, 3_000) if rng.random() < 0.9 else rng.randint(10_000, 300_000)
    started = created + queue_ms
    stuck: str | None = None
    if rng.random() < stuck_p:
        stuck = "no_worker" if rng.random() < 0.5 else "frozen"
    per_page_ms = rng.randint(3_000, 12_000)
    run_ms = rng.randint(*NORMAL_RUN_MS)
    pages = max(1, run_ms // per_page_ms)
    outcome = _draw_outcome(rng)
    end_processed = pages
    if outcome == "cancelled" or (outcome == "failed" and rng.random() < 0.5):
        end_processed = int(pages * rng.uniform(0.0, 0.9))
    hold_start, hold_ms, hold_status = 0, 0, "running"
    if stuck == "no_worker":
        run_ms, outcome, end_processed = rng.randint(*STUCK_RUN_MS), "cancelled", 0
    elif stuck == "frozen":
        hold_start = started + int(run_ms * rng.uniform(0.1, 0.8))
        hold_ms = rng.randint(*STUCK_RUN_MS)
    elif rng.random() < 0.03:
        hold_start = started + int(run_ms * rng.uniform(0.1, 0.9))
        hold_ms, hold_status = rng.randint(60_000, 600_000), "paused"
    inputs = max(1, int(pages * rng.uniform(0.3, 1.0)))
    fail_ratio = _draw_fail_ratio(rng, outcome)
    return StudioJob(
        id=job_id,
        collector=collector,
        template=template,
        created=created,
        started=started,
        run_ms=run_ms,
        hold_start=hold_start,
        hold_ms=hold_ms,
        hold_status=hold_status,
        outcome=outcome,
        stuck=stuck,
        pages=pages,
        end_processed=end_processed,
        inputs=inputs,
        dup_inputs=rng.randint(1, 1 + inputs // 10) if rng.random() < 0.1 else 0,
        fail_ratio=fail_ratio,
        retry_ratio=rng.uniform(0.0, 0.5),
        lines_per_page=rng.randint(1, 50),
        deliver_fails=1 if rng.random() < 0.02 else 0,
        trigger_type="API" if realtime else rng.choice(("API", "CP", "scheduled")),
        trigger_user=rng.choice(TRIGGER_USERS),
        trigger_ip=f"192.0.2.{rng.randint(1, 254)}",
    )


def _draw_outcome(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.86:
        return "done"
    return "failed" if r < 0.95 else "cancelled"


def _draw_fail_ratio(rng: random.Random, outcome: str) -> float:
    if outcome == "failed":
        return rng.uniform(0.5, 1.0)
    return 0.0 if rng.random() < 0.7 else rng.uniform(0.01, 0.1)


def stuck_arrival_probability(stuck_fraction: float) -> float:
    """Chance a new job is stuck so that ~stuck_fraction of *running* jobs are.

    Stuck jobs live ~10x longer, so they must arrive ~10x less often.
    """
    f = min(max(stuck_fraction, 0.0), 1.0)
    if f >= 1.0:
        return 1.0
    return f * MEAN_NORMAL_TOTAL_S / (MEAN_STUCK_TOTAL_S * (1 - f) + f * MEAN_NORMAL_TOTAL_S)


def mean_job_seconds(stuck_p: float) -> float:
    return (1 - stuck_p) * MEAN_NORMAL_TOTAL_S + stuck_p * MEAN_STUCK_TOTAL_S


def shift_job(job: StudioJob, delta_ms: int) -> None:
    """Move a whole timeline in time (used to place jobs in the past at start)."""
    job.created += delta_ms
    job.started += delta_ms
    if job.hold_ms:
        job.hold_start += delta_ms
