"""Cost in exact micro-dollars, checked against Anthropic's published prices rather than against our own table.

The prices are those of the pricing page that chalicelib/pricing.py cites, copied by hand into
tests/published.py. One USD per million tokens is one micro-dollar per token, so a million tokens of a kind
cost exactly its price in dollars; every expected number here is written out by hand from that table.
"""
from __future__ import annotations

import dataclasses
from decimal import ROUND_CEILING, Decimal

import pytest

from chalicelib.pricing import MODELS, cost_micros, micros, to_micros, usd
from published import FAST_MODE, FAST_MODE_MODELS, LONG_CONTEXT_MODELS, MAX_OUTPUT_TOKENS, PUBLISHED


# A million tokens of one kind, in micro-dollars: input, output, cache write, cache read.
MILLION_OF_EACH = {
    "claude-opus-5-5": (4_000_000, 20_000_000, 5_000_000, 200_000),
    "claude-opus-5": (5_000_000, 25_000_000, 6_250_000, 500_000),
    "claude-opus-4-8": (5_000_000, 25_000_000, 6_250_000, 500_000),
    "claude-opus-4-7": (5_000_000, 25_000_000, 6_250_000, 500_000),
    "claude-opus-4-6": (5_000_000, 25_000_000, 6_250_000, 500_000),
    "claude-sonnet-4-6": (3_000_000, 15_000_000, 3_750_000, 300_000),
    "claude-haiku-4-5": (1_000_000, 5_000_000, 1_250_000, 100_000),
}
KINDS = ("input", "output", "cache write", "cache read")


def tokens_of(kind: str, count: int) -> dict:
    arguments = {"input": "input_tokens", "output": "output_tokens", "cache write": "cache_creation_tokens",
                 "cache read": "cache_read_tokens"}
    return {"input_tokens": 0, "output_tokens": 0, arguments[kind]: count}


def published_row(p) -> tuple:
    """A price row as tests/published.py writes it: name, the four rates as written, the lowest plan."""
    return p.display_name, str(p.input), str(p.output), str(p.cache_write), str(p.cache_read), p.min_plan


def test_the_model_table_is_exactly_the_published_one():
    table = {m: published_row(p) for m, p in MODELS.items()}
    assert table == PUBLISHED
    assert all(p.model == m for m, p in MODELS.items())


def test_each_models_most_output_and_premiums_are_the_published_ones():
    assert {m: p.max_output_tokens for m, p in MODELS.items()} == MAX_OUTPUT_TOKENS
    assert {m for m, p in MODELS.items() if p.fast_mode} == set(FAST_MODE_MODELS)
    assert {m for m, p in MODELS.items() if p.long_context} == set(LONG_CONTEXT_MODELS)


def test_bedrock_bills_the_published_prices_without_fast_mode():
    """Bedrock's global profiles carry no premium over Anthropic's list prices, and Bedrock has no fast mode."""
    from chalicelib.pricing import BEDROCK

    assert set(BEDROCK) == {"claude-opus-4-6", "claude-sonnet-4-6", "claude-haiku-4-5"}
    for model, row in BEDROCK.items():
        p = row.price
        assert published_row(p) == PUBLISHED[model]
        assert (p.model, p.max_output_tokens, p.long_context, p.fast_mode) == \
               (model, MAX_OUTPUT_TOKENS[model], model in LONG_CONTEXT_MODELS, False)


def test_prices_cannot_be_changed_at_run_time():
    from chalicelib import pricing

    with pytest.raises(dataclasses.FrozenInstanceError):
        MODELS["claude-haiku-4-5"].output = Decimal("0")
    with pytest.raises(dataclasses.FrozenInstanceError):  # the long-context premium
        pricing.LONG_CONTEXT.output = Decimal("1")
    with pytest.raises(dataclasses.FrozenInstanceError):  # where a pool call fails over, and at what price
        next(iter(pricing.BEDROCK.values())).price = MODELS["claude-haiku-4-5"]


@pytest.mark.parametrize("model", PUBLISHED)
@pytest.mark.parametrize("kind", KINDS)
def test_200k_tokens_of_one_kind_cost_a_fifth_of_the_published_price_per_million(model, kind):
    """200,000 tokens: the most a call can hold before a long-context model's premium applies."""
    expected = MILLION_OF_EACH[model][KINDS.index(kind)] // 5
    assert cost_micros(model, **tokens_of(kind, 200_000)) == expected


def published_rate(model, kind, fast=False):
    _, input_, output, write, read, _ = PUBLISHED[model]
    rates = {"input": input_, "output": output, "cache write": write, "cache read": read}
    if fast:
        rates = {"input": FAST_MODE["input"], "output": FAST_MODE["output"], "cache write": FAST_MODE["cache_write"],
                 "cache read": FAST_MODE["cache_read"]}
    return Decimal(rates[kind])


