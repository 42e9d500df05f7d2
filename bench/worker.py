"""One measured process: `python -m bench.worker ours|baseline --mode scale|throughput ...`.

Each implementation runs in its own process so the RSS it reports is its own alone. The result
is one tagged JSON line on stdout (`bench.common.emit`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from bench import measure_baseline, measure_ours
from bench.common import emit
from bench.sim import sim_get


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    parser.add_argument("impl", choices=("ours", "baseline"))
    parser.add_argument("--mode", choices=("scale", "throughput"), default="scale")
    parser.add_argument("--sim", required=True, help="simulator URL (loopback)")
    parser.add_argument("--datasets", default="", help="comma-separated dataset ids")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--cycles", type=int, default=4, help="poll cycles in all")
    parser.add_argument("--advance", type=float, default=60.0, help="simulated s between cycles")
    parser.add_argument("--renders", type=int, default=5)
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--scrapes-during-render", type=int, default=100)
    parser.add_argument("--throughput-jobs", type=int, default=3000)
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    datasets = [d for d in args.datasets.split(",") if d]
    if args.mode == "throughput":
        state = sim_get(args.sim, "/_sim/state")
        ids = [j["id"] for j in state["brightdata"]["jobs"]][: args.throughput_jobs]
        del state
        if args.impl == "ours":
            return await measure_ours.measure_throughput(
                args.sim, ids, concurrency=args.concurrency, cycles=args.cycles
            )
        return await measure_baseline.measure_throughput(
            args.sim, ids, concurrency=args.concurrency, cycles=args.cycles
        )
    if args.impl == "ours":
        return await measure_ours.measure_scale(
            args.sim,
            datasets,
            concurrency=args.concurrency,
            steady_cycles=max(1, args.cycles - 1),
            advance=args.advance,
            renders=args.renders,
            scrapes=args.scrapes,
            scrapes_during_render=args.scrapes_during_render,
        )
    return await measure_baseline.measure_scale(
        args.sim,
        datasets,
        concurrency=args.concurrency,
        cycles=args.cycles,
        advance=args.advance,
        renders=args.renders,
        scrapes=args.scrapes,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    emit(asyncio.run(run(args)))  # the event loop the exporter's CLI runs on
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
