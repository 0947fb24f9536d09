"""Usage reports, the event list, feature standing, budgets and operator limit overrides over HTTP."""
from __future__ import annotations

import time
from decimal import Decimal

import pytest

from chalicelib.ai.features import chat as chat_call
from chalicelib.ai.gateway import Gateway
from chalicelib.identity.resolve import resolve
from chalicelib.tenancy import TenantContext
from dev.bench.probes import DynamoProbe

CHAT = {"messages": [{"role": "user", "content": "usage please"}]}


@pytest.fixture
def tenant(api):
    return api.signup()


def chat(api, tenant, n=1):
    responses = [api.call("POST", "/ai/chat", CHAT, token=tenant.token) for _ in range(n)]
    assert all(r.status_code == 200 for r in responses), [r.body for r in responses]
    return responses


def test_usage_totals_match_the_responses(api, tenant):
    responses = chat(api, tenant, 3)
    usage = api.call("GET", "/usage", token=tenant.token).json
    assert usage["requests"] == 3
    assert usage["input_tokens"] == sum(r.json["usage"]["input_tokens"] for r in responses)
    assert usage["output_tokens"] == sum(r.json["usage"]["output_tokens"] for r in responses)
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert Decimal(usage["total_cost_usd"]) == sum(Decimal(r.json["cost_usd"]) for r in responses)
    assert usage["by_feature"]["basic_chat"]["requests"] == 3
    assert usage["by_key_source"]["platform"]["requests"] == 3


def test_each_response_cost_equals_its_recorded_event(api, tenant):
    response = chat(api, tenant)[0]
    events = api.call("GET", "/usage/events", token=tenant.token).json["events"]
    [event] = [e for e in events if e["request_id"] == response.json["id"]]
    assert event["cost_usd"] == response.json["cost_usd"]
    assert event["input_tokens"] == response.json["usage"]["input_tokens"]
    assert event["feature"] == "basic_chat" and event["key_source"] == "platform"
    assert event["principal_id"] == tenant.owner_id


def test_events_are_newest_first_and_paginate(api, tenant):
    ids = [r.json["id"] for r in chat(api, tenant, 5)]
    first = api.call("GET", "/usage/events?limit=2", token=tenant.token).json
    assert [e["request_id"] for e in first["events"]] == ids[::-1][:2]
    second = api.call("GET", f"/usage/events?limit=2&cursor={first['next_cursor']}", token=tenant.token).json
    assert [e["request_id"] for e in second["events"]] == ids[::-1][2:4]


def test_another_tenants_cursor_is_refused(api, tenant):
    chat(api, tenant, 3)
    cursor = api.call("GET", "/usage/events?limit=1", token=tenant.token).json["next_cursor"]
    other = api.signup()
    r = api.call("GET", f"/usage/events?cursor={cursor}", token=other.token)
    assert r.status_code == 400 and r.json["error"]["code"] == "invalid_cursor"


@pytest.mark.parametrize("period", ["2026-13", "26-11", "2026-1", "latest"])
def test_bad_period_is_400(api, tenant, period):
    r = api.call("GET", f"/usage?period={period}", token=tenant.token)
    assert r.status_code == 400 and r.json["error"]["code"] == "invalid_period"


def test_a_past_period_is_empty(api, tenant):
    chat(api, tenant)
    usage = api.call("GET", "/usage?period=2020-01", token=tenant.token).json
    assert usage["period"] == "2020-01" and usage["requests"] == 0
    assert usage["budget"]["resets_at"] == "2020-02-01T00:00:00Z"


def test_members_read_usage_but_cannot_change_budgets(api, tenant):
    chat(api, tenant)
    _, member = api.add_user(tenant, "member")
    assert api.call("GET", "/usage", token=member).json["requests"] == 1
    r = api.call("PATCH", "/tenant", {"monthly_budget_usd": 5}, token=member)
    assert r.status_code == 403


def test_budget_settings_round_trip_and_show_in_usage(api, tenant):
    r = api.call("PATCH", "/tenant", {"monthly_budget_usd": "12.50", "budget_alert_thresholds": [25, 90],
                                      "budget_hard_limit": True}, token=tenant.token)
    assert r.status_code == 200, r.body
    assert r.json["budget"] == {"monthly_budget_usd": "12.500000", "budget_alert_thresholds": [25, 90],
                                "budget_hard_limit": True}
    chat(api, tenant)
    budget = api.call("GET", "/usage", token=tenant.token).json["budget"]
    assert budget["monthly_budget_usd"] == "12.500000" and budget["hard_limit"] is True
    assert budget["alerts_sent"] == []
    assert Decimal(budget["remaining_usd"]) == Decimal("12.5") - Decimal(budget["spent_usd"])
    cleared = api.call("PATCH", "/tenant", {"monthly_budget_usd": None}, token=tenant.token)
    assert cleared.json["budget"]["monthly_budget_usd"] is None


