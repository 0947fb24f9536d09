"""Plans and features, as data.

A plan names the features it includes with their monthly limits (`None`: unlimited; a feature absent is
not in the plan), its requests per minute, its max_tokens cap, the models it offers, its monthly price and
its share of the platform's shared upstream pool (`pool_share_percent` of each model's per-minute ceilings,
of which `pool_reserved_percent` is never lent to other plans: chalicelib/metering/pool.py).
Operators create and edit plans through the API (chalicelib/plan_catalog.py), each edit a new version;
`DEFAULT_PLANS` below are the plans as they stand until an operator edits them (version 0). An operator's
per-tenant override (`Tenant.limit_overrides`) replaces a plan's number for that tenant only.

Features are code (each is a route), so they are fixed here; their one-letter codes key the counters on
the admission item, which must stay under 1 KB. The default numbers and why: docs/plans.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

from chalicelib.pricing import MICROS_PER_USD, MODELS


@dataclass(frozen=True)
class Feature:
    name: str
    code: str  # one letter, for counter keys on the admission item
    introduced: str  # the lowest default plan that includes it: the plan a refusal suggests


FEATURES: Dict[str, Feature] = {f.name: f for f in (
    Feature("basic_chat", "b", "free"),
    Feature("code_review", "c", "pro"),
    Feature("document_analysis", "d", "pro"),
    Feature("custom_prompts", "p", "enterprise"),
)}
FEATURE_BY_CODE: Dict[str, str] = {f.code: f.name for f in FEATURES.values()}


@dataclass(frozen=True)
class Plan:
    name: str
    features: Mapping[str, Optional[int]]
    requests_per_minute: int
    max_tokens_cap: int
    models: Tuple[str, ...]
    monthly_price_micros: int
    version: int = 0  # 0: the built-in default, never edited
    changed_by: Optional[str] = None
    changed_at: Optional[str] = None
    pool_share_percent: int = 0  # 0: best effort in the shared pool
    pool_reserved_percent: int = 0  # of pool_share_percent, held back from other plans' borrowing

    def includes(self, feature: str) -> bool:
        return feature in self.features

    def allows_model(self, model: str) -> bool:
        return model in MODELS and model in self.models

    def as_data(self) -> Dict[str, Any]:
        """The definition as stored (no name or version: those are the item's key)."""
        return {"features": dict(self.features), "requests_per_minute": self.requests_per_minute,
                "max_tokens_cap": self.max_tokens_cap, "models": list(self.models),
                "monthly_price_micros": self.monthly_price_micros, "pool_share_percent": self.pool_share_percent,
                "pool_reserved_percent": self.pool_reserved_percent}

    @classmethod
    def from_data(cls, name: str, version: int, data: Mapping[str, Any], changed_by: Optional[str] = None,
                  changed_at: Optional[str] = None) -> "Plan":
        # A feature this code no longer knows is dropped rather than failing every call on the plan.
        features = {f: (None if n is None else int(n)) for f, n in dict(data["features"]).items() if f in FEATURES}
        # A version stored before plans had pool shares keeps its built-in plan's share (else best effort)
        built_in = DEFAULT_PLANS.get(name)
        share = data.get("pool_share_percent", built_in.pool_share_percent if built_in else 0)
        reserved = data.get("pool_reserved_percent", built_in.pool_reserved_percent if built_in else 0)
        return cls(name, features, int(data["requests_per_minute"]), int(data["max_tokens_cap"]),
                   tuple(data["models"]), int(data["monthly_price_micros"]), version, changed_by, changed_at,
                   int(share), int(reserved))


def _usd(amount: int) -> int:
    return amount * MICROS_PER_USD


_EVERY_MODEL = tuple(MODELS)
_SMALL_MODELS = tuple(m for m, p in MODELS.items() if p.min_plan == "free")

# Why these numbers (docs/plans.md): a request quota is a ceiling against runaway clients, the dollar
# budget is what bounds cost. /v1/messages counts as basic_chat and one Claude Code exchange is about
# eleven requests, so pro's 25,000 is ~2,270 exchanges a month (about a hundred a working day); free's
# 300 is a trial (~27 exchanges); enterprise is bounded by its budget and rate only. Pool shares (docs/
# upstream.md, "The pool as a budget"): enterprise is guaranteed half of each model's minute, a fifth of it
# never lent; pro a third and a bit, lent like the rest; free borrows what is idle (best effort).
DEFAULT_PLANS: Dict[str, Plan] = {p.name: p for p in (
    Plan("free", {"basic_chat": 300}, requests_per_minute=10, max_tokens_cap=2048, models=_SMALL_MODELS,
         monthly_price_micros=0),
    # max_tokens 128,000: the most any model pro offers writes in one answer, so clients that ask for a
    # model's whole output (Claude Code asks 128,000) are served as asked; a hard budget still reserves it.
    Plan("pro", {"basic_chat": 25_000, "code_review": 2_000, "document_analysis": 1_000}, requests_per_minute=60,
         max_tokens_cap=128_000, models=_EVERY_MODEL, monthly_price_micros=_usd(49), pool_share_percent=35),
    Plan("enterprise", {"basic_chat": None, "code_review": None, "document_analysis": None,
                        "custom_prompts": None}, requests_per_minute=600, max_tokens_cap=128_000,
         models=_EVERY_MODEL, monthly_price_micros=_usd(499), pool_share_percent=50, pool_reserved_percent=20),
)}

DEFAULT_PLAN = "free"


def pool_share(plan: Plan) -> "Share":
    """The plan's share of the shared pool, as the pool's decision takes it."""
    from chalicelib.metering.pool import Share

    return Share(plan.pool_share_percent, plan.pool_reserved_percent)


def feature_limit(plan: Plan, feature: str, overrides: Optional[Mapping[str, object]] = None) -> Optional[int]:
    """The tenant's monthly limit of a feature its plan includes: its override, else the plan's number."""
    features = (overrides or {}).get("features") or {}
    if feature in features and features[feature] is not None:
        return int(features[feature])
    return plan.features.get(feature)


def requests_per_minute(plan: Plan, overrides: Optional[Mapping[str, object]] = None) -> int:
    value = (overrides or {}).get("requests_per_minute")
    return int(value) if value is not None else plan.requests_per_minute
