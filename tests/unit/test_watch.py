"""`scrapejobs-exporter watch` as a user runs it, against the simulator on a manual clock.

The simulator's time moves only when a test advances it, so a job's whole life takes a few
polls; every loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from scrapejobs_exporter.config import load_config
from scrapejobs_exporter.exporter import build_providers
from scrapejobs_exporter.simulator import (
    DEFAULT_AITRONOS_KEY,
    DEFAULT_BRIGHTDATA_TOKEN,
    SimulatorConfig,
    SimulatorServer,
    run_simulator_in_thread,
)
from scrapejobs_exporter.store import Store
from scrapejobs_exporter.telemetry import Telemetry
from scrapejobs_exporter.watch import ProgressLine, WatchOptions, describe, watch

EXE = [sys.executable, "-m", "scrapejobs_exporter"]
STEP_SECONDS = 60  # simulated seconds per advance


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with run_simulator_in_thread(SimulatorConfig(manual_clock=True, scale=300, seed=7)) as server:
        yield server


def write_config(sim: SimulatorServer, path: Path) -> Path:
    path.write_text(
        f"brightdata:\n  api_token: {DEFAULT_BRIGHTDATA_TOKEN}\n  base_url: {sim.url}\n"
        f"aitronos:\n  api_key: {DEFAULT_AITRONOS_KEY}\n  base_url: {sim.url}\n"
    )
    return path


def state(sim: SimulatorServer) -> dict[str, Any]:
    return httpx.get(f"{sim.url}/_sim/state", timeout=10).json()  # type: ignore[no-any-return]


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=timeout)


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*EXE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def drive(sim: SimulatorServer, proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    """Advance simulated time while the command polls, until it exits (bounded). Call it after
    the first line, so that the first poll sees the target as the test found it."""
    deadline = time.monotonic() + 60
    for _ in range(600):
        if proc.poll() is not None or time.monotonic() > deadline:
            break
        httpx.post(f"{sim.url}/_sim/advance", json={"seconds": STEP_SECONDS}, timeout=10)
        time.sleep(0.05)
    try:
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    return proc.returncode, out, err


def wait_for_line(proc: subprocess.Popen[str]) -> str:
    """The first line the command prints (its first poll)."""
    assert proc.stdout is not None
    line = proc.stdout.readline()  # bounded: the command polls at once, the timeout is 5 s
    assert line, proc.stderr.read() if proc.stderr else ""
    return line


def running_job(sim: SimulatorServer) -> dict[str, Any]:
    jobs = [j for j in state(sim)["brightdata"]["jobs"] if j["status"] == "running"]
    normal = [j for j in jobs if j["stuck"] is None]
    return min(normal, key=lambda j: j["pages_left"])


def test_watch_job_until_it_ends_exit_code_follows_ground_truth(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    job = running_job(sim)
    config = write_config(sim, tmp_path / "c.yml")
    proc = start("watch", "job", job["id"], "--config", str(config), "--interval", "0.1")
    first = wait_for_line(proc)
    code, out, err = drive(sim, proc)
    final = next(j for j in state(sim)["brightdata"]["jobs"] if j["id"] == job["id"])
    assert final["status"] in ("done", "failed", "cancelled")
    assert code == (0 if final["status"] == "done" else 1), err
    lines = [first, *out.strip().splitlines()]
    assert lines[0].startswith(f"{job['id']}  running  [")
    assert "pages" in lines[0] and "elapsed" in lines[0]
    assert lines[-1].startswith(f"{job['id']}: {final['status']}")
    assert f"{final['pages']} / {final['pages']} pages" in lines[-2] or final["status"] != "done"
    assert "Traceback" not in err and DEFAULT_BRIGHTDATA_TOKEN not in out + err


def test_watch_failing_job_exits_1(sim: SimulatorServer, tmp_path: Path) -> None:
    job = running_job(sim)
    config = write_config(sim, tmp_path / "c.yml")
    proc = start("watch", "job", job["id"], "--config", str(config), "--interval", "0.1")
    first = wait_for_line(proc)
    assert " running " in first
    failed = httpx.post(f"{sim.url}/_sim/fail", json={"job_id": job["id"]}, timeout=10)
    assert failed.status_code == 200
    code, out, err = drive(sim, proc)
    assert code == 1, err
    assert out.strip().splitlines()[-1] == f"{job['id']}: failed - exit 1"


def test_watch_json_lines(sim: SimulatorServer, tmp_path: Path) -> None:
    job = next(j for j in state(sim)["aitronos"]["jobs"] if j["status"] == "processing")
    config = write_config(sim, tmp_path / "c.yml")
    proc = start(
        "watch", "aitronos-job", job["job_id"], "--config", str(config), "--interval", "0.1",
        "--json",
    )  # fmt: skip
    first = wait_for_line(proc)
    code, out, err = drive(sim, proc)
    rows = [json.loads(line) for line in [first, *out.splitlines()]]
    end = rows.pop()
    final = next(j for j in state(sim)["aitronos"]["jobs"] if j["job_id"] == job["job_id"])
    assert end == {"event": "end", "status": final["status"], "exit_code": code}
    assert code == (0 if final["status"] == "completed" else 1), err
    assert all(r["id"] == job["job_id"] and r["provider"] == "aitronos" for r in rows)
    assert rows[0]["status"] == "processing" and rows[0]["progress"]["unit"] == "percent"
    assert rows[-1]["status"] == final["status"] and rows[-1]["final"] is True


def test_watch_unknown_job_gives_up_at_once(sim: SimulatorServer, tmp_path: Path) -> None:
    config = write_config(sim, tmp_path / "c.yml")
    result = cli("watch", "job", "j_nosuchjob", "--config", str(config), "--interval", "0.1")
    assert result.returncode == 1
    assert result.stdout.strip().splitlines()[-1] == (
        'j_nosuchjob: giving up: HTTP 404: {"error":"Job not found"}'
    )


def test_watch_ctrl_c_exits_cleanly(sim: SimulatorServer, tmp_path: Path) -> None:
    job = running_job(sim)
    config = write_config(sim, tmp_path / "c.yml")
    proc = start("watch", "job", job["id"], "--config", str(config), "--interval", "30")
    wait_for_line(proc)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert time.monotonic() - started < 5
    assert proc.returncode == 1
    assert out.strip().splitlines()[-1] == f"{job['id']}: interrupted"
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["watch", "job", "j/../x"], "error: invalid id 'j/../x'"),
        (["watch", "aitronos-job", "job_1"], "error: the config has no `aitronos` section"),
        (["watch", "job", "j_1", "--interval", "0"], "the interval must be positive"),
        (["watch", "nope", "j_1"], "invalid choice: 'nope'"),
    ],
)
def test_watch_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    config = tmp_path / "c.yml"
    config.write_text("brightdata:\n  api_token: t\n  base_url: http://127.0.0.1:9\n")
    result = cli(*args, "--config", str(config))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_watch_config_error_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "c.yml"
    config.write_text("brightdata:\n  api_tokn: t\n")
    result = cli("watch", "job", "j_1", "--config", str(config))
    assert result.returncode == 2
    assert f"{config}: brightdata.api_tokn: unknown key" in result.stderr.splitlines()


def test_describe_line() -> None:
    row = {
        "id": "j_1", "status": "running", "step": None, "items": 1234, "final": False,
        "progress": {"done": 12, "total": 48, "unit": "pages", "ratio": 0.25},
        "duration_seconds": 65.0, "eta_seconds": 195.0, "stalled": True, "last_error": None,
    }  # fmt: skip
    assert describe(row, 65.0) == (
        "j_1  running  [######------------------]  12 / 48 pages (25%)  1,234 items"
        "  elapsed 1m05s  ETA 3m15s  STALLED"
    )


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_redraws_in_place_on_a_terminal() -> None:
    out = _Terminal()
    line = ProgressLine(out, started=0.0)
    target = Store().add("brightdata", "job", "j_1")
    line.update(target, 1.0)
    line.update(target, 2.0)
    assert line.finish(target, "interrupted", 1) == 1
    assert out.getvalue() == (
        "\r\x1b[2Kj_1  not polled  elapsed 1s\r\x1b[2Kj_1  not polled  elapsed 2s\n"
        "j_1: interrupted\n"
    )


def _elapsed(line: str) -> float:
    match = re.search(r"  elapsed (?:(\d+)h)?(?:(\d+)m)?(\d+)s", line)
    assert match, line
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _unix(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("kind", ["job", "aitronos-job"])
async def test_elapsed_is_the_jobs_own_time_on_every_line(
    sim: SimulatorServer, tmp_path: Path, kind: str
) -> None:
    """On the provider's clock (here the simulator's), every line's elapsed is the time since
    the job started, from the first line (a job well under way) to the last (its duration)."""
    world = state(sim)
    if kind == "job":
        job = running_job(sim)
        target_id, start = job["id"], _unix(job["started"])
    else:
        job = next(j for j in world["aitronos"]["jobs"] if j["status"] == "processing")
        target_id, start = job["job_id"], _unix(job["created_at"])
    now = [float(world["now"])]
    assert now[0] - start > 30, "the job must be well under way when watch starts"
    config = load_config(write_config(sim, tmp_path / "c.yml"))
    out = io.StringIO()
    providers = build_providers(config, Telemetry())
    stop = asyncio.Event()
    options = WatchOptions(kind, target_id, interval=0.05)
    task = asyncio.create_task(watch(providers, config, options, out, stop, lambda: now[0]))
    polls: list[tuple[float, str]] = []  # (clock at the line, line)
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            for _ in range(300):
                await asyncio.sleep(0.1)
                lines = out.getvalue().splitlines()
                polls.extend((now[0], line) for line in lines[len(polls) :])
                if task.done():
                    break
                advanced = await client.post(f"{sim.url}/_sim/advance", json={"seconds": 30})
                now[0] = float(advanced.json()["now"])
        code = await asyncio.wait_for(task, 10)
    finally:
        stop.set()
        await providers.aclose()
    lines = out.getvalue().splitlines()
    final = next(j for j in (state(sim)["brightdata"]["jobs"] if kind == "job" else
                             state(sim)["aitronos"]["jobs"])
                 if j.get("id", j.get("job_id")) == target_id)  # fmt: skip
    assert code in (0, 1) and len(lines) >= 3, lines
    progress = [line for line in lines if "  elapsed " in line]
    values = [_elapsed(line) for line in progress]
    # The first line already shows the job's age (not 0 s for a job under way) ...
    assert abs(values[0] - (polls[0][0] - start)) <= 31, (values[0], polls[0][0] - start)
    assert values[0] >= 30
    # ... and it only grows, up to the job's own duration on the last progress line.
    assert values == sorted(values)
    if kind == "job":
        expected_end = final["job_time"] / 1000
    else:
        expected_end = _unix(final["completed_at"]) - start
    assert abs(values[-1] - expected_end) <= 1, (values[-1], expected_end)
