"""The package's import boundaries, checked on the source: the import name is the project's,
and the simulator (a fake of the providers) stays apart from the code it is used to test."""

from __future__ import annotations

import ast
from pathlib import Path

import scrapejobs_exporter

PACKAGE = Path(scrapejobs_exporter.__file__).parent
SIMULATOR = PACKAGE / "simulator"
# The only production modules that may import the simulator: `demo` runs it, and the
# `simulate` command of the CLI serves it.
MAY_IMPORT_SIMULATOR = {PACKAGE / "demo.py", PACKAGE / "cli.py"}
# The one module of the package the simulator may import: how a command runs and ends (exit
# codes, signals). It imports nothing of the package itself (checked below).
SHARED_WITH_SIMULATOR = "scrapejobs_exporter.lifecycle"


def _imports(path: Path) -> list[str]:
    """Absolute names of every module `path` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.append(module)
            names += [f"{module}.{alias.name}" for alias in node.names]
    return names


def _modules(under: Path) -> list[Path]:
    return sorted(under.rglob("*.py"))


def test_imports_are_resolved_relative_to_the_package() -> None:
    assert "scrapejobs_exporter.simulator.config" in _imports(SIMULATOR / "cli.py")


def test_nothing_imports_a_top_level_exporter_package() -> None:
    offenders = [
        (str(path), name)
        for path in _modules(PACKAGE)
        for name in _imports(path)
        if name == "exporter" or name.startswith("exporter.")
    ]
    assert offenders == []


def test_only_demo_and_the_simulate_command_import_the_simulator() -> None:
    offenders = [
        (str(path.relative_to(PACKAGE)), name)
        for path in _modules(PACKAGE)
        if SIMULATOR not in path.parents and path not in MAY_IMPORT_SIMULATOR
        for name in _imports(path)
        if name.startswith("scrapejobs_exporter.simulator")
    ]
    assert offenders == []


def test_the_simulator_imports_nothing_of_the_exporter() -> None:
    """It is a fake of the providers' APIs; importing the code it tests would make it agree
    with that code rather than with the providers."""
    offenders = [
        (str(path.relative_to(PACKAGE)), name)
        for path in _modules(SIMULATOR)
        for name in _imports(path)
        if name.startswith("scrapejobs_exporter.")
        and not name.startswith(("scrapejobs_exporter.simulator", SHARED_WITH_SIMULATOR))
    ]
    assert offenders == []


def test_the_lifecycle_the_simulator_shares_imports_nothing_of_the_package() -> None:
    lifecycle = PACKAGE / "lifecycle.py"
    assert [n for n in _imports(lifecycle) if n.startswith("scrapejobs_exporter")] == []
    assert SHARED_WITH_SIMULATOR in _imports(SIMULATOR / "cli.py")
