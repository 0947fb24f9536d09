"""The streaming function's WSGI app: POST /v1/messages and POST /ai/chat, streamed or whole.

Everything about a request that API Gateway decided (its request id, the route it matched, the
authorizer's tenant context, the caller's address) comes from the request context API Gateway built,
which the Lambda Web Adapter puts in the `x-amzn-request-context` header as JSON. The adapter inserts
that header, replacing one a caller sent under the same name; a request without exactly one readable
context was not routed by API Gateway and is refused. The request becomes the chalice `Request` app.py
would have seen, so the tenant, the body, the error shapes, the log keys and every response header come
from the same chalicelib.web and chalicelib.ai.calls functions as app.py's; only the sending differs:
a streamed answer's body is an iterator of bytes, written as upstream produces each event.
"""
from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any, Callable, Dict, Iterable, List, Tuple
from urllib.parse import parse_qs

from chalice.app import Request, Response

from chalicelib import snapshot
from chalicelib.ai import calls
from chalicelib.ai.gateway import default_gateway
from chalicelib.errors import Forbidden, NotFound, TesseraError, UnsupportedMediaType
from chalicelib.ids import new_id
from chalicelib.web import envelope_middleware, error_response, tenant_context, translated

HEALTH_PATH = "/health"  # the adapter's readiness check (AWS_LWA_READINESS_CHECK_PATH)
# With SnapStart the snapshot is taken once the readiness check passes, before any request: whatever must
# differ between restored instances (randomness, connections, decrypted keys) is made on the first request.
made_own = snapshot.OnFirstRequest()
CONTEXT_HEADER = "HTTP_X_AMZN_REQUEST_CONTEXT"

StartResponse = Callable[[str, List[Tuple[str, str]]], Any]


def request_context(environ: Dict[str, Any]) -> Dict[str, Any]:
    """API Gateway's request context, as the adapter passed it; refuses a request that lacks one."""
    try:
        context = json.loads(environ.get(CONTEXT_HEADER) or "")
    except ValueError:
        context = None
    if not isinstance(context, dict) or not isinstance(context.get("authorizer"), dict):
        raise Forbidden("This endpoint is reached through the API only.", code="forbidden")
    return context


def _headers(environ: Dict[str, Any]) -> Dict[str, str]:
    # The WSGI server folds a repeated header into one comma-separated line, as HTTP allows; the tenant
    # hint check (chalicelib.web.header_copies) splits such a line into its copies.
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items()
               if key.startswith("HTTP_") and key != CONTEXT_HEADER}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = environ[key]
    return headers


def api_request(environ: Dict[str, Any]) -> Request:
    """The chalice Request of the proxy event API Gateway sent, rebuilt from the adapter's HTTP request."""
    context = request_context(environ)
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    query = environ.get("QUERY_STRING") or ""
    event = {
        "resource": context.get("resourcePath"), "path": environ.get("PATH_INFO"),
        "httpMethod": environ["REQUEST_METHOD"], "headers": _headers(environ), "multiValueHeaders": None,
        "multiValueQueryStringParameters": parse_qs(query) or None, "pathParameters": None,
        "stageVariables": None, "requestContext": {**context, "httpMethod": environ["REQUEST_METHOD"]},
        "body": raw.decode("utf-8", errors="surrogateescape") if raw else None, "isBase64Encoded": False,
    }
    return Request(event)


def answer(route: calls.StreamableRoute, request: Request) -> Response:
    def run() -> Response:
        media = (request.headers.get("content-type") or "application/json").split(";")[0].strip().lower()
        if media != "application/json":  # what chalice answers itself on app.py's routes
            raise UnsupportedMediaType(f"Unsupported media type: {media}")
        ctx = tenant_context(request)
        return calls.respond_once(
            request, ctx.tenant_id,
            lambda: calls.answer(route, default_gateway(), ctx, request, calls.STREAMING),
            calls.STREAMING.idempotency_lease_seconds)

    return (translated(run, route.render_error) if route.render_error else translated(run))()


def application(environ: Dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO") or "/"
    if method == "GET" and path == HEALTH_PATH:
        return send(Response(body={"status": "ok"}), start_response)
    made_own()
    try:
        request = api_request(environ)
    except TesseraError as error:
        return send(with_request_id(error_response(error), new_id("req")), start_response)
    route = calls.STREAMABLE.get(request.path) if method == "POST" else None
    if route is None:
        # what API Gateway answers for a route it does not have (MISSING_AUTHENTICATION_TOKEN, in the
        # gateway response's shape: the envelope and Anthropic's at once)
        refused = calls.anthropic_error(NotFound("No route matches this method and path.", code="not_found"))
        return send(with_request_id(refused, (request.context or {}).get("requestId") or new_id("req")),
                    start_response)
    return send(envelope_middleware(request, lambda r: answer(route, r)), start_response)


def with_request_id(response: Response, request_id: str) -> Response:
    """Every answer names its request, as envelope_middleware's do (and where Anthropic's SDKs read it)."""
    response.headers["X-Request-Id"] = request_id
    response.headers["request-id"] = request_id
    return response


def send(response: Response, start_response: StartResponse) -> Iterable[bytes]:
    """Start the WSGI response; an iterator body is returned as is, so each chunk is written when made."""
    status = response.status_code
    reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
    if not isinstance(response.body, (str, bytes, dict, list, type(None))):
        start_response(f"{status} {reason}", list(response.headers.items()))
        return response.body
    whole = response.to_dict()
    payload = whole["body"]
    data = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload or b"")
    headers: Dict[str, str] = {**whole["headers"], "Content-Length": str(len(data))}
    headers.setdefault("Content-Type", "application/json")
    start_response(f"{status} {reason}", list(headers.items()))
    return [data]
