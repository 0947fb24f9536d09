"""Users of one tenant: owner > admin > member, and a tenant never loses its last owner."""
import secrets

import pytest

from conftest import WritesNothing

PASSWORD = "member-password-1"


def forbidden(response):
    """Refused for the caller's role: 403 insufficient_role."""
    assert response.status_code == 403, (response.status_code, response.body)
    assert response.json["error"]["code"] == "insufficient_role"
    return True


class Team:
    def __init__(self, api):
        self.api = api
        self.tenant = api.signup()
        (self.admin, self.admin_token) = api.add_user(self.tenant, role="admin")
        (self.member, self.member_token) = api.add_user(self.tenant, role="member")

    @property
    def owner_token(self):
        return self.tenant.token

    def user_ids(self):
        response = self.api.call("GET", "/users", token=self.owner_token)
        assert response.status_code == 200
        return {u["user_id"] for u in response.json["users"]}

    def role_of(self, user_id):
        return self.api.call("GET", f"/users/{user_id}", token=self.owner_token).json["role"]


@pytest.fixture(scope="module")
def team(module_api):
    return Team(module_api)


@pytest.fixture(scope="module")
def other(module_api):
    return Team(module_api)


def new_email(tenant):
    return f"user-{secrets.token_hex(4)}@{tenant.slug}.example.com"


def create(api, token, tenant, role=None, email=None):
    body = {"email": email or new_email(tenant), "password": PASSWORD}
    if role:
        body["role"] = role
    return api.call("POST", "/users", body, token=token)


# --- reading -----------------------------------------------------------------------

def test_owner_lists_every_user_of_the_tenant(team):
    assert team.user_ids() >= {team.tenant.owner_id, team.admin["user_id"], team.member["user_id"]}


def test_admin_lists_every_user_of_the_tenant(module_api, team):
    response = module_api.call("GET", "/users", token=team.admin_token)
    assert {u["user_id"] for u in response.json["users"]} == team.user_ids()


def test_member_lists_only_themselves(module_api, team):
    response = module_api.call("GET", "/users", token=team.member_token)
    assert [u["user_id"] for u in response.json["users"]] == [team.member["user_id"]]


def test_api_key_lists_no_users(module_api, team):
    key = module_api.api_key(team.tenant)["key"]
    assert module_api.call("GET", "/users", token=key).json["users"] == []


def test_member_reads_their_own_user(module_api, team):
    response = module_api.call("GET", f"/users/{team.member['user_id']}", token=team.member_token)
    assert response.status_code == 200
    assert response.json["email"] == team.member["email"]


def test_member_cannot_read_another_user(module_api, team):
    assert forbidden(module_api.call("GET", f"/users/{team.admin['user_id']}", token=team.member_token))


def test_admin_reads_any_user_of_the_tenant(module_api, team):
    response = module_api.call("GET", f"/users/{team.tenant.owner_id}", token=team.admin_token)
    assert response.status_code == 200
    assert response.json["role"] == "owner"


def test_user_views_never_carry_the_password_or_its_hash(module_api, team):
    listing = module_api.call("GET", "/users", token=team.owner_token)
    for user in listing.json["users"]:
        assert set(user) == {"user_id", "email", "role", "status", "created_at"}
    assert PASSWORD not in listing.body.decode()


def test_unknown_user_id_is_404(module_api, team):
    response = module_api.call("GET", "/users/usr_doesnotexist", token=team.owner_token)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


# --- creating --------------------------------------------------------------------------

def test_created_user_defaults_to_member(module_api, team):
    response = create(module_api, team.owner_token, team.tenant)
    assert response.status_code == 201
    assert response.json["role"] == "member"
    assert team.role_of(response.json["user_id"]) == "member"


def test_created_user_can_log_in(module_api, team):
    email = new_email(team.tenant)
    create(module_api, team.owner_token, team.tenant, email=email)
    assert module_api.login(team.tenant.slug, email, PASSWORD)


def test_admin_creates_a_member(module_api, team):
    response = create(module_api, team.admin_token, team.tenant, role="member")
    assert response.status_code == 201
    assert team.role_of(response.json["user_id"]) == "member"


