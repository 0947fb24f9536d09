"""Odd but well-formed input gets a 4xx in the error envelope, never a 500."""
import base64
import json

import pytest

from conftest import WritesNothing

LONE_SURROGATE = '"hi \\ud800"'


@pytest.fixture(scope="module")
def tenant(module_api):
    return module_api.signup()


@pytest.mark.parametrize("method,path,raw", [
    ("POST", "/ai/chat", '{"messages": [{"role": "user", "content": %s}]}' % LONE_SURROGATE),
    ("POST", "/api-keys", '{"name": %s}' % LONE_SURROGATE),
    ("PATCH", "/tenant", '{"name": %s}' % LONE_SURROGATE),
    ("POST", "/ai/chat", "[" * 100_000 + "]" * 100_000),
])
def test_unencodable_or_absurdly_nested_json_is_400(module_api, tenant, method, path, raw):
    with WritesNothing(tenant.id):
        r = module_api.call(method, path, raw=raw.encode(), token=tenant.token)
    assert r.status_code == 400 and r.json["error"]["code"] == "invalid_json"


def test_sign_up_with_a_lone_surrogate_is_400_and_writes_nothing(module_api):
    raw = ('{"company_name": %s, "slug": "surrogate-co", "email": "a@b.example.com", '
           '"password": "long-enough-password"}' % LONE_SURROGATE)
    with WritesNothing():
        r = module_api.call("POST", "/tenants", raw=raw.encode())
    assert r.status_code == 400 and r.json["error"]["code"] == "invalid_json"


@pytest.mark.parametrize("period", ["0000-01", "9999-12", "1999-12"])
@pytest.mark.parametrize("path", ["/usage", "/usage/events"])
def test_periods_outside_the_supported_years_are_400(module_api, tenant, path, period):
    r = module_api.call("GET", f"{path}?period={period}", token=tenant.token)
    assert r.status_code == 400 and r.json["error"]["code"] == "invalid_period"


def cursor(key):
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


@pytest.mark.parametrize("shape", [
    lambda pk: {"pk": {"S": pk}},
    lambda pk: {"pk": {"S": pk}, "sk": {"N": "1"}},
    lambda pk: {"pk": {"S": pk}, "sk": "EVENT#x"},
    lambda pk: {"pk": {"S": pk}, "sk": {"S": "USER#x"}},
    lambda pk: ["pk"],
])
def test_malformed_cursors_are_400(module_api, tenant, shape):
    r = module_api.call("GET", f"/usage/events?cursor={cursor(shape(f'TENANT#{tenant.id}'))}", token=tenant.token)
    assert r.status_code == 400 and r.json["error"]["code"] == "invalid_cursor"
