"""Every PromQL query of the generated dashboards, ready to send to Prometheus.

``dashboard_queries()`` returns ``(dashboard uid, panel title, expr)`` tuples with the
Grafana template variables replaced by plausible values, e.g. for an end-to-end test
that runs each query against a Prometheus scraping the exporter. That Prometheus must
load ``prometheus/rules/recording.rules.yml`` (see :data:`RECORDING_RULES`) because
several panels use recorded series, and it needs a few scrapes and rule evaluations
before rates and recorded series return data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from grafana.generate import DASHBOARDS

RECORDING_RULES = (
    Path(__file__).resolve().parent.parent / "prometheus" / "rules" / "recording.rules.yml"
)

#: Values substituted for the dashboards' template variables. The dashboards use the
#: label variables only in regex matchers (``=~``), so ``.+`` matches every value.
DEFAULT_VARIABLES: Mapping[str, str] = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
    "collector": ".+",
    "job_id": ".+",
    "provider": ".+",
    "job": ".+",
}

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def substitute(expr: str, variables: Mapping[str, str] | None = None) -> str:
    """Replace ``$name`` and ``${name}`` in ``expr``; unknown variables raise KeyError."""
    values = {**DEFAULT_VARIABLES, **(variables or {})}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values[name]

    return _VARIABLE.sub(replace, expr)


def dashboard_queries(
    variables: Mapping[str, str] | None = None, *, include_sparse: bool = True
) -> list[tuple[str, str, str]]:
    """``(dashboard uid, panel title, expr)`` for every query of every dashboard panel.

    ``variables`` overrides :data:`DEFAULT_VARIABLES` (e.g. a real ``collector`` id).
    With ``include_sparse=False`` the queries that may legitimately return no data
    (jobs in one state only, ETA, provider rate-limit headers, ...) are left out.
    """
    result: list[tuple[str, str, str]] = []
    for dashboard in DASHBOARDS:
        for row in dashboard.rows:
            for panel in row.panels:
                for query in panel.queries:
                    if query.sparse and not include_sparse:
                        continue
                    result.append((dashboard.uid, panel.title, substitute(query.expr, variables)))
    return result
