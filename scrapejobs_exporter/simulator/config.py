"""Simulator settings and the address check."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from scrapejobs_exporter.simulator.ratelimits import AITRONOS_PLANS, LimitSettings

DEFAULT_BRIGHTDATA_TOKEN = "sim-brightdata-token"
DEFAULT_AITRONOS_KEY = "ak_simulator000000000000000000000000000000"


class NonLoopbackAddressError(ValueError):
    """Refused to bind a non-loopback address without allow_non_loopback."""


@dataclass
class SimulatorConfig:
    host: str = "127.0.0.1"
    port: int = 0
    seed: int = 1
    speed: float = 1.0
    scale: int = 200
    running_fraction: float = 0.02
    stuck_fraction: float = 0.05
    latency: float = 0.0
    brightdata_token: str = DEFAULT_BRIGHTDATA_TOKEN
    aitronos_key: str = DEFAULT_AITRONOS_KEY
    manual_clock: bool = False
    legacy_capitalised: bool = False
    allow_non_loopback: bool = False
    # Simulated unix time at start. None: now (real clock) or the current
    # hour, floored (manual clock, so runs started close together match).
    start_time: float | None = None
    # The yield-drop scenario: "busiest" or a collector id, and when it starts (simulated
    # seconds after the start).
    yield_drop: str | None = None
    yield_drop_after: float = 0.0
    # Per-account rate limits (docs/simulator.md, "Rate limits"); off: counted, never enforced.
    rate_limits: bool = True
    brightdata_per_minute: int = 100  # a Limited Trial account, across every endpoint
    brightdata_block_after: int = 25  # 429s within five minutes that block the IP; 0: never
    aitronos_plan: str = "standard"  # standard | premium: per minute, burst and per day
    aitronos_per_minute: int | None = None  # None: the plan's
    aitronos_burst: int | None = None
    aitronos_per_day: int | None = None

    def limit_settings(self) -> LimitSettings:
        """The limits to enforce; ValueError naming the setting that is out of range."""
        plan = AITRONOS_PLANS.get(self.aitronos_plan)
        if plan is None:
            raise ValueError(
                f"aitronos plan must be one of {', '.join(AITRONOS_PLANS)}, "
                f"got {self.aitronos_plan!r}"
            )
        overrides = {
            "per_minute": self.aitronos_per_minute,
            "burst": self.aitronos_burst,
            "per_day": self.aitronos_per_day,
        }
        plan = replace(plan, **{k: v for k, v in overrides.items() if v is not None})
        checks = {
            "brightdata per-minute limit": (self.brightdata_per_minute, 1),
            "brightdata block-after": (self.brightdata_block_after, 0),
            "aitronos per-minute limit": (plan.per_minute, 1),
            "aitronos burst": (plan.burst, 1),
            "aitronos per-day limit": (plan.per_day, 1),
        }
        for name, (value, least) in checks.items():
            if value < least:
                raise ValueError(f"{name} must be at least {least}, got {value}")
        return LimitSettings(
            enabled=self.rate_limits,
            brightdata_per_minute=self.brightdata_per_minute,
            brightdata_block_after=self.brightdata_block_after,
            aitronos=plan,
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_address(config: SimulatorConfig) -> None:
    if not config.allow_non_loopback and not is_loopback(config.host):
        raise NonLoopbackAddressError(
            f"refusing to listen on non-loopback address {config.host!r}"
            " (pass --allow-non-loopback to override)"
        )
