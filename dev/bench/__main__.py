"""`python -m dev.bench` (what `make bench` runs): every section, into docs/performance.md."""
import sys

from dev.bench.run import main

sys.exit(main())
