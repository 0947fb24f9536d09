"""The worst-case bound of each input kind, in exact micro-dollars from the price table.

Sonnet 4.6: input 3, output 15, 5-minute cache write 3.75, 1-hour cache write 6 micro-dollars per token.
Framing allowances: 16 per request, 8 per message, 8 per block, 32 per tool, 346 for the tool prompt."""
from __future__ import annotations

import base64
import json
import math
import struct
from decimal import ROUND_CEILING, Decimal

import pytest

from chalicelib.ai import bounds
from chalicelib.ai.client import ModelCall
from content_blocks import image, jpeg, png
from published import PUBLISHED

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


# --- exact bounds from the published prices -------------------------------------------------------------------
# Expected amounts below are worked out here from Anthropic's published per-million prices (tests/published.py;
# USD per million tokens is micro-dollars per token), never from chalicelib.pricing. The 1-hour cache-write
# rate is the pricing page's "1h Cache Writes" column ($10 Opus, $6 Sonnet, $2 Haiku). Token counts follow the
# rules and constants of docs/cost-bounds.md, each with its source there: 16 per request, 8 per message, 8 per
# block, 32 per tool, 346 for the tool-use system prompt (Anthropic's tool use pricing page), 28 px patches,
# 16 per image, a 1,568 px long edge (2,576 px on Opus 4.7 and later; Anthropic's vision page), and upstream's
# count + 5% + 64 for what only upstream can count (Anthropic's token counting page: an estimate).

ONE_HOUR_WRITE = {"claude-opus-5-5": "8", "claude-opus-5": "10", "claude-opus-4-8": "10", "claude-opus-4-7": "10", "claude-opus-4-6": "10",
                  "claude-sonnet-4-6": "6", "claude-haiku-4-5": "2"}
HIGH_RES = ["claude-opus-5-5", "claude-opus-5", "claude-opus-4-8", "claude-opus-4-7"]
STANDARD_RES = ["claude-opus-4-6", "claude-sonnet-4-6", "claude-haiku-4-5"]


def published_micros(model, input_tokens, output_tokens, rate="input"):
    """input_tokens at the published input (or 5-minute / 1-hour cache-write) rate + output at the output rate,
    rounded up to a whole micro-dollar."""
    _, input_, output, write_5m, _, _ = PUBLISHED[model]
    per_token = {"input": input_, "5m": write_5m, "1h": ONE_HOUR_WRITE[model]}[rate]
    exact = Decimal(input_tokens) * Decimal(per_token) + Decimal(output_tokens) * Decimal(output)
    return int(exact.to_integral_value(rounding=ROUND_CEILING))


def nbytes(text):
    return len(text.encode("utf-8"))


def compact(value):
    """The bytes of a value's compact JSON, strings unescaped."""
    return nbytes(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def user_call(messages, model=SONNET, max_tokens=100, system=None, **params):
    return ModelCall(model=model, max_tokens=max_tokens, temperature=None, messages=messages, system=system,
                     params=params)


@pytest.mark.parametrize("model", sorted(PUBLISHED))
def test_text_bound_is_every_framing_allowance_plus_every_byte_at_each_models_prices(model):
    messages = [{"role": "user", "content": "Hello"},
                {"role": "assistant", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]},
                {"role": "user", "content": "Bye"}]
    blocks = nbytes('{"type":"text","text":"Hi"}') + nbytes('{"type":"text","text":"there"}')
    # request 16 + system bytes; three messages of 8; a string content is one block of 8 + its bytes
    tokens = 16 + nbytes("Be brief.") + 3 * 8 + (8 + 5) + (8 + 8 + blocks) + (8 + 3)
    call = user_call(messages, model=model, max_tokens=321, system="Be brief.")
    assert bounds.input_token_bound(call) == tokens
    assert bounds.worst_case_micros(call) == published_micros(model, tokens, 321)


def test_a_request_without_system_or_content_costs_only_its_framing():
    call = user_call([{"role": "user"}], max_tokens=7)
    assert bounds.input_token_bound(call) == 16 + 8
    assert bounds.worst_case_micros(call) == published_micros(SONNET, 24, 7)


