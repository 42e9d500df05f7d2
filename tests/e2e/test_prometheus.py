"""End to end: the simulator, the exporter as a user runs it, and Debian's real Prometheus.

The simulator runs on a manual clock that this test moves forward while Prometheus scrapes every
second; then it stops moving, so ground truth and what Prometheus holds can be compared exactly.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from scrapejobs_exporter.simulator import SimulatorConfig, run_simulator_in_thread
from tests.conftest import require_binary
from tests.e2e import (
    LOOPBACK,
    ROOT,
    RULES,
    Process,
    free_port,
    prometheus_args,
    prometheus_config,
    query,
    wait_for,
)

pytestmark = pytest.mark.e2e


ADVANCES, ADVANCE_SECONDS = 24, 15.0  # six simulated minutes, in half-second steps


@dataclass
class Stack:
    sim: str
    exporter: str
    prometheus: str
    exporter_process: Process
    truth: dict[str, Any]


def _exporter_config(sim: str, state: dict[str, Any]) -> str:
    bd = state["brightdata"]
    datasets = sorted({s["dataset_id"] for s in bd["snapshots"]})
    flows = sorted({f["collector"] for f in bd["ai_flows"]})
    static_job = bd["jobs"][0]["id"]
    return f"""
poll_interval: 1s
request_timeout: 3s
concurrency: 16
brightdata:
  api_token: sim-brightdata-token
  base_url: {sim}
  jobs: [{static_job}]
  collectors: all
  datasets: {datasets}
  ai_flows: {flows}
  max_requests_per_minute: 100000
aitronos:
  api_key: ${{AITRONOS_KEY}}
  base_url: {sim}
  path_prefix: /api/v1
  discover: true
  max_requests_per_minute: 100000
  max_requests_per_day: null
retention:
  # Longer than this module runs: with a TTL of seconds, which finished targets (among them
  # every AI flow, all ended when the world stops) still have series when a check runs
  # depended on how fast the machine was, and the AI-flow panels came back empty under load.
  finished_ttl: 1h
stall:
  no_worker_after: 3s
  no_progress_after: 6s
