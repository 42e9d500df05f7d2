"""`python -m bench [--scales 1000,10000,50000] [--quick] [--out DIR]`."""

from bench.runner import main

raise SystemExit(main())
