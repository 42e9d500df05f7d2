"""Scraper Studio collectors (scrapers) and Datasets v3 datasets."""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field
from typing import Any

from scrapejobs_exporter.simulator.datasets import Snapshot
from scrapejobs_exporter.simulator.studio import StudioJob
from scrapejobs_exporter.simulator.timefmt import iso_ms, make_id

NAMES = ("hn-frontpage", "shop-prices", "jobs-board", "real-estate", "news-feed", "reviews")
_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "fields": {
        "title": {"type": "text", "active": True},
        "price": {"type": "price", "active": True},
        "url": {"type": "url", "active": True},
        "input": {"type": "input", "active": True},
        "error": {"type": "error", "active": True},
    },
}


@dataclass(slots=True)
class Collector:
    id: str
    name: str
    active: bool
    template_base: str
    template_version: int
    template_changed: int  # jobs created before this ran the previous version
    deliver: dict[str, Any]
    schedule: dict[str, Any] | None
    weight: float
    jobs: list[StudioJob] = field(default_factory=list)
    job_created: list[int] = field(default_factory=list)  # parallel list, for bisect

    def template_at(self, created: int) -> str:
        version = self.template_version
        if created < self.template_changed and version > 1:
            version -= 1
        return f"{self.template_base}.{version}"

    def add_job(self, job: StudioJob) -> None:
        self.jobs.append(job)
        self.job_created.append(job.created)

    def jobs_between(
        self, from_ms: int, to_ms: int, offset: int, limit: int, ascending: bool
    ) -> tuple[int, list[StudioJob]]:
        """Jobs created in [from_ms, to_ms), paginated; O(log n + limit)."""
        lo = bisect.bisect_left(self.job_created, from_ms)
        hi = bisect.bisect_left(self.job_created, to_ms)
        total = max(0, hi - lo)
        if ascending:
            start = lo + offset
            return total, self.jobs[start : max(start, min(hi, start + limit))]
        end = hi - offset
        begin = max(lo, end - limit)
        return total, self.jobs[begin:end][::-1] if end > begin else []

    def list_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"id": self.id, "name": self.name, "active": self.active}
        if self.jobs:
            row["last_run"] = iso_ms(self.jobs[-1].created)
        row["deliver"] = self.deliver
        row["output_schema"] = _OUTPUT_SCHEMA if self.active else None
        if self.schedule is not None:
            row["schedule"] = self.schedule
        return row

    def state(self) -> dict[str, Any]:
        row = self.list_row()
        row["template"] = self.template_at(self.template_changed)
        return row


def new_collector(rng: random.Random, index: int, count: int, now: int) -> Collector:
    created = now - rng.randint(1, 90) * 86_400_000
    draft = count >= 5 and index % 10 == 9
    deliver: dict[str, Any] = {"type": "api_pull"}
    if rng.random() < 0.3:
        deliver = {"type": "webhook", "endpoint": f"https://hooks.example.com/{index}"}
    schedule = None
    if not draft and rng.random() < 0.4:
        schedule = {"frequency": 3_600_000, "start": iso_ms(created)}
    return Collector(
        id=make_id("c_", created, rng, tail=9),
        name=f"{NAMES[index % len(NAMES)]}-{index}",
        active=not draft,
        template_base=make_id("t_", created, rng, tail=9),
        template_version=rng.randint(1, 9),
        template_changed=now - rng.randint(0, 86_400_000),
        deliver=deliver,
        schedule=schedule,
        weight=0.0 if draft else 1.0 / (index + 1) ** 0.8,
    )


@dataclass(slots=True)
class Dataset:
    id: str
    weight: float
    snapshots: list[Snapshot] = field(default_factory=list)
    snapshot_created: list[int] = field(default_factory=list)

    def add_snapshot(self, snapshot: Snapshot) -> None:
        self.snapshots.append(snapshot)
        self.snapshot_created.append(snapshot.created)

    def snapshots_between(self, from_ms: int, to_ms: int) -> list[Snapshot]:
        lo = bisect.bisect_left(self.snapshot_created, from_ms)
        hi = bisect.bisect_left(self.snapshot_created, to_ms)
        return self.snapshots[lo:hi]


# Datasets are long-lived scrapers: their ids depend on the seed only, not on the start time,
# so a config naming them (the compose demo's) works whenever the simulator starts.
DATASET_EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def new_dataset(rng: random.Random, index: int, now: int) -> Dataset:
    created = DATASET_EPOCH_MS - index * 3_600_000
    return Dataset(id=make_id("gd_", created, rng, tail=10), weight=1.0 / (index + 1))