@pytest.mark.parametrize("body", [
    {"monthly_budget_usd": -1}, {"monthly_budget_usd": "ten"}, {"monthly_budget_usd": True},
    {"budget_alert_thresholds": [0]}, {"budget_alert_thresholds": [101]}, {"budget_alert_thresholds": "50"},
    {"budget_hard_limit": "yes"}, {"plan": "enterprise"}, {"status": "active"},
])
def test_invalid_budget_settings_are_400_and_change_nothing(api, tenant, body):
    before = api.call("GET", "/tenant", token=tenant.token).json
    r = api.call("PATCH", "/tenant", body, token=tenant.token)
    assert r.status_code == 400
    assert api.call("GET", "/tenant", token=tenant.token).json == before


def test_hard_budget_refuses_with_402(api, tenant):
    api.call("PATCH", "/tenant", {"monthly_budget_usd": "0.001", "budget_hard_limit": True}, token=tenant.token)
    r = api.call("POST", "/ai/chat", CHAT, token=tenant.token)
    assert r.status_code == 402 and r.json["error"]["code"] == "budget_exceeded"


def test_monthly_limit_reached_is_429_with_reset_time(api, tenant, operator_token):
    r = api.call("PUT", f"/admin/tenants/{tenant.id}/limits", {"features": {"basic_chat": 2}}, token=operator_token)
    assert r.status_code == 200 and r.json["features"]["basic_chat"] == 2
    chat(api, tenant, 2)
    refused = api.call("POST", "/ai/chat", CHAT, token=tenant.token)
    assert refused.status_code == 429
    assert refused.json["error"]["code"] == "feature_limit_reached"
    assert refused.json["error"]["resets_at"].endswith("T00:00:00Z")
    assert "Retry-After" not in refused.headers


def test_features_show_limits_usage_and_overrides(api, tenant, operator_token):
    chat(api, tenant)
    features = api.call("GET", "/features", token=tenant.token).json["features"]
    assert features["basic_chat"] == {"enabled": True, "required_plan": "free", "limit": 300, "used": 1,
                                      "remaining": 299, "resets_at": features["basic_chat"]["resets_at"]}
    assert features["code_review"]["enabled"] is False and features["code_review"]["required_plan"] == "pro"
    assert features["custom_prompts"]["limit"] is None
    api.call("PUT", f"/admin/tenants/{tenant.id}/limits", {"features": {"basic_chat": 5000}}, token=operator_token)
    assert api.call("GET", "/features", token=tenant.token).json["features"]["basic_chat"]["limit"] == 5000
    api.call("PUT", f"/admin/tenants/{tenant.id}/limits", {"features": {"basic_chat": None}}, token=operator_token)
    assert api.call("GET", "/features", token=tenant.token).json["features"]["basic_chat"]["limit"] == 300


@pytest.mark.parametrize("body", [{"features": {"teleport": 5}}, {"features": {"basic_chat": -1}},
                                  {"requests_per_minute": 0}, {"plan": "pro"}, {}])
def test_invalid_limit_overrides_are_400(api, tenant, operator_token, body):
    r = api.call("PUT", f"/admin/tenants/{tenant.id}/limits", body, token=operator_token)
    assert r.status_code == 400


def test_warm_ai_request_makes_two_dynamodb_round_trips(api, tenant):
    chat(api, tenant)
    ctx = TenantContext(tenant.id, tenant.owner_id, "user", "owner", tenant.email, tenant.slug)
    # An instance of its own: the pool minute's lease and the breaker's view it warms are used by no other
    # test's calls, and both calls fall in one pool minute (a new minute takes a new lease, once per instance).
    gateway = Gateway()
    if 60 - time.time() % 60 < 3:
        time.sleep(60 - time.time() % 60 + 0.1)
    gateway.run(ctx, "basic_chat", chat_call(CHAT)[0])
    with DynamoProbe(this_thread=True) as probe:
        gateway.run(ctx, "basic_chat", chat_call(CHAT)[0])
    assert probe.total == 2, dict(probe.calls)
    assert dict(probe.calls) == {"UpdateItem": 1, "PutItem": 1}


def test_authorizer_resolves_a_credential_in_one_round_trip(api, tenant):
    key = api.api_key(tenant)["key"]
    for credential in (tenant.token, key):
        with DynamoProbe(this_thread=True) as probe:
            ctx = resolve(f"Bearer {credential}")
        assert ctx.tenant_id == tenant.id
        assert dict(probe.calls) == {"BatchGetItem": 1}
