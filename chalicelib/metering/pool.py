"""The platform's shared upstream pool as a budget: the decision, as pure functions (on the request path through
chalicelib/metering/pool_leases.py).

Anthropic limits an organisation per model and per minute: requests, input tokens and output tokens (output
reserved from `max_tokens` when a call starts). Every tenant without its own key draws on that one pool. Here a
call's share of the pool is decided from plain values: the model's ceilings, what the current minute has reserved
by plan, and what the call asks (1 request, its input bound, its max_tokens).

    guarantee   each plan's share of each ceiling (`Share.guaranteed`, a plan attribute operators edit:
                pool_share_percent; built in: enterprise 50 %, pro 35 %, free none: best effort); a call
                inside its plan's share is admitted while the pool has room
    borrowing   beyond its share a plan may borrow idle capacity while the minute's total stays under
                SATURATION (85 %) of the ceiling less what is left of the other plans' reserves
                (`Share.reserved`, pool_reserved_percent: enterprise's 20 %, never lent); past that, each
                plan gets its share and no more
    refusal     otherwise a 429 before the call, with Retry-After the seconds until the minute ends (when the
                window's reservations are gone), never an upstream 429 after it
    true-up     after the call, its unused output (max_tokens - output) goes back to the window (`settle`)

`corrected` lowers a configured ceiling to what upstream's `anthropic-ratelimit-*` headers report (another
consumer of the same organisation shows up as less remaining than this pool reserved).

docs/upstream.md ("The pool as a budget") says how this hooks into admission and what is left to do.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Dict, Mapping, Optional, Tuple

DIMENSIONS = ("requests", "input_tokens", "output_tokens")
SATURATION = Decimal("0.85")
WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Amounts:
    """One value per dimension: a ceiling, a call's ask, or what is reserved."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    def get(self, dimension: str) -> int:
        return int(getattr(self, dimension))

    def plus(self, other: "Amounts") -> "Amounts":
        return Amounts(*(self.get(d) + other.get(d) for d in DIMENSIONS))

    def minus(self, other: "Amounts") -> "Amounts":
        return Amounts(*(max(0, self.get(d) - other.get(d)) for d in DIMENSIONS))


@dataclass(frozen=True)
class Window:
    """What one model's current minute has reserved, by plan."""

    started_at: float
    by_plan: Mapping[str, Amounts] = field(default_factory=dict)

    def total(self) -> Amounts:
        total = Amounts()
        for amounts in self.by_plan.values():
            total = total.plus(amounts)
        return total

    def of(self, plan: str) -> Amounts:
        return self.by_plan.get(plan, Amounts())

    def with_reserved(self, plan: str, ask: Amounts) -> "Window":
        return replace(self, by_plan={**self.by_plan, plan: self.of(plan).plus(ask)})


@dataclass(frozen=True)
class Share:
    """A plan's part of each ceiling, in whole percent: `guaranteed` it may always use while the pool has
    room, of which `reserved` is held back from the other plans' borrowing until it uses it."""

    guaranteed: int = 0
    reserved: int = 0


Shares = Mapping[str, Share]  # by plan; a plan absent has none: best effort


def built_in_shares() -> Dict[str, Share]:
    """The built-in plans' shares (chalicelib/plans.py), for a catalog no operator has edited."""
    from chalicelib.plans import DEFAULT_PLANS, pool_share

    return {name: pool_share(plan) for name, plan in DEFAULT_PLANS.items()}


def _of(percent: int, ceiling: int) -> int:
    return ceiling * percent // 100  # exact in integers: floor(percent % of the ceiling)


@dataclass(frozen=True)
class Decision:
    admitted: bool
    dimension: Optional[str] = None  # the first dimension that refused
    retry_after: int = 0  # seconds until the window ends
    borrowed: bool = False  # admitted beyond the plan's guarantee


def ask_of(input_bound: int, max_tokens: int) -> Amounts:
    """What a call reserves: one request, its input bound, and max_tokens (as upstream reserves output)."""
    return Amounts(1, input_bound, max_tokens)


def _held_for_others(window: Window, plan: str, ceiling: int, dimension: str, shares: Shares) -> int:
    """The reserves of other plans they have not used yet: never lent."""
    held = 0
    for other, share in shares.items():
        if other != plan and share.reserved > 0:
            held += max(0, _of(share.reserved, ceiling) - window.of(other).get(dimension))
    return held


def decide(ceiling: Amounts, window: Window, plan: str, ask: Amounts, now: float,
           shares: Optional[Shares] = None) -> Decision:
    """Whether a call of `plan` asking `ask` fits the model's pool this minute, given every plan's share
    (None: the built-in plans')."""
    shares = built_in_shares() if shares is None else shares
    guaranteed = shares.get(plan, Share()).guaranteed
    borrowed = False
    for dimension in DIMENSIONS:
        limit, wanted = ceiling.get(dimension), ask.get(dimension)
        total_after = window.total().get(dimension) + wanted
        own_after = window.of(plan).get(dimension) + wanted
        if total_after > limit:
            return _refused(dimension, window, now)
        if own_after <= _of(guaranteed, limit):
            continue
        borrowable = math.floor(SATURATION * limit) - _held_for_others(window, plan, limit, dimension, shares)
        if total_after > borrowable:
            return _refused(dimension, window, now)
        borrowed = True
    return Decision(True, borrowed=borrowed)


def _refused(dimension: str, window: Window, now: float) -> Decision:
    return Decision(False, dimension, max(1, math.ceil(window.started_at + WINDOW_SECONDS - now)))


def settle(window: Window, plan: str, ask: Amounts, used: Amounts) -> Window:
    """True-up after the call: what it reserved and did not use goes back to the window (input is the bound
    minus the real count; output is max_tokens minus the real output). A call of a past window changes nothing."""
    unused = ask.minus(used)
    return replace(window, by_plan={**window.by_plan, plan: window.of(plan).minus(Amounts(0, unused.input_tokens,
                                                                                        unused.output_tokens))})


def current(window: Optional[Window], now: float) -> Window:
    """The window `now` falls in: the given one while it lasts, else a fresh one starting on the minute."""
    start = math.floor(now / WINDOW_SECONDS) * WINDOW_SECONDS
    if window is not None and window.started_at == start:
        return window
    return Window(float(start))


HEADER = "anthropic-ratelimit-{}-{}"
HEADER_NAMES = {"requests": "requests", "input_tokens": "input-tokens", "output_tokens": "output-tokens"}


def corrected(configured: Amounts, headers: Mapping[str, str], reserved: Amounts) -> Tuple[Amounts, Dict[str, int]]:
    """The ceiling upstream's rate-limit headers allow, and what they say others used: per dimension, the lower of
    the configured ceiling and the reported limit, less what the organisation used beyond this pool's own
    reservations (reported limit - remaining - reserved here). A header missing or malformed changes nothing."""
    values, elsewhere = {}, {}
    for dimension in DIMENSIONS:
        name = HEADER_NAMES[dimension]
        limit = _int(headers.get(HEADER.format(name, "limit")))
        remaining = _int(headers.get(HEADER.format(name, "remaining")))
        ceiling = configured.get(dimension)
        if limit is not None:
            ceiling = min(ceiling, limit)
            if remaining is not None:
                others = max(0, limit - remaining - reserved.get(dimension))
                elsewhere[dimension] = others
                ceiling = max(0, ceiling - others)
        values[dimension] = ceiling
    return Amounts(**values), elsewhere


def _int(value: Optional[str]) -> Optional[int]:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
