"""POST /auth/login: one answer for every failure, a throttle per source address, and the token it issues."""
import io
import json
import logging
import secrets
import time
from datetime import datetime, timezone

import jwt
import pytest

from conftest import TEST_JWT_SECRET, from_address, random_address, random_slug


@pytest.fixture(scope="module")
def suspended(module_api):
    from chalicelib.identity.tokens import issue_operator_token

    tenant = module_api.signup()
    response = module_api.call("POST", f"/admin/tenants/{tenant.id}/suspend", token=issue_operator_token("ops"))
    assert response.status_code == 200, response.body
    return tenant


def login(api, slug, email, password, headers=None):
    body = {"email": email, "password": password}
    if slug is not None:
        body["tenant"] = slug
    return api.call("POST", "/auth/login", body, headers=headers)


def fresh_email():
    return f"nobody-{secrets.token_hex(4)}@example.com"


def away_from_a_throttle_window_edge():
    """Failures are counted in fixed windows; a burst that straddled two would be counted in halves."""
    from chalicelib.identity.login import WINDOW_SECONDS

    left = WINDOW_SECONDS - time.time() % WINDOW_SECONDS
    if left < 10:
        time.sleep(left + 0.1)


# --- success --------------------------------------------------------------------

def test_login_answers_200_with_a_bearer_token_and_its_lifetime(module_api, acme):
    response = login(module_api, acme.slug, acme.email, acme.password)
    assert response.status_code == 200
    assert response.json["token_type"] == "Bearer"
    assert response.json["expires_in"] == 3600
    assert response.json["access_token"].count(".") == 2


def claims_of(response):
    assert response.status_code == 200, response.body
    return jwt.decode(response.json["access_token"], options={"verify_signature": False})


@pytest.mark.parametrize("port", ["", ":8000"])
def test_login_takes_the_tenant_from_the_host_subdomain(module_api, acme, port):
    response = login(module_api, None, acme.email, acme.password, headers={"Host": f"{acme.slug}.localhost{port}"})
    assert (claims_of(response)["tid"], claims_of(response)["sub"]) == (acme.id, acme.owner_id)


def test_login_without_tenant_or_tenant_host_is_400(module_api, acme):
    response = login(module_api, None, acme.email, acme.password, headers={"Host": "localhost:8000"})
    assert response.status_code == 400
    assert response.json["error"]["code"] == "missing_field"


def test_login_email_is_case_insensitive(module_api, acme):
    response = login(module_api, acme.slug, acme.email.upper(), acme.password)
    assert claims_of(response)["sub"] == acme.owner_id


def test_login_rejects_unknown_fields(module_api, acme):
    response = module_api.call("POST", "/auth/login", {"tenant": acme.slug, "email": acme.email,
                                                       "password": acme.password, "role": "owner"})
    assert response.status_code == 400
    assert response.json["error"]["code"] == "unknown_field"


def test_login_with_invalid_json_is_400_invalid_json(module_api):
    response = module_api.call("POST", "/auth/login", raw=b'{"tenant": ')
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_json"


# --- every failure looks the same -------------------------------------------------------

@pytest.fixture(scope="module")
def failures(module_api, acme, suspended):
    """One failed login of each kind, each for its own (tenant, email) so no throttle is involved."""
    member_email = f"member-{secrets.token_hex(3)}@example.com"
    created = module_api.call("POST", "/users", {"email": member_email, "password": "member-password-1"},
                              token=acme.token)
    assert created.status_code == 201
    return {
        "unknown tenant": login(module_api, random_slug("ghost"), acme.email, acme.password),
        "unknown user": login(module_api, acme.slug, fresh_email(), acme.password),
        "wrong password": login(module_api, acme.slug, member_email, "not-the-password"),
        "suspended tenant": login(module_api, suspended.slug, suspended.email, suspended.password),
    }


@pytest.mark.parametrize("kind", ["unknown tenant", "unknown user", "wrong password", "suspended tenant"])
def test_failed_login_is_401_invalid_credentials(failures, kind):
    assert failures[kind].status_code == 401
    assert failures[kind].json["error"]["code"] == "invalid_credentials"


def test_every_kind_of_failed_login_gets_the_identical_body(failures):
    bodies = {kind: response.body for kind, response in failures.items()}
    assert len(set(bodies.values())) == 1, bodies


def test_deleted_user_cannot_log_in(module_api, acme):
    user, _ = module_api.add_user(acme)
    assert module_api.call("DELETE", f"/users/{user['user_id']}", token=acme.token).status_code == 204
    response = login(module_api, acme.slug, user["email"], "member-password-1")
    assert response.status_code == 401
    assert response.json["error"]["code"] == "invalid_credentials"


# --- throttle -------------------------------------------------------------------------------

@pytest.fixture
def guessing_address(module_api, acme):
    """One address that guessed one member's password until it was stopped: (user, answers, address). Made
    for each test: failures count in fixed 15-minute windows, and a burst made for the module would be
    forgotten by a test that pytest-xdist runs in the next window (a run lasts about that long)."""
    from chalicelib.identity.login import DEFAULT_THROTTLE

    user, _ = module_api.add_user(acme)
    away_from_a_throttle_window_edge()
    with from_address(random_address()) as address:
        answers = [login(module_api, acme.slug, user["email"], "wrong-password-x")
                   for _ in range(DEFAULT_THROTTLE.per_address + 1)]
    return user, answers, address


