"""The distributions as a user gets them: the wheel installed outside the repository writes
monitoring assets that promtool accepts; the sdist collects and runs its own tests."""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.e2e import ROOT

pytestmark = pytest.mark.e2e


def _run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An sdist of the working tree and the wheel built from it, as a release is built (with
    the build requirements of the dev extra, so nothing is downloaded)."""
    out = tmp_path_factory.mktemp("dist")
    args = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)]
    built = _run(args, out)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    yield out


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment outside the repository with the wheel in it. Its dependencies
    come from this environment's site-packages (a .pth line: no download, and not a site
    directory, so the editable install of the repository there stays invisible)."""
    venv = tmp_path_factory.mktemp("venv")
    made = _run([sys.executable, "-m", "venv", str(venv)], venv)
    assert made.returncode == 0, made.stderr
    python = venv / "bin/python"
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                venv).stdout.strip()  # fmt: skip
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (wheel,) = dist.glob("*.whl")
    pip = _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)], venv)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return venv


def test_wheel_outside_the_repository_writes_assets_promtool_accepts(
    installed: Path, tmp_path: Path
) -> None:
    promtool = require_binary("promtool")
    where = _run([str(installed / "bin/python"), "-c",
                  "import scrapejobs_exporter; print(scrapejobs_exporter.__file__)"], tmp_path)  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(installed), where.stdout + where.stderr
    out = tmp_path / "assets"
    wrote = _run([str(installed / "bin/scrapejobs-exporter"), "assets", str(out)], tmp_path)
    assert wrote.returncode == 0, wrote.stderr
    rules = sorted(str(p) for p in (out / "rules").glob("*.yml"))
    tests = sorted(str(p) for p in (out / "tests").glob("*.yml"))
    dashboards = sorted(p.name for p in (out / "dashboards").glob("*.json"))
    assert len(rules) == 2 and len(tests) >= 4
    assert dashboards == ["exporter-health.json", "job-detail.json", "overview.json"]
    assert "## BrightDataJobFailed" in (out / "runbooks.md").read_text()
    check = _run([promtool, "check", "rules", *rules], tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    unit = _run([promtool, "test", "rules", *tests], tmp_path)
    assert unit.returncode == 0, unit.stdout + unit.stderr
    assert unit.stdout.count("SUCCESS") == len(tests)


def test_sdist_collects_and_runs_its_own_tests(dist: Path, tmp_path: Path) -> None:
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path, filter="data")
    (tree,) = tmp_path.iterdir()
    for needed in ("tests/conftest.py", "tests/helpers.py", "tests/e2e/__init__.py",
                   "tests/fixtures/seeds", "prometheus/rules/alerts.rules.yml"):  # fmt: skip
        assert (tree / needed).exists(), needed
    pytest_args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    collected = _run([*pytest_args, "--collect-only"], tree)
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-2000:]
    summary = collected.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ tests collected in [\d.]+s", summary), summary
    # A few modules that need the fixtures, helpers and the package from the sdist itself.
    ran = _run([*pytest_args, "tests/unit/providers/test_parsers.py", "tests/unit/test_assets.py",
                "tests/e2e/test_rules.py::test_promtool_test_rules"], tree)  # fmt: skip
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-2000:]
    assert " passed" in ran.stdout and "failed" not in ran.stdout