def test_system_blocks_count_each_blocks_framing_and_compact_json():
    system = [{"type": "text", "text": "Rule one."}, {"type": "text", "text": "Règle deux €"}]
    json_bytes = nbytes('{"type":"text","text":"Rule one."}') + nbytes('{"type":"text","text":"Règle deux €"}')
    call = user_call([{"role": "user", "content": "q"}], system=system, max_tokens=50)
    tokens = 16 + (8 + 8 + json_bytes) + 8 + 8 + 1
    assert bounds.input_token_bound(call) == tokens
    assert bounds.worst_case_micros(call) == published_micros(SONNET, tokens, 50)


@pytest.mark.parametrize("text", ["€", "日本語", "Grüße 👋", "ascii only"])
def test_multibyte_text_counts_its_utf8_bytes_in_system_strings_and_blocks(text):
    # A token is never shorter than a UTF-8 byte: "€" 3 bytes, each kanji 3, "ü" and "ß" 2, "👋" 4.
    utf8 = nbytes(text)
    as_string = user_call([{"role": "user", "content": text}], system=text)
    assert bounds.input_token_bound(as_string) == 16 + utf8 + 8 + 8 + utf8
    # In a block the text is counted inside its compact JSON, unescaped: '{"type":"text","text":"' + text + '"}'
    as_block = user_call([{"role": "user", "content": [{"type": "text", "text": text}]}], max_tokens=9)
    tokens = 16 + 8 + 8 + nbytes('{"type":"text","text":""}') + utf8
    assert bounds.input_token_bound(as_block) == tokens
    assert bounds.worst_case_micros(as_block) == published_micros(SONNET, tokens, 9)


def test_stray_values_in_a_content_list_are_not_blocks():
    call = user_call([{"role": "user", "content": ["stray", 7, {"type": "text", "text": "a"}]}])
    assert bounds.input_token_bound(call) == 16 + 8 + 8 + nbytes('{"type":"text","text":"a"}')


# --- tools --------------------------------------------------------------------------------------------------

TOOL_A = {"name": "a", "input_schema": {"type": "object"}}
TOOL_B = {"name": "lookup", "description": "Find €", "input_schema": {"type": "object", "properties": {}}}
TOOL_A_BYTES = nbytes('{"name":"a","input_schema":{"type":"object"}}')
TOOL_B_BYTES = nbytes('{"name":"lookup","description":"Find €","input_schema":{"type":"object","properties":{}}}')


def test_two_tools_add_the_tool_prompt_once_and_32_plus_json_each():
    call = user_call([{"role": "user", "content": "hi"}], tools=[TOOL_A, TOOL_B], max_tokens=10)
    tokens = 16 + 346 + (32 + TOOL_A_BYTES) + (32 + TOOL_B_BYTES) + 8 + 8 + 2
    assert bounds.input_token_bound(call) == tokens
    assert bounds.worst_case_micros(call) == published_micros(SONNET, tokens, 10)


def test_tool_choice_adds_its_json_bytes():
    choice = {"type": "tool", "name": "lookup"}
    with_tools = user_call([{"role": "user", "content": "hi"}], tools=[TOOL_B], tool_choice=choice)
    assert bounds.input_token_bound(with_tools) == (16 + 346 + 32 + TOOL_B_BYTES
                                                    + nbytes('{"type":"tool","name":"lookup"}') + 8 + 8 + 2)
    alone = user_call([{"role": "user", "content": "hi"}], tool_choice={"type": "none"})
    assert bounds.input_token_bound(alone) == 16 + nbytes('{"type":"none"}') + 8 + 8 + 2


@pytest.mark.parametrize("name, value, compact_json", [
    ("output_config", {"effort": "high", "format": {"type": "json_schema", "schema": {"type": "object"}}},
     '{"effort":"high","format":{"type":"json_schema","schema":{"type":"object"}}}'),
    ("output_format", {"type": "json_schema", "schema": {"type": "object", "description": "€"}},
     '{"type":"json_schema","schema":{"type":"object","description":"€"}}'),
])
def test_output_settings_add_their_json_bytes(name, value, compact_json):
    given = user_call([{"role": "user", "content": "hi"}], **{name: value})
    assert bounds.input_token_bound(given) == 16 + nbytes(compact_json) + 8 + 8 + 2


