"""`python -m bench [--scales 1000,10000,50000] [--quick] [--out DIR] [--only cost|budget]`."""

from bench.runner import main

raise SystemExit(main())
