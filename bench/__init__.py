"""Benchmarks of the exporter against a naive prometheus_client baseline (`python -m bench`).

The runner (`bench.runner`) starts the simulator as a separate process, then for each scale runs
our exporter and the baseline (`bench.baseline`) each in their own child process
(`python -m bench.worker ours|baseline ...`), so that every RSS figure belongs to one of them
alone. Scrapes are fired from another process (`bench.client`) so the client does not share the
measured process's GIL. The runner prints a table, writes `results.json` and `RESULTS.md`.

`bench.budget` is the budget-bound scenario (issue 13): the exporter's own process, one or three
shards, against the simulator with its per-account rate limits on, measured against the
simulator's per-job ground truth (`python -m bench --only budget`).
"""
