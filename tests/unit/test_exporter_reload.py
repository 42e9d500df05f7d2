"""Live reload (Exporter.reload, the Reloader, POST /-/reload, SIGHUP) and SIGTERM shutdown."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scrapejobs_exporter.config import Config, load_config
from scrapejobs_exporter.exporter import Exporter
from scrapejobs_exporter.providers.http import ApiError
from scrapejobs_exporter.server import ListenAddress, Reloader, Server
from scrapejobs_exporter.simulator import (
    DEFAULT_AITRONOS_KEY,
    DEFAULT_BRIGHTDATA_TOKEN,
    SimulatorConfig,
    SimulatorServer,
    run_simulator_in_thread,
)
from tests.helpers import value

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    # Mostly running jobs: finished ones are not polled again.
    with run_simulator_in_thread(SimulatorConfig(scale=20, seed=3, running_fraction=0.8)) as server:
        yield server


@pytest.fixture(scope="module")
def ids(sim: SimulatorServer) -> dict[str, list[str]]:
    truth = httpx.get(f"{sim.url}/_sim/state", timeout=5).json()
    return {
        "jobs": [j["id"] for j in truth["brightdata"]["jobs"] if j["status"] == "running"][:3],
        "aitronos": [j["job_id"] for j in truth["aitronos"]["jobs"][:1]],
    }


def config_text(url: str, jobs: list[str], token: str = DEFAULT_BRIGHTDATA_TOKEN) -> str:
    return f"""
poll_interval: 30s
request_timeout: 2s
brightdata:
  api_token: {token}
  base_url: {url}
  jobs: [{", ".join(jobs)}]
aitronos:
  api_key: {DEFAULT_AITRONOS_KEY}
  base_url: {url}
