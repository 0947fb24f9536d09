"""The numbers admission enforces for a tenant: its own (on its admission item) under its plan's.

Every change to a tenant's plan, status, limit overrides or budget writes the tenant and a copy of its
own numbers (`TenantLimits`: plan name, status, overrides, budget) onto its admission item in one
transaction (`tenants.change_tenant`), so the admission write's condition always checks the current
ones: such a change holds for the very next request on every instance. The plan's numbers (feature
limits, rate) come from the plan catalog (chalicelib/plan_catalog.py), read with the tenant's items:
an operator's edit of a plan reaches every tenant on it without touching their items.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

from chalicelib.errors import Forbidden
from chalicelib.plans import FEATURE_BY_CODE, FEATURES, Plan, feature_limit, requests_per_minute

PRINCIPAL_BITS = 128


@dataclass(frozen=True)
class AdmissionLimits:
    """The limits one admission checks: the tenant's numbers resolved under its plan as it stands."""

    plan: str
    status: str
    # Monthly limit of each feature the plan includes (None: unlimited); features not in the plan are absent.
    features: Dict[str, Optional[int]] = field(default_factory=dict)
    requests_per_minute: int = 0
    budget_micros: Optional[int] = None
    hard_limit: bool = False

    def required_plan(self, feature: str) -> str:
        return FEATURES[feature].introduced

    def gate(self, feature: str) -> Optional[Forbidden]:
        """The plan gate, the one place it is decided: why this tenant may not use `feature` at all (suspended,
        or not in its plan), or None. Both the gateway (before the call is built) and admission (before the
        write) ask it; the admission write's condition holds the same line at the item."""
        if self.status != "active":
            return Forbidden("This tenant is suspended.", code="tenant_suspended")
        if feature not in self.features:
            needed = self.required_plan(feature)
            return Forbidden(f"{feature} is not in the {self.plan} plan; it needs the {needed} plan.",
                             code="feature_not_in_plan", details={"feature": feature, "required_plan": needed})
        return None


@dataclass(frozen=True)
class TenantLimits:
    """The tenant's own numbers, as its admission item holds them."""

    plan: str
    status: str
    overrides: Mapping[str, Any] = field(default_factory=dict)  # as Tenant.limit_overrides
    budget_micros: Optional[int] = None
    hard_limit: bool = False
    # The principals with a hard budget, as a 128-bit set (bit principal_bit(id)): the same few bytes on
    # the admission item however many there are. A principal whose bit another's set reads its (absent)
    # budget once per version of the item and is then admitted as any other.
    principals: int = 0

    def budgets(self, principal_id: str) -> bool:
        """Whether calls of this principal may be held to a hard budget of its own."""
        return bool(self.principals >> principal_bit(principal_id) & 1)

    @classmethod
    def of(cls, tenant) -> "TenantLimits":
        overrides = tenant.limit_overrides or {}
        overrides = overrides.as_dict() if hasattr(overrides, "as_dict") else overrides
        budget = tenant.monthly_budget_micros
        return cls(plan=tenant.plan, status=tenant.status, overrides=_plain(overrides),
                   budget_micros=int(budget) if budget is not None else None,
                   hard_limit=bool(tenant.budget_hard_limit),
                   principals=principal_bits(tenant.hard_budgets or ()))

    def under(self, plan: Plan) -> AdmissionLimits:
        """These numbers over `plan`'s (the plan this tenant is on, as it stands)."""
        return AdmissionLimits(
            plan=self.plan, status=self.status,
            features={name: feature_limit(plan, name, self.overrides) for name in FEATURES if plan.includes(name)},
            requests_per_minute=requests_per_minute(plan, self.overrides), budget_micros=self.budget_micros,
            hard_limit=self.hard_limit)

    def to_json(self) -> str:
        """Compact: the admission item must stay under 1 KB (features by their one-letter codes)."""
        over: Dict[str, Any] = {}
        if self.overrides.get("features"):
            over["f"] = {FEATURES[name].code: n for name, n in self.overrides["features"].items()}
        if self.overrides.get("requests_per_minute") is not None:
            over["r"] = self.overrides["requests_per_minute"]
        data = {"plan": self.plan, "status": self.status, "o": over, "budget": self.budget_micros,
                "hard": self.hard_limit}
        if self.principals:  # absent when none
            data["pb"] = format(self.principals, "x")
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TenantLimits":
        data = json.loads(text)
        if "o" in data:
            short = data["o"]
            over = _plain({"features": {FEATURE_BY_CODE[c]: n for c, n in (short.get("f") or {}).items()},
                           "requests_per_minute": short.get("r")})
        else:  # written before plans were data: the old built-in plan's numbers with the operator's overrides
            over = _legacy_overrides(data)
        return cls(plan=data["plan"], status=data["status"], overrides=over, budget_micros=data["budget"],
                   hard_limit=data["hard"], principals=int(data.get("pb", "0"), 16))


# The built-in numbers before plans were data (every plan's feature limit was the feature's, rpm the plan's).
LEGACY_FEATURE_LIMITS = {"basic_chat": 100, "code_review": 1000, "document_analysis": 500, "custom_prompts": None}
LEGACY_REQUESTS_PER_MINUTE = {"free": 10, "pro": 60, "enterprise": 600}


def _legacy_overrides(data: Mapping[str, Any]) -> Dict[str, Any]:
    """An admission copy written before plans were data holds resolved numbers. Only those that differ from
    the old built-in ones were an operator's override; the rest follow the tenant's plan as it stands now
    (its edits and the current defaults), as for every tenant whose copy is newer."""
    features = {name: limit for name, limit in (data.get("features") or {}).items()
                if name not in LEGACY_FEATURE_LIMITS or limit != LEGACY_FEATURE_LIMITS[name]}
    rpm = data.get("rpm")
    if rpm is not None and int(rpm) == LEGACY_REQUESTS_PER_MINUTE.get(data.get("plan")):
        rpm = None
    return _plain({"features": features, "requests_per_minute": rpm})


def principal_bit(principal_id: str) -> int:
    """A principal's bit in `TenantLimits.principals`, from SHA-256 of its id (stable across processes)."""
    return int(hashlib.sha256(principal_id.encode("utf-8")).hexdigest()[:8], 16) % PRINCIPAL_BITS


def principal_bits(principal_ids) -> int:
    bits = 0
    for principal_id in principal_ids:
        bits |= 1 << principal_bit(principal_id)
    return bits


def _plain(overrides: Mapping[str, Any]) -> Dict[str, Any]:
    """Overrides as JSON-ready ints (PynamoDB hands numbers back as Decimal)."""
    features = {k: (None if v is None else int(v)) for k, v in dict(overrides.get("features") or {}).items()}
    out: Dict[str, Any] = {"features": features} if features else {}
    if overrides.get("requests_per_minute") is not None:
        out["requests_per_minute"] = int(overrides["requests_per_minute"])
    return out
