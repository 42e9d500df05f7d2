"""Being a polite API client: a per-minute window, a daily quota, the provider's announced
quota, 429 pauses, retries and a circuit breaker.

One `ProviderGate` per provider holds every call to that provider, retries included. Bright Data
blocks a client IP after 25 429s in five minutes, so a 429 pauses the whole provider (not just the
one request), consecutive 429s grow the pause, only one request at a time goes out until a call
passes again, and a handful of 429s in five minutes pauses the provider until they age out.

Time and sleeping are injected, so the logic is tested with a fake clock and never sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # telemetry -> metrics -> providers -> http -> here: only a type
    from scrapejobs_exporter.telemetry import Telemetry

__all__ = [
    "DEFAULT_POLICY",
    "MAX_PAUSE",
    "CircuitBreaker",
    "Policy",
    "ProviderGate",
    "QuotaBucket",
    "Refused",
    "SlidingWindow",
    "Turn",
]

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# The longest any pause lasts, whatever a provider's Retry-After asks for (`http._retry_after`
# caps the header where it is parsed; the gate caps again where pauses are set).
MAX_PAUSE = 300.0
QUEUED_YIELD = 0.001  # seconds: the shortest wait for the budget

# Failures that say the provider as a whole is unwell; they are retried and feed the breaker.
RETRYABLE = frozenset({"timeout", "connect", "http_5xx"})


@dataclass(frozen=True, slots=True)
class Policy:
    attempts: int = 3  # tries per call for timeouts, dropped connections and 5xx
    retry_base: float = 0.5  # the first retry waits up to this (full jitter), then doubles
    retry_cap: float = 8.0
    pause_base: float = 2.0  # a 429 without Retry-After pauses 2, 4, 8, ... s
    pause_cap: float = MAX_PAUSE
    max_pause_wait: float = 30.0  # a call waits this long for a pause to end; longer: fails fast
    window_limit: int = 5  # this many 429s within `window` pause the provider until they age out
    window: float = 300.0
    breaker_threshold: int = 5  # consecutive provider-level failures that open the circuit
    breaker_open: float = 30.0  # first open period; doubles while probes keep failing
    breaker_open_cap: float = 300.0

    def retry_delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^(attempt-1))]."""
        return rng() * min(self.retry_cap, self.retry_base * 2.0 ** (attempt - 1))

    def pause_for(self, streak: int, retry_after: float | None) -> float:
        """The pause after the `streak`-th 429 in a row; never shorter than Retry-After."""
        grown = self.pause_base * 2.0 ** (min(streak, 30) - 1)
        return min(self.pause_cap, max(retry_after or 0.0, grown))


DEFAULT_POLICY = Policy()


class Refused(Exception):
    """The gate did not let a call out: the circuit is open, or a 429 pause lasts too long.

    `reason` is `circuit_open` or `rate_limited`; no request was sent.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(slots=True, eq=False)
class Slot:
    """One request's place in the window: from its sending until it is answered (`done`)."""

    at: float
    done: bool = False


