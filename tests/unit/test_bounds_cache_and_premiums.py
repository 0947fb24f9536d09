"""The worst-case bound's cache-write and premium rates (long context, fast mode), in exact micro-dollars from the
price table (tests/published.py)."""
from __future__ import annotations

import math

import pytest

from chalicelib.ai import bounds
from chalicelib.ai.client import ModelCall
from published import PUBLISHED
from test_bounds import SONNET, TOOL_A, call, compact, nbytes, published_micros, user_call


# --- cache writes -------------------------------------------------------------------------------------------

def _cached_text(control):
    return {"type": "text", "text": "rules", "cache_control": control}


@pytest.mark.parametrize("model", sorted(PUBLISHED))
@pytest.mark.parametrize("control,rate", [({"type": "ephemeral"}, "5m"), ({"type": "ephemeral", "ttl": "5m"}, "5m"),
                                          ({"type": "ephemeral", "ttl": "1h"}, "1h")])
def test_a_breakpoint_prices_every_input_token_at_its_write_rate(model, control, rate):
    call = user_call([{"role": "user", "content": [_cached_text(control)]}], model=model, max_tokens=11)
    tokens = 16 + 8 + 8 + compact(_cached_text(control))
    assert bounds.input_token_bound(call) == tokens
    assert bounds.worst_case_micros(call) == published_micros(model, tokens, 11, rate=rate)


ONE_HOUR = {"type": "ephemeral", "ttl": "1h"}
FIVE_MINUTES = {"type": "ephemeral"}


def _one_hour_somewhere(where, control):
    """A call with a 5-minute breakpoint, and `control` placed at `where`; and its input tokens, counted here."""
    messages = [{"role": "user", "content": [_cached_text(FIVE_MINUTES)]}]
    tokens = 16 + 8 + 8 + compact(_cached_text(FIVE_MINUTES))
    params, system = {}, None
    if where == "system":
        system = [_cached_text(control)]
        tokens += 8 + compact(_cached_text(control))
    elif where == "tool":
        params["tools"] = [{**TOOL_A, "cache_control": control}]
        tokens += 346 + 32 + compact({**TOOL_A, "cache_control": control})
    elif where == "tool_result":
        result = {"type": "tool_result", "tool_use_id": "t", "content": [_cached_text(control)]}
        messages.append({"role": "user", "content": [result]})
        tokens += 8 + 8 + compact({**result, "content": []}) + 8 + compact(_cached_text(control))
    elif where == "later_message":
        messages.append({"role": "user", "content": [_cached_text(control)]})
        tokens += 8 + 8 + compact(_cached_text(control))
    else:  # the top-level parameter is no input text
        params["cache_control"] = control
    return user_call(messages, system=system, max_tokens=2, **params), tokens


@pytest.mark.parametrize("where", ["system", "tool", "tool_result", "later_message", "top_level"])
def test_a_one_hour_breakpoint_anywhere_prices_the_call_at_the_one_hour_rate(where):
    call, tokens = _one_hour_somewhere(where, ONE_HOUR)
    assert bounds.input_token_bound(call) == tokens
    assert bounds.worst_case_micros(call) == published_micros(SONNET, tokens, 2, rate="1h")
    # the same breakpoint with a 5-minute TTL (same length) prices at the 5-minute rate
    call, tokens = _one_hour_somewhere(where, {"type": "ephemeral", "ttl": "5m"})
    assert bounds.worst_case_micros(call) == published_micros(SONNET, tokens, 2, rate="5m")


def test_without_a_breakpoint_input_is_priced_at_the_input_rate():
    call = user_call([{"role": "user", "content": [{"type": "text", "text": "rules", "cache": "no"}]}], max_tokens=2)
    tokens = 16 + 8 + 8 + nbytes('{"type":"text","text":"rules","cache":"no"}')
    assert bounds.worst_case_micros(call) == published_micros(SONNET, tokens, 2)


def test_a_cache_control_that_is_not_an_object_is_no_breakpoint():
    call = user_call([{"role": "user", "content": [{"type": "text", "text": "a", "cache_control": "ephemeral"}]}],
                     max_tokens=2)
    tokens = 16 + 8 + 8 + nbytes('{"type":"text","text":"a","cache_control":"ephemeral"}')
    assert bounds.worst_case_micros(call) == published_micros(SONNET, tokens, 2)


def test_only_a_breakpoints_own_ttl_counts_not_anything_nested_in_it():
    control = {"type": "ephemeral", "ttl": "5m", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    call = user_call([{"role": "user", "content": [_cached_text(control)]}], max_tokens=2)
    tokens = 16 + 8 + 8 + compact(_cached_text(control))
    assert bounds.worst_case_micros(call) == published_micros(SONNET, tokens, 2, rate="5m")


# --- premiums: long context and fast mode (published rates, tests/published.py) --------------------------------

def test_a_bound_above_200k_input_tokens_on_a_long_context_model_is_reserved_at_the_long_context_rates():
    """Sonnet 4.6 above 200k input tokens: $6 input (2 x 3), $22.50 output (1.5 x 15) per million."""
    text = "a" * 200_000  # alone, 200,000 bytes: the framing takes the bound past the line
    tokens = bounds.input_token_bound(call(text))
    assert tokens > 200_000
    assert bounds.worst_case_micros(call(text)) == tokens * 6 + math.ceil(100 * 22.5)
    short = "a" * (200_000 - (tokens - 200_000))  # exactly 200,000 tokens: the standard rates
    assert bounds.input_token_bound(call(short)) == 200_000
    assert bounds.worst_case_micros(call(short)) == 200_000 * 3 + 100 * 15


def test_a_native_1m_model_has_no_long_context_premium():
    text = "a" * 300_000
    tokens = bounds.input_token_bound(call(text, model="claude-opus-5-5"))
    assert bounds.worst_case_micros(call(text, model="claude-opus-5-5")) == tokens * 4 + 100 * 20


@pytest.mark.parametrize("model", ["claude-opus-5-5", "claude-opus-4-6"])
def test_fast_mode_is_reserved_at_the_fast_rates(model):
    fast = call("quick", model=model, speed="fast")
    assert bounds.worst_case_micros(fast) == bounds.input_token_bound(fast) * 30 + 100 * 150


def test_a_system_role_message_and_its_own_fields_count_in_the_input_bound():
    plain = call("hi")
    with_system = ModelCall(model=SONNET, max_tokens=100, temperature=None, messages=[
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "# Env", "output_config": {"effort": "medium"}}])
    assert bounds.input_token_bound(with_system) == (bounds.input_token_bound(plain) + 8 + 8 + nbytes("# Env")
                                                    + nbytes('{"output_config":{"effort":"medium"}}'))
