"""Reading usage: the month's aggregates, the event list and each feature's standing.

Aggregates are kept by the usage aggregator from the events, so a usage report
is one query of the month's few counter items plus one read of the admission
and reconciliation items (what is reserved right now), however many events the
month holds.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Dict, List, Optional

from chalicelib import pricing
from chalicelib.budget_models import PrincipalBudget
from chalicelib.errors import BadRequest
from chalicelib.metering import admission, counter_keys, refusals
from chalicelib.models import (Admission, DayUsage, FeatureUsage, KeyUsage, ModelUsage, Reconciliation, RefusalCount,
                               Tenant, UsageCounter, UsageEvent, UsagePeriod, tenant_pk)
from chalicelib.periods import isoformat, parse_period, period_end, period_start, utcnow
from chalicelib.plans import FEATURES, feature_limit
from chalicelib.store import decode_cursor, encode_cursor, get_items
from chalicelib.validation import page_size

MAX_EVENTS_PAGE = 100
MAX_DAYS = 90
# The counter grains under a month's prefix: sk marker -> (model, the attribute that names the row).
GRAINS = {"FEATURE": (FeatureUsage, "feature"), "MODEL": (ModelUsage, "model"), "KEY": (KeyUsage, "principal_id")}


class MonthItems:
    """Everything kept for one tenant's month: the aggregate, each grain's counters and the refusals."""

    def __init__(self) -> None:
        self.total: Optional[UsagePeriod] = None
        self.grains: Dict[str, Dict[str, UsageCounter]] = {grain: {} for grain in GRAINS}
        self.refused: Optional[RefusalCount] = None


def month_items(tenant_id: str, period: str) -> MonthItems:
    """The month's aggregate, counters and refusals, in one query (more pages only past 1 MB)."""
    found = MonthItems()
    prefix = UsagePeriod.sk_for(period)
    connection = UsagePeriod._get_connection()
    start = None
    while True:
        page = connection.query(tenant_pk(tenant_id), UsagePeriod.sk.startswith(prefix), exclusive_start_key=start)
        for raw in page.get("Items", []):
            sk = raw["sk"]["S"]
            grain = sk[len(prefix) + 1:].split("#", 1)[0] if sk != prefix else ""
            if sk == prefix:
                found.total = UsagePeriod.from_raw_data(raw)
            elif sk == RefusalCount.sk_for(period):
                found.refused = RefusalCount.from_raw_data(raw)
            elif grain in GRAINS:
                model, name = GRAINS[grain]
                item = model.from_raw_data(raw)
                found.grains[grain][getattr(item, name)] = item
        start = page.get("LastEvaluatedKey")
        if not start:
            return found


def counter_view(item: UsageCounter) -> dict:
    return {"requests": int(item.requests), "input_tokens": int(item.input_tokens),
            "output_tokens": int(item.output_tokens), "cost_usd": pricing.usd(int(item.cost_micros))}


def principals_view(tenant: Tenant, used: Dict[str, KeyUsage]) -> dict:
    """Each key's and user's month, with its budget where the tenant set one (a budgeted principal that has
    not called yet shows at zero): the budgets are read in one BatchGetItem, only when there are any."""
    budgeted = sorted(tenant.budgeted_principals or ())
    budgets = get_items([(PrincipalBudget, tenant_pk(tenant.tenant_id), PrincipalBudget.sk_for(principal_id))
                         for principal_id in budgeted]) if budgeted else []
    view = {name: {**counter_view(item), "principal_type": item.principal_type} for name, item in used.items()}
    for budget in filter(None, budgets):
        row = view.setdefault(budget.principal_id, {"requests": 0, "input_tokens": 0, "output_tokens": 0,
                                                    "cost_usd": pricing.usd(0),
                                                    "principal_type": budget.principal_type})
        row["budget"] = {"monthly_budget_usd": None if budget.budget_micros is None
                         else pricing.usd(int(budget.budget_micros)),
                         "monthly_requests": None if budget.requests is None else int(budget.requests),
                         "hard_limit": bool(budget.hard)}
    return dict(sorted(view.items()))


