"""The budget-bound scenario (issue 13): the real exporter against the enforcing simulator.

A busy world (`simulate --seed 7 --speed 2 --scale 1000 --running-fraction 0.2`, real clock,
per-account rate limits ON) and the exporter as a user runs it (`python -m scrapejobs_exporter
run`, everything discovered, `poll_interval: 30s`, default budgets), one process or several
shards. Every few seconds the runner reads the simulator's ground truth
(`/_sim/state?compact=1`) and every exporter's `/metrics`, and measures what a user would see:

- count lag: how long ago the truth last had the count the finished counters show (the oldest
  uncounted finish), and the deficit in jobs, per provider;
- missed / counted twice: after the run the world is frozen (`POST /_sim/speed 0`) and the
  exporters get a catch-up period; then the counters must equal the truth;
- visible: the share of running jobs older than a minute that have a series on `/metrics`;
- stale running: the share of the jobs shown running that finished more than a minute ago;
- value age: sample time minus `scrapejobs_exporter_target_last_success_timestamp_seconds`,
  over the jobs running in truth;
- requests in the busiest 60 s and 429s, as the simulator counted them.

Times are wall-clock seconds (the world runs at `--speed`; a simulated duration is divided by
it). Each figure is set against the ideal for the world: with R running jobs, list pages P per
sweep (at the largest page each endpoint allows) swept once per `poll_interval`, and a budget
B per minute (Aitronos: its daily quota spread over the day), D = B - P * 60 / poll_interval
detail requests per minute are left, and a running job's values can be kept at most
max(poll_interval, R / D minutes) old.
"""

from __future__ import annotations

import math
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench.common import child_env, percentile
from bench.sim import Simulator, sim_get, sim_post
from scrapejobs_exporter.simulator import DEFAULT_AITRONOS_KEY, DEFAULT_BRIGHTDATA_TOKEN

