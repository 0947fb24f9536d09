"""`chalice local` as the local stack runs it: chalice's own server with dev-only fixes.

- Anthropic's `x-api-key` header is read as the deployed authorizer reads it. chalice's local gateway
  hands its built-in authorizers only the `Authorization` header and refuses a request without one
  before the authorizer runs; the deployed stack uses a REQUEST authorizer that reads `Authorization`
  or `x-api-key` (app.tenant_request_auth). The credential is put into `Authorization` before chalice
  reads it (chalicelib.identity.resolve.credential_header).
- A listen backlog of 128 instead of socketserver's 5. With 5, the kernel dropped the connections of a
  burst that chalice had not accepted yet (4 of 40 at 16 in flight on the AI path, up to 31 of 50 at 50).
- TCP_NODELAY on every accepted connection. chalice's server writes a response's headers, then its body:
  with Nagle's algorithm the body waited for the client's delayed ACK of the headers, 40 ms on every call
  of a reused (keep-alive) connection, as the SDKs use (GET /health 42 ms p50 instead of 1 ms).
- Repeated request headers reach the app folded into one comma-separated line, as HTTP allows for
  repeated fields. chalice's server kept the first copy only, so a second, different X-Tenant-ID went
  unseen; deployed, API Gateway hands the app every copy in `multiValueHeaders`.
- Every method reaches the app, which answers one a path does not declare with 405; chalice's server
  answered TRACE or QUERY with its own 501 page.

Nothing here is deployed: Lambda runs app.py behind API Gateway. dev/stack/local_api.py installs these with
the gateway responses; usage is the chalice CLI's own.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

from chalice import local

LISTEN_BACKLOG = 128
ROOT = Path(__file__).resolve().parents[2]


def _headers_with_every_copy(handler: local.ChaliceRequestHandler) -> Tuple[Dict[str, str], Optional[bytes]]:
    _, body = _parse_payload(handler)
    headers: Dict[str, str] = {}
    seen = set()
    for name in handler.headers.keys():
        if name.lower() not in seen:
            seen.add(name.lower())
            headers[name] = ", ".join(handler.headers.get_all(name) or [])
    return headers, body


def _every_method(handler: local.ChaliceRequestHandler, name: str) -> Any:
    """http.server looks up `do_<METHOD>` and answers 501 itself when there is none."""
    if name.startswith("do_"):
        return handler._generic_handle
    raise AttributeError(name)


def patch_chalice_local(server: Any = local.ThreadedHTTPServer, handler: Any = local.ChaliceRequestHandler) -> None:
    server.request_queue_size = LISTEN_BACKLOG
    handler.disable_nagle_algorithm = True
    handler._parse_payload = _headers_with_every_copy
    handler.__getattr__ = _every_method


_parse_payload = local.ChaliceRequestHandler._parse_payload


_original: Optional[Callable[..., Any]] = None


def accept_x_api_key() -> None:
    """Patch chalice's local authorizer once; `restore()` undoes it."""
    global _original
    from chalice.local import LocalGatewayAuthorizer

    if _original is not None:
        return
    _original = LocalGatewayAuthorizer._prepare_authorizer_event

    def prepare(self: Any, arn: str, lambda_event: dict, lambda_context: Any) -> dict:
        # Imported here, not when the patch is installed: chalicelib.models reads the settings as its
        # classes are made (PynamoDB asks each Meta for its region), and before `chalice local` has loaded
        # the stage's variables that froze settings without them (no TESSERA_BASE_DOMAIN, so no tenant
        # from the Host header).
        from chalicelib.identity.resolve import credential_header

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



if __name__ == "__main__":
    patch_chalice_local()
    accept_x_api_key()
    from chalice.cli import main

    sys.argv[0] = "chalice"
    sys.exit(main())