def test_owner_creates_an_admin(module_api, team):
    response = create(module_api, team.owner_token, team.tenant, role="admin")
    assert response.status_code == 201
    assert team.role_of(response.json["user_id"]) == "admin"


@pytest.mark.parametrize("role", ["admin", "owner"])
def test_admin_cannot_create_a_user_with_role(module_api, team, role):
    email = new_email(team.tenant)
    response = create(module_api, team.admin_token, team.tenant, role=role, email=email)
    assert response.status_code == 403
    assert response.json["error"]["code"] == "insufficient_role"
    assert module_api.call("POST", "/auth/login", {"tenant": team.tenant.slug, "email": email,
                                                   "password": PASSWORD}).status_code == 401


def test_member_cannot_create_users(module_api, team):
    with WritesNothing(team.tenant.id):
        assert forbidden(create(module_api, team.member_token, team.tenant))


@pytest.mark.parametrize("spelling", [str, str.upper])
def test_email_is_unique_within_a_tenant_whatever_its_case(module_api, team, spelling):
    with WritesNothing(team.tenant.id):
        response = create(module_api, team.owner_token, team.tenant, email=spelling(team.member["email"]))
    assert response.status_code == 409
    assert response.json["error"]["code"] == "email_taken"


def test_the_same_email_may_exist_in_two_tenants(module_api, team, other):
    response = create(module_api, other.owner_token, other.tenant, email=team.member["email"])
    assert response.status_code == 201
    assert module_api.login(other.tenant.slug, team.member["email"], PASSWORD)
    assert module_api.login(team.tenant.slug, team.member["email"], PASSWORD)


def test_a_deleted_users_email_can_be_used_again(module_api, team):
    email = new_email(team.tenant)
    user_id = create(module_api, team.owner_token, team.tenant, email=email).json["user_id"]
    assert module_api.call("DELETE", f"/users/{user_id}", token=team.owner_token).status_code == 204
    assert create(module_api, team.owner_token, team.tenant, email=email).status_code == 201


@pytest.mark.parametrize("body, code", [
    ({"email": "not-an-email", "password": PASSWORD}, "invalid_field"),
    ({"email": "ok@example.com", "password": "short"}, "invalid_field"),
    ({"email": "ok@example.com", "password": PASSWORD, "role": "superuser"}, "invalid_field"),
    ({"email": "ok@example.com", "password": PASSWORD, "tenant_id": "ten_other"}, "unknown_field"),
    ({"email": "ok@example.com", "password": PASSWORD, "status": "active"}, "unknown_field"),
    ({"password": PASSWORD}, "missing_field"),
    ({"email": "ok@example.com"}, "missing_field"),
])
def test_invalid_user_is_rejected_and_nothing_is_written(module_api, team, body, code):
    with WritesNothing(team.tenant.id):
        response = module_api.call("POST", "/users", body, token=team.owner_token)
    assert response.status_code == 400
    assert response.json["error"]["code"] == code


def test_create_user_with_invalid_json_is_400_invalid_json(module_api, team):
    with WritesNothing(team.tenant.id):
        response = module_api.call("POST", "/users", raw=b'{"email": "x@example.com",', token=team.owner_token)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_json"


# --- changing roles ------------------------------------------------------------------------

def test_owner_promotes_a_member_to_admin(module_api, team):
    user_id = create(module_api, team.owner_token, team.tenant).json["user_id"]
    response = module_api.call("PATCH", f"/users/{user_id}", {"role": "admin"}, token=team.owner_token)
    assert response.status_code == 200
    assert team.role_of(user_id) == "admin"


def test_admin_cannot_promote_a_member_to_admin(module_api, team):
    user_id = create(module_api, team.owner_token, team.tenant).json["user_id"]
    response = module_api.call("PATCH", f"/users/{user_id}", {"role": "admin"}, token=team.admin_token)
    assert forbidden(response)
    assert team.role_of(user_id) == "member"


def test_admin_cannot_demote_another_admin(module_api, team):
    user_id = create(module_api, team.owner_token, team.tenant, role="admin").json["user_id"]
    response = module_api.call("PATCH", f"/users/{user_id}", {"role": "member"}, token=team.admin_token)
    assert forbidden(response)
    assert team.role_of(user_id) == "admin"


