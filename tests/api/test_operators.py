"""Platform operators: their own credential, their own routes, and no way across in either direction."""
import base64
import json
import time

import jwt
import pytest

from conftest import TEST_JWT_SECRET, TEST_OPERATOR_SECRET, WritesNothing


@pytest.fixture(scope="module")
def operator(environment):
    from chalicelib.identity.tokens import issue_operator_token

    return issue_operator_token("test-operator")


@pytest.fixture(scope="module")
def tenant_credentials(module_api, acme):
    _, admin_token = module_api.add_user(acme, role="admin")
    _, member_token = module_api.add_user(acme, role="member")
    key = module_api.api_key(acme)["key"]
    return {"owner": acme.token, "admin": admin_token, "member": member_token, "api key": key}


def operator_routes():
    from app import app, operator_auth

    return [(path, method) for path, methods in app.routes.items() for method, entry in methods.items()
            if entry.authorizer is operator_auth]


def concrete(path, tenant_id):
    return path.replace("{tenant_id}", tenant_id)


def page(api, token, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return api.call("GET", f"/admin/tenants{'?' + query if query else ''}", token=token)


def profile(api, tenant):
    return api.call("GET", "/tenant", token=tenant.token).json


def refused(response, code="unauthorized"):
    """The authorizer's refusal: 401 in the error envelope."""
    assert response.status_code == 401, (response.status_code, response.body)
    assert response.json["error"]["code"] == code, response.body
    return True


# --- the tenant list ------------------------------------------------------------------------

def test_operator_routes_are_the_tenant_operations_the_platforms_month_and_offboarding():
    assert sorted(operator_routes()) == sorted([
        ("/admin/tenants", "GET"), ("/admin/tenants/{tenant_id}", "GET"), ("/admin/usage", "GET"),
        ("/admin/plans", "GET"), ("/admin/plans", "POST"), ("/admin/plans/{plan_id}", "GET"),
        ("/admin/plans/{plan_id}", "PATCH"), ("/admin/plans/{plan_id}/versions", "GET"),
        ("/admin/plans/{plan_id}/versions/{version}", "GET"), ("/admin/plans/{plan_id}/audit", "GET"),
        ("/admin/tenants/{tenant_id}/plan", "PUT"),
        ("/admin/tenants/{tenant_id}/suspend", "POST"), ("/admin/tenants/{tenant_id}/resume", "POST"),
        ("/admin/tenants/{tenant_id}/limits", "PUT"), ("/admin/tenants/{tenant_id}", "DELETE"),
        ("/admin/tenants/{tenant_id}/export", "POST"), ("/admin/tenants/{tenant_id}/audit", "GET")])


def test_tenant_list_includes_every_new_tenant(module_api, operator):
    created = {module_api.signup().id for _ in range(3)}
    seen, cursor = [], None
    for _ in range(100):
        response = page(module_api, operator, limit=100, **({"cursor": cursor} if cursor else {}))
        assert response.status_code == 200, response.body
        seen += [t["tenant_id"] for t in response.json["tenants"]]
        cursor = response.json["next_cursor"]
        if not cursor:
            break
    assert created <= set(seen)
    assert len(seen) == len(set(seen))


def test_small_pages_follow_each_other_without_gaps_or_repeats(module_api, operator):
    for _ in range(5):
        module_api.signup()
    whole = [t["tenant_id"] for t in page(module_api, operator, limit=6).json["tenants"]]
    pages, cursor = [], None
    for _ in range(3):
        response = page(module_api, operator, limit=2, **({"cursor": cursor} if cursor else {}))
        assert len(response.json["tenants"]) == 2
        pages += [t["tenant_id"] for t in response.json["tenants"]]
        cursor = response.json["next_cursor"]
    assert pages == whole


def test_tenant_list_shows_profiles_not_secrets(module_api, operator, acme):
    response = page(module_api, operator, limit=100)
    assert set(response.json["tenants"][0]) >= {"tenant_id", "slug", "plan", "status"}
    assert "argon2" not in response.body.decode()


@pytest.mark.parametrize("limit", ["0", "101", "abc", "-1", "2.5"])
def test_invalid_page_size_is_400(module_api, operator, limit):
    response = page(module_api, operator, limit=limit)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_limit"


def encoded(key):
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", ["not-base64!!", encoded(["a"]), encoded({"gsi1pk": {"S": "TENANT#x"}}),
                                    encoded({"pk": {"S": "TENANTS"}})])
