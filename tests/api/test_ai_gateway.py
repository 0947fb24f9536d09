"""The AI gateway through the HTTP API: tenant settings reach the model, keys are chosen right,
upstream errors map to clear responses, and invalid input never reaches upstream."""
from __future__ import annotations

import hashlib
import json
import urllib.request

import boto3
import pytest

from conftest import POOL_KEY

CHAT = {"messages": [{"role": "user", "content": "hello there"}]}
OWN_KEY = "sk-ant-own-canary-7c1f2e9d4b8a6035"


def standin_requests(url):
    with urllib.request.urlopen(f"{url}/_standin/requests") as response:
        return json.loads(response.read())


def forget_standin_requests(url):
    """Empty the stand-in's log (it keeps the last 100): what a test reads after this is its own."""
    urllib.request.urlopen(urllib.request.Request(f"{url}/_standin/requests", method="DELETE")).close()


def fingerprint(key):
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def set_plan(api, operator_token, tenant, plan):
    r = api.call("PUT", f"/admin/tenants/{tenant.id}/plan", {"plan": plan}, token=operator_token)
    assert r.status_code == 200, r.body


@pytest.fixture
def tenant(api):
    return api.signup()


def last_request_for(standin, text):
    matches = [r for r in standin_requests(standin) if text in (r.get("last_user_text") or "")]
    assert matches, f"the stand-in received no request containing {text!r}"
    return matches[-1]


def test_chat_returns_reply_usage_and_cost(api, tenant):
    r = api.call("POST", "/ai/chat", CHAT, token=tenant.token)
    assert r.status_code == 200, r.body
    assert set(r.json) >= {"id", "content", "model", "usage", "cost_usd"}
    assert r.json["model"] == "claude-sonnet-4-6"
    assert r.json["usage"]["input_tokens"] > 0 and r.json["usage"]["output_tokens"] > 0
    assert float(r.json["cost_usd"]) > 0


def test_tenant_instructions_go_into_system_not_the_user_message(api, tenant, standin):
    api.call("PUT", "/tenant/ai-config", {"custom_instructions": "Answer like a pirate."}, token=tenant.token)
    r = api.call("POST", "/ai/chat", {"messages": [{"role": "user", "content": "pirate-probe"}]}, token=tenant.token)
    assert r.status_code == 200, r.body
    seen = last_request_for(standin, "pirate-probe")
    assert "Answer like a pirate." in seen["system"]
    assert "Acme Inc" in seen["system"]
    assert seen["last_user_text"] == "pirate-probe"


def test_inject_context_off_sends_no_tenant_system_prompt(api, tenant, standin):
    api.call("PUT", "/tenant/ai-config", {"custom_instructions": "secret sauce", "inject_context": False},
             token=tenant.token)
    api.call("POST", "/ai/chat", {"messages": [{"role": "user", "content": "no-context-probe"}]}, token=tenant.token)
    seen = last_request_for(standin, "no-context-probe")
    assert not seen["system"]


def test_model_and_temperature_settings_reach_upstream(api, tenant, standin):
    r = api.call("PUT", "/tenant/ai-config", {"model": "claude-haiku-4-5", "temperature": 0.2, "max_tokens": 300},
                 token=tenant.token)
    assert r.status_code == 200, r.body
    api.call("POST", "/ai/chat", {"messages": [{"role": "user", "content": "settings-probe"}]}, token=tenant.token)
    seen = last_request_for(standin, "settings-probe")
    assert seen["model"] == "claude-haiku-4-5"
    assert seen["temperature"] == 0.2
    assert seen["max_tokens"] == 300


