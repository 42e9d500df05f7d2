"""Local simulator of the Bright Data and Aitronos scraping-job APIs.

Used by tests, the `demo` command and benchmarks; see docs/simulator.md.
"""

from scrapejobs_exporter.simulator.config import (
    DEFAULT_AITRONOS_KEY,
    DEFAULT_BRIGHTDATA_TOKEN,
    NonLoopbackAddressError,
    SimulatorConfig,
)
from scrapejobs_exporter.simulator.server import SimulatorServer, run_simulator_in_thread

__all__ = [
    "DEFAULT_AITRONOS_KEY",
    "DEFAULT_BRIGHTDATA_TOKEN",
    "NonLoopbackAddressError",
    "SimulatorConfig",
    "SimulatorServer",
    "run_simulator_in_thread",
]