def test_repeated_failures_from_one_address_end_in_429(guessing_address):
    from chalicelib.identity.login import DEFAULT_THROTTLE

    _, answers, _ = guessing_address
    assert [a.status_code for a in answers] == [401] * DEFAULT_THROTTLE.per_address + [429]
    assert answers[-1].json["error"]["code"] == "too_many_attempts"


def test_throttled_login_says_do_not_retry_and_when_the_window_ends(guessing_address):
    refused = guessing_address[1][-1]
    assert refused.headers["x-should-retry"] == "false" and "Retry-After" not in refused.headers
    resets_at = datetime.strptime(refused.json["error"]["resets_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert 0 < resets_at.replace(tzinfo=timezone.utc).timestamp() - time.time() <= 15 * 60


def test_the_guessing_address_is_refused_even_with_the_right_password(module_api, acme, guessing_address):
    user, _, address = guessing_address
    with from_address(address):
        assert login(module_api, acme.slug, user["email"], "member-password-1").status_code == 429


def test_the_guessing_address_is_refused_for_other_accounts_too(module_api, acme, guessing_address):
    with from_address(guessing_address[2]):
        assert login(module_api, acme.slug, acme.email, acme.password).status_code == 429


def test_the_guessed_account_still_signs_in_from_its_owners_address(module_api, acme, guessing_address):
    user, _, _ = guessing_address
    assert login(module_api, acme.slug, user["email"], "member-password-1").status_code == 200


def test_throttle_counts_unknown_emails_too(module_api, acme):
    from chalicelib.identity.login import DEFAULT_THROTTLE

    away_from_a_throttle_window_edge()
    answers = [login(module_api, acme.slug, fresh_email(), "whatever-password").status_code
               for _ in range(DEFAULT_THROTTLE.per_address + 1)]
    assert answers == [401] * DEFAULT_THROTTLE.per_address + [429]


# --- the token --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def token_parts(acme):
    return jwt.get_unverified_header(acme.token), jwt.decode(acme.token, options={"verify_signature": False})


def test_token_is_signed_with_hs256_and_names_its_key(token_parts):
    header, _ = token_parts
    assert header["alg"] == "HS256"
    assert header["kid"]


def test_token_verifies_with_the_stage_secret_under_the_named_kid(acme, token_parts):
    from chalicelib.secrets import jwt_keyring

    keyring = jwt_keyring()
    assert keyring.keys[token_parts[0]["kid"]] == TEST_JWT_SECRET
    claims = jwt.decode(acme.token, TEST_JWT_SECRET, algorithms=["HS256"], audience="tessera-api",
                        issuer="tessera-local")
    assert claims["sub"] == acme.owner_id


def test_token_names_the_user_tenant_and_role(acme, token_parts):
    claims = token_parts[1]
    assert (claims["sub"], claims["tid"], claims["role"]) == (acme.owner_id, acme.id, "owner")


def test_token_carries_issuer_audience_and_expiry(token_parts):
    claims = token_parts[1]
    assert (claims["iss"], claims["aud"]) == ("tessera-local", "tessera-api")
    assert claims["exp"] - claims["iat"] == 3600


# --- secrets stay out of responses and logs ------------------------------------------------------

@pytest.fixture
def log_lines():
    """Everything the 'tessera' logger writes, formatted exactly as it is shipped."""
    from chalicelib.logs import JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tessera")
    logger.addHandler(handler)
    yield stream
    logger.removeHandler(handler)


@pytest.fixture
def secret_flow(module_api, log_lines):
    """Sign up, fail a login, log in, create and use an API key, while capturing every log line."""
    slug, password = random_slug("sec"), f"pw-{secrets.token_hex(8)}"
    email = f"owner@{slug}.example.com"
    signup = module_api.call("POST", "/tenants", {"company_name": "Secret Co", "slug": slug, "email": email,
                                                  "password": password})
    failed = login(module_api, slug, email, password + "-wrong")
    token = login(module_api, slug, email, password).json["access_token"]
    key = module_api.call("POST", "/api-keys", {"name": "ci"}, token=token).json["key"]
    responses = [signup, failed,
                 module_api.call("GET", "/api-keys", token=token),
                 module_api.call("GET", "/users", token=token),
                 module_api.call("GET", "/me", token=key),
                 module_api.call("GET", "/tenant", token=token)]
    return {"password": password, "token": token, "key": key}, responses, log_lines.getvalue()


def test_logs_are_written_during_signup_login_and_key_creation(secret_flow):
    messages = {json.loads(line)["message"] for line in secret_flow[2].splitlines()}
    assert {"tenant created", "request"} <= messages


@pytest.mark.parametrize("secret", ["password", "token", "key"])
def test_secret_never_appears_in_logs(secret_flow, secret):
    secrets_, _, logs = secret_flow
    assert secrets_[secret] not in logs
    assert secrets_[secret].split(".")[-1] not in logs  # nor the signature / the key's secret part


@pytest.mark.parametrize("secret", ["password", "token", "key"])
def test_secret_never_appears_in_other_responses(secret_flow, secret):
    secrets_, responses, _ = secret_flow
    for response in responses:
        assert secrets_[secret].split(".")[-1] not in response.body.decode()


def test_password_hashes_never_appear_in_responses(secret_flow):
    for response in secret_flow[1]:
        assert "argon2" not in response.body.decode()
