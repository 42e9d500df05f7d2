"""`scrapejobs-exporter assets DIR` writes the repository's monitoring assets, byte for byte."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from scrapejobs_exporter.assets import write_assets

ROOT = Path(__file__).resolve().parents[2]
SOURCES = {
    "dashboards": sorted((ROOT / "grafana/dashboards").glob("*.json")),
    "rules": sorted((ROOT / "prometheus/rules").glob("*.yml")),
    "tests": sorted((ROOT / "prometheus/tests").glob("*.yml")),
}


def test_every_asset_is_written_as_in_the_repository(tmp_path: Path) -> None:
    written = write_assets(tmp_path / "out")
    expected = {f"{kind}/{p.name}": p for kind, paths in SOURCES.items() for p in paths}
    expected["runbooks.md"] = ROOT / "docs/runbooks.md"
    got = {p.relative_to(tmp_path / "out").as_posix(): p for p in written}
    assert set(got) == set(expected)
    assert len(SOURCES["dashboards"]) == 3 and len(SOURCES["rules"]) == 2
    for name, path in expected.items():
        assert got[name].read_bytes() == path.read_bytes(), name


def test_command_reports_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scrapejobs_exporter", "assets", str(tmp_path / "a")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{tmp_path / 'a'}: wrote 11 files")
    assert (tmp_path / "a/rules/alerts.rules.yml").is_file()


def test_unwritable_directory_is_one_line_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "scrapejobs_exporter", "assets", str(blocker / "sub")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert str(blocker / "sub") in line
