"""The tenant authorizer: a JWT or an API key becomes a tenant context, or the request goes no further."""
import base64
import json
import time

import jwt
import pytest

from conftest import TEST_JWT_SECRET, TEST_OPERATOR_SECRET

# Public: health, signup and login, and the console's static page and assets (chalicelib/console: the
# console's files carry no tenant data and must load before anyone has signed in).
PUBLIC = {("/health", "GET"), ("/tenants", "POST"), ("/auth/login", "POST"),
          ("/console", "GET"), ("/console/{name}", "GET")}


@pytest.fixture(scope="module")
def acme_key(module_api, acme):
    return module_api.api_key(acme, name="deploy-bot")


def kid():
    from chalicelib.secrets import jwt_keyring

    return jwt_keyring().active


def forge(acme, secret=TEST_JWT_SECRET, algorithm="HS256", headers=None, **overrides):
    now = int(time.time())
    claims = {"iss": "tessera-local", "aud": "tessera-api", "sub": acme.owner_id, "tid": acme.id, "role": "owner",
              "iat": now, "exp": now + 600, **overrides}
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, secret, algorithm=algorithm, headers={"kid": kid(), **(headers or {})})


def me(api, token, headers=None):
    return api.call("GET", "/me", token=token, headers=headers)


def refused(response, code="unauthorized"):
    """The authorizer's refusal: 401 in the error envelope, with the reason's code."""
    assert response.status_code == 401, (response.status_code, response.body)
    assert response.json["error"]["code"] == code and response.json["error"]["message"], response.body
    return True


def b64(data):
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


# --- a forged or stale credential never gets through -----------------------------------

def test_a_correctly_forged_token_is_accepted_so_the_bad_ones_below_fail_for_their_defect(module_api, acme):
    assert me(module_api, forge(acme)).status_code == 200


def test_token_with_alg_none_is_refused(module_api, acme):
    claims = jwt.decode(forge(acme), options={"verify_signature": False})
    token = f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': kid()})}.{b64(claims)}."
    assert refused(me(module_api, token))


def test_token_signed_with_another_key_is_refused(module_api, acme):
    assert refused(me(module_api, forge(acme, secret="another-secret-" + "z" * 32)))


def test_token_signed_with_the_operator_key_is_refused(module_api, acme):
    assert refused(me(module_api, forge(acme, secret=TEST_OPERATOR_SECRET)))


@pytest.mark.filterwarnings("ignore:The HMAC key")
def test_token_with_hs512_is_refused_even_with_the_right_secret(module_api, acme):
    assert refused(me(module_api, forge(acme, algorithm="HS512")))


def test_expired_token_is_refused_as_token_expired(module_api, acme):
    past = int(time.time()) - 7200
    assert refused(me(module_api, forge(acme, iat=past, exp=past + 60)), code="token_expired")


def test_token_without_expiry_is_refused(module_api, acme):
    token = jwt.encode({"iss": "tessera-local", "aud": "tessera-api", "sub": acme.owner_id, "tid": acme.id,
                        "iat": int(time.time())}, TEST_JWT_SECRET, algorithm="HS256", headers={"kid": kid()})
    assert refused(me(module_api, token))


def test_token_for_another_audience_is_refused(module_api, acme):
    assert refused(me(module_api, forge(acme, aud="tessera-admin")))


def test_token_from_another_issuer_is_refused(module_api, acme):
    assert refused(me(module_api, forge(acme, iss="someone-else")))


def test_token_with_an_unknown_kid_is_refused(module_api, acme):
    assert refused(me(module_api, forge(acme, headers={"kid": "not-a-key"})))


def test_token_without_a_tenant_claim_is_refused(module_api, acme):
    assert refused(me(module_api, forge(acme, tid=None)))


def test_token_with_a_tampered_payload_is_refused(module_api, acme, other):
    header, _, signature = acme.token.split(".")
    claims = jwt.decode(acme.token, options={"verify_signature": False})
    tampered = f"{header}.{b64({**claims, 'tid': other.id, 'sub': other.owner_id})}.{signature}"
    assert refused(me(module_api, tampered))


def test_token_naming_a_user_of_another_tenant_is_refused(module_api, acme, other):
    """Even correctly signed: the user must exist in the token's own tenant."""
    assert refused(me(module_api, forge(acme, sub=other.owner_id)))


def test_garbage_bearer_token_is_refused(module_api):
    assert refused(me(module_api, "not-a-token"))


