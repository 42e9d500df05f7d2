"""The command line as a user runs it: check-config, once (against the seed bodies), run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import require_binary
from tests.e2e import free_port, wait_for
from tests.helpers import SEED_EXPOSITION_LINES, SeedServer, samples

EXE = [sys.executable, "-m", "scrapejobs_exporter"]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EXE, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


def test_check_config_ok(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("brightdata:\n  api_token: ${T}\n  jobs: [j_1]\n")
    result = _run("check-config", str(path), env={"T": "secret-value"})
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
    assert "secret-value" not in result.stdout + result.stderr


def test_check_config_errors_one_line_each_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("poll_interval: fast\nbrightdata:\n  api_token: ${NOPE_UNSET}\n  jobz: []\n")
    result = _run("check-config", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert f"{path}: brightdata.api_token: environment variable NOPE_UNSET is not set" in lines
    assert f"{path}: brightdata.jobz: unknown key" in lines
    assert any(line.startswith(f"{path}: poll_interval: invalid duration") for line in lines)
    assert "Traceback" not in result.stderr


def test_check_config_yaml_error_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("brightdata: [\n")
    result = _run("check-config", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_once_prints_seed_values(tmp_path: Path) -> None:
    with SeedServer() as server:
        path = tmp_path / "c.yml"
        path.write_text(server.config())
        result = _run("once", "--config", str(path))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in SEED_EXPOSITION_LINES:
        assert expected in out.splitlines(), expected
    assert "test-token" not in out + result.stderr and "test-key" not in out + result.stderr
    promtool = require_binary("promtool")
    check = subprocess.run(
        [promtool, "check", "metrics"], input=out, capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0 and check.stdout + check.stderr == "", check.stdout + check.stderr


def test_once_exits_1_when_a_target_fails(tmp_path: Path) -> None:
    with SeedServer() as server:
        path = tmp_path / "c.yml"
        path.write_text(server.config(extra_bd_jobs=", j_missing"))
        result = _run("once", "--config", str(path))
    assert result.returncode == 1
    assert "j_missing: HTTP 404" in result.stderr
    parsed = samples(result.stdout)
    key = ("scrapejobs_exporter_target_up",
           (("kind", "job"), ("provider", "brightdata"), ("target", "j_missing")))  # fmt: skip
    assert parsed[key] == 0


def _serve(config: Path, port: int, *flags: str) -> subprocess.Popen[str]:
    """`run` as a user starts it, returned once it is ready."""
    proc = subprocess.Popen(
        [*EXE, "run", "--config", str(config), "--web.listen-address", f"127.0.0.1:{port}", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/readyz", timeout=20)
    except TimeoutError:
        proc.kill()
        proc.communicate(timeout=10)
        raise
    return proc


def test_run_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    with SeedServer() as server:
        path = tmp_path / "c.yml"
        path.write_text(server.config())
        proc = _serve(path, port)
        try:
            base = f"http://127.0.0.1:{port}"
            assert httpx.get(f"{base}/healthz").text == "OK\n"
            metrics = httpx.get(f"{base}/metrics")
            assert 'aitronos_job_items_found{job_id="job_abc123"} 13' in metrics.text
        finally:
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=10)
    assert time.monotonic() - started < 5
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_run_bad_listen_address_is_usage_error(tmp_path: Path) -> None:
    result = _run("run", "--config", "x.yml", "--web.listen-address", "nope")
    assert result.returncode == 2 and "invalid listen address" in result.stderr


@pytest.mark.parametrize("flag", ["--log-format=json", "--log-format=text"])
def test_log_formats(tmp_path: Path, flag: str) -> None:
    with SeedServer() as server:
        path = tmp_path / "c.yml"
        path.write_text(server.config(extra_bd_jobs=", j_missing"))
        result = _run("once", "--config", str(path), flag)
    line = next(x for x in result.stderr.splitlines() if "j_missing" in x)
    if flag.endswith("json"):
        import json

        assert json.loads(line)["level"] == "warning"
    else:
        assert "WARNING" in line


def test_run_serves_metrics_at_the_telemetry_path(tmp_path: Path) -> None:
    port = free_port()
    with SeedServer() as server:
        path = tmp_path / "c.yml"
        path.write_text(server.config())
        proc = _serve(path, port, "--web.telemetry-path", "/prom")
        try:
            base = f"http://127.0.0.1:{port}"
            metrics = httpx.get(f"{base}/prom")
            assert 'aitronos_job_items_found{job_id="job_abc123"} 13' in metrics.text
            assert httpx.get(f"{base}/metrics").status_code == 404
            assert 'href="/prom"' in httpx.get(f"{base}/").text
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=10)
    assert proc.returncode == 0
