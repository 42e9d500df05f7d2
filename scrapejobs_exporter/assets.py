"""`scrapejobs-exporter assets DIR`: write the monitoring assets shipped inside the package.

The Grafana dashboards, the Prometheus alerting and recording rules, their `promtool test
rules` files and the runbooks the alerts link to live once, in the repository's
grafana/dashboards, prometheus/rules, prometheus/tests and docs/runbooks.md. The package
reaches them through symbolic links in scrapejobs_exporter/monitoring/ that the wheel and the
sdist resolve into files, so an installed exporter reads them with importlib.resources.
DIR gets the same layout (rules/, tests/, dashboards/, runbooks.md): the rule tests find the
rules at ../rules, as in the repository.
"""

from __future__ import annotations

import sys
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

__all__ = ["ASSETS", "write_assets"]

# Directory (or file) under the package's monitoring/, and the file suffix it ships.
ASSETS: tuple[tuple[str, str], ...] = (
    ("dashboards", ".json"),
    ("rules", ".yml"),
    ("tests", ".yml"),
    ("runbooks.md", ".md"),
)


def _files() -> list[tuple[str, Traversable]]:
    root = resources.files("scrapejobs_exporter") / "monitoring"
    found: list[tuple[str, Traversable]] = []
    for name, suffix in ASSETS:
        node = root / name
        if node.is_file():
            found.append((name, node))
            continue
        for item in sorted(node.iterdir(), key=lambda t: t.name):
            if item.is_file() and item.name.endswith(suffix):
                found.append((f"{name}/{item.name}", item))
    return found


def write_assets(directory: str | Path) -> list[Path]:
    """Write every asset under `directory` (created if needed); returns the files written."""
    target = Path(directory)
    written = []
    for relative, source in _files():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(source.read_bytes())
        written.append(path)
    return written


def run(directory: str) -> int:
    try:
        written = write_assets(directory)
    except OSError as exc:
        print(f"scrapejobs-exporter: {directory}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    kinds = ", ".join(name for name, _ in ASSETS)
    print(f"{directory}: wrote {len(written)} files ({kinds})")
    return 0
