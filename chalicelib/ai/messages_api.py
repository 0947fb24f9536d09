"""`POST /v1/messages` and `/v1/messages/count_tokens`: the Anthropic Messages API, so the official SDKs
and Claude Code work unchanged.

The tenant's rules apply as on every route: the model must be one the tenant may use (else 404, as
Anthropic answers), max_tokens is served as asked up to the plan's cap (above it, a 400 naming the
cap), a sampling field left out takes Anthropic's default unless the tenant's admin chose one, the
tenant's instructions come before any `system` the client sends, and the first message is the user's.
The reply comes back as upstream sent it.

What passes and what is refused is one table, docs/api-contract.md, held here as data: FIELDS (every
top-level field: passed through, with how its price is bounded, or refused with its reason), ROLES,
BLOCK_TYPES, CONTEXT_EDITS and REFUSED_BETAS. The policy for what the tables do not know yet:

- a field, block type, role, tool type or context edit is refused, naming it (`unknown_field`,
  `unsupported_block`...): a hard budget reserves a call's worst case before it is made, and a field
  can carry a price (`speed` did), so what is not understood cannot be bounded;
- a beta in `anthropic-beta` is forwarded unless REFUSED_BETAS names it: a beta by itself bills
  nothing; what it enables arrives as a field, tool, block or edit, which the tables check, and the
  long-context premium a beta unlocks is reserved from the size of the input whether or not it is sent.

Errors use Anthropic's error shape.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple

from chalicelib import validation
from chalicelib.ai import bounds
from chalicelib.ai.gateway import ANTHROPIC_DEFAULTS, FeatureCall, GatewayResult
from chalicelib.errors import BadRequest, TesseraError
from chalicelib.pricing import usd

FEATURE = "basic_chat"
BODY_BYTES = 5 * 1024 * 1024  # below Lambda's 6 MB synchronous payload limit
MAX_MESSAGES = 1000
CONTRACT = "docs/api-contract.md"

BLOCK_TYPES = frozenset({"text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking",
                         "search_result", "tool_reference"})
ROLES = ("user", "assistant", "system")
# A message's own fields: `output_config` per turn (the effort for the turn it starts) is bounded by max_tokens.
MESSAGE_FIELDS = frozenset({"role", "content", "output_config"})
IMAGE_SOURCES = frozenset({"base64", "url"})
DOCUMENT_SOURCES = frozenset({"base64", "url", "text", "content"})
TOOL_CHOICES = frozenset({"auto", "any", "tool", "none"})
THINKING_TYPES = frozenset({"enabled", "adaptive", "disabled"})
# Context editing that only removes earlier content from the prompt: it can lower the bill, never raise it.
CONTEXT_EDITS = ("clear_thinking_", "clear_tool_uses_")
SPEEDS = ("standard", "fast")

# Betas refused, and why; any other beta is forwarded (see the module's docstring).
REFUSED_BETAS = {
    "files-api-": "file sources are not available: the Files API's uploads belong to the platform's workspace",
    "code-execution-": "code execution bills container time, which a budget cannot bound before the call",
    "mcp-client-": "the MCP connector runs remote tools whose results enter the prompt upstream, unbounded",
    "skills-": "skills run in a code execution container, billed by time",
    "web-fetch-": "server tools bill per use, which a budget cannot bound",
    "web-search-": "server tools bill per use, which a budget cannot bound",
    "compact-": "compaction is an extra model pass whose tokens max_tokens does not bound",
}

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                429: "rate_limit_error", 503: "overloaded_error", 529: "overloaded_error"}


@dataclass(frozen=True)
class Field:
    """One top-level field: whether count_tokens takes it, how it is checked, or why it is refused."""

    count: bool = False
    check: Optional[Callable[[Mapping[str, Any]], None]] = None
    refused: Optional[str] = None


def _refuse_unless(name: str, allowed: Tuple[Any, ...], reason: str) -> Callable[[Mapping[str, Any]], None]:
    def check(body: Mapping[str, Any]) -> None:
        if body[name] not in allowed:
            raise BadRequest(f"{name}={body[name]!r} is not available: {reason}. See {CONTRACT}.",
                             code="unsupported_field")
    return check


def _check_object(name: str) -> Callable[[Mapping[str, Any]], None]:
    def check(body: Mapping[str, Any]) -> None:
        if not isinstance(body[name], dict):
            raise BadRequest(f"{name} must be an object.", code="invalid_field")
    return check


def _check_context_management(body: Mapping[str, Any]) -> None:
    value = body["context_management"]
    edits = value.get("edits") if isinstance(value, dict) else None
    if not isinstance(edits, list) or set(value) - {"edits"}:
        raise BadRequest("context_management must be an object with a list of edits.", code="invalid_field")
    for index, edit in enumerate(edits):
        kind = edit.get("type") if isinstance(edit, dict) else None
        if not (isinstance(kind, str) and kind.startswith(CONTEXT_EDITS)):
            raise BadRequest(f"context_management.edits.{index}: edit type {kind!r} is not available: only edits "
                             f"that clear earlier content ({', '.join(e + '*' for e in CONTEXT_EDITS)}) can be "
                             f"bounded before the call. See {CONTRACT}.", code="unsupported_field")


def _check_stream(body: Mapping[str, Any]) -> None:
    if not isinstance(body["stream"], bool):
        raise BadRequest("stream must be true or false.", code="invalid_field")


# Every top-level field of the Messages API reference. How each one's price is bounded is in CONTRACT.
FIELDS: Dict[str, Field] = {
    "model": Field(count=True),
    "messages": Field(count=True),
    "max_tokens": Field(),
    "system": Field(count=True),
    "temperature": Field(),
    "top_p": Field(),
    "top_k": Field(),
    "stop_sequences": Field(),
    "stream": Field(check=_check_stream),
    "metadata": Field(),
    "tools": Field(count=True),
    "tool_choice": Field(count=True),
    "thinking": Field(count=True),
    "cache_control": Field(count=True),
    "output_config": Field(count=True, check=_check_object("output_config")),
    "output_format": Field(count=True, check=_check_object("output_format")),
    "context_management": Field(count=True, check=_check_context_management),
    "service_tier": Field(check=_refuse_unless("service_tier", ("auto", "standard_only"),
                                               "the service tiers are auto and standard_only")),
    "speed": Field(check=_refuse_unless("speed", SPEEDS, "speed is standard or fast")),
    "inference_geo": Field(check=_refuse_unless(
        "inference_geo", ("global",), "inference outside the global pool is billed at a premium Tessera does "
                                      "not meter yet")),
    "container": Field(refused="code execution containers bill by the hour, which a budget cannot bound "
                               "before the call"),
    "mcp_servers": Field(refused="the MCP connector runs remote tools whose results enter the prompt upstream, "
                                 "which a budget cannot bound before the call"),
}
REQUIRED = ("model", "max_tokens", "messages")
PASSED_THROUGH = tuple(name for name, spec in FIELDS.items() if spec.refused is None
                       and name not in ("model", "max_tokens", "messages", "system", "temperature", "stream"))
ACCEPTED = frozenset(FIELDS)
# count_tokens takes no sampling or output fields; Anthropic's endpoint refuses them.
COUNT_ACCEPTED = frozenset(name for name, spec in FIELDS.items() if spec.count)


def parse(body: Mapping[str, Any], betas: Iterable[str] = ()) -> Tuple[FeatureCall, bool]:
    """The call a Messages API request asks for (with the `anthropic-beta` header's betas), and whether it
    asks for a stream."""
    _check_fields(body, ACCEPTED, REQUIRED)
    max_tokens = validation.integer(body, "max_tokens", minimum=1, maximum=1_000_000)
    return _call(body, max_tokens, betas), bool(body.get("stream"))


def parse_count(body: Mapping[str, Any], betas: Iterable[str] = ()) -> FeatureCall:
    _check_fields(body, COUNT_ACCEPTED, ("model", "messages"))
    return _call(body, None, betas)


def parse_betas(headers: Mapping[str, str]) -> Tuple[str, ...]:
    """The request's `anthropic-beta` betas (comma-separated), refusing the ones REFUSED_BETAS names."""
    betas = tuple(beta.strip() for beta in (headers.get("anthropic-beta") or "").split(",") if beta.strip())
    for beta in betas:
        reason = next((why for prefix, why in REFUSED_BETAS.items() if beta.startswith(prefix)), None)
        if reason:
            raise BadRequest(f"anthropic-beta {beta!r} is not available: {reason}. See {CONTRACT}.",
                             code="unsupported_beta")
    return betas


def _check_fields(body: Mapping[str, Any], accepted: Iterable[str], required: Tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(accepted))
    if unknown:
        raise BadRequest(f"Unsupported field(s): {', '.join(unknown)}. Accepted: {', '.join(sorted(accepted))}. "
                         f"A field Tessera does not know yet is refused, since its price cannot be bounded; "
                         f"see {CONTRACT}.", code="unknown_field")
    for name in sorted(set(body) & set(accepted)):
        spec = FIELDS[name]
        if spec.refused:
            raise BadRequest(f"{name} is not available: {spec.refused}. See {CONTRACT}.", code="unsupported_field")
        if spec.check is not None and body[name] is not None:
            spec.check(body)
    validation.fields(body, accepted, required=required)


def _call(body: Mapping[str, Any], max_tokens: Optional[int], betas: Iterable[str]) -> FeatureCall:
    model = validation.string(body, "model", min_len=1, max_len=100)
    temperature = _number(body, "temperature", 0, 1)
    _number(body, "top_p", 0, 1)
    if body.get("top_k") is not None:
        validation.integer(body, "top_k", minimum=0, maximum=1_000_000)
    _check_stop_sequences(body.get("stop_sequences"))
    _check_metadata(body.get("metadata"))
    _check_tools(body.get("tools"), body.get("tool_choice"))
    _check_thinking(body.get("thinking"))
    _check_cache_control(body.get("cache_control"), "cache_control")
    params = {name: body[name] for name in PASSED_THROUGH if body.get(name) is not None}
    return FeatureCall(messages=_messages(body.get("messages")), system=_system(body.get("system")),
                       max_tokens=max_tokens, temperature=temperature, model=model, params=params,
                       sampling_defaults=ANTHROPIC_DEFAULTS, betas=tuple(betas))


def _number(body: Mapping[str, Any], name: str, minimum: float, maximum: float) -> Optional[float]:
    return validation.number(body, name, minimum=minimum, maximum=maximum) if body.get(name) is not None else None


def _system(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value or None
    if isinstance(value, list) and all(isinstance(b, dict) and b.get("type") == "text"
                                       and isinstance(b.get("text"), str) for b in value):
        for index, block in enumerate(value):
            _check_cache_control(block.get("cache_control"), f"system.{index}.cache_control")
        return value or None
    raise BadRequest("system must be a string or a list of text blocks.", code="invalid_field")


def _messages(value: Any) -> list:
    if not isinstance(value, list) or not value:
        raise BadRequest("messages must be a non-empty list.", code="invalid_field")
    if len(value) > MAX_MESSAGES:
        raise BadRequest(f"At most {MAX_MESSAGES} messages are allowed.", code="too_many_messages")
    for index, message in enumerate(value):
        where = f"messages.{index}"
        if not isinstance(message, dict):
            raise BadRequest(f"{where} must be an object.", code="invalid_field")
        unknown = sorted(set(message) - MESSAGE_FIELDS)
        if unknown:
            raise BadRequest(f"{where}: unsupported field(s) {', '.join(unknown)}; a message may have "
                             f"{', '.join(sorted(MESSAGE_FIELDS))}. See {CONTRACT}.", code="unknown_field")
        if message.get("output_config") is not None and not isinstance(message["output_config"], dict):
            raise BadRequest(f"{where}.output_config must be an object.", code="invalid_field")
        if message.get("role") not in ROLES:
            raise BadRequest(f"{where}.role must be one of: {', '.join(ROLES)}.", code="invalid_field")
        content = message.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, list) or not content:
            raise BadRequest(f"{where}.content must be a string or a non-empty list of blocks.",
                             code="invalid_field")
        _check_blocks(content, f"{where}.content")
    if value[0]["role"] != "user":
        raise BadRequest("The first message must come from the user.", code="invalid_field")
    return value


def _check_blocks(blocks: list, where: str) -> None:
    for index, block in enumerate(blocks):
        at = f"{where}.{index}"
        kind = _type_of(block)
        if kind not in BLOCK_TYPES:
            raise BadRequest(f"{at}: block type {kind!r} is not supported; supported: {', '.join(sorted(BLOCK_TYPES))}.",
                             code="unsupported_block")
        _check_cache_control(block.get("cache_control"), f"{at}.cache_control")
        if kind in ("image", "document"):
            _check_source(block, kind, at)
        if kind == "tool_result" and isinstance(block.get("content"), list):
            _check_blocks(block["content"], f"{at}.content")


def _check_source(block: Mapping[str, Any], kind: str, at: str) -> None:
    source = block.get("source")
    allowed = IMAGE_SOURCES if kind == "image" else DOCUMENT_SOURCES
    source_type = _type_of(source)
    if source_type == "file":
        raise BadRequest(f"{at}.source: file sources are not available; send the data inline or by URL.",
                         code="unsupported_block")
    if source_type not in allowed:
        raise BadRequest(f"{at}.source.type must be one of: {', '.join(sorted(allowed))}.", code="invalid_field")
    if source_type == "content":
        content = source.get("content")
        if not isinstance(content, list):
            raise BadRequest(f"{at}.source.content must be a list of blocks.", code="invalid_field")
        _check_blocks(content, f"{at}.source.content")


def _type_of(value: Any) -> Optional[str]:
    """An object's `type` when it is a string; anything else (a list, an object) is no type at all."""
    kind = value.get("type") if isinstance(value, dict) else None
    return kind if isinstance(kind, str) else None


def _check_stop_sequences(value: Any) -> None:
    if value is not None and (not isinstance(value, list)
                              or not all(isinstance(s, str) and s for s in value)):
        raise BadRequest("stop_sequences must be a list of non-empty strings.", code="invalid_field")


def _check_metadata(value: Any) -> None:
    if value is not None and (not isinstance(value, dict) or set(value) - {"user_id"}
                              or not isinstance(value.get("user_id", ""), (str, type(None)))):
        raise BadRequest("metadata may only hold user_id, a string.", code="invalid_field")


def _check_tools(tools: Any, choice: Any) -> None:
    if tools is not None:
        if not isinstance(tools, list):
            raise BadRequest("tools must be a list.", code="invalid_field")
        for index, tool in enumerate(tools):
            if not isinstance(tool, dict):
                raise BadRequest(f"tools.{index} must be an object.", code="invalid_field")
            kind = tool.get("type")
            if kind in (None, "custom"):
                if not isinstance(tool.get("name"), str) or not isinstance(tool.get("input_schema"), dict):
                    raise BadRequest(f"tools.{index} needs a name and an input_schema.", code="invalid_field")
            elif not (isinstance(kind, str) and kind.startswith(bounds.COUNTED_TOOL_PREFIXES)):
                raise BadRequest(f"tools.{index}: tool type {kind!r} is not available: server tools bill per use, "
                                 "which a budget cannot bound. Define the tool yourself instead.",
                                 code="unsupported_tool")
            _check_cache_control(tool.get("cache_control"), f"tools.{index}.cache_control")
    if choice is not None and _type_of(choice) not in TOOL_CHOICES:
        raise BadRequest(f"tool_choice.type must be one of: {', '.join(sorted(TOOL_CHOICES))}.",
                         code="invalid_field")


def _check_thinking(value: Any) -> None:
    if value is None:
        return
    if _type_of(value) not in THINKING_TYPES:
        raise BadRequest(f"thinking.type must be one of: {', '.join(sorted(THINKING_TYPES))}.", code="invalid_field")
    if value["type"] == "enabled":
        validation.integer(value, "budget_tokens", minimum=1, maximum=1_000_000)


def _check_cache_control(value: Any, where: str) -> None:
    if value is None:
        return
    if not isinstance(value, dict) or value.get("type") != "ephemeral" or value.get("ttl", "5m") not in ("5m", "1h"):
        raise BadRequest(f'{where} must be {{"type": "ephemeral"}} with an optional ttl of "5m" or "1h".',
                         code="invalid_field")


# --- responses ----------------------------------------------------------------------------------

def response(result: GatewayResult) -> Dict[str, Any]:
    return result.reply.message()


def headers(request_id: str, cost_micros: Optional[int]) -> Dict[str, str]:
    out = {"x-tessera-request-id": request_id}
    if cost_micros is not None:
        out["x-tessera-cost-usd"] = usd(cost_micros)
    return out


def count_response(input_tokens: int) -> Dict[str, Any]:
    return {"input_tokens": input_tokens}


def is_v1(method_arn: str) -> bool:
    """Whether an authorizer's method ARN (arn:...:<api>/<stage>/<METHOD>/<path>) is under /v1/."""
    parts = str(method_arn).split(":", 5)[-1].split("/")
    return len(parts) > 3 and parts[3] == "v1"


def error_type(status: int) -> str:
    return _ERROR_TYPES.get(status, "api_error")


def error_body(error: TesseraError) -> Dict[str, Any]:
    return {"type": "error", "error": {"type": error_type(error.status), "message": error.message,
                                       "code": error.code, **error.details}}