# The world and the exporter settings of issue 13.
SEED, SPEED, SCALE, RUNNING_FRACTION = 7, 2.0, 1_000, 0.2
POLL_INTERVAL = 30.0
BUDGET_PER_MINUTE = 100  # the exporter's default, and the simulator's account limits
DAILY_AITRONOS = 10_000  # Aitronos Standard, the exporter's default daily quota
# What each provider's budget sustains a minute: Aitronos' daily quota spread over the day
# (less the burst the exporter keeps, a 288th of it) is far below its 100 a minute.
SUSTAINED = {
    "brightdata": float(BUDGET_PER_MINUTE),
    "aitronos": min(BUDGET_PER_MINUTE, (DAILY_AITRONOS - DAILY_AITRONOS // 288) / 1440),
}
# warm_up: visible, stale and value age are measured after it (the first list sweeps).
FULL = {"seconds": 600.0, "catch_up": 120.0, "sample_every": 5.0, "scale": SCALE, "warm_up": 60.0}
QUICK = {"seconds": 30.0, "catch_up": 15.0, "sample_every": 3.0, "scale": 200, "warm_up": 10.0}
OLDER_THAN = 60.0  # "running jobs older than a minute", "finished more than a minute ago"
START_TIMEOUT = 60.0

# Done when (issue 13).
TARGET_LAG_S = 60.0
TARGET_VISIBLE = 95.0
TARGET_STALE = 2.0
PAGE_LIMITS = {"dca_jobs": 500, "snapshots": 5000, "aitronos": 100}
TERMINAL = frozenset(
    {"done", "failed", "cancelled", "canceled", "ready", "completed", "pending_answer"}
)
PROVIDERS = ("brightdata", "aitronos")
LAST_SUCCESS = "scrapejobs_exporter_target_last_success_timestamp_seconds"


@dataclass(frozen=True)
class Kind:
    """How one kind of object shows in the truth and on /metrics."""

    provider: str
    status_family: str  # a state set with one series per status
    id_label: str
    finished_counter: str  # sample name of the counter of finished objects
    per_job: bool = True  # counted in visible / stale / value age


KINDS = {
    "studio_jobs": Kind(
        "brightdata", "brightdata_job_status", "job_id", "brightdata_collector_jobs_finished_total"
    ),
    "snapshots": Kind(
        "brightdata",
        "brightdata_snapshot_status",
        "snapshot_id",
        "brightdata_dataset_snapshots_finished_total",
    ),
    # Labelled by collector (its latest flow): counted, but not a per-job series.
    "ai_flows": Kind(
        "brightdata",
        "brightdata_ai_flow_status",
        "collector",
        "brightdata_ai_flows_finished_total",
        per_job=False,
    ),
    "aitronos_jobs": Kind(
        "aitronos", "aitronos_job_status", "job_id", "aitronos_jobs_finished_total"
    ),
}


def exporter_config(url: str, datasets: list[str]) -> str:
    return f"""poll_interval: {POLL_INTERVAL:g}s
brightdata:
  api_token: {DEFAULT_BRIGHTDATA_TOKEN}
  base_url: {url}
  collectors: all
  datasets: [{", ".join(datasets)}]
  ai_flows: all
aitronos:
  api_key: {DEFAULT_AITRONOS_KEY}
  base_url: {url}
  discover: true
"""


# ----- what /metrics shows --------------------------------------------------------


@dataclass
class Shown:
    """What the exporters' /metrics show together (shards summed)."""

    counted: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    status: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    last_success: dict[str, float] = field(default_factory=dict)

    def add(self, text: str) -> None:
        counters = {k.finished_counter: name for name, k in KINDS.items()}
        states = {k.status_family: (name, k) for name, k in KINDS.items()}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in counters:
                    self.counted[counters[sample.name]] += sample.value
                elif sample.name in states and sample.value == 1:
                    name, kind = states[sample.name]
                    labels = sample.labels
                    # The text format names the state label `status`; OpenMetrics, the family.
                    status = labels.get("status", labels.get(sample.name, "unknown"))
                    self.status[name][labels[kind.id_label]] = status
                elif sample.name == LAST_SUCCESS and "target" in sample.labels:
                    self.last_success[sample.labels["target"]] = sample.value


def fetch_metrics(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        body: bytes = response.read()
    return body.decode()


# ----- the truth ------------------------------------------------------------------


@dataclass
class Truth:
    now: float
    running: dict[str, dict[str, dict[str, Any]]]
    finished: dict[str, dict[str, dict[str, Any]]]

    @classmethod
    def fetch(cls, url: str) -> Truth:
        state = sim_get(url, "/_sim/state?compact=1", timeout=60)
        return cls(state["now"], state["running"], state["finished_since_start"])


@dataclass
class World:
    """What the ideal is computed from: the world at the start."""

    datasets: list[str]
    followed_flows: set[str]  # collectors whose AI flows `ai_flows: all` follows (inactive)
    list_pages: dict[str, int]  # per provider, one sweep at the largest pages

    @classmethod
    def read(cls, url: str) -> World:
        state = sim_get(url, "/_sim/state", timeout=120)
        bd = state["brightdata"]
        per_collector: dict[str, int] = defaultdict(int)
        for job in bd["jobs"]:
            per_collector[job["collector"]] += 1
        per_dataset: dict[str, int] = defaultdict(int)
        for snap in bd["snapshots"]:
            per_dataset[snap["dataset_id"]] += 1
        inactive = {c["id"] for c in bd["collectors"] if not c.get("active", True)}
        brightdata_pages = (
            1  # collectors_list
            + sum(
                max(1, math.ceil(per_collector.get(c["id"], 0) / PAGE_LIMITS["dca_jobs"]))
                for c in bd["collectors"]
            )
            + sum(max(1, math.ceil(n / PAGE_LIMITS["snapshots"])) for n in per_dataset.values())
            + len(inactive)  # an AI flow has no list: one progress call per followed collector
        )
        aitronos_pages = max(1, math.ceil(len(state["aitronos"]["jobs"]) / PAGE_LIMITS["aitronos"]))
        return cls(
            sorted(per_dataset),
            inactive,
            {"brightdata": brightdata_pages, "aitronos": aitronos_pages},
        )


# ----- one sample -----------------------------------------------------------------


@dataclass
class Tally:
    """Per provider, pooled over the samples."""

    lags: list[float] = field(default_factory=list)
    deficits: list[float] = field(default_factory=list)
    running: list[int] = field(default_factory=list)
    eligible: int = 0
    visible: int = 0
    worst_visible: float | None = None
    shown_running: int = 0
    stale: int = 0
    worst_stale: float | None = None
    ages: list[float] = field(default_factory=list)


def counted_truth(truth: Truth, world: World, since: float) -> dict[str, list[float]]:
    """Finish times (simulated) of what a correct exporter counts, per provider, sorted:
    everything that finished after the exporter started (`since`)."""
    out: dict[str, list[float]] = {p: [] for p in PROVIDERS}
    for name, kind in KINDS.items():
        for row in truth.finished.get(name, {}).values():
            if row["finished"] <= since:
                continue
            if name == "ai_flows" and (
                row.get("collector") not in world.followed_flows
                or row["status"] not in ("done", "failed")
            ):
                continue
            out[kind.provider].append(row["finished"])
    for times in out.values():
        times.sort()
    return out


def counted_by_provider(shown: Shown) -> dict[str, float]:
    out = dict.fromkeys(PROVIDERS, 0.0)
    for name, kind in KINDS.items():
        out[kind.provider] += shown.counted.get(name, 0.0)
    return out


def measure_sample(
    truth: Truth,
    shown: Shown,
    at: float,
    world: World,
    since: float,
    speed: float,
    tallies: dict[str, Tally],
    warm: bool,
) -> dict[str, Any]:
    finishes = counted_truth(truth, world, since)
    counted = counted_by_provider(shown)
    sample: dict[str, Any] = {"t": round(at, 2), "sim_now": truth.now}
    for provider in PROVIDERS:
        tally, times, count = tallies[provider], finishes[provider], int(counted[provider])
        lag = 0.0 if count >= len(times) else max(0.0, (truth.now - times[count]) / speed)
        tally.lags.append(lag)
        tally.deficits.append(len(times) - count)
        sample[provider] = {"truth": len(times), "counted": count, "lag_s": round(lag, 1)}
    finished_at = {
        object_id: row["finished"]
        for rows in truth.finished.values()
        for object_id, row in rows.items()
    }
    per_provider: dict[str, dict[str, int]] = {
        p: {"eligible": 0, "visible": 0, "running": 0, "shown_running": 0, "stale": 0}
        for p in PROVIDERS
    }
    for name, kind in KINDS.items():
        if not kind.per_job:
            continue
        counts = per_provider[kind.provider]
        shown_status = shown.status.get(name, {})
        for object_id, row in truth.running.get(name, {}).items():
            counts["running"] += 1
            if (truth.now - row["created"]) / speed > OLDER_THAN:
                counts["eligible"] += 1
                counts["visible"] += object_id in shown_status
            stamp = shown.last_success.get(object_id)
            if stamp is not None and warm:
                tallies[kind.provider].ages.append(max(0.0, at - stamp))
        for object_id, status in shown_status.items():
            if status in TERMINAL or status == "unknown":
                continue
            counts["shown_running"] += 1
            ended = finished_at.get(object_id)
            if ended is not None and (truth.now - ended) / speed > OLDER_THAN:
                counts["stale"] += 1
    for provider, counts in per_provider.items():
        tally = tallies[provider]
        tally.running.append(counts["running"])
        sample[provider].update(counts)
        if not warm:
            continue
        tally.eligible += counts["eligible"]
        tally.visible += counts["visible"]
        tally.shown_running += counts["shown_running"]
        tally.stale += counts["stale"]
        if counts["eligible"]:
            share = 100.0 * counts["visible"] / counts["eligible"]
            tally.worst_visible = min(share, tally.worst_visible or 100.0)
        if counts["shown_running"]:
            share = 100.0 * counts["stale"] / counts["shown_running"]
            tally.worst_stale = max(share, tally.worst_stale or 0.0)
    return sample


# ----- the run --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Exporters:
    """`shards` exporter processes (`--shard-index i --shard-count n` when n > 1)."""

    def __init__(self, config: Path, shards: int, logs: Path) -> None:
        self.urls: list[str] = []
        self._processes: list[subprocess.Popen[bytes]] = []
        self._logs = []
        for index in range(shards):
            port = free_port()
            args = [sys.executable, "-m", "scrapejobs_exporter", "run", "--config", str(config)]
            args += ["--web.listen-address", f"127.0.0.1:{port}", "--log-level", "warning"]
            if shards > 1:
                args += ["--shard-index", str(index), "--shard-count", str(shards)]
            log = open(logs / f"exporter-{index}.log", "wb")  # noqa: SIM115 - closed in stop()
            self._logs.append(log)
            self._processes.append(
                subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=child_env())
            )
            self.urls.append(f"http://127.0.0.1:{port}/metrics")

    def wait_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        for url, process in zip(self.urls, self._processes, strict=True):
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"exporter exited with {process.returncode} ({url})")
                try:
                    fetch_metrics(url)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)

    def shown(self) -> Shown:
        shown = Shown()
        for url in self.urls:
            shown.add(fetch_metrics(url))
        return shown

    def stop(self) -> None:
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for log in self._logs:
            log.close()


