"""The exporter's own measurements: API calls, errors, poll cycles, rate limits, reloads."""

from __future__ import annotations

from dataclasses import dataclass, field

from scrapejobs_exporter.series import CounterVec, GaugeVec, HistogramVec

__all__ = ["CYCLE_BUCKETS", "ERROR_REASONS", "REQUEST_BUCKETS", "Telemetry"]

# The fixed vocabulary of `scrapejobs_exporter_api_errors_total{reason}`.
ERROR_REASONS = (
    "timeout",
    "connect",
    "http_4xx",
    "http_5xx",
    "rate_limited",
    "bad_body",
    "too_large",
)

REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CYCLE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


@dataclass
class Telemetry:
    api_requests: CounterVec = field(default_factory=CounterVec)  # provider, endpoint, code
    api_request_duration: HistogramVec = field(
        default_factory=lambda: HistogramVec(REQUEST_BUCKETS)
    )  # provider, endpoint
    api_errors: CounterVec = field(default_factory=CounterVec)  # provider, endpoint, reason
    rate_limit_limit: GaugeVec = field(default_factory=GaugeVec)  # provider
    rate_limit_remaining: GaugeVec = field(default_factory=GaugeVec)  # provider
    poll_cycle_duration: HistogramVec = field(default_factory=lambda: HistogramVec(CYCLE_BUCKETS))
    unknown_status: CounterVec = field(default_factory=CounterVec)  # provider, kind
    api_retries: CounterVec = field(default_factory=CounterVec)  # provider, endpoint
    rate_limit_wait: CounterVec = field(default_factory=CounterVec)  # provider
    circuit_open: GaugeVec = field(default_factory=GaugeVec)  # provider
    config_reload_successful: GaugeVec = field(default_factory=GaugeVec)  # no labels
    config_reload_timestamp: GaugeVec = field(default_factory=GaugeVec)  # no labels
    refused_ids: CounterVec = field(default_factory=CounterVec)  # provider, reason
