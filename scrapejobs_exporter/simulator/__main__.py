"""`python -m scrapejobs_exporter.simulator`: the simulator without the exporter's CLI."""

import argparse
import sys

from scrapejobs_exporter.simulator.cli import add_arguments, run


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scrapejobs_exporter.simulator",
        description="Local simulator of the Bright Data and Aitronos scraping-job APIs.",
    )
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
