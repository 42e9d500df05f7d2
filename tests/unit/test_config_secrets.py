"""Tokens and the `trigger` e-mail never leave the process: logs, errors, /metrics, pages, CLI."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scrapejobs_exporter.cli import main
from scrapejobs_exporter.config import load_config
from scrapejobs_exporter.exporter import Exporter
from scrapejobs_exporter.server import ListenAddress, Reloader, Server
from scrapejobs_exporter.simulator import (
    DEFAULT_AITRONOS_KEY,
    DEFAULT_BRIGHTDATA_TOKEN,
    SimulatorConfig,
    SimulatorServer,
    run_simulator_in_thread,
)

FAULTS = ["http_500", "bad_json", "html", "brd_error_header", "wrong_types", "http_429"]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    config = SimulatorConfig(scale=20, seed=4, manual_clock=True, running_fraction=0.5)
    with run_simulator_in_thread(config) as server:
        yield server


def config_text(url: str, truth: dict[str, dict[str, list[dict[str, object]]]]) -> str:
    jobs = [str(j["id"]) for j in truth["brightdata"]["jobs"]][:6]
    ait = [str(j["job_id"]) for j in truth["aitronos"]["jobs"]][:2]
    return f"""
poll_interval: 1s
request_timeout: 0.5s
brightdata:
  api_token: {DEFAULT_BRIGHTDATA_TOKEN}
  base_url: {url}
  jobs: [{", ".join(jobs)}]
aitronos:
  api_key: {DEFAULT_AITRONOS_KEY}
  base_url: {url}
  auth_header: Authorization
  jobs: [{", ".join(ait)}]
"""


def secrets(truth: dict[str, dict[str, list[dict[str, object]]]]) -> list[str]:
    emails = {
        str(j["trigger"])
        for j in truth["brightdata"]["jobs"]
        if isinstance(j.get("trigger"), str) and "@" in str(j["trigger"])
    }
    assert emails, "the simulator should hand out trigger e-mails"
    return [DEFAULT_BRIGHTDATA_TOKEN, DEFAULT_AITRONOS_KEY, *sorted(emails)]


@pytest.fixture
def everything_at_debug() -> Iterator[None]:
    # httpx and httpcore are quiet by default; open them up, they see the headers first.
    loggers = [
        logging.getLogger(n) for n in ("", "httpx", "httpcore", "aiohttp", "scrapejobs_exporter")
    ]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    yield
    for lg, level in zip(loggers, levels, strict=True):
        lg.setLevel(level)


async def test_no_secret_anywhere(
    sim: SimulatorServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    everything_at_debug: None,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with httpx.AsyncClient(timeout=10) as client:
        truth = (await client.get(f"{sim.url}/_sim/state")).json()
        hidden = secrets(truth)
        path = tmp_path / "config.yml"
        path.write_text(config_text(sim.url, truth))
        exporter = Exporter(load_config(path))
        server = Server(
            exporter,
            ListenAddress("127.0.0.1", 0),
            "/metrics",
            reloader=Reloader(exporter, path),
        )
        await server.start()
        seen: list[str] = []
        try:
            await exporter.poller.run_cycle()
            for fault in FAULTS:
                await client.post(f"{sim.url}/_sim/faults", json={"fault": fault, "rate": 0.5})
                await exporter.poller.run_cycle()
                await client.delete(f"{sim.url}/_sim/faults")
            base = f"http://127.0.0.1:{server.port}"
            for accept in ("text/plain", "application/openmetrics-text; version=1.0.0"):
                seen.append((await client.get(f"{base}/metrics", headers={"Accept": accept})).text)
            seen.append((await client.get(f"{base}/")).text)
            path.write_text(path.read_text() + "unknown_key: 1\n")
            seen.append((await client.post(f"{base}/-/reload")).text)
            seen += [str(t.last_error) for t in exporter.store]
            seen.append(repr(exporter.config))
        finally:
            await server.stop()
            await exporter.stop()

    path.write_text(config_text(sim.url, truth))
    assert main(["check-config", str(path)]) == 0
    bad = tmp_path / "bad.yml"
    bad.write_text(config_text(sim.url, truth).replace("poll_interval: 1s", "poll_interval: x"))
    assert main(["check-config", str(bad)]) == 2
    out = capsys.readouterr()
    seen += [out.out, out.err, caplog.text]
    assert any("HTTP" in line for line in caplog.text.splitlines())  # errors were logged
    assert "httpcore" in caplog.text  # and the HTTP stack really logged at DEBUG
    everything = "\n".join(seen)
    for secret in hidden:
        assert secret not in everything, secret