def test_max_tokens_is_the_tenants_setting_unless_the_request_says_within_the_plans_cap(api, tenant, standin):
    api.call("PUT", "/tenant/ai-config", {"max_tokens": 200}, token=tenant.token)
    api.call("POST", "/ai/chat", {"messages": [{"role": "user", "content": "default-probe"}]}, token=tenant.token)
    assert last_request_for(standin, "default-probe")["max_tokens"] == 200
    api.call("POST", "/ai/chat", {**CHAT, "max_tokens": 50, "messages": [{"role": "user", "content": "lower-probe"}]},
             token=tenant.token)
    assert last_request_for(standin, "lower-probe")["max_tokens"] == 50
    api.call("POST", "/ai/chat", {"max_tokens": 2048, "messages": [{"role": "user", "content": "raise-probe"}]},
             token=tenant.token)
    assert last_request_for(standin, "raise-probe")["max_tokens"] == 2048  # as asked, never lowered
    r = api.call("POST", "/ai/chat", {"max_tokens": 5000, "messages": [{"role": "user", "content": "over-probe"}]},
                 token=tenant.token)
    assert (r.status_code, r.json["error"]["code"], r.json["error"]["max_tokens_cap"]) == (
        400, "max_tokens_above_cap", 2048)


def test_platform_pool_key_is_used_without_an_own_key(api, tenant, standin):
    api.call("POST", "/ai/chat", {"messages": [{"role": "user", "content": "pool-probe"}]}, token=tenant.token)
    assert last_request_for(standin, "pool-probe")["key_fingerprint"] == fingerprint(POOL_KEY)


def test_own_key_is_used_once_set_and_pool_again_after_removal(api, tenant, standin):
    r = api.call("PUT", "/tenant/ai-config/api-key", {"api_key": OWN_KEY}, token=tenant.token)
    assert r.status_code == 200, r.body
    assert r.json["api_key"] == {"set": True, "last4": OWN_KEY[-4:]}
    assert OWN_KEY not in r.body.decode()
    api.call("POST", "/ai/chat", {"messages": [{"role": "user", "content": "own-probe"}]}, token=tenant.token)
    assert last_request_for(standin, "own-probe")["key_fingerprint"] == fingerprint(OWN_KEY)
    r = api.call("DELETE", "/tenant/ai-config/api-key", token=tenant.token)
    assert r.json["api_key"]["set"] is False
    api.call("POST", "/ai/chat", {"messages": [{"role": "user", "content": "back-to-pool"}]}, token=tenant.token)
    assert last_request_for(standin, "back-to-pool")["key_fingerprint"] == fingerprint(POOL_KEY)


def test_own_key_is_stored_only_as_kms_ciphertext(api, tenant):
    api.call("PUT", "/tenant/ai-config/api-key", {"api_key": OWN_KEY}, token=tenant.token)
    items = boto3.client("dynamodb").query(
        TableName="tessera-local", KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"TENANT#{tenant.id}"}})["Items"]
    assert OWN_KEY not in json.dumps(items, default=str)
    config = next(i for i in items if i["sk"]["S"] == "AICONFIG")
    assert OWN_KEY.encode() not in config["api_key_ciphertext"]["B"]


def test_ciphertext_copied_to_another_tenant_fails_closed_without_pool_fallback(api, standin):
    victim, thief = api.signup(), api.signup()
    api.call("PUT", "/tenant/ai-config/api-key", {"api_key": OWN_KEY}, token=victim.token)
    ddb = boto3.client("dynamodb")
    stolen = ddb.get_item(TableName="tessera-local",
                          Key={"pk": {"S": f"TENANT#{victim.id}"}, "sk": {"S": "AICONFIG"}})["Item"]
    ddb.update_item(TableName="tessera-local", Key={"pk": {"S": f"TENANT#{thief.id}"}, "sk": {"S": "AICONFIG"}},
                    UpdateExpression="SET api_key_ciphertext = :c, api_key_last4 = :l",
                    ExpressionAttributeValues={":c": stolen["api_key_ciphertext"], ":l": {"S": "xxxx"}})
    before = len(standin_requests(standin))
    r = api.call("POST", "/ai/chat", {"messages": [{"role": "user", "content": "stolen-probe"}]}, token=thief.token)
    assert r.status_code == 500
    assert r.json["error"]["code"] == "tenant_api_key_unavailable"
    assert len(standin_requests(standin)) == before


