"""What the platform's operators do to tenants: list, change plan, suspend, resume, override limits."""
from __future__ import annotations

import re
from typing import Any, List, Mapping, Optional

from chalicelib import plan_catalog, pricing, validation
from chalicelib.ai import settings as ai_settings
from chalicelib.errors import BadRequest, Conflict
from chalicelib.metering import refusals
from chalicelib.models import (SLUG_LIST_PARTITION, TENANT_LIST_PARTITION, RefusalCount, Tenant, UsagePeriod,
                               spend_partition, tenant_pk)
from chalicelib.periods import current_period, utcnow
from chalicelib.plans import FEATURES, feature_limit, requests_per_minute
from chalicelib.store import decode_cursor, encode_cursor, get_items
from chalicelib.tenants import change_tenant, profile

MAX_PAGE = 100
SORTS = ("created", "spend")
ORDERS = ("desc", "asc")
_SEARCH = re.compile(r"[a-z0-9-]{1,63}")


def list_tenants(limit: Optional[str], cursor: Optional[str], sort: Optional[str] = None,
                 order: Optional[str] = None, search: Optional[str] = None) -> dict:
    """One page of tenants with this month's spend, requests and refusals. Every mode is one index Query
    plus one BatchGetItem per 50 rows, never a scan: `created` pages gsi1 (every tenant), `spend` pages
    gsi3's SPEND#<month> (tenants with a settled or failed call this month, by spend), `search` pages
    gsi3's SLUGS from a slug prefix."""
    size = validation.page_size(limit, MAX_PAGE)
    sort = _choice(sort, SORTS, "sort")
    forward = _choice(order, ORDERS, "order") == "asc"
    period = current_period()
    if search not in (None, ""):
        prefix = search.strip().lower()
        if not _SEARCH.fullmatch(prefix):
            raise BadRequest("search must be the start of a slug: 1 to 63 of a-z, 0-9 and -.", code="invalid_search")
        result = Tenant.by_slug.query(SLUG_LIST_PARTITION, Tenant.gsi3sk.startswith(prefix), limit=size,
                                      scan_index_forward=True,
                                      last_evaluated_key=decode_cursor(cursor, SLUG_LIST_PARTITION, "gsi3pk"))
        rows = _with_month([t for t in result], period)
    elif sort == "spend":
        partition = spend_partition(period)
        result = UsagePeriod.by_spend.query(partition, limit=size, scan_index_forward=forward,
                                            last_evaluated_key=decode_cursor(cursor, partition, "gsi3pk"))
        rows = _with_profiles(list(result), period)
    else:
        result = Tenant.by_created.query(TENANT_LIST_PARTITION, limit=size, scan_index_forward=forward,
                                         last_evaluated_key=decode_cursor(cursor, TENANT_LIST_PARTITION, "gsi1pk"))
        rows = _with_month([t for t in result], period)
    return {"period": period, "tenants": rows, "next_cursor": encode_cursor(result.last_evaluated_key)}


def _choice(value: Optional[str], allowed: tuple, name: str) -> str:
    if value in (None, ""):
        return allowed[0]
    if value not in allowed:
        raise BadRequest(f"{name} must be one of: {', '.join(allowed)}.", code=f"invalid_{name}")
    return value


def _row(tenant: Tenant, month: Optional[UsagePeriod], refused: Optional[RefusalCount], period: str) -> dict:
    return {**profile(tenant), "month": {
        "period": period, "spend_usd": pricing.usd(int(month.cost_micros) if month else 0),
        "requests": int(month.requests) if month else 0, "refusals": refusals.view(refused)["total"]}}


def _with_month(tenants: List[Tenant], period: str) -> List[dict]:
    """Profiles from an index page, with their month aggregate and refusals read in one batch."""
    refs = []
    for tenant in tenants:
        pk = tenant_pk(tenant.tenant_id)
        refs += [(UsagePeriod, pk, UsagePeriod.sk_for(period)), (RefusalCount, pk, RefusalCount.sk_for(period))]
    items = get_items(refs)
    return [_row(t, items[2 * i], items[2 * i + 1], period) for i, t in enumerate(tenants)]


def _with_profiles(months: List[UsagePeriod], period: str) -> List[dict]:
    """Month aggregates from the spend index, with their tenants' profiles and refusals read in one batch."""
    refs = []
    for month in months:
        refs += [(Tenant, month.pk, Tenant.SK), (RefusalCount, month.pk, RefusalCount.sk_for(period))]
    items = get_items(refs)
    return [_row(items[2 * i], month, items[2 * i + 1], period) for i, month in enumerate(months)
            if items[2 * i] is not None]  # a tenant deleted since its month was kept


def tenant_page(tenant_id: str, period_param: Optional[str]) -> dict:
    """One tenant for the operators' console: its profile, limits, features and the month's usage."""
    from chalicelib.metering import usage
    from chalicelib.tenants import get_tenant

    tenant = get_tenant(tenant_id)
    return {"tenant": profile(tenant), "limits": limits_view(tenant),
            "features": usage.feature_standing(tenant, current_period())["features"],
            "usage": usage.summary(tenant, period_param)}


def set_plan(tenant_id: str, body: Mapping[str, Any]) -> dict:
    validation.fields(body, {"plan"}, required=("plan",))
    plans = plan_catalog.all_plans()
    plan = plans[validation.one_of(body, "plan", plans)]
    ai_settings.fit_to_plan(tenant_id, plan)
    return profile(change_tenant(tenant_id, lambda tenant: {"plan": plan.name, "plan_changed_at": utcnow()}))


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
    overrides = tenant.limit_overrides.as_dict() if tenant.limit_overrides else {}
    plan = plan_catalog.require(tenant.plan)
    return {
        "tenant_id": tenant.tenant_id,
        "plan": tenant.plan,
        "plan_version": plan.version,
        "features": {name: feature_limit(plan, name, overrides) for name in FEATURES if plan.includes(name)},
        "requests_per_minute": requests_per_minute(plan, overrides),
        "overrides": overrides,
    }