def day_items(tenant_id: str, first: date, last: date) -> Dict[str, DayUsage]:
    """Every day's counter from `first` to `last` (inclusive) in one Query between two days' keys."""
    condition = DayUsage.sk.between(DayUsage.sk_for(first.isoformat()), DayUsage.sk_for(last.isoformat()))
    return {item.day: item for item in DayUsage.query(tenant_pk(tenant_id), condition)}


def days_view(items: Dict[str, DayUsage], first: date, last: date) -> List[dict]:
    """One row per day, zero where nothing was settled, so a chart's x axis has no gaps."""
    rows = []
    day = first
    while day <= last:
        item = items.get(day.isoformat())
        rows.append({"day": day.isoformat(), **(counter_view(item) if item else
                                                {"requests": 0, "input_tokens": 0, "output_tokens": 0,
                                                 "cost_usd": pricing.usd(0)})})
        day += timedelta(days=1)
    return rows


def daily(tenant_id: str, days_param: Optional[str], today: Optional[date] = None) -> dict:
    """`GET /usage/daily`: the last `days` UTC days (default and most MAX_DAYS), today included."""
    days = page_size(days_param, MAX_DAYS, default=MAX_DAYS, name="days")
    last = today or utcnow().date()
    first = last - timedelta(days=days - 1)
    return {"from": first.isoformat(), "to": last.isoformat(),
            "days": days_view(day_items(tenant_id, first, last), first, last)}


def forecast_micros(spent: int, period: str, now: datetime) -> int:
    """The month's spend at its end if it goes on at the rate so far (linear in time): spent x month / elapsed.
    A month over is its spend; a month not begun is 0."""
    start, end = period_start(period), period_end(period)
    if now >= end:
        return spent
    elapsed = (now - start).total_seconds()
    if elapsed <= 0:
        return 0
    whole = int((end - start).total_seconds())
    return spent * whole // max(1, int(elapsed))


def admission_state(tenant_id: str, plan: Optional[str] = None) -> tuple:
    """The admission item and what settled calls gave back, read together and consistently; with `plan`,
    that plan's current item in the same read, and the plan as a third value."""
    from chalicelib import plan_catalog

    pk = tenant_pk(tenant_id)
    refs = [(Admission, pk, Admission.SK), (Reconciliation, pk, Reconciliation.SK)]
    item, reconciled, *record = get_items(refs + ([plan_catalog.current_ref(plan)] if plan else []), consistent=True)
    view = admission.AdmissionView.from_item(item) or admission.AdmissionView(version=0, limits=None)
    if plan:
        return view, admission.Returns.from_item(reconciled), plan_catalog.from_record(plan, record[0])
    return view, admission.Returns.from_item(reconciled)


def summary(tenant: Tenant, period_param: Optional[str], now: Optional[datetime] = None) -> dict:
    period = parse_period(period_param)
    found = month_items(tenant.tenant_id, period)
    aggregate, features = found.total, found.grains["FEATURE"]
    first = period_start(period).date()
    last = period_end(period).date() - timedelta(days=1)
    view, returns = admission_state(tenant.tenant_id)
    spent = int(aggregate.cost_micros) if aggregate else 0
    # Committed = worst case of calls not yet settled + cost of settled ones; the rest is in flight.
    committed = view.counters.get(counter_keys.committed_key(period), 0) - returns.refunded(period)
    reserved = max(0, committed - spent)
    budget = tenant.monthly_budget_micros
    input_tokens = int(aggregate.input_tokens) if aggregate else 0
    output_tokens = int(aggregate.output_tokens) if aggregate else 0
    return {
        "period": period,
        "requests": int(aggregate.requests) if aggregate else 0,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_tokens": int(aggregate.cache_creation_tokens) if aggregate else 0,
        "cache_read_tokens": int(aggregate.cache_read_tokens) if aggregate else 0,
        "total_tokens": input_tokens + output_tokens,
        "total_cost_usd": pricing.usd(spent),
        "failed_requests": int(aggregate.failed_requests) if aggregate else 0,
        "indeterminate_requests": int(aggregate.indeterminate_requests) if aggregate else 0,
        "abandoned_requests": int(aggregate.abandoned_requests) if aggregate else 0,
        "unbilled_exposure_usd": pricing.usd(int(aggregate.exposure_micros) if aggregate else 0),
        "by_feature": {name: counter_view(item) for name, item in sorted(features.items())},
        "by_model": {name: counter_view(item) for name, item in sorted(found.grains["MODEL"].items())},
        "by_principal": principals_view(tenant, found.grains["KEY"]),
        "by_day": days_view(day_items(tenant.tenant_id, first, last), first, last),
        "refusals": refusals.view(found.refused),
        "by_key_source": {
            "platform": {"requests": int(aggregate.pool_requests) if aggregate else 0,
                         "cost_usd": pricing.usd(int(aggregate.pool_cost_micros) if aggregate else 0)},
            "tenant": {"requests": int(aggregate.own_key_requests) if aggregate else 0,
                       "cost_usd": pricing.usd(int(aggregate.own_key_cost_micros) if aggregate else 0)},
        },
        "budget": {
            "monthly_budget_usd": pricing.usd(int(budget)) if budget is not None else None,
            "spent_usd": pricing.usd(spent),
            "reserved_usd": pricing.usd(reserved),
            "remaining_usd": pricing.usd(max(0, int(budget) - spent - reserved)) if budget is not None else None,
            "hard_limit": bool(tenant.budget_hard_limit),
            "resets_at": isoformat(period_end(period)),
            "alerts_sent": sorted(int(t) for t in (aggregate.alerts_sent or [])) if aggregate else [],
            "alert_thresholds": sorted(int(t) for t in (tenant.budget_alert_thresholds or [])),
            "forecast_usd": pricing.usd(forecast_micros(spent, period, now or utcnow())),
        },
    }


