"""scrapejobs-exporter: Prometheus metrics for Bright Data and Aitronos scraping jobs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("scrapejobs-exporter")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
