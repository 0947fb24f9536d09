"""Admission is exact under concurrency: real threads against the moto server process."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

from chalicelib import operators, tenants
from chalicelib.ai.gateway import FeatureCall, Gateway
from chalicelib.errors import PaymentRequired, TooManyRequests
from chalicelib.metering import ledger
from chalicelib.models import FeatureUsage, UsagePeriod, tenant_pk
from chalicelib.periods import current_period
from chalicelib.tenancy import TenantContext
from conftest import random_slug

THREADS = 50
CALL = FeatureCall(messages=[{"role": "user", "content": "concurrent hello"}], max_tokens=64)


def new_tenant():
    slug = random_slug("m")
    created = tenants.sign_up({"company_name": "Meter Co", "slug": slug, "email": f"o@{slug}.example.com",
                               "password": "meter-password-1"})
    tid = created["tenant_id"]
    return tid, TenantContext(tid, created["owner"]["user_id"], "user", "owner", created["owner"]["email"], slug)


def burst(fn, n=THREADS):
    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(fn, i) for i in range(n)]
    outcomes = []
    for future in futures:
        error = future.exception()
        outcomes.append(getattr(error, "code", type(error).__name__) if error else "ok")
    return outcomes


def period_item(tenant_id):
    return UsagePeriod.get(tenant_pk(tenant_id), UsagePeriod.sk_for(current_period()), consistent_read=True)


def feature_item(tenant_id, feature="basic_chat"):
    return FeatureUsage.get(tenant_pk(tenant_id), FeatureUsage.sk_for(current_period(), feature),
                            consistent_read=True)


def test_brand_new_tenant_burst_admits_exactly_the_monthly_limit():
    tenant_id, ctx = new_tenant()
    operators.set_limits(tenant_id, {"features": {"basic_chat": 10}, "requests_per_minute": 1000})
    gateway = Gateway()
    outcomes = burst(lambda i: gateway.run(ctx, "basic_chat", CALL))
    assert outcomes.count("ok") == 10
    assert outcomes.count("feature_limit_reached") == THREADS - 10
    assert int(feature_item(tenant_id).admitted) == 10
    assert int(period_item(tenant_id).requests) == 10


def test_burst_against_ten_remaining_admits_exactly_ten():
    tenant_id, ctx = new_tenant()
    operators.set_limits(tenant_id, {"features": {"basic_chat": 15}, "requests_per_minute": 1000})
    gateway = Gateway()
    for _ in range(5):
        gateway.run(ctx, "basic_chat", CALL)
    outcomes = burst(lambda i: gateway.run(ctx, "basic_chat", CALL))
    assert outcomes.count("ok") == 10
    assert int(feature_item(tenant_id).admitted) == 15
    assert int(period_item(tenant_id).requests) == 15


def test_requests_per_minute_admits_exactly_the_limit_within_one_minute():
    tenant_id, _ = new_tenant()
    limits = ledger.Limits(feature_limit=None, requests_per_minute=10, budget_micros=None, hard_limit=False)
    minute = datetime(2026, 11, 26, 12, 30, 5, tzinfo=timezone.utc)
    outcomes = burst(lambda i: ledger.reserve(tenant_id, f"req_rpm_{i}", "basic_chat", limits, 100, now=minute))
    assert outcomes.count("ok") == 10
    assert outcomes.count("rate_limited") == THREADS - 10


def test_rate_limited_request_carries_retry_after_until_the_next_minute():
    tenant_id, _ = new_tenant()
    limits = ledger.Limits(feature_limit=None, requests_per_minute=1, budget_micros=None, hard_limit=False)
    moment = datetime(2026, 11, 26, 12, 30, 45, tzinfo=timezone.utc)
    ledger.reserve(tenant_id, "req_a", "basic_chat", limits, 1, now=moment)
    with pytest.raises(TooManyRequests) as caught:
        ledger.reserve(tenant_id, "req_b", "basic_chat", limits, 1, now=moment)
    assert caught.value.code == "rate_limited" and caught.value.headers["Retry-After"] == "15"


def test_hard_budget_holds_under_fifty_concurrent_requests():
    tenant_id, ctx = new_tenant()
    operators.set_limits(tenant_id, {"features": {"basic_chat": 1000}, "requests_per_minute": 1000})
    budget_usd = "0.01"
    tenants.update_tenant(tenant_id, {"monthly_budget_usd": budget_usd, "budget_hard_limit": True})
    gateway = Gateway()
    outcomes = burst(lambda i: gateway.run(ctx, "basic_chat", CALL))
    aggregate = period_item(tenant_id)
    budget_micros = 10_000
    assert outcomes.count("ok") >= 1
    assert outcomes.count("budget_exceeded") >= 1
    assert set(outcomes) <= {"ok", "budget_exceeded"}
    assert int(aggregate.cost_micros) <= budget_micros
    assert int(aggregate.committed_micros) == int(aggregate.cost_micros)
    assert int(aggregate.requests) == outcomes.count("ok")


def test_request_whose_worst_case_exceeds_the_whole_budget_is_402_without_writing():
    tenant_id, _ = new_tenant()
    limits = ledger.Limits(feature_limit=None, requests_per_minute=100, budget_micros=500, hard_limit=True)
    with pytest.raises(PaymentRequired):
        ledger.reserve(tenant_id, "req_big", "basic_chat", limits, 501)
    with pytest.raises(UsagePeriod.DoesNotExist):
        period_item(tenant_id)


def test_soft_budget_lets_requests_through():
    tenant_id, _ = new_tenant()
    limits = ledger.Limits(feature_limit=None, requests_per_minute=100, budget_micros=500, hard_limit=False)
    ledger.reserve(tenant_id, "req_soft", "basic_chat", limits, 5_000)
    assert int(period_item(tenant_id).committed_micros) == 5_000


def test_settling_the_same_request_twice_counts_once():
    tenant_id, _ = new_tenant()
    limits = ledger.Limits(feature_limit=None, requests_per_minute=100, budget_micros=None, hard_limit=False)
    reservation = ledger.reserve(tenant_id, "req_twice", "basic_chat", limits, 1_000)
    result = ledger.Settlement(principal_id="usr_x", principal_type="user", model="claude-sonnet-4-6",
                               input_tokens=10, output_tokens=20, cache_creation_tokens=0, cache_read_tokens=0,
                               cost_micros=330, latency_ms=5, own_key=False)
    outcomes = burst(lambda i: ledger.settle(reservation, result), n=5)
    assert outcomes.count("ok") == 5
    aggregate = period_item(tenant_id)
    assert int(aggregate.requests) == 1 and int(aggregate.cost_micros) == 330
    assert int(aggregate.committed_micros) == 330
    assert int(feature_item(tenant_id).requests) == 1


def test_release_gives_back_quota_and_reserved_cost():
    tenant_id, _ = new_tenant()
    limits = ledger.Limits(feature_limit=1, requests_per_minute=100, budget_micros=None, hard_limit=False)
    reservation = ledger.reserve(tenant_id, "req_fail", "basic_chat", limits, 777)
    ledger.release(reservation)
    assert int(feature_item(tenant_id).admitted) == 0
    assert int(period_item(tenant_id).committed_micros) == 0
    ledger.reserve(tenant_id, "req_next", "basic_chat", limits, 777)
