"""Helpers for end-to-end tests: loopback ports, child processes, Prometheus's HTTP API."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import require_binary

LOOPBACK = "127.0.0.1"
ROOT = Path(__file__).parents[2]
RULES = [ROOT / "prometheus/rules/recording.rules.yml", ROOT / "prometheus/rules/alerts.rules.yml"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_for(
    url: str, timeout: float = 30.0, status: int = 200, verify: ssl.SSLContext | bool = True
) -> None:
    """Poll `url` until it answers `status`; bounded by `timeout` seconds. `verify`: a
    context trusting the CA of an https URL with a private certificate."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2, verify=verify)
            if response.status_code == status:
                return
            last = f"HTTP {response.status_code}"
        except httpx.TransportError as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer {status} within {timeout:g}s ({last})")


class Process:
    """A child process whose output goes to a log file, stopped (and reaped) on exit."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.log = log
        self.env = None if env is None else {**os.environ, **env}
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Process:
        handle = self.log.open("wb")
        self.proc = subprocess.Popen(
            self.args, stdout=handle, stderr=subprocess.STDOUT, env=self.env
        )
        handle.close()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    """An instant query's result vector (or matrix)."""
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert body.get("status") == "success", f"{expr}: {body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def prometheus_config(path: Path, targets: dict[str, str], rule_files: list[Path],
                      alertmanager: str | None = None) -> None:  # fmt: skip
    jobs = "\n".join(
        f"""  - job_name: {name}
    scrape_interval: 1s
    static_configs:
      - targets: ["{target}"]"""
        for name, target in targets.items()
    )
    rules = "\n".join(f"  - {p}" for p in rule_files)
    alerting = (
        f"""alerting:
  alertmanagers:
    - static_configs:
        - targets: ["{alertmanager}"]
"""
        if alertmanager
        else ""
    )
    path.write_text(
        f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
{rules or "  []"}
{alerting}scrape_configs:
{jobs}
"""
    )


def prometheus_args(binary: str, config: Path, data: Path, port: int) -> list[str]:
    return [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={data}",
        f"--web.listen-address={LOOPBACK}:{port}",
        "--storage.tsdb.retention.time=1h",
    ]


def alertmanager_config(path: Path, webhook: int) -> None:
    path.write_text(
        f"""route:
  receiver: test
  group_by: [alertname, collector]
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


def start_alerting(
    stack: ExitStack, tmp: Path, exporter_config: str, webhook: int, rules: list[Path]
) -> str:
    """The exporter (run with `exporter_config`), Alertmanager posting to the `webhook` port and
    Prometheus with `rules`, each on a free loopback port and stopped with `stack`; returns
    Prometheus's URL once all three are ready."""
    prometheus = require_binary("prometheus")
    alertmanager = require_binary("prometheus-alertmanager")
    config = tmp / "exporter.yml"
    config.write_text(exporter_config)
    port, am_port, prom_port = free_port(), free_port(), free_port()
    stack.enter_context(Process(
        [sys.executable, "-m", "scrapejobs_exporter", "run", "--config", str(config),
         "--web.listen-address", f"{LOOPBACK}:{port}"], tmp / "exporter.log",
    ))  # fmt: skip
    alertmanager_config(tmp / "alertmanager.yml", webhook)
    stack.enter_context(Process(
        [alertmanager, f"--config.file={tmp / 'alertmanager.yml'}",
         f"--storage.path={tmp / 'am'}", f"--web.listen-address={LOOPBACK}:{am_port}",
         "--cluster.listen-address="], tmp / "alertmanager.log",
    ))  # fmt: skip
    prometheus_config(
        tmp / "prometheus.yml",
        {"scrapejobs-exporter": f"{LOOPBACK}:{port}"},
        rules,
        alertmanager=f"{LOOPBACK}:{am_port}",
    )
    stack.enter_context(Process(
        prometheus_args(prometheus, tmp / "prometheus.yml", tmp / "data", prom_port),
        tmp / "prometheus.log",
    ))  # fmt: skip
    prom = f"http://{LOOPBACK}:{prom_port}"
    for url in (f"http://{LOOPBACK}:{port}/readyz", f"http://{LOOPBACK}:{am_port}/-/ready",
                f"{prom}/-/ready"):  # fmt: skip
        wait_for(url)
    return prom
