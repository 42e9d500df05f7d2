"""Simulator settings and the address check."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

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
