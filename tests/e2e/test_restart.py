"""Restarts with a state file: real exporter processes against a simulator process.

The exporter is stopped (SIGTERM, and separately SIGKILL), 30+ jobs finish while it is down, and
it is started again with the same state file: once its list sweeps have caught up, its finished
counters equal the simulator's ground truth (`/_sim/state` `finished`, counted since the first
start) exactly, for every provider and kind. The simulator runs on its manual clock, moved by
the test in big steps (its speed, but with exact start and stop points: the world does not move
while an exporter starts, so "since the first start" is exact), without account limits (a
real-time exporter on a manual clock would see a whole cycle's requests in one simulated
instant; the budgets are another issue's tests). A damaged or read-only state
file: the exporter starts, logs one line, serves metrics.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from scrapejobs_exporter.statefile import TargetState, open_state_file
from tests.e2e import LOOPBACK, ROOT, free_port, wait_for

STEP = 30.0  # simulated seconds per advance
FAMILIES = {
    "brightdata_collector_jobs_finished": "studio_jobs",
    "brightdata_dataset_snapshots_finished": "snapshots",
    "aitronos_jobs_finished": "aitronos_jobs",
    "brightdata_ai_flows_finished": "ai_flows",
}


class Simulator:
    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        args = [sys.executable, "-m", "scrapejobs_exporter", "simulate", "--clock", "manual",
                "--listen", f"{LOOPBACK}:{self.port}", "--seed", "5", "--scale", "150",
                "--running-fraction", "0.15", "--rate-limits", "off"]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        wait_for(f"{self.url}/_sim/state", timeout=30)

    def state(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/_sim/state", timeout=10)
        state: dict[str, Any] = response.json()
        return state

    def advance(self, seconds: float) -> None:
        httpx.post(f"{self.url}/_sim/advance", json={"seconds": seconds}, timeout=10)

    def truth(self) -> dict[str, dict[tuple[str, ...], int]]:
        f = self.state()["finished"]
        out: dict[str, dict[tuple[str, ...], int]] = {k: {} for k in FAMILIES.values()}
        for section in ("studio_jobs", "snapshots"):
            for group, counts in f[section].items():
                out[section].update({(group, s): n for s, n in counts.items() if n})
        out["aitronos_jobs"] = {(s,): n for s, n in f["aitronos_jobs"].items() if n}
        out["ai_flows"] = {(s,): n for s, n in f["ai_flows"].items() if n}
        return out

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def total(counts: dict[str, dict[tuple[str, ...], int]]) -> int:
    return sum(sum(c.values()) for c in counts.values())


class Exporter:
    def __init__(self, config: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.log = log
        args = [sys.executable, "-m", "scrapejobs_exporter", "run", "--config", str(config),
                "--web.listen-address", f"{LOOPBACK}:{self.port}"]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            args, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=ROOT
        )
        try:
            wait_for(f"{self.url}/readyz", timeout=30)
        except TimeoutError:
            self.kill()
            raise AssertionError(self.output()) from None

    def metrics(self) -> dict[str, dict[tuple[str, ...], float]]:
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        out: dict[str, dict[tuple[str, ...], float]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out.setdefault(sample.name, {})[tuple(sample.labels.values())] = sample.value
        return out

    def finished(self) -> dict[str, dict[tuple[str, ...], int]]:
        metrics = self.metrics()
        return {
            key: {labels: int(v) for labels, v in metrics.get(name + "_total", {}).items() if v}
            for name, key in FAMILIES.items()
        }

    def stop(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(10)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def caught_up(exporter: Exporter, sim: Simulator, timeout: float = 30.0) -> None:
    """Until the exporter's counters equal the truth (the world stands still meanwhile)."""
    expected = sim.truth()
    deadline = time.monotonic() + timeout
    while (got := exporter.finished()) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    assert got == expected, diff(got, expected)


def diff(got: dict[str, Any], expected: dict[str, Any]) -> str:
    lines = []
    for key in expected:
        for labels in sorted(set(got[key]) | set(expected[key])):
            g, e = got[key].get(labels, 0), expected[key].get(labels, 0)
            if g != e:
                lines.append(f"{key}{labels}: exporter {g}, simulator {e}")
    return "\n".join(lines)


