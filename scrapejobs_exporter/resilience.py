"""Being a polite API client: a token bucket, 429 pauses, retries and a circuit breaker.

One `ProviderGate` per provider holds every call to that provider, retries included. Bright Data
blocks a client IP after 25 429s in five minutes, so a 429 pauses the whole provider (not just the
one request), consecutive 429s grow the pause, only one request at a time goes out until a call
passes again, and a handful of 429s in five minutes pauses the provider until they age out.

Time and sleeping are injected, so the logic is tested with a fake clock and never sleeps.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from scrapejobs_exporter.telemetry import Telemetry

__all__ = [
    "DEFAULT_POLICY",
    "MAX_PAUSE",
    "CircuitBreaker",
    "Policy",
    "ProviderGate",
    "Refused",
    "TokenBucket",
    "Turn",
]

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# The longest any pause lasts, whatever a provider's Retry-After asks for (`http._retry_after`
# caps the header where it is parsed; the gate caps again where pauses are set).
MAX_PAUSE = 300.0

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


class TokenBucket:
    """At most `per_minute` calls in any 60-second window.

    A bucket of capacity b refilling at r per second admits b + 60r calls in 60 s, so the burst is
    taken out of the refill rate; one second of slack covers clock and network jitter.
    """

    def __init__(self, per_minute: int, clock: Clock) -> None:
        if per_minute < 2:
            raise ValueError("a token bucket needs at least 2 requests per minute")
        self.per_minute = per_minute
        self.capacity = max(1, per_minute // 10)
        self.rate = (per_minute - self.capacity) / 61.0
        self._clock = clock
        self._tokens = float(self.capacity)
        self._updated = clock()

    def reserve(self) -> float:
        """Take a token; return how long to wait before using it (0: now).

        Tokens go negative while calls queue, so waiters are served in order at the refill rate.
        """
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def refund(self) -> None:
        """Give back a token reserved by a call that never went out."""
        self._tokens = min(self.capacity, self._tokens + 1.0)


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
        telemetry.circuit_open.set((provider,), 0.0)

    @property
    def is_open(self) -> bool:
        return self.open_until is not None

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
            self.telemetry.circuit_open.set((self.provider,), 0.0)
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
        self.telemetry.circuit_open.set((self.provider,), 1.0)
        log.warning(
            "%s: %s; circuit open, probing again in %.3gs", self.provider, why, self.open_for
        )


@dataclass(slots=True)
class Turn:
    """One call's pass through the gate; the client reports how it went."""

    sent_at: float
    outcome: str = "success"  # success | failure | rate_limited | neutral
    retry_after: float | None = None

    def failure(self) -> None:
        self.outcome = "failure"

    def rate_limited(self, retry_after: float | None) -> None:
        self.outcome, self.retry_after = "rate_limited", retry_after

    def neutral(self) -> None:
        self.outcome = "neutral"


class ProviderGate:
    """Everything that decides when a provider may be called."""

    def __init__(
        self,
        provider: str,
        per_minute: int,
        telemetry: Telemetry,
        policy: Policy = DEFAULT_POLICY,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.provider = provider
        self.policy = policy
        self.telemetry = telemetry
        self.clock = clock
        self.sleep = sleep
        self.bucket = TokenBucket(per_minute, clock)
        self.breaker = CircuitBreaker(provider, policy, telemetry, clock)
        self.paused_until = 0.0
        self.pause_started = float("-inf")
        self.streak = 0  # 429s in a row
        self.recent_429s: deque[float] = deque()
        self._single = asyncio.Lock()  # one call at a time after a 429, until one passes
        telemetry.rate_limit_wait.inc((provider,), 0.0)

    @property
    def cautious(self) -> bool:
        return self.streak > 0

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[Turn]:
        """Wait for this provider's turn; raises Refused instead of waiting too long."""
        if not self.cautious:
            await self._ready()
            if not self.cautious:
                async with self._call() as turn:
                    yield turn
                return
            # A 429 arrived while this call queued: it joins the single file below.
        async with self._single:
            await self._ready()
            async with self._call() as turn:
                yield turn

    async def _ready(self) -> None:
        """Wait out any 429 pause, then for a token; a token is only used outside a pause."""
        for _ in range(1000):  # each round waits out a new pause; bounded all the same
            await self._wait_pause()
            wait = self.bucket.reserve()
            if wait > 0:
                await self._waited(wait)
            if self.clock() >= self.paused_until:
                return
            # A 429 came in while we queued: that token is spent unused, which is only safer.
        raise Refused("rate_limited", f"{self.provider} API kept answering 429")

    @asynccontextmanager
    async def _call(self) -> AsyncIterator[Turn]:
        if not self.breaker.admit():
            self.bucket.refund()
            raise Refused("circuit_open", f"{self.provider} API circuit open after failures")
        turn = Turn(sent_at=self.clock())
        try:
            yield turn
        except BaseException:
            if turn.outcome == "success":
                turn.neutral()  # cancelled or a bug: says nothing about the provider
            raise
        finally:
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
        self.telemetry.rate_limit_wait.inc((self.provider,), seconds)
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
