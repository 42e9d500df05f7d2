"""The quiet-failure alert end to end: the simulator's yield-drop scenario travels through the
exporter, real Prometheus (the project's rules, time-compressed) and real Alertmanager to a
webhook, and the collectors whose yield holds fire nothing.

The rules compare 6 hours with 7 days and wait 30 minutes; the test runs them with every window
scaled down (6 h -> 20 s, 7 d -> 15 min: all the test's history, 30 min -> 5 s) and the simulator
at 120x, so that the same expressions decide within a minute or so.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from scrapejobs_exporter.simulator import SimulatorConfig, run_simulator_in_thread
from tests.e2e import RULES, query, start_alerting
from tests.e2e.test_alerting import Webhook

pytestmark = pytest.mark.e2e

ALERT = "BrightDataCollectorOutputDropped"
QUALITY = (ALERT, "BrightDataCollectorFailureRatioHigh", "BrightDataCollectorDurationDoubled")
SPEED = 120.0
NORMAL_SECONDS = 25.0  # real seconds of normal yield before the drop begins
SCALE = {"[6h]": "[20s]", "[7d]": "[15m]", "for: 30m": "for: 5s"}


def compressed_rules(directory: Path) -> list[Path]:
    """The project's rule files with the quiet-failure windows scaled down."""
    texts = {path.name: path.read_text() for path in RULES}
    assert all(old in "".join(texts.values()) for old in SCALE)
    out = []
    for name, text in texts.items():
        for old, new in SCALE.items():
            text = text.replace(old, new)
        (directory / name).write_text(text)
        out.append(directory / name)
    return out


@pytest.fixture
def drop_stack(tmp_path: Path) -> Iterator[tuple[str, str, Webhook, dict[str, Any]]]:
    sim_config = SimulatorConfig(
        seed=5, scale=600, speed=SPEED, running_fraction=0.1, stuck_fraction=0.0,
        yield_drop="busiest", yield_drop_after=NORMAL_SECONDS * SPEED,
        rate_limits=False,  # budgets are not under test here; the alert is
    )  # fmt: skip
    with ExitStack() as stack, run_simulator_in_thread(sim_config) as sim, Webhook() as webhook:
        state = httpx.get(f"{sim.url}/_sim/state").json()
        drop = state["brightdata"]["yield_drop"]
        config = (
            f"poll_interval: 1s\nbrightdata:\n  api_token: {sim_config.brightdata_token}\n"
            f"  base_url: {sim.url}\n  collectors: all\n  max_requests_per_minute: 100000\n"
        )
        prom = start_alerting(stack, tmp_path, config, webhook.port, compressed_rules(tmp_path))
        # When the drop begins, in this process's clock.
        drop["starts"] = time.monotonic() + (drop["from"] - state["now"]) / SPEED
        yield sim.url, prom, webhook, drop


def test_yield_drop_fires_output_dropped_and_the_rest_stays_quiet(
    drop_stack: tuple[str, str, Webhook, dict[str, Any]],
) -> None:
    sim, prom, webhook, drop = drop_stack
    collector = drop["collector"]
    # Normal yield: the 20-second level stays near the whole history's for every collector.
    while time.monotonic() < drop["starts"] - 2:
        for name in QUALITY:  # the normal world fires no quiet-failure alert
            assert not webhook.firing(name), webhook.firing(name)
        time.sleep(1)
    finished = query(prom, "sum by (collector) (brightdata_collector_jobs_finished_total)")
    assert len(finished) >= 3 and all(float(r["value"][1]) >= 10 for r in finished), finished
    deadline = drop["starts"] + 75
    while time.monotonic() < deadline and not webhook.firing(ALERT):
        time.sleep(0.5)
    fired = webhook.firing(ALERT)
    assert fired, f"no {ALERT} within 75 s of the drop; received: {webhook.alerts[:3]}"
    print(f"{ALERT} reached the webhook {time.monotonic() - drop['starts']:.1f} s after the drop")
    assert {a["labels"]["collector"] for a in fired} == {collector}
    alert = fired[0]
    assert alert["labels"]["severity"] == "warning"
    assert re.search(r"yields [\d.]+ records per job, under half", alert["annotations"]["summary"])
    assert alert["annotations"]["runbook_url"].endswith("#brightdatacollectoroutputdropped")
    # The same expressions on the ground truth: the collector's records per job fell.
    truth = httpx.get(f"{sim}/_sim/state").json()["finished_details"]["studio_job_volume"]
    others = [c for c in truth if c != collector]
    assert others
    for other in others:
        assert not webhook.firing(ALERT, collector=other)
