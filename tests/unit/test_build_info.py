"""`scrapejobs_exporter_build_info`: the git revision and branch where there is a checkout."""

from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

import pytest

from scrapejobs_exporter import __version__, build_info

ROOT = Path(build_info.__file__).resolve().parent.parent


@pytest.mark.skipif(
    not (ROOT / ".git").exists() or shutil.which("git") is None, reason="not a git checkout"
)
def test_a_checkout_reports_its_revision_and_branch() -> None:
    build_info.build_labels.cache_clear()
    version, revision, branch, python = build_info.build_labels()
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert (version, revision, python) == (__version__, head, platform.python_version())
    assert branch and branch != "HEAD"


def _labels_from(monkeypatch: pytest.MonkeyPatch, package: Path) -> tuple[str, ...]:
    """build_labels() as if the package lived in `package`."""
    package.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(build_info, "__file__", str(package / "build_info.py"))
    build_info.build_labels.cache_clear()
    try:
        return build_info.build_labels()
    finally:
        build_info.build_labels.cache_clear()


def test_an_installed_package_says_unknown(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No .git next to the package (site-packages): nothing is guessed."""
    labels = _labels_from(monkeypatch, tmp_path / "site-packages" / "scrapejobs_exporter")
    assert labels[1:3] == ("unknown", "unknown")


def test_git_failures_read_as_unknown(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()  # looks like a checkout, but git cannot read it
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    labels = _labels_from(monkeypatch, tmp_path / "scrapejobs_exporter")
    assert labels[1:3] == ("unknown", "unknown")
    monkeypatch.setenv("PATH", "")  # no git at all
    assert build_info._git(tmp_path, "rev-parse", "HEAD") is None


def test_the_page_carries_the_build_labels() -> None:
    from prometheus_client import CollectorRegistry

    from scrapejobs_exporter.metrics import BUILD_INFO, register_build_info
    from tests.helpers import values

    registry = CollectorRegistry()
    register_build_info(registry)
    (family,) = registry.collect()
    assert values(registry) == {build_info.build_labels(): 1.0}
    assert family.name == BUILD_INFO.name and family.type == "gauge"
    assert BUILD_INFO.labels == ("version", "revision", "branch", "pythonversion")