def test_an_empty_tools_list_adds_no_tool_prompt():
    assert bounds.input_token_bound(user_call([{"role": "user", "content": "hi"}], tools=[])) == 16 + 8 + 8 + 2


@pytest.mark.parametrize("kind", ["bash_20250124", "text_editor_20250728", "computer_20250124", "memory_20250818"])
def test_each_anthropic_defined_tool_must_be_counted_upstream(kind):
    call = user_call([{"role": "user", "content": "hi"}], tools=[TOOL_A, {"type": kind, "name": "x"}])
    assert bounds.needs_upstream_count(call) is True
    with pytest.raises(ValueError, match="count it upstream first"):
        bounds.input_token_bound(call)


def test_custom_and_untyped_tools_are_bounded_by_their_bytes():
    custom = {"type": "custom", "name": "a", "input_schema": {"type": "object"}}
    call = user_call([{"role": "user", "content": "hi"}], tools=[custom, TOOL_A])
    assert bounds.needs_upstream_count(call) is False
    custom_bytes = nbytes('{"type":"custom","name":"a","input_schema":{"type":"object"}}')
    assert bounds.input_token_bound(call) == 16 + 346 + (32 + custom_bytes) + (32 + TOOL_A_BYTES) + 8 + 8 + 2


# --- counted upstream: PDFs --------------------------------------------------------------------------------

BASE64_PDF = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}}
URL_PDF = {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}


@pytest.mark.parametrize("pdf", [BASE64_PDF, URL_PDF], ids=["base64", "url"])
def test_pdfs_anywhere_in_the_messages_must_be_counted_upstream(pdf):
    direct = user_call([{"role": "user", "content": [pdf]}])
    in_tool_result = user_call([{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1", "content": [pdf]}]}])
    in_content_document = user_call([{"role": "user", "content": [
        {"type": "document", "source": {"type": "content", "content": [pdf]}}]}])
    later_message = user_call([{"role": "user", "content": "hi"}, {"role": "user", "content": [pdf]}])
    for call in (direct, in_tool_result, in_content_document, later_message):
        assert bounds.needs_upstream_count(call) is True
        with pytest.raises(ValueError, match="PDF documents or Anthropic-defined tools: count it upstream first"):
            bounds.input_token_bound(call)


def test_text_images_and_documents_without_pdfs_need_no_upstream_count():
    call = user_call([{"role": "user", "content": [
        image(png(10, 10)), {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "a"}},
        {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "b"}]}}]}])
    assert bounds.needs_upstream_count(call) is False


# --- counted upstream: documents and search results with citations -----------------------------------------

TEXT_DOCUMENT = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "a"}}
SEARCH_RESULT = {"type": "search_result", "source": "https://example.com/a", "title": "A",
                 "content": [{"type": "text", "text": "b"}]}


@pytest.mark.parametrize("block", [TEXT_DOCUMENT, SEARCH_RESULT], ids=["text-document", "search-result"])
def test_a_document_or_search_result_with_citations_enabled_must_be_counted_upstream(block):
    cited = {**block, "citations": {"enabled": True}}
    for call in (user_call([{"role": "user", "content": [cited]}]),
                 user_call([{"role": "user", "content": [
                     {"type": "tool_result", "tool_use_id": "t1", "content": [cited]}]}])):
        assert bounds.needs_upstream_count(call) is True
        with pytest.raises(ValueError, match="count it upstream first"):
            bounds.input_token_bound(call)


@pytest.mark.parametrize("citations", [{"enabled": False}, {}, {"enabled": "true"}, True, None],
                         ids=["disabled", "empty", "enabled-as-text", "not-an-object", "null"])
def test_citations_not_enabled_leave_documents_and_search_results_bounded_by_their_bytes(citations):
    for block in (TEXT_DOCUMENT, SEARCH_RESULT):
        assert bounds.needs_upstream_count(user_call([{"role": "user", "content": [
            {**block, "citations": citations}]}])) is False


def test_citations_enabled_on_a_block_that_is_no_document_need_no_upstream_count():
    text = {"type": "text", "text": "a", "citations": {"enabled": True}}
    assert bounds.needs_upstream_count(user_call([{"role": "user", "content": [text]}])) is False


