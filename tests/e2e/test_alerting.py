"""End to end alerting: a job failure injected in the simulator travels through the exporter,
Prometheus (with the project's alert rules) and the real Alertmanager to a webhook receiver."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from scrapejobs_exporter.simulator import SimulatorConfig, run_simulator_in_thread
from tests.conftest import require_binary
from tests.e2e import (
    LOOPBACK,
    RULES,
    Process,
    free_port,
    prometheus_args,
    prometheus_config,
    wait_for,
)

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


def _alertmanager_config(path: Path, webhook: int) -> None:
    path.write_text(
        f"""route:
  receiver: test
  group_by: [alertname, job_id]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: test
    webhook_configs:
      - url: http://{LOOPBACK}:{webhook}/alerts
        send_resolved: true
"""
    )


@pytest.fixture
def running_job_stack(tmp_path: Path) -> Iterator[tuple[str, str, Webhook]]:
    prometheus = require_binary("prometheus")
    alertmanager = require_binary("prometheus-alertmanager")
    # A real-time exporter polling every second on the manual clock, where the per-account
    # limits would only refill when the test advances time: they are not under test here.
    sim_config = SimulatorConfig(seed=21, scale=200, manual_clock=True, running_fraction=0.1,
                                 stuck_fraction=0.0, rate_limits=False)  # fmt: skip
    with ExitStack() as stack, run_simulator_in_thread(sim_config) as sim, Webhook() as webhook:
        state = httpx.get(f"{sim.url}/_sim/state").json()
        job = next(j for j in state["brightdata"]["jobs"] if j["status"] == "running")
        config = tmp_path / "exporter.yml"
        config.write_text(
            f"poll_interval: 1s\nbrightdata:\n  api_token: {sim_config.brightdata_token}\n"
            f"  base_url: {sim.url}\n  jobs: [{job['id']}]\n"
        )
        port, am_port, prom_port = free_port(), free_port(), free_port()
        stack.enter_context(Process(
            [sys.executable, "-m", "scrapejobs_exporter", "run", "--config", str(config),
             "--web.listen-address", f"{LOOPBACK}:{port}"], tmp_path / "exporter.log",
        ))  # fmt: skip
        _alertmanager_config(tmp_path / "alertmanager.yml", webhook.port)
        stack.enter_context(Process(
            [alertmanager, f"--config.file={tmp_path / 'alertmanager.yml'}",
             f"--storage.path={tmp_path / 'am'}", f"--web.listen-address={LOOPBACK}:{am_port}",
             "--cluster.listen-address="], tmp_path / "alertmanager.log",
        ))  # fmt: skip
        prometheus_config(
            tmp_path / "prometheus.yml",
            {"scrapejobs-exporter": f"{LOOPBACK}:{port}"},
            RULES,
            alertmanager=f"{LOOPBACK}:{am_port}",
        )
        stack.enter_context(Process(
            prometheus_args(prometheus, tmp_path / "prometheus.yml", tmp_path / "data", prom_port),
            tmp_path / "prometheus.log",
        ))  # fmt: skip
        for url in (f"http://{LOOPBACK}:{port}/readyz", f"http://{LOOPBACK}:{am_port}/-/ready",
                    f"http://{LOOPBACK}:{prom_port}/-/ready"):  # fmt: skip
            wait_for(url)
        yield sim.url, job["id"], webhook


def test_injected_failure_reaches_the_webhook(running_job_stack: tuple[str, str, Webhook]) -> None:
    sim, job_id, webhook = running_job_stack
    time.sleep(4)  # a few scrapes and rule evaluations while the job runs fine
    assert not webhook.firing("BrightDataJobFailed", job_id=job_id)
    httpx.post(f"{sim}/_sim/fail", json={"job_id": job_id}).raise_for_status()
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline and not webhook.firing("BrightDataJobFailed", job_id=job_id):
        time.sleep(0.5)
    alerts = webhook.firing("BrightDataJobFailed", job_id=job_id)
    assert alerts, f"no alert delivered; received: {webhook.alerts[:3]}"
    alert = alerts[0]
    assert alert["labels"]["severity"]
    assert alert["annotations"]["summary"] and alert["annotations"]["description"]
    assert "docs/runbooks.md#" in alert["annotations"]["runbook_url"]
