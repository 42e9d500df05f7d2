"""`scrapejobs-exporter ai-flow trigger`: start a Bright Data AI flow, optionally follow it.

`POST /dca/collectors/{collector}/automate_template` (BD-4) with `{description, urls: [url]}`,
checked first so that a mistake costs no API call. A 429 means three AI flows already run on the
account: it is reported as such and not retried.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from dataclasses import dataclass
from typing import TextIO

from scrapejobs_exporter.config import Config
from scrapejobs_exporter.exporter import build_providers
from scrapejobs_exporter.lifecycle import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from scrapejobs_exporter.providers.http import ApiError
from scrapejobs_exporter.telemetry import Telemetry
from scrapejobs_exporter.watch import WatchOptions, check_id, follow

__all__ = ["TriggerRequest", "run_trigger", "validate"]

MAX_DESCRIPTION = 500
_URL = re.compile(r"https?://[^\s/?#]+[^\s]*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TriggerRequest:
    collector: str
    description: str
    urls: tuple[str, ...]
    watch: bool = False
    interval: float = 3.0
    json: bool = False


def validate(request: TriggerRequest) -> str | None:
    """The first problem with the request, as one line, or None."""
    problem = check_id(request.collector, "collector id")
    if problem:
        return problem
    length = len(request.description)
    if not 1 <= length <= MAX_DESCRIPTION or not request.description.strip():
        return f"--description must be 1-{MAX_DESCRIPTION} characters (got {length})"
    if len(request.urls) != 1:
        return f"exactly one --url is required (got {len(request.urls)})"
    url = request.urls[0]
    if not _URL.fullmatch(url):
        return f"--url must be an http(s) URL such as https://example.com/ (got {url!r})"
    return None


def run_trigger(config: Config, request: TriggerRequest, out: TextIO = sys.stdout) -> int:
    problem = validate(request) or _needs_brightdata(config)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    ai_job_id, code = asyncio.run(_trigger(config, request, out))
    if ai_job_id is None or not request.watch:
        return code
    options = WatchOptions("ai-flow", request.collector, request.interval, request.json, ai_job_id)
    return asyncio.run(follow(config, options, out))


def _needs_brightdata(config: Config) -> str | None:
    if config.brightdata is None:
        return "the config has no `brightdata` section (credentials and base_url come from it)"
    return None


async def _trigger(config: Config, request: TriggerRequest, out: TextIO) -> tuple[str | None, int]:
    providers = build_providers(config, Telemetry())
    assert providers.brightdata is not None  # checked by _needs_brightdata
    try:
        started = await providers.brightdata.trigger_ai_flow(
            request.collector, request.description, request.urls[0]
        )
    except ApiError as exc:
        print(f"error: {_explain(exc)}", file=sys.stderr)
        return None, EXIT_FAILED
    finally:
        await providers.aclose()
    if request.json:
        line = {"id": started.ai_job_id, "queued": started.queued, "collector": request.collector}
        out.write(json.dumps(line, separators=(",", ":")) + "\n")
    else:
        state = "queued (waiting for a free AI slot)" if started.queued else "running"
        out.write(f"{started.ai_job_id}: AI flow started for {request.collector}, {state}\n")
    out.flush()
    return started.ai_job_id, EXIT_OK


def _explain(error: ApiError) -> str:
    if error.status == 429:
        return (
            f"{error.short} - Bright Data runs at most 3 AI flows at once per account; "
            "try again when one has finished"
        )
    return error.short
