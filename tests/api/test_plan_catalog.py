"""Plans as data over HTTP: operators create and edit plans; every edit is a version, audited, and holds for
the tenants on the plan from their next request, with no deploy.

Each test creates plans of its own (random names) and never edits the built-in ones, which every other test
relies on: tests share one table and run in any order."""
from __future__ import annotations

import secrets
import time

import pytest

from conftest import WritesNothing

SMALL = ["claude-sonnet-4-6", "claude-haiku-4-5"]
CACHE_SECONDS = 5  # the local stage's TESSERA_TENANT_CACHE_SECONDS (.chalice/config.json), as deployed


def new_plan_body(basic_chat=2, **changes):
    return {"plan": f"p-{secrets.token_hex(4)}", "features": {"basic_chat": basic_chat}, "requests_per_minute": 100,
            "max_tokens_cap": 1024, "models": SMALL, "monthly_price_usd": "9.50", **changes}


def create_plan(api, operator_token, **changes):
    created = api.call("POST", "/admin/plans", new_plan_body(**changes), token=operator_token)
    assert created.status_code == 201, created.body
    return created.json


def tenant_on(api, operator_token, plan):
    tenant = api.signup()
    moved = api.call("PUT", f"/admin/tenants/{tenant.id}/plan", {"plan": plan}, token=operator_token)
    assert moved.status_code == 200, moved.body
    return tenant


def chat(api, tenant):
    return api.call("POST", "/ai/chat", {"messages": [{"role": "user", "content": "hello"}]}, token=tenant.token)


def edit(api, operator_token, plan, body):
    response = api.call("PATCH", f"/admin/plans/{plan}", body, token=operator_token)
    assert response.status_code == 200, response.body
    return response.json


def test_the_built_in_plans_are_listed_at_version_zero_with_their_published_numbers(api, operator_token):
    listed = api.call("GET", "/admin/plans", token=operator_token)
    assert listed.status_code == 200
    plans = {p["plan"]: p for p in listed.json["plans"]}
    assert (plans["free"]["version"], plans["free"]["features"], plans["free"]["monthly_price_usd"]) == (
        0, {"basic_chat": 300}, "0.000000")
    assert (plans["pro"]["features"]["basic_chat"], plans["pro"]["monthly_price_usd"]) == (25_000, "49.000000")
    assert plans["enterprise"]["features"]["basic_chat"] is None  # /v1/messages is bounded by the budget only


def test_a_created_plan_holds_its_tenants_to_its_numbers(api, operator_token):
    plan = create_plan(api, operator_token, basic_chat=2)
    assert (plan["version"], plan["changed_by"], plan["monthly_price_usd"]) == (1, "test-operator", "9.500000")
    tenant = tenant_on(api, operator_token, plan["plan"])
    assert [chat(api, tenant).status_code for _ in range(2)] == [200, 200]
    refused = chat(api, tenant)
    assert (refused.status_code, refused.json["error"]["code"]) == (429, "feature_limit_reached")


def test_raising_a_plans_limit_holds_for_the_very_next_request(api, operator_token):
    plan = create_plan(api, operator_token, basic_chat=1)["plan"]
    tenant = tenant_on(api, operator_token, plan)
    assert chat(api, tenant).status_code == 200
    assert chat(api, tenant).status_code == 429  # this instance now holds the plan at version 1
    assert edit(api, operator_token, plan, {"features": {"basic_chat": 2}})["version"] == 2
    assert chat(api, tenant).status_code == 200  # the refusal is confirmed against the plan read afresh
    assert chat(api, tenant).status_code == 429


def test_lowering_a_plans_limit_holds_within_the_tenant_cache_time(api, operator_token):
    plan = create_plan(api, operator_token, basic_chat=10)["plan"]
    tenant = tenant_on(api, operator_token, plan)
    assert chat(api, tenant).status_code == 200
    edit(api, operator_token, plan, {"features": {"basic_chat": 1}})
    time.sleep(CACHE_SECONDS + 0.1)  # the documented bound: a warm instance's copy of the plan is at most this old
    refused = chat(api, tenant)
    assert (refused.status_code, refused.json["error"]["code"]) == (429, "feature_limit_reached")


def test_a_tenant_never_served_sees_an_edit_at_once(api, operator_token):
    plan = create_plan(api, operator_token, basic_chat=5)["plan"]
    tenant = tenant_on(api, operator_token, plan)
    edit(api, operator_token, plan, {"features": {"basic_chat": 1}})
    assert chat(api, tenant).status_code == 200
    assert chat(api, tenant).status_code == 429


def test_removing_a_feature_from_a_plan_gates_it(api, operator_token):
    plan = create_plan(api, operator_token, basic_chat=5)["plan"]
    tenant = tenant_on(api, operator_token, plan)
    edit(api, operator_token, plan, {"features": {"code_review": 5}})
    refused = chat(api, tenant)
    assert (refused.status_code, refused.json["error"]["code"]) == (403, "feature_not_in_plan")


