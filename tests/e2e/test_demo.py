"""`scrapejobs-exporter demo`: the README's first command."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e import LOOPBACK, free_port

KINDS = ("brightdata_job_status", "brightdata_snapshot_status", "brightdata_ai_flow_status",
         "aitronos_job_status")  # fmt: skip


def test_demo_serves_every_kind_within_ten_seconds_and_stops_on_ctrl_c() -> None:
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scrapejobs_exporter",
            "demo",
            "--web.listen-address",
            f"{LOOPBACK}:{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: set[str] = set()
    try:
        while time.monotonic() - started < 10 and len(seen) < len(KINDS):
            try:
                text = httpx.get(f"http://{LOOPBACK}:{port}/metrics", timeout=2).text
                seen = {k for k in KINDS if f"\n{k}{{" in text}
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    assert seen == set(KINDS), f"after 10 s only {seen}; stderr: {err[-2000:]}"
    assert f"http://127.0.0.1:{port}/metrics" in out
    assert 'scrapejobs_exporter_state_file_status{status="created"} 1' in text
    state_file = next(line.split()[-1] for line in out.splitlines() if "state file:" in line)
    assert not Path(state_file).exists()  # the demo's own, removed at exit
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err