def test_own_key_rejected_upstream_is_a_400(api, tenant):
    api.call("PUT", "/tenant/ai-config/api-key", {"api_key": "sk-invalid-tenant-key-0000000000"}, token=tenant.token)
    r = api.call("POST", "/ai/chat", CHAT, token=tenant.token)
    assert r.status_code == 400
    assert r.json["error"]["code"] == "tenant_api_key_invalid"
    assert "sk-invalid-tenant-key" not in r.body.decode()


@pytest.mark.parametrize("fault,status,code", [
    ("[[standin:429]]", 429, "upstream_rate_limited"),
    # Bedrock failing too (docs/upstream.md): the caller gets Anthropic's error
    ("[[standin:529]] [[bedrock:503]]", 529, "upstream_overloaded"),
    ("[[standin:500]] [[bedrock:503]]", 502, "upstream_error"),
])
def test_upstream_errors_map_to_clear_responses(api, tenant, fault, status, code):
    r = api.call("POST", "/ai/chat", {"messages": [{"role": "user", "content": f"boom {fault}"}]}, token=tenant.token)
    assert r.status_code == status
    assert r.json["error"]["code"] == code
    if status == 429:
        assert r.headers["Retry-After"] == "7"


def test_failed_upstream_call_consumes_no_quota_and_records_nothing(api, tenant):
    response = api.call("POST", "/ai/chat", {"messages": [{"role": "user", "content": "[[standin:500]] [[bedrock:503]]"}]},
                        token=tenant.token)
    assert response.status_code == 502
    usage = api.call("GET", "/usage", token=tenant.token).json
    assert usage["requests"] == 0 and usage["total_cost_usd"] == "0.000000"
    features = api.call("GET", "/features", token=tenant.token).json["features"]
    assert features["basic_chat"]["used"] == 0


@pytest.mark.parametrize("body,status", [
    ({"messages": []}, 400),
    ({"messages": [{"role": "system", "content": "x"}]}, 400),
    ({"messages": [{"role": "user", "content": "x"}], "plan": "enterprise"}, 400),
    ({"messages": [{"role": "user", "content": "x" * 100_001}]}, 413),
    ({"messages": [{"role": "user", "content": "x"}] * 51}, 400),
    ({"messages": [{"role": "user", "content": "x"}], "temperature": 3}, 400),
    ({"messages": [{"role": "assistant", "content": "x"}]}, 400),
])
def test_invalid_input_is_refused_before_any_upstream_call(api, tenant, standin, body, status):
    before = len(standin_requests(standin))
    r = api.call("POST", "/ai/chat", body, token=tenant.token)
    assert r.status_code == status
    assert set(r.json["error"]) >= {"code", "message"}
    assert len(standin_requests(standin)) == before


def test_body_over_a_megabyte_is_413(api, tenant):
    r = api.call("POST", "/ai/document-analysis", {"document": "x" * (1024 * 1024 + 10)}, token=tenant.token)
    assert r.status_code == 413


def test_features_above_the_plan_are_refused_with_the_plan_that_has_them(api, tenant):
    r = api.call("POST", "/ai/code-review", {"code": "print(1)"}, token=tenant.token)
    assert r.status_code == 403
    assert r.json["error"]["code"] == "feature_not_in_plan"
    assert r.json["error"]["required_plan"] == "pro"
    assert "pro" in r.json["error"]["message"]


def test_code_review_and_document_analysis_on_pro(api, tenant, operator_token, standin):
    set_plan(api, operator_token, tenant, "pro")
    review = api.call("POST", "/ai/code-review", {"code": "def f(): return 1", "language": "python",
                                                  "focus": "naming"}, token=tenant.token)
    assert review.status_code == 200, review.body
    seen = standin_requests(standin)[-1]
    assert "code reviewer" in seen["system"] and "def f(): return 1" in seen["last_user_text"]
    doc = api.call("POST", "/ai/document-analysis", {"document": "The sky is green.", "question": "Colour?"},
                   token=tenant.token)
    assert doc.status_code == 200, doc.body
    assert "The sky is green." in standin_requests(standin)[-1]["last_user_text"]