def test_a_plans_cap_and_models_hold_for_its_tenants(api, operator_token):
    plan = create_plan(api, operator_token, basic_chat=5, max_tokens_cap=512, models=["claude-haiku-4-5"])["plan"]
    tenant = tenant_on(api, operator_token, plan)
    models = api.call("GET", "/models", token=tenant.token).json["models"]
    assert [m["id"] for m in models] == ["claude-haiku-4-5"]
    above = api.call("POST", "/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 513,
                                              "messages": [{"role": "user", "content": "hi"}]},
                     headers={"Authorization": f"Bearer {api.api_key(tenant)['key']}"})
    assert above.status_code == 400, above.body
    assert (above.json["error"]["code"], above.json["error"]["max_tokens_cap"]) == ("max_tokens_above_cap", 512)


def test_every_version_is_readable_and_names_who_made_it(api, operator_token):
    plan = create_plan(api, operator_token, basic_chat=2)["plan"]
    edit(api, operator_token, plan, {"requests_per_minute": 30, "monthly_price_usd": 12})
    versions = api.call("GET", f"/admin/plans/{plan}/versions", token=operator_token).json["versions"]
    assert [(v["version"], v["requests_per_minute"], v["monthly_price_usd"], v["changed_by"]) for v in versions] == [
        (1, 100, "9.500000", "test-operator"), (2, 30, "12.000000", "test-operator")]
    first = api.call("GET", f"/admin/plans/{plan}/versions/1", token=operator_token)
    assert (first.status_code, first.json["requests_per_minute"]) == (200, 100)
    assert api.call("GET", f"/admin/plans/{plan}", token=operator_token).json["version"] == 2
    missing = api.call("GET", f"/admin/plans/{plan}/versions/3", token=operator_token)
    assert (missing.status_code, missing.json["error"]["code"]) == (404, "plan_version_not_found")
    default = api.call("GET", "/admin/plans/pro/versions/0", token=operator_token)
    assert (default.status_code, default.json["features"]["code_review"]) == (200, 2_000)


def test_every_plan_change_is_in_the_plans_audit_trail_with_before_and_after(api, operator_token):
    plan = create_plan(api, operator_token, basic_chat=2)["plan"]
    edit(api, operator_token, plan, {"features": {"basic_chat": 7}})
    records = api.call("GET", f"/admin/plans/{plan}/audit", token=operator_token).json["records"]
    assert [r["action"] for r in records] == ["plan.update", "plan.create"]
    update, create = records
    assert update["actor"] == {"type": "operator", "id": "test-operator"} and update["request_id"]
    assert (update["before"]["version"], update["before"]["features"]) == (1, {"basic_chat": 2})
    assert (update["after"]["version"], update["after"]["features"]) == (2, {"basic_chat": 7})
    assert create["before"] is None and create["after"]["version"] == 1


@pytest.mark.parametrize("body, code", [
    ({"features": {"teleport": 5}}, "unknown_feature"),
    ({"features": {"basic_chat": -1}}, "invalid_field"),
    ({"models": ["claude-2.1"]}, "invalid_model"),
    ({"max_tokens_cap": 64_001, "models": ["claude-haiku-4-5"]}, "max_tokens_above_model"),
    ({"monthly_price_usd": "1.2345678"}, "invalid_field"),
    ({}, "empty_update"),
    ({"pool_share_percent": 101}, "invalid_field"),
    ({"pool_share_percent": -1}, "invalid_field"),
    ({"pool_share_percent": 10, "pool_reserved_percent": 20}, "invalid_field"),  # a reserve beyond the share
    ({"pool_share_percent": 90, "pool_reserved_percent": 80}, "pool_reserve_too_large"),  # with enterprise's 20
])
def test_a_bad_edit_is_a_400_naming_what_is_wrong_and_writes_nothing(api, operator_token, body, code):
    plan = create_plan(api, operator_token)["plan"]
    with WritesNothing():
        refused = api.call("PATCH", f"/admin/plans/{plan}", body, token=operator_token)
    assert (refused.status_code, refused.json["error"]["code"]) == (400, code), refused.body
    assert api.call("GET", f"/admin/plans/{plan}", token=operator_token).json["version"] == 1


def test_a_plans_pool_share_is_data_versioned_and_audited_like_its_other_fields(api, operator_token):
    listed = {p["plan"]: p for p in api.call("GET", "/admin/plans", token=operator_token).json["plans"]}
    assert [(listed[name]["pool_share_percent"], listed[name]["pool_reserved_percent"])
            for name in ("enterprise", "pro", "free")] == [(50, 20), (35, 0), (0, 0)]
    plan = create_plan(api, operator_token)
    assert (plan["pool_share_percent"], plan["pool_reserved_percent"]) == (0, 0)  # not given: best effort
    plan = plan["plan"]
    edit(api, operator_token, plan, {"pool_share_percent": 30})
    edit(api, operator_token, plan, {"max_tokens_cap": 512})  # another field's edit keeps the share
    versions = api.call("GET", f"/admin/plans/{plan}/versions", token=operator_token).json["versions"]
    assert [(v["version"], v["pool_share_percent"]) for v in versions] == [(1, 0), (2, 30), (3, 30)]
    [_, share, _] = api.call("GET", f"/admin/plans/{plan}/audit", token=operator_token).json["records"][::-1]
    assert (share["before"]["pool_share_percent"], share["after"]["pool_share_percent"]) == (0, 30)


