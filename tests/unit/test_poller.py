"""The poll loop against respx-mocked APIs: values land, failures mark only their target down."""

from __future__ import annotations

import asyncio

import httpx
import respx

from scrapejobs_exporter.config import parse_config
from scrapejobs_exporter.exporter import Exporter
from tests.conftest import seed
from tests.helpers import samples, value, values

BD = "https://bd.test"
AIT = "https://ait.test"
CONFIG = f"""
poll_interval: 30s
brightdata:
  api_token: t
  base_url: {BD}
  jobs: [j_ma13y9ay1piehrso8r, j_broken]
  snapshots: [s_m4x7enmven8djfqak]
  ai_flows: [c_m9im5n7v82p2y35la]
aitronos:
  api_key: k
  base_url: {AIT}
  jobs: [job_abc123]
"""


def _mock_all(router: respx.MockRouter) -> respx.Route:
    router.get(f"{BD}/dca/log/j_ma13y9ay1piehrso8r").respond(json=seed("job_log_done"))
    broken = router.get(f"{BD}/dca/log/j_broken")
    broken.respond(500, text="oops")
    router.get(f"{BD}/datasets/v3/progress/s_m4x7enmven8djfqak").respond(
        json=seed("snapshot_progress_running")
    )
    router.get(f"{BD}/dca/collectors/c_m9im5n7v82p2y35la/automate_template/progress").respond(
        json=seed("ai_flow_progress_done")
    )
    router.get(f"{AIT}/v1/scrape/jobs/job_abc123/progress").respond(
        json=seed("aitronos_progress_timeout")
    )
    return broken


def _exposition(exporter: Exporter) -> dict:  # type: ignore[type-arg]
    return samples(exporter.render().text.body.decode())


def _up(parsed: dict, kind: str, target: str, provider: str = "brightdata") -> float:  # type: ignore[type-arg]
    key = (
        "scrapejobs_exporter_target_up",
        (("kind", kind), ("provider", provider), ("target", target)),
    )
    return parsed[key]


async def test_failing_target_is_down_while_others_stay_up() -> None:
    exporter = Exporter(parse_config(CONFIG, env={}), clock=lambda: 1234.0)
    with respx.mock(assert_all_called=False) as router:
        _mock_all(router)
        result = await exporter.poller.run_cycle()
    await exporter.stop()
    assert (result.polled, result.failed) == (5, 1)
    parsed = _exposition(exporter)
    assert _up(parsed, "job", "j_broken") == 0
    assert _up(parsed, "job", "j_ma13y9ay1piehrso8r") == 1
    assert _up(parsed, "snapshot", "s_m4x7enmven8djfqak") == 1
    assert _up(parsed, "job", "job_abc123", "aitronos") == 1
    # The last success is shown for what is still polled (the running snapshot), not for a
    # final target (the finished AI flow), whose value would only grow stale.
    name = "scrapejobs_exporter_target_last_success_timestamp_seconds"
    running = (("kind", "snapshot"), ("provider", "brightdata"), ("target", "s_m4x7enmven8djfqak"))
    final = (("kind", "ai_flow"), ("provider", "brightdata"), ("target", "c_m9im5n7v82p2y35la"))
    assert parsed[(name, running)] == 1234.0
    assert (name, final) not in parsed
    assert exporter.poller.ready
    target = exporter.store.get(("brightdata", "job", "j_broken"))
    assert target is not None and target.last_error == "HTTP 500: oops"


async def test_target_keeps_last_good_values_while_failing() -> None:
    exporter = Exporter(parse_config(CONFIG, env={}))
    with respx.mock(assert_all_called=False) as router:
        _mock_all(router)
        await exporter.poller.run_cycle()
    with respx.mock(assert_all_called=False) as router:
        router.route().mock(side_effect=httpx.ConnectError("down"))
        result = await exporter.poller.run_cycle()
    await exporter.stop()
    # Finished targets are final and no longer polled: only the running snapshot and the
    # never-successful job are asked again, and both fail.
    assert (result.polled, result.failed) == (2, 2)
    parsed = _exposition(exporter)
    snapshot = (("dataset_id", "ds_123456789"), ("snapshot_id", "s_m4x7enmven8djfqak"),
                ("status", "running"))  # fmt: skip
    assert parsed[("brightdata_snapshot_status", snapshot)] == 1
    assert _up(parsed, "snapshot", "s_m4x7enmven8djfqak") == 0
    job = (("collector", "c_m9im5n7v82p2y35la"), ("job_id", "j_ma13y9ay1piehrso8r"))
    assert parsed[("brightdata_job_duration_seconds", job)] == 71.459
    assert _up(parsed, "job", "j_ma13y9ay1piehrso8r") == 1
    errors = values(exporter.telemetry.api_errors)
    assert errors[("brightdata", "/datasets/v3/progress/{snapshot_id}", "connect")] >= 1


async def test_unknown_status_is_counted() -> None:
    exporter = Exporter(
        parse_config(f"brightdata:\n  api_token: t\n  base_url: {BD}\n  jobs: [j_1]\n", env={})
    )
    with respx.mock() as router:
        router.get(f"{BD}/dca/log/j_1").respond(json={"status": "mystery_state"})
        await exporter.poller.run_cycle()
        await exporter.poller.run_cycle()
    await exporter.stop()
    assert value(exporter.telemetry.unknown_status, "brightdata", "job") == 2
    parsed = _exposition(exporter)
    assert (
        parsed[
            ("brightdata_job_status", (("collector", ""), ("job_id", "j_1"), ("status", "unknown")))
        ]
        == 1
    )


async def test_start_polls_every_target_at_once_and_stop_is_prompt() -> None:
    exporter = Exporter(parse_config(CONFIG, env={}))
    with respx.mock(assert_all_called=False) as router:
        _mock_all(router)
        await exporter.start()
        async with asyncio.timeout(5):
            while b"brightdata_job_duration_seconds" not in exporter.exposition.text.body:
                await asyncio.sleep(0.01)
        assert exporter.ready
        await asyncio.wait_for(exporter.stop(), timeout=2)
        calls = [c.request.url.path for c in router.calls]
    # Each target once (the broken one with its retries): nothing is due again for 30 s.
    assert all(t.last_poll is not None for t in exporter.store)
    assert len(set(calls)) == 5
    assert len(calls) == 5 + 2