def test_member_cannot_change_ai_settings_and_admin_cannot_set_own_key(api, tenant):
    _, member_token = api.add_user(tenant, "member")
    assert api.call("PUT", "/tenant/ai-config", {"temperature": 0.1}, token=member_token).status_code == 403
    _, admin_token = api.add_user(tenant, "admin")
    assert api.call("PUT", "/tenant/ai-config", {"temperature": 0.1}, token=admin_token).status_code == 200
    r = api.call("PUT", "/tenant/ai-config/api-key", {"api_key": OWN_KEY}, token=admin_token)
    assert r.status_code == 403


@pytest.mark.parametrize("body,code", [
    ({"model": "gpt-4"}, "invalid_model"),
    ({"model": "claude-opus-4-8"}, "model_not_in_plan"),
    ({"max_tokens": 0}, "invalid_field"),
    ({"max_tokens": 999_999}, "invalid_field"),
    ({"temperature": 1.5}, "invalid_field"),
    ({"custom_instructions": "x" * 4001}, "invalid_field"),
    ({"inject_context": "yes"}, "invalid_field"),
    ({"api_key": "sk-smuggled-in-through-settings"}, "unknown_field"),
])
def test_ai_config_validation(api, tenant, body, code):
    r = api.call("PUT", "/tenant/ai-config", body, token=tenant.token)
    assert r.status_code == 400
    assert r.json["error"]["code"] == code
    assert api.call("GET", "/tenant/ai-config", token=tenant.token).json["model"] == "claude-sonnet-4-6"


def test_default_ai_config_after_sign_up(api, tenant):
    config = api.call("GET", "/tenant/ai-config", token=tenant.token).json
    assert config == {"model": "claude-sonnet-4-6", "max_tokens": 1024, "temperature": 0.7,
                      "custom_instructions": "", "inject_context": True, "api_key": {"set": False, "last4": None},
                      "brownout": {}}  # no brownout unless the tenant chooses one


def test_models_lists_plan_models_with_prices(api, tenant, operator_token):
    free = api.call("GET", "/models", token=tenant.token).json
    ids = {m["id"] for m in free["models"]}
    assert "claude-sonnet-4-6" in ids and "claude-opus-4-8" not in ids
    sonnet = next(m for m in free["models"] if m["id"] == "claude-sonnet-4-6")
    assert sonnet["prices_usd_per_million_tokens"] == {"input": "3", "output": "15", "cache_write": "3.75",
                                                       "cache_read": "0.30"}
    set_plan(api, operator_token, tenant, "pro")
    pro_ids = {m["id"] for m in api.call("GET", "/models", token=tenant.token).json["models"]}
    assert "claude-opus-4-8" in pro_ids


def test_custom_prompts_need_enterprise(api, tenant):
    r = api.call("POST", "/prompts", {"name": "x", "template": "Hi {{name}}"}, token=tenant.token)
    assert r.status_code == 403
    assert r.json["error"]["required_plan"] == "enterprise"


def test_custom_prompt_lifecycle_and_run(api, tenant, operator_token, standin):
    set_plan(api, operator_token, tenant, "enterprise")
    created = api.call("POST", "/prompts", {"name": "greet", "template": "Greet {{ name }} from {{city}}."},
                       token=tenant.token)
    assert created.status_code == 201, created.body
    prompt_id = created.json["prompt_id"]
    assert created.json["variables"] == ["name", "city"]
    assert api.call("GET", f"/prompts/{prompt_id}", token=tenant.token).json["name"] == "greet"
    assert [p["prompt_id"] for p in api.call("GET", "/prompts", token=tenant.token).json["prompts"]] == [prompt_id]
    ran = api.call("POST", f"/prompts/{prompt_id}/run", {"variables": {"name": "Ada", "city": "Paris"}},
                   token=tenant.token)
    assert ran.status_code == 200, ran.body
    assert standin_requests(standin)[-1]["last_user_text"] == "Greet Ada from Paris."
    updated = api.call("PUT", f"/prompts/{prompt_id}", {"template": "Bye {{name}}"}, token=tenant.token)
    assert updated.json["variables"] == ["name"]
    assert api.call("DELETE", f"/prompts/{prompt_id}", token=tenant.token).status_code == 204
    assert api.call("GET", f"/prompts/{prompt_id}", token=tenant.token).status_code == 404


