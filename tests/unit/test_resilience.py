"""The request budget, 429 pauses, retries and the circuit breaker, on a fake clock: nothing sleeps."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest
import respx

from scrapejobs_exporter.providers.http import ApiError, HttpClient
from scrapejobs_exporter.resilience import Policy, ProviderGate, Refused, SlidingWindow
from scrapejobs_exporter.telemetry import Telemetry
from tests.helpers import value

BD = "https://api.brightdata.test"
TOKEN = "tok-very-secret-123"


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def gate(fake: FakeTime, per_minute: int = 100, policy: Policy | None = None) -> ProviderGate:
    return ProviderGate(
        "brightdata",
        per_minute,
        Telemetry(),
        policy or Policy(),
        clock=fake.clock,
        sleep=fake.sleep,
    )


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


# --- budget: the sliding window, the daily quota, the announced quota --------------------------


@pytest.mark.parametrize("budget", [2, 30, 100, 1000])
async def test_window_never_exceeds_budget_in_any_minute_and_uses_all_of_it(budget: int) -> None:
    rng = random.Random(budget)
    fake = FakeTime()
    g = gate(fake, per_minute=budget)
    sent: list[float] = []
    start = fake.now
    for _ in range(budget * 5):
        fake.now += rng.choice([0.0, 0.0, 0.01, 1.0, 30.0])  # bursts, a trickle and pauses
        async with g.turn():
            sent.append(fake.now)
            fake.now += rng.choice([0.0, 0.2])  # the answer takes a while, or none
    assert max_in_window(sent, 60.0) <= budget
    # Back to back, the whole budget every minute (a bucket with a burst gave 88.5 of 100):
    # a short burst, then evenly spaced.
    g, start = gate(fake, per_minute=budget), fake.now
    for _ in range(budget * 3):
        await passes(g)
    burst = max(1, budget // 10)
    # (a window edge may add its margin, a twentieth of a second, a few times)
    assert fake.now - start == pytest.approx((budget * 3 - burst) * 60.0 / budget, abs=0.2)


async def test_window_counts_a_request_until_a_minute_after_its_answer() -> None:
    fake = FakeTime()
    g = gate(fake, per_minute=2)
    async with g.turn():
        fake.now += 5.0  # a slow answer: the provider may have counted it at any time
    async with g.turn():
        pass
    async with g.turn():
        pass
    assert fake.now == pytest.approx(1000.0 + 5.0 + 60.0 + SlidingWindow.MARGIN)  # answer + 60 s


async def test_daily_quota_is_spread_over_the_day() -> None:
    fake = FakeTime()
    g = ProviderGate("aitronos", 100_000, Telemetry(), per_day=10_000, clock=fake.clock,
                     sleep=fake.sleep)  # fmt: skip
    sent = []
    for _ in range(200):
        async with g.turn():
            sent.append(fake.now)
    burst = sum(1 for t in sent if t == sent[0])
    assert burst == 10_000 // 288
    # Then the day's rate: the rest of the quota over the day, about 6.9 a minute.
    rate = (len(sent) - burst) / ((sent[-1] - sent[burst - 1]) / 60.0)
    assert rate == pytest.approx((10_000 - burst) / 1440, rel=0.01)
    assert g.sustained_per_minute == pytest.approx((10_000 - burst) / 1440)


async def test_announced_remaining_zero_holds_calls_until_the_reset() -> None:
    fake = FakeTime()
    g = gate(fake)
    g.announce(0, 42.0)  # X-RateLimit-Remaining: 0, reset in 42 s
    assert g.wait_time() == pytest.approx(42.0)
    start = fake.now
    await passes(g)
    assert fake.now - start == pytest.approx(42.0)
    g.announce(2, 30.0)
    start = fake.now
    await passes(g)
    await passes(g)
    assert fake.now == start
    await passes(g)  # the two announced were used: wait for the reset
    assert fake.now - start == pytest.approx(30.0)


async def test_a_claimed_slot_is_used_by_the_next_call_or_given_back() -> None:
    fake = FakeTime()
    g = gate(fake, per_minute=2)
    g.claim()
    assert g.window.sent_within(60) == 1
    await passes(g)  # uses the claimed slot: no second one taken
    assert g.window.sent_within(60) == 1
    g.claim()
    g.release_claim()
    assert g.window.sent_within(60) == 1


# --- 429 pauses ------------------------------------------------------------------------------


async def limited(g: ProviderGate, retry_after: float | None = None) -> None:
    async with g.turn() as turn:
        turn.rate_limited(retry_after)


async def passes(g: ProviderGate) -> None:
    async with g.turn():
        pass


async def test_a_429_pauses_every_call_and_counts_the_wait() -> None:
    fake = FakeTime()
    g = gate(fake)
    await limited(g)
    before = fake.now
    await passes(g)  # another call, not a retry of the first: it waits all the same
    assert fake.now - before == pytest.approx(2.0)
    assert value(g.telemetry.rate_limit_wait, "brightdata") == pytest.approx(2.0)


async def test_consecutive_429s_grow_the_pause_and_a_pass_resets_it() -> None:
    fake = FakeTime()
    g = gate(fake, policy=Policy(window_limit=100))
    pauses = []
    for _ in range(4):
        await limited(g)
        pauses.append(g.paused_until - fake.now)
    assert pauses == pytest.approx([2.0, 4.0, 8.0, 16.0])
    await passes(g)
    assert g.streak == 0
    await limited(g)
    assert g.paused_until - fake.now == pytest.approx(2.0)


async def test_many_429s_in_five_minutes_pause_until_the_oldest_ages_out() -> None:
    fake = FakeTime()
    g = gate(fake)
    first = fake.now
    for _ in range(4):
        await limited(g)
        await passes(g)  # a pass in between: the streak alone would not grow the pause
    await limited(g)
    assert g.paused_until == pytest.approx(first + 300.0)


async def test_retry_after_is_honoured() -> None:
    fake = FakeTime()
    g = gate(fake)
    await limited(g, retry_after=7.0)
    assert g.paused_until - fake.now == pytest.approx(7.0)


async def test_a_long_pause_fails_fast_instead_of_blocking() -> None:
    fake = FakeTime()
    g = gate(fake)
    await limited(g, retry_after=600.0)
    with pytest.raises(Refused) as info:
        await passes(g)
    assert info.value.reason == "rate_limited"
    assert fake.slept == []


async def test_429s_of_one_burst_count_once() -> None:
    fake = FakeTime()
    g = gate(fake)
    async with g.turn() as first:
        async with g.turn() as second:
            second.rate_limited(None)
        first.rate_limited(None)  # sent before the pause began: same burst
    assert g.streak == 1


async def test_after_a_429_calls_go_one_at_a_time() -> None:
    fake = FakeTime()
    g = gate(fake)
    await limited(g)
    inside = 0
    most = 0

    async def call() -> None:
        nonlocal inside, most
        async with g.turn():
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0)
            inside -= 1

    await asyncio.gather(*(call() for _ in range(5)))
    assert most == 1
    await asyncio.gather(*(call() for _ in range(5)))  # the pass above lifted the caution
    assert most > 1


async def test_a_429_storm_stays_far_from_the_block_threshold() -> None:
    """Bright Data blocks an IP at 25 429s in 5 minutes: one hour of 429s, as fast as allowed."""
    fake = FakeTime()
    g = gate(fake, per_minute=100)
    refusals: list[float] = []
    sent: list[float] = []
    for _ in range(5_000):
        if fake.now > 1_000 + 3600:
            break
        try:
            async with g.turn() as turn:
                sent.append(fake.now)
                refusals.append(fake.now)
                turn.rate_limited(1.0)
        except Refused:
            await fake.sleep(1.0)  # the poller comes back later
    assert len(refusals) > 10
    assert max_in_window(refusals, 300.0) <= 6
    assert max_in_window(sent, 60.0) <= 100


# --- circuit breaker -------------------------------------------------------------------------


async def failing(g: ProviderGate) -> None:
    async with g.turn() as turn:
        turn.failure()


async def test_breaker_opens_probes_and_closes() -> None:
    fake = FakeTime()
    g = gate(fake, policy=Policy(breaker_threshold=3, breaker_open=10.0))
    for _ in range(3):
        await failing(g)
    assert value(g.telemetry.circuit_open, "brightdata") == 1.0
    with pytest.raises(Refused) as info:
        await passes(g)
    assert info.value.reason == "circuit_open"
    fake.now += 10.0
    await failing(g)  # the probe fails: open twice as long
    fake.now += 10.0
    with pytest.raises(Refused):
        await passes(g)
    fake.now += 10.0
    async with g.turn():
        with pytest.raises(Refused):  # only one probe at a time
            await passes(g)
    assert value(g.telemetry.circuit_open, "brightdata") == 0.0
    await passes(g)


# --- the HTTP client -------------------------------------------------------------------------


def client(fake: FakeTime, telemetry: Telemetry | None = None) -> HttpClient:
    telemetry = telemetry or Telemetry()
    policy = Policy(retry_base=0.5)
    g = ProviderGate("brightdata", 100, telemetry, policy, clock=fake.clock, sleep=fake.sleep)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    return HttpClient(g, BD, headers, 5)


@respx.mock
async def test_5xx_is_retried_with_backoff_then_succeeds() -> None:
    fake = FakeTime()
    http = client(fake)
    route = respx.get(f"{BD}/x").mock(
        side_effect=[httpx.Response(503), httpx.Response(500), httpx.Response(200, json={})]
    )
    assert await http.get_json("/x", "/x") == {}
    await http.aclose()
    assert route.call_count == 3
    assert value(http.telemetry.api_retries, "brightdata", "/x") == 2
    assert len(fake.slept) == 2 and all(0 <= s <= 1.0 for s in fake.slept)


@respx.mock
@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_other_4xx_are_never_retried(status: int) -> None:
    fake = FakeTime()
    http = client(fake)
    route = respx.get(f"{BD}/x").respond(status, json={"error": "nope"})
    with pytest.raises(ApiError) as info:
        await http.get_json("/x", "/x")
    await http.aclose()
    assert route.call_count == 1
    assert info.value.status == status and info.value.reason == "http_4xx"


@respx.mock
async def test_retries_are_bounded() -> None:
    fake = FakeTime()
    http = client(fake)
    route = respx.get(f"{BD}/x").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(ApiError) as info:
        await http.get_json("/x", "/x")
    await http.aclose()
    assert info.value.reason == "connect"
    assert route.call_count == 3


@respx.mock
async def test_429_is_not_retried_but_pauses_the_provider() -> None:
    fake = FakeTime()
    http = client(fake)
    respx.get(f"{BD}/x").respond(429, headers={"Retry-After": "3"}, text="slow down")
    ok = respx.get(f"{BD}/y").respond(json={})
    with pytest.raises(ApiError) as info:
        await http.get_json("/x", "/x")
    assert info.value.reason == "rate_limited"
    started = fake.now
    await http.get_json("/y", "/y")
    await http.aclose()
    assert ok.call_count == 1
    assert fake.now - started == pytest.approx(3.0)


@respx.mock
async def test_circuit_refusals_are_not_counted_as_api_errors() -> None:
    fake = FakeTime()
    http = client(fake)
    respx.get(f"{BD}/x").mock(side_effect=httpx.ConnectError("refused"))
    for _ in range(2):  # 2 calls x 3 attempts open the breaker (threshold 5)
        with pytest.raises(ApiError):
            await http.get_json("/x", "/x")
    with pytest.raises(ApiError) as info:
        await http.get_json("/x", "/x")
    await http.aclose()
    assert info.value.reason == "circuit_open" and not info.value.sent
    assert value(http.telemetry.api_errors, "brightdata", "/x", "connect") == 5
    assert value(http.telemetry.circuit_open, "brightdata") == 1.0


@respx.mock
async def test_error_texts_never_carry_the_token_or_an_e_mail() -> None:
    fake = FakeTime()
    http = client(fake)
    respx.get(f"{BD}/x").respond(400, text=f"bad token {TOKEN} for ops@example.com")
    with pytest.raises(ApiError) as info:
        await http.get_json("/x", "/x")
    await http.aclose()
    assert TOKEN not in info.value.short and "ops@example.com" not in info.value.short


@respx.mock
async def test_error_header_on_200_carries_its_code_and_message() -> None:
    fake = FakeTime()
    http = client(fake)
    headers = {
        "x-brd-error": "Forbidden",
        "x-brd-error-code": "policy_20222",
        "x-brd-err-msg": "IP",
    }
    respx.get(f"{BD}/x").respond(200, json={}, headers=headers)
    with pytest.raises(ApiError) as info:
        await http.get_json("/x", "/x")
    await http.aclose()
    assert info.value.reason == "http_4xx"
    assert "Forbidden (policy_20222; IP)" in str(info.value)


@respx.mock
async def test_a_429_announcing_zero_left_without_a_reset_holds_only_for_its_retry_after() -> None:
    """A refusal saying `X-RateLimit-Remaining: 0` but no reset time: the announced 0 lasts as
    long as its Retry-After, not a minute (the faults test hung on it)."""
    fake = FakeTime()
    http = client(fake)
    respx.get(f"{BD}/x").respond(
        429, headers={"Retry-After": "2", "X-RateLimit-Remaining": "0"}, json={}
    )
    with pytest.raises(ApiError):
        await http.get_json("/x", "/x")
    await http.aclose()
    assert 0 < http.gate.announced.wait() <= 2.0


async def test_a_call_waiting_for_the_budget_goes_before_new_work() -> None:
    """A unit under way (a list's next page) that waits for the budget is not overtaken by a
    new unit the scheduler would start when the budget frees up at the same moment."""
    fake = FakeTime()
    released = asyncio.Event()

    async def held_sleep(seconds: float) -> None:
        fake.slept.append(seconds)
        await released.wait()  # the waiting call sleeps until the test moved the clock

    g = ProviderGate("aitronos", 100_000, Telemetry(), per_day=10_000, clock=fake.clock,
                     sleep=held_sleep)  # fmt: skip
    assert g.daily is not None
    while g.budget_wait() == 0:
        g.daily.take()  # the day's burst is used up
    assert g.wait_time() > 0
    waiting = asyncio.create_task(passes(g))
    await asyncio.sleep(0)
    assert fake.slept  # the page waits for its token
    fake.now += fake.slept[0]  # the token is there ...
    assert g.budget_wait() == 0
    assert g.wait_time() > 0  # ... for the waiting page, not for the scheduler's next unit
    released.set()
    await waiting
    assert g.wait_time() > 0  # the token went to the page