def _event_view(event: UsageEvent) -> dict:
    return {
        "request_id": event.request_id, "created_at": isoformat(event.created_at), "feature": event.feature,
        "model": event.model, "status": event.status, "principal_id": event.principal_id,
        "principal_type": event.principal_type, "input_tokens": int(event.input_tokens),
        "output_tokens": int(event.output_tokens), "cache_creation_tokens": int(event.cache_creation_tokens),
        "cache_read_tokens": int(event.cache_read_tokens), "cost_usd": pricing.usd(int(event.cost_micros)),
        "latency_ms": int(event.latency_ms), "key_source": event.key_source,
        "provider": event.provider, "upstream_attempts": event.upstream_attempts,
        "cost_bound_usd": pricing.usd(int(event.cost_bound_micros)) if event.cost_bound_micros is not None else None,
        **({"batch_id": event.batch_id, "custom_id": event.custom_id} if event.batch_id else {}),
    }


def events(tenant_id: str, period_param: Optional[str], limit: Optional[str], cursor: Optional[str]) -> dict:
    period = parse_period(period_param)
    size = page_size(limit, MAX_EVENTS_PAGE)
    pk = tenant_pk(tenant_id)
    start_ms = int(period_start(period).timestamp() * 1000)
    end_ms = int(period_end(period).timestamp() * 1000)
    low, high = UsageEvent.sk_for(f"req_{start_ms:012x}"), UsageEvent.sk_for(f"req_{end_ms:012x}")
    result = UsageEvent.query(pk, UsageEvent.sk.between(low, high), scan_index_forward=False, limit=size,
                              last_evaluated_key=decode_cursor(cursor, pk, sk_prefix="EVENT#"))
    items: List[dict] = [_event_view(e) for e in result]
    return {"period": period, "events": items, "next_cursor": encode_cursor(result.last_evaluated_key)}


def feature_standing(tenant: Tenant, period: str) -> dict:
    view, returns, plan = admission_state(tenant.tenant_id, tenant.plan)
    overrides = tenant.limit_overrides.as_dict() if tenant.limit_overrides else {}
    out = {}
    for name, feature in FEATURES.items():
        enabled = plan.includes(name)
        limit = feature_limit(plan, name, overrides) if enabled else None
        used = view.counters.get(counter_keys.admitted_key(period, name), 0) - returns.released(period, name)
        out[name] = {
            "enabled": enabled,
            "required_plan": feature.introduced,
            "limit": limit,
            "used": used,
            "remaining": None if limit is None else max(0, limit - used),
            "resets_at": isoformat(period_end(period)),
        }
    return {"plan": tenant.plan, "plan_version": plan.version, "period": period, "features": out}