@pytest.mark.parametrize("counted,tokens", [(1013, 1013 + 50 + 64), (0, 64), (19, 19 + 0 + 64), (20, 20 + 1 + 64)])
def test_upstreams_count_gets_five_percent_rounded_down_plus_64(counted, tokens):
    call = user_call([{"role": "user", "content": [BASE64_PDF]}], max_tokens=40)
    assert bounds.input_token_bound(call, counted_input_tokens=counted) == tokens
    assert bounds.worst_case_micros(call, counted_input_tokens=counted) == published_micros(SONNET, tokens, 40)


def test_a_count_given_for_a_plain_call_is_used_instead_of_its_bytes():
    call = user_call([{"role": "user", "content": "x" * 5000}])
    assert bounds.input_token_bound(call, counted_input_tokens=100) == 100 + 5 + 64


def test_a_counted_call_with_a_cache_breakpoint_prices_the_count_at_the_write_rate():
    call = user_call([{"role": "user", "content": [BASE64_PDF]}], max_tokens=40, model="claude-haiku-4-5",
                     cache_control={"type": "ephemeral", "ttl": "1h"})
    assert bounds.worst_case_micros(call, counted_input_tokens=999) == published_micros(
        "claude-haiku-4-5", 999 + 49 + 64, 40, rate="1h")


# --- images -------------------------------------------------------------------------------------------------

def patches_after_resize(width, height, long_edge):
    """Anthropic's vision rule, worked out here: scale so the long edge fits (each side rounded up), then
    one token per started 28 x 28 patch, + 16 for the block."""
    longest = max(width, height)
    if longest > long_edge:
        width, height = math.ceil(width * long_edge / longest), math.ceil(height * long_edge / longest)
    return math.ceil(width / 28) * math.ceil(height / 28) + 16


@pytest.mark.parametrize("model", STANDARD_RES)
@pytest.mark.parametrize("width,height,tokens", [
    (100, 50, 4 * 2 + 16),                 # below the long edge: its own patches
    (56, 28, 2 * 1 + 16),                  # exact multiples of 28
    (57, 29, 3 * 2 + 16),                  # one pixel over starts a new patch each way
    (1568, 1000, 56 * 36 + 16),            # exactly the long edge: not scaled
    (3000, 2000, 56 * 38 + 16),            # 1568 x ceil(1045.33) = 1046
    (800, 6000, 8 * 56 + 16),              # tall: ceil(209.07) = 210 x 1568
    (1569, 1569, 56 * 56 + 16),            # one pixel over: 1568 x 1568
])
def test_png_tokens_on_standard_resolution_models(model, width, height, tokens):
    assert tokens == patches_after_resize(width, height, 1568)
    assert bounds.image_tokens(image(png(width, height))["source"], model) == tokens
    call = user_call([{"role": "user", "content": [image(png(width, height))]}], model=model, max_tokens=5)
    assert bounds.worst_case_micros(call) == published_micros(model, 16 + 8 + 8 + tokens, 5)


@pytest.mark.parametrize("model", HIGH_RES)
@pytest.mark.parametrize("width,height,tokens", [
    (3000, 2000, 92 * 62 + 16),            # 2576 x ceil(1717.33) = 1718
    (2576, 100, 92 * 4 + 16),              # exactly the long edge
    (2000, 1000, 72 * 36 + 16),            # below 2576, above 1568: not scaled on these models
])
def test_png_tokens_on_high_resolution_models(model, width, height, tokens):
    assert tokens == patches_after_resize(width, height, 2576)
    assert bounds.image_tokens(image(png(width, height))["source"], model) == tokens


@pytest.mark.parametrize("model,square", [(m, 92) for m in HIGH_RES] + [(m, 56) for m in STANDARD_RES])
def test_an_image_of_unknown_size_is_the_models_largest_square(model, square):
    url = image(url="https://example.com/a.png")
    call = user_call([{"role": "user", "content": [url]}], model=model, max_tokens=1)
    assert bounds.input_token_bound(call) == 16 + 8 + 8 + square * square + 16
    assert bounds.worst_case_micros(call) == published_micros(model, 16 + 8 + 8 + square * square + 16, 1)
    for source in ({"type": "base64", "media_type": "image/png"}, {"type": "base64", "data": None},
                   {"type": "base64", "data": "abc"}, {}):
        assert bounds.image_tokens(source, model) == square * square + 16
    assert bounds.input_token_bound(user_call([{"role": "user", "content": [{"type": "image"}]}], model=model)) == (
        16 + 8 + 8 + square * square + 16)


