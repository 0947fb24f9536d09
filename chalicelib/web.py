"""The HTTP edge: turns domain errors into the one error envelope, binds log keys per
request, and reads request bodies and tenant hints. Only app.py uses this module."""
from __future__ import annotations

import functools
import json
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional

from chalice.app import Request, Response

from chalicelib import logs, observability
from chalicelib.errors import NOT_RETRYABLE, UNTIL_PERIOD_END, TesseraError, UnsupportedMediaType
from chalicelib.ids import new_id
from chalicelib.periods import current_period, isoformat, period_end
from chalicelib.settings import get_settings
from chalicelib.identity.login import slug_from_host
from chalicelib.tenancy import TenantContext
from chalicelib.validation import json_object

log = logs.get_logger("http")

_CHALICE_CODES = {
    "MethodNotAllowedError": "method_not_allowed",
    "UnsupportedMediaType": "unsupported_media_type",
    "BadRequest": "invalid_request",
    "BadRequestError": "invalid_request",
    "NotFoundError": "not_found",
    "InternalServerError": "internal_error",
}


def with_retry_advice(error: TesseraError) -> TesseraError:
    """Apply the retry policy of errors.py by code: refusals no retry cures soon say `x-should-retry: false`
    and drop Retry-After; those that last the billing month name its end as `resets_at`."""
    if error.code in UNTIL_PERIOD_END:
        error.details.setdefault("resets_at", isoformat(period_end(current_period())))
    if error.code in NOT_RETRYABLE:
        error.headers.pop("Retry-After", None)
        error.headers["x-should-retry"] = "false"
    return error


def error_response(error: TesseraError) -> Response:
    return Response(body=error.to_body(), status_code=error.status,
                    headers={"Content-Type": "application/json", **error.headers})


def translated(view: Callable[..., Any],
               render: Callable[[TesseraError], Response] = error_response) -> Callable[..., Any]:
    """Run a view; domain errors become their envelope, anything else a bare 500 (logged, never shown)."""
    @functools.wraps(view)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except TesseraError as error:
            if error.status >= 500:
                log.error("request failed", extra={"fields": {"code": error.code}})
            else:
                observability.refusal(error.code, error.details.get("feature"), error.details)
            return render(with_retry_advice(error))
        except Exception:
            log.exception("unhandled error")
            return render(TesseraError("An internal error occurred."))
    return run


def unauthorized(error: TesseraError, body: Optional[dict] = None) -> Exception:
    """What an authorizer raises to refuse a credential with 401 rather than a deny's 403.

    API Gateway answers 401 when a TOKEN authorizer fails with the message "Unauthorized" (the gateway
    response in the packaged template wraps it in the error envelope). chalice's local gateway, which
    `make run` and the test client use, would drop the connection on that error instead; it has its own
    exception for the same answer, and the deployed runtime does not ship chalice.local.
    """
    observability.refusal(error.code)
    try:
        from chalice.local import NotAuthorizedError
    except ImportError:
        return Exception("Unauthorized")
    error = with_retry_advice(error)
    raw = json.dumps(body if body is not None else error.to_body()).encode()
    return NotAuthorizedError({"x-amzn-ErrorType": "UnauthorizedException", "Content-Type": "application/json",
                               **error.headers}, raw)


def envelope_middleware(event: Request, get_response: Callable[[Request], Response]) -> Response:
    """Bind request keys to every log line and trace; rewrite chalice's own errors into the envelope."""
    logs.apply_level(get_settings().log_level)
    request_id = (event.context or {}).get("requestId") or new_id("req")
    authorizer = (event.context or {}).get("authorizer") or {}
    tenant_id, plan = authorizer.get("tenant_id"), authorizer.get("plan")
    logs.bind(request_id=request_id, tenant_id=tenant_id, plan=plan)
    try:
        with observability.traced((event.context or {}).get("resourcePath") or "request", tenant_id=tenant_id,
                                  plan=plan, request_id=request_id):
            response = get_response(event)
        if response.status_code >= 400 and isinstance(response.body, dict) and "Code" in response.body:
            code = _CHALICE_CODES.get(str(response.body.get("Code")), "error")
            message = str(response.body.get("Message") or "The request failed.")
            response = Response(body={"error": {"code": code, "message": message}},
                                status_code=response.status_code, headers=dict(response.headers))
        response.headers["X-Request-Id"] = request_id
        response.headers["request-id"] = request_id  # where Anthropic's SDKs read it (`_request_id`)
        log.info("request", extra={"fields": {"method": event.method, "path": event.context.get("resourcePath"),
                                              "status": response.status_code}})
        if not isinstance(response.body, (str, bytes, dict, list, type(None))):  # streamed after we return
            response.body = _keeping_keys(response.body, logs.bound())
        return response
    finally:
        logs.clear()


def _keeping_keys(body: Iterable[bytes], keys: Dict[str, Any]) -> Iterator[bytes]:
    """A streamed body is produced after the handler has returned: what it logs and meters (the call's
    settlement, its EMF record, an upstream error) keeps the request's keys, on whichever thread sends it."""
    logs.bind(**keys)
    try:
        yield from body
    finally:
        logs.clear()


def body(request: Request, max_bytes: Optional[int] = None) -> dict:
    # chalice takes a request without Content-Type for JSON; the contract says such a body is a 415.
    # (A Content-Type other than JSON never reaches here: chalice answers it with 415 itself.)
    if request.headers.get("content-type") is None:
        raise UnsupportedMediaType("Send the body as JSON, with Content-Type: application/json.")
    raw = request.raw_body
    return json_object(raw, max_bytes) if max_bytes else json_object(raw)


def base_url(request: Request) -> str:
    """This API's root as the caller reached it (scheme, host, any stage prefix), for URLs we hand out."""
    context = request.context or {}
    path, marker = context.get("path") or "", "/v1/"
    prefix = path[:path.find(marker)] if marker in path else ""
    scheme = request.headers.get("x-forwarded-proto") or "http"
    return f"{scheme}://{request.headers.get('host', 'localhost')}{prefix}"


def source_address(request: Request) -> Optional[str]:
    """The caller's address as API Gateway saw it (never a header a client can set)."""
    return ((request.context or {}).get("identity") or {}).get("sourceIp")


def tenant_context(request: Request) -> TenantContext:
    """The one place a route's tenant comes from: the authorizer's context, checked against hints."""
    ctx = TenantContext.from_authorizer(request.context.get("authorizer"))
    ctx.check_hints(header_copies(request, "x-tenant-id"), slug_from_host(request.headers.get("host")))
    return ctx


def header_copies(request: Request, name: str) -> List[str]:
    """Every value a repeated header carried. API Gateway keeps the last copy in `headers` and all of them
    in `multiValueHeaders`; a proxy (or `make run`'s chalice local) may fold them into one comma-separated
    line, as HTTP allows for repeated fields."""
    event = request.to_original_event()
    lines = [value for key, values in (event.get("multiValueHeaders") or {}).items() if key.lower() == name
             for value in values or []]
    single = request.headers.get(name)
    if single is not None:
        lines.append(single)
    return [part for line in lines for part in line.split(",")]
