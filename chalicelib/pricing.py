"""The models a tenant may choose, with their prices: one table, used both as the
allow-list and for cost.

Prices are USD per million tokens from Anthropic's published pricing page
(https://platform.claude.com/docs/en/about-claude/pricing), read 2026-11-26.
Cache writes have two rates: the 5-minute TTL (1.25 x input) and the 1-hour
TTL (2 x input). `min_plan` is the lowest plan that may use the model. Costs are computed in integer
micro-dollars (1 USD = 1,000,000), rounded up per call, never in float.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Dict

from chalicelib.plans import PLANS

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

    @property
    def cache_write_1h(self) -> Decimal:
        """The 1-hour cache write rate: twice the input rate for every model on the pricing page."""
        return self.input * 2

    @property
    def highest_input(self) -> Decimal:
        """The most one input token can cost: a 1-hour cache write."""
        return max(self.input, self.cache_write, self.cache_write_1h)


def _price(model: str, name: str, input_: str, output: str, cache_write: str, cache_read: str,
           min_plan: str = "free") -> ModelPrice:
    return ModelPrice(model, name, Decimal(input_), Decimal(output), Decimal(cache_write), Decimal(cache_read),
                      min_plan)


MODELS: Dict[str, ModelPrice] = {p.model: p for p in (
    _price("claude-opus-5", "Claude Opus 5", "5", "25", "6.25", "0.50", "pro"),
    _price("claude-opus-4-8", "Claude Opus 4.8", "5", "25", "6.25", "0.50", "pro"),
    _price("claude-opus-4-7", "Claude Opus 4.7", "5", "25", "6.25", "0.50", "pro"),
    _price("claude-opus-4-6", "Claude Opus 4.6", "5", "25", "6.25", "0.50", "pro"),
    _price("claude-sonnet-4-6", "Claude Sonnet 4.6", "3", "15", "3.75", "0.30"),
    _price("claude-haiku-4-5", "Claude Haiku 4.5", "1", "5", "1.25", "0.10"),
)}

DEFAULT_MODEL = "claude-sonnet-4-6"


def model_allowed(model: str, plan: str) -> bool:
    """Whether a plan may use a model: the Opus models need pro or higher."""
    return model in MODELS and PLANS[plan].rank >= PLANS[MODELS[model].min_plan].rank


def micros(tokens: int, usd_per_million: Decimal) -> Decimal:
    """Exact micro-dollars for `tokens` at a per-million price (USD/MTok == micro-USD/token)."""
    return Decimal(tokens) * usd_per_million


def cost_micros(model: str, input_tokens: int, output_tokens: int,
                cache_creation_tokens: int = 0, cache_read_tokens: int = 0,
                cache_creation_1h_tokens: int = 0) -> int:
    """`cache_creation_tokens` is every cache write; `cache_creation_1h_tokens` the part of it at the 1-hour rate."""
    price = MODELS[model]
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
