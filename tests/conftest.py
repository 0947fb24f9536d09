"""Shared fixtures: one moto server process and one Anthropic stand-in per test session.

Everything below the SDK edge is real: PynamoDB models against moto's DynamoDB
in server mode, KMS, SES and SNS on the same server. Tests isolate themselves by
creating their own tenants (random slugs), never by resetting shared state.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "dev"))

import stack  # noqa: E402  (dev/stack.py: the same functions `make run` uses)

TEST_JWT_SECRET = "test-jwt-secret-" + "x" * 32
TEST_OPERATOR_SECRET = "test-operator-secret-" + "y" * 32
POOL_KEY = "sk-test-platform-pool-key"


@pytest.fixture(scope="session")
def moto_server():
    port = stack.free_port()
    process = stack.start_moto(port)
    yield f"http://127.0.0.1:{port}", port
    os.killpg(process.pid, 15)
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def standin():
    module = stack.load_standin()
    server, url = module.serve_in_thread()
    yield url
    server.shutdown()


@pytest.fixture(scope="session", autouse=True)
def environment(moto_server, standin):
    endpoint, port = moto_server
    stack.bootstrap(endpoint, stack.stage_environment("local"))
    stack.run_app_in_process(port, standin, TEST_JWT_SECRET, TEST_OPERATOR_SECRET, POOL_KEY)
    yield


def random_address() -> str:
    return "127." + ".".join(str(secrets.randbelow(254) + 1) for _ in range(3))


@contextlib.contextmanager
def from_address(address: str):
    """Requests through chalice's local gateway come from `address`.

    chalice's local gateway gives every request the source address 127.0.0.1, where API Gateway gives each
    caller its own (`requestContext.identity.sourceIp`); the login throttle counts by that address."""
    from chalice.local import LambdaEventConverter

    before = LambdaEventConverter.LOCAL_SOURCE_IP
    LambdaEventConverter.LOCAL_SOURCE_IP = address
    try:
        yield address
    finally:
        LambdaEventConverter.LOCAL_SOURCE_IP = before


@pytest.fixture(autouse=True)
def caller_address():
    """Each test calls from its own address, so no test's failed logins count against another's."""
    with from_address(random_address()) as address:
        yield address


@pytest.fixture
def client():
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="local") as test_client:
        yield test_client


def random_slug(prefix: str = "t") -> str:
    return f"{prefix}-{secrets.token_hex(5)}"


class Api:
    """Thin JSON helpers over chalice's test client."""

    def __init__(self, client):
        self.client = client

    def call(self, method, path, body=None, token=None, headers=None, raw=None):
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        response = self.client.http.request(method, path, headers=all_headers, body=payload)
        try:
            response.json = json.loads(response.body) if response.body else None
        except ValueError:
            response.json = None
        return response

    def signup(self, slug=None, email=None, password="correct-horse-battery", name="Acme Inc"):
        slug = slug or random_slug()
        email = email or f"owner@{slug}.example.com"
        created = self.call("POST", "/tenants", {"company_name": name, "slug": slug, "email": email,
                                                 "password": password})
        assert created.status_code == 201, created.body
        token = self.login(slug, email, password)
        return Tenant(created.json, slug, email, password, token)

    def login(self, slug, email, password):
        response = self.call("POST", "/auth/login", {"tenant": slug, "email": email, "password": password})
        assert response.status_code == 200, response.body
        return response.json["access_token"]

    def add_user(self, tenant, role="member", token=None):
        email = f"{role}-{secrets.token_hex(3)}@{tenant.slug}.example.com"
        response = self.call("POST", "/users", {"email": email, "password": "member-password-1", "role": role},
                             token=token or tenant.token)
        assert response.status_code == 201, response.body
        return response.json, self.login(tenant.slug, email, "member-password-1")

    def api_key(self, tenant, name="ci"):
        response = self.call("POST", "/api-keys", {"name": name}, token=tenant.token)
        assert response.status_code == 201, response.body
        return response.json


class Tenant:
    def __init__(self, created, slug, email, password, token):
        self.created, self.slug, self.email, self.password, self.token = created, slug, email, password, token
        self.id = created["tenant_id"]
        self.owner_id = created["owner"]["user_id"]


@pytest.fixture
def api(client):
    return Api(client)


@pytest.fixture
def operator_token():
    from chalicelib.identity.tokens import issue_operator_token

    return issue_operator_token("test-operator")


@pytest.fixture(scope="module")
def module_api(environment):
    """An Api whose tenants a whole test module may share (argon2 makes each sign-up cost ~30 ms)."""
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="local") as test_client:
        yield Api(test_client)


@pytest.fixture(scope="module")
def acme(module_api):
    """A tenant a test module shares: module_api signs it up once per module."""
    return module_api.signup()


@pytest.fixture(scope="module")
def other(module_api):
    """A second tenant of the module, for checks across tenants."""
    return module_api.signup()