def run_scenario(shards: int, quick: bool, log: Any) -> dict[str, Any]:
    plan = QUICK if quick else FULL
    sim = Simulator(
        int(plan["scale"]),
        seed=SEED,
        running_fraction=RUNNING_FRACTION,
        clock="real",
        speed=SPEED,
        rate_limits=True,
    )
    tallies = {p: Tally() for p in PROVIDERS}
    samples: list[dict[str, Any]] = []
    with sim, tempfile.TemporaryDirectory(prefix="bench-budget-") as tmp:
        world = World.read(sim.url)
        config = Path(tmp) / "exporter.yml"
        config.write_text(exporter_config(sim.url, world.datasets))
        # The exporters start watching now, on the provider's clock (the world's, which runs
        # `speed` times faster than ours): what they count finished after it.
        since = Truth.fetch(sim.url).now
        exporters = Exporters(config, shards, Path(tmp))
        started = time.monotonic()
        try:
            exporters.wait_serving()
            end = started + plan["seconds"]
            while (now := time.monotonic()) < end:
                truth = Truth.fetch(sim.url)
                shown, at = exporters.shown(), time.time()
                warm = now - started >= plan["warm_up"]
                samples.append(measure_sample(truth, shown, at, world, since, SPEED, tallies, warm))
                time.sleep(max(0.0, plan["sample_every"] - (time.monotonic() - now)))
            log(f"    {shards} exporter(s): {len(samples)} samples; world frozen, catching up")
            sim_post(sim.url, "/_sim/speed", {"speed": 0})
            time.sleep(plan["catch_up"])
            truth = Truth.fetch(sim.url)
            final_shown = exporters.shown()
            final_counted = counted_by_provider(final_shown)
            limits = sim_get(sim.url, "/_sim/state?compact=1")["rate_limits"]
        finally:
            exporters.stop()
        exporter_log = (Path(tmp) / "exporter-0.log").read_text(errors="replace")[-3000:]
    final_truth = counted_truth(truth, world, since)
    result = summarise(
        shards, plan, world, tallies, samples, final_truth, final_counted, limits, exporter_log
    )
    result["quick"] = quick
    # Per kind, for finding where a miss comes from: what finished after `since`, and what the
    # exporters counted (AI flows of collectors they do not follow included in the truth).
    result["per_kind"] = {
        name: {
            "finished": sum(
                1 for row in truth.finished.get(name, {}).values() if row["finished"] > since
            ),
            "counted": final_shown.counted.get(name, 0.0),
        }
        for name in KINDS
    }
    return result