def test_admin_cannot_demote_the_owner(module_api, team):
    response = module_api.call("PATCH", f"/users/{team.tenant.owner_id}", {"role": "member"},
                               token=team.admin_token)
    assert forbidden(response)
    assert team.role_of(team.tenant.owner_id) == "owner"


def test_member_cannot_change_their_own_role(module_api, team):
    response = module_api.call("PATCH", f"/users/{team.member['user_id']}", {"role": "admin"},
                               token=team.member_token)
    assert forbidden(response)
    assert team.role_of(team.member["user_id"]) == "member"


@pytest.mark.parametrize("body, code", [
    ({"role": "root"}, "invalid_field"), ({}, "missing_field"), ({"role": "member", "email": "x@y.com"},
                                                                 "unknown_field"),
])
def test_invalid_role_change_is_rejected(module_api, team, body, code):
    response = module_api.call("PATCH", f"/users/{team.member['user_id']}", body, token=team.owner_token)
    assert response.status_code == 400
    assert response.json["error"]["code"] == code
    assert team.role_of(team.member["user_id"]) == "member"


# --- removing ---------------------------------------------------------------------------------

def test_admin_removes_a_member(module_api, team):
    user_id = create(module_api, team.owner_token, team.tenant).json["user_id"]
    assert module_api.call("DELETE", f"/users/{user_id}", token=team.admin_token).status_code == 204
    assert module_api.call("GET", f"/users/{user_id}", token=team.owner_token).status_code == 404


def test_admin_cannot_remove_another_admin(module_api, team):
    user_id = create(module_api, team.owner_token, team.tenant, role="admin").json["user_id"]
    assert forbidden(module_api.call("DELETE", f"/users/{user_id}", token=team.admin_token))
    assert user_id in team.user_ids()


def test_admin_cannot_remove_the_owner(module_api, team):
    assert forbidden(module_api.call("DELETE", f"/users/{team.tenant.owner_id}", token=team.admin_token))
    assert team.tenant.owner_id in team.user_ids()


def test_member_cannot_remove_users(module_api, team):
    user_id = create(module_api, team.owner_token, team.tenant).json["user_id"]
    assert forbidden(module_api.call("DELETE", f"/users/{user_id}", token=team.member_token))
    assert user_id in team.user_ids()


# --- the last owner -----------------------------------------------------------------------------

def owner_count(tenant_id):
    from chalicelib.models import Tenant, tenant_pk

    return int(Tenant.get(tenant_pk(tenant_id), Tenant.SK, consistent_read=True).owner_count)


def test_last_owner_cannot_demote_themselves(module_api):
    tenant = module_api.signup()
    response = module_api.call("PATCH", f"/users/{tenant.owner_id}", {"role": "admin"}, token=tenant.token)
    assert response.status_code == 409
    assert response.json["error"]["code"] == "last_owner"
    assert module_api.call("GET", "/me", token=tenant.token).json["role"] == "owner"


def test_last_owner_cannot_remove_themselves(module_api):
    tenant = module_api.signup()
    response = module_api.call("DELETE", f"/users/{tenant.owner_id}", token=tenant.token)
    assert response.status_code == 409
    assert response.json["error"]["code"] == "last_owner"
    assert module_api.call("GET", "/me", token=tenant.token).status_code == 200


def test_a_second_owner_lets_the_first_step_down(module_api):
    tenant = module_api.signup()
    second, second_token = module_api.add_user(tenant, role="owner")
    response = module_api.call("PATCH", f"/users/{tenant.owner_id}", {"role": "admin"}, token=second_token)
    assert response.status_code == 200
    assert owner_count(tenant.id) == 1


def test_the_remaining_owner_is_again_the_last_one(module_api):
    tenant = module_api.signup()
    second, second_token = module_api.add_user(tenant, role="owner")
    module_api.call("DELETE", f"/users/{tenant.owner_id}", token=second_token)
    response = module_api.call("PATCH", f"/users/{second['user_id']}", {"role": "member"}, token=second_token)
    assert response.status_code == 409
    assert response.json["error"]["code"] == "last_owner"


