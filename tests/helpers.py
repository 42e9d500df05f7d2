"""Shared test helpers: a store filled from the seed bodies, and a reference renderer."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as om_exposition
from prometheus_client.parser import text_string_to_metric_families

from scrapejobs_exporter.exposition import Exposition, render_per_target
from scrapejobs_exporter.metrics import PER_TARGET, base_labels, group_targets, target_labels
from scrapejobs_exporter.providers.aitronos import parse_job_progress
from scrapejobs_exporter.providers.brightdata import (
    parse_ai_flow_progress,
    parse_job_log,
    parse_snapshot_progress,
)
from scrapejobs_exporter.store import Store
from tests.conftest import seed


def seeded_store(now: float = 1_700_000_000.0) -> Store:
    store = Store()
    models = [
        ("brightdata", "job", "j_ma13y9ay1piehrso8r", parse_job_log(seed("job_log_done"), "j")),
        ("brightdata", "snapshot", "s_m4x7enmven8djfqak",
         parse_snapshot_progress(seed("snapshot_progress_running"), "s")),
        ("brightdata", "ai_flow", "c_m9im5n7v82p2y35la",
         parse_ai_flow_progress(seed("ai_flow_progress_done"), "c_m9im5n7v82p2y35la")),
        ("aitronos", "job", "job_abc123", parse_job_progress(seed("aitronos_progress_timeout"), "a")),
    ]  # fmt: skip
    for provider, kind, target_id, model in models:
        Store.record_success(store.add(provider, kind, target_id), model, now)
    return store


class PerTargetReference:
    """The per-target families as client_python metric families, read from the same
    `PER_TARGET` declarations: what the fast renderer (`render_per_target`) must match."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        groups = group_targets(self.store)
        for per in PER_TARGET:
            family = GaugeMetricFamily(per.spec.name, per.spec.help, labels=per.spec.labels)
            for target in groups.get(per.kind, ()):
                subject = target if per.of_target else target.model
                base = base_labels(target) if per.kind else target_labels(target)
                if per.states:
                    current = per.current(subject) if per.current else None
                    if current is not None:
                        for state in per.states:
                            family.add_metric([*base, state], 1.0 if state == current else 0.0)
                elif per.current is not None:
                    label = per.current(subject)
                    if label is not None:
                        family.add_metric([*base, label], 1.0)
                elif per.value is not None:
                    number = per.value(subject)
                    if number is not None:
                        family.add_metric(list(base), float(number))
            if family.samples:
                yield family


class _Page:
    def __init__(self, *collectors: Any) -> None:
        self.collectors = collectors

    def collect(self) -> Iterator[Metric]:
        for collector in self.collectors:
            yield from collector.collect()


def reference_render(
    store: Store, registry: CollectorRegistry | None = None, openmetrics: bool = False
) -> bytes:
    """The whole page rendered by prometheus_client alone, to compare ours against."""
    page = _Page(PerTargetReference(store), *([registry] if registry is not None else []))
    if openmetrics:
        return om_exposition.generate_latest(page)  # type: ignore[no-any-return]
    return generate_latest(page)  # type: ignore[arg-type]


def page(store: Store, registry: CollectorRegistry | None = None) -> Exposition:
    """What /metrics serves for `store` and `registry`: the fast per-target chunks, then the
    registry through client_python."""
    return Exposition.build(registry or CollectorRegistry(), render_per_target(store))


def value(metric: Any, *labels: str) -> float | None:
    """A client_python counter's or gauge's current value for `labels` (None: no such child)."""
    return values(metric).get(labels)


def values(metric: Any) -> dict[tuple[str, ...], float]:
    """Every child of a counter or gauge: label values -> value."""
    return {
        tuple(s.labels.values()): float(s.value)
        for family in metric.collect()
        for s in family.samples
        if s.name in (family.name, family.name + "_total")
    }


