"""`POST /v1/messages`: the Anthropic Messages API shape, so the official SDK works unchanged.

The tenant's settings apply as on every route: the model must be one the
tenant may use, max_tokens is capped at the tenant's setting, and the tenant's
instructions come before any `system` the client sends. It counts as
`basic_chat`. Errors use Anthropic's error shape so the SDK raises its usual
exceptions.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping

from chalicelib import validation
from chalicelib.ai.features import MAX_MESSAGE_CHARS, messages
from chalicelib.ai.gateway import FeatureCall, GatewayResult
from chalicelib.errors import BadRequest, PayloadTooLarge, TesseraError
from chalicelib.pricing import usd

FEATURE = "basic_chat"
ACCEPTED = {"model", "max_tokens", "messages", "system", "temperature", "stop_sequences", "metadata", "stream"}

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                429: "rate_limit_error", 503: "overloaded_error", 529: "overloaded_error"}


def _system_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    elif isinstance(value, list) and all(isinstance(b, dict) and b.get("type") == "text"
                                         and isinstance(b.get("text"), str) for b in value):
        text = "\n".join(b["text"] for b in value)
    else:
        raise BadRequest("system must be a string or a list of text blocks.", code="invalid_field")
    if len(text) > MAX_MESSAGE_CHARS:
        raise PayloadTooLarge(f"system is longer than {MAX_MESSAGE_CHARS} characters.")
    return text


def parse(body: Mapping[str, Any]) -> FeatureCall:
    unknown = sorted(set(body) - ACCEPTED)
    if unknown:
        raise BadRequest(f"Unsupported field(s): {', '.join(unknown)}.", code="unknown_field")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest("stream must be true or false.", code="invalid_field")
    if stream:
        raise BadRequest("Streaming is not supported yet; send stream: false.", code="streaming_not_supported")
    validation.fields(body, ACCEPTED, required=("model", "max_tokens", "messages"))
    model = validation.string(body, "model", min_len=1, max_len=100)
    max_tokens = validation.integer(body, "max_tokens", minimum=1, maximum=200_000)
    temperature = validation.number(body, "temperature", minimum=0, maximum=1) \
        if body.get("temperature") is not None else None
    stop = body.get("stop_sequences")
    if stop is not None and (not isinstance(stop, list) or len(stop) > 8
                             or not all(isinstance(s, str) and 0 < len(s) <= 100 for s in stop)):
        raise BadRequest("stop_sequences must be up to 8 non-empty strings.", code="invalid_field")
    metadata = body.get("metadata")
    if metadata is not None and (not isinstance(metadata, dict) or set(metadata) - {"user_id"}
                                 or not isinstance(metadata.get("user_id", ""), str)):
        raise BadRequest("metadata may only hold user_id, a string.", code="invalid_field")
    return FeatureCall(messages=messages(body["messages"]), system=_system_text(body.get("system")) or None,
                       max_tokens=max_tokens, temperature=temperature, model=model, stop_sequences=stop,
                       metadata=metadata)


def response(result: GatewayResult) -> Dict[str, Any]:
    message = result.reply.message()
    message.setdefault("type", "message")
    message.setdefault("role", "assistant")
    message.setdefault("stop_sequence", None)
    return message


def headers(result: GatewayResult) -> Dict[str, str]:
    return {"x-tessera-request-id": result.request_id, "x-tessera-cost-usd": usd(result.cost_micros)}


def error_body(error: TesseraError) -> Dict[str, Any]:
    kind = _ERROR_TYPES.get(error.status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": error.message, "code": error.code, **error.details}}
