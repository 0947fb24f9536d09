"""`python -m dev.standin --port N`: the stand-in for Anthropic's API until stopped."""
import sys

from dev.standin.server import main

sys.exit(main())