def test_invalid_cursor_is_400(module_api, operator, cursor):
    response = page(module_api, operator, limit=2, cursor=cursor)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_cursor"


# --- plan, status and limits ------------------------------------------------------------------

def test_operator_changes_a_tenants_plan(module_api, operator):
    tenant = module_api.signup()
    response = module_api.call("PUT", f"/admin/tenants/{tenant.id}/plan", {"plan": "pro"}, token=operator)
    assert response.status_code == 200
    assert profile(module_api, tenant)["plan"] == "pro"


def set_plan(api, operator, tenant, plan):
    response = api.call("PUT", f"/admin/tenants/{tenant.id}/plan", {"plan": plan}, token=operator)
    assert response.status_code == 200, response.body


def ai_config(api, tenant):
    return api.call("GET", "/tenant/ai-config", token=tenant.token).json


@pytest.mark.parametrize("before, settings, after, expected", [
    ("enterprise", {"model": "claude-opus-4-6", "max_tokens": 32000}, "free", ("claude-sonnet-4-6", 2048)),
    ("enterprise", {"model": "claude-opus-4-6", "max_tokens": 32000}, "pro", ("claude-opus-4-6", 32000)),
    ("enterprise", {"model": "claude-haiku-4-5", "max_tokens": 4000}, "pro", ("claude-haiku-4-5", 4000)),
    ("free", {"model": "claude-haiku-4-5", "max_tokens": 100}, "enterprise", ("claude-haiku-4-5", 100)),
])
def test_a_plan_change_clamps_the_ai_settings_to_the_new_plan_and_keeps_what_it_allows(
        module_api, operator, before, settings, after, expected):
    tenant = module_api.signup()
    set_plan(module_api, operator, tenant, before)
    assert module_api.call("PUT", "/tenant/ai-config", settings, token=tenant.token).status_code == 200
    set_plan(module_api, operator, tenant, after)
    config = ai_config(module_api, tenant)
    assert (config["model"], config["max_tokens"]) == expected


def test_after_a_downgrade_the_tenants_ai_calls_keep_working(module_api, operator):
    tenant = module_api.signup()
    set_plan(module_api, operator, tenant, "pro")
    module_api.call("PUT", "/tenant/ai-config", {"model": "claude-opus-4-6"}, token=tenant.token)
    set_plan(module_api, operator, tenant, "free")
    from chalicelib.ai.gateway import default_gateway

    default_gateway().settings_changed(tenant.id)  # as another warm instance would, after its cache time
    r = module_api.call("POST", "/ai/chat", {"messages": [{"role": "user", "content": "after downgrade"}]},
                        token=tenant.token)
    assert (r.status_code, r.json.get("model")) == (200, "claude-sonnet-4-6"), r.body


@pytest.mark.parametrize("body, code", [({"plan": "platinum"}, "invalid_field"), ({}, "missing_field"),
                                        ({"plan": "pro", "status": "active"}, "unknown_field")])
def test_invalid_plan_change_is_400_and_changes_nothing(module_api, operator, acme, body, code):
    with WritesNothing(acme.id):
        response = module_api.call("PUT", f"/admin/tenants/{acme.id}/plan", body, token=operator)
    assert response.status_code == 400
    assert response.json["error"]["code"] == code
    assert profile(module_api, acme)["plan"] == "free"


def test_plan_change_with_invalid_json_is_400_invalid_json(module_api, operator, acme):
    with WritesNothing(acme.id):
        response = module_api.call("PUT", f"/admin/tenants/{acme.id}/plan", raw=b"{plan: pro}", token=operator)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_json"


@pytest.mark.parametrize("method, suffix, body", [("PUT", "plan", {"plan": "pro"}), ("POST", "suspend", None),
                                                  ("POST", "resume", None),
                                                  ("PUT", "limits", {"requests_per_minute": 5})])
def test_operator_action_on_an_unknown_tenant_is_404_and_writes_nothing(module_api, operator, method, suffix, body):
    with WritesNothing("ten_00000000000000000000"):
        response = module_api.call(method, f"/admin/tenants/ten_00000000000000000000/{suffix}", body, token=operator)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_operator_action_on_an_unknown_tenant_creates_no_tenant(module_api, operator):
    from chalicelib.models import Tenant, tenant_pk

    module_api.call("POST", "/admin/tenants/ten_11111111111111111111/suspend", token=operator)
    with pytest.raises(Tenant.DoesNotExist):
        Tenant.get(tenant_pk("ten_11111111111111111111"), Tenant.SK, consistent_read=True)


