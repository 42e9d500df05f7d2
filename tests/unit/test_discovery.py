"""Reading the lists: the Aitronos jobs list's pages, and when each list's watching began."""

from __future__ import annotations

from typing import Any

from scrapejobs_exporter.config import parse_config
from scrapejobs_exporter.discovery import Discovery
from scrapejobs_exporter.providers.aitronos import AitronosJob
from scrapejobs_exporter.providers.brightdata import Page
from scrapejobs_exporter.store import Store

START = 1_700_000_000.0


class FakeAitronos:
    """AI-2 over a list of jobs (oldest first), newest first, with the status filter."""

    def __init__(self, jobs: list[tuple[str, str]]) -> None:
        self.jobs = jobs
        self.calls: list[tuple[int, str | None]] = []

    async def list_jobs(self, offset: int, limit: int, status: str | None = None) -> Any:
        self.calls.append((offset, status))
        rows = [j for j in reversed(self.jobs) if status is None or j[1] == status]
        items = tuple(
            AitronosJob(job_id, status=state, raw_status=state, created=START + i)
            for i, (job_id, state) in enumerate(rows[offset : offset + limit])
        )
        return Page(items, len(rows))


def aitronos_discovery() -> Discovery:
    config = parse_config("aitronos:\n  api_key: k\n  discover: true\n", env={})
    return Discovery(config, Store(), clock=lambda: START)


async def test_aitronos_full_sweep_reads_the_newest_page_and_the_running_by_status() -> None:
    # 350 jobs of history, one still processing deep down, three new on top.
    jobs = [(f"old_{i}", "completed") for i in range(350)]
    jobs[20] = ("deep", "processing")
    jobs += [("new_1", "processing"), ("new_2", "pending"), ("new_3", "completed")]
    client = FakeAitronos(jobs)
    discovery = aitronos_discovery()
    source = discovery.sources("aitronos")[0]
    rows = await discovery._aitronos_jobs(client, source, True, set())  # type: ignore[arg-type]
    ids = {r.target_id for r in rows}
    assert {"deep", "new_1", "new_2", "new_3"} <= ids
    assert client.calls == [(0, None), (0, "processing"), (0, "pending")]  # not 4 pages
    assert source.pages == 3


async def test_aitronos_sweep_looks_for_running_jobs_by_status_only_when_missing() -> None:
    jobs = [(f"old_{i}", "completed") for i in range(350)]
    jobs[20] = ("deep", "processing")
    jobs[30] = ("gone", "completed")  # known running, finished out of sight
    jobs += [("new_1", "processing")]
    client = FakeAitronos(jobs)
    discovery = aitronos_discovery()
    store = discovery.store
    for job_id in ("deep", "gone", "new_1", "vanished"):
        target = store.add("aitronos", "job", job_id, static=False, now=START)
        store.observe(target, AitronosJob(job_id, status="processing", raw_status="processing"), START,
                      complete=False)  # fmt: skip
    for i in range(250, 351):
        store.add("aitronos", "job", f"old_{i}", static=False, now=START)
    source = discovery.sources("aitronos")[0]
    # Everything running is on the newest page: one call.
    await discovery._aitronos_jobs(client, source, False, {"new_1"})  # type: ignore[arg-type]
    assert client.calls == [(0, None)]
    client.calls.clear()
    rows = await discovery._aitronos_jobs(  # type: ignore[arg-type]
        client, source, False, {"deep", "gone", "new_1"}
    )
    by_id = {r.target_id: r for r in rows}
    assert "deep" in by_id
    # "gone" finished further down: read on until it shows (pages 2 to 4), once.
    assert client.calls == [
        (0, None), (0, "processing"), (0, "pending"), (100, None), (200, None), (300, None)
    ]  # fmt: skip
    model = by_id["gone"].model
    assert model is not None and model.status == "completed"
    # A job known running that the list no longer has at all: its own poll is due at once.
    client.calls.clear()
    await discovery._aitronos_jobs(client, source, False, {"vanished"})  # type: ignore[arg-type]
    assert client.calls[-1] == (300, None)  # the whole list, to its last page
    vanished = store.get(("aitronos", "job", "vanished"))
    assert vanished is not None and vanished.last_row is None


def test_jobs_lists_found_in_the_collectors_list_are_watched_from_its_start() -> None:
    from scrapejobs_exporter.providers.brightdata import Collector

    now = [START]
    config = parse_config("brightdata:\n  api_token: t\n  collectors: all\n", env={})
    discovery = Discovery(config, Store(), clock=lambda: now[0])
    now[0] += 4  # the collectors list took its time
    discovery._listed_collectors = [Collector("c_1", "one", True)]
    discovery.refresh()
    (jobs,) = [s for s in discovery.sources("brightdata") if s.what == "jobs"]
    assert jobs.added == START


def test_lists_configured_at_start_are_watched_from_the_process_start() -> None:
    now = [START + 3]  # the imports and the config took three seconds
    config = parse_config(
        "brightdata:\n  api_token: t\n  collectors: [c_1]\n  datasets: [gd_1]\n", env={}
    )
    discovery = Discovery(config, Store(), clock=lambda: now[0], started=START)
    assert {s.added for s in discovery.sources("brightdata")} == {START}
    now[0] += 60
    config = parse_config(
        "brightdata:\n  api_token: t\n  collectors: [c_1, c_2]\n  datasets: [gd_1]\n", env={}
    )
    discovery.config = config  # a reload adds a collector: watched from the reload on
    discovery.refresh()
    added = {s.arg: s.added for s in discovery.sources("brightdata")}
    assert added == {"c_1": START, "gd_1": START, "c_2": START + 63}
