"""The numbers admission enforces for a tenant, derived from its profile in one place.

Every change to a tenant's plan, status, limit overrides or budget writes the
tenant and a copy of these numbers onto its admission item in one transaction
(`tenants.change_tenant`), so the admission write's condition always checks the
current numbers: a change holds for the very next request on every instance.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Dict, Optional

from chalicelib.plans import FEATURES, PLANS, feature_enabled, feature_limit, requests_per_minute


@dataclass(frozen=True)
class AdmissionLimits:
    plan: str
    status: str
    # Monthly limit of each feature the plan includes (None: unlimited); features not in the plan are absent.
    features: Dict[str, Optional[int]] = field(default_factory=dict)
    requests_per_minute: int = 0
    budget_micros: Optional[int] = None
    hard_limit: bool = False

    @classmethod
    def of(cls, tenant) -> "AdmissionLimits":
        overrides = tenant.limit_overrides or {}
        overrides = overrides.as_dict() if hasattr(overrides, "as_dict") else overrides
        budget = tenant.monthly_budget_micros
        return cls(
            plan=tenant.plan, status=tenant.status,
            features={name: feature_limit(name, overrides) for name in FEATURES
                      if feature_enabled(tenant.plan, name)},
            requests_per_minute=requests_per_minute(tenant.plan, overrides),
            budget_micros=int(budget) if budget is not None else None,
            hard_limit=bool(tenant.budget_hard_limit))

    def to_json(self) -> str:
        return json.dumps({"plan": self.plan, "status": self.status, "features": self.features,
                           "rpm": self.requests_per_minute, "budget": self.budget_micros,
                           "hard": self.hard_limit}, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "AdmissionLimits":
        data = json.loads(text)
        return cls(plan=data["plan"], status=data["status"], features=dict(data["features"]),
                   requests_per_minute=int(data["rpm"]), budget_micros=data["budget"], hard_limit=data["hard"])

    def required_plan(self, feature: str) -> str:
        return FEATURES[feature].plan

    @property
    def max_tokens_cap(self) -> int:
        return PLANS[self.plan].max_tokens_cap
