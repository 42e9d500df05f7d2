from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def seed(name: str) -> Any:
    """A body copied verbatim from the documentation pages (tests/fixtures/seeds/)."""
    return json.loads((FIXTURES / "seeds" / f"{name}.json").read_text())


def require_binary(name: str) -> str:
    """Path to an external binary; skip locally when missing, fail under CI."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install prometheus provides it)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run this test: {message}")
        pytest.skip(message)
    return path
