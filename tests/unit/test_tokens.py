"""Access and operator tokens: what they carry, how long they live, and every way verification refuses one."""
from __future__ import annotations

import time

import jwt
import pytest

from chalicelib.errors import Unauthorized
from chalicelib.identity.tokens import (issue_access_token, issue_operator_token, verify_access_token,
                                        verify_operator_token)
from conftest import TEST_JWT_SECRET, TEST_OPERATOR_SECRET

TENANT_CLAIMS = {"iss": "tessera-local", "aud": "tessera-api"}
OPERATOR_CLAIMS = {"iss": "tessera-local-operators", "aud": "tessera-admin"}


def kid_of(secret: str) -> str:
    from chalicelib.secrets import Keyring

    return Keyring.parse(secret).active


def sign(claims: dict, secret: str = TEST_JWT_SECRET, algorithm: str = "HS256", kid: object = "default") -> str:
    headers = {} if kid is None else {"kid": kid_of(secret) if kid == "default" else kid}
    return jwt.encode(claims, secret, algorithm=algorithm, headers=headers)


def tenant_claims(**overrides) -> dict:
    now = int(time.time())
    claims = {**TENANT_CLAIMS, "sub": "usr_1", "tid": "ten_1", "role": "admin", "iat": now, "exp": now + 600,
              **overrides}
    return {k: v for k, v in claims.items() if v is not None}


def refused(verify, token: str, code: str = "unauthorized") -> Unauthorized:
    with pytest.raises(Unauthorized) as caught:
        verify(token)
    assert (caught.value.status, caught.value.code) == (401, code)
    assert caught.value.message
    return caught.value


# --- what is issued -------------------------------------------------------------------------------------

def test_access_token_carries_user_tenant_role_issuer_audience_and_the_configured_lifetime():
    before = int(time.time())
    token, ttl = issue_access_token("ten_1", "usr_1", "admin")
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, TEST_JWT_SECRET, algorithms=["HS256"], audience="tessera-api", issuer="tessera-local")
    assert (header["alg"], header["kid"]) == ("HS256", kid_of(TEST_JWT_SECRET))
    assert (claims["sub"], claims["tid"], claims["role"]) == ("usr_1", "ten_1", "admin")
    assert ttl == 3600 and claims["exp"] - claims["iat"] == 3600
    assert before <= claims["iat"] <= int(time.time())


def test_operator_token_lives_twelve_hours_and_names_its_operator_and_scope():
    before = int(time.time())
    token = issue_operator_token("ops-1")
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, TEST_OPERATOR_SECRET, algorithms=["HS256"], audience="tessera-admin",
                        issuer="tessera-local-operators")
    assert (header["alg"], header["kid"]) == ("HS256", kid_of(TEST_OPERATOR_SECRET))
    assert (claims["sub"], claims["scope"]) == ("ops-1", "operator")
    assert claims["exp"] - claims["iat"] == 12 * 3600
    assert before <= claims["iat"] <= int(time.time())


def test_operator_token_lifetime_can_be_chosen():
    claims = jwt.decode(issue_operator_token("ops-1", ttl_seconds=60), options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 60


def test_issued_tokens_verify():
    token, _ = issue_access_token("ten_1", "usr_1", "member")
    assert verify_access_token(token)["tid"] == "ten_1"
    assert verify_operator_token(issue_operator_token("ops-2"))["sub"] == "ops-2"


# --- what verification refuses -----------------------------------------------------------------------------

def test_a_forged_token_made_like_an_issued_one_verifies():
    """So each refusal below is for its one defect."""
    assert verify_access_token(sign(tenant_claims()))["sub"] == "usr_1"


def test_expired_token_is_refused_as_token_expired():
    past = int(time.time()) - 3600
    error = refused(verify_access_token, sign(tenant_claims(iat=past, exp=past + 60)), code="token_expired")
    assert "expired" in error.message


@pytest.mark.parametrize("missing", ["exp", "iat", "iss", "aud", "sub"])
def test_token_without_a_required_claim_is_refused(missing):
    refused(verify_access_token, sign(tenant_claims(**{missing: None})))


def test_token_without_a_tenant_is_refused():
    refused(verify_access_token, sign(tenant_claims(tid=None)))
    refused(verify_access_token, sign(tenant_claims(tid="")))


@pytest.mark.filterwarnings("ignore:The HMAC key")
def test_token_with_another_algorithm_is_refused_even_with_the_right_secret():
    refused(verify_access_token, sign(tenant_claims(), algorithm="HS512"))


def test_token_without_a_kid_or_with_an_unknown_kid_is_refused():
    refused(verify_access_token, sign(tenant_claims(), kid=None))
    refused(verify_access_token, sign(tenant_claims(), kid="k-unknown"))


@pytest.mark.parametrize("claim, value", [("iss", "tessera-local-operators"), ("aud", "tessera-admin"),
                                          ("iss", "someone-else"), ("aud", "someone-else")])
def test_token_for_another_issuer_or_audience_is_refused(claim, value):
    refused(verify_access_token, sign(tenant_claims(**{claim: value})))


def test_garbage_is_refused():
    refused(verify_access_token, "not-a-token")
    refused(verify_operator_token, "not.a.token")


def test_tenant_token_is_not_an_operator_token_and_the_other_way_round():
    token, _ = issue_access_token("ten_1", "usr_1", "owner")
    refused(verify_operator_token, token)
    refused(verify_access_token, issue_operator_token("ops-1"))


def test_operator_claims_signed_with_the_tenant_secret_are_refused():
    now = int(time.time())
    claims = {**OPERATOR_CLAIMS, "sub": "mallory", "scope": "operator", "iat": now, "exp": now + 600}
    assert verify_operator_token(sign(claims, secret=TEST_OPERATOR_SECRET))["sub"] == "mallory"
    refused(verify_operator_token, sign(claims, secret=TEST_JWT_SECRET))


@pytest.mark.parametrize("scope", [None, "", "tenant", "operators"])
def test_operator_token_without_the_operator_scope_is_refused(scope):
    now = int(time.time())
    claims = {**OPERATOR_CLAIMS, "sub": "mallory", "iat": now, "exp": now + 600}
    if scope is not None:
        claims["scope"] = scope
    refused(verify_operator_token, sign(claims, secret=TEST_OPERATOR_SECRET))


def test_expired_operator_token_is_refused_as_token_expired():
    past = int(time.time()) - 3600
    claims = {**OPERATOR_CLAIMS, "sub": "ops", "scope": "operator", "iat": past, "exp": past + 60}
    refused(verify_operator_token, sign(claims, secret=TEST_OPERATOR_SECRET), code="token_expired")


def test_the_two_audiences_cannot_be_changed_at_run_time():
    import dataclasses

    from chalicelib.identity.tokens import OPERATOR, TENANT

    for audience in (TENANT, OPERATOR):
        with pytest.raises(dataclasses.FrozenInstanceError):
            audience.audience = lambda: "anyone"
