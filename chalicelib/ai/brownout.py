"""Brownout: a tenant's explicit choice to have a feature's calls served by a cheaper model once its month's
spend passes a share of its budget, before the budget's wall.

It is a setting the tenant's admin makes (`PUT /tenant/ai-config {"brownout": {"basic_chat":
{"at_percent": 80, "model": "claude-haiku-4-5"}}}`), never a default, and it is never silent: a call
served by another model than the one asked says so in `x-tessera-requested-model` and
`x-tessera-served-model`, the answer's `model` is the served one, and so is its usage event's. The
served model is chosen before admission, so the worst case admission reserves is the served model's and
a hard budget holds exactly as for any call. Spend is what admission holds for the month (settled cost
and the worst case of calls in flight, less what settled calls gave back), as this instance last saw it,
so a brownout may start a few calls early or late (docs/brownout.md says by how much).
"""
from __future__ import annotations

import json
from typing import Any, Dict, Optional

from chalicelib import validation
from chalicelib.errors import BadRequest
from chalicelib.plans import FEATURES, Plan

REQUESTED_HEADER = "x-tessera-requested-model"
SERVED_HEADER = "x-tessera-served-model"


def parse(value: Any, plan: Plan) -> Optional[str]:
    """The setting as stored (compact JSON), checked: known features, a whole percent from 1 to 100, a model
    the plan offers. `null` or `{}` removes it."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest("brownout must be an object of feature to {at_percent, model}, or null.",
                         code="invalid_field")
    rules: Dict[str, Dict[str, Any]] = {}
    for feature, rule in value.items():
        if feature not in FEATURES:
            raise BadRequest(f"Unknown feature: {feature}.", code="unknown_feature", details={"feature": feature})
        if rule is None:
            continue
        if not isinstance(rule, dict):
            raise BadRequest(f"brownout.{feature} must be {{at_percent, model}} or null.", code="invalid_field")
        validation.fields(rule, {"at_percent", "model"}, required=("at_percent", "model"))
        percent = validation.integer(rule, "at_percent", minimum=1, maximum=100)
        model = rule["model"]
        if not isinstance(model, str) or not plan.allows_model(model):
            raise BadRequest(f"brownout.{feature}.model: {model!r} is not a model the {plan.name} plan offers.",
                             code="model_not_in_plan")
        rules[feature] = {"at_percent": percent, "model": model}
    return json.dumps(rules, separators=(",", ":"), sort_keys=True) if rules else None


def view(stored: Optional[str]) -> Dict[str, Any]:
    return json.loads(stored) if stored else {}


def served_model(stored: Optional[str], feature: str, requested: str, budget_micros: Optional[int],
                 spent_micros: int) -> str:
    """The model that serves a call: the brownout model once spend reaches the rule's share of the budget
    (spent x 100 >= budget x at_percent, in integer micro-dollars), else the one asked."""
    rule = view(stored).get(feature)
    if rule is None or budget_micros is None:
        return requested
    return rule["model"] if spent_micros * 100 >= budget_micros * int(rule["at_percent"]) else requested


def headers(requested: str, served: str) -> Dict[str, str]:
    """Both models named when they differ; nothing otherwise."""
    return {} if requested == served else {REQUESTED_HEADER: requested, SERVED_HEADER: served}