def _p(values: list[float], q: float) -> float | None:
    return round(percentile(values, q), 1) if values else None


def summarise(
    shards: int,
    plan: dict[str, float],
    world: World,
    tallies: dict[str, Tally],
    samples: list[dict[str, Any]],
    final_truth: dict[str, list[float]],
    final_counted: dict[str, float],
    limits: dict[str, Any],
    exporter_log: str,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "shards": shards,
        "plan": plan,
        "world": {
            "seed": SEED,
            "speed": SPEED,
            "scale": plan["scale"],
            "running_fraction": RUNNING_FRACTION,
        },
        "poll_interval": POLL_INTERVAL,
        "samples": samples,
        "exporter_log_tail": exporter_log,
        "providers": {},
    }
    for provider in PROVIDERS:
        tally = tallies[provider]
        truth, counted = len(final_truth[provider]), int(final_counted[provider])
        running = statistics.fmean(tally.running) if tally.running else 0.0
        pages = world.list_pages[provider]
        detail_left = SUSTAINED[provider] - pages * 60.0 / POLL_INTERVAL
        ideal_age = (
            max(POLL_INTERVAL, 60.0 * running / detail_left) if detail_left > 0 else math.inf
        )
        served = limits[provider]
        out["providers"][provider] = {
            "count_lag_max_s": round(max(tally.lags), 1) if tally.lags else None,
            "count_lag_p90_s": _p(tally.lags, 90),
            "count_deficit_max": max(tally.deficits) if tally.deficits else None,
            "count_deficit_p90": _p(tally.deficits, 90),
            "final_truth": truth,
            "final_counted": counted,
            "missed": max(0, truth - counted),
            "counted_twice": max(0, counted - truth),
            "visible_pct": round(100.0 * tally.visible / tally.eligible, 1)
            if tally.eligible
            else None,
            "visible_worst_sample_pct": _round(tally.worst_visible),
            "stale_running_pct": round(100.0 * tally.stale / tally.shown_running, 1)
            if tally.shown_running
            else None,
            "stale_running_worst_sample_pct": _round(tally.worst_stale),
            "value_age_p50_s": _p(tally.ages, 50),
            "value_age_p90_s": _p(tally.ages, 90),
            "value_age_max_s": round(max(tally.ages), 1) if tally.ages else None,
            "busiest_60s": served["busiest_60s"],
            "served": served["served"],
            "rate_limited": served["rate_limited"],
            "blocked": served.get("blocked", False),
            "ideal": {
                "running": round(running, 1),
                "list_pages_per_sweep": pages,
                "detail_per_minute": detail_left,
                "value_age_max_s": round(ideal_age, 1),
                "value_age_p50_s": round(ideal_age / 2, 1),
                "count_lag_max_s": POLL_INTERVAL,
            },
        }
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# ----- rows -----------------------------------------------------------------------


