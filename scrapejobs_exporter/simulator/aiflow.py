"""Scraper Studio AI flows (`automate_template`): queued -> running -> done | failed.

Some flows stop at the approval gate (`pending_answer`, step `user_approval`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from scrapejobs_exporter.simulator.timefmt import iso_ms, make_id, stage

# The steps a simulated flow goes through, in order (a subset of the provider's pipeline):
# planning, generating the collector's code and schemas, previewing it.
_PLANNING = ("prepare_intent_analyzer", "planner", "collector_maintainer")
_GENERATION = ("output_schema_generator", "code_generator", "input_schema_generator")
_PREVIEW = ("preview_runner", "preview_picker")
STEPS = _PLANNING + _GENERATION + _PREVIEW
ACTIVE_STATUSES = ("queued", "running")
FINISHED_STATUSES = ("done", "failed")
ERRORS = (
    "preview produced no records",
    "could not infer output schema",
    "page requires login",
)
PARALLEL_LIMIT = 3


@dataclass(slots=True)
class AiFlow:
    id: str
    collector: str
    created: int
    queue_ms: int
    step_ms: tuple[int, ...]
    outcome: str  # done, failed or pending_answer
    fail_step: int
    error: str

    @property
    def running_from(self) -> int:
        return self.created + self.queue_ms

    @property
    def ends(self) -> int:
        steps = self.step_ms if self.outcome != "failed" else self.step_ms[: self.fail_step + 1]
        return self.running_from + sum(steps)

    def is_active_at(self, t: int) -> bool:
        return self.created <= t < self.ends

    def status_at(self, t: int) -> str:
        return stage(t, self.running_from, self.ends, "queued", "running", self.outcome)

    def progress_body(self, t: int) -> dict[str, Any]:
        """`/dca/collectors/{id}/automate_template/progress` for the latest flow."""
        status = self.status_at(t)
        body: dict[str, Any] = {"id": self.id, "status": status}
        if status == "queued":
            body["completed_steps"] = []
        elif status == "running":
            index = self._step_index(t)
            body["step"] = STEPS[index]
            body["completed_steps"] = list(STEPS[:index])
        elif status == "failed":
            body["step"] = STEPS[self.fail_step]
            body["completed_steps"] = list(STEPS[: self.fail_step])
            body["error"] = self.error
        elif status == "pending_answer":
            body["step"] = "user_approval"
            body["completed_steps"] = list(STEPS)
        else:
            body["step"] = STEPS[-1]
            body["completed_steps"] = list(STEPS)
        return body

    def _step_index(self, t: int) -> int:
        elapsed = t - self.running_from
        for index, duration in enumerate(self.step_ms):
            if elapsed < duration:
                return index
            elapsed -= duration
        return len(self.step_ms) - 1

    def state(self, t: int) -> dict[str, Any]:
        body = self.progress_body(t)
        body["collector"] = self.collector
        body["created"] = iso_ms(self.created)
        return body


def new_ai_flow(rng: random.Random, collector: str, created: int, queue_ms: int) -> AiFlow:
    """A generation takes about 4-10 minutes across its eight steps."""
    total = rng.randint(240_000, 600_000)
    weights = [rng.uniform(0.5, 1.5) for _ in STEPS]
    scale = total / sum(weights)
    r = rng.random()
    outcome = "done" if r < 0.8 else ("failed" if r < 0.92 else "pending_answer")
    return AiFlow(
        id=make_id("ia_", created, rng),
        collector=collector,
        created=created,
        queue_ms=queue_ms,
        step_ms=tuple(max(1_000, int(w * scale)) for w in weights),
        outcome=outcome,
        fail_step=rng.randrange(len(STEPS)),
        error=rng.choice(ERRORS),
    )
