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


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_python_json_extensions_are_not_json(module_api, tenant, constant):
    raw = '{"messages": [{"role": "user", "content": "x"}], "temperature": %s}' % constant
    r = module_api.call("POST", "/ai/chat", raw=raw.encode(), token=tenant.token)
    assert (r.status_code, r.json["error"]["code"]) == (400, "invalid_json")


@pytest.mark.parametrize("stream", [0, [], "", {}, "false", 1])
def test_stream_must_be_a_boolean(module_api, tenant, stream):
    key = module_api.api_key(tenant)["key"]
    r = module_api.call("POST", "/v1/messages", {"model": "claude-sonnet-4-6", "max_tokens": 8, "stream": stream,
                                                 "messages": [{"role": "user", "content": "x"}]}, token=key)
    assert (r.status_code, r.json["error"]["code"]) == (400, "invalid_field")


@pytest.mark.parametrize("route", ["/ai/chat", "/v1/messages"])
@pytest.mark.parametrize("max_tokens, status", [(16.0, 200), (16.5, 400)])
def test_an_integer_valued_float_is_an_integer_and_a_fraction_is_not(module_api, tenant, route, max_tokens, status):
    body = {"messages": [{"role": "user", "content": "float-probe"}], "max_tokens": max_tokens}
    token = tenant.token
    if route == "/v1/messages":
        body["model"], token = "claude-sonnet-4-6", module_api.api_key(tenant)["key"]
    r = module_api.call("POST", route, body, token=token)
    assert r.status_code == status, r.body


@pytest.mark.parametrize("limit", ["\u0661\u0660", "\uff11\uff10", "\u0967"])
def test_a_page_size_in_other_scripts_digits_is_refused(module_api, tenant, operator_token, limit):
    from urllib.parse import quote

    events = module_api.call("GET", f"/usage/events?limit={quote(limit)}", token=tenant.token)
    tenants = module_api.call("GET", f"/admin/tenants?limit={quote(limit)}", token=operator_token)
    assert [events.status_code, tenants.status_code] == [400, 400]
    assert events.json["error"]["code"] == tenants.json["error"]["code"] == "invalid_limit"


def test_a_period_in_other_scripts_digits_is_refused(module_api, tenant):
    from urllib.parse import quote

    r = module_api.call("GET", f"/usage?period={quote('2٠٢٦-01')}", token=tenant.token)
    assert (r.status_code, r.json["error"]["code"]) == (400, "invalid_period")
