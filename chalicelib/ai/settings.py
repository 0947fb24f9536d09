"""A tenant's AI settings: model, limits, instructions and its own key."""
from __future__ import annotations

import re
from typing import Any, Mapping, Optional

from pynamodb.exceptions import UpdateError

from chalicelib import validation
from chalicelib.ai import brownout
from chalicelib.ai.tenant_keys import TenantKeyVault
from chalicelib.errors import BadRequest, NotFound
from chalicelib.models import AIConfig, Tenant, tenant_pk
from chalicelib.periods import utcnow
from chalicelib import plan_catalog
from chalicelib.plans import Plan
from chalicelib.pricing import DEFAULT_MODEL, MODELS
from chalicelib.store import condition_failed, update_existing

MAX_INSTRUCTIONS = 4000
_API_KEY = re.compile(r"[\x21-\x7e]{20,300}")


def view(config: AIConfig) -> dict:
    return {
        "model": config.model,
        "max_tokens": int(config.max_tokens),
        "temperature": float(config.temperature),
        "custom_instructions": config.custom_instructions or "",
        "inject_context": bool(config.inject_context),
        "api_key": {"set": config.api_key_ciphertext is not None,
                    "last4": config.api_key_last4 if config.api_key_ciphertext is not None else None},
        "brownout": brownout.view(config.brownout),
    }


def get_config(tenant_id: str) -> AIConfig:
    try:
        return AIConfig.get(tenant_pk(tenant_id), AIConfig.SK, consistent_read=True)
    except AIConfig.DoesNotExist:
        raise NotFound("AI settings not found.") from None


def update_config(tenant_id: str, plan_name: str, body: Mapping[str, Any]) -> dict:
    validation.fields(body, {"model", "max_tokens", "temperature", "custom_instructions", "inject_context",
                             "brownout"})
    if not body:
        raise BadRequest("Nothing to update.", code="empty_update")
    plan = plan_catalog.require(plan_name)
    actions = []
    if "model" in body:
        model = validation.string(body, "model", min_len=1, max_len=100)
        if model not in MODELS:
            raise BadRequest(f"Unknown model '{model}'. GET /models lists the allowed models.", code="invalid_model")
        if not plan.allows_model(model):
            raise BadRequest(f"The model '{model}' is not available on the {plan.name} plan.",
                             code="model_not_in_plan")
        actions.append(AIConfig.model.set(model))
    if "max_tokens" in body:
        cap = plan.max_tokens_cap
        actions.append(AIConfig.max_tokens.set(validation.integer(body, "max_tokens", minimum=1, maximum=cap)))
    if "temperature" in body:
        actions.append(AIConfig.temperature.set(validation.number(body, "temperature", minimum=0, maximum=1)))
        actions.append(AIConfig.chosen.add({"temperature"}))  # now it applies to Messages API calls too
    if "custom_instructions" in body:
        text = validation.string(body, "custom_instructions", min_len=0, max_len=MAX_INSTRUCTIONS)
        actions.append(AIConfig.custom_instructions.set(text))
    if "inject_context" in body:
        actions.append(AIConfig.inject_context.set(validation.boolean(body, "inject_context")))
    if "brownout" in body:  # the tenant's explicit choice of a cheaper model near its budget
        rules = brownout.parse(body["brownout"], plan)
        actions.append(AIConfig.brownout.set(rules) if rules else AIConfig.brownout.remove())
    return view(_update(tenant_id, actions))


def set_own_key(tenant_id: str, body: Mapping[str, Any], vault: Optional[TenantKeyVault] = None) -> dict:
    validation.fields(body, {"api_key"}, required=("api_key",))
    api_key = body["api_key"]
    if not isinstance(api_key, str) or not _API_KEY.fullmatch(api_key):
        raise BadRequest("api_key must be 20 to 300 printable characters without spaces.", code="invalid_field")
    ciphertext = (vault or TenantKeyVault()).encrypt(tenant_id, api_key)
    return view(_update(tenant_id, [AIConfig.api_key_ciphertext.set(ciphertext),
                                    AIConfig.api_key_last4.set(api_key[-4:])]))


def remove_own_key(tenant_id: str) -> dict:
    return view(_update(tenant_id, [AIConfig.api_key_ciphertext.remove(), AIConfig.api_key_last4.remove()]))


def fit_to_plan(tenant_id: str, plan: Plan) -> None:
    """Bring the AI settings within `plan` (called on a plan change, before the new plan is written): a
    max_tokens above the plan's cap is lowered to the cap, and a model the plan does not offer falls back
    to the default model, so the tenant's calls keep working instead of failing `invalid_model`. Each is a
    write conditioned on the setting still being above the plan, so a concurrent edit within it stays."""
    item = AIConfig(tenant_pk(tenant_id), AIConfig.SK)
    cap = plan.max_tokens_cap
    _update_if(item, AIConfig.max_tokens.set(cap), AIConfig.max_tokens > cap)
    outside = [model for model in MODELS if not plan.allows_model(model)]
    if outside:
        _update_if(item, AIConfig.model.set(DEFAULT_MODEL), AIConfig.model.is_in(*outside))


def _update_if(item: AIConfig, action: Any, condition: Any) -> None:
    try:
        item.update(actions=[action, AIConfig.updated_at.set(utcnow())], condition=condition)
    except UpdateError as error:
        if not condition_failed(error):
            raise


def _update(tenant_id: str, actions: list) -> AIConfig:
    return update_existing(AIConfig(tenant_pk(tenant_id), AIConfig.SK),
                           actions + [AIConfig.updated_at.set(utcnow())], "AI settings")


def models_for(tenant: Tenant) -> dict:
    plan = plan_catalog.require(tenant.plan)
    return {
        "default_model": DEFAULT_MODEL,
        "models": [
            {"id": p.model, "display_name": p.display_name,
             "prices_usd_per_million_tokens": {"input": str(p.input), "output": str(p.output),
                                               "cache_write": str(p.cache_write), "cache_read": str(p.cache_read)}}
            for p in MODELS.values() if plan.allows_model(p.model)
        ],
    }
