"""What `scrapejobs_exporter_build_info` says: version, git revision and branch, Python version.

The revision and branch are read from git when the package runs from a git checkout (a
development install); an installed package has no record of them and says `unknown` rather than
guessing.
"""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path

from scrapejobs_exporter import __version__

__all__ = ["UNKNOWN", "build_labels"]

UNKNOWN = "unknown"
GIT_TIMEOUT = 5.0  # seconds; once per process


@functools.cache
def build_labels() -> tuple[str, str, str, str]:
    """`version`, `revision`, `branch`, `pythonversion`."""
    checkout = Path(__file__).resolve().parent.parent
    revision = branch = UNKNOWN
    if (checkout / ".git").exists():  # not some unrelated repository the venv happens to be in
        revision = _git(checkout, "rev-parse", "HEAD") or UNKNOWN
        branch = _git(checkout, "rev-parse", "--abbrev-ref", "HEAD") or UNKNOWN
        if branch == "HEAD":  # a detached checkout has no branch
            branch = UNKNOWN
    return __version__, revision, branch, platform.python_version()


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT
        )
    except (OSError, subprocess.SubprocessError):  # no git, or it hung
        return None
    out = done.stdout.strip()
    return out if done.returncode == 0 and out else None
