"""The worst-case bound of each input kind, in exact micro-dollars from the price table.

Sonnet 4.6: input 3, output 15, 5-minute cache write 3.75, 1-hour cache write 6 micro-dollars per token.
Framing allowances: 16 per request, 8 per message, 8 per block, 32 per tool, 346 for the tool prompt."""
from __future__ import annotations

import pytest

from chalicelib.ai import bounds
from chalicelib.ai.client import ModelCall
from content_blocks import image, jpeg, png

SONNET = "claude-sonnet-4-6"


def call(content, system=None, model=SONNET, max_tokens=100, **params):
    return ModelCall(model=model, max_tokens=max_tokens, temperature=None,
                     messages=[{"role": "user", "content": content}], system=system, params=params)


def test_text_is_bounded_by_its_bytes_plus_framing():
    # 16 + len("sys") 3 + message 8 + block 8 + len("hello") 5 = 40 tokens; 40 x 3 + 100 x 15
    assert bounds.input_token_bound(call("hello", system="sys")) == 40
    assert bounds.worst_case_micros(call("hello", system="sys")) == 1_620


def test_multibyte_text_counts_bytes_not_characters():
    # "€" is 3 bytes: 16 + 8 + 8 + 3
    assert bounds.input_token_bound(call("€")) == 35


def test_large_png_is_bounded_after_the_resize_to_1568_px():
    # 3000 x 2000 -> 1568 x ceil(1045.3) = 1046 -> 56 x 38 patches = 2128, + 16 per image
    assert bounds.image_tokens(image(png(3000, 2000))["source"], SONNET) == 2_144
    # 16 + 8 (message) + 8 (block) + 2144 = 2176 tokens; 2176 x 3 + 100 x 15
    assert bounds.worst_case_micros(call([image(png(3000, 2000))])) == 8_028


def test_small_image_is_bounded_by_its_own_patches():
    # 100 x 50 -> 4 x 2 patches + 16
    assert bounds.image_tokens(image(png(100, 50))["source"], SONNET) == 24


def test_jpeg_size_comes_from_its_frame_header():
    assert bounds.image_size(jpeg(640, 480)) == (640, 480)
    # 640 x 480: 23 x 18 patches + 16
    assert bounds.image_tokens({"type": "base64", "data": jpeg(640, 480)}, SONNET) == 430


def test_url_or_unreadable_image_is_the_largest_square():
    assert bounds.image_tokens(image(url="https://example.com/a.png")["source"], SONNET) == 56 * 56 + 16
    assert bounds.image_tokens({"type": "base64", "data": "bm90IGFuIGltYWdl"}, SONNET) == 56 * 56 + 16
    assert bounds.image_size("bm90IGFuIGltYWdl") is None


def test_high_resolution_models_allow_2576_px():
    assert bounds.image_tokens(image(url="https://example.com/a.png")["source"], "claude-opus-4-7") == 92 * 92 + 16


def test_tools_add_their_json_framing_and_the_tool_prompt():
    tool = {"name": "t", "input_schema": {"type": "object"}}
    tool_bytes = len('{"name":"t","input_schema":{"type":"object"}}')
    choice_bytes = len('{"type":"auto"}')
    expected = 16 + 8 + 8 + 2 + 346 + 32 + tool_bytes + choice_bytes
    assert bounds.input_token_bound(call("hi", tools=[tool], tool_choice={"type": "auto"})) == expected


def test_tool_results_count_their_text_and_nested_images():
    result = {"type": "tool_result", "tool_use_id": "toolu_1",
              "content": [{"type": "text", "text": "sunny"}, image(png(28, 28))]}
    own = len('{"type":"tool_result","tool_use_id":"toolu_1","content":[]}')
    text = len('{"type":"text","text":"sunny"}')
    # message 8; tool_result block 8 + own; text block 8 + text; image block 8 + (1 patch + 16)
    assert bounds.input_token_bound(call([result])) == 16 + 8 + 8 + own + 8 + text + 8 + 17


def test_thinking_counts_within_max_tokens():
    thinking = {"type": "enabled", "budget_tokens": 1024}
    # (16 + 8 + 8 + 2) x 3 + 2000 x 15, with or without thinking: its tokens are output tokens
    assert bounds.worst_case_micros(call("hi", max_tokens=2000)) == 30_102
    assert bounds.worst_case_micros(call("hi", max_tokens=2000, thinking=thinking)) == 30_102


@pytest.mark.parametrize("control,expected", [
    ({"type": "ephemeral"}, 1_890),             # (16 + 8 + 8 + 72 bytes) = 104 tokens x 3.75 + 1500
    ({"type": "ephemeral", "ttl": "1h"}, 2_190),  # (16 + 8 + 8 + 83 bytes) = 115 tokens x 6 + 1500
])
def test_cache_breakpoints_price_every_input_token_at_the_write_rate(control, expected):
    block = {"type": "text", "text": "x" * 10, "cache_control": control}
    assert bounds.worst_case_micros(call([block])) == expected


def test_top_level_cache_control_prices_at_the_write_rate():
    # 34 tokens x 3.75 = 127.5, rounded up, + 1500 (plain: 34 x 3 + 1500 = 1602)
    assert bounds.worst_case_micros(call("hi")) == 1_602
    assert bounds.worst_case_micros(call("hi", cache_control={"type": "ephemeral"})) == 1_628


def test_pdfs_and_anthropic_tools_are_counted_upstream_with_a_margin():
    pdf = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}}
    assert bounds.needs_upstream_count(call([pdf]))
    assert bounds.needs_upstream_count(call("hi", tools=[{"type": "bash_20250124", "name": "bash"}]))
    assert not bounds.needs_upstream_count(call("hi", tools=[{"name": "t", "input_schema": {}}]))
    with pytest.raises(ValueError):
        bounds.input_token_bound(call([pdf]))
    # 1000 counted + 5% + 64
    assert bounds.input_token_bound(call([pdf]), counted_input_tokens=1000) == 1_114
    assert bounds.worst_case_micros(call([pdf]), counted_input_tokens=1000) == 1_114 * 3 + 100 * 15


def test_text_documents_are_bounded_by_their_bytes():
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "abc"}}
    assert not bounds.needs_upstream_count(call([document]))
    own = len('{"type":"document","source":{"type":"text","media_type":"text/plain","data":"abc"}}')
    assert bounds.input_token_bound(call([document])) == 16 + 8 + 8 + own
