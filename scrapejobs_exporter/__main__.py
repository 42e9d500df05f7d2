import sys

from scrapejobs_exporter.cli import main

sys.exit(main())
