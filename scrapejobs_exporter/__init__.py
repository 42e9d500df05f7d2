"""scrapejobs-exporter: Prometheus metrics for Bright Data and Aitronos scraping jobs."""

import time
from importlib.metadata import PackageNotFoundError, version

# When this process started, near enough (the package is imported first): `run` watches from
# here, so a job that finishes while the exporter starts up still counts.
STARTED = time.time()

try:
    __version__ = version("scrapejobs-exporter")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
