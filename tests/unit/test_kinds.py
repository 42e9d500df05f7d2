"""The kind declarations, and what the store does with them: counting once per run, from the
row or the detail, and only what finished after watching started."""

from __future__ import annotations

from dataclasses import replace

from scrapejobs_exporter.aggregates import Aggregates
from scrapejobs_exporter.config import BucketsConfig, parse_config
from scrapejobs_exporter.exporter import _budget
from scrapejobs_exporter.kinds import AI_FLOW, AITRONOS_JOB, BY_COMMAND, KINDS, STUDIO_JOB, kind_of
from scrapejobs_exporter.providers.aitronos import parse_job_progress, parse_job_row
from scrapejobs_exporter.providers.brightdata import parse_ai_flow_progress
from scrapejobs_exporter.providers.brightdata import parse_job_row as row
from scrapejobs_exporter.sharding import Shard
from scrapejobs_exporter.store import KINDS as STORE_KINDS
from scrapejobs_exporter.store import Store
from scrapejobs_exporter.watch import KINDS as WATCH_KINDS
from tests.conftest import seed
from tests.helpers import value, values

START = 1_788_000_000.0


def test_every_kind_declared_once_and_read_everywhere() -> None:
    assert len({k.key for k in KINDS}) == len(KINDS) == 4
    assert tuple(k.key for k in KINDS) == STORE_KINDS
    assert WATCH_KINDS == BY_COMMAND
    assert all(kind_of(*k.key) is k for k in KINDS)


def store() -> tuple[Store, Aggregates]:
    aggregates = Aggregates(BucketsConfig())
    return Store(aggregates), aggregates


def studio_row(status: str, finished: str | None) -> object:
    body = {"id": "j_1", "status": status, "queued": "2026-08-23T12:00:00.000Z",
            "started": "2026-08-23T12:00:01.000Z", "data_lines": 7, "failed_pages": 1}  # fmt: skip
    if finished:
        body["finished"] = finished
    return row(body, "c_1")


def test_a_job_counts_from_its_row_once_and_the_detail_adds_nothing() -> None:
    s, a = store()
    target = s.add("brightdata", "job", "j_1", "c_1", static=False)
    watermark = studio_row("running", None).started  # type: ignore[attr-defined]
    s.observe(target, studio_row("running", None), START, complete=False,  # type: ignore[arg-type]
              watermark=watermark, first_sweep=True)  # fmt: skip
    done = studio_row("done", "2026-08-23T12:05:00.000Z")
    s.observe(target, done, START + 30, complete=False, watermark=watermark)  # type: ignore[arg-type]
    assert value(a.jobs_finished, "c_1", "done") == 1
    assert value(a.collector_lines, "c_1") == 7
    assert not target.final  # its detail poll is still owed (fields the row lacks)
    detail = replace(done, success_rate=0.9, pages_left=0)  # type: ignore[type-var]
    s.observe(target, detail, START + 60, complete=True, watermark=watermark)
    s.observe(target, done, START + 90, complete=False, watermark=watermark)  # type: ignore[arg-type]
    assert value(a.jobs_finished, "c_1", "done") == 1 and value(a.collector_lines, "c_1") == 7
    assert target.final and target.model.success_rate == 0.9  # type: ignore[union-attr]


def test_what_finished_before_watching_is_not_counted_even_when_first_seen_later() -> None:
    s, a = store()
    watermark = studio_row("done", "2026-08-23T12:05:00.000Z").finished  # type: ignore[attr-defined]
    first = s.add("brightdata", "job", "j_1", "c_1", static=False)
    s.observe(first, studio_row("done", "2026-08-23T12:05:00.000Z"), START,  # type: ignore[arg-type]
              complete=False, watermark=watermark, first_sweep=True)  # fmt: skip
    late = s.add("brightdata", "job", "j_2", "c_1", static=False)  # beyond the first pages
    s.observe(late, studio_row("done", "2026-08-23T12:04:00.000Z"), START + 30,  # type: ignore[arg-type]
              complete=False, watermark=watermark)  # fmt: skip
    new = s.add("brightdata", "job", "j_3", "c_1", static=False)  # came and went between reads
    s.observe(new, studio_row("failed", "2026-08-23T12:06:00.000Z"), START + 30,  # type: ignore[arg-type]
              complete=False, watermark=watermark)  # fmt: skip
    assert sum(values(a.jobs_finished).values()) == 1
    assert value(a.jobs_finished, "c_1", "failed") == 1


def test_aitronos_items_found_are_added_when_the_detail_arrives() -> None:
    s, a = store()
    target = s.add("aitronos", "job", "job_abc123", static=False)
    body = seed("aitronos_progress_timeout")
    detail = parse_job_progress(body, "job_abc123")
    running = replace(detail, status="processing", completed=None, items_found=None)
    s.observe(target, running, START, complete=False, watermark=0.0, first_sweep=True)
    finished_row = replace(detail, items_found=None, completion_reason=None)
    s.observe(target, finished_row, START + 30, complete=False, watermark=0.0)
    assert sum(values(a.aitronos_finished).values()) == 1
    assert value(a.aitronos_items) == 0
    s.observe(target, detail, START + 60, complete=True, watermark=0.0)
    s.observe(target, detail, START + 90, complete=True, watermark=0.0)
    assert sum(values(a.aitronos_finished).values()) == 1
    assert value(a.aitronos_items) == detail.items_found
    assert parse_job_row({"job_id": "x", "status": "completed"}).items_found is None


def test_an_ai_flow_counts_each_run_once_but_not_the_one_before_watching() -> None:
    s, a = store()
    target = s.add("brightdata", "ai_flow", "c_m9im5n7v82p2y35la", "c_m9im5n7v82p2y35la")
    done = parse_ai_flow_progress(seed("ai_flow_progress_done"), "c_m9im5n7v82p2y35la")
    s.observe(target, done, START, complete=True)
    assert sum(values(a.ai_flows_finished).values()) == 0 and target.final
    rerun = replace(done, ai_job_id="ai_2", status="running")
    s.observe(target, rerun, START + 300, complete=True)
    assert not target.final
    s.observe(target, replace(rerun, status="done"), START + 600, complete=True)
    s.observe(target, replace(rerun, status="done"), START + 900, complete=True)
    assert value(a.ai_flows_finished, "done") == 1
    assert AI_FLOW.recheck_finished is not None and AI_FLOW.recheck_finished <= 300


def test_shards_split_the_account_budget() -> None:
    text = """
brightdata:
  api_token: t
  max_requests_per_minute: 100
aitronos:
  api_key: k
  jobs: [job_1]
"""
    config = parse_config(text, env={})
    assert _budget(config, "brightdata", Shard(1, 3)) == (33, None)
    assert _budget(config, "aitronos", Shard(1, 3)) == (33, 3333)
    own = parse_config(text + "  shard_max_requests_per_minute: 50\n", env={})
    assert _budget(own, "aitronos", Shard(0, 3)) == (50, 3333)
    discover = parse_config(text + "  discover: true\n", env={})
    assert _budget(discover, "aitronos", Shard(0, 3)) == (100, 10_000)
    assert STUDIO_JOB.final_detail == "spare" and AITRONOS_JOB.final_detail == "required"
