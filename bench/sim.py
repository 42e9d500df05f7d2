"""The simulator as a separate process, and the control calls the benchmark makes to it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from types import TracebackType
from typing import Any

from bench.common import child_env

__all__ = ["Simulator", "running_counts", "sim_get", "sim_post"]

START_TIMEOUT = 60.0


class Simulator:
    """`python -m scrapejobs_exporter simulate` on 127.0.0.1, a free port, the manual clock.

    The account rate limits are off unless asked for: the measurements of our own cost (render,
    scrape, RSS, calls per cycle) must not wait for a budget.
    """

    def __init__(
        self,
        scale: int,
        *,
        latency: float = 0.0,
        running_fraction: float = 0.02,
        seed: int = 1,
        clock: str = "manual",
        speed: float = 1.0,
        rate_limits: bool = False,
    ) -> None:
        self.args = [
            sys.executable,
            "-m",
            "scrapejobs_exporter",
            "simulate",
            "--listen",
            "127.0.0.1:0",
            "--scale",
            str(scale),
            "--running-fraction",
            str(running_fraction),
            "--latency",
            str(latency),
            "--seed",
            str(seed),
            "--clock",
            clock,
            "--speed",
            str(speed),
            "--rate-limits",
            "on" if rate_limits else "off",
        ]
        self.url = ""
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> Simulator:
        process = subprocess.Popen(
            self.args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        self._process = process
        assert process.stdout is not None
        line = _readline_within(process, START_TIMEOUT)
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if match is None:
            self.stop()
            raise RuntimeError(f"simulator did not start: {line!r}")
        self.url = match.group(1)
        # Drain its output from now on so a chatty simulator never blocks on a full pipe.
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                threading.Thread(target=stream.read, daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                sim_get(self.url, "/_sim/faults", timeout=30)
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.1)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the simulator process has used so far."""
        if self._process is None:
            return 0.0
        with open(f"/proc/{self._process.pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _readline_within(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    if not lines:
        raise RuntimeError(f"simulator printed nothing within {timeout:.0f}s")
    return lines[0]


def _check_loopback(url: str) -> None:
    if not url.startswith(("http://127.0.0.1:", "http://localhost:")):
        raise ValueError(f"refusing to talk to a non-loopback simulator: {url}")


def sim_get(url: str, path: str, timeout: float = 120.0) -> Any:
    _check_loopback(url)
    with urllib.request.urlopen(url + path, timeout=timeout) as response:
        return json.loads(response.read())


def sim_post(url: str, path: str, body: dict[str, Any], timeout: float = 120.0) -> Any:
    _check_loopback(url)
    request = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


ACTIVE = {
    "jobs": ("building", "running", "paused"),
    "snapshots": ("starting", "running"),
    "aitronos": ("pending", "processing"),
}


def running_counts(state: dict[str, Any]) -> dict[str, int]:
    """Objects not yet finished in a `/_sim/state` answer, by kind, and in all."""
    jobs = Counter(j.get("status") for j in state["brightdata"]["jobs"])
    snaps = Counter(s.get("status") for s in state["brightdata"]["snapshots"])
    ait = Counter(j.get("status") for j in state["aitronos"]["jobs"])
    counts = {
        "jobs": sum(jobs[s] for s in ACTIVE["jobs"]),
        "snapshots": sum(snaps[s] for s in ACTIVE["snapshots"]),
        "aitronos": sum(ait[s] for s in ACTIVE["aitronos"]),
    }
    counts["total"] = sum(counts.values())
    return counts
