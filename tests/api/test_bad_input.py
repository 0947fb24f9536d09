"""Bad input on every route that takes a body: a 4xx in the error envelope, and nothing written.

Built from `app.routes`, so a route added later is held to the same rule.
"""
import json

import pytest

from conftest import random_slug

BODY_VERBS = ("POST", "PUT", "PATCH")
# Routes that take no body and ignore one (they act on the path alone).
BODYLESS = {("/admin/tenants/{tenant_id}/suspend", "POST"), ("/admin/tenants/{tenant_id}/resume", "POST")}
NOT_JSON = [b"{not json", b"[1, 2, 3]", b"42", b"", b"\xff\xfe\x00"]


def body_routes():
    from app import app

    return sorted((path, verb) for path, methods in app.routes.items() for verb in methods
                  if verb in BODY_VERBS and (path, verb) not in BODYLESS)


@pytest.fixture(scope="module")
def operator(environment):
    from chalicelib.identity.tokens import issue_operator_token

    return issue_operator_token("bad-input-operator")


@pytest.fixture(scope="module")
def caller(module_api, operator):
    """An enterprise owner, so plan gates do not answer before the body is read."""
    tenant = module_api.signup()
    assert module_api.call("PUT", f"/admin/tenants/{tenant.id}/plan", {"plan": "enterprise"},
                           token=operator).status_code == 200
    prompt = module_api.call("POST", "/prompts", {"name": "p", "template": "Say {{x}}"}, token=tenant.token)
    assert prompt.status_code == 201
    user, _ = module_api.add_user(tenant)
    return tenant, {"tenant_id": tenant.id, "user_id": user["user_id"], "prompt_id": prompt.json["prompt_id"],
                    "key_id": "key_00000000000000000000"}


def credential_for(path, verb, tenant, operator):
    from app import app, operator_auth

    authorizer = app.routes[path][verb].authorizer
    if authorizer is None:
        return None
    return operator if authorizer is operator_auth else tenant.token


def concrete(path, ids):
    import re

    return re.sub(r"\{([^}]+)\}", lambda m: ids.get(m.group(1), "x_00000000000000000000"), path)


def world_of(api, tenant, operator):
    """What a bad request could have changed: the tenant as its owner and an operator see it."""
    reads = {p: api.call("GET", p, token=tenant.token).json
             for p in ("/users", "/api-keys", "/tenant", "/tenant/ai-config", "/prompts")}
    listing = api.call("GET", "/admin/tenants?limit=100", token=operator).json
    reads["tenants"] = sorted(t["tenant_id"] for t in listing["tenants"])
    return reads


@pytest.fixture(scope="module")
def before(module_api, caller, operator):
    return world_of(module_api, caller[0], operator)


def envelope_code(response):
    error = (response.json or {}).get("error")
    assert isinstance(error, dict) and error.get("message"), response.body
    return error.get("code")


@pytest.mark.parametrize("raw", NOT_JSON, ids=["broken", "array", "number", "empty", "binary"])
@pytest.mark.parametrize("path, verb", body_routes())
def test_body_that_is_not_a_json_object_is_400_invalid_json(module_api, caller, operator, before, path, verb, raw):
    tenant, ids = caller
    response = module_api.call(verb, concrete(path, ids), raw=raw,
                               token=credential_for(path, verb, tenant, operator))
    assert response.status_code == 400, (verb, path, response.status_code, response.body)
    assert envelope_code(response) == "invalid_json"


@pytest.mark.parametrize("path, verb", body_routes())
def test_unknown_field_is_a_4xx_in_the_envelope(module_api, caller, operator, before, path, verb):
    tenant, ids = caller
    response = module_api.call(verb, concrete(path, ids), {"tenant_id": "ten_chosen_by_client"},
                               token=credential_for(path, verb, tenant, operator))
    assert 400 <= response.status_code < 500, (verb, path, response.status_code)
    assert envelope_code(response)


@pytest.mark.parametrize("path, verb", body_routes())
def test_form_encoded_body_is_a_4xx_in_the_envelope(module_api, caller, operator, before, path, verb):
    tenant, ids = caller
    token = credential_for(path, verb, tenant, operator)
    response = module_api.call(verb, concrete(path, ids), raw=b"name=x&plan=enterprise",
                               headers={"Content-Type": "application/x-www-form-urlencoded"}, token=token)
    assert 400 <= response.status_code < 500, (verb, path, response.status_code)
    assert envelope_code(response)


@pytest.mark.parametrize("path, verb", body_routes())
def test_body_without_a_content_type_is_415(module_api, caller, operator, before, path, verb):
    tenant, ids = caller
    token = credential_for(path, verb, tenant, operator)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = module_api.client.http.request(verb, concrete(path, ids), headers=headers, body=b'{"name": "x"}')
    assert response.status_code == 415, (verb, path, response.status_code, response.body)
    assert json.loads(response.body)["error"]["code"] == "unsupported_media_type"


def test_no_bad_request_wrote_anything(module_api, caller, operator, before):
    """Runs after the matrices above (definition order)."""
    assert world_of(module_api, caller[0], operator) == before
    assert not [t for t in before["tenants"] if t == "ten_chosen_by_client"]


def test_signup_with_bad_input_creates_no_tenant(module_api, operator):
    slug = random_slug("bad")
    listing = lambda: module_api.call("GET", "/admin/tenants?limit=100", token=operator).json["tenants"]  # noqa: E731
    before = [t["tenant_id"] for t in listing()]
    for body in ({"company_name": "X", "slug": slug, "email": "bad", "password": "correct-horse-battery"},
                 {"company_name": "X", "slug": slug, "email": "a@example.com", "password": "short"},
                 {"company_name": "X", "slug": slug, "email": "a@example.com", "password": "correct-horse-battery",
                  "plan": "enterprise"}):
        assert module_api.call("POST", "/tenants", body).status_code == 400
    assert [t["tenant_id"] for t in listing()] == before
