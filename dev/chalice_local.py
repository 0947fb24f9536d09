"""`chalice local` as the local stack runs it: chalice's own server with three dev-only fixes.

- A listen backlog of 128 instead of socketserver's 5. With 5, the kernel dropped the connections of a
  burst that chalice had not accepted yet (4 of 40 at 16 in flight on the AI path, up to 31 of 50 at 50).
- Repeated request headers reach the app folded into one comma-separated line, as HTTP allows for
  repeated fields. chalice's server kept the first copy only, so a second, different X-Tenant-ID went
  unseen; deployed, API Gateway hands the app every copy in `multiValueHeaders`.
- Every method reaches the app, which answers one a path does not declare with 405; chalice's server
  answered TRACE or QUERY with its own 501 page.

Nothing here is deployed: Lambda runs app.py behind API Gateway. Usage is the chalice CLI's own:
`python dev/chalice_local.py local --stage local --host 127.0.0.1 --port 8000 --no-autoreload`.
"""
from __future__ import annotations

import sys
from typing import Any, Dict, Optional, Tuple

from chalice import local

LISTEN_BACKLOG = 128


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
    handler._parse_payload = _headers_with_every_copy
    handler.__getattr__ = _every_method


_parse_payload = local.ChaliceRequestHandler._parse_payload

if __name__ == "__main__":
    patch_chalice_local()
    from chalice.cli import main

    sys.exit(main())
