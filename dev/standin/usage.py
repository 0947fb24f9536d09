"""What the Anthropic stand-in bills a request for, following Anthropic's documented rules.

Kept apart from Tessera's own worst-case bound (chalicelib/ai/bounds.py) and written independently of
it, so that the tests comparing the two compare two readings of the documentation, not one.

- Text: ceil(utf8_bytes / 4) per string (system text, text blocks, tool results' text).
- Images: resized, keeping the aspect ratio, to the model's native resolution (long edge at most
  1,568 px and at most 1,568 patches; 2,576 px and 4,784 patches on the high-resolution models),
  padded to 28 px, one token per 28 x 28 patch, plus 4 tokens per image block. The size is read from a
  base64 PNG, GIF or JPEG header; any other image (WebP, a URL) is billed as a 2,000 x 2,000 image.
- PDFs: 1,868 tokens a page (a page image at the standard resolution plus 300 tokens of text); pages
  are counted in the file ("/Type /Page"); a URL PDF is 3 pages. count_tokens is an estimate: a
  message bills 1% more than it counts for PDF pages, as the documentation allows ("may differ by a
  small amount").
- Tools: ceil(json_bytes / 4) per definition plus the tool-use system prompt (346 tokens for
  tool_choice auto or none, 313 for any or tool); Anthropic-defined tools cost a fixed definition size.
- Caching: the prompt up to the last cache breakpoint (tools, then system, then messages; a top-level
  cache_control marks the whole prompt) is written to the cache when it is at least 1,024 tokens,
  and read from it while it lives (5 minutes, or 1 hour with ttl "1h").
"""
from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
from typing import Any, Iterable, List, Optional, Tuple

TEXT_BYTES_PER_TOKEN = 4
PATCH = 28
IMAGE_BLOCK_TOKENS = 4
STANDARD = (1568, 1568)  # long edge px, patches
HIGH_RESOLUTION = (2576, 4784)
HIGH_RESOLUTION_MODELS = ("claude-opus-4-7", "claude-opus-4-8", "claude-opus-5", "claude-opus-5-5")
UNKNOWN_IMAGE_SIZE = (2000, 2000)
PDF_PAGE_TOKENS = 1868
URL_PDF_PAGES = 3
PDF_BILLED_PERCENT_OVER_COUNT = 1
TOOL_PROMPT_TOKENS = {"auto": 346, "none": 346, "any": 313, "tool": 313}
ANTHROPIC_TOOL_TOKENS = {"bash_": 245, "text_editor_": 700, "computer_": 735, "memory_": 500}
MIN_CACHEABLE_TOKENS = 1024
CACHE_TTL_SECONDS = {"5m": 300, "1h": 3600}
PAGE_MARKER = re.compile(rb"/Type\s*/Page(?!s)")


def text_tokens(text: str) -> int:
    return math.ceil(len(text.encode("utf-8")) / TEXT_BYTES_PER_TOKEN)