@dataclass
class BudgetRow:
    metric: str
    provider: str
    shards: int
    ours: float | None
    ideal: float | None
    target: str
    met: bool | None


NAMES = {"brightdata": "Bright Data", "aitronos": "Aitronos"}


def rows(results: list[dict[str, Any]]) -> list[BudgetRow]:
    """Rows of every variant; a smoke run's (`quick`) have no verdict."""
    out: list[BudgetRow] = []
    for result in results:
        for provider, r in result["providers"].items():
            for metric, ours, ideal, target, met in _provider_rows(r):
                verdict = None if result.get("quick") else met
                out.append(
                    BudgetRow(
                        metric, NAMES[provider], result["shards"], ours, ideal, target, verdict
                    )
                )
    return out


def _provider_rows(
    r: dict[str, Any],
) -> list[tuple[str, float | None, float | None, str, bool | None]]:
    """(metric, ours, ideal, target, met) for one provider of one variant."""
    ideal = r["ideal"]
    lag, visible, stale = r["count_lag_max_s"], r["visible_pct"], r["stale_running_pct"]
    busiest, limited = r["busiest_60s"], r["rate_limited"]
    return [
        ("Count lag max (s)", lag, ideal["count_lag_max_s"], f"<= {TARGET_LAG_S:g} s",
         lag is not None and lag <= TARGET_LAG_S),
        ("Count lag p90 (s)", r["count_lag_p90_s"], ideal["count_lag_max_s"], "", None),
        ("Count deficit max (jobs)", r["count_deficit_max"], 0, "", None),
        ("Finished missed (after catch-up)", r["missed"], 0, "0", r["missed"] == 0),
        ("Finished counted twice", r["counted_twice"], 0, "0", r["counted_twice"] == 0),
        ("Running > 1 min visible (%)", visible, 100, f">= {TARGET_VISIBLE:g}%",
         visible is not None and visible >= TARGET_VISIBLE),
        ("Shown running, finished > 1 min ago (%)", stale, 0, f"<= {TARGET_STALE:g}%",
         stale is not None and stale <= TARGET_STALE),
        ("Value age p50 (s)", r["value_age_p50_s"], ideal["value_age_p50_s"], "", None),
        ("Value age p90 (s)", r["value_age_p90_s"], None, "", None),
        ("Value age max (s)", r["value_age_max_s"], ideal["value_age_max_s"], "", None),
        ("Requests in the busiest 60 s", busiest, BUDGET_PER_MINUTE, f"<= {BUDGET_PER_MINUTE}",
         busiest <= BUDGET_PER_MINUTE),
        ("429s answered by the simulator", limited, 0, "0", limited == 0 and not r["blocked"]),
    ]  # fmt: skip