def test_basic_auth_scheme_is_refused(module_api, acme):
    assert refused(module_api.call("GET", "/me", headers={"Authorization": f"Basic {acme.token}"}))


def test_missing_authorization_header_is_401(module_api):
    """No header: the gateway answers before the authorizer runs (its body is the gateway response's)."""
    assert module_api.call("GET", "/me").status_code == 401


def test_token_of_a_deleted_user_is_refused(module_api, acme):
    user, token = module_api.add_user(acme)
    assert me(module_api, token).status_code == 200
    assert module_api.call("DELETE", f"/users/{user['user_id']}", token=acme.token).status_code == 204
    assert refused(me(module_api, token))


def test_revoked_api_key_is_refused(module_api, acme):
    key = module_api.api_key(acme)
    assert me(module_api, key["key"]).status_code == 200
    assert module_api.call("DELETE", f"/api-keys/{key['key_id']}", token=acme.token).status_code == 204
    assert refused(me(module_api, key["key"]))


def test_api_key_with_a_wrong_secret_is_refused(module_api, acme_key):
    prefix, _, _ = acme_key["key"].rpartition(".")
    assert refused(me(module_api, f"{prefix}.{'A' * 43}"))


def test_api_key_moved_to_another_tenant_is_refused(module_api, acme, other, acme_key):
    _, key_id, secret = acme_key["key"][len("tsk_"):].split(".")
    assert refused(me(module_api, f"tsk_{other.id}.{key_id}.{secret}"))


def test_malformed_api_key_is_refused(module_api, acme):
    assert refused(me(module_api, f"tsk_{acme.id}.only-two-parts"))


# --- suspension --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def suspension(module_api):
    from chalicelib.identity.tokens import issue_operator_token

    tenant, operator = module_api.signup(), issue_operator_token("ops")
    key = module_api.api_key(tenant)["key"]
    suspended = module_api.call("POST", f"/admin/tenants/{tenant.id}/suspend", token=operator)
    while_suspended = (me(module_api, tenant.token).status_code, me(module_api, key).status_code)
    resumed = module_api.call("POST", f"/admin/tenants/{tenant.id}/resume", token=operator)
    after_resume = (me(module_api, tenant.token).status_code, me(module_api, key).status_code)
    assert (suspended.status_code, resumed.status_code) == (200, 200)
    return while_suspended, after_resume


def test_suspended_tenant_token_is_refused(suspension):
    assert suspension[0][0] == 401


def test_suspended_tenant_api_key_is_refused(suspension):
    assert suspension[0][1] == 401


def test_resumed_tenant_credentials_work_again(suspension):
    assert suspension[1] == (200, 200)


# --- what the authorizer hands the route ----------------------------------------------------

def authorize(token):
    from app import tenant_auth

    event = {"type": "TOKEN", "authorizationToken": f"Bearer {token}",
             "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abcdef/api/GET/me"}
    return tenant_auth(event, None)


def test_authorizer_context_values_are_all_strings_for_a_user(acme):
    context = authorize(acme.token)["context"]
    assert context["tenant_id"] == acme.id
    assert all(isinstance(value, str) for value in context.values())


def test_authorizer_context_values_are_all_strings_for_an_api_key(acme, acme_key):
    context = authorize(acme_key["key"])["context"]
    assert context["principal_id"] == acme_key["key_id"]
    assert all(isinstance(value, str) for value in context.values())


def test_authorizer_refuses_a_bad_credential_as_unauthorized_with_no_policy(acme):
    from chalice.local import NotAuthorizedError

    with pytest.raises(NotAuthorizedError) as caught:
        authorize(forge(acme, aud="wrong"))
    assert json.loads(caught.value.body)["error"]["code"] == "unauthorized"


def test_in_lambda_the_refusal_is_the_error_api_gateway_maps_to_401(monkeypatch):
    """The deployed runtime ships chalice.app but not chalice.local."""
    import sys

    from chalicelib.errors import Unauthorized
    from chalicelib.web import unauthorized

    monkeypatch.setitem(sys.modules, "chalice.local", None)
    error = unauthorized(Unauthorized("The token is not valid."))
    assert type(error) is Exception and str(error) == "Unauthorized"


