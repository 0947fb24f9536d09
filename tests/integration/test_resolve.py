"""The authorizer's resolve(): a credential and the stored state (read once, consistently) make the context."""
from __future__ import annotations

import pytest

from chalicelib import keys, operators, tenants
from chalicelib.errors import Unauthorized
from chalicelib.identity import apikeys
from chalicelib.identity.resolve import ResolvedCache, bearer_token, credential_header, resolve, resolve_operator
from chalicelib.identity.tokens import issue_access_token, issue_operator_token
from chalicelib.tenancy import TenantContext
from conftest import random_slug
from dynamo_hooks import DynamoCalls


def sign_up(name):
    slug = random_slug("rs")
    return tenants.sign_up({"company_name": name, "slug": slug, "email": f"owner@{slug}.example.com",
                            "password": "resolve-password-1"})


def new_key(tenant, name):
    owner = TenantContext(tenant_id=tenant["tenant_id"], principal_id=tenant["owner"]["user_id"],
                          principal_type="user", role="owner", display=tenant["owner"]["email"], slug=tenant["slug"])
    return owner, keys.create_key(tenant["tenant_id"], owner, {"name": name})


@pytest.fixture(scope="module")
def tenant(environment):
    return sign_up("Resolve Co")


@pytest.fixture(scope="module")
def key(tenant):
    return new_key(tenant, "resolver")[1]


def owner_token(tenant, role="owner"):
    return issue_access_token(tenant["tenant_id"], tenant["owner"]["user_id"], role)[0]


def refused(header, message=None):
    with pytest.raises(Unauthorized) as caught:
        resolve(header)
    assert (caught.value.status, caught.value.code) == (401, "unauthorized")
    if message:
        assert caught.value.message == message
    return caught.value


# --- the Authorization header ------------------------------------------------------------------------

@pytest.mark.parametrize("header, token", [("Bearer abc", "abc"), ("bearer abc", "abc"), ("BEARER abc", "abc"),
                                           ("  Bearer   abc  ", "abc"), ("Bearer a b", "a b")])
def test_bearer_token_takes_the_token_after_the_scheme(header, token):
    assert bearer_token(header) == token


@pytest.mark.parametrize("header", [None, "", "   ", "Bearer", "Bearer    ", "Basic abc", "Token abc", "abc"])
def test_a_header_that_is_not_bearer_with_a_token_is_refused(header):
    with pytest.raises(Unauthorized) as caught:
        bearer_token(header)
    assert caught.value.code == "unauthorized"
    assert caught.value.message == "Send 'Authorization: Bearer <token>' or 'x-api-key: <key>'."


# --- users --------------------------------------------------------------------------------------------

def test_a_users_token_becomes_the_users_context(tenant):
    ctx = resolve(f"Bearer {owner_token(tenant)}")
    assert (ctx.tenant_id, ctx.principal_id, ctx.principal_type, ctx.role, ctx.display, ctx.slug, ctx.plan) == (
        tenant["tenant_id"], tenant["owner"]["user_id"], "user", "owner", tenant["owner"]["email"], tenant["slug"],
        "free")


def test_the_role_is_the_stored_one_not_the_tokens(tenant):
    assert resolve(f"Bearer {owner_token(tenant, role='member')}").role == "owner"


def test_resolving_reads_the_tenant_and_the_principal_in_one_consistent_batch(tenant, key):
    for header in (f"Bearer {owner_token(tenant)}", f"Bearer {key['key']}"):
        with DynamoCalls() as calls:
            resolve(header)
        assert calls.names == ["BatchGetItem"]
        [request] = calls.params[0]["RequestItems"].values()
        assert request["ConsistentRead"] is True
        assert len(request["Keys"]) == 2


def test_a_token_of_an_unknown_user_or_tenant_is_refused(tenant):
    refused(f"Bearer {issue_access_token(tenant['tenant_id'], 'usr_00000000000000000000', 'owner')[0]}",
            "The token is not valid.")
    refused(f"Bearer {issue_access_token('ten_00000000000000000000', tenant['owner']['user_id'], 'owner')[0]}",
            "The token is not valid.")


def test_an_operator_token_is_not_a_tenant_credential():
    refused(f"Bearer {issue_operator_token('ops')}", "The token is not valid.")


# --- API keys -------------------------------------------------------------------------------------------

