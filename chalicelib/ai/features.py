"""The feature endpoints' requests: validated, capped, and turned into a model call.

Every cap is checked before anything is reserved or sent upstream: a request
over a cap gets 400 (too many items) or 413 (too large) and costs nothing.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Tuple

from chalicelib import validation
from chalicelib.ai.gateway import FeatureCall
from chalicelib.errors import BadRequest, PayloadTooLarge

MAX_MESSAGES = 50
MAX_MESSAGE_CHARS = 100_000
MAX_TOTAL_CHARS = 400_000
MAX_CODE_CHARS = 100_000
MAX_DOCUMENT_CHARS = 300_000
MAX_QUESTION_CHARS = 2_000
MAX_TOKENS_FIELD = 200_000

CODE_REVIEW_SYSTEM = ("You are a meticulous senior code reviewer. Point out bugs, security problems and unclear "
                      "code first, then smaller improvements. Quote the lines you discuss.")
DOCUMENT_SYSTEM = ("You analyse documents. Answer only from the document given; say so when it does not "
                   "contain the answer.")


def _text(body: Mapping[str, Any], name: str, max_chars: int, required: bool = True) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise BadRequest(f"{name} must be a non-empty string.", code="invalid_field")
    if len(value) > max_chars:
        raise PayloadTooLarge(f"{name} is longer than {max_chars} characters.")
    return value


def overrides(body: Mapping[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    if body.get("max_tokens") is not None:
        out["max_tokens"] = validation.integer(body, "max_tokens", minimum=1, maximum=MAX_TOKENS_FIELD)
    if body.get("temperature") is not None:
        out["temperature"] = validation.number(body, "temperature", minimum=0, maximum=1)
    return out


def _message_content(message: Mapping[str, Any], index: int) -> Any:
    content = message.get("content")
    if isinstance(content, str):
        if not content:
            raise BadRequest(f"messages[{index}].content must not be empty.", code="invalid_field")
        if len(content) > MAX_MESSAGE_CHARS:
            raise PayloadTooLarge(f"messages[{index}].content is longer than {MAX_MESSAGE_CHARS} characters.")
        return content
    if isinstance(content, list) and content:
        total = 0
        for block in content:
            if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
                raise BadRequest(f"messages[{index}].content blocks must be text blocks.", code="invalid_field")
            total += len(block["text"])
        if total > MAX_MESSAGE_CHARS:
            raise PayloadTooLarge(f"messages[{index}].content is longer than {MAX_MESSAGE_CHARS} characters.")
        return [{"type": "text", "text": block["text"]} for block in content]
    raise BadRequest(f"messages[{index}].content must be a string or a list of text blocks.", code="invalid_field")


def messages(value: Any) -> List[Dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise BadRequest("messages must be a non-empty list.", code="invalid_field")
    if len(value) > MAX_MESSAGES:
        raise BadRequest(f"At most {MAX_MESSAGES} messages are allowed.", code="too_many_messages")
    checked, total = [], 0
    for index, message in enumerate(value):
        if not isinstance(message, dict) or set(message) - {"role", "content"}:
            raise BadRequest(f"messages[{index}] must have only 'role' and 'content'.", code="invalid_field")
        if message.get("role") not in ("user", "assistant"):
            raise BadRequest(f"messages[{index}].role must be 'user' or 'assistant'.", code="invalid_field")
        content = _message_content(message, index)
        total += len(content) if isinstance(content, str) else sum(len(b["text"]) for b in content)
        checked.append({"role": message["role"], "content": content})
    if total > MAX_TOTAL_CHARS:
        raise PayloadTooLarge(f"The messages are longer than {MAX_TOTAL_CHARS} characters in all.")
    if checked[0]["role"] != "user":
        raise BadRequest("The first message must come from the user.", code="invalid_field")
    return checked


def chat(body: Mapping[str, Any]) -> Tuple[FeatureCall, bool]:
    """The call, and whether the client asks for Anthropic's event stream (`"stream": true`)."""
    validation.fields(body, {"messages", "max_tokens", "temperature", "stream"}, required=("messages",))
    stream = validation.boolean(body, "stream") if body.get("stream") is not None else False
    return FeatureCall(messages=messages(body["messages"]), **overrides(body)), stream


def code_review(body: Mapping[str, Any]) -> FeatureCall:
    validation.fields(body, {"code", "language", "focus", "max_tokens", "temperature"}, required=("code",))
    code = _text(body, "code", MAX_CODE_CHARS)
    language = _text(body, "language", 40, required=False)
    focus = _text(body, "focus", 500, required=False)
    ask = f"Review this {language + ' ' if language else ''}code."
    if focus:
        ask += f" Focus on: {focus}"
    fence = "```"
    prompt = f"{ask}\n\n{fence}{language}\n{code}\n{fence}"
    return FeatureCall(messages=[{"role": "user", "content": prompt}], system=CODE_REVIEW_SYSTEM, **overrides(body))


def document_analysis(body: Mapping[str, Any]) -> FeatureCall:
    validation.fields(body, {"document", "question", "max_tokens", "temperature"}, required=("document",))
    document = _text(body, "document", MAX_DOCUMENT_CHARS)
    question = _text(body, "question", MAX_QUESTION_CHARS, required=False) or \
        "Summarise this document and list its key points."
    prompt = f"<document>\n{document}\n</document>\n\n{question}"
    return FeatureCall(messages=[{"role": "user", "content": prompt}], system=DOCUMENT_SYSTEM, **overrides(body))