def rows_json(budget_rows: list[BudgetRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in budget_rows]


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.1f}"


def markdown_table(budget_rows: list[BudgetRow]) -> str:
    header = ("Metric", "Provider", "Exporters", "Ours", "Ideal", "Target", "Met")
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in budget_rows:
        met = "" if r.met is None else ("yes" if r.met else "**NO**")
        cells = (r.metric, r.provider, str(r.shards), _fmt(r.ours), _fmt(r.ideal), r.target, met)
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def text_table(budget_rows: list[BudgetRow]) -> str:
    return markdown_table(budget_rows).replace("**", "")


def markdown_section(results: list[dict[str, Any]], budget_rows: list[BudgetRow]) -> list[str]:
    if not results:
        return []
    first = results[0]
    world, plan = first["world"], first["plan"]
    ideal = {p: first["providers"][p]["ideal"] for p in PROVIDERS}
    met = [r.met for r in budget_rows if r.met is not None]
    return [
        "## Budget-bound scenario",
        "",
        f"World `simulate --seed {world['seed']} --speed {world['speed']:g} --scale "
        f"{world['scale']} --running-fraction {world['running_fraction']:g}` on the real clock, "
        f"per-account rate limits on (Bright Data {BUDGET_PER_MINUTE}/min and the IP block, "
        "Aitronos Standard); the exporter process(es) with `collectors: all`, every dataset, "
        f"`ai_flows: all`, `aitronos.discover: true`, `poll_interval: {POLL_INTERVAL:g}s` and "
        f"the default budgets, for {plan['seconds']:g} s, sampled every "
        f"{plan['sample_every']:g} s; then the world is frozen and the exporters get "
        f"{plan['catch_up']:g} s to catch up before missed / counted twice are read. "
        f"Visible, stale and value age leave out the first {plan['warm_up']:g} s. Times are wall "
        "seconds (simulated durations divided by the speed).",
        "",
        "Ideal: budgets of "
        f"{SUSTAINED['brightdata']:g} / {SUSTAINED['aitronos']:.3g} requests a minute (Aitronos: "
        f"its {DAILY_AITRONOS:,} a day spread over the day); "
        "list pages per sweep at the largest page sizes (Bright Data "
        f"{ideal['brightdata']['list_pages_per_sweep']}, Aitronos "
        f"{ideal['aitronos']['list_pages_per_sweep']}), swept every poll_interval, leave "
        f"D = {ideal['brightdata']['detail_per_minute']:g} / "
        f"{ideal['aitronos']['detail_per_minute']:g} detail requests per minute for "
        f"R = {ideal['brightdata']['running']:g} / {ideal['aitronos']['running']:g} running "
        "jobs: value age max = max(poll_interval, R/D minutes), p50 half of it; count lag "
        "<= one poll_interval.",
        "",
        markdown_table(budget_rows),
        "",
        f"Budget-bound targets met: {sum(m is True for m in met)} of {len(met)}.",
        "",
    ]


def measure(shard_counts: list[int], quick: bool, log: Any) -> list[dict[str, Any]]:
    results = []
    for shards in shard_counts:
        plan = QUICK if quick else FULL
        log(
            f"budget-bound: {shards} exporter(s), {plan['seconds']:g} s + "
            f"{plan['catch_up']:g} s catch-up, scale {plan['scale']:g}"
        )
        results.append(run_scenario(shards, quick, log))
    return results
