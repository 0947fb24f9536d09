"""The Anthropic stand-in's replies: deterministic content blocks, and the same message as an event stream.

Content, in order:

- thinking (when `thinking.type` is "enabled" or "adaptive"): "[stand-in] thinking about: <text>", cut to
  budget_tokens, with a signature;
- with `tools` (and tool_choice other than "none") and no tool_result in the last user turn: a tool_use
  block for the tool a `[[standin:tool=NAME {input}]]` directive in the last user turn names (with its
  JSON input, if given), else the one tool_choice names, else the first tool (unless `directed_only`),
  whose input has each required property of its input_schema (string "standin", number 1, boolean
  true, array [], object {}, or an enum's first value); stop_reason "tool_use";
- otherwise one text block, "[stand-in] model=<model>; system=<first 200 chars>; reply to: <first 200
  chars of the last user turn's text and tool results>", cut at the first stop sequence it contains
  (stop_reason "stop_sequence") or at max_tokens (stop_reason "max_tokens"); with `[[standin:fill]]` in the
  last user turn, the text goes on (the reply repeated) until it is cut at max_tokens: an answer as long as
  the call allowed.

Output tokens are the thinking's, the text's and the tool input's tokens (ceil(utf8_bytes / 4)).
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Iterator, List, Optional, Tuple

from dev.standin.usage import blocks_of, json_tokens, text_tokens, texts_of

PREVIEW_CHARS = 200
TEXT_CHUNK_CHARS = 24
TOOL_DIRECTIVE = re.compile(r"\[\[standin:tool=([A-Za-z0-9_-]+)(?: (\{.*?\}))?\]\]", re.S)
FILL = "[[standin:fill]]"
SAMPLE_VALUES = {"string": "standin", "integer": 1, "number": 1, "boolean": True, "array": [], "object": {}}


def truncate_to_tokens(text: str, tokens: int) -> str:
    return text.encode("utf-8")[:tokens * 4].decode("utf-8", errors="ignore")


def last_user_turn(body: dict) -> List[dict]:
    users = [m for m in body["messages"] if m["role"] == "user"]
    return blocks_of(users[-1]["content"]) if users else []


def system_text(body: dict) -> str:
    system = body.get("system")
    if isinstance(system, list):
        return "".join(block.get("text", "") for block in system)
    return system or ""


def sample_input(schema: dict) -> dict:
    properties = schema.get("properties") or {}
    wanted = schema.get("required") or list(properties)
    sample = {}
    for name in wanted:
        spec = properties.get(name) or {}
        sample[name] = spec["enum"][0] if spec.get("enum") else SAMPLE_VALUES.get(spec.get("type"), "standin")
    return sample


def chosen_tool(body: dict, directed_only: bool = False) -> Tuple[Optional[dict], Optional[dict]]:
    """The tool to call and the input a directive gives it (None: a sample from its schema)."""
    tools = body.get("tools") or []
    choice = body.get("tool_choice") or {"type": "auto"}
    if not tools or choice.get("type") == "none":
        return None, None
    if any(block.get("type") == "tool_result" for block in last_user_turn(body)):
        return None, None
    directive = TOOL_DIRECTIVE.search(texts_of(last_user_turn(body)))
    if directive:
        named = next((tool for tool in tools if tool.get("name") == directive.group(1)), None)
        if named is not None:
            return named, json.loads(directive.group(2)) if directive.group(2) else None
    if directed_only:
        return None, None
    if choice.get("type") == "tool":
        return next((tool for tool in tools if tool.get("name") == choice.get("name")), tools[0]), None
    return tools[0], None


def build_content(body: dict, message_id: str,
                  directed_only: bool = False) -> Tuple[List[dict], str, Optional[str], int]:
    """(content blocks, stop_reason, stop_sequence, output tokens) for a validated request body."""
    max_tokens = body["max_tokens"]
    user_text = texts_of(last_user_turn(body))
    content: List[dict] = []
    used = 0
    thinking = body.get("thinking") or {}
    if thinking.get("type") in ("enabled", "adaptive"):
        budget = min(thinking.get("budget_tokens") or max_tokens, max_tokens)
        text = truncate_to_tokens(f"[stand-in] thinking about: {user_text[:PREVIEW_CHARS]}", budget)
        signature = "sig_standin_" + hashlib.sha256(text.encode()).hexdigest()[:24]
        content.append({"type": "thinking", "thinking": text, "signature": signature})
        used += text_tokens(text)
    tool, given = chosen_tool(body, directed_only)
    if tool is not None and used < max_tokens:
        name = tool.get("name") or str(tool.get("type"))
        block = {"type": "tool_use", "id": "toolu_standin_" + message_id.removeprefix("msg_standin_"),
                 "name": name, "input": given if given is not None else sample_input(tool.get("input_schema") or {})}
        content.append(block)
        return content, "tool_use", None, used + text_tokens(name) + json_tokens(block["input"])
    reply = (f"[stand-in] model={body['model']}; system={system_text(body)[:PREVIEW_CHARS] or '(none)'}; "
             f"reply to: {user_text[:PREVIEW_CHARS]}")
    stop_reason, stop_sequence = "end_turn", None
    hits = [(reply.find(s), s) for s in body.get("stop_sequences") or [] if s in reply]
    if hits:
        at, stop_sequence = min(hits)
        reply, stop_reason = reply[:at], "stop_sequence"
    room = max_tokens - used
    if FILL in user_text and not hits:
        reply = (reply + " ") * (room * 4 // (len(reply) + 1) + 2)
    if text_tokens(reply) > room:
        reply, stop_reason, stop_sequence = truncate_to_tokens(reply, room), "max_tokens", None
    content.append({"type": "text", "text": reply})
    return content, stop_reason, stop_sequence, used + (room if stop_reason == "max_tokens" else text_tokens(reply))


# --- the event stream ---------------------------------------------------------------------------

def _chunks(text: str) -> Iterator[str]:
    for start in range(0, len(text), TEXT_CHUNK_CHARS):
        yield text[start:start + TEXT_CHUNK_CHARS]


def _block_events(index: int, block: dict) -> Iterator[Tuple[str, dict]]:
    kind = block["type"]
    if kind == "text":
        yield "content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}}
        for chunk in _chunks(block["text"]):
            yield "content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": chunk}}
    elif kind == "thinking":
        yield "content_block_start", {"index": index,
                                       "content_block": {"type": "thinking", "thinking": "", "signature": ""}}
        for chunk in _chunks(block["thinking"]):
            yield "content_block_delta", {"index": index, "delta": {"type": "thinking_delta", "thinking": chunk}}
        yield "content_block_delta", {"index": index,
                                      "delta": {"type": "signature_delta", "signature": block["signature"]}}
    elif kind == "tool_use":
        yield "content_block_start", {"index": index, "content_block": {**block, "input": {}}}
        for chunk in _chunks(json.dumps(block["input"])):
            yield "content_block_delta", {"index": index, "delta": {"type": "input_json_delta", "partial_json": chunk}}
    yield "content_block_stop", {"index": index}


def stream_events(message: dict) -> Iterator[Tuple[str, dict]]:
    """A whole message as Anthropic's event sequence: (event name, data without its "type")."""
    usage = message["usage"]
    start_usage = {**usage, "output_tokens": 1}
    yield "message_start", {"message": {**message, "content": [], "stop_reason": None, "stop_sequence": None,
                                        "usage": start_usage}}
    yield "ping", {}
    for index, block in enumerate(message["content"]):
        yield from _block_events(index, block)
    yield "message_delta", {"delta": {"stop_reason": message["stop_reason"],
                                      "stop_sequence": message["stop_sequence"]},
                            "usage": {"output_tokens": usage["output_tokens"]}}
    yield "message_stop", {}


def sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps({'type': event, **data})}\n\n".encode("utf-8")
