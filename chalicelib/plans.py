"""Plans and features, as data.

A feature is enabled on its plan and every plan above it. Limits are per
calendar month (UTC); `None` is unlimited. An operator's per-tenant override
(`Tenant.limit_overrides`) replaces a plan's number for that tenant only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional


@dataclass(frozen=True)
class Plan:
    name: str
    rank: int
    max_tokens_cap: int
    requests_per_minute: int


@dataclass(frozen=True)
class Feature:
    name: str
    plan: str
    monthly_limit: Optional[int]
    code: str  # one letter, for counter keys on the admission item (which must stay under 1 KB)


# max_tokens caps: pro and enterprise allow 128,000, the most any model they offer writes in one answer, so
# clients that ask for a model's whole output (Claude Code asks 128,000) are served as asked; a hard budget
# still reserves the whole of it before the call.
PLANS: Dict[str, Plan] = {
    "free": Plan("free", 0, max_tokens_cap=2048, requests_per_minute=10),
    "pro": Plan("pro", 1, max_tokens_cap=128000, requests_per_minute=60),
    "enterprise": Plan("enterprise", 2, max_tokens_cap=128000, requests_per_minute=600),
}

FEATURES: Dict[str, Feature] = {
    "basic_chat": Feature("basic_chat", "free", 100, "b"),
    "code_review": Feature("code_review", "pro", 1000, "c"),
    "document_analysis": Feature("document_analysis", "pro", 500, "d"),
    "custom_prompts": Feature("custom_prompts", "enterprise", None, "p"),
}
FEATURE_BY_CODE: Dict[str, str] = {f.code: f.name for f in FEATURES.values()}

DEFAULT_PLAN = "free"


def plan(name: str) -> Plan:
    return PLANS[name]


def feature_enabled(plan_name: str, feature: str) -> bool:
    return PLANS[plan_name].rank >= PLANS[FEATURES[feature].plan].rank


def feature_limit(feature: str, overrides: Optional[Mapping[str, object]] = None) -> Optional[int]:
    features = (overrides or {}).get("features") or {}
    if feature in features and features[feature] is not None:
        return int(features[feature])
    return FEATURES[feature].monthly_limit


def requests_per_minute(plan_name: str, overrides: Optional[Mapping[str, object]] = None) -> int:
    value = (overrides or {}).get("requests_per_minute")
    return int(value) if value is not None else PLANS[plan_name].requests_per_minute
