"""`python -m bench`: start the simulator, run both implementations per scale, report.

For each scale a fresh simulator (manual clock, 2% running, same seed) is started for each
implementation, so both see the same world; each implementation is measured in its own child
process (`bench.worker`). Poll throughput uses another simulator with a 50 ms answer latency and
every job running. The table goes to stdout; `results.json` and `RESULTS.md` to `--out`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import budget, report, statefile
from bench.common import child_env, parse_result
from bench.sim import Simulator, running_counts, sim_get

DEFAULT_SCALES = (1_000, 10_000, 50_000)
# The simulator's --scale N makes N Studio jobs, N/4 snapshots and N/10 Aitronos jobs: 1.35 N
# tracked targets. It is given N / 1.35 so the tracked count is close to the scale asked for.
TARGETS_PER_SIM_SCALE = 1.35
THROUGHPUT_LATENCY = 0.05
CONCURRENCY = 64
SEED = 1
WORKER_TIMEOUT = 900.0


@dataclass(frozen=True)
class Plan:
    """How much of each measurement to do at one scale."""

    ours_cycles: int
    renders: int
    scrapes: int
    scrapes_during_render: int
    baseline_cycles: int
    baseline_renders: int
    baseline_scrapes: int


def plan_for(scale: int, quick: bool) -> Plan:
    if quick:
        return Plan(3, 3, 30, 30, 2, 2, 5)
    if scale <= 2_000:
        return Plan(5, 7, 200, 200, 2, 5, 50)
    if scale <= 20_000:
        return Plan(5, 7, 200, 200, 2, 3, 20)
    # The baseline's scrapes take seconds here: few of them, so the run stays within minutes.
    return Plan(5, 5, 200, 200, 2, 2, 5)


def sim_scale_for(scale: int) -> int:
    return max(10, round(scale / TARGETS_PER_SIM_SCALE))


def run_worker(args: list[str], log: Any) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.worker", *args]
    started = time.monotonic()
    process = subprocess.run(
        command, capture_output=True, text=True, env=child_env(), timeout=WORKER_TIMEOUT
    )
    if process.returncode != 0:
        sys.stderr.write(process.stderr[-5000:])
        raise RuntimeError(f"worker {' '.join(args[:3])} exited with {process.returncode}")
    result = parse_result(process.stdout)
    result["worker_seconds"] = round(time.monotonic() - started, 1)
    log(f"    {args[0]}: done in {result['worker_seconds']:.0f}s")
    return result


def measure_scale(scale: int, quick: bool, log: Any) -> dict[str, Any]:
    plan = plan_for(scale, quick)
    out: dict[str, Any] = {"sim_scale": sim_scale_for(scale), "plan": plan.__dict__}
    for impl in ("ours", "baseline"):
        with Simulator(sim_scale_for(scale), seed=SEED) as sim:
            state = sim_get(sim.url, "/_sim/state")
            datasets = sorted({s["dataset_id"] for s in state["brightdata"]["snapshots"]})
            out["sim_running_at_start"] = running_counts(state)
            del state
            common = ["--sim", sim.url, "--datasets", ",".join(datasets)]
            common += ["--concurrency", str(CONCURRENCY)]
            if impl == "ours":
                extra = [
                    "--cycles",
                    str(plan.ours_cycles),
                    "--renders",
                    str(plan.renders),
                    "--scrapes",
                    str(plan.scrapes),
                    "--scrapes-during-render",
                    str(plan.scrapes_during_render),
                ]
            else:
                extra = [
                    "--cycles",
                    str(plan.baseline_cycles),
                    "--renders",
                    str(plan.baseline_renders),
                    "--scrapes",
                    str(plan.baseline_scrapes),
                ]
            out[impl] = run_worker([impl, "--mode", "scale", *common, *extra], log)
    return out


def measure_throughput(jobs: int, cycles: int, log: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"latency": THROUGHPUT_LATENCY, "jobs": jobs}
    with Simulator(jobs, latency=THROUGHPUT_LATENCY, running_fraction=1.0, seed=SEED) as sim:
        for impl in ("ours", "baseline"):
            args = [impl, "--mode", "throughput", "--sim", sim.url]
            args += ["--concurrency", str(CONCURRENCY), "--cycles", str(cycles)]
            args += ["--throughput-jobs", str(jobs)]
            sim_cpu = sim.cpu_seconds()
            out[impl] = run_worker(args, log)
            # How busy the simulator was while this implementation polled it: near 1.0 means
            # the simulator, not the client, limited the rate.
            busy = sum(r["seconds"] for r in out[impl]["runs"])
            out[impl]["sim_cpu_share"] = round((sim.cpu_seconds() - sim_cpu) / busy, 3)
    return out


def git_state() -> dict[str, Any]:
    """The commit measured, and whether scrapejobs_exporter/ had uncommitted changes."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    return {
        "commit": git("rev-parse", "HEAD"),
        "exporter_dirty": bool(git("status", "--porcelain", "--", "scrapejobs_exporter")),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the exporter against a naive prometheus_client baseline.",
    )
    parser.add_argument(
        "--scales",
        default=None,
        help="comma-separated tracked-job counts (default 1000,10000,50000; --quick: 300)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: tiny scale, few samples, seconds"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="directory for results.json and RESULTS.md (default: bench/)",
    )
    parser.add_argument(
        "--throughput-jobs", type=int, default=None, help="default 3000 (quick 300)"
    )
    parser.add_argument(
        "--only",
        choices=("cost", "budget", "statefile"),
        default=None,
        help="cost: render/scrape/RSS/calls/throughput only; budget: the budget-bound scenario "
        "only; statefile: the state file's cost per cycle only (budget and statefile are merged "
        "into an existing results.json in --out; default: all three; --quick: cost)",
    )
    parser.add_argument(
        "--statefile-jobs",
        default=None,
        help="comma-separated tracked-job counts of the state file rows (default 10000,50000; "
        "--quick: 1000)",
    )
    parser.add_argument(
        "--budget-shards",
        default=None,
        help="comma-separated exporter counts of the budget-bound scenario (default 1,3; "
        "--quick: 1)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.scales:
        scales = [int(s.replace("_", "")) for s in args.scales.split(",") if s.strip()]
    else:
        scales = [300] if args.quick else list(DEFAULT_SCALES)
    tp_jobs = args.throughput_jobs or (300 if args.quick else 3_000)
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    machine = report.machine()
    load_start = report.load_average()
    git_start = git_state()
    cost = args.only in (None, "cost")
    with_budget = args.only == "budget" or (args.only is None and not args.quick)
    with_statefile = args.only == "statefile" or (args.only is None and not args.quick)
    results: dict[str, Any] = {"scales": {}, "throughput": {}}
    before: dict[str, Any] = {}
    previous = args.out / "results.json"
    if not cost and previous.exists():
        # Only the budget-bound scenario or the state file was asked for: keep the cost figures
        # (and the other) measured before,
        # with the machine, commit and date they were measured on.
        before = json.loads(previous.read_text())
        results = before["results"]
        results["scales"] = {int(k): v for k, v in results.get("scales", {}).items()}
    cost_quick = before.get("quick", args.quick)
    for scale in scales if cost else []:
        log(f"scale {scale:,} (simulator --scale {sim_scale_for(scale)})")
        results["scales"][scale] = measure_scale(scale, args.quick, log)
    if cost:
        log(f"poll throughput: {tp_jobs:,} running jobs, {THROUGHPUT_LATENCY * 1000:g} ms latency")
        results["throughput"] = measure_throughput(tp_jobs, 2 if args.quick else 3, log)
    if with_budget:
        shards = args.budget_shards or ("1" if args.quick else "1,3")
        counts = [int(n) for n in shards.split(",") if n.strip()]
        load, commit = report.load_average(), git_state()
        results["budget"] = budget.measure(counts, args.quick, log)
        results["budget_measured"] = {
            "date": machine["date"],
            "git": commit,  # at the start: what was measured
            "load_average": {"start": load, "end": report.load_average()},
        }
    if with_statefile:
        default = "1000" if args.quick else ",".join(map(str, statefile.DEFAULT_JOBS))
        jobs = [int(n.replace("_", "")) for n in (args.statefile_jobs or default).split(",")]
        load, commit = report.load_average(), git_state()
        results["statefile"] = statefile.measure_all(jobs, args.quick, log)
        results["statefile_measured"] = {
            "date": machine["date"],
            "git": commit,
            "load_average": {"start": load, "end": report.load_average()},
        }

    rows = report.evaluate(
        {s: {"ours": r["ours"], "baseline": r["baseline"]} for s, r in results["scales"].items()},
        results["throughput"],
        quick=cost_quick,
    )
    budget_rows = budget.rows(results.get("budget", []))
    elapsed = round(time.monotonic() - started, 1)
    if rows:
        print(report.text_table(rows))
    if budget_rows:
        print("\n" + budget.text_table(budget_rows))
    verdicts = [r.met for r in rows] + [r.met for r in budget_rows]
    print(
        f"\n{len(verdicts)} rows, {sum(m is True for m in verdicts)} targets met, "
        f"{sum(m is False for m in verdicts)} missed; {elapsed:.0f}s"
    )

    args.out.mkdir(parents=True, exist_ok=True)
    document = {
        "quick": cost_quick,
        "scales": scales,
        "elapsed_seconds": elapsed,
        "machine": machine,
        "load_average": {"start": load_start, "end": report.load_average()},
        "git": {"start": git_start, "end": git_state()},
    }
    if before:
        document = {k: before[k] for k in document if k in before}
    document |= {
        "targets": report.rows_json(rows),
        "budget_targets": budget.rows_json(budget_rows),
        "results": results,
    }
    (args.out / "results.json").write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    (args.out / "RESULTS.md").write_text(report.markdown(document, rows))
    log(f"wrote {args.out / 'results.json'} and {args.out / 'RESULTS.md'}")
    return 0
