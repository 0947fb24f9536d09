"""`python -m dev.stack` (what `make run` runs): the local stack until Ctrl-C."""
import sys

from dev.stack.local_stack import main

sys.exit(main())