def test_suspend_and_resume_set_the_status(module_api, operator):
    tenant = module_api.signup()
    suspended = module_api.call("POST", f"/admin/tenants/{tenant.id}/suspend", token=operator)
    resumed = module_api.call("POST", f"/admin/tenants/{tenant.id}/resume", token=operator)
    assert (suspended.json["status"], resumed.json["status"]) == ("suspended", "active")


def test_operator_overrides_limits_and_null_restores_the_plans(module_api, operator):
    tenant = module_api.signup()
    url = f"/admin/tenants/{tenant.id}/limits"
    set_ = module_api.call("PUT", url, {"features": {"basic_chat": 5}, "requests_per_minute": 20}, token=operator)
    assert set_.status_code == 200, set_.body
    assert (set_.json["features"]["basic_chat"], set_.json["requests_per_minute"]) == (5, 20)
    restored = module_api.call("PUT", url, {"features": {"basic_chat": None}, "requests_per_minute": None},
                               token=operator)
    assert (restored.json["features"]["basic_chat"], restored.json["requests_per_minute"]) == (300, 10)


@pytest.mark.parametrize("body, code", [
    ({}, "empty_update"), ({"features": {"teleport": 1}}, "unknown_feature"),
    ({"features": {"basic_chat": -1}}, "invalid_field"), ({"features": ["basic_chat"]}, "invalid_field"),
    ({"requests_per_minute": 0}, "invalid_field"), ({"plan": "pro"}, "unknown_field"),
])
def test_invalid_limits_are_400_and_change_nothing(module_api, operator, acme, body, code):
    with WritesNothing(acme.id):
        response = module_api.call("PUT", f"/admin/tenants/{acme.id}/limits", body, token=operator)
    assert response.status_code == 400
    assert response.json["error"]["code"] == code


# --- no way across ---------------------------------------------------------------------------------

@pytest.mark.parametrize("role", ["owner", "admin", "member", "api key"])
def test_no_tenant_credential_reaches_any_operator_route(module_api, acme, tenant_credentials, role):
    for path, method in operator_routes():
        with WritesNothing(acme.id):
            response = module_api.call(method, concrete(path, acme.id), {"plan": "enterprise"},
                                       token=tenant_credentials[role])
        assert refused(response), (path, method)
    assert profile(module_api, acme)["plan"] == "free"


def test_operator_routes_refuse_requests_without_a_credential(module_api, acme):
    for path, method in operator_routes():
        response = module_api.client.http.request(method, concrete(path, acme.id), body=b"{}",
                                                  headers={"Content-Type": "application/json"})
        assert response.status_code == 401, (path, method)


def forged_operator(secret, **overrides):
    from chalicelib.secrets import operator_keyring

    now = int(time.time())
    claims = {"iss": "tessera-local-operators", "aud": "tessera-admin", "sub": "mallory", "scope": "operator",
              "iat": now, "exp": now + 600, **overrides}
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": operator_keyring().active})


def test_a_correctly_made_operator_token_is_accepted(module_api):
    assert page(module_api, forged_operator(TEST_OPERATOR_SECRET), limit=1).status_code == 200


def test_operator_token_signed_with_the_tenant_secret_is_refused(module_api):
    assert refused(page(module_api, forged_operator(TEST_JWT_SECRET), limit=1))


def test_operator_token_without_the_operator_scope_is_refused(module_api):
    assert refused(page(module_api, forged_operator(TEST_OPERATOR_SECRET, scope=None), limit=1))


def test_expired_operator_token_is_refused_as_token_expired(module_api):
    past = int(time.time()) - 3600
    token = forged_operator(TEST_OPERATOR_SECRET, iat=past, exp=past + 60)
    assert refused(page(module_api, token, limit=1), code="token_expired")


@pytest.mark.parametrize("method, path", [("GET", "/me"), ("GET", "/tenant"), ("GET", "/users"),
                                          ("PATCH", "/tenant"), ("POST", "/api-keys")])
def test_operator_token_does_not_work_on_tenant_routes(module_api, operator, method, path):
    with WritesNothing():
        response = module_api.call(method, path, {"name": "x"}, token=operator)
    assert refused(response)