@pytest.mark.parametrize("variables,code", [
    ({"name": "Ada"}, "invalid_variables"),
    ({"name": "Ada", "city": "Paris", "extra": "x"}, "invalid_variables"),
    ({"name": "Ada", "city": 3}, "invalid_variables"),
])
def test_prompt_run_with_wrong_variables_is_400_without_upstream_call(api, tenant, operator_token, standin,
                                                                      variables, code):
    set_plan(api, operator_token, tenant, "enterprise")
    prompt_id = api.call("POST", "/prompts", {"name": "g", "template": "{{name}} {{city}}"},
                         token=tenant.token).json["prompt_id"]
    before = len(standin_requests(standin))
    r = api.call("POST", f"/prompts/{prompt_id}/run", {"variables": variables}, token=tenant.token)
    assert r.status_code == 400 and r.json["error"]["code"] == code
    assert len(standin_requests(standin)) == before


@pytest.mark.parametrize("template", ["Hi {{ }}", "Hi {{name", "Hi {{9lives}}", "Hi }} there"])
def test_malformed_templates_are_refused(api, tenant, operator_token, template):
    set_plan(api, operator_token, tenant, "enterprise")
    r = api.call("POST", "/prompts", {"name": "bad", "template": template}, token=tenant.token)
    assert r.status_code == 400 and r.json["error"]["code"] == "invalid_template"


def test_default_model_is_current_per_the_sdk():
    from anthropic._data.deprecated_models import DEPRECATED_MODELS

    from chalicelib.pricing import DEFAULT_MODEL, MODELS

    assert DEFAULT_MODEL in MODELS
    assert DEFAULT_MODEL not in DEPRECATED_MODELS
    assert not set(MODELS) & set(DEPRECATED_MODELS)


def test_members_run_prompts_but_only_admins_manage_them(api, tenant, operator_token):
    set_plan(api, operator_token, tenant, "enterprise")
    prompt_id = api.call("POST", "/prompts", {"name": "p", "template": "Say {{word}}"},
                         token=tenant.token).json["prompt_id"]
    _, member = api.add_user(tenant, "member")
    assert api.call("POST", "/prompts", {"name": "m", "template": "x"}, token=member).status_code == 403
    assert api.call("PUT", f"/prompts/{prompt_id}", {"name": "m"}, token=member).status_code == 403
    assert api.call("DELETE", f"/prompts/{prompt_id}", token=member).status_code == 403
    ran = api.call("POST", f"/prompts/{prompt_id}/run", {"variables": {"word": "hi"}}, token=member)
    assert ran.status_code == 200, ran.body


@pytest.mark.parametrize("key", ["sk-ant-valid-looking-key-123456\n", "sk ant with spaces 1234567890", "short"])
def test_own_key_must_be_printable_without_whitespace(api, tenant, key):
    r = api.call("PUT", "/tenant/ai-config/api-key", {"api_key": key}, token=tenant.token)
    assert r.status_code == 400
    assert api.call("GET", "/tenant/ai-config", token=tenant.token).json["api_key"]["set"] is False


def test_prompt_whose_rendered_text_is_too_long_is_413_before_any_upstream_call(api, tenant, operator_token,
                                                                                standin):
    set_plan(api, operator_token, tenant, "enterprise")
    prompt_id = api.call("POST", "/prompts", {"name": "big", "template": "{{a}}" * 4000},
                         token=tenant.token).json["prompt_id"]
    before = len(standin_requests(standin))
    r = api.call("POST", f"/prompts/{prompt_id}/run", {"variables": {"a": "x" * 200}}, token=tenant.token)
    assert r.status_code == 413
    assert len(standin_requests(standin)) == before
