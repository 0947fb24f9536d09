"""Reading usage: the month's aggregates, the event list and each feature's standing.

Aggregates are kept by the usage aggregator from the events, so a usage report
is one query of the month's few counter items plus one read of the admission
and reconciliation items (what is reserved right now), however many events the
month holds.
"""
from __future__ import annotations

from typing import Dict, List, Optional

from chalicelib import pricing
from chalicelib.errors import BadRequest
from chalicelib.metering import admission
from chalicelib.models import Admission, FeatureUsage, Reconciliation, Tenant, UsageEvent, UsagePeriod, tenant_pk
from chalicelib.periods import isoformat, parse_period, period_end, period_start
from chalicelib.plans import FEATURES, feature_enabled, feature_limit
from chalicelib.store import decode_cursor, encode_cursor, get_items
from chalicelib.validation import page_size

MAX_EVENTS_PAGE = 100


def period_items(tenant_id: str, period: str) -> tuple[Optional[UsagePeriod], Dict[str, FeatureUsage]]:
    """The month's aggregate and its feature counters, in one query."""
    period_item, features = None, {}
    prefix = UsagePeriod.sk_for(period)
    for raw in UsagePeriod._get_connection().query(tenant_pk(tenant_id), UsagePeriod.sk.startswith(prefix)).get(
            "Items", []):
        sk = raw["sk"]["S"]
        if sk == prefix:
            period_item = UsagePeriod.from_raw_data(raw)
        elif sk.startswith(prefix + "#FEATURE#"):
            item = FeatureUsage.from_raw_data(raw)
            features[item.feature] = item
    return period_item, features


def admission_state(tenant_id: str) -> tuple[admission.AdmissionView, admission.Returns]:
    """The admission item and what settled calls gave back, read together and consistently."""
    pk = tenant_pk(tenant_id)
    item, reconciled = get_items([(Admission, pk, Admission.SK), (Reconciliation, pk, Reconciliation.SK)],
                                 consistent=True)
    view = admission.AdmissionView.from_item(item) or admission.AdmissionView(version=0, limits=None)
    return view, admission.Returns.from_item(reconciled)


def summary(tenant: Tenant, period_param: Optional[str]) -> dict:
    period = parse_period(period_param)
    aggregate, features = period_items(tenant.tenant_id, period)
    view, returns = admission_state(tenant.tenant_id)
    spent = int(aggregate.cost_micros) if aggregate else 0
    # Committed = worst case of calls not yet settled + cost of settled ones; the rest is in flight.
    committed = view.counters.get(admission.committed_key(period), 0) - returns.refunded(period)
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
        "by_feature": {
            name: {"requests": int(item.requests), "input_tokens": int(item.input_tokens),
                   "output_tokens": int(item.output_tokens), "cost_usd": pricing.usd(int(item.cost_micros))}
            for name, item in sorted(features.items())
        },
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
    view, returns = admission_state(tenant.tenant_id)
    overrides = tenant.limit_overrides.as_dict() if tenant.limit_overrides else {}
    out = {}
    for name, feature in FEATURES.items():
        limit = feature_limit(name, overrides)
        used = view.counters.get(admission.admitted_key(period, name), 0) - returns.released(period, name)
        out[name] = {
            "enabled": feature_enabled(tenant.plan, name),
            "required_plan": feature.plan,
            "limit": limit,
            "used": used,
            "remaining": None if limit is None else max(0, limit - used),
            "resets_at": isoformat(period_end(period)),
        }
    return {"plan": tenant.plan, "period": period, "features": out}