def test_an_api_key_becomes_a_member_context_named_after_the_key(tenant, key):
    ctx = resolve(f"Bearer {key['key']}")
    assert (ctx.tenant_id, ctx.principal_id, ctx.principal_type, ctx.role, ctx.display, ctx.slug, ctx.plan) == (
        tenant["tenant_id"], key["key_id"], "api_key", "member", "resolver", tenant["slug"], "free")


@pytest.mark.parametrize("defect", ["wrong secret", "unknown key id", "unknown tenant", "two parts", "empty part"])
def test_a_key_with_a_defect_is_refused_as_not_valid(tenant, key, defect):
    parsed = apikeys.parse(key["key"])
    token = {
        "wrong secret": f"tsk_{parsed.tenant_id}.{parsed.key_id}.{'A' * 43}",
        "unknown key id": f"tsk_{parsed.tenant_id}.key_00000000000000000000.{parsed.secret}",
        "unknown tenant": f"tsk_ten_00000000000000000000.{parsed.key_id}.{parsed.secret}",
        "two parts": f"tsk_{parsed.tenant_id}.{parsed.secret}",
        "empty part": f"tsk_{parsed.tenant_id}..{parsed.secret}",
    }[defect]
    refused(f"Bearer {token}", "The API key is not valid.")


def test_a_revoked_key_is_refused(tenant):
    owner, created = new_key(tenant, "short-lived")
    assert resolve(f"Bearer {created['key']}").principal_id == created["key_id"]
    keys.revoke_key(tenant["tenant_id"], owner, created["key_id"])
    refused(f"Bearer {created['key']}", "The API key is not valid.")


def test_a_suspended_tenants_key_and_tokens_are_refused_until_it_is_resumed(environment):
    created = sign_up("Paused Co")
    key, token = new_key(created, "paused")[1]["key"], owner_token(created)
    operators.set_status(created["tenant_id"], "suspended")
    refused(f"Bearer {key}", "The API key is not valid.")
    refused(f"Bearer {token}", "The token is not valid.")
    operators.set_status(created["tenant_id"], "active")
    assert resolve(f"Bearer {key}").tenant_id == resolve(f"Bearer {token}").tenant_id == created["tenant_id"]


# --- operators -------------------------------------------------------------------------------------------

def test_an_operator_credential_resolves_to_the_operator():
    assert resolve_operator(f"Bearer {issue_operator_token('ops-7')}") == "ops-7"


def test_no_tenant_credential_resolves_to_an_operator(tenant, key):
    with pytest.raises(Unauthorized) as caught:
        resolve_operator(f"Bearer {key['key']}")
    assert caught.value.message == "Operator routes need an operator credential."
    with pytest.raises(Unauthorized) as caught:
        resolve_operator(f"Bearer {owner_token(tenant)}")
    assert caught.value.code == "unauthorized"
    with pytest.raises(Unauthorized):
        resolve_operator(None)


# --- which header carries the credential, and the authorizer's own cache ------------------------------------

@pytest.mark.parametrize("headers, expected", [
    ({"Authorization": "Bearer abc"}, "Bearer abc"),
    ({"X-Api-Key": " tsk_abc "}, "Bearer tsk_abc"),
    ({"authorization": "Bearer abc", "x-api-key": "tsk_other"}, "Bearer abc"),
    ({"x-api-key": "   "}, None),
    ({}, None),
    (None, None),
])
def test_the_credential_is_authorization_else_x_api_key_else_none(headers, expected):
    assert credential_header(headers) == expected


class Clock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def test_a_kept_decision_is_answered_until_its_ttl_has_passed_and_read_again_at_it(tenant, key):
    clock = Clock()
    cache = ResolvedCache(ttl=30, clock=clock)
    header = f"Bearer {key['key']}"
    cache.resolve(header)
    for now, reads in ((1029.999, []), (1030.0, ["BatchGetItem"])):
        clock.now = now
        with DynamoCalls() as calls:
            assert cache.resolve(header).tenant_id == tenant["tenant_id"]
        assert calls.names == reads


def test_expired_decisions_are_dropped_when_a_new_one_is_kept(tenant, key):
    clock = Clock()
    cache = ResolvedCache(ttl=30, clock=clock)
    cache.resolve(f"Bearer {owner_token(tenant)}")  # kept until 1030
    clock.now = 1001.0
    cache.resolve(f"Bearer {key['key']}")  # kept until 1031
    assert len(cache) == 2
    clock.now = 1030.0  # the first has just expired; the second has a second left
    cache.resolve(f"Bearer {owner_token(tenant, role='member')}")
    assert len(cache) == 2
