"""The stand-in's checks of a Messages API request, shallow as the API's first pass, and its error shape.

A request that fails is answered with `RequestError`'s status and Anthropic's error envelope (dev/standin/server.py).
"""
from __future__ import annotations

import math

BLOCK_TYPES = {"text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking",
               "search_result", "tool_reference"}


class RequestError(Exception):
    """An error answered with the Anthropic error shape."""

    def __init__(self, status: int, error_type: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.headers = headers or {}


def invalid(message: str) -> RequestError:
    return RequestError(400, "invalid_request_error", message)


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_blocks(blocks: object, where: str) -> None:
    if isinstance(blocks, str):
        return
    if not isinstance(blocks, list) or not blocks:
        raise invalid(f"{where}: must be a string or a non-empty list of content blocks")
    for index, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in BLOCK_TYPES:
            raise invalid(f"{where}.{index}.type: must be one of {sorted(BLOCK_TYPES)}")
        if kind == "text" and not isinstance(block.get("text"), str):
            raise invalid(f"{where}.{index}.text: must be a string")
        if kind in ("image", "document") and not isinstance(block.get("source"), dict):
            raise invalid(f"{where}.{index}.source: field required")
        if kind == "tool_result" and isinstance(block.get("content"), list):
            validate_blocks(block["content"], f"{where}.{index}.content")


def validate_system(system: object) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list) or not all(isinstance(b, dict) and b.get("type") == "text"
                                               and isinstance(b.get("text"), str) for b in system):
        raise invalid("system: must be a string or a list of text blocks")


def validate_messages(messages: object) -> None:
    if not isinstance(messages, list) or not messages:
        raise invalid("messages: must be a non-empty list")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid(f"messages.{index}: must be an object")
        if message.get("role") not in ("user", "assistant", "system"):
            raise invalid(f'messages.{index}.role: must be "user", "assistant" or "system"')
        if "content" not in message:
            raise invalid(f"messages.{index}.content: field required")
        validate_blocks(message["content"], f"messages.{index}.content")


def validate_tools(body: dict) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise invalid("tools: must be a list")
        for index, tool in enumerate(tools):
            custom = isinstance(tool, dict) and tool.get("type") in (None, "custom")
            if custom and (not isinstance(tool.get("name"), str) or not isinstance(tool.get("input_schema"), dict)):
                raise invalid(f"tools.{index}: a custom tool needs name and input_schema")
    choice = body.get("tool_choice")
    if choice is not None and (not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none")):
        raise invalid("tool_choice.type: must be auto, any, tool or none")


def validate_thinking(body: dict) -> None:
    thinking = body.get("thinking")
    if thinking is None:
        return
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "adaptive", "disabled"):
        raise invalid("thinking.type: must be enabled, adaptive or disabled")
    if thinking["type"] == "enabled":
        budget = thinking.get("budget_tokens")
        if not is_int(budget) or budget < 1024:
            raise invalid("thinking.budget_tokens: must be an integer >= 1024")
        if "max_tokens" in body and budget >= body["max_tokens"]:
            raise invalid("thinking.budget_tokens: must be less than max_tokens")


def validate_request(body: object, counting: bool = False) -> dict:
    """Checks the body as the Messages API would (shallowly) and returns it."""
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    if body.get("stream") not in (None, False, True):
        raise invalid("stream: must be a boolean")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise invalid("model: must be a non-empty string")
    if not counting and (not is_int(body.get("max_tokens")) or body["max_tokens"] < 1):
        raise invalid("max_tokens: must be an integer >= 1")
    validate_messages(body.get("messages"))
    validate_system(body.get("system"))
    for name, low, high in (("temperature", 0, 1), ("top_p", 0, 1)):
        value = body.get(name)
        if value is not None and (not is_number(value) or not low <= value <= high):
            raise invalid(f"{name}: must be a number between {low} and {high}")
    if body.get("top_k") is not None and (not is_int(body["top_k"]) or body["top_k"] < 0):
        raise invalid("top_k: must be an integer >= 0")
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(x, str) and x for x in stops)):
        raise invalid("stop_sequences: must be a list of non-empty strings")
    validate_tools(body)
    validate_thinking(body)
    return body
