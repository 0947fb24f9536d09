"""`chalice local` as `make run` starts it, answering as the deployed API Gateway does.

The same command-line as the `chalice` CLI; first it installs dev/deploy/gateway_responses.py's
local patch, so an unknown path is a 404 `not_found` that echoes nothing (chalice would
answer 403 and repeat the Authorization header) and every refusal carries X-Request-Id,
and dev/stack/chalice_local.py's, so its authorizers read `x-api-key` as the deployed one does.
"""
from __future__ import annotations

import sys

from dev.deploy import gateway_responses
from dev.stack import chalice_local

if __name__ == "__main__":
    gateway_responses.install_locally()
    chalice_local.patch_chalice_local()
    chalice_local.accept_x_api_key()
    from chalice.cli import main

    sys.exit(main())
