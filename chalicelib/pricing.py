"""The models a tenant may choose, with their prices: one table, used both as the
allow-list and for cost.

Prices are USD per million tokens from Anthropic's published pricing page
(https://platform.claude.com/docs/en/about-claude/pricing), read 2026-11-26; Claude Opus 5.5, released
after that reading, from the model catalog Claude Code 2.1.332 ships (its pricing tier
`tier_4_20_cache_read_0_20`), which Claude Code uses for its own cost figures.
Cache writes have two rates: the 5-minute TTL and the 1-hour TTL (2 x input).

Two request options change every rate of a call (docs/api-contract.md):
- long context: a model whose standard window is 200k tokens and which reaches 1M with the
  `context-1m` beta bills a request with more than 200,000 input tokens (uncached, cache writes and
  cache reads together) at 2 x input and 1.5 x output, cache rates scaled like input;
- fast mode (`speed: "fast"`), on the models that offer it: $30 input and $150 output per million, cache
  rates alike (1.25 x, 2 x and 0.1 x input): the pricing page's fast-mode rates for Opus 4.6, which
  Claude Code 2.1.332 also applies to every model its catalog marks `fast_mode`.

`min_plan` is the lowest default plan that offers the model (chalicelib/plans.py); `max_output_tokens` the
most the model writes in one answer (Opus 128,000, Sonnet 4.6 and Haiku 4.5 64,000), the bound on a
plan's max_tokens cap (chalicelib/plan_catalog.py; the figure the plans used before: the most any Opus model
writes). Costs are computed in integer micro-dollars (1 USD = 1,000,000), rounded up per call, never in float.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, Decimal
from typing import Dict

MICROS_PER_USD = 1_000_000


@dataclass(frozen=True)
class ModelPrice:
    model: str
    display_name: str
    input: Decimal
    output: Decimal
    cache_write: Decimal
    cache_read: Decimal
    min_plan: str
    long_context: bool  # a 200k window reaching 1M by beta, billed above LONG_CONTEXT_TOKENS at premium
    fast_mode: bool  # offers `speed: "fast"`
    max_output_tokens: int  # the most the model writes in one answer (a plan's cap may not exceed it)

    @property
    def cache_write_1h(self) -> Decimal:
        """The 1-hour cache write rate: twice the input rate for every model on the pricing page."""
        return self.input * 2

    def scaled(self, rates: "Rates") -> "ModelPrice":
        """These prices with a premium applied: input-side rates x rates.input, output x rates.output."""
        return replace(self, input=self.input * rates.input, output=self.output * rates.output,
                       cache_write=self.cache_write * rates.input, cache_read=self.cache_read * rates.input)

    @property
    def highest_input(self) -> Decimal:
        """The most one input token can cost: a 1-hour cache write."""
        return max(self.input, self.cache_write, self.cache_write_1h)


@dataclass(frozen=True)
class Rates:
    """A premium: what input-side rates and the output rate are multiplied by."""

    input: Decimal
    output: Decimal


LONG_CONTEXT_TOKENS = 200_000
LONG_CONTEXT = Rates(Decimal(2), Decimal("1.5"))
FAST_MODE = {"input": Decimal(30), "output": Decimal(150), "cache_write": Decimal("37.5"), "cache_read": Decimal(3)}


def _price(model: str, name: str, input_: str, output: str, cache_write: str, cache_read: str,
           min_plan: str = "free", long_context: bool = False, fast_mode: bool = False,
           max_output_tokens: int = 64_000) -> ModelPrice:
    return ModelPrice(model, name, Decimal(input_), Decimal(output), Decimal(cache_write), Decimal(cache_read),
                      min_plan, long_context, fast_mode, max_output_tokens)


MODELS: Dict[str, ModelPrice] = {p.model: p for p in (
    _price("claude-opus-5-5", "Claude Opus 5.5", "4", "20", "5", "0.20", "pro", fast_mode=True,
           max_output_tokens=128_000),
    _price("claude-opus-5", "Claude Opus 5", "5", "25", "6.25", "0.50", "pro", fast_mode=True,
           max_output_tokens=128_000),
    _price("claude-opus-4-8", "Claude Opus 4.8", "5", "25", "6.25", "0.50", "pro", max_output_tokens=128_000),
    _price("claude-opus-4-7", "Claude Opus 4.7", "5", "25", "6.25", "0.50", "pro", max_output_tokens=128_000),
    _price("claude-opus-4-6", "Claude Opus 4.6", "5", "25", "6.25", "0.50", "pro", long_context=True,
           fast_mode=True, max_output_tokens=128_000),
    _price("claude-sonnet-4-6", "Claude Sonnet 4.6", "3", "15", "3.75", "0.30", long_context=True),
    _price("claude-haiku-4-5", "Claude Haiku 4.5", "1", "5", "1.25", "0.10"),
)}

DEFAULT_MODEL = "claude-sonnet-4-6"

ANTHROPIC, BEDROCK_PROVIDER = "anthropic", "bedrock"


@dataclass(frozen=True)
class BedrockModel:
    """Where a pool call of an Anthropic model fails over to on Amazon Bedrock, and what Bedrock charges."""

    model_id: str  # the inference profile id the InvokeModel API takes
    price: ModelPrice


# The models Tessera offers that Bedrock serves through InvokeModel, with their global cross-region
# inference profile ids: "Claude on Amazon Bedrock (Opus 4.6 and earlier)", its "API model IDs" table
# (https://platform.claude.com/docs/en/build-with-claude/claude-on-amazon-bedrock-legacy, read
# 2026-12-06): base ids anthropic.claude-opus-4-6-v1, anthropic.claude-sonnet-4-6 and
# anthropic.claude-haiku-4-5-20251001-v1:0, each with a `global` profile. Newer models are served by
# Bedrock's Messages-API endpoint, not InvokeModel, and are not mapped: their pool calls never fail over.
# Prices: the global profiles carry no premium, so Bedrock's per-token prices are Anthropic's list
# prices above (the same page, "Global versus regional endpoints"; Amazon Bedrock's pricing page,
# https://aws.amazon.com/bedrock/pricing/); a regional profile (us., eu., ...) would cost 1.1 x these.
# Kept as their own rows so a change of Bedrock's prices is one edit here. Bedrock offers no fast mode.
BEDROCK: Dict[str, BedrockModel] = {m.price.model: m for m in (
    BedrockModel("global.anthropic.claude-opus-4-6-v1",
                 _price("claude-opus-4-6", "Claude Opus 4.6", "5", "25", "6.25", "0.50", "pro", long_context=True,
                        max_output_tokens=128_000)),
    BedrockModel("global.anthropic.claude-sonnet-4-6",
                 _price("claude-sonnet-4-6", "Claude Sonnet 4.6", "3", "15", "3.75", "0.30", long_context=True)),
    BedrockModel("global.anthropic.claude-haiku-4-5-20251001-v1:0",
                 _price("claude-haiku-4-5", "Claude Haiku 4.5", "1", "5", "1.25", "0.10")),
)}


def micros(tokens: int, usd_per_million: Decimal) -> Decimal:
    """Exact micro-dollars for `tokens` at a per-million price (USD/MTok == micro-USD/token)."""
    return Decimal(tokens) * usd_per_million


def rates(model: str, input_tokens: int, fast: bool, provider: str = ANTHROPIC) -> ModelPrice:
    """The prices a call of `model` is billed at, given its input tokens in all (uncached, cache writes and
    cache reads), whether it ran in fast mode, and which provider served it."""
    price = MODELS[model] if provider == ANTHROPIC else BEDROCK[model].price
    if fast and price.fast_mode:
        price = replace(price, **FAST_MODE)
    if price.long_context and input_tokens > LONG_CONTEXT_TOKENS:
        price = price.scaled(LONG_CONTEXT)
    return price


def cost_micros(model: str, input_tokens: int, output_tokens: int,
                cache_creation_tokens: int = 0, cache_read_tokens: int = 0,
                cache_creation_1h_tokens: int = 0, fast: bool = False, provider: str = ANTHROPIC) -> int:
    """`cache_creation_tokens` is every cache write; `cache_creation_1h_tokens` the part of it at the 1-hour rate.
    Fast mode and, above 200k input tokens, long context change the rates (`rates`); a call Bedrock served
    is billed at Bedrock's prices."""
    price = rates(model, input_tokens + cache_creation_tokens + cache_read_tokens, fast, provider)
    writes_5m = cache_creation_tokens - cache_creation_1h_tokens
    exact = (micros(input_tokens, price.input) + micros(output_tokens, price.output)
             + micros(writes_5m, price.cache_write) + micros(cache_creation_1h_tokens, price.cache_write_1h)
             + micros(cache_read_tokens, price.cache_read))
    return round_up(exact)


def round_up(exact_micros: Decimal) -> int:
    return int(exact_micros.to_integral_value(rounding=ROUND_CEILING))


def usd(micro_dollars: int) -> str:
    """Micro-dollars as a decimal string of dollars, e.g. 1234 -> "0.001234"."""
    return str((Decimal(micro_dollars) / MICROS_PER_USD).quantize(Decimal("0.000001")))


def to_micros(amount: object) -> int:
    """A client-given dollar amount (number or string) as whole micro-dollars."""
    value = Decimal(str(amount))
    return int((value * MICROS_PER_USD).to_integral_value(rounding=ROUND_CEILING))
