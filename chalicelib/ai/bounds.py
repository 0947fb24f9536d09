"""The most a call can cost, worked out before it is made: what a hard budget reserves.

    worst case = input token bound x the dearest rate an input token can be billed at
               + max_tokens x the output rate

Every figure below is an upper bound on what Anthropic can bill for the call, with its source in
docs/cost-bounds.md:

- Text and JSON (system, text blocks, tool definitions, tool_use and tool_result blocks, thinking
  blocks given back): no token is shorter than one UTF-8 byte, so a string's bytes bound its tokens;
  a block counts as the bytes of its compact JSON, which holds every string it carries.
- Framing: a fixed allowance per request, message, block and tool, and the tool-use system prompt
  Anthropic adds when `tools` is present.
- Images: the API resizes an image to the model's native resolution (long edge 1,568 px, or 2,576 px
  on the high-resolution models), pads it to 28 px and bills one token per 28 x 28 patch. The size
  comes from an inline PNG's or JPEG's header, else it is taken as the largest square that fits.
- PDFs and Anthropic-defined tools have no bound in their bytes, so the request is counted first with
  upstream's free token-counting endpoint (`needs_upstream_count`); its count, plus a margin for the
  small differences the documentation allows, is the input bound.
- Thinking: thinking tokens are output tokens and count within max_tokens, so max_tokens bounds them;
  so is the effort `output_config` asks for. Its `format` (a JSON schema) is counted as its bytes.
- Messages of every role (system-role messages in `messages` included) count alike.
- Citations: documents with citations enabled are chunked upstream, which adds tokens their bytes do
  not bound, so such a request is counted upstream first, like a PDF.
- Rates: a call whose input bound is above 200k tokens on a long-context model is reserved at the
  long-context rates, and one asking for `speed: "fast"` at fast-mode rates (pricing.rates).
- Cache writes: with any `cache_control`, every input token is priced at the cache-write rate (the
  1-hour rate if any breakpoint asks for it), which is above the plain and the cache-read rates.

Money is exact: Decimal micro-dollars, rounded up once.
"""
from __future__ import annotations

import base64
import binascii
import json
import struct
from decimal import Decimal
from typing import Any, Iterable, Mapping, Optional, Tuple

from chalicelib import pricing
from chalicelib.ai.client import ModelCall

OVERHEAD_TOKENS = 16
PER_MESSAGE_TOKENS = 8
PER_BLOCK_TOKENS = 8
PER_TOOL_TOKENS = 32
TOOL_SYSTEM_PROMPT_TOKENS = 346  # tool_choice auto/none; any/tool is 313
PER_IMAGE_TOKENS = 16
PATCH_PX = 28
STANDARD_LONG_EDGE_PX = 1568
HIGH_RES_LONG_EDGE_PX = 2576
HIGH_RES_MODELS = frozenset({"claude-opus-5-5", "claude-opus-4-7", "claude-opus-4-8", "claude-opus-5"})
COUNT_MARGIN_TOKENS = 64
COUNT_MARGIN_DIVISOR = 20  # +5% of upstream's count

# Anthropic-defined client tools: their definitions are expanded upstream, so their cost is counted there.
COUNTED_TOOL_PREFIXES = ("bash_", "text_editor_", "computer_", "memory_")


def worst_case_micros(call: ModelCall, counted_input_tokens: Optional[int] = None) -> int:
    """An upper bound on the call's cost in micro-dollars. Pass upstream's count when
    `needs_upstream_count(call)`; without one such a call cannot be bounded."""
    tokens = input_token_bound(call, counted_input_tokens)
    price = pricing.rates(call.model, tokens, fast=call.params.get("speed") == "fast")
    exact = Decimal(tokens) * input_rate(call, price) + Decimal(call.max_tokens) * price.output
    return pricing.round_up(exact)


def input_rate(call: ModelCall, price: pricing.ModelPrice) -> Decimal:
    ttls = set(_cache_ttls(call.body()))
    if not ttls:
        return price.input
    return price.highest_input if "1h" in ttls else max(price.input, price.cache_write)


def input_token_bound(call: ModelCall, counted_input_tokens: Optional[int] = None) -> int:
    if counted_input_tokens is not None:
        return counted_input_tokens + counted_input_tokens // COUNT_MARGIN_DIVISOR + COUNT_MARGIN_TOKENS
    if needs_upstream_count(call):
        raise ValueError("this call has PDF documents or Anthropic-defined tools: count it upstream first")
    tokens = OVERHEAD_TOKENS + _system_tokens(call.system)
    tools = call.params.get("tools") or []
    if tools:
        tokens += TOOL_SYSTEM_PROMPT_TOKENS + sum(PER_TOOL_TOKENS + _json_bytes(tool) for tool in tools)
    for name in ("tool_choice", "output_config", "output_format"):
        if call.params.get(name) is not None:
            tokens += _json_bytes(call.params[name])
    for message in call.messages:
        own = {key: value for key, value in message.items() if key not in ("role", "content")}
        tokens += PER_MESSAGE_TOKENS + _content_tokens(message.get("content"), call.model) \
            + (_json_bytes(own) if own else 0)
    return tokens


