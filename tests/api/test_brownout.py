"""Brownout over HTTP: a tenant's explicit choice of a cheaper model once its spend passes a share of its
budget, per feature. The answer, the response headers and the usage event name the model that served; the
hard budget still holds exactly. Spend is made through the real admission and ledger (conftest.record_spend)."""
from __future__ import annotations

import pytest

from chalicelib.ai.brownout import served_model
from conftest import WritesNothing, record_spend

CHAT = {"messages": [{"role": "user", "content": "brownout please"}]}
HAIKU, SONNET = "claude-haiku-4-5", "claude-sonnet-4-6"
RULE = {"basic_chat": {"at_percent": 80, "model": HAIKU}}


def tenant_with_brownout(api, budget="1", hard=False):
    tenant = api.signup()
    assert api.call("PATCH", "/tenant", {"monthly_budget_usd": budget, "budget_hard_limit": hard},
                    token=tenant.token).status_code == 200
    set_ = api.call("PUT", "/tenant/ai-config", {"brownout": RULE}, token=tenant.token)
    assert set_.status_code == 200, set_.body
    assert set_.json["brownout"] == RULE
    return tenant


def test_past_the_share_a_chat_is_served_by_the_cheaper_model_and_says_so(api):
    tenant = tenant_with_brownout(api)
    record_spend(tenant.id, 800_000)  # 80 % of $1
    answer = api.call("POST", "/ai/chat", CHAT, token=tenant.token)
    assert answer.status_code == 200, answer.body
    assert answer.json["model"] == HAIKU
    assert (answer.headers["x-tessera-requested-model"], answer.headers["x-tessera-served-model"]) == (SONNET, HAIKU)
    events = api.call("GET", "/usage/events", token=tenant.token).json["events"]
    served = [e for e in events if e["request_id"] == answer.json["id"]]
    assert [e["model"] for e in served] == [HAIKU]


def test_below_the_share_the_model_asked_serves_and_no_header_is_sent(api):
    tenant = tenant_with_brownout(api)
    record_spend(tenant.id, 799_999)
    answer = api.call("POST", "/ai/chat", CHAT, token=tenant.token)
    assert answer.json["model"] == SONNET
    assert "x-tessera-served-model" not in answer.headers


def test_the_messages_api_answer_names_the_served_model(api):
    tenant = tenant_with_brownout(api)
    record_spend(tenant.id, 900_000)
    key = api.api_key(tenant)["key"]
    answer = api.call("POST", "/v1/messages", {"model": SONNET, "max_tokens": 64, "messages": CHAT["messages"]},
                      headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.body
    assert answer.json["model"] == HAIKU and answer.headers["x-tessera-served-model"] == HAIKU


def test_the_hard_budget_still_holds_exactly_when_browned_out(api):
    tenant = tenant_with_brownout(api, budget="1", hard=True)
    record_spend(tenant.id, 999_999)  # one micro-dollar left: less than any call's worst case
    refused = api.call("POST", "/ai/chat", CHAT, token=tenant.token)
    assert (refused.status_code, refused.json["error"]["code"]) == (402, "budget_exceeded")


def test_a_browned_out_call_is_reserved_at_the_served_models_worst_case(api):
    """10,000 micro-dollars left of a hard $1: a chat's worst case at the tenant's max_tokens (1,024) is about
    5,100 on Haiku ($5 per million output tokens) and about 15,400 on Sonnet ($15): admitted only because
    admission reserved the served model's worst case."""
    tenant = tenant_with_brownout(api, budget="1", hard=True)
    record_spend(tenant.id, 990_000)
    answer = api.call("POST", "/ai/chat", CHAT, token=tenant.token)
    assert answer.status_code == 200, answer.body
    assert answer.json["model"] == HAIKU


def test_without_the_setting_nothing_changes_past_any_share(api):
    tenant = api.signup()
    api.call("PATCH", "/tenant", {"monthly_budget_usd": "1"}, token=tenant.token)
    record_spend(tenant.id, 999_000)
    answer = api.call("POST", "/ai/chat", CHAT, token=tenant.token)
    assert answer.json["model"] == SONNET and "x-tessera-served-model" not in answer.headers


@pytest.mark.parametrize("rule, code", [
    ({"teleport": {"at_percent": 80, "model": HAIKU}}, "unknown_feature"),
    ({"basic_chat": {"at_percent": 0, "model": HAIKU}}, "invalid_field"),
    ({"basic_chat": {"at_percent": 101, "model": HAIKU}}, "invalid_field"),
    ({"basic_chat": {"at_percent": 80, "model": "claude-opus-4-6"}}, "model_not_in_plan"),  # free plan
    ({"basic_chat": {"at_percent": 80}}, "missing_field"),
    ({"basic_chat": "haiku"}, "invalid_field"),
])
def test_a_bad_brownout_setting_is_a_400_and_writes_nothing(api, rule, code):
    tenant = api.signup()
    with WritesNothing(tenant.id):
        refused = api.call("PUT", "/tenant/ai-config", {"brownout": rule}, token=tenant.token)
    assert (refused.status_code, refused.json["error"]["code"]) == (400, code), refused.body


@pytest.mark.parametrize("spent, served", [(799_999, SONNET), (800_000, HAIKU), (1_500_000, HAIKU)])
def test_the_share_is_compared_in_whole_micro_dollars(spent, served):
    import json

    stored = json.dumps(RULE)
    assert served_model(stored, "basic_chat", SONNET, 1_000_000, spent) == served
    assert served_model(stored, "code_review", SONNET, 1_000_000, spent) == SONNET  # per feature
    assert served_model(stored, "basic_chat", SONNET, None, spent) == SONNET  # no budget, no brownout


def test_a_call_the_cheaper_model_could_not_write_is_served_as_asked(api, operator_token):
    tenant = tenant_with_brownout(api)
    assert api.call("PUT", f"/admin/tenants/{tenant.id}/plan", {"plan": "pro"},
                    token=operator_token).status_code == 200
    record_spend(tenant.id, 900_000)
    key = api.api_key(tenant)["key"]
    answer = api.call("POST", "/v1/messages", {"model": SONNET, "max_tokens": 64_001, "messages": CHAT["messages"]},
                      headers={"Authorization": f"Bearer {key}"})  # Haiku writes at most 64,000: not lowered
    assert answer.status_code == 200, answer.body
    assert answer.json["model"] == SONNET and "x-tessera-served-model" not in answer.headers


def test_a_call_with_thinking_settings_is_served_as_asked(api):
    tenant = tenant_with_brownout(api)
    record_spend(tenant.id, 900_000)
    key = api.api_key(tenant)["key"]
    answer = api.call("POST", "/v1/messages", {"model": SONNET, "max_tokens": 2048, "messages": CHAT["messages"],
                                               "thinking": {"type": "enabled", "budget_tokens": 1024}},
                      headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.body
    assert answer.json["model"] == SONNET and "x-tessera-served-model" not in answer.headers
