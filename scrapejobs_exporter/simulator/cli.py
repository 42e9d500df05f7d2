"""`scrapejobs-exporter simulate`: command-line flags and the serving loop."""

from __future__ import annotations

import argparse
import asyncio
import sys

from scrapejobs_exporter.lifecycle import EXIT_USAGE, serve_until_signal
from scrapejobs_exporter.simulator.config import (
    DEFAULT_AITRONOS_KEY,
    DEFAULT_BRIGHTDATA_TOKEN,
    NonLoopbackAddressError,
    SimulatorConfig,
    check_address,
)
from scrapejobs_exporter.simulator.ratelimits import AITRONOS_PLANS
from scrapejobs_exporter.simulator.server import SimulatorServer

DEFAULT_LISTEN = "127.0.0.1:8765"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT", help="address to serve on")
    add("--seed", type=int, default=1, help="random seed (same seed => same world)")
    add("--speed", type=float, default=1.0, help="simulated seconds per real second")
    add("--scale", type=int, default=200, help="Scraper Studio jobs at start; sizes everything")
    add("--running-fraction", type=float, default=0.02, help="share of jobs running at start")
    add("--stuck-fraction", type=float, default=0.05, help="share of running jobs that are stuck")
    add("--latency", type=float, default=0.0, metavar="SECONDS", help="delay every API answer")
    add("--brightdata-token", default=DEFAULT_BRIGHTDATA_TOKEN, help="accepted Bearer token")
    add("--aitronos-key", default=DEFAULT_AITRONOS_KEY, help="accepted Aitronos API key")
    add("--clock", choices=("real", "manual"), default="real", help="manual: POST /_sim/advance")
    add("--start-time", type=float, default=None, metavar="UNIX", help="simulated start time")
    add("--legacy-capitalised", action="store_true", help="/dca/log with Capitalised keys")
    add(
        "--yield-drop",
        default=None,
        metavar="COLLECTOR",
        help="scenario: from --yield-drop-after on, this collector's new jobs (an id, or "
        "'busiest') yield a tenth of their records and fail more pages",
    )
    add(
        "--yield-drop-after",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="simulated seconds after the start when --yield-drop begins",
    )
    add("--allow-non-loopback", action="store_true", help="allow binding a public address")
    limits = parser.add_argument_group("per-account rate limits (docs/simulator.md)")
    limits.add_argument(
        "--rate-limits",
        choices=("on", "off"),
        default="on",
        help="enforce the providers' account limits (off: count requests, refuse none)",
    )
    limits.add_argument(
        "--brightdata-per-minute",
        type=int,
        default=100,
        metavar="N",
        help="Bright Data requests per 60 s across every endpoint (Limited Trial: 100)",
    )
    limits.add_argument(
        "--brightdata-block-after",
        type=int,
        default=25,
        metavar="N",
        help="429s within five minutes that block the IP until POST /_sim/unblock (0: never)",
    )
    limits.add_argument(
        "--aitronos-plan",
        choices=tuple(AITRONOS_PLANS),
        default="standard",
        help="standard: 100/min, burst 120, 10,000/day; premium: 1,000/min, 1,200, 100,000",
    )
    for name, what in (("per-minute", "per minute"), ("burst", "burst"), ("per-day", "per day")):
        limits.add_argument(
            f"--aitronos-{name}",
            type=int,
            default=None,
            metavar="N",
            help=f"Aitronos requests {what} (default: the plan's)",
        )


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` or `[IPv6]:PORT`."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"--listen must be HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    host, port = parse_listen(args.listen)
    return SimulatorConfig(
        host=host,
        port=port,
        manual_clock=args.clock == "manual",
        start_time=getattr(args, "start_time", None),
        yield_drop=getattr(args, "yield_drop", None),
        yield_drop_after=getattr(args, "yield_drop_after", 0.0),
        rate_limits=args.rate_limits == "on",
        **{name: getattr(args, name) for name in SAME_NAMES},
    )


# The flags whose value is the config field of the same name as it is.
SAME_NAMES = (
    "seed",
    "speed",
    "scale",
    "running_fraction",
    "stuck_fraction",
    "latency",
    "brightdata_token",
    "aitronos_key",
    "legacy_capitalised",
    "allow_non_loopback",
    "brightdata_per_minute",
    "brightdata_block_after",
    "aitronos_plan",
    "aitronos_per_minute",
    "aitronos_burst",
    "aitronos_per_day",
)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; 2 for a bad address or flag, 1 when it cannot listen."""
    try:
        config = config_from_args(args)
        check_address(config)
        config.limit_settings()
    except (ValueError, NonLoopbackAddressError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    server = SimulatorServer(config)

    def ready() -> None:
        print(
            f"simulator listening on {server.url} (seed {config.seed}, scale {config.scale}, "
            f"{'manual clock' if config.manual_clock else f'speed {config.speed}x'}, "
            f"rate limits {'on' if config.rate_limits else 'off'})",
            flush=True,
        )

    try:
        return asyncio.run(serve_until_signal([server], ready=ready))
    except ValueError as exc:  # a scenario naming a collector the world does not have
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