def test_authorizer_cache_bounds_how_long_a_revocation_takes_in_deployed_stages():
    """API Gateway reuses a decision for `ttl_seconds`: a revoked key, a suspended tenant or a demoted
    admin keeps working at most that long, which the README promises is 30 seconds."""
    from app import app

    for path, method in [("/me", "GET"), ("/admin/tenants", "GET")]:
        assert app.routes[path][method].authorizer.config.ttl_seconds == 30


def test_role_comes_from_the_stored_user_not_the_token(module_api, acme):
    user, token = module_api.add_user(acme, role="admin")
    assert module_api.call("PATCH", f"/users/{user['user_id']}", {"role": "member"},
                           token=acme.token).status_code == 200
    assert me(module_api, token).json["role"] == "member"
    assert module_api.call("GET", "/api-keys", token=token).status_code == 403


def test_me_for_a_user_names_user_tenant_email_and_role(module_api, acme):
    response = me(module_api, acme.token)
    assert response.status_code == 200
    assert {k: response.json[k] for k in ("user_id", "tenant_id", "email", "role")} == {
        "user_id": acme.owner_id, "tenant_id": acme.id, "email": acme.email, "role": "owner"}


def test_me_for_an_api_key_names_the_key_and_its_tenant(module_api, acme, acme_key):
    response = me(module_api, acme_key["key"])
    assert response.status_code == 200
    assert (response.json["key_id"], response.json["name"], response.json["tenant_id"]) == (
        acme_key["key_id"], "deploy-bot", acme.id)


# --- tenant hints: X-Tenant-ID and the Host subdomain may confirm, never choose ----------------

def test_x_tenant_id_of_the_credentials_tenant_proceeds(module_api, acme):
    assert me(module_api, acme.token, headers={"X-Tenant-ID": acme.id}).status_code == 200


def test_x_tenant_id_of_another_tenant_is_403_tenant_mismatch(module_api, acme, other):
    response = me(module_api, acme.token, headers={"X-Tenant-ID": other.id})
    assert response.status_code == 403
    assert response.json["error"]["code"] == "tenant_mismatch"


def test_x_tenant_id_mismatch_applies_to_api_keys_too(module_api, other, acme_key):
    response = me(module_api, acme_key["key"], headers={"X-Tenant-ID": other.id})
    assert response.status_code == 403
    assert response.json["error"]["code"] == "tenant_mismatch"


def test_folded_x_tenant_id_copies_that_all_name_the_tenant_proceed(module_api, acme):
    assert me(module_api, acme.token, headers={"X-Tenant-ID": f"{acme.id}, {acme.id}"}).status_code == 200


def test_folded_x_tenant_id_copies_of_which_one_disagrees_are_403(module_api, acme, other):
    response = me(module_api, acme.token, headers={"X-Tenant-ID": f"{acme.id}, {other.id}"})
    assert (response.status_code, response.json["error"]["code"]) == (403, "tenant_mismatch")


def gateway_request(tenant_id, headers, multi_value_headers):
    """A route's request as API Gateway hands it to Lambda: repeated headers in multiValueHeaders."""
    from chalice.app import Request

    return Request({
        "headers": headers, "multiValueHeaders": multi_value_headers, "multiValueQueryStringParameters": None,
        "pathParameters": None, "stageVariables": None, "body": None,
        "requestContext": {"httpMethod": "GET", "resourcePath": "/me", "authorizer": {
            "tenant_id": tenant_id, "principal_id": "usr_1", "principal_type": "user", "role": "owner"}},
    })


def test_a_disagreeing_copy_is_refused_even_when_api_gateway_keeps_the_agreeing_one():
    from chalicelib.errors import Forbidden
    from chalicelib.web import tenant_context

    request = gateway_request("ten_own", {"X-Tenant-ID": "ten_own"}, {"X-Tenant-ID": ["ten_other", "ten_own"]})
    with pytest.raises(Forbidden) as refused:
        tenant_context(request)
    assert refused.value.code == "tenant_mismatch"


def test_repeated_copies_that_all_agree_pass_through_api_gateway():
    from chalicelib.web import tenant_context

    request = gateway_request("ten_own", {"X-Tenant-ID": "ten_own"}, {"X-Tenant-ID": ["ten_own", "ten_own"]})
    assert tenant_context(request).tenant_id == "ten_own"


def test_host_subdomain_of_the_credentials_tenant_proceeds(module_api, acme):
    assert me(module_api, acme.token, headers={"Host": f"{acme.slug}.localhost:8000"}).status_code == 200


