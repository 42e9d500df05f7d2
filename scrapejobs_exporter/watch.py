"""`scrapejobs-exporter watch KIND ID`: follow one target until it ends, with a progress line.

The target is polled through the same provider clients as the exporter (retries, budget, 429
pauses, circuit breaker) and tracked in a one-target `Store`, so status, ETA and stall detection
are the exporter's own. `--json` prints the `/api/targets` row of every poll instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TextIO

from scrapejobs_exporter.config import Config
from scrapejobs_exporter.exporter import build_providers
from scrapejobs_exporter.kinds import BY_COMMAND, Kind
from scrapejobs_exporter.landing import SUCCEEDED, progress_text, target_row
from scrapejobs_exporter.lifecycle import EXIT_FAILED, EXIT_OK, EXIT_USAGE, stop_on_signals
from scrapejobs_exporter.providers import Providers
from scrapejobs_exporter.providers.aitronos import AitronosJob
from scrapejobs_exporter.providers.brightdata import AiFlow, StudioJob
from scrapejobs_exporter.providers.http import ApiError
from scrapejobs_exporter.store import Model, Store, Target
from scrapejobs_exporter.telemetry import Telemetry

__all__ = [
    "KINDS",
    "WatchOptions",
    "check_id",
    "elapsed_seconds",
    "follow",
    "run_watch",
    "watch",
]

# The command's KIND -> the kind's declaration. An AI flow is named by its collector.
KINDS: dict[str, Kind] = BY_COMMAND
MAX_FAILURES = 5  # polls in a row that fail (after the client's own retries) before giving up
NO_FLOW_POLLS = 5  # polls an AI flow may take to show up after a trigger
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}")  # as config.py accepts ids
BAR_WIDTH = 24


@dataclass(frozen=True, slots=True)
class WatchOptions:
    kind: str  # a key of KINDS
    target_id: str
    interval: float = 3.0
    json: bool = False
    expect_ai_job: str | None = None  # after a trigger: wait until the progress names this flow


def check_id(value: str, what: str = "id") -> str | None:
    """A usage problem with an id (it goes into a URL path), or None."""
    if _ID.fullmatch(value):
        return None
    return f"invalid {what} {value!r}: letters, digits, '_', '.', '-' only"


def check_provider(config: Config, kind: str) -> str | None:
    provider = KINDS[kind].provider
    if getattr(config, provider) is None:
        return f"the config has no `{provider}` section, needed to watch a {kind}"
    return None


def run_watch(config: Config, options: WatchOptions, out: TextIO = sys.stdout) -> int:
    """The command: usage checks, then poll until the target ends or Ctrl-C."""
    problem = check_id(options.target_id) or check_provider(config, options.kind)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(follow(config, options, out))


async def follow(config: Config, options: WatchOptions, out: TextIO) -> int:
    """Build the clients from the config, watch, close them."""
    providers = build_providers(config, Telemetry())
    try:
        with stop_on_signals() as stop:  # Ctrl-C ends the watch between polls, cleanly
            return await watch(providers, config, options, out, stop)
    finally:
        await providers.aclose()


async def watch(
    providers: Providers,
    config: Config,
    options: WatchOptions,
    out: TextIO,
    stop: asyncio.Event,
    clock: Callable[[], float] = time.time,
) -> int:
    """Poll every `interval` until the target ends; the exit code says how it ended."""
    kind = KINDS[options.kind]
    store = Store(stall=config.stall)
    target = store.add(kind.provider, kind.name, options.target_id, now=clock())
    show = JsonLines(out, started=clock()) if options.json else ProgressLine(out, started=clock())
    failures = waiting = 0
    while True:
        try:
            model = await _unless_stopped(kind.fetch(providers, target), stop)
        except ApiError as exc:
            Store.record_failure(target, exc, clock())
            failures += 1
            show.update(target, clock())
            if _hopeless(exc) or failures >= MAX_FAILURES:
                return show.finish(target, f"giving up: {exc.short}", EXIT_FAILED)
        else:
            if model is None:
                return show.finish(target, "interrupted", EXIT_FAILED)
            failures = 0
            if _not_started(model, options.expect_ai_job):
                waiting += 1
                if waiting >= NO_FLOW_POLLS:
                    return show.finish(target, "no AI flow found for this collector", EXIT_FAILED)
            else:
                store.observe(target, model, clock(), complete=True)
            show.update(target, clock())
            if target.model is not None and _ended(target.model):
                return show.finish(target, None, _exit_code(target.model))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=options.interval)
            return show.finish(target, "interrupted", EXIT_FAILED)


async def _unless_stopped(fetch: Awaitable[Model], stop: asyncio.Event) -> Model | None:
    """The poll's result, or None when Ctrl-C came first (the request is then abandoned)."""
    poll = asyncio.ensure_future(fetch)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait((poll, stopped), return_when=asyncio.FIRST_COMPLETED)
    if poll.done():
        stopped.cancel()
        return poll.result()
    poll.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await poll
    return None


def _hopeless(error: ApiError) -> bool:
    """A 4xx other than 429 (unknown id, bad credentials) will not change by polling again."""
    return error.reason == "http_4xx"