@pytest.mark.parametrize("model", PUBLISHED)
def test_above_200k_input_tokens_long_context_models_cost_2x_input_and_1_5x_output(model):
    """200,001 input tokens, split over uncached, cache writes and reads, decide the rate of every kind."""
    long = model in LONG_CONTEXT_MODELS
    in_scale, out_scale = (Decimal(2), Decimal("1.5")) if long else (Decimal(1), Decimal(1))
    exact = (100_001 * published_rate(model, "input") * in_scale + 50_000 * published_rate(model, "cache write")
             * in_scale + 50_000 * published_rate(model, "cache read") * in_scale
             + 1_000 * published_rate(model, "output") * out_scale)
    assert cost_micros(model, 100_001, 1_000, 50_000, 50_000) == int(exact.to_integral_value(ROUND_CEILING))
    at_the_line = (100_000 * published_rate(model, "input") + 50_000 * published_rate(model, "cache write")
                   + 50_000 * published_rate(model, "cache read") + 1_000 * published_rate(model, "output"))
    assert cost_micros(model, 100_000, 1_000, 50_000, 50_000) == int(at_the_line.to_integral_value(ROUND_CEILING))


@pytest.mark.parametrize("model", PUBLISHED)
def test_fast_mode_costs_the_fast_rates_on_the_models_that_offer_it(model):
    fast = model in FAST_MODE_MODELS
    exact = sum(n * published_rate(model, kind, fast) for n, kind in
                ((1_000, "input"), (2_000, "output"), (3_000, "cache write"), (4_000, "cache read")))
    assert cost_micros(model, 1_000, 2_000, 3_000, 4_000, fast=True) == int(exact.to_integral_value(ROUND_CEILING))
    if fast:  # and 1-hour writes at twice the fast input rate
        assert cost_micros(model, 0, 0, 10, 0, cache_creation_1h_tokens=10, fast=True) == 10 * 60


def test_fast_mode_above_200k_on_opus_4_6_takes_both_premiums():
    expected = 200_001 * 30 * 2 + 10 * 150 * Decimal("1.5")
    assert cost_micros("claude-opus-4-6", 200_001, 10, fast=True) == int(expected)


@pytest.mark.parametrize("model, expected", [
    # 1,000 input + 2,000 output + 3,000 cache-write + 4,000 cache-read tokens
    ("claude-opus-4-6", 5_000 + 50_000 + 18_750 + 2_000),
    ("claude-opus-5", 5_000 + 50_000 + 18_750 + 2_000),
    ("claude-sonnet-4-6", 3_000 + 30_000 + 11_250 + 1_200),
    ("claude-haiku-4-5", 1_000 + 10_000 + 3_750 + 400),
])
def test_a_call_costs_the_sum_of_its_four_token_kinds(model, expected):
    assert cost_micros(model, 1_000, 2_000, 3_000, 4_000) == expected


@pytest.mark.parametrize("model, kind, tokens, expected", [
    ("claude-sonnet-4-6", "cache read", 1, 1),     # 0.30 micro-dollars
    ("claude-sonnet-4-6", "cache read", 3, 1),     # 0.90
    ("claude-sonnet-4-6", "cache read", 4, 2),     # 1.20
    ("claude-haiku-4-5", "cache read", 1, 1),      # 0.10
    ("claude-haiku-4-5", "cache read", 11, 2),     # 1.10
    ("claude-sonnet-4-6", "cache write", 1, 4),    # 3.75
    ("claude-haiku-4-5", "cache write", 3, 4),     # 3.75
    ("claude-opus-4-7", "cache write", 1, 7),      # 6.25
    ("claude-opus-4-7", "cache read", 3, 2),       # 1.50
])
def test_a_fraction_of_a_micro_dollar_is_rounded_up(model, kind, tokens, expected):
    assert cost_micros(model, **tokens_of(kind, tokens)) == expected


def test_a_call_is_rounded_up_once_not_per_token_kind():
    # Sonnet: 2 cache-write tokens = 7.50 and 5 cache-read tokens = 1.50: 9.00 in all (10 if each were rounded).
    assert cost_micros("claude-sonnet-4-6", 0, 0, 2, 5) == 9


def test_a_call_without_tokens_costs_nothing():
    assert cost_micros("claude-opus-5", 0, 0) == 0


def test_cache_tokens_default_to_zero():
    assert cost_micros("claude-haiku-4-5", 7, 3) == 7 * 1 + 3 * 5


def test_micros_is_tokens_times_the_per_million_price():
    assert micros(3, Decimal("0.30")) == Decimal("0.90")
    assert micros(1_000, Decimal("6.25")) == Decimal("6250")


@pytest.mark.parametrize("micro_dollars, text", [
    (0, "0.000000"), (1, "0.000001"), (1_234, "0.001234"), (999_999, "0.999999"), (1_000_000, "1.000000"),
    (25_500_000, "25.500000"), (123_456_789, "123.456789"), (10_000_000_000_000, "10000000.000000"),
])
def test_usd_writes_micro_dollars_as_a_dollar_string_with_six_decimals(micro_dollars, text):
    assert usd(micro_dollars) == text


@pytest.mark.parametrize("amount, expected", [
    ("1", 1_000_000), (1, 1_000_000), ("25.5", 25_500_000), (25.5, 25_500_000), (0.1, 100_000),
    ("0.000001", 1), ("0.0000001", 1), ("0.0000011", 2), ("0", 0), ("10000000", 10_000_000_000_000),
])
def test_to_micros_takes_dollars_and_rounds_a_fraction_of_a_micro_dollar_up(amount, expected):
    assert to_micros(amount) == expected
