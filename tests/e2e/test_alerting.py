"""End to end alerting: a job failure injected in the simulator travels through the exporter,
Prometheus (with the project's alert rules) and the real Alertmanager to a webhook receiver."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from scrapejobs_exporter.simulator import SimulatorConfig, run_simulator_in_thread
from tests.e2e import LOOPBACK, RULES, query, start_alerting

pytestmark = pytest.mark.e2e


class Webhook:
    """A loopback receiver that keeps every alert Alertmanager posts."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        received = self.alerts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.extend(json.loads(body).get("alerts", []))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def firing(self, alertname: str, **labels: str) -> list[dict[str, Any]]:
        return [
            a for a in list(self.alerts)
            if a["status"] == "firing" and a["labels"].get("alertname") == alertname
            and all(a["labels"].get(k) == v for k, v in labels.items())
        ]  # fmt: skip


# The alerts about targets that failed; none may fire for a failure the exporter did not watch.
FAILED_ALERTS = (
    "BrightDataJobFailed",
    "BrightDataSnapshotFailed",
    "BrightDataAIFlowFailed",
    "AitronosJobFailed",
    "AitronosJobTimedOut",
)


@dataclass
class AlertStack:
    sim: str
    prometheus: str
    webhook: Webhook
    state: dict[str, Any]


@pytest.fixture
def account_stack(tmp_path: Path) -> Iterator[AlertStack]:
    """The whole account watched through discovery, on a simulator whose history holds failed
    jobs, snapshots, AI flows and Aitronos jobs. Its clock stands still, so nothing fails
    unless the test says so."""
    # Seed 7's history holds every kind of failure: jobs, snapshots, an AI flow, Aitronos
    # jobs failed and timed out. A real-time exporter polling every second on the manual
    # clock, where the per-account limits would only refill when the test advances time: they
    # are not under test here.
    sim_config = SimulatorConfig(seed=7, scale=200, manual_clock=True, running_fraction=0.1,
                                 stuck_fraction=0.0, rate_limits=False)  # fmt: skip
    with ExitStack() as stack, run_simulator_in_thread(sim_config) as sim, Webhook() as webhook:
        state = httpx.get(f"{sim.url}/_sim/state").json()
        datasets = sorted({s["dataset_id"] for s in state["brightdata"]["snapshots"]})
        config = (
            f"poll_interval: 1s\nbrightdata:\n  api_token: {sim_config.brightdata_token}\n"
            f"  base_url: {sim.url}\n  collectors: all\n  ai_flows: all\n"
            f"  datasets: {datasets}\n  max_requests_per_minute: 100000\n"
            f"aitronos:\n  api_key: {sim_config.aitronos_key}\n  base_url: {sim.url}\n"
            "  path_prefix: /api/v1\n  discover: true\n  max_requests_per_minute: 100000\n"
            "  max_requests_per_day: null\n"
        )
        prom_url = start_alerting(stack, tmp_path, config, webhook.port, RULES)
        yield AlertStack(sim.url, prom_url, webhook, state)


def _active_failed_alerts(prometheus: str) -> list[dict[str, Any]]:
    """Pending or firing failed-target alerts in Prometheus itself (before any routing)."""
    alerts = httpx.get(f"{prometheus}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] in FAILED_ALERTS]


def test_history_fires_nothing_and_a_new_failure_reaches_the_webhook(
    account_stack: AlertStack,
) -> None:
    sim, prom, webhook, state = (account_stack.sim, account_stack.prometheus,
                                 account_stack.webhook, account_stack.state)  # fmt: skip
    history = [j for j in state["brightdata"]["jobs"] if j["status"] == "failed"]
    assert len(history) >= 3, "the account's history must hold failed jobs"
    assert any(f["status"] == "failed" for f in state["brightdata"]["ai_flows"])
    assert any(s["status"] == "failed" for s in state["brightdata"]["snapshots"])
    assert any(j["status"] == "failed" for j in state["aitronos"]["jobs"])
    assert any(j["completion_reason"] == "timeout" for j in state["aitronos"]["jobs"])
    # The exporter tracks the old failures (so they would fire under a per-job status rule)...
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(
        query(prom, 'brightdata_job_status{status="failed"} == 1')
    ) < len(history):
        time.sleep(0.5)
    assert len(query(prom, 'brightdata_job_status{status="failed"} == 1')) >= len(history)
    # ... and yet, over many scrapes and rule evaluations, no failed-target alert is even pending.
    quiet_until = time.monotonic() + 8
    while time.monotonic() < quiet_until:
        assert not _active_failed_alerts(prom)
        time.sleep(0.5)
    assert not [a for a in webhook.alerts if a["labels"].get("alertname") in FAILED_ALERTS]

    job = next(j for j in state["brightdata"]["jobs"] if j["status"] == "running")
    httpx.post(f"{sim}/_sim/fail", json={"job_id": job["id"]}).raise_for_status()
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline and not webhook.firing("BrightDataJobFailed"):
        time.sleep(0.5)
    alerts = webhook.firing("BrightDataJobFailed")
    assert alerts, f"no alert delivered; received: {webhook.alerts[:3]}"
    assert [a["labels"]["collector"] for a in alerts] == [job["collector"]]
    alert = alerts[0]
    assert alert["labels"]["severity"] == "warning"
    assert alert["annotations"]["summary"] and "About 1 " in alert["annotations"]["description"]
    assert "docs/runbooks.md#" in alert["annotations"]["runbook_url"]
    # Only the one new failure: no other failed-target alert came with it.
    others = [a["labels"] for a in _active_failed_alerts(prom)
              if a["labels"]["alertname"] != "BrightDataJobFailed"]  # fmt: skip
    assert not others