class SlidingWindow:
    """At most `limit` requests in any `window` seconds, as the provider counts them.

    The provider counts a request when it arrives, some time between our sending it and its
    answer. A request therefore occupies its slot from its sending until `window` seconds after
    its answer (in flight: until it is answered): two requests whose arrivals lie in one window
    of the provider's then always share one of ours, whatever the latency. The whole budget is
    used; a token bucket with a burst sustains less (88.5 of 100 a minute).

    Bursts are also kept short: beyond `burst` requests at once, sends are spaced `window /
    limit` apart (the same rate), so that when a provider starts refusing, a few requests learn
    it rather than a whole minute's worth (25 429s in five minutes block the IP at Bright Data).
    """

    MARGIN = 0.05  # seconds: the provider's window edge may be inclusive, its clock coarser

    def __init__(self, limit: int, clock: Clock, window: float = 60.0) -> None:
        if limit < 1:
            raise ValueError("a request window needs a limit of at least 1")
        self.limit = limit
        self.window = window + self.MARGIN
        self._clock = clock
        self.burst = float(max(1, limit // 10))
        self._rate = limit / window
        self._allowance = self.burst
        self._updated = clock()
        self._slots: deque[Slot] = deque()

    def _trim(self, now: float) -> None:
        slots = self._slots
        while slots and slots[0].done and slots[0].at <= now - self.window:
            slots.popleft()

    def wait(self) -> float:
        """Seconds until a request may go out (0: now)."""
        now = self._clock()
        self._trim(now)
        self._refill(now)
        # A hair of tolerance: a sleep of exactly the wait must be enough despite rounding.
        spaced = 0.0 if self._allowance >= 1.0 - 1e-9 else (1.0 - self._allowance) / self._rate
        used = len(self._slots)
        if used < self.limit:
            return spaced
        # Answered slots free up `window` after their answer; one still in flight at the
        # latest when it is answered (a request timeout), so look again in a second.
        free_at = [s.at + self.window for s in self._slots if s.done]
        need = used - self.limit + 1
        if len(free_at) < need:
            return max(spaced, 1.0)
        return max(spaced, sorted(free_at)[need - 1] - now)

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._allowance = min(self.burst, self._allowance + elapsed * self._rate)
        self._updated = now

    def take(self) -> Slot:
        slot = Slot(self._clock())
        self._refill(slot.at)
        self._allowance -= 1.0
        self._slots.append(slot)
        return slot

    def answered(self, slot: Slot) -> None:
        slot.at, slot.done = self._clock(), True

    def give_back(self, slot: Slot) -> None:
        """A slot taken by a call that never went out."""
        with contextlib.suppress(ValueError):
            self._slots.remove(slot)
            self._allowance = min(self.burst, self._allowance + 1.0)

    def sent_within(self, seconds: float) -> int:
        now = self._clock()
        return sum(1 for s in self._slots if s.at > now - seconds or not s.done)


class QuotaBucket:
    """`limit` requests per `period` (a day), spread evenly: a bucket refilling at
    limit/period with a burst of `burst`, which is taken out of the refill rate so that no
    period ever holds more than `limit`."""

    def __init__(self, limit: int, period: float, clock: Clock, burst: int | None = None) -> None:
        self.limit = limit
        self.capacity = float(max(1, min(limit, burst if burst is not None else limit // 288)))
        self.rate = max(limit - self.capacity, 1.0) / period
        self._clock = clock
        self._tokens = self.capacity
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def wait(self) -> float:
        self._refill()
        # A hair of tolerance: a sleep of exactly the wait must be enough despite rounding.
        return 0.0 if self._tokens >= 1.0 - 1e-9 else (1.0 - self._tokens) / self.rate

    def take(self) -> None:
        self._refill()
        self._tokens -= 1.0

    def give_back(self) -> None:
        self._tokens = min(self.capacity, self._tokens + 1.0)


class AnnouncedQuota:
    """What the provider said in `X-RateLimit-Remaining` / `X-RateLimit-Reset`: no more than
    `remaining` requests go out before `reset_at` (on our clock)."""

    MAX_RESET = 3600.0  # a reset further away than this is not believed (clock skew)

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.remaining: float | None = None
        self.reset_at = 0.0

    def announce(self, remaining: float, reset_in: float | None) -> None:
        now = self._clock()
        # Without a reset time, the announcement holds for a minute (the usual window).
        reset_in = 60.0 if reset_in is None else min(max(reset_in, 0.0), self.MAX_RESET)
        self.remaining, self.reset_at = max(0.0, remaining), now + reset_in

    def wait(self) -> float:
        if self.remaining is None:
            return 0.0
        now = self._clock()
        if now >= self.reset_at:
            self.remaining = None
            return 0.0
        return 0.0 if self.remaining >= 1 else self.reset_at - now

    def take(self) -> None:
        if self.remaining is not None:
            self.remaining -= 1

    def give_back(self) -> None:
        if self.remaining is not None:
            self.remaining += 1


class CircuitBreaker:
    """Closed -> open after `threshold` provider-level failures in a row -> one probe at a time.

    While open, calls fail fast; when the open period ends a single probe goes out. A probe that
    fails reopens the circuit for twice as long (capped), one that passes closes it.
    """

    def __init__(self, provider: str, policy: Policy, telemetry: Telemetry, clock: Clock) -> None:
        self.provider = provider
        self.policy = policy
        self.telemetry = telemetry
        self._clock = clock
        self.failures = 0
        self.open_until: float | None = None
        self.open_for = policy.breaker_open
        self.probing = False
        telemetry.circuit_open.labels(provider).set(0)

    def admit(self) -> bool:
        """True when a call may go out; marks it as the probe when the circuit is half open."""
        if self.open_until is None:
            return True
        if self.probing or self._clock() < self.open_until:
            return False
        self.probing = True
        return True

    def succeeded(self) -> None:
        if self.open_until is not None:
            log.info("%s: API answers again; circuit closed", self.provider)
            self.telemetry.circuit_open.labels(self.provider).set(0)
        self.failures, self.open_until, self.probing = 0, None, False
        self.open_for = self.policy.breaker_open

    def failed(self) -> None:
        self.failures += 1
        if self.probing:
            self.open_for = min(self.policy.breaker_open_cap, self.open_for * 2)
            self._open("probe failed")
        elif self.open_until is None and self.failures >= self.policy.breaker_threshold:
            self._open(f"{self.failures} failures in a row")

    def neutral(self) -> None:
        """A call that says nothing about the provider's health (e.g. cancelled, or a 429)."""
        self.probing = False

    def _open(self, why: str) -> None:
        self.open_until = self._clock() + self.open_for
        self.probing = False
        self.telemetry.circuit_open.labels(self.provider).set(1)
        log.warning(
            "%s: %s; circuit open, probing again in %.3gs", self.provider, why, self.open_for
        )


@dataclass(slots=True)
class Turn:
    """One call's pass through the gate; the client reports how it went."""

    sent_at: float
    slot: Slot | None = None
    outcome: str = "success"  # success | failure | rate_limited | neutral
    retry_after: float | None = None

    def failure(self) -> None:
        self.outcome = "failure"

    def rate_limited(self, retry_after: float | None) -> None:
        self.outcome, self.retry_after = "rate_limited", retry_after

    def neutral(self) -> None:
        self.outcome = "neutral"


# A request slot a scheduler took before choosing the work: the next call made in that
# context uses it instead of waiting for one (see `ProviderGate.claim`).
_CLAIMED: ContextVar[tuple[ProviderGate, Slot] | None] = ContextVar("claimed", default=None)


class ProviderGate:
    """Everything that decides when a provider may be called: the per-minute window, the
    daily quota, what the provider announced in its rate-limit headers, 429 pauses and the
    circuit breaker."""

    def __init__(
        self,
        provider: str,
        per_minute: int,
        telemetry: Telemetry,
        policy: Policy = DEFAULT_POLICY,
        *,
        per_day: int | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.provider = provider
        self.policy = policy
        self.telemetry = telemetry
        self.clock = clock
        self.sleep = sleep
        self.window = SlidingWindow(per_minute, clock)
        self.daily = None if per_day is None else QuotaBucket(per_day, 86400.0, clock)
        self.announced = AnnouncedQuota(clock)
        self.breaker = CircuitBreaker(provider, policy, telemetry, clock)
        self.paused_until = 0.0
        self.pause_started = float("-inf")
        self.streak = 0  # 429s in a row
        self.recent_429s: deque[float] = deque()
        self._single = asyncio.Lock()  # one call at a time after a 429, until one passes
        self._in_flight = 0
        self._queued = 0  # calls of units under way (a list's next page, a retry) waiting
        telemetry.rate_limit_wait.labels(provider)

    @property
    def per_minute(self) -> int:
        return self.window.limit

    @property
    def per_day(self) -> int | None:
        return None if self.daily is None else self.daily.limit

    @property
    def sustained_per_minute(self) -> float:
        """Requests a minute this gate lets out in the long run (the daily quota spread)."""
        daily = self.daily
        return float(self.per_minute) if daily is None else min(self.per_minute, daily.rate * 60)

    @property
    def cautious(self) -> bool:
        return self.streak > 0

    def budget_wait(self) -> float:
        """Seconds until the budget lets a request out: window, day, announced quota."""
        waits = [self.window.wait(), self.announced.wait()]
        if self.daily is not None:
            waits.append(self.daily.wait())
        return max(waits)

    def wait_time(self) -> float:
        """Seconds until a call may go out now (0: now), pauses and an open circuit included.
        A scheduler asks this before it chooses what to send."""
        now = self.clock()
        waits = [self.budget_wait(), self.paused_until - now]
        if self.cautious and self._in_flight:
            waits.append(1.0)  # after a 429, one call at a time until one passes
        if self._queued:
            # A unit under way finishes first: a sweep's next page is not starved of the
            # budget by new detail polls that come free at the same moment.
            waits.append(max(self.budget_wait(), QUEUED_YIELD))
        breaker = self.breaker
        if breaker.open_until is not None:
            waits.append(1.0 if breaker.probing else breaker.open_until - now)
        return max(0.0, *waits)

    def claim(self) -> None:
        """Take a request slot now for the next call made in the current context (a task):
        the scheduler decides what to send once the budget allows it, not before."""
        _CLAIMED.set((self, self._take()))

    def release_claim(self) -> None:
        """Give back a claimed slot that no call used."""
        claimed = _CLAIMED.get()
        if claimed is not None and claimed[0] is self:
            _CLAIMED.set(None)
            self._give_back(claimed[1])

    def announce(self, remaining: float, reset_in: float | None) -> None:
        """The provider's `X-RateLimit-Remaining` (and `Reset`, in seconds from now)."""
        self.announced.announce(remaining, reset_in)

    def _take(self) -> Slot:
        if self.daily is not None:
            self.daily.take()
        self.announced.take()
        return self.window.take()

    def _give_back(self, slot: Slot) -> None:
        if self.daily is not None:
            self.daily.give_back()
        self.announced.give_back()
        self.window.give_back(slot)

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[Turn]:
        """Wait for this provider's turn; raises Refused instead of waiting too long."""
        claimed = _CLAIMED.get()
        if claimed is not None and claimed[0] is self:
            _CLAIMED.set(None)
            async with self._call(claimed[1]) as turn:
                yield turn
            return
        if not self.cautious:
            slot = await self._ready()
            if not self.cautious:
                async with self._call(slot) as turn:
                    yield turn
                return
            self._give_back(slot)
            # A 429 arrived while this call queued: it joins the single file below.
        async with self._single:
            slot = await self._ready()
            async with self._call(slot) as turn:
                yield turn

    async def _ready(self) -> Slot:
        """Wait out any 429 pause, then for the budget; returns the slot taken."""
        self._queued += 1
        try:
            for _ in range(10000):  # each round waits out a new pause; bounded all the same
                await self._wait_pause()
                wait = self.budget_wait()
                if wait > 0:
                    # At least a millisecond: a clock that coarse must still move on.
                    await self._waited(max(wait, QUEUED_YIELD))
                    continue
                if self.clock() >= self.paused_until:
                    return self._take()
        finally:
            self._queued -= 1
        raise Refused("rate_limited", f"{self.provider} API kept answering 429")

    @asynccontextmanager
    async def _call(self, slot: Slot) -> AsyncIterator[Turn]:
        if not self.breaker.admit():
            self._give_back(slot)
            raise Refused("circuit_open", f"{self.provider} API circuit open after failures")
        turn = Turn(sent_at=self.clock(), slot=slot)
        self._in_flight += 1
        try:
            yield turn
        except BaseException:
            if turn.outcome == "success":
                turn.neutral()  # cancelled or a bug: says nothing about the provider
            raise
        finally:
            self._in_flight -= 1
            self.window.answered(slot)
            self._settle(turn)

    async def _wait_pause(self) -> None:
        remaining = self.paused_until - self.clock()
        if remaining <= 0:
            return
        if remaining > self.policy.max_pause_wait:
            raise Refused(
                "rate_limited", f"{self.provider} API paused for {remaining:.0f}s after 429s"
            )
        await self._waited(remaining)

    async def _waited(self, seconds: float) -> None:
        self.telemetry.rate_limit_wait.labels(self.provider).inc(seconds)
        await self.sleep(seconds)

    def _settle(self, turn: Turn) -> None:
        if turn.outcome == "rate_limited":
            self.breaker.neutral()
            self._rate_limited(turn)
            return
        if turn.outcome == "failure":
            self.breaker.failed()
        elif turn.outcome == "neutral":
            self.breaker.neutral()
        else:
            self.breaker.succeeded()
        if turn.outcome != "neutral" and self.streak:
            log.info("%s: calls pass again after %d 429s in a row", self.provider, self.streak)
            self.streak = 0

    def _rate_limited(self, turn: Turn) -> None:
        now = self.clock()
        self.recent_429s.append(now)
        while self.recent_429s and self.recent_429s[0] <= now - self.policy.window:
            self.recent_429s.popleft()
        if turn.sent_at <= self.pause_started:
            # Sent before the current pause began: the same burst, not a new refusal.
            wish = min(self.policy.pause_cap, turn.retry_after or 0.0)
            self.paused_until = max(self.paused_until, now + wish)
            return
        self.streak += 1
        pause = self.policy.pause_for(self.streak, turn.retry_after)
        if len(self.recent_429s) >= self.policy.window_limit:
            # Far below Bright Data's block threshold, wait until the oldest 429 ages out.
            pause = max(pause, self.recent_429s[0] + self.policy.window - now)
        self.pause_started = now
        self.paused_until = max(self.paused_until, now + pause)
        log.warning(
            "%s: rate limited (HTTP 429, %d in a row, %d in %.0fs); pausing all calls for %.3gs",
            self.provider,
            self.streak,
            len(self.recent_429s),
            self.policy.window,
            pause,
        )
