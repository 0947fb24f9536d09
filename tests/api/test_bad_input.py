"""Bad input on every route that takes a body: a 4xx in the error envelope, and nothing written.

Built from `app.routes`, so a route added later is held to the same rule. Each test checks its own
request: the table holds as many items afterwards and the caller's items are unchanged.
"""
import json

import pytest

from conftest import WritesNothing, random_slug

BODY_VERBS = ("POST", "PUT", "PATCH")
# Routes that take no body and ignore one: they act on the path alone, or (POST /v1/files) refuse every call.
BODYLESS = {("/admin/tenants/{tenant_id}/suspend", "POST"), ("/admin/tenants/{tenant_id}/resume", "POST"),
            ("/tenant/export", "POST"), ("/admin/tenants/{tenant_id}/export", "POST"),
            ("/v1/messages/batches/{message_batch_id}/cancel", "POST"), ("/v1/files", "POST")}
# Of those, the ones whose answer at this module's ids is a refusal, whatever the body: cancelling a batch
# the caller does not have, and uploading a file (the Files API is not offered, chalicelib/ai/files_api.py).
REFUSED_WHATEVER_THE_BODY = {("/v1/messages/batches/{message_batch_id}/cancel", "POST"): (404, "not_found"),
                             ("/v1/files", "POST"): (404, "files_api_not_offered")}
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


def envelope_code(response):
    error = (response.json or {}).get("error")
    assert isinstance(error, dict) and error.get("message"), response.body
    return error.get("code")


def call(api, caller, operator, path, verb, **kwargs):
    """Send one bad request as the caller (or the operator) and check that it wrote nothing."""
    tenant, ids = caller
    with WritesNothing(tenant.id):
        return api.call(verb, concrete(path, ids), token=credential_for(path, verb, tenant, operator), **kwargs)


@pytest.mark.parametrize("raw", NOT_JSON, ids=["broken", "array", "number", "empty", "binary"])
@pytest.mark.parametrize("path, verb", body_routes())
def test_body_that_is_not_a_json_object_is_400_invalid_json_and_writes_nothing(module_api, caller, operator,
                                                                                 path, verb, raw):
    response = call(module_api, caller, operator, path, verb, raw=raw)
    assert response.status_code == 400, (verb, path, response.status_code, response.body)
    assert envelope_code(response) == "invalid_json"


@pytest.mark.parametrize("path, verb", body_routes())
def test_unknown_field_is_400_unknown_field_and_writes_nothing(module_api, caller, operator, path, verb):
    response = call(module_api, caller, operator, path, verb, body={"tenant_id": "ten_chosen_by_client"})
    assert response.status_code == 400, (verb, path, response.status_code, response.body)
    assert envelope_code(response) == "unknown_field"


@pytest.mark.parametrize("path, verb", body_routes())
def test_form_encoded_body_is_415_and_writes_nothing(module_api, caller, operator, path, verb):
    response = call(module_api, caller, operator, path, verb, raw=b"name=x&plan=enterprise",
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415, (verb, path, response.status_code, response.body)
    assert envelope_code(response) == "unsupported_media_type"


@pytest.mark.parametrize("path, verb", body_routes())
def test_body_without_a_content_type_is_415_and_writes_nothing(module_api, caller, operator, path, verb):
    tenant, ids = caller
    token = credential_for(path, verb, tenant, operator)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with WritesNothing(tenant.id):
        response = module_api.client.http.request(verb, concrete(path, ids), headers=headers, body=b'{"name": "x"}')
    assert response.status_code == 415, (verb, path, response.status_code, response.body)
    assert json.loads(response.body)["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize("raw", [*NOT_JSON, b'{"tenant_id": "ten_chosen_by_client"}'],
                         ids=["broken", "array", "number", "empty", "binary", "unknown-field"])
@pytest.mark.parametrize("path, verb", sorted(REFUSED_WHATEVER_THE_BODY))
def test_a_bodyless_route_that_refuses_refuses_the_same_whatever_the_body_and_writes_nothing(
        module_api, caller, operator, path, verb, raw):
    status, code = REFUSED_WHATEVER_THE_BODY[(path, verb)]
    response = call(module_api, caller, operator, path, verb, raw=raw)
    assert response.status_code == status, (verb, path, response.status_code, response.body)
    assert envelope_code(response) == code


def test_every_route_that_refuses_whatever_the_body_is_bodyless():
    assert set(REFUSED_WHATEVER_THE_BODY) <= BODYLESS


@pytest.mark.parametrize("body, code", [
    ({"company_name": "X", "email": "bad", "password": "correct-horse-battery"}, "invalid_field"),
    ({"company_name": "X", "email": "a@example.com", "password": "short"}, "invalid_field"),
    ({"company_name": "X", "email": "a@example.com", "password": "correct-horse-battery", "plan": "enterprise"},
     "unknown_field"),
])
def test_signup_with_bad_input_is_400_and_creates_nothing(module_api, body, code):
    with WritesNothing():
        response = module_api.call("POST", "/tenants", {**body, "slug": random_slug("bad")})
    assert response.status_code == 400
    assert envelope_code(response) == code