"""


def keys(exporter: Exporter) -> set[str]:
    return {t.target_id for t in exporter.store}


async def test_reload_keeps_the_store_and_swaps_only_what_changed(
    sim: SimulatorServer, ids: dict[str, list[str]], tmp_path: Path
) -> None:
    j1, j2, j3 = ids["jobs"]
    path = tmp_path / "config.yml"
    path.write_text(config_text(sim.url, [j1, j2]))
    exporter = Exporter(load_config(path))
    try:
        await exporter.poller.run_cycle()
        kept = exporter.store.get(("brightdata", "job", j1))
        assert kept is not None and kept.up
        bd, ait = exporter.providers.brightdata, exporter.providers.aitronos
        assert bd is not None
        gate = bd.http.gate

        await exporter.reload(load_config_text(tmp_path, config_text(sim.url, [j1, j3])))
        assert keys(exporter) == {j1, j3}
        assert exporter.store.get(("brightdata", "job", j1)) is kept  # same series, same state
        assert exporter.providers.brightdata is bd and exporter.providers.aitronos is ait

        await exporter.reload(load_config_text(tmp_path, config_text(sim.url, [j1], "rotated")))
        new_bd = exporter.providers.brightdata
        assert new_bd is not None and new_bd is not bd
        assert new_bd.http.gate is gate  # same URL and budget: the pause/budget state carries over
        assert exporter.providers.aitronos is ait
        with pytest.raises(ApiError) as info:  # the simulator rejects the new token
            await new_bd.job_log(j1)
        assert info.value.status == 401
    finally:
        await exporter.stop()


def load_config_text(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "next.yml"
    path.write_text(text)
    return load_config(path)


def _served(exporter: Exporter, name: str) -> float:
    body = exporter.exposition.pick(None).body.decode()
    values = [float(line.split()[-1]) for line in body.splitlines() if line.startswith(name + " ")]
    assert len(values) == 1, name
    return values[0]


async def test_bad_reload_is_rejected_and_logged_one_line_per_problem(
    sim: SimulatorServer,
    ids: dict[str, list[str]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "config.yml"
    path.write_text(config_text(sim.url, ids["jobs"][:1]))
    exporter = Exporter(load_config(path))
    reloader = Reloader(exporter, path)
    first = value(exporter.telemetry.config_reload_timestamp)
    try:
        path.write_text("poll_interval: soon\nconcurrency: many\nbogus: 1\n")
        with caplog.at_level(logging.ERROR):
            problems = await reloader()
        assert len(problems) == 3
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 3 and all(r.exc_info is None for r in errors)
        assert value(exporter.telemetry.config_reload_successful) == 0.0
        assert value(exporter.telemetry.config_reload_timestamp) == first
        # What a scrape gets changes with the reload itself, not at the next poll cycle.
        assert _served(exporter, "scrapejobs_exporter_config_last_reload_successful") == 0.0
        assert keys(exporter) == set(ids["jobs"][:1])
        assert exporter.config.poll_interval == 30.0

        path.write_text(config_text(sim.url, ids["jobs"][:2]))
        assert await reloader() == []
        assert value(exporter.telemetry.config_reload_successful) == 1.0
        assert _served(exporter, "scrapejobs_exporter_config_last_reload_successful") == 1.0
        assert _served(
            exporter, "scrapejobs_exporter_config_last_reload_success_timestamp_seconds"
        ) == value(exporter.telemetry.config_reload_timestamp)
        assert len(keys(exporter)) == 2
    finally:
        await exporter.stop()


async def test_reload_endpoint_only_with_lifecycle(
    sim: SimulatorServer, ids: dict[str, list[str]], tmp_path: Path
) -> None:
    path = tmp_path / "config.yml"
    path.write_text(config_text(sim.url, ids["jobs"][:1]))
    exporter = Exporter(load_config(path))
    listen = ListenAddress("127.0.0.1", 0)
    with_lifecycle = Server(exporter, listen, "/metrics", reloader=Reloader(exporter, path))
    without = Server(exporter, listen, "/metrics")
    await with_lifecycle.start()
    await without.start()
    try:
        async with httpx.AsyncClient(timeout=5) as c:
            url = f"http://127.0.0.1:{with_lifecycle.port}/-/reload"
            path.write_text(config_text(sim.url, ids["jobs"][:2]))
            assert (await c.post(url)).status_code == 200
            assert len(keys(exporter)) == 2
            path.write_text("brightdata: [")
            bad = await c.post(url)
            assert bad.status_code == 500 and "YAML syntax error" in bad.text
            assert len(keys(exporter)) == 2
            other = f"http://127.0.0.1:{without.port}/-/reload"
            assert (await c.post(other)).status_code in (404, 405)
    finally:
        await with_lifecycle.stop()
        await without.stop()
        await exporter.stop()


# --- the real process: SIGHUP and SIGTERM ----------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(predicate: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return False


def metric(port: int, name: str) -> float | None:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def test_sighup_reloads_and_sigterm_exits_promptly_with_requests_in_flight(
    sim: SimulatorServer, ids: dict[str, list[str]], tmp_path: Path
) -> None:
    path = tmp_path / "config.yml"
    path.write_text(config_text(sim.url, ids["jobs"][:1]).replace("30s", "1s").replace("2s", "20s"))
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "scrapejobs_exporter", "run", "--config", str(path),
         "--web.listen-address", f"127.0.0.1:{port}", "--log.level", "debug"],
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        name = "scrapejobs_exporter_config_last_reload_success_timestamp_seconds"
        assert wait_for(lambda: metric(port, name) is not None)
        before = metric(port, name)
        path.write_text(
            config_text(sim.url, ids["jobs"][:2]).replace("30s", "1s").replace("2s", "20s")
        )
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: (metric(port, name) or 0) > (before or 0))

        # Hold every request for 3 s, wait until some are in flight, then ask to stop.
        httpx.post(f"{sim.url}/_sim/faults", json={"fault": "slow", "delay": 3.0}, timeout=5)
        since = time.time()
        assert wait_for(
            lambda: httpx.get(f"{sim.url}/_sim/requests?since={since}", timeout=2).json()
        )
        stop_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        assert time.monotonic() - stop_at < 5.0
        assert code == 0
        stderr = proc.stderr.read() if proc.stderr else ""
        assert "Traceback" not in stderr
        assert "configuration reloaded" in stderr
    finally:
        httpx.delete(f"{sim.url}/_sim/faults", timeout=5)
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
