"""What API Gateway answers by itself, in the app's error envelope, deployed and locally.

`GATEWAY_RESPONSES` is the table: dev/deploy/package.py writes it into the REST API's
definition, and `install_locally()` makes chalice's local gateway (`make run`, the
test client) answer the same way. Two answers matter most:

- an unknown path. API Gateway answers it with MISSING_AUTHENTICATION_TOKEN, whose
  default message repeats the whole `Authorization` header (and chalice local copies
  that), so a caller's key would land in its own logs. Here it is a plain 404
  `not_found` that echoes nothing.
- a refusal by an authorizer (401/403). Like every response, it carries `X-Request-Id` and
  `request-id` (where Anthropic's SDKs read it), the API Gateway request id (`$context.requestId`)
  that the app's own responses carry.

Gateway responses cannot vary by path, so every one reads as both error shapes: the app's envelope
(`error.code`, `error.message`) and Anthropic's (`type: error`, `error.type`), which a /v1/* client
(the official SDKs, Claude Code) needs to raise its usual exception.
"""
from __future__ import annotations

import json
from typing import Any, Dict, Optional, Tuple

REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID_HEADERS = (REQUEST_ID_HEADER, "request-id")

# response type -> (status or None to keep API Gateway's, code, fixed message or None for API Gateway's)
GATEWAY_RESPONSES: Dict[str, Tuple[Optional[int], str, Optional[str]]] = {
    "MISSING_AUTHENTICATION_TOKEN": (404, "not_found", "No route matches this method and path."),
    "UNAUTHORIZED": (401, "unauthorized", None),
    "ACCESS_DENIED": (403, "forbidden", None),
    "THROTTLED": (429, "rate_limited", None),
    "WAF_FILTERED": (403, "request_blocked", "The request was blocked."),
    "DEFAULT_4XX": (None, "request_rejected", None),
    "DEFAULT_5XX": (None, "internal_error", None),
}


# Anthropic's error type for each answer (its API's names for the same statuses).
ANTHROPIC_TYPES: Dict[str, str] = {
    "MISSING_AUTHENTICATION_TOKEN": "not_found_error",
    "UNAUTHORIZED": "authentication_error",
    "ACCESS_DENIED": "permission_error",
    "THROTTLED": "rate_limit_error",
    "WAF_FILTERED": "permission_error",
    "DEFAULT_4XX": "invalid_request_error",
    "DEFAULT_5XX": "api_error",
}


def _body_template(response_type: str, code: str, text: str) -> str:
    return '{"type": "error", "error": {"type": "%s", "code": "%s", "message": %s}}' % (
        ANTHROPIC_TYPES[response_type], code, text)


def openapi_gateway_responses() -> Dict[str, Any]:
    """The `x-amazon-apigateway-gateway-responses` of the REST API's definition.

    In the OpenAPI body, not as AWS::ApiGateway::GatewayResponse resources: SAM redeploys the API
    from its body (PutRestApi, mode overwrite), which drops separately created gateway responses
    (aws/serverless-application-model#390, #623); in the body they are part of every deployment.
    A header may be mapped from a context variable (API Gateway's "Parameter mapping source
    reference for REST APIs"), so every gateway response carries the request id."""
    responses = {}
    for response_type, (status, code, message) in GATEWAY_RESPONSES.items():
        text = json.dumps(message) if message is not None else "$context.error.messageString"
        response: Dict[str, Any] = {
            "responseTemplates": {"application/json": _body_template(response_type, code, text)},
            "responseParameters": {f"gatewayresponse.header.{name}": "context.requestId"
                                   for name in REQUEST_ID_HEADERS},
        }
        if status is not None:
            response["statusCode"] = str(status)
        responses[response_type] = response
    return responses


def deployed_body(response_type: str, message: str) -> bytes:
    """The body the deployed gateway response of `response_type` sends, `message` standing for API
    Gateway's $context.error.messageString (dev/stack/local_gateway.py answers with it)."""
    _, code, fixed = GATEWAY_RESPONSES[response_type]
    return _body_template(response_type, code, json.dumps(fixed or message)).encode()


# --- chalice's local gateway (dev only: the deployed runtime never imports chalice.local) --------------

_CHALICE_ERROR_TYPES = {
    # x-amzn-ErrorType chalice local sets -> the API Gateway response type it stands for
    "UnauthorizedException": "UNAUTHORIZED",
    "AccessDeniedException": "ACCESS_DENIED",
}


def _local_body(response_type: str, given_message: Optional[str]) -> bytes:
    status, code, message = GATEWAY_RESPONSES[response_type]
    text = json.dumps(message or given_message or "Unauthorized")
    return _body_template(response_type, code, text).encode()


def install_locally() -> None:
    """Make chalice local answer as the deployed gateway responses do. Safe to call twice."""
    from chalice import local

    if getattr(local.LocalGateway, "_tessera_gateway_responses", False):
        return

    class NotFound(local.LocalGatewayException):
        CODE = 404

    generate_event = local.LocalGateway._generate_lambda_event
    handle_request = local.LocalGateway.handle_request

    def _generate_lambda_event(self, method, path, headers, body):
        try:
            return generate_event(self, method, path, headers, body)
        except ValueError:
            # No route matches: chalice would answer 403 and repeat the Authorization header.
            raise NotFound({}, _local_body("MISSING_AUTHENTICATION_TOKEN", None)) from None

    def _handle_request(self, method, path, headers, body):
        try:
            return handle_request(self, method, path, headers, body)
        except local.LocalGatewayException as error:
            error.headers = dict(error.headers or {})
            request_id = error.headers.get("x-amzn-RequestId")
            response_type = _CHALICE_ERROR_TYPES.get(error.headers.get("x-amzn-ErrorType", ""))
            if response_type is not None and not _is_envelope(error.body):
                error.body = _local_body(response_type, _message(error.body))
            request_id = error.headers.get(REQUEST_ID_HEADER) or request_id or _new_request_id()
            for name in REQUEST_ID_HEADERS:
                error.headers.setdefault(name, request_id)
            error.headers["Content-Type"] = "application/json"
            raise

    local.LocalGateway._generate_lambda_event = _generate_lambda_event
    local.LocalGateway.handle_request = _handle_request
    local.LocalGateway._tessera_gateway_responses = True


def _new_request_id() -> str:
    import uuid

    return str(uuid.uuid4())


def _parsed(body: Optional[bytes]) -> Any:
    try:
        return json.loads(body or b"")
    except ValueError:
        return None


def _is_envelope(body: Optional[bytes]) -> bool:
    parsed = _parsed(body)
    return isinstance(parsed, dict) and isinstance(parsed.get("error"), dict)


def _message(body: Optional[bytes]) -> Optional[str]:
    parsed = _parsed(body)
    if isinstance(parsed, dict):
        value = parsed.get("message", parsed.get("Message"))
        return str(value) if value is not None else None
    return None