def test_owner_count_follows_promotions_and_removals(module_api):
    tenant = module_api.signup()
    user, _ = module_api.add_user(tenant, role="member")
    module_api.call("PATCH", f"/users/{user['user_id']}", {"role": "owner"}, token=tenant.token)
    promoted = owner_count(tenant.id)
    module_api.call("DELETE", f"/users/{user['user_id']}", token=tenant.token)
    assert (promoted, owner_count(tenant.id)) == (2, 1)


# --- other tenants' users do not exist here --------------------------------------------------------

@pytest.mark.parametrize("method, body", [("GET", None), ("PATCH", {"role": "member"}), ("DELETE", None)])
def test_another_tenants_user_is_404_like_a_missing_one(module_api, team, other, method, body):
    foreign = module_api.call(method, f"/users/{team.admin['user_id']}", body, token=other.owner_token)
    missing = module_api.call(method, "/users/usr_00000000000000000000", body, token=other.owner_token)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json == missing.json


def test_another_tenants_user_is_untouched_by_its_404s(module_api, team, other):
    module_api.call("PATCH", f"/users/{team.admin['user_id']}", {"role": "member"}, token=other.owner_token)
    module_api.call("DELETE", f"/users/{team.admin['user_id']}", token=other.owner_token)
    assert team.role_of(team.admin["user_id"]) == "admin"


def test_user_list_never_contains_another_tenants_users(module_api, team, other):
    assert not team.user_ids() & other.user_ids()


# --- API keys outlive their creator unless the removal revokes them -------------------------------------

def keys_of(api, tenant):
    return {k["key_id"]: k for k in api.call("GET", "/api-keys", token=tenant.token).json["api_keys"]}


def test_a_key_names_its_creator_and_outlives_them_by_default(module_api):
    tenant = module_api.signup()
    admin, admin_token = module_api.add_user(tenant, role="admin")
    key = module_api.call("POST", "/api-keys", {"name": "deploy"}, token=admin_token).json
    assert key["created_by"] == admin["user_id"]
    assert module_api.call("DELETE", f"/users/{admin['user_id']}", token=tenant.token).status_code == 204
    me = module_api.call("GET", "/me", token=key["key"])
    assert (me.status_code, me.json["role"], me.json["tenant_id"]) == (200, "member", tenant.id)
    assert keys_of(module_api, tenant)[key["key_id"]]["created_by"] == admin["user_id"]


def test_removing_a_user_with_revoke_keys_revokes_the_keys_they_made_and_no_others(module_api):
    tenant = module_api.signup()
    admin, admin_token = module_api.add_user(tenant, role="admin")
    made = [module_api.call("POST", "/api-keys", {"name": f"k{i}"}, token=admin_token).json for i in range(2)]
    owners = module_api.api_key(tenant, name="owners")
    response = module_api.call("DELETE", f"/users/{admin['user_id']}?revoke_keys=true", token=tenant.token)
    assert response.status_code == 204
    assert [module_api.call("GET", "/me", token=k["key"]).status_code for k in made] == [401, 401]
    assert module_api.call("GET", "/me", token=owners["key"]).status_code == 200
    listed = keys_of(module_api, tenant)
    assert all(listed[k["key_id"]]["revoked_at"] for k in made) and listed[owners["key_id"]]["revoked_at"] is None


@pytest.mark.parametrize("value", ["yes", "1", "TRUE", ""])
def test_revoke_keys_must_be_true_or_false(module_api, value):
    tenant = module_api.signup()
    user, _ = module_api.add_user(tenant)
    response = module_api.call("DELETE", f"/users/{user['user_id']}?revoke_keys={value}", token=tenant.token)
    assert (response.status_code, response.json["error"]["code"]) == (400, "invalid_field")
    assert module_api.call("GET", f"/users/{user['user_id']}", token=tenant.token).status_code == 200


def test_a_member_cannot_revoke_keys_by_removing_a_user(module_api):
    tenant = module_api.signup()
    admin, admin_token = module_api.add_user(tenant, role="admin")
    _, member_token = module_api.add_user(tenant)
    key = module_api.call("POST", "/api-keys", {"name": "deploy"}, token=admin_token).json
    response = module_api.call("DELETE", f"/users/{admin['user_id']}?revoke_keys=true", token=member_token)
    assert response.status_code == 403
    assert module_api.call("GET", "/me", token=key["key"]).status_code == 200