state_file: state.db  # next to this config: its families are documented too
"""


def _run_world(sim: str) -> None:
    faults = [
        {"fault": "unknown_status", "rate": 0.1, "path": "^/dca/log/"},
        {"fault": "http_503", "rate": 0.1, "path": "^/api/v1/scrape/jobs/[^/]+/progress$"},
        # List reads go out every sweep whatever the scheduler picks for detail polls, so the
        # error and retry counters get samples on every run, not only on lucky ones.
        {"fault": "http_503", "rate": 0.1, "path": "^/dca/collector/jobs"},
    ]
    for fault in faults:
        httpx.post(f"{sim}/_sim/faults", json=fault).raise_for_status()
    for _ in range(ADVANCES):
        httpx.post(f"{sim}/_sim/advance", json={"seconds": ADVANCE_SECONDS}).raise_for_status()
        time.sleep(0.5)
    httpx.delete(f"{sim}/_sim/faults").raise_for_status()
    time.sleep(5)  # the world stands still: a few poll cycles and scrapes catch up


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus = require_binary("prometheus")
    tmp = tmp_path_factory.mktemp("e2e")
    # A real-time exporter on the manual clock, with budgets above any account's: the account
    # limits (which refill on the manual clock only) are set far above what it sends, so that
    # Aitronos still announces them in its X-RateLimit-* headers.
    sim_config = SimulatorConfig(
        seed=11, scale=300, manual_clock=True, running_fraction=0.1, stuck_fraction=0.2,
        brightdata_per_minute=10**9, aitronos_per_minute=10**9, aitronos_burst=10**9,
        aitronos_per_day=10**9,
    )  # fmt: skip
    with ExitStack() as stack, run_simulator_in_thread(sim_config) as simulator:
        state = httpx.get(f"{simulator.url}/_sim/state").json()
        config = tmp / "exporter.yml"
        config.write_text(_exporter_config(simulator.url, state))
        port = free_port()
        exporter_url = f"http://{LOOPBACK}:{port}"
        args = [sys.executable, "-m", "scrapejobs_exporter", "run", "--config", str(config),
                "--web.listen-address", f"{LOOPBACK}:{port}", "--log.level", "debug"]  # fmt: skip
        env = {"AITRONOS_KEY": sim_config.aitronos_key}
        exporter = stack.enter_context(Process(args, tmp / "exporter.log", env=env))
        wait_for(f"{exporter_url}/readyz")
        prom_port = free_port()
        prom_config = tmp / "prometheus.yml"
        prometheus_config(prom_config, {"scrapejobs-exporter": f"{LOOPBACK}:{port}"}, RULES)
        stack.enter_context(
            Process(
                prometheus_args(prometheus, prom_config, tmp / "data", prom_port),
                tmp / "prometheus.log",
            )
        )
        prom_url = f"http://{LOOPBACK}:{prom_port}"
        wait_for(f"{prom_url}/-/ready")
        _run_world(simulator.url)
        truth = httpx.get(f"{simulator.url}/_sim/state").json()
        yield Stack(simulator.url, exporter_url, prom_url, exporter, truth)


def _documented_metrics() -> list[str]:
    doc = (ROOT / "docs/metrics.md").read_text()
    return re.findall(r"^\| `([a-z_]+)` \|", doc, re.M)


def _latest(stack: Stack, expr: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for item in query(stack.prometheus, expr):
        labels = tuple(sorted((k, v) for k, v in item["metric"].items()
                              if k not in ("__name__", "instance", "job")))  # fmt: skip
        out[labels] = float(item["value"][1])
    return out


def test_every_documented_family_is_in_prometheus(stack: Stack) -> None:
    names = _documented_metrics()
    assert len(names) > 40

    def absent(candidates: list[str]) -> list[str]:
        # Seen in the last minute: finished targets' series end at `finished_ttl` (15 s here),
        # which may pass while these queries run.
        return [
            name for name in candidates
            if not query(stack.prometheus,
                         f'count(last_over_time({{__name__=~"{name}(_bucket)?"}}[1m]))')
        ]  # fmt: skip

    missing = absent(names)
    # Some families appear only once something happens (the first eviction at finished_ttl):
    # a bounded wait for those.
    deadline = time.monotonic() + 30
    while missing and time.monotonic() < deadline:
        time.sleep(1)
        missing = absent(missing)
    assert not missing, f"absent from Prometheus: {missing}"


def test_job_values_agree_with_ground_truth(stack: Stack) -> None:
    truth = {j["id"]: j for j in stack.truth["brightdata"]["jobs"]}
    statuses = _latest(stack, "brightdata_job_status == 1")
    assert len(statuses) > 20
    for labels, _ in statuses.items():
        job = truth[dict(labels)["job_id"]]
        assert dict(labels)["status"] == job["status"], job["id"]
        assert dict(labels)["collector"] == job["collector"]
    for metric, field, scale in [
        ("brightdata_job_pages", "pages", 1),
        ("brightdata_job_pages_left", "pages_left", 1),
        ("brightdata_job_success_ratio", "success_rate", 1),
        ("brightdata_job_duration_seconds", "job_time", 1000),
        ("brightdata_job_queue_seconds", "queue_time", 1000),
        ("brightdata_job_lines", "lines", 1),
    ]:
        values = _latest(stack, metric)
        assert values, metric
        for labels, value in values.items():
            expected = truth[dict(labels)["job_id"]][field] / scale
            assert value == pytest.approx(expected, abs=1e-6), (metric, labels)


def test_other_kinds_agree_with_ground_truth(stack: Stack) -> None:
    snapshots = {s["snapshot_id"]: s for s in stack.truth["brightdata"]["snapshots"]}
    seen = _latest(stack, "brightdata_snapshot_status == 1")
    assert seen
    for labels in seen:
        assert dict(labels)["status"] == snapshots[dict(labels)["snapshot_id"]]["status"]
    aitronos = {j["job_id"]: j for j in stack.truth["aitronos"]["jobs"]}
    jobs = _latest(stack, "aitronos_job_status == 1")
    assert jobs
    for labels in jobs:
        assert dict(labels)["status"] == aitronos[dict(labels)["job_id"]]["status"]
    for labels, value in _latest(stack, "aitronos_job_items_found").items():
        assert value == aitronos[dict(labels)["job_id"]]["total_properties_found"]
    flows = {f["collector"]: f for f in stack.truth["brightdata"]["ai_flows"]}
    for labels in _latest(stack, "brightdata_ai_flow_status == 1"):
        latest = [f for f in stack.truth["brightdata"]["ai_flows"]
                  if f["collector"] == dict(labels)["collector"]]  # fmt: skip
        assert dict(labels)["status"] in {f["status"] for f in latest} | {
            flows[dict(labels)["collector"]]["status"]
        }


def test_finished_counters_equal_ground_truth(stack: Stack) -> None:
    finished = stack.truth["finished"]
    counted = _latest(stack, "brightdata_collector_jobs_finished_total > 0")
    expected = {
        (("collector", c), ("status", s)): float(n)
        for c, by_status in finished["studio_jobs"].items()
        for s, n in by_status.items()
    }
    assert sum(expected.values()) > 5
    assert counted == expected
    snapshots = _latest(stack, "brightdata_dataset_snapshots_finished_total > 0")
    assert snapshots == {
        (("dataset_id", d), ("status", s)): float(n)
        for d, by_status in finished["snapshots"].items()
        for s, n in by_status.items()
    }
    aitronos = _latest(stack, "aitronos_jobs_finished_total > 0")
    assert aitronos == {(("status", s),): float(n) for s, n in finished["aitronos_jobs"].items()}


def test_exposition_passes_promtool(stack: Stack) -> None:
    promtool = require_binary("promtool")
    body = httpx.get(f"{stack.exporter}/metrics").text
    check = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0 and check.stdout + check.stderr == "", check.stdout + check.stderr


def test_dashboard_queries_return_data(stack: Stack) -> None:
    from grafana.queries import dashboard_queries

    empty = [
        (uid, title, expr)
        for uid, title, expr in dashboard_queries(include_sparse=True)
        if not query(stack.prometheus, expr)
    ]
    # Every panel query returns data, but the count of targets that are down: the faults were
    # cleared before the checks, so no target is down and that query is rightly empty.
    assert [title for _, title, _ in empty] in ([], ["Targets up / down"]), empty
    assert all("== 0" in expr for _, _, expr in empty)


def test_exporter_logged_no_traceback_and_no_secret(stack: Stack) -> None:
    assert stack.exporter_process.alive()
    log = stack.exporter_process.output()
    assert "Traceback" not in log
    assert "sim-brightdata-token" not in log
    assert "ak_simulator" not in log


def _old_progress(job: dict[str, Any]) -> float:
    """The formula the dashboards used to have, `pages / (pages + pages_left)`."""
    return float(job["pages"] / (job["pages"] + job["pages_left"]))


# What each per-job panel query of the job-detail dashboard shows, from the simulator's
# ground truth (a `/dca/log` body). Queries derived over time (ETA, stall, deriv) have no
# ground truth and are listed in _DERIVED; any other new query must be added here.
_JOB_TRUTH: list[tuple[str, Any]] = [
    (r"^\(brightdata_job_pages\{.*\} - brightdata_job_pages_left\{.*\}\)\s*/",
     lambda j: (j["pages"] - j["pages_left"]) / j["pages"]),
    (r"^brightdata_job_pages\{", lambda j: j["pages"]),
    (r"^brightdata_job_pages_left\{", lambda j: j["pages_left"]),
    (r"^brightdata_job_lines\{", lambda j: j["lines"]),
    (r"^brightdata_job_failures\{", lambda j: j["fails"]),
    (r"^brightdata_job_successes\{", lambda j: j["success"]),
    (r"^brightdata_job_success_ratio\{", lambda j: j["success_rate"]),
    (r"^brightdata_job_queue_seconds\{", lambda j: j["queue_time"] / 1000),
    (r"^brightdata_job_navigations\{", lambda j: j["navigations"]),
    (r"^brightdata_job_inputs\{", lambda j: j["inputs"]),
    (r"^brightdata_job_duplicate_inputs\{", lambda j: j["dup_inputs"]),
    (r"^brightdata_job_info\{", lambda j: 1),
]  # fmt: skip
_DERIVED = ("brightdata_job_eta_seconds", "brightdata_job_stalled", "deriv(")


def test_dashboard_panels_equal_ground_truth(stack: Stack) -> None:
    """Each job-detail panel, for a handful of running jobs, shows what the simulator holds;
    so do the overview's progress columns. The clock stands still at the end of the world, so
    ground truth and the last poll agree exactly."""
    from grafana.queries import dashboard_queries

    running = [j for j in stack.truth["brightdata"]["jobs"]
               if j["status"] == "running" and 0 < j["pages_left"] < j["pages"]]  # fmt: skip
    handful = sorted(running, key=lambda j: j["id"])[:5]
    assert len(handful) >= 3
    # The jobs are far enough from done that the old formula reads differently for each.
    assert all(
        abs(_old_progress(j) - (j["pages"] - j["pages_left"]) / j["pages"]) > 0.01 for j in handful
    )
    checks: list[tuple[str, str, Any]] = []  # (job id, expr, expected values)
    for job in handful:
        variables = {"collector": job["collector"], "job_id": job["id"]}
        before = len(checks)
        for uid, title, expr in dashboard_queries(variables):
            if uid != "scrapejobs-job-detail" or any(d in expr for d in _DERIVED):
                continue
            if expr.endswith("== 1") and expr.startswith("brightdata_job_status{"):
                expected: Any = {(("collector", job["collector"]), ("job_id", job["id"]),
                                  ("status", "running")): 1.0}  # fmt: skip
            elif expr.startswith("brightdata_job_duration_seconds{"):
                expected = {}  # a running job has no duration yet
            elif expr.startswith("brightdata_job_input_errors{"):
                expected = {}  # read once the job finished (hp_errors): none while it runs
            elif expr.startswith("brightdata_job_created_timestamp_seconds{"):
                expected = [_iso_ms(job["created"])]
            else:
                truth = next((f for p, f in _JOB_TRUTH if re.match(p, expr)), None)
                assert truth is not None, f"no ground truth for {title!r}: {expr}"
                expected = [truth(job)]
            checks.append((job["id"], expr, expected))
        assert len(checks) - before >= 12
    _eventually_equal(stack, checks)

    overview = dict(((t, e.split("\n")[0]), e) for u, t, e in dashboard_queries()
                    if u == "scrapejobs-overview")  # fmt: skip
    progress = next(e for (t, first), e in overview.items()
                    if t == "Running jobs" and first.startswith("("))  # fmt: skip
    shown = {dict(labels)["job_id"]: v for labels, v in _latest(stack, progress).items()}
    for job in handful:
        assert shown[job["id"]] == pytest.approx((job["pages"] - job["pages_left"]) / job["pages"])

    aitronos = {j["job_id"]: j for j in stack.truth["aitronos"]["jobs"]}
    for (title, _), expr in overview.items():
        if expr != "aitronos_job_progress_ratio":
            continue
        ratios = {dict(labels)["job_id"]: v for labels, v in _latest(stack, expr).items()}
        assert ratios, title  # at least the job still processing (finished ones may expire)
        for job_id, value in ratios.items():
            expected = aitronos[job_id]["progress_percentage"] / 100
            assert value == pytest.approx(expected), (title, job_id)


def _eventually_equal(stack: Stack, checks: list[tuple[str, str, Any]]) -> None:
    """Every query shows its expected value once the exporter has polled the standing world
    (a loaded machine may take a few cycles); a list is compared with the values alone."""
    deadline = time.monotonic() + 30
    while True:
        wrong = []
        for job_id, expr, expected in checks:
            got: Any = _latest(stack, expr)
            if isinstance(expected, list):
                got = list(got.values())
                if len(got) == len(expected) and got == pytest.approx(expected, rel=1e-9):
                    continue
            elif got == expected:
                continue
            wrong.append((job_id, expr, got, expected))
        if not wrong or time.monotonic() > deadline:
            break
        time.sleep(1)
    if wrong:
        job_id = wrong[0][0]
        row = httpx.get(f"{stack.exporter}/api/targets", params={"q": job_id}).json()
        pytest.fail(f"{len(wrong)} panel values differ from ground truth, e.g. {wrong[:3]}; "
                    f"the exporter's row for {job_id}: {row}")  # fmt: skip


def _iso_ms(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000
