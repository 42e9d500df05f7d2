"""`scrapejobs-exporter healthcheck` against a running exporter: the address and scheme it was
started with, read from its flags or from its /proc/PID/cmdline."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from scrapejobs_exporter.healthcheck import exporter_flags, probe_url
from scrapejobs_exporter.server import parse_listen_address
from tests.e2e import free_port, wait_for
from tests.helpers import SeedServer
from tests.unit.test_webconfig import Pki, pki  # noqa: F401  (the certificates fixture)

EXE = [sys.executable, "-m", "scrapejobs_exporter"]


def _healthcheck(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    return subprocess.run(
        [*EXE, "healthcheck", "--timeout", "3s", *args],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_probe_follows_the_running_exporter(tmp_path: Path, pki: Pki, tls: bool) -> None:  # noqa: F811
    port = free_port()
    web: list[str] = []
    if tls:
        config = tmp_path / "web.yml"
        config.write_text(
            f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
        )
        web = ["--web.config.file", str(config)]
    with SeedServer() as server:
        path = tmp_path / "c.yml"
        path.write_text(server.config())
        proc = subprocess.Popen(
            [*EXE, "run", "--config", str(path), "--web.listen-address", f"127.0.0.1:{port}", *web],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/-/healthy"
            wait_for(
                url, timeout=20, verify=ssl.create_default_context(cafile=pki.ca) if tls else True
            )
            # From the exporter's own command line, whatever port and scheme it has.
            found = _healthcheck("--pid", str(proc.pid))
            assert found.returncode == 0, found.stderr
            # From explicit flags.
            explicit = _healthcheck("--web.listen-address", f"127.0.0.1:{port}", *web)
            assert explicit.returncode == 0, explicit.stderr
            # The wrong scheme or port fails, with one line saying where.
            other = [] if tls else ["--web.config.file", str(tmp_path / "missing.yml")]
            wrong = _healthcheck("--web.listen-address", f"127.0.0.1:{free_port()}", *other)
            assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
            assert len(wrong.stderr.strip().splitlines()) == 1
            assert wrong.stderr.startswith("unhealthy: ")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=10)


def test_nothing_listening_is_unhealthy() -> None:
    result = _healthcheck("--web.listen-address", f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert result.stderr.startswith("unhealthy: http://127.0.0.1:")


def test_exporter_flags_of_a_process(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "1").mkdir(parents=True)
    argv = ["/opt/venv/bin/python", "/opt/venv/bin/scrapejobs-exporter", "run", "--config",
            "/etc/c.yml", "--web.listen-address", ":9000"]  # fmt: skip
    (proc / "1/cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    assert exporter_flags(1, proc) == ["--config", "/etc/c.yml", "--web.listen-address", ":9000"]
    (proc / "2").mkdir()
    (proc / "2/cmdline").write_bytes(b"/bin/sh\0-c\0sleep 1\0")
    assert exporter_flags(2, proc) is None
    assert exporter_flags(3, proc) is None


@pytest.mark.parametrize(
    ("listen", "tls", "url"),
    [
        (":9842", False, "http://127.0.0.1:9842/-/healthy"),
        ("0.0.0.0:9000", True, "https://127.0.0.1:9000/-/healthy"),
        ("[::]:9100", False, "http://[::1]:9100/-/healthy"),
        ("[::1]:9100", True, "https://[::1]:9100/-/healthy"),
        ("10.1.2.3:80", False, "http://10.1.2.3:80/-/healthy"),
    ],
)
def test_probe_url(listen: str, tls: bool, url: str) -> None:
    assert probe_url(parse_listen_address(listen), tls) == url
