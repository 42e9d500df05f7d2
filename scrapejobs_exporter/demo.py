"""`scrapejobs-exporter demo`: the simulator and the exporter together, nothing to configure."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from scrapejobs_exporter.config import Config, parse_config
from scrapejobs_exporter.exporter import Exporter
from scrapejobs_exporter.lifecycle import EXIT_FAILED, serve_until_signal
from scrapejobs_exporter.server import ListenAddress, Server
from scrapejobs_exporter.simulator import SimulatorConfig, SimulatorServer

__all__ = ["demo_config", "run_demo"]

log = logging.getLogger(__name__)


def demo_config(
    base_url: str, state: dict[str, Any], config: SimulatorConfig, state_file: Path | None = None
) -> Config:
    """A config that discovers everything the simulator has, as on a real account."""
    bd = state["brightdata"]
    datasets = sorted({str(s["dataset_id"]) for s in bd["snapshots"]})
    flows = sorted({str(f["collector"]) for f in bd["ai_flows"]})
    text = f"""
poll_interval: 5s
request_timeout: 5s
concurrency: 16
brightdata:
  api_token: {config.brightdata_token}
  base_url: {base_url}
  collectors: all
  datasets: {datasets}
  ai_flows: {flows}
  max_requests_per_minute: 6000
aitronos:
  api_key: {config.aitronos_key}
  base_url: {base_url}
  path_prefix: /v1
  auth_header: X-API-Key
  discover: true
  max_requests_per_minute: 6000
  max_requests_per_day: null
stall:
  no_worker_after: 1m
  no_progress_after: 2m
"""
    if state_file is not None:
        text += f"state_file: {json.dumps(str(state_file))}\n"
    return parse_config(text, source="<demo>", env={})


async def run_demo(listen: ListenAddress, *, speed: float, scale: int, seed: int) -> int:
    # A state file for the demo's lifetime: the simulated world is new at every start, so
    # there is nothing to carry over, but its writes and metrics are there to see.
    with tempfile.TemporaryDirectory(prefix="scrapejobs-exporter-demo-") as directory:
        return await _run_demo(listen, speed, scale, seed, Path(directory) / "state.db")


async def _run_demo(
    listen: ListenAddress, speed: float, scale: int, seed: int, state_file: Path
) -> int:
    # The demo's budgets (6000/min) are far above the accounts' limits: the simulator's
    # per-account limits stay off here until the exporter keeps to 100/min on its own.
    sim_config = SimulatorConfig(seed=seed, speed=speed, scale=scale, rate_limits=False)
    simulator = SimulatorServer(sim_config)
    await simulator.start()
    try:
        config = demo_config(simulator.url, simulator.state(), sim_config, state_file)
        exporter = Exporter(config)
        server = Server(exporter, listen, "/metrics")

        def ready() -> None:
            url = f"http://127.0.0.1:{server.port}"
            print(
                f"scrapejobs-exporter demo is running (simulated APIs at {simulator.url}, "
                f"{speed:g}x speed)\n"
                f"  landing page:  {url}/\n"
                f"  metrics:       {url}/metrics\n"
                f"  ground truth:  {simulator.url}/_sim/state\n"
                f"  state file:    {state_file}\n"
                "Press Ctrl-C to stop.",
                flush=True,
            )

        code = await serve_until_signal([server, exporter], ready=ready)
    finally:
        await simulator.stop()
    if code == EXIT_FAILED:
        log.error("try another address, e.g. --web.listen-address 127.0.0.1:0")
    return code