def test_host_subdomain_of_another_tenant_is_403_tenant_mismatch(module_api, acme, other):
    response = me(module_api, acme.token, headers={"Host": f"{other.slug}.localhost"})
    assert response.status_code == 403
    assert response.json["error"]["code"] == "tenant_mismatch"


def test_bare_base_domain_host_names_no_tenant_and_proceeds(module_api, acme):
    assert me(module_api, acme.token, headers={"Host": "localhost:8000"}).status_code == 200


def test_tenant_mismatch_stops_a_write_before_it_happens(module_api, acme, other):
    before = module_api.call("GET", "/tenant", token=acme.token).json["name"]
    response = module_api.call("PATCH", "/tenant", {"name": "Renamed by mismatch"}, token=acme.token,
                               headers={"X-Tenant-ID": other.id})
    assert response.status_code == 403
    assert module_api.call("GET", "/tenant", token=acme.token).json["name"] == before


# --- every route but the public ones sits behind an authorizer ----------------------------------

def all_routes():
    from app import app

    return [(path, method) for path, methods in app.routes.items() for method in methods]


def concrete(path):
    import re

    return re.sub(r"\{[^}]+\}", "x_1", path)


def test_public_routes_are_exactly_health_signup_login_and_the_console_assets():
    from app import app

    public = {(p, m) for p, m in all_routes() if app.routes[p][m].authorizer is None}
    assert public == PUBLIC


@pytest.mark.parametrize("path, method", [r for r in all_routes() if r not in PUBLIC])
def test_route_without_credentials_is_401(module_api, path, method):
    response = module_api.client.http.request(method, concrete(path), headers={"Content-Type": "application/json"},
                                              body=b"{}")
    assert response.status_code == 401  # answered by the gateway, before any code of ours runs


@pytest.mark.parametrize("path, method", [r for r in all_routes() if r not in PUBLIC])
def test_route_with_a_garbage_credential_is_refused(module_api, path, method):
    assert refused(module_api.call(method, concrete(path), {}, token="garbage"))


# --- the deployed REQUEST authorizer: Authorization or Anthropic's x-api-key ----------------------

def request_event(headers, path="GET/me"):
    return {"type": "REQUEST", "methodArn": f"arn:aws:execute-api:us-east-1:123456789012:abc123/api/{path}",
            "headers": headers}


def test_request_authorizer_accepts_x_api_key_and_bearer_alike(api):
    from app import tenant_request_auth

    tenant = api.signup()
    key = api.api_key(tenant)["key"]
    by_key = tenant_request_auth(request_event({"X-Api-Key": key}), None)
    by_bearer = tenant_request_auth(request_event({"Authorization": f"Bearer {key}"}), None)
    assert by_key == by_bearer
    assert by_key["context"]["tenant_id"] == tenant.id
    assert by_key["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    assert by_key["policyDocument"]["Statement"][0]["Resource"] == [
        "arn:aws:execute-api:us-east-1:123456789012:abc123/api/*/*"]


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "tsk_ten_x.key_x.nope"}, {"x-api-key": "  "}])
def test_request_authorizer_refuses_a_missing_or_bad_credential_with_401(headers):
    from app import tenant_request_auth

    with pytest.raises(Exception) as caught:
        tenant_request_auth(request_event(headers), None)
    assert str(caught.value) == "Unauthorized"  # API Gateway's 401, not a deny's 403


def test_request_authorizer_prefers_authorization_when_both_headers_are_sent(api):
    from app import tenant_request_auth

    tenant = api.signup()
    key = api.api_key(tenant)["key"]
    decision = tenant_request_auth(request_event({"authorization": f"Bearer {key}", "x-api-key": "ignored"}), None)
    assert decision["context"]["tenant_id"] == tenant.id


def test_request_authorizer_keeps_a_decision_for_its_ttl_and_no_longer(api):
    from chalicelib.errors import Unauthorized
    from chalicelib.identity.resolve import ResolvedCache

    tenant = api.signup()
    key = api.api_key(tenant)
    kept, fresh = ResolvedCache(ttl=60), ResolvedCache(ttl=0)
    header = f"Bearer {key['key']}"
    assert kept.resolve(header).tenant_id == fresh.resolve(header).tenant_id == tenant.id
    assert api.call("DELETE", f"/api-keys/{key['key_id']}", token=tenant.token).status_code == 204
    assert kept.resolve(header).tenant_id == tenant.id  # within the TTL, as API Gateway's own cache would
    with pytest.raises(Unauthorized):
        fresh.resolve(header)