def json_tokens(value: Any) -> int:
    return text_tokens(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


JPEG_FRAME = re.compile(rb"\xff[\xc0-\xc3\xc5-\xc7\xc9-\xcb\xcd-\xcf]..[\x08\x0c](..)(..)", re.S)


def header_size(data: str) -> Optional[Tuple[int, int]]:
    try:
        head = base64.b64decode(data[:87384] + "=" * (-len(data[:87384]) % 4))  # the first 64 KiB
    except ValueError:
        return None
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return width, height
    if head[:6] in (b"GIF87a", b"GIF89a"):
        width, height = struct.unpack("<HH", head[6:10])
        return width, height
    frame = JPEG_FRAME.search(head) if head[:2] == b"\xff\xd8" else None
    if frame:
        height, width = struct.unpack(">H", frame.group(1))[0], struct.unpack(">H", frame.group(2))[0]
        return width, height
    return None


def resized(width: int, height: int, model: str) -> Tuple[int, int]:
    """The largest aspect-preserving size within the model's long edge and patch budget."""
    long_edge, budget = HIGH_RESOLUTION if model in HIGH_RESOLUTION_MODELS else STANDARD
    scale = min(1.0, long_edge / max(width, height))
    while True:
        w, h = max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
        if math.ceil(w / PATCH) * math.ceil(h / PATCH) <= budget:
            return w, h
        scale *= 0.99


def image_tokens(source: dict, model: str) -> int:
    size = header_size(source.get("data", "")) if source.get("type") == "base64" else None
    width, height = resized(*(size or UNKNOWN_IMAGE_SIZE), model)
    return math.ceil(width / PATCH) * math.ceil(height / PATCH) + IMAGE_BLOCK_TOKENS


def pdf_pages(source: dict) -> int:
    if source.get("type") == "url":
        return URL_PDF_PAGES
    try:
        raw = base64.b64decode(source.get("data", ""))
    except ValueError:
        return 1
    return max(1, len(PAGE_MARKER.findall(raw)))


class Bill:
    """Tokens of one request, in prompt order, with where the last cache breakpoint falls."""

    def __init__(self, model: str, for_count: bool) -> None:
        self.model, self.for_count = model, for_count
        self.tokens = 0
        self.cached_prefix = 0  # tokens up to and including the last cache breakpoint
        self.ttl: Optional[str] = None
        self._parts: List[str] = []
        self._prefix_parts = 0

    def add(self, tokens: int, cache_control: Any = None, item: Any = None) -> None:
        self.tokens += tokens
        self._parts.append(json.dumps(item, sort_keys=True))
        if isinstance(cache_control, dict):
            self.cached_prefix = self.tokens
            self._prefix_parts = len(self._parts)
            self.ttl = cache_control.get("ttl") or "5m"

    def prefix_key(self) -> str:
        """What identifies the cached prefix: the model and every part of the prompt up to the breakpoint."""
        return hashlib.sha256((self.model + "".join(self._parts[:self._prefix_parts])).encode()).hexdigest()

    def block(self, block: dict) -> None:
        kind = block.get("type")
        control = block.get("cache_control")
        if kind == "text":
            self.add(text_tokens(block.get("text", "")), control, block)
        elif kind == "image":
            self.add(image_tokens(block.get("source") or {}, self.model), control, block)
        elif kind == "document":
            self.document(block)
        elif kind == "tool_result":
            content = block.get("content")
            if isinstance(content, list):
                for inner in content:
                    self.block(inner)
                self.add(text_tokens(str(block.get("tool_use_id", ""))), control, block.get("tool_use_id"))
            else:
                self.add(text_tokens(str(content or "")) + text_tokens(str(block.get("tool_use_id", ""))),
                         control, block)
        elif kind == "tool_use":
            self.add(text_tokens(block.get("name", "")) + json_tokens(block.get("input", {})), control, block)
        elif kind == "thinking":
            self.add(text_tokens(block.get("thinking", "")), control, block)
        else:
            self.add(json_tokens(block), control, block)

    def document(self, block: dict) -> None:
        source = block.get("source") or {}
        kind = source.get("type")
        for extra in ("title", "context"):
            if isinstance(block.get(extra), str):
                self.add(text_tokens(block[extra]), item=block[extra])
        control = block.get("cache_control")
        if kind == "text":
            self.add(text_tokens(source.get("data", "")), control, block)
        elif kind == "content":
            for inner in source.get("content") or []:
                self.block(inner)
            self.add(0, control)
        else:
            tokens = pdf_pages(source) * PDF_PAGE_TOKENS
            if not self.for_count:
                tokens += math.ceil(tokens * PDF_BILLED_PERCENT_OVER_COUNT / 100)
            self.add(tokens, control, block)


def bill(body: dict, for_count: bool = False) -> Bill:
    """Every input token of the request body, in the order the prompt is built."""
    result = Bill(body["model"], for_count)
    tools = body.get("tools") or []
    if tools:
        choice = (body.get("tool_choice") or {}).get("type", "auto")
        result.add(TOOL_PROMPT_TOKENS.get(choice, 346), item=choice)
        for tool in tools:
            kind = str(tool.get("type") or "")
            fixed = next((n for prefix, n in ANTHROPIC_TOOL_TOKENS.items() if kind.startswith(prefix)), None)
            result.add(fixed if fixed is not None else json_tokens(tool), tool.get("cache_control"), tool)
    system = body.get("system")
    if isinstance(system, str):
        result.add(text_tokens(system), item=system)
    for block in system if isinstance(system, list) else []:
        result.block(block)
    for message in body["messages"]:
        content = message["content"]
        for block in ([{"type": "text", "text": content}] if isinstance(content, str) else content):
            result.block(block)
    if isinstance(body.get("cache_control"), dict):
        result.add(0, body["cache_control"])
    return result


def usage_of(body: dict, cache: dict, now: float) -> dict:
    """The usage a message bills, reading and writing `cache` (prefix key -> expiry time)."""
    billed = bill(body)
    written = read = 0
    if billed.cached_prefix >= MIN_CACHEABLE_TOKENS:
        key = billed.prefix_key()
        if cache.get(key, 0) > now:
            read = billed.cached_prefix
        else:
            written = billed.cached_prefix
            cache[key] = now + CACHE_TTL_SECONDS[billed.ttl or "5m"]
    one_hour = written if billed.ttl == "1h" else 0
    return {"input_tokens": billed.tokens - written - read, "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
            "cache_creation": {"ephemeral_5m_input_tokens": written - one_hour, "ephemeral_1h_input_tokens": one_hour}}


def blocks_of(content: Any) -> List[dict]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def texts_of(blocks: Iterable[dict]) -> str:
    parts = []
    for block in blocks:
        if block.get("type") == "text":
            parts.append(block.get("text", ""))
        elif block.get("type") == "tool_result":
            content = block.get("content")
            inner = texts_of(content) if isinstance(content, list) else str(content or "")
            parts.append(f"tool_result({block.get('tool_use_id')}): {inner}")
    return "".join(parts)
