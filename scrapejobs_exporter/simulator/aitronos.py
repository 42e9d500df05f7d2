"""Aitronos scrape jobs: pending -> processing -> completed | failed | cancelled."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from scrapejobs_exporter.simulator.timefmt import iso_micro, stage

TERMINAL_STATUSES = ("completed", "failed", "cancelled")
JOB_STATUSES = ("pending", "processing", *TERMINAL_STATUSES)
ERROR_MESSAGES = (
    "Site blocked by anti-bot measures",
    "Navigation timeout while loading page",
    "Target returned HTTP 503",
)
# Ground truth for the exporter's failure-reason counter: what each message means.
MESSAGE_REASONS = {
    "Site blocked by anti-bot measures": "blocked",
    "Navigation timeout while loading page": "timeout",
    "Target returned HTTP 503": "other",
}
URLS = (
    "https://listings.example.com/search?page=1",
    "https://shop.example.com/category/{n}",
    "https://example.com/products?page={n}",
    "https://news.example.org/archive/{n}",
)
TIMEOUT_MS = 300_000
MEAN_AITRONOS_S = 8.0 + 130.0
_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"


@dataclass(slots=True)
class AitronosJob:
    job_id: str
    url: str
    created: int
    processing_from: int
    finished: int
    outcome: str  # completed, failed or cancelled
    reason: str | None  # done / timeout / error / None
    total_pages: int
    end_fraction: float  # share of pages scraped when the job ends
    items_per_page: int
    engine: str
    llm_calls: int
    cache_hit: bool
    error_message: str | None

    def status_at(self, t: int) -> str:
        return stage(t, self.processing_from, self.finished, "pending", "processing", self.outcome)

    def _scraped_at(self, t: int) -> float:
        """Fractional pages done; frozen once the job has ended."""
        if t < self.processing_from:
            return 0.0
        span = max(1, self.finished - self.processing_from)
        share = min(1.0, (t - self.processing_from) / span)
        return self.total_pages * self.end_fraction * share

    def progress_data(self, t: int) -> dict[str, Any]:
        """The `data` object of `/v1/scrape/jobs/{id}/progress`."""
        status = self.status_at(t)
        terminal = status in TERMINAL_STATUSES
        scraped = int(self._scraped_at(t))
        processing = status == "processing"
        if status == "completed":
            percentage = 100.0
        else:
            percentage = round(100.0 * self._scraped_at(t) / self.total_pages, 1)
        return {
            "job_id": self.job_id,
            "status": status,
            "url": self.url,
            "current_page": min(self.total_pages, scraped + 1) if processing else scraped,
            "total_pages_scraped": scraped,
            "total_properties_found": scraped * self.items_per_page,
            "progress_percentage": percentage,
            "pagination_complete": status == "completed" and self.reason == "done",
            "completion_reason": self.reason if terminal else None,
            "created_at": iso_micro(self.created),
            "completed_at": iso_micro(self.finished) if terminal else None,
            "processing_time": self._seconds(self.finished) if terminal else None,
            "running_time": self._seconds(t) if processing else None,
            "error_message": self.error_message if status == "failed" else None,
        }

    def _seconds(self, t: int) -> float:
        return round((t - self.processing_from) / 1000, 3)

    def status_body(self, t: int) -> dict[str, Any]:
        """`/v1/scrape/jobs/{id}` and list rows: not wrapped, no progress counters."""
        status = self.status_at(t)
        completed = status == "completed"
        found = int(self._scraped_at(t)) * self.items_per_page
        return {
            "job_id": self.job_id,
            "status": status,
            "url": self.url,
            "extracted_data": self._sample_items(found) if completed else None,
            "error_message": self.error_message if status == "failed" else None,
            "metadata": self._metadata() if completed else None,
            "created_at": iso_micro(self.created),
            "completed_at": iso_micro(self.finished) if status in TERMINAL_STATUSES else None,
        }

    def _metadata(self) -> dict[str, Any]:
        return {
            "processing_time": self._seconds(self.finished),
            "engine_used": self.engine,
            "llm_calls": self.llm_calls,
            "cache_hit": self.cache_hit,
        }

    def _sample_items(self, found: int) -> list[dict[str, Any]]:
        # Real bodies carry every item; a few keep responses small and fast.
        return [{"title": f"Item {i + 1}", "price": 100 + 7 * i} for i in range(min(found, 3))]


def failure_reason(message: str | None) -> str:
    return MESSAGE_REASONS.get(message or "", "other")


def new_aitronos_job(rng: random.Random, created: int) -> AitronosJob:
    processing_from = created + rng.randint(500, 15_000)
    r = rng.random()
    outcome: str = "completed"
    reason: str | None = "done"
    if r < 0.08:
        outcome, reason = "failed", "error"
    elif r < 0.13:
        outcome, reason = "cancelled", None
    elif r < 0.2:
        reason = "timeout"
    duration = TIMEOUT_MS if reason == "timeout" else rng.randint(5_000, 250_000)
    end_fraction = 1.0 if reason == "done" else rng.uniform(0.05, 0.95)
    return AitronosJob(
        job_id="job_" + "".join(rng.choice(_ALNUM) for _ in range(12)),
        url=rng.choice(URLS).format(n=rng.randint(1, 500)),
        created=created,
        processing_from=processing_from,
        finished=processing_from + duration,
        outcome=outcome,
        reason=reason,
        total_pages=rng.randint(1, 20),
        end_fraction=end_fraction,
        items_per_page=rng.randint(5, 40),
        engine=rng.choice(("static", "browser", "hybrid")),
        llm_calls=rng.randint(0, 5),
        cache_hit=rng.random() < 0.2,
        error_message=rng.choice(ERROR_MESSAGES) if outcome == "failed" else None,
    )
