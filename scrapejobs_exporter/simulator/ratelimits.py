"""Per-account request limits, enforced the way the providers document them.

- Bright Data (Limited Trial accounts): at most N requests in any 60 s across every Bright Data
  endpoint; beyond that a 429 with `x-brd-error-code: client_10110`, and a rejected request is
  not counted as served. 25 429s within five minutes block the client IP: every request is
  refused (403) until the block is lifted (`POST /_sim/unblock`; support does it upstream).
- Aitronos: two token buckets, per minute (with a burst) and per day; every answer carries
  `X-RateLimit-Limit/Remaining/Reset`, a 429 also `Retry-After`.

Time is the clock's `quota_now()`: real seconds (the speed of the world does not apply), moved
by `/_sim/advance` too. Requests are counted per provider with or without enforcement, so the
busiest 60 s window is known either way.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from scrapejobs_exporter.simulator.replies import Family, Reply, rate_limited, text_reply

__all__ = [
    "AITRONOS_PLANS",
    "AccountLimits",
    "AitronosLimit",
    "AitronosPlan",
    "BrightDataLimit",
    "LimitSettings",
]

RATE_WINDOW = 60.0
BLOCK_WINDOW = 300.0
DAY = 86_400.0
# Times near 1.8e9 s carry ~2.4e-7 s of float error: a token refilled "exactly" may come
# out as 0.99999. A hundred-thousandth of a token is far below anything a client can see.
TOKEN_EPSILON = 1e-5
BLOCKED_TEXT = "Your IP is blocked after too many 429 responses; contact support"
BLOCKED_HEADERS = {
    "x-brd-error": "IP is blocked after too many 429 responses",
    "x-brd-err-msg": "25 or more 429 responses within 5 minutes: the IP is blocked",
}


@dataclass(frozen=True, slots=True)
class AitronosPlan:
    per_minute: int
    burst: int
    per_day: int


# The documented plans (Aitronos rate-limiting page, "in development").
AITRONOS_PLANS = {
    "standard": AitronosPlan(per_minute=100, burst=120, per_day=10_000),
    "premium": AitronosPlan(per_minute=1_000, burst=1_200, per_day=100_000),
}


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """What the simulator enforces; `enabled=False` counts requests but never refuses one."""

    enabled: bool = True
    brightdata_per_minute: int = 100
    brightdata_block_after: int = 25  # 429s within five minutes; 0: never block
    aitronos: AitronosPlan = field(default_factory=lambda: AITRONOS_PLANS["standard"])


class Served:
    """Requests served by one provider, and the most served in any 60 s window."""

    def __init__(self) -> None:
        self.total = 0
        self.busiest_60s = 0
        self.busiest_60s_ending: float | None = None
        self._recent: deque[float] = deque()

    def add(self, t: float) -> None:
        self.total += 1
        recent = self._recent
        recent.append(t)
        while recent[0] <= t - RATE_WINDOW:
            recent.popleft()
        if len(recent) > self.busiest_60s:
            self.busiest_60s, self.busiest_60s_ending = len(recent), t

    def window(self, t: float) -> deque[float]:
        """The times of the requests served in (t - 60 s, t], oldest first."""
        recent = self._recent
        while recent and recent[0] <= t - RATE_WINDOW:
            recent.popleft()
        return recent

    def state(self, t: float) -> dict[str, Any]:
        return {
            "served": self.total,
            "served_last_60s": len(self.window(t)),
            "busiest_60s": self.busiest_60s,
            "busiest_60s_ending": self.busiest_60s_ending,
        }


class BrightDataLimit:
    """A sliding 60 s window over every Bright Data endpoint, and the IP block."""

    def __init__(self, per_minute: int, block_after: int) -> None:
        self.per_minute = per_minute
        self.block_after = block_after
        self.served = Served()
        self.rate_limited = 0
        self.refused_while_blocked = 0
        self.blocked_since: float | None = None
        self._rejections: deque[float] = deque()

    def check(self, t: float, enforce: bool) -> Reply | None:
        """None: serve it (and count it); else the refusal to send."""
        if not enforce:
            self.served.add(t)
            return None
        if self.blocked_since is not None:
            self.refused_while_blocked += 1
            return text_reply(403, BLOCKED_TEXT, dict(BLOCKED_HEADERS))
        recent = self.served.window(t)
        if len(recent) < self.per_minute:
            self.served.add(t)
            return None
        self.rate_limited += 1
        self._reject(t)
        retry_after = max(1, math.ceil(recent[0] + RATE_WINDOW - t))
        return rate_limited(Family.DCA, retry_after)

    def _reject(self, t: float) -> None:
        rejections = self._rejections
        rejections.append(t)
        while rejections[0] <= t - BLOCK_WINDOW:
            rejections.popleft()
        if self.block_after and len(rejections) >= self.block_after:
            self.blocked_since = t

    def unblock(self) -> None:
        self.blocked_since = None
        self._rejections.clear()

    def state(self, t: float, enforce: bool) -> dict[str, Any]:
        recent_429s = sum(1 for r in self._rejections if r > t - BLOCK_WINDOW)
        return {
            **self.served.state(t),
            "per_minute": self.per_minute if enforce else None,
            "rate_limited": self.rate_limited,
            "rate_limited_last_5m": recent_429s,
            "block_after": self.block_after if enforce else None,
            "blocked": self.blocked_since is not None,
            "blocked_since": self.blocked_since,
            "refused_while_blocked": self.refused_while_blocked,
        }


class Bucket:
    """A token bucket: `capacity` tokens, refilled at `rate` per second, full at start."""

    def __init__(self, capacity: int, rate: float, t: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = float(capacity)
        self._updated = t

    def refill(self, t: float) -> None:
        if t > self._updated:
            self.tokens = min(self.capacity, self.tokens + (t - self._updated) * self.rate)
            self._updated = t

    def has_one(self) -> bool:
        return self.tokens >= 1.0 - TOKEN_EPSILON

    def wait_for_one(self) -> float:
        return max(0.0, (1.0 - self.tokens) / self.rate)

    def full_in(self) -> float:
        return (self.capacity - self.tokens) / self.rate


class AitronosLimit:
    """Per-minute and per-day token buckets with the documented X-RateLimit-* headers."""

    def __init__(self, plan: AitronosPlan, t: float) -> None:
        self.plan = plan
        self.minute = Bucket(plan.burst, plan.per_minute / RATE_WINDOW, t)
        self.day = Bucket(plan.per_day, plan.per_day / DAY, t)
        self.served = Served()
        self.rate_limited = 0
        self.rate_limited_daily = 0

    def check(self, t: float, enforce: bool) -> tuple[Reply | None, dict[str, str]]:
        """(None, headers for the answer) to serve it; (the 429, {}) to refuse it."""
        if not enforce:
            self.served.add(t)
            return None, {}
        self.minute.refill(t)
        self.day.refill(t)
        if not (self.minute.has_one() and self.day.has_one()):
            self.rate_limited += 1
            self.rate_limited_daily += not self.day.has_one()
            wait = max(self.minute.wait_for_one(), self.day.wait_for_one())
            seconds = max(1, math.ceil(wait))
            reply = rate_limited(Family.AITRONOS, seconds)
            reply.headers.update(self.headers(t))
            reply.headers["X-RateLimit-Retry-After"] = str(seconds)
            return reply, {}
        self.minute.tokens -= 1.0
        self.day.tokens -= 1.0
        self.served.add(t)
        return None, self.headers(t)

    def headers(self, t: float) -> dict[str, str]:
        """Remaining: what the tighter bucket holds; Reset: when that bucket is full again
        (epoch seconds)."""
        binding = self.minute if self.minute.tokens <= self.day.tokens else self.day
        return {
            "X-RateLimit-Limit": str(self.plan.per_minute),
            "X-RateLimit-Remaining": str(max(0, math.floor(binding.tokens + TOKEN_EPSILON))),
            "X-RateLimit-Reset": str(math.ceil(t + binding.full_in())),
        }

    def state(self, t: float, enforce: bool) -> dict[str, Any]:
        self.minute.refill(t)
        self.day.refill(t)
        return {
            **self.served.state(t),
            "per_minute": self.plan.per_minute if enforce else None,
            "burst": self.plan.burst if enforce else None,
            "per_day": self.plan.per_day if enforce else None,
            "minute_tokens": round(self.minute.tokens, 3) if enforce else None,
            "day_tokens": round(self.day.tokens, 3) if enforce else None,
            "rate_limited": self.rate_limited,
            "rate_limited_daily_quota": self.rate_limited_daily,
        }


class AccountLimits:
    """Both providers' limits; the app asks before serving each API request."""

    def __init__(self, settings: LimitSettings, t: float) -> None:
        self.settings = settings
        self.brightdata = BrightDataLimit(
            settings.brightdata_per_minute, settings.brightdata_block_after
        )
        self.aitronos = AitronosLimit(settings.aitronos, t)

    def check(self, family: Family, t: float) -> tuple[Reply | None, dict[str, str]]:
        enforce = self.settings.enabled
        if family.is_aitronos:
            return self.aitronos.check(t, enforce)
        return self.brightdata.check(t, enforce), {}

    def state(self, t: float) -> dict[str, Any]:
        enforce = self.settings.enabled
        return {
            "enabled": enforce,
            "brightdata": self.brightdata.state(t, enforce),
            "aitronos": self.aitronos.state(t, enforce),
        }