def _png_bytes(width, height, tail=b"\x08\x02\x00\x00\x00"):
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", width, height) + tail


def b64(raw):
    return base64.b64encode(raw).decode()


def test_png_header_of_exactly_24_bytes_is_read():
    assert bounds.image_size(b64(_png_bytes(300, 200, tail=b""))) == (300, 200)


def test_a_truncated_or_foreign_png_header_has_no_size():
    assert bounds.image_size(b64(_png_bytes(300, 200, tail=b"")[:20])) is None
    assert bounds.image_size(b64(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IDAT" + b"\x01" * 12)) is None
    assert bounds.image_size(b64(b"GIF89a" + b"\x01" * 30)) is None


@pytest.mark.parametrize("width,height", [(0, 100), (100, 0), (0, 0)])
def test_a_zero_sized_image_counts_as_the_largest_square(width, height):
    assert bounds.image_size(png(width, height)) is None
    assert bounds.image_tokens(image(png(width, height))["source"], SONNET) == 56 * 56 + 16


def test_a_one_pixel_image_is_one_patch():
    assert bounds.image_size(png(1, 1)) == (1, 1)
    assert bounds.image_tokens(image(png(1, 1))["source"], SONNET) == 1 + 16


def test_base64_with_line_breaks_is_still_read():
    wrapped = "\n".join(png(640, 480)[i:i + 20] for i in range(0, len(png(640, 480)), 20))
    assert bounds.image_size(wrapped) == (640, 480)


@pytest.mark.parametrize("data", [None, 42, b"\x89PNG", ["x"]])
def test_image_data_that_is_not_a_string_has_no_size(data):
    assert bounds.image_size(data) is None


# A JPEG's size is in its frame (SOFn) header: FF Cn, length, precision, height, width. Segments before it
# carry a length, except standalone markers (TEM 01, RST0-7 D0-D7, SOI D8); FF bytes may pad between markers.

def segment(marker, payload):
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def frame(marker, width, height):
    return segment(marker, struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x22\x00" * 3)


APP0 = segment(0xE0, b"JFIF\x00\x01\x02" + b"\x11" * 6)  # no zero bytes where a PNG's size would be


def jpeg_of(*parts, end=b"\xff\xd9"):
    return b64(b"\xff\xd8" + b"".join(parts) + end)


SOF_MARKERS = [0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF]


@pytest.mark.parametrize("marker", SOF_MARKERS, ids=[f"{m:02X}" for m in SOF_MARKERS])
def test_every_jpeg_frame_type_gives_the_size(marker):
    data = jpeg_of(APP0, frame(marker, 1234, 567))
    assert bounds.image_size(data) == (1234, 567)
    assert bounds.image_tokens({"type": "base64", "data": data}, SONNET) == math.ceil(1234 / 28) * math.ceil(
        567 / 28) + 16


@pytest.mark.parametrize("marker", [0xC4, 0xC8, 0xCC, 0xDB, 0xFE], ids=["DHT", "JPG", "DAC", "DQT", "COM"])
def test_segments_that_are_not_frames_are_skipped_by_their_length(marker):
    skipped = segment(marker, bytes([0x20, 0x30, 0x40, 0x50, 0x60]))
    assert bounds.image_size(jpeg_of(APP0, skipped, frame(0xC0, 300, 200))) == (300, 200)


@pytest.mark.parametrize("standalone", [b"\xff\x01", b"\xff\xd0", b"\xff\xd3", b"\xff\xd7", b"\xff\xd8"],
                         ids=["TEM", "RST0", "RST3", "RST7", "SOI"])
def test_standalone_markers_have_no_length(standalone):
    assert bounds.image_size(jpeg_of(APP0, standalone, frame(0xC2, 640, 480))) == (640, 480)


def test_fill_bytes_between_markers_are_skipped():
    assert bounds.image_size(jpeg_of(APP0, b"\xff", frame(0xC0, 640, 480))) == (640, 480)
    assert bounds.image_size(jpeg_of(APP0, b"\xff\xff\xff", frame(0xC0, 641, 481))) == (641, 481)


def test_a_frame_header_ending_at_the_last_byte_is_read():
    assert bounds.image_size(jpeg_of(APP0, frame(0xC0, 640, 480)[:9], end=b"")) == (640, 480)


def test_a_jpeg_cut_before_its_size_or_without_a_frame_has_no_size():
    assert bounds.image_size(jpeg_of(APP0, frame(0xC0, 640, 480)[:8], end=b"")) is None
    assert bounds.image_size(jpeg_of(APP0)) is None
    assert bounds.image_size(jpeg_of(APP0, b"\x00\x00", frame(0xC0, 640, 480))) is None  # not a marker
    assert bounds.image_size(b64(b"\xff\xd9" + APP0 + frame(0xC0, 640, 480))) is None  # no SOI
    assert bounds.image_tokens({"type": "base64", "data": jpeg_of(APP0)}, SONNET) == 56 * 56 + 16


# --- documents and tool results -----------------------------------------------------------------------------

def test_a_text_document_counts_its_whole_json():
    document = {"type": "document", "title": "Q3", "source": {"type": "text", "media_type": "text/plain",
                                                              "data": "Revenue €12"}}
    own = nbytes('{"type":"document","title":"Q3","source":{"type":"text","media_type":"text/plain",'
                 '"data":"Revenue €12"}}')
    call = user_call([{"role": "user", "content": [document]}], max_tokens=3)
    assert bounds.input_token_bound(call) == 16 + 8 + 8 + own
    assert bounds.worst_case_micros(call) == published_micros(SONNET, 16 + 8 + 8 + own, 3)


def test_a_document_without_a_source_counts_its_json():
    call = user_call([{"role": "user", "content": [{"type": "document", "title": "t"}]}])
    assert bounds.input_token_bound(call) == 16 + 8 + 8 + nbytes('{"type":"document","title":"t"}')


def test_a_content_document_counts_its_frame_once_and_each_nested_block():
    nested = [{"type": "text", "text": "Chapter €"}, image(png(56, 28))]
    document = {"type": "document", "title": "Book", "source": {"type": "content", "content": nested}}
    own = nbytes('{"type":"document","title":"Book","source":{"type":"content","content":[]}}')
    text = nbytes('{"type":"text","text":"Chapter €"}')
    call = user_call([{"role": "user", "content": [document]}])
    assert bounds.input_token_bound(call) == 16 + 8 + (8 + own) + (8 + text) + (8 + 2 * 1 + 16)


def test_a_tool_result_with_text_content_counts_its_whole_json():
    result = {"type": "tool_result", "tool_use_id": "toolu_9", "content": "Sunny, 21°"}
    own = nbytes('{"type":"tool_result","tool_use_id":"toolu_9","content":"Sunny, 21°"}')
    assert bounds.input_token_bound(user_call([{"role": "user", "content": [result]}])) == 16 + 8 + 8 + own


def test_tool_use_and_thinking_blocks_given_back_count_their_json():
    tool_use = {"type": "tool_use", "id": "toolu_1", "name": "a", "input": {"city": "Oslo"}}
    thinking = {"type": "thinking", "thinking": "Let me see", "signature": "c2ln"}
    call = user_call([{"role": "user", "content": "q"}, {"role": "assistant", "content": [thinking, tool_use]}])
    expected = (16 + (8 + 8 + 1) + 8 + (8 + nbytes('{"type":"thinking","thinking":"Let me see","signature":"c2ln"}'))
                + (8 + nbytes('{"type":"tool_use","id":"toolu_1","name":"a","input":{"city":"Oslo"}}')))
    assert bounds.input_token_bound(call) == expected


@pytest.mark.parametrize("model", sorted(PUBLISHED))
def test_a_thinking_budget_is_output_within_max_tokens(model):
    plain = user_call([{"role": "user", "content": "hi"}], model=model, max_tokens=4096)
    thinking = user_call([{"role": "user", "content": "hi"}], model=model, max_tokens=4096,
                         thinking={"type": "enabled", "budget_tokens": 2048})
    assert bounds.input_token_bound(thinking) == bounds.input_token_bound(plain) == 16 + 8 + 8 + 2
    assert bounds.worst_case_micros(plain) == published_micros(model, 34, 4096)
    assert bounds.worst_case_micros(thinking) == published_micros(model, 34, 4096)
