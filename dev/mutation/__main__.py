"""`python -m dev.mutation [MODULE ...]` (what `make mutation` runs)."""
import sys

from dev.mutation.runner import main

sys.exit(main())
