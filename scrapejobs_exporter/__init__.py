"""scrapejobs-exporter: Prometheus metrics for Bright Data and Aitronos scraping jobs."""

import os
import time
from importlib.metadata import PackageNotFoundError, version


def _process_start() -> float:
    """When this process started (Linux: from /proc, to the clock tick), else now: the package
    is imported first, 50-100 ms later (measured: `python -c "import scrapejobs_exporter"`)."""
    now = time.time()
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
            up = float(uptime.read().split()[0])
        return min(now, now - (up - ticks / os.sysconf("SC_CLK_TCK")))
    except (OSError, ValueError, IndexError):
        return now


# When this process started: `run` watches from here, so a job that finishes while the
# exporter starts up still counts.
STARTED = _process_start()

try:
    __version__ = version("scrapejobs-exporter")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
