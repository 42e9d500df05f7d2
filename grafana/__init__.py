"""Grafana dashboards for scrapejobs-exporter, generated from Python.

`python -m grafana.generate` (or `make dashboards`) writes ``grafana/dashboards/*.json``;
:func:`grafana.queries.dashboard_queries` lists every panel query for tests.
"""