def test_creating_a_plan_with_a_reserve_the_pool_cannot_hold_is_a_400_and_writes_nothing(api, operator_token):
    with WritesNothing():
        refused = api.call("POST", "/admin/plans", new_plan_body(pool_share_percent=100, pool_reserved_percent=80),
                           token=operator_token)
    assert (refused.status_code, refused.json["error"]["code"]) == (400, "pool_reserve_too_large"), refused.body
    assert refused.json["error"]["reserved_by_other_plans"] >= 20  # enterprise's, at least


def test_creating_a_plan_that_exists_is_a_409_and_an_unknown_plan_a_404(api, operator_token):
    with WritesNothing():
        taken = api.call("POST", "/admin/plans", new_plan_body(plan="pro"), token=operator_token)
        missing = api.call("PATCH", "/admin/plans/no-such-plan", {"requests_per_minute": 5}, token=operator_token)
        bad_name = api.call("POST", "/admin/plans", new_plan_body(plan="Pro Plus"), token=operator_token)
    assert (taken.status_code, taken.json["error"]["code"]) == (409, "plan_exists")
    assert (missing.status_code, missing.json["error"]["code"]) == (404, "plan_not_found")
    assert (bad_name.status_code, bad_name.json["error"]["code"]) == (400, "invalid_plan_name")


def test_a_tenant_cannot_be_moved_to_a_plan_that_does_not_exist(api, operator_token):
    tenant = api.signup()
    with WritesNothing(tenant.id):
        refused = api.call("PUT", f"/admin/tenants/{tenant.id}/plan", {"plan": "no-such-plan"}, token=operator_token)
    assert (refused.status_code, refused.json["error"]["code"]) == (400, "invalid_field")


def test_tenants_cannot_read_or_edit_plans(api):
    tenant = api.signup()
    for method, path in (("GET", "/admin/plans"), ("PATCH", "/admin/plans/free")):
        response = api.call(method, path, {"requests_per_minute": 1000} if method == "PATCH" else None,
                            token=tenant.token)
        assert response.status_code == 401, response.body


@pytest.mark.parametrize("name", ["no-such-plan", "%C2%84", "Pro"])
def test_the_audit_trail_of_a_plan_that_does_not_exist_is_a_404(api, operator_token, name):
    response = api.call("GET", f"/admin/plans/{name}/audit", token=operator_token)
    assert (response.status_code, response.json["error"]["code"]) == (404, "plan_not_found")


def test_a_model_an_edit_takes_out_of_the_plan_is_replaced_by_its_default_and_said_so(api, operator_token):
    """The tenant chose Haiku; the operator's edit leaves only Sonnet: /ai/chat (which names no model) is served by
    the plan's default and the answer says which model was asked and which served; /v1/messages naming Haiku
    is still a 404."""
    plan = create_plan(api, operator_token)["plan"]
    tenant = tenant_on(api, operator_token, plan)
    chosen = api.call("PUT", "/tenant/ai-config", {"model": "claude-haiku-4-5"}, token=tenant.token)
    assert chosen.status_code == 200, chosen.body
    edit(api, operator_token, plan, {"models": ["claude-sonnet-4-6"]})
    time.sleep(CACHE_SECONDS + 0.5)  # past the tenant cache, as every instance will be
    answered = chat(api, tenant)
    assert answered.status_code == 200, answered.body
    assert (answered.headers["x-tessera-requested-model"], answered.headers["x-tessera-served-model"]) == (
        "claude-haiku-4-5", "claude-sonnet-4-6")
    key = api.api_key(tenant)["key"]
    named = api.call("POST", "/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 16,
                                              "messages": [{"role": "user", "content": "hi"}]}, token=key)
    assert (named.status_code, named.json["error"]["code"]) == (404, "model_not_found")


def test_raising_a_plans_limit_holds_for_the_very_next_batch(api, operator_token):
    plan = create_plan(api, operator_token, basic_chat=2)["plan"]
    tenant = tenant_on(api, operator_token, plan)
    key = api.api_key(tenant)["key"]

    def batch(*ids):
        return api.call("POST", "/v1/messages/batches", {"requests": [
            {"custom_id": i, "params": {"model": "claude-sonnet-4-6", "max_tokens": 16,
                                        "messages": [{"role": "user", "content": "hi"}]}} for i in ids]}, token=key)

    assert batch("a", "b").status_code == 200
    edit(api, operator_token, plan, {"features": {"basic_chat": 4}})
    admitted = batch("c", "d")  # the instance's cached plan still says 2: the refusal is confirmed afresh
    assert admitted.status_code == 200, admitted.body