def write_config(path: Path, sim: Simulator, state_file: Path) -> None:
    state = sim.state()
    datasets = sorted({s["dataset_id"] for s in state["brightdata"]["snapshots"]})
    # The AI flows of every collector that runs them (`all` watches only drafts').
    flows = sorted({f["collector"] for f in state["brightdata"]["ai_flows"]})
    path.write_text(f"""
poll_interval: 1s
request_timeout: 5s
brightdata:
  api_token: sim-brightdata-token
  base_url: {sim.url}
  collectors: all
  datasets: {datasets}
  ai_flows: {flows}
  max_requests_per_minute: 100000
aitronos:
  api_key: ak_simulator000000000000000000000000000000
  base_url: {sim.url}
  discover: true
  max_requests_per_minute: 100000
  max_requests_per_day: null
discovery:
  full_scan_every: 1
state_file: {state_file}
""")


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    simulator = Simulator(tmp_path / "sim.log")
    yield simulator
    simulator.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_jobs_finished_while_stopped_are_counted_once(
    sim: Simulator, tmp_path: Path, sig: signal.Signals
) -> None:
    config = tmp_path / "config.yml"
    write_config(config, sim, tmp_path / "state" / "state.db")
    assert total(sim.truth()) == 0  # the world has not moved: "since the first start"

    first = Exporter(config, tmp_path / "first.log")
    try:
        for _ in range(4):
            sim.advance(STEP)
            caught_up(first, sim)
        sim.advance(STEP)  # stopped right after: these may not be in the file yet
        time.sleep(0.3)
        first.stop(sig)
    finally:
        first.kill()
    assert "Traceback" not in first.output()
    if sig == signal.SIGTERM:
        assert first.proc.returncode == 0

    before = total(sim.truth())
    while total(sim.truth()) < before + 30:
        sim.advance(STEP)

    second = Exporter(config, tmp_path / "second.log")
    try:
        caught_up(second, sim)
        for _ in range(2):  # and counting goes on
            sim.advance(STEP)
            caught_up(second, sim)
        metrics = second.metrics()
        status = metrics["scrapejobs_exporter_state_file_status"]
        assert status[("restored",)] == 1 and status[("corrupt",)] == 0
        assert metrics["scrapejobs_exporter_state_file_writes_total"][()] >= 1
        assert metrics["scrapejobs_exporter_state_file_write_errors_total"][()] == 0
    finally:
        second.kill()
    assert "Traceback" not in second.output()


def written_file(path: Path) -> None:
    """A good state file with some thousand targets, as an exporter leaves it."""
    state, _ = open_state_file(path)
    rows = {
        ("brightdata", "job", f"j_{n}"): TargetState(
            "brightdata", "job", f"j_{n}", "c_1", False, "done", "", False, True, time.time()
        )
        for n in range(3000)
    }
    for key in rows:
        state.changed(key)
    assert state.flush(rows.get, (), {}, time.time())
    state.close()


def state_file_lines(output: str, path: Path) -> list[str]:
    return [line for line in output.splitlines() if str(path) in line]


@pytest.mark.parametrize("damage", ["random", "truncated"])
def test_a_damaged_state_file_is_one_line_and_an_empty_start(
    sim: Simulator, tmp_path: Path, damage: str
) -> None:
    config, path = tmp_path / "config.yml", tmp_path / "state.db"
    write_config(config, sim, path)
    if damage == "random":
        path.write_bytes(os.urandom(64 * 1024))
    else:
        written_file(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    exporter = Exporter(config, tmp_path / "exporter.log")
    try:
        metrics = exporter.metrics()
        assert metrics["scrapejobs_exporter_state_file_status"][("corrupt",)] == 1
        assert "scrapejobs_exporter_tracked_targets" in metrics
    finally:
        exporter.stop(signal.SIGTERM)
    lines = state_file_lines(exporter.output(), path)
    assert len(lines) == 1 and "moved to" in lines[0], exporter.output()
    assert "Traceback" not in exporter.output()


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make a file unwritable for this user: permission bits, or for root (whom they do not
    bind) the immutable attribute."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o644)
        return
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot make a file read-only for root here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_read_only_state_file_is_one_line_and_an_empty_start(
    sim: Simulator, tmp_path: Path
) -> None:
    config, path = tmp_path / "config.yml", tmp_path / "state.db"
    write_config(config, sim, path)
    written_file(path)
    with read_only(path):
        exporter = Exporter(config, tmp_path / "exporter.log")
        try:
            metrics = exporter.metrics()
            assert metrics["scrapejobs_exporter_state_file_status"][("unwritable",)] == 1
            assert "scrapejobs_exporter_tracked_targets" in metrics
        finally:
            exporter.stop(signal.SIGTERM)
    lines = state_file_lines(exporter.output(), path)
    assert len(lines) == 1 and "empty store" in lines[0], exporter.output()
    assert "Traceback" not in exporter.output()
