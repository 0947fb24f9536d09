"""`chalice local` as `make run` starts it, answering as the deployed API Gateway does.

The same command-line as the `chalice` CLI; first it installs dev/gateway_responses.py's
local patch, so an unknown path is a 404 `not_found` that echoes nothing (chalice would
answer 403 and repeat the Authorization header) and every refusal carries X-Request-Id.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gateway_responses  # noqa: E402

if __name__ == "__main__":
    gateway_responses.install_locally()
    from chalice.cli import main

    sys.exit(main())
