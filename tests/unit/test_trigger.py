"""`scrapejobs-exporter ai-flow trigger` against the simulator: validation, start, 429, --watch."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from scrapejobs_exporter.providers.brightdata import AiFlowTrigger, parse_trigger
from scrapejobs_exporter.providers.fields import ParseError
from scrapejobs_exporter.simulator import DEFAULT_BRIGHTDATA_TOKEN, SimulatorServer
from scrapejobs_exporter.trigger import TriggerRequest, validate
from tests.unit.test_watch import cli, drive, sim, start, state, wait_for_line, write_config

__all__ = ["sim"]  # the fixture, shared with test_watch

POST = "POST /dca/collectors/{collector_id}/automate_template"
DESCRIPTION = "Collect product names and prices"


def _posts(sim: SimulatorServer) -> int:
    return int(state(sim)["requests"].get(POST, 0))


def _idle_collectors(sim: SimulatorServer) -> list[str]:
    """Active collectors, the busy ones (with a queued or running flow) left out."""
    bd = state(sim)["brightdata"]
    busy = {f["collector"] for f in bd["ai_flows"] if f["status"] in ("queued", "running")}
    return [c["id"] for c in bd["collectors"] if c["active"] and c["id"] not in busy]


def _trigger(config: Path, collector: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli(
        "ai-flow", "trigger", "--config", str(config), "--collector", collector,
        "--url", "https://example.com/products", "--description", DESCRIPTION, *extra,
    )  # fmt: skip


def _active_flows(sim: SimulatorServer) -> list[dict[str, Any]]:
    flows = state(sim)["brightdata"]["ai_flows"]
    return [f for f in flows if f["status"] in ("queued", "running")]


def test_trigger_starts_a_flow(sim: SimulatorServer, tmp_path: Path) -> None:
    config = write_config(sim, tmp_path / "c.yml")
    collector = _idle_collectors(sim)[0]
    result = _trigger(config, collector)
    assert result.returncode == 0, result.stderr
    flow = next(f for f in _active_flows(sim) if f["collector"] == collector)
    state_word = "queued (waiting for a free AI slot)" if flow["status"] == "queued" else "running"
    assert result.stdout == f"{flow['id']}: AI flow started for {collector}, {state_word}\n"
    assert DEFAULT_BRIGHTDATA_TOKEN not in result.stdout + result.stderr


def test_fourth_parallel_flow_is_a_plain_429_sent_once(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    config = write_config(sim, tmp_path / "c.yml")
    collector = _idle_collectors(sim)[0]
    results = []
    for _ in range(4):  # the cap is account-wide: the 4th call at the latest is refused
        results.append(_trigger(config, collector, "--json"))
        if results[-1].returncode != 0:
            break
    assert len(_active_flows(sim)) == 3
    refused = results[-1]
    assert [r.returncode for r in results[:-1]] == [0] * (len(results) - 1)
    started = [json.loads(r.stdout) for r in results[:-1]]
    assert all(s["id"].startswith("ia_") and isinstance(s["queued"], bool) for s in started)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        "error: HTTP 429: Cannot run more than 3 jobs in parallel - Bright Data runs at most "
        "3 AI flows at once per account; try again when one has finished"
    )
    assert _posts(sim) == len(results), "the 429 must not be retried"


def test_rate_limit_fault_is_reported_not_retried(sim: SimulatorServer, tmp_path: Path) -> None:
    config = write_config(sim, tmp_path / "c.yml")
    rule = {"fault": "http_429", "path": "/automate_template$", "retry_after": 1}
    assert httpx.post(f"{sim.url}/_sim/faults", json=rule, timeout=10).status_code == 200
    result = _trigger(config, _idle_collectors(sim)[0])
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: HTTP 429: ")
    assert _posts(sim) == 1


def test_server_error_on_trigger_is_not_retried(sim: SimulatorServer, tmp_path: Path) -> None:
    """A POST that failed may still have started a flow: sending it again could start two."""
    config = write_config(sim, tmp_path / "c.yml")
    rule = {"fault": "http_503", "path": "/automate_template$"}
    assert httpx.post(f"{sim.url}/_sim/faults", json=rule, timeout=10).status_code == 200
    result = _trigger(config, _idle_collectors(sim)[0])
    assert result.returncode == 1
    assert _posts(sim) == 1


def test_trigger_watch_follows_the_new_flow(sim: SimulatorServer, tmp_path: Path) -> None:
    config = write_config(sim, tmp_path / "c.yml")
    collector = _idle_collectors(sim)[0]
    proc = start(
        "ai-flow", "trigger", "--config", str(config), "--collector", collector,
        "--url", "https://example.com/", "--description", DESCRIPTION, "--watch",
        "--interval", "0.1",
    )  # fmt: skip
    first = wait_for_line(proc)
    assert first.startswith("ia_")
    ai_job_id = first.split(":")[0]
    code, out, err = drive(sim, proc)
    flow = next(f for f in state(sim)["brightdata"]["ai_flows"] if f["id"] == ai_job_id)
    assert flow["status"] in ("done", "failed", "pending_answer")
    assert code == (0 if flow["status"] == "done" else 1), err
    lines = out.strip().splitlines()
    assert any(" step " in line and "steps done" in line for line in lines)
    assert lines[-1].startswith(f"{collector}: {flow['status']}")


@pytest.mark.parametrize(
    ("description", "urls", "problem"),
    [
        ("", ["https://a.test/"], "--description must be 1-500 characters (got 0)"),
        ("x" * 501, ["https://a.test/"], "--description must be 1-500 characters (got 501)"),
        ("ok", ["https://a.test/", "https://b.test/"], "exactly one --url is required (got 2)"),
        ("ok", ["ftp://a.test/"], "--url must be an http(s) URL"),
        ("ok", ["https://"], "--url must be an http(s) URL"),
    ],
)
def test_validation_errors_exit_2_without_a_request(
    sim: SimulatorServer, tmp_path: Path, description: str, urls: list[str], problem: str
) -> None:
    assert validate(TriggerRequest("c_1", description, tuple(urls))) is not None
    config = write_config(sim, tmp_path / "c.yml")
    url_flags = [arg for url in urls for arg in ("--url", url)]
    result = cli(
        "ai-flow", "trigger", "--config", str(config), "--collector", _idle_collectors(sim)[0],
        "--description", description, *url_flags,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {problem}")
    assert _posts(sim) == 0


def test_validate_accepts_the_limits() -> None:
    assert validate(TriggerRequest("c_1", "x" * 500, ("http://example.com/a?b=c",))) is None
    assert validate(TriggerRequest("c/1", "x", ("https://a.test",))) is not None


def test_parse_trigger() -> None:
    assert parse_trigger({"id": "ia_1", "queued": False}) == AiFlowTrigger("ia_1", False)
    assert parse_trigger({"id": "ia_2", "queued": True}).queued is True
    with pytest.raises(ParseError):
        parse_trigger({"queued": True})
