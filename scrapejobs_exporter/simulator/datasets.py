"""Datasets v3 snapshots: `starting` -> `running` -> `ready` | `failed`."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from scrapejobs_exporter.simulator.timefmt import iso_ms, make_id, stage

TERMINAL_STATUSES = ("ready", "failed")
SNAPSHOT_STATUSES = ("starting", "running", "ready", "failed")
FAILURE_MESSAGES = (
    "Dataset collection failed: all inputs returned dead_page",
    "Dataset collection failed: too many blocked requests",
    "Collection timed out",
)
MEAN_SNAPSHOT_S = 32.5 + 930.0


@dataclass(slots=True)
class Snapshot:
    snapshot_id: str
    dataset_id: str
    created: int
    running_from: int
    finished: int
    outcome: str
    final_size: int
    trigger_type: str
    error_message: str

    def status_at(self, t: int) -> str:
        return stage(t, self.running_from, self.finished, "starting", "running", self.outcome)

    def size_at(self, t: int) -> int:
        if t < self.running_from:
            return 0
        if t >= self.finished:
            return self.final_size
        span = max(1, self.finished - self.running_from)
        return self.final_size * (t - self.running_from) // span

    def progress_body(self, t: int) -> dict[str, Any]:
        """`/datasets/v3/progress/{snapshot_id}`."""
        status = self.status_at(t)
        body: dict[str, Any] = {
            "snapshot_id": self.snapshot_id,
            "dataset_id": self.dataset_id,
            "status": status,
        }
        if status == "failed":
            body["error_message"] = self.error_message
        elif status == "ready":
            body["records"] = self.final_size
            body["errors"] = self.final_size // 50
            body["collection_duration"] = (self.finished - self.created) // 1000
        return body

    def list_row(self, t: int) -> dict[str, Any]:
        """A `/datasets/v3/snapshots` item."""
        return {
            "id": self.snapshot_id,
            "created": iso_ms(self.created),
            "status": self.status_at(t),
            "dataset_id": self.dataset_id,
            "dataset_size": self.size_at(t),
            "trigger": {"type": self.trigger_type},
        }

    def _inputs(self) -> tuple[int, int]:
        """(inputs, successful inputs): from the snapshot's own stream, so adding the log
        shifted none of the world's draws."""
        rng = random.Random(f"{self.snapshot_id}:log")
        inputs = (
            max(1, self.final_size // rng.randint(1, 20)) if self.final_size else rng.randint(1, 5)
        )
        ok_share = rng.uniform(0.0, 0.5) if self.outcome == "failed" else rng.uniform(0.85, 1.0)
        return inputs, min(inputs, round(inputs * ok_share))

    def duration_s(self) -> int:
        """Whole seconds from creation to the end, as the log's `Duration`."""
        return (self.finished - self.created) // 1000

    def log_body(self, t: int) -> dict[str, Any]:
        """`/datasets/v3/log/{snapshot_id}`, with the documented mixed key casing."""
        status = self.status_at(t)
        inputs, ok = self._inputs()
        final = status in TERMINAL_STATUSES
        size = self.size_at(t)
        duration = self.duration_s() if final else None
        return {
            "id": self.snapshot_id,
            "created": iso_ms(self.created),
            "Status": status,
            "dataset_name": f"Dataset {self.dataset_id[-4:]}",
            "scraper_name": f"Dataset {self.dataset_id[-4:]} - collect by URL",
            "Dataset_size": size,
            "Inputs_count": inputs,
            "Dataset_id": self.dataset_id,
            "Discovery_collector_id": None,
            "file_size": size * 733,
            "trigger": {"type": self.trigger_type, "user": "ops@example.com",
                        "ip": "192.0.2.10", "ts": iso_ms(self.created)},
            "Duration": duration,
            "Duration_per_input": None if duration is None else round(duration / inputs, 3),
            "Success_rate": round(ok / inputs, 6) if final else None,
        }  # fmt: skip

    def state(self, t: int) -> dict[str, Any]:
        row = self.list_row(t)
        row["snapshot_id"] = self.snapshot_id
        if row["status"] == "failed":
            row["error_message"] = self.error_message
        if row["status"] in TERMINAL_STATUSES:
            inputs, ok = self._inputs()
            row.update(records=self.final_size, duration_seconds=self.duration_s(),
                       inputs=inputs, success_ratio=round(ok / inputs, 6))  # fmt: skip
        return row


def new_snapshot(rng: random.Random, dataset_id: str, created: int) -> Snapshot:
    running_from = created + rng.randint(5_000, 60_000)
    finished = running_from + rng.randint(60_000, 1_800_000)
    failed = rng.random() < 0.1
    return Snapshot(
        snapshot_id=make_id("s_", created, rng, tail=9),
        dataset_id=dataset_id,
        created=created,
        running_from=running_from,
        finished=finished,
        outcome="failed" if failed else "ready",
        final_size=rng.randint(0, 40) if failed else rng.randint(1, 5_000),
        trigger_type=rng.choice(("API", "CP")),
        error_message=rng.choice(FAILURE_MESSAGES) if failed else "",
    )
