"""`chalice local`, taught to read Anthropic's `x-api-key` header as the deployed authorizer does.

chalice's local gateway hands its built-in authorizers only the `Authorization` header and refuses a
request without one before the authorizer runs. The deployed stack uses a REQUEST authorizer that reads
`Authorization` or `x-api-key` (app.tenant_request_auth, dev/package.py); this development-only patch
gives `make run` the same rule (chalicelib.identity.resolve.credential_header) by putting the credential
into `Authorization` before chalice reads it. Nothing here is deployed.

Run it as the `chalice` command: ``python dev/chalice_local.py local --stage local --port 8000``.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parents[1]

_original: Optional[Callable[..., Any]] = None


def accept_x_api_key() -> None:
    """Patch chalice's local authorizer once; `restore()` undoes it."""
    global _original
    from chalice.local import LocalGatewayAuthorizer

    from chalicelib.identity.resolve import credential_header

    if _original is not None:
        return
    _original = LocalGatewayAuthorizer._prepare_authorizer_event

    def prepare(self: Any, arn: str, lambda_event: dict, lambda_context: Any) -> dict:
        # Without any credential the authorizer still runs (with an empty one), as the deployed REQUEST
        # authorizer does, so its refusal carries the route's error shape.
        headers = {**(lambda_event.get("headers") or {}), "authorization": credential_header(
            lambda_event.get("headers") or {}) or ""}
        return _original(self, arn, {**lambda_event, "headers": headers}, lambda_context)

    LocalGatewayAuthorizer._prepare_authorizer_event = prepare


def restore() -> None:
    global _original
    from chalice.local import LocalGatewayAuthorizer

    if _original is not None:
        LocalGatewayAuthorizer._prepare_authorizer_event = _original
        _original = None


def main() -> int:
    sys.path.insert(0, str(ROOT))
    accept_x_api_key()
    from chalice.cli import main as chalice_main

    sys.argv[0] = "chalice"
    return chalice_main()


if __name__ == "__main__":
    sys.exit(main())