def histogram_counts(metric: Any) -> dict[tuple[str, ...], float]:
    """Every child of a client_python histogram: label values -> observation count."""
    return {
        tuple(s.labels.values()): float(s.value)
        for family in metric.collect()
        for s in family.samples
        if s.name == family.name + "_count"
    }


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parsed samples keyed by name and sorted labels."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


class SeedServer:
    """A loopback HTTP server answering the polled endpoints with the docs' example bodies."""

    def __init__(self) -> None:
        import threading

        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._stop: object = None

    def _app(self):  # type: ignore[no-untyped-def]
        from aiohttp import web

        routes = {
            "/dca/log/j_ma13y9ay1piehrso8r": seed("job_log_done"),
            "/datasets/v3/progress/s_m4x7enmven8djfqak": seed("snapshot_progress_running"),
            "/dca/collectors/c_m9im5n7v82p2y35la/automate_template/progress": seed(
                "ai_flow_progress_done"
            ),
            "/v1/scrape/jobs/job_abc123/progress": seed("aitronos_progress_timeout"),
        }

        async def handler(request: web.Request) -> web.Response:
            body = routes.get(request.path)
            if body is None:
                return web.json_response({"error": "Job not found"}, status=404)
            return web.json_response(body)

        app = web.Application()
        app.router.add_get("/{tail:.*}", handler)
        return app

    def _run(self) -> None:
        import asyncio

        from aiohttp import web

        async def main() -> None:
            runner = web.AppRunner(self._app())
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            stop = asyncio.Event()
            self._stop = (asyncio.get_running_loop(), stop)
            self._ready.set()
            await stop.wait()
            await runner.cleanup()

        asyncio.run(main())

    def __enter__(self) -> SeedServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        loop, stop = self._stop  # type: ignore[misc]
        loop.call_soon_threadsafe(stop.set)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self, extra_bd_jobs: str = "") -> str:
        return f"""
poll_interval: 30s
request_timeout: 5s
brightdata:
  api_token: test-token
  base_url: {self.url}
  jobs: [j_ma13y9ay1piehrso8r{extra_bd_jobs}]
  snapshots: [s_m4x7enmven8djfqak]
  ai_flows: [c_m9im5n7v82p2y35la]
aitronos:
  api_key: test-key
  base_url: {self.url}
  path_prefix: /v1
  jobs: [job_abc123]
"""


# What the documentation pages' example bodies imply, as exposition lines (issue 2's list).
SEED_EXPOSITION_LINES = [
    'brightdata_job_duration_seconds{job_id="j_ma13y9ay1piehrso8r",collector="c_m9im5n7v82p2y35la"} 71.459',
    'brightdata_job_queue_seconds{job_id="j_ma13y9ay1piehrso8r",collector="c_m9im5n7v82p2y35la"} 0.645',
    'brightdata_job_status{job_id="j_ma13y9ay1piehrso8r",collector="c_m9im5n7v82p2y35la",status="done"} 1',
    'brightdata_snapshot_status{snapshot_id="s_m4x7enmven8djfqak",dataset_id="ds_123456789",status="running"} 1',
    'brightdata_ai_flow_status{collector="c_m9im5n7v82p2y35la",status="done"} 1',
    'brightdata_ai_flow_completed_steps{collector="c_m9im5n7v82p2y35la"} 8',
    'aitronos_job_items_found{job_id="job_abc123"} 13',
    'aitronos_job_completion_reason{job_id="job_abc123",reason="timeout"} 1',
]


def om_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parsed OpenMetrics samples keyed by name and sorted labels."""
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


class _Chunks(httpx.AsyncByteStream):
    """A body arriving in 64 KB chunks, as from a socket."""

    def __init__(self, content: bytes) -> None:
        self.content = content

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.content), 65536):
            yield self.content[start : start + 65536]


def reply(status: int, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    """A streamed reply for `httpx.MockTransport`; a non-bytes body is sent as JSON (with lone
    surrogates escaped, as a provider's JSON may hold them)."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.Response(status, headers=headers, stream=_Chunks(content))
