"""Issue 17, item 7: concurrent 429s with `Retry-After: 99999999999`, on a fake clock."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from scrapejobs_exporter.config import parse_config
from scrapejobs_exporter.exporter import Exporter
from scrapejobs_exporter.resilience import MAX_PAUSE, ProviderGate, Turn
from tests.helpers import reply
from tests.unit.test_resilience import FakeTime, gate


def test_a_429_from_the_same_burst_cannot_pause_past_the_cap() -> None:
    """The concurrent path (a 429 sent before the current pause began) skipped the cap."""
    fake = FakeTime()
    g = gate(fake)
    first, second = Turn(sent_at=fake.now), Turn(sent_at=fake.now)
    first.rate_limited(10.0)
    g._settle(first)
    second.rate_limited(99_999_999_999.0)  # what an uncapped parser would have passed on
    g._settle(second)
    assert g.paused_until - fake.now <= MAX_PAUSE


async def test_concurrent_429s_recover_within_the_cap_and_warn_once_per_target(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The provider stayed paused 'for 99999999520s' after the API recovered, logging 4,352
    warnings in 8 minutes."""
    healthy = False

    def handler(request: httpx.Request) -> httpx.Response:
        if healthy:
            return reply(200, {"status": "running"})
        return reply(429, {}, {"retry-after": "99999999999"})

    ids = [f"j_{n}" for n in range(8)]
    config = parse_config(
        f"brightdata:\n  api_token: t\n  base_url: https://bd.test\n  jobs: {ids}\n"
        "  max_requests_per_minute: 100000\n",
        env={},
    )
    now = [1_000.0]
    exporter = Exporter(config, transport=httpx.MockTransport(handler), clock=lambda: now[0])
    client = exporter.providers.brightdata
    assert client is not None
    fake = FakeTime()
    g = ProviderGate(
        "brightdata",
        100000,
        exporter.telemetry,
        client.http.policy,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    client.http.gate = g
    caplog.set_level(logging.WARNING)
    try:
        for _ in range(20):  # each cycle: every target refused or rate limited
            await exporter.poller.run_cycle()
            fake.now += 30
        assert g.paused_until - fake.now <= MAX_PAUSE
        per_target = [r for r in caplog.records if r.name.endswith(("poller", "scheduler"))]
        assert len(per_target) <= 2 * len(ids), [r.getMessage() for r in per_target]
        healthy = True
        fake.now += MAX_PAUSE + 1
        await exporter.poller.run_cycle()
        assert all(t.up for t in exporter.store)
    finally:
        await exporter.stop()
    await asyncio.sleep(0)
