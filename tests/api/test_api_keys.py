"""API keys: shown once, stored as a hash, listed without secrets, refused once revoked."""
import hashlib

import pytest

from conftest import WritesNothing


@pytest.fixture(scope="module")
def roles(module_api, acme):
    _, admin_token = module_api.add_user(acme, role="admin")
    _, member_token = module_api.add_user(acme, role="member")
    return {"owner": acme.token, "admin": admin_token, "member": member_token}


@pytest.fixture(scope="module")
def created(module_api, acme):
    return module_api.call("POST", "/api-keys", {"name": "ci"}, token=acme.token)


def listed(api, tenant):
    response = api.call("GET", "/api-keys", token=tenant.token)
    assert response.status_code == 200
    return {k["key_id"]: k for k in response.json["api_keys"]}


def stored(tenant_id, key_id):
    from chalicelib.models import ApiKey, tenant_pk

    return ApiKey.get(tenant_pk(tenant_id), ApiKey.sk_for(key_id), consistent_read=True)


# --- creation ---------------------------------------------------------------------------

def test_create_answers_201_with_the_key_its_id_and_name(created):
    assert created.status_code == 201
    assert created.json["key"].startswith("tsk_")
    assert created.json["key_id"].startswith("key_")
    assert created.json["name"] == "ci"


def test_created_key_authenticates_as_its_tenant(module_api, acme, created):
    response = module_api.call("GET", "/me", token=created.json["key"])
    assert response.status_code == 200
    assert (response.json["tenant_id"], response.json["key_id"]) == (acme.id, created.json["key_id"])


def test_key_is_stored_only_as_a_sha256_digest(acme, created):
    secret = created.json["key"].rsplit(".", 1)[1]
    item = stored(acme.id, created.json["key_id"])
    assert item.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(item.serialize())


def test_listing_shows_the_key_without_its_secret(module_api, acme, created):
    keys = listed(module_api, acme)
    entry = keys[created.json["key_id"]]
    assert entry["name"] == "ci" and entry["revoked_at"] is None
    assert "key" not in entry and "secret_hash" not in entry


def test_listing_never_contains_the_secret_anywhere(module_api, acme, created):
    response = module_api.call("GET", "/api-keys", token=acme.token)
    assert created.json["key"].rsplit(".", 1)[1] not in response.body.decode()


def test_each_key_is_shown_only_by_its_creation(module_api, acme, created):
    again = module_api.call("GET", "/api-keys", token=acme.token)
    assert created.json["key"] not in again.body.decode()


@pytest.mark.parametrize("body, code", [
    ({}, "missing_field"), ({"name": ""}, "invalid_field"), ({"name": "x" * 101}, "invalid_field"),
    ({"name": 5}, "invalid_field"), ({"name": "ci", "key": "tsk_mine"}, "unknown_field"),
    ({"name": "ci", "role": "owner"}, "unknown_field"),
])
def test_invalid_key_request_is_rejected_and_nothing_is_written(module_api, acme, body, code):
    before = set(listed(module_api, acme))
    response = module_api.call("POST", "/api-keys", body, token=acme.token)
    assert response.status_code == 400
    assert response.json["error"]["code"] == code
    assert set(listed(module_api, acme)) == before


def test_create_key_with_invalid_json_is_400_invalid_json(module_api, acme):
    with WritesNothing(acme.id):
        response = module_api.call("POST", "/api-keys", raw=b"name=ci", token=acme.token)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_json"


# --- who may manage keys --------------------------------------------------------------------

@pytest.mark.parametrize("role", ["owner", "admin"])
def test_owner_and_admin_create_keys(module_api, acme, roles, role):
    response = module_api.call("POST", "/api-keys", {"name": role}, token=roles[role])
    assert response.status_code == 201
    assert listed(module_api, acme)[response.json["key_id"]]["name"] == role


