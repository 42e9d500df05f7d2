"""The exporter's own measurements: API calls, errors, poll cycles, rate limits, reloads.

Each is a client_python metric made from its catalogue entry (`metrics.make`), on the registry
the exporter serves (one per `Exporter`, so that two exporters in one process, as in tests, never
share a count).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from scrapejobs_exporter import metrics as m

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


class Telemetry:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self.api_requests = m.make_counter(m.API_REQUESTS, r)  # provider, endpoint, code
        self.api_request_duration = m.make_histogram(m.API_DURATION, r, REQUEST_BUCKETS)
        self.api_errors = m.make_counter(m.API_ERRORS, r)  # provider, endpoint, reason
        self.rate_limit_limit = m.make_gauge(m.RATE_LIMIT_LIMIT, r)  # provider
        self.rate_limit_remaining = m.make_gauge(m.RATE_LIMIT_REMAINING, r)  # provider
        self.poll_cycle_duration = m.make_histogram(m.POLL_CYCLE, r, CYCLE_BUCKETS)
        self.unknown_status = m.make_counter(m.UNKNOWN_STATUS, r)  # provider, kind
        self.api_retries = m.make_counter(m.API_RETRIES, r)  # provider, endpoint
        self.rate_limit_wait = m.make_counter(m.RATE_LIMIT_WAIT, r)  # provider
        self.circuit_open = m.make_gauge(m.CIRCUIT_OPEN, r)  # provider
        self.refused_ids = m.make_counter(m.REFUSED_IDS, r)  # provider, reason
        # Registered by the first `reload_done()`: without a config file to reload (`once`,
        # `demo`) a 0 would read as "the last reload failed".
        self.config_reload_successful = m.make_gauge(m.RELOAD_OK, None)
        self.config_reload_timestamp = m.make_gauge(m.RELOAD_TIME, None)
        self._reloads_registered = False

    def reload_done(self, ok: bool, now: float) -> None:
        """Record a (re)load of the config file, as Prometheus does for itself."""
        if not self._reloads_registered:
            self.registry.register(self.config_reload_successful)
            self.registry.register(self.config_reload_timestamp)
            self._reloads_registered = True
        self.config_reload_successful.set(1 if ok else 0)
        if ok:
            self.config_reload_timestamp.set(now)
