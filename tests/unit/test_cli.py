"""The command line as a user runs it: check-config, once (against the seed bodies), run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda p: p.write_bytes(b"\x00\xff\xfe"), "not UTF-8 text (byte 0xff at offset 1)"),
        (lambda p: p.write_bytes(b"poll_interval: 30s\n\xe9t\xe9: 1\n"), "not UTF-8 text"),
        (lambda p: p.mkdir(), "cannot read config file: Is a directory"),
        (lambda p: None, "cannot read config file: No such file or directory"),
        (lambda p: p.write_bytes(b"a: \x00\n"), "special characters are not allowed"),
    ],
    ids=["binary", "latin-1", "directory", "missing", "nul"],
)
def test_check_config_unreadable_file_one_line_exit_2(
    tmp_path: Path, make: Any, problem: str
) -> None:
    path = tmp_path / "c.yml"
    make(path)
    result = _run("check-config", str(path))
    assert result.returncode == 2 and result.stdout == ""
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"{path}: ") and problem in line


def test_check_config_secret_file_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "token").write_bytes(b"\xff\xfe")
    path = tmp_path / "c.yml"
    path.write_text("brightdata:\n  api_token_file: token\n  jobs: [j_1]\n")
    result = _run("check-config", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"{path}: brightdata.api_token_file: ") and "not UTF-8" in line


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
    """`run --log.level=debug --log.format=logfmt` as the official exporters spell it: every
    probe answers, every log line is logfmt, SIGTERM ends it within 5 s."""
    port = free_port()
    with SeedServer() as server:
        path = tmp_path / "c.yml"
        path.write_text(server.config())
        proc = _serve(path, port, "--log.level=debug", "--log.format=logfmt")
        try:
            base = f"http://127.0.0.1:{port}"
            assert httpx.get(f"{base}/healthz").text == "OK\n"
            for probe in ("/-/healthy", "/readyz", "/-/ready"):
                assert httpx.get(base + probe).status_code == 200, probe
            metrics = httpx.get(f"{base}/metrics")
            assert 'aitronos_job_items_found{job_id="job_abc123"} 13' in metrics.text
        finally:
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=10)
    assert time.monotonic() - started < 5
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert any(_logfmt(line)["level"] == "debug" for line in lines)
    assert all(_logfmt(line) for line in lines)


def test_run_bad_listen_address_is_usage_error(tmp_path: Path) -> None:
    result = _run("run", "--config", "x.yml", "--web.listen-address", "nope")
    assert result.returncode == 2 and "invalid listen address" in result.stderr


@pytest.mark.parametrize(
    ("flags", "fmt"),
    [
        (["--log.format=json"], "json"),
        (["--log.format=logfmt"], "logfmt"),
        ([], "logfmt"),
        # The previous release's spellings, kept hidden for one release.
        (["--log-format=text", "--log-level=warning"], "logfmt"),
        (["--log-format", "json"], "json"),
    ],
)
def test_log_formats(tmp_path: Path, flags: list[str], fmt: str) -> None:
    with SeedServer() as server:
        path = tmp_path / "c.yml"
        path.write_text(server.config(extra_bd_jobs=", j_missing"))
        result = _run("once", "--config", str(path), *flags)
    line = next(x for x in result.stderr.splitlines() if "j_missing" in x)
    if fmt == "json":
        import json

        assert json.loads(line)["level"] == "warn"
    else:
        fields = _logfmt(line)
        assert fields["level"] == "warn" and "j_missing" in fields["msg"]
        assert fields["logger"].startswith("scrapejobs_exporter") and fields["ts"].endswith("Z")


def _logfmt(line: str) -> dict[str, str]:
    """A strict logfmt reader: bare values or JSON-quoted strings, nothing else may remain."""
    import json
    import re

    fields, pos = {}, 0
    pattern = re.compile(r'([A-Za-z_][\w.]*)=("(?:[^"\\]|\\.)*"|[^\s"=]*)(?: |$)')
    while pos < len(line):
        match = pattern.match(line, pos)
        assert match, f"not logfmt at {line[pos:]!r}"
        value = match.group(2)
        fields[match.group(1)] = json.loads(value) if value.startswith('"') else value
        pos = match.end()
    return fields


def test_help_shows_the_new_flags_only() -> None:
    text = _run("run", "--help").stdout
    assert "--log.level {debug,info,warn,error}" in text and "--log.format {logfmt,json}" in text
    assert "--log-level" not in text and "--log-format" not in text


@pytest.mark.parametrize(
    "command", [["run"], ["once"], ["check-config"], ["demo"], ["watch"], ["ai-flow"], ["simulate"]]
)
def test_version_on_every_command(command: list[str]) -> None:
    from scrapejobs_exporter import __version__

    result = _run(*command, "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"scrapejobs-exporter {__version__}"


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


@pytest.mark.parametrize("url", ["grafana.example.com", "ftp://g.example", "https://"])
def test_run_bad_grafana_url_is_usage_error(url: str) -> None:
    result = _run("run", "--config", "x.yml", "--web.grafana-url", url)
    assert result.returncode == 2 and "invalid Grafana URL" in result.stderr
    assert "Traceback" not in result.stderr