def needs_upstream_count(call: ModelCall) -> bool:
    """Whether the call holds something whose tokens its bytes do not bound: a PDF, a document with
    citations or an Anthropic tool."""
    if any(_is_counted_tool(tool) for tool in call.params.get("tools") or []):
        return True
    return any(_is_pdf(block) or _cites(block)
               for message in call.messages for block in _blocks(message.get("content")))


def image_tokens(source: Mapping[str, Any], model: str) -> int:
    """The most one image can cost: its size after the API's resize, in 28 x 28 patches."""
    long_edge = HIGH_RES_LONG_EDGE_PX if model in HIGH_RES_MODELS else STANDARD_LONG_EDGE_PX
    size = image_size(source.get("data")) if source.get("type") == "base64" else None
    width, height = size or (long_edge, long_edge)
    longest = max(width, height)
    if longest > long_edge:  # scaled so the long edge fits, each side rounded up
        width, height = _ceil_div(width * long_edge, longest), _ceil_div(height * long_edge, longest)
    return _ceil_div(width, PATCH_PX) * _ceil_div(height, PATCH_PX) + PER_IMAGE_TOKENS


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def image_size(data: Any) -> Optional[Tuple[int, int]]:
    """(width, height) from a base64 PNG or JPEG header; None when it cannot be read."""
    if not isinstance(data, str):
        return None
    try:
        raw = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        return None
    for reader in (_png_size, _jpeg_size):
        size = reader(raw)
        if size and size[0] > 0 and size[1] > 0:
            return size
    return None


# --- walking a request --------------------------------------------------------------------------

def _blocks(content: Any) -> Iterable[Mapping[str, Any]]:
    """A content value's blocks, nested ones (tool results, content documents) included."""
    if not isinstance(content, list):
        return
    for block in content:
        if not isinstance(block, Mapping):
            continue
        yield block
        if block.get("type") == "tool_result":
            yield from _blocks(block.get("content"))
        if block.get("type") == "document" and (block.get("source") or {}).get("type") == "content":
            yield from _blocks(block["source"].get("content"))


def _content_tokens(content: Any, model: str) -> int:
    if isinstance(content, str):
        return PER_BLOCK_TOKENS + len(content.encode("utf-8"))
    return sum(PER_BLOCK_TOKENS + _block_tokens(block, model) for block in _blocks(content))


def _block_tokens(block: Mapping[str, Any], model: str) -> int:
    """One block's own tokens; a block's nested blocks are walked, and counted, separately."""
    kind = block.get("type")
    if kind == "image":
        return image_tokens(block.get("source") or {}, model)
    if kind == "tool_result" and isinstance(block.get("content"), list):
        return _json_bytes({**block, "content": []})
    if kind == "document" and (block.get("source") or {}).get("type") == "content":
        return _json_bytes({**block, "source": {**block["source"], "content": []}})
    return _json_bytes(block)


def _system_tokens(system: Any) -> int:
    if not system:
        return 0
    if isinstance(system, str):
        return len(system.encode("utf-8"))
    return sum(PER_BLOCK_TOKENS + _json_bytes(block) for block in system)


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def _is_pdf(block: Mapping[str, Any]) -> bool:
    return block.get("type") == "document" and (block.get("source") or {}).get("type") in ("base64", "url")


def _cites(block: Mapping[str, Any]) -> bool:
    citations = block.get("citations")
    return block.get("type") in ("document", "search_result") and isinstance(citations, Mapping) \
        and citations.get("enabled") is True


def _is_counted_tool(tool: Any) -> bool:
    kind = tool.get("type") if isinstance(tool, Mapping) else None
    return isinstance(kind, str) and kind.startswith(COUNTED_TOOL_PREFIXES)


def _cache_ttls(node: Any) -> Iterable[str]:
    """The TTL of every cache breakpoint anywhere in the body ("5m" when none is given)."""
    if isinstance(node, Mapping):
        control = node.get("cache_control")
        if isinstance(control, Mapping):
            yield str(control.get("ttl") or "5m")
        for key, value in node.items():
            if key != "cache_control":
                yield from _cache_ttls(value)
    elif isinstance(node, list):
        for value in node:
            yield from _cache_ttls(value)


# --- image headers ------------------------------------------------------------------------------

def _png_size(raw: bytes) -> Optional[Tuple[int, int]]:
    if raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR" and len(raw) >= 24:
        return struct.unpack(">II", raw[16:24])
    return None


_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(raw: bytes) -> Optional[Tuple[int, int]]:
    if raw[:2] != b"\xff\xd8":
        return None
    at = 2
    while at + 9 <= len(raw):
        if raw[at] != 0xFF:
            return None
        marker = raw[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            at += 2
            continue
        length = struct.unpack(">H", raw[at + 2:at + 4])[0]
        if marker in _SOF_MARKERS:
            height, width = struct.unpack(">HH", raw[at + 5:at + 9])
            return width, height
        at += 2 + length
    return None