def _not_started(model: Model, expect: str | None) -> bool:
    """An AI flow not visible yet: `{}`, or (after a trigger) still the collector's last one."""
    if not isinstance(model, AiFlow):
        return False
    if model.status is None:
        return True
    return expect is not None and model.ai_job_id is not None and model.ai_job_id != expect


def _ended(model: Model) -> bool:
    # An AI flow at the approval gate will not move without a person: stop watching there.
    return model.terminal or model.status == "pending_answer"


def _exit_code(model: Model) -> int:
    return EXIT_OK if model.status in SUCCEEDED else EXIT_FAILED


# --- output ----------------------------------------------------------------------------------


class JsonLines:
    """One `/api/targets` row per poll, plus `elapsed_seconds` and, at the end, `exit_code`."""

    def __init__(self, out: TextIO, started: float) -> None:
        self.out = out
        self.started = started

    def update(self, target: Target, now: float) -> None:
        elapsed = elapsed_seconds(target.model, now, self.started)
        self._write({**target_row(target, now), "elapsed_seconds": round(elapsed, 1)})

    def finish(self, target: Target, note: str | None, code: int) -> int:
        if note is not None:
            self._write({"event": "end", "note": note, "exit_code": code})
        else:
            self._write({"event": "end", "status": _status(target), "exit_code": code})
        return code

    def _write(self, row: dict[str, Any]) -> None:
        self.out.write(json.dumps(row, separators=(",", ":")) + "\n")
        self.out.flush()


class ProgressLine:
    """A progress line redrawn in place on a terminal; piped, a new line whenever it changes."""

    def __init__(self, out: TextIO, started: float) -> None:
        self.out = out
        self.started = started
        self.tty = out.isatty()
        self._last = ""

    def update(self, target: Target, now: float) -> None:
        line = describe(target_row(target, now), elapsed_seconds(target.model, now, self.started))
        if self.tty:
            self.out.write("\r\x1b[2K" + line)
        elif line != self._last:
            self.out.write(line + "\n")
        self._last = line
        self.out.flush()

    def finish(self, target: Target, note: str | None, code: int) -> int:
        if self.tty:
            self.out.write("\n")
        verdict = note or _verdict(target, code)
        self.out.write(f"{target.target_id}: {verdict}\n")
        self.out.flush()
        return code


def _status(target: Target) -> str:
    return "not polled" if target.model is None else str(target.model.status or "none")


def _verdict(target: Target, code: int) -> str:
    status = _status(target)
    if status == "pending_answer":
        return "pending_answer: the AI flow waits for a user's approval"
    error = getattr(target.model, "error", None) or getattr(target.model, "error_message", None)
    reason = getattr(target.model, "completion_reason", None)
    detail = f" ({error or reason})" if error or reason else ""
    return f"{status}{detail}" + ("" if code == EXIT_OK else " - exit 1")


def elapsed_seconds(model: Model | None, now: float, watching_since: float) -> float:
    """The job's own time since it started, the same on every line: a Studio job from
    `started` (until it finishes: `job_time`), an Aitronos job from `created_at` (until
    `completed_at`). Kinds without times (snapshots, AI flows), and a job not started yet,
    count from when `watch` began. Never negative, even if the provider's clock is ahead."""
    start = end = None
    if isinstance(model, StudioJob) and model.started is not None:
        start = model.started
        if model.job_time is not None and model.terminal:
            return max(0.0, model.job_time)
        end = model.finished if model.terminal else None
    elif isinstance(model, AitronosJob) and model.created is not None:
        start = model.created
        end = model.completed if model.terminal else None
    if start is None:
        return max(0.0, now - watching_since)
    return max(0.0, (end if end is not None else now) - start)


def describe(row: dict[str, Any], elapsed: float) -> str:
    """`j_1  running  [#####-----]  12 / 40 pages  310 items  elapsed 1m05s  ETA 2m10s`."""
    parts = [row["id"], row["status"] or "not polled"]
    if row["step"]:
        parts.append(f"step {row['step']}")
    progress = row["progress"]
    if progress is not None:
        parts.append(_bar(progress["ratio"]))
        parts.append(_progress_text(progress))
    if row["items"] is not None:
        parts.append(f"{row['items']:,} items")
    parts.append(f"elapsed {_seconds(elapsed)}")
    if row["eta_seconds"] is not None and not row["final"]:
        parts.append(f"ETA {_seconds(row['eta_seconds'])}")
    if row["stalled"]:
        parts.append("STALLED")
    if row["last_error"]:
        parts.append(f"error: {row['last_error']['message']}")
    return "  ".join(parts)


def _bar(ratio: float | None) -> str:
    if ratio is None:
        return "[" + "~" * BAR_WIDTH + "]"
    filled = round(ratio * BAR_WIDTH)
    return "[" + "#" * filled + "-" * (BAR_WIDTH - filled) + "]"


def _progress_text(progress: dict[str, Any]) -> str:
    """The landing page's wording, with the share done spelt out for a terminal."""
    done, total, unit = progress["done"], progress["total"], progress["unit"]
    if unit == "percent":
        return progress_text(progress)
    if total is None:
        return f"{progress_text(progress)} done"
    return f"{progress_text(progress)} ({done / total:.0%})" if total else f"0 {unit}"


def _seconds(value: float) -> str:
    seconds = round(value)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{seconds:02d}s"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
