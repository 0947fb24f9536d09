"""What the platform's operators do to tenants: list, change plan, suspend, resume, override limits."""
from __future__ import annotations

from typing import Any, Mapping, Optional

from chalicelib import validation
from chalicelib.ai import settings as ai_settings
from chalicelib.errors import BadRequest, Conflict
from chalicelib.models import TENANT_LIST_PARTITION, Tenant
from chalicelib.periods import utcnow
from chalicelib.plans import FEATURES, PLANS
from chalicelib.store import decode_cursor, encode_cursor
from chalicelib.tenants import change_tenant, profile

MAX_PAGE = 100


def list_tenants(limit: Optional[str], cursor: Optional[str]) -> dict:
    size = validation.page_size(limit, MAX_PAGE)
    start = decode_cursor(cursor, TENANT_LIST_PARTITION, attribute="gsi1pk")
    result = Tenant.by_created.query(TENANT_LIST_PARTITION, limit=size, last_evaluated_key=start,
                                     scan_index_forward=False)
    tenants = [profile(t) for t in result]
    return {"tenants": tenants, "next_cursor": encode_cursor(result.last_evaluated_key)}


def set_plan(tenant_id: str, body: Mapping[str, Any]) -> dict:
    validation.fields(body, {"plan"}, required=("plan",))
    plan = validation.one_of(body, "plan", PLANS)
    ai_settings.fit_to_plan(tenant_id, plan)
    return profile(change_tenant(tenant_id, lambda tenant: {"plan": plan, "plan_changed_at": utcnow()}))


def set_status(tenant_id: str, status: str) -> dict:
    def change(tenant: Tenant) -> dict:
        if tenant.status == "deleting":  # no way back: the purge is scheduled (chalicelib/offboarding.py)
            raise Conflict("The tenant is being deleted.", code="tenant_deleting")
        return {"status": status}
    return profile(change_tenant(tenant_id, change))


def set_limits(tenant_id: str, body: Mapping[str, Any]) -> dict:
    """Per-tenant overrides of feature limits and requests per minute; null restores the plan's number."""
    validation.fields(body, {"features", "requests_per_minute"})
    if not body:
        raise BadRequest("Give 'features' and/or 'requests_per_minute'.", code="empty_update")
    given = body.get("features", {})
    if not isinstance(given, dict):
        raise BadRequest("features must be an object of feature name to limit.", code="invalid_field")
    checked: dict = {"features": {}}
    for name, value in given.items():
        if name not in FEATURES:
            raise BadRequest(f"Unknown feature: {name}.", code="unknown_feature")
        checked["features"][name] = None if value is None else \
            validation.integer(given, name, minimum=0, maximum=100_000_000)
    if "requests_per_minute" in body:
        checked["requests_per_minute"] = None if body["requests_per_minute"] is None else \
            validation.integer(body, "requests_per_minute", minimum=1, maximum=100_000)
    body = checked  # as ints: 5.0 is the integer 5, never a float in the item
    return limits_view(change_tenant(tenant_id, lambda tenant: {"limit_overrides": _merged(tenant, body)}))


def _merged(tenant: Tenant, body: Mapping[str, Any]) -> dict:
    overrides = dict(tenant.limit_overrides.as_dict()) if tenant.limit_overrides else {}
    features = dict(overrides.get("features") or {})
    for name, value in body.get("features", {}).items():
        if value is None:
            features.pop(name, None)
        else:
            features[name] = value
    overrides["features"] = features
    if "requests_per_minute" in body:
        if body["requests_per_minute"] is None:
            overrides.pop("requests_per_minute", None)
        else:
            overrides["requests_per_minute"] = body["requests_per_minute"]
    return overrides


def limits_view(tenant: Tenant) -> dict:
    from chalicelib.plans import feature_limit, requests_per_minute

    overrides = tenant.limit_overrides.as_dict() if tenant.limit_overrides else {}
    return {
        "tenant_id": tenant.tenant_id,
        "plan": tenant.plan,
        "features": {name: feature_limit(name, overrides) for name in FEATURES},
        "requests_per_minute": requests_per_minute(tenant.plan, overrides),
        "overrides": overrides,
    }