def test_member_cannot_create_keys(module_api, acme, roles):
    with WritesNothing(acme.id):
        response = module_api.call("POST", "/api-keys", {"name": "member"}, token=roles["member"])
    assert response.status_code == 403
    assert response.json["error"]["code"] == "insufficient_role"


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_owner_and_admin_list_keys(module_api, acme, roles, role):
    response = module_api.call("GET", "/api-keys", token=roles[role])
    assert response.status_code == 200
    assert {k["key_id"] for k in response.json["api_keys"]} == set(listed(module_api, acme))


def test_member_cannot_list_keys(module_api, roles):
    response = module_api.call("GET", "/api-keys", token=roles["member"])
    assert response.status_code == 403
    assert response.json["error"]["code"] == "insufficient_role"


def test_member_cannot_revoke_a_key(module_api, acme, roles):
    key = module_api.api_key(acme)
    with WritesNothing(acme.id):
        response = module_api.call("DELETE", f"/api-keys/{key['key_id']}", token=roles["member"])
    assert response.status_code == 403
    assert response.json["error"]["code"] == "insufficient_role"
    assert module_api.call("GET", "/me", token=key["key"]).status_code == 200


def test_a_key_cannot_create_more_keys(module_api, acme, created):
    with WritesNothing(acme.id):
        response = module_api.call("POST", "/api-keys", {"name": "child"}, token=created.json["key"])
    assert response.status_code == 403
    assert response.json["error"]["code"] == "insufficient_role"


# --- revocation ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def revoked(module_api, acme):
    key = module_api.api_key(acme, name="to-revoke")
    works_before = module_api.call("GET", "/me", token=key["key"]).status_code
    response = module_api.call("DELETE", f"/api-keys/{key['key_id']}", token=acme.token)
    return key, works_before, response


def test_revoke_answers_204(revoked):
    _, works_before, response = revoked
    assert (works_before, response.status_code) == (200, 204)


def test_revoked_key_is_refused(module_api, revoked):
    response = module_api.call("GET", "/me", token=revoked[0]["key"])
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"


def test_revoked_key_is_listed_with_its_revocation_time(module_api, acme, revoked):
    assert listed(module_api, acme)[revoked[0]["key_id"]]["revoked_at"]


def test_revoking_twice_keeps_the_first_revocation_time(module_api, acme, revoked):
    first = listed(module_api, acme)[revoked[0]["key_id"]]["revoked_at"]
    assert module_api.call("DELETE", f"/api-keys/{revoked[0]['key_id']}", token=acme.token).status_code == 204
    assert listed(module_api, acme)[revoked[0]["key_id"]]["revoked_at"] == first


def test_revoking_one_key_leaves_the_others_working(module_api, created, revoked):
    assert module_api.call("GET", "/me", token=created.json["key"]).status_code == 200


def test_revoking_an_unknown_key_is_404(module_api, acme):
    with WritesNothing(acme.id):
        response = module_api.call("DELETE", "/api-keys/key_00000000000000000000", token=acme.token)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_revoking_an_unknown_key_writes_nothing(module_api, acme):
    from chalicelib.models import ApiKey, tenant_pk

    module_api.call("DELETE", "/api-keys/key_11111111111111111111", token=acme.token)
    with pytest.raises(ApiKey.DoesNotExist):
        ApiKey.get(tenant_pk(acme.id), ApiKey.sk_for("key_11111111111111111111"), consistent_read=True)


# --- other tenants' keys do not exist here --------------------------------------------------------

def test_another_tenants_key_is_404_like_a_missing_one(module_api, acme, other, created):
    with WritesNothing(acme.id, other.id):
        foreign = module_api.call("DELETE", f"/api-keys/{created.json['key_id']}", token=other.token)
    missing = module_api.call("DELETE", "/api-keys/key_22222222222222222222", token=other.token)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json == missing.json


def test_another_tenants_revoke_leaves_the_key_working(module_api, other, created):
    module_api.call("DELETE", f"/api-keys/{created.json['key_id']}", token=other.token)
    assert module_api.call("GET", "/me", token=created.json["key"]).status_code == 200


def test_key_list_never_contains_another_tenants_keys(module_api, acme, other, created):
    module_api.api_key(other)
    assert created.json["key_id"] not in listed(module_api, other)
    assert not set(listed(module_api, acme)) & set(listed(module_api, other))
