"""What a refusal tells a client about retrying: refusals no retry cures soon say `x-should-retry: false`,
carry no Retry-After and name when things change; a per-minute limit keeps its Retry-After."""
from __future__ import annotations

import time

import anthropic
import boto3
import pytest

from chalicelib.periods import current_period, isoformat, period_end
from test_messages_api import sdk_for

CHAT = {"messages": [{"role": "user", "content": "retry advice"}]}
MESSAGE = {"model": "claude-sonnet-4-6", "max_tokens": 16, "messages": [{"role": "user", "content": "retry advice"}]}


@pytest.fixture
def tenant(api):
    return api.signup()


def limit(api, operator_token, tenant, body):
    r = api.call("PUT", f"/admin/tenants/{tenant.id}/limits", body, token=operator_token)
    assert r.status_code == 200, r.body


def month_end():
    return isoformat(period_end(current_period()))


def says_do_not_retry(response):
    return response.headers.get("x-should-retry") == "false" and "Retry-After" not in response.headers


def test_used_up_monthly_quota_says_do_not_retry_and_when_it_resets(api, tenant, operator_token):
    limit(api, operator_token, tenant, {"features": {"basic_chat": 0}})
    r = api.call("POST", "/ai/chat", CHAT, token=tenant.token)
    assert (r.status_code, r.json["error"]["code"]) == (429, "feature_limit_reached")
    assert says_do_not_retry(r), r.headers
    assert r.json["error"]["resets_at"] == month_end()


def test_hard_budget_refusal_says_do_not_retry_and_when_it_resets(api, tenant):
    api.call("PATCH", "/tenant", {"monthly_budget_usd": "0.000001", "budget_hard_limit": True}, token=tenant.token)
    r = api.call("POST", "/ai/chat", CHAT, token=tenant.token)
    assert (r.status_code, r.json["error"]["code"]) == (402, "budget_exceeded")
    assert says_do_not_retry(r), r.headers
    assert r.json["error"]["resets_at"] == month_end()


def test_feature_not_in_plan_says_do_not_retry(api, tenant):
    r = api.call("POST", "/ai/code-review", {"code": "print(1)"}, token=tenant.token)
    assert (r.status_code, r.json["error"]["code"]) == (403, "feature_not_in_plan")
    assert says_do_not_retry(r), r.headers


def test_suspended_tenants_credential_says_do_not_retry(api, tenant, operator_token):
    key = api.api_key(tenant)["key"]
    assert api.call("POST", f"/admin/tenants/{tenant.id}/suspend", token=operator_token).status_code == 200
    r = api.call("GET", "/me", token=key)
    assert r.status_code == 401
    assert says_do_not_retry(r), r.headers


def test_per_minute_limit_keeps_a_retry_after_within_the_minute(api, tenant, operator_token):
    limit(api, operator_token, tenant, {"requests_per_minute": 1})
    answers = [api.call("POST", "/ai/chat", CHAT, token=tenant.token) for _ in range(2)]
    if answers[0].status_code == 429:  # the first call met a minute's edge; the next minute admits it
        answers = [api.call("POST", "/ai/chat", CHAT, token=tenant.token) for _ in range(2)]
    refused = answers[1]
    assert (refused.status_code, refused.json["error"]["code"]) == (429, "rate_limited")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "x-should-retry" not in refused.headers


def test_anthropic_shaped_refusal_carries_the_reset_time(api, tenant, operator_token):
    key = api.api_key(tenant)["key"]
    limit(api, operator_token, tenant, {"features": {"basic_chat": 0}})
    r = api.call("POST", "/v1/messages", MESSAGE, token=key)
    assert r.status_code == 429 and says_do_not_retry(r), r.headers
    assert r.json["error"]["type"] == "rate_limit_error" and r.json["error"]["resets_at"] == month_end()


class Counting:
    """The SDK's requests, counted as they leave it."""

    def __init__(self, sdk):
        self.sdk, self.requests = sdk, 0
        sdk._client.event_hooks["request"].append(self._count)

    def _count(self, request):
        self.requests += 1


def use_up_the_quota(api, operator_token, tenant):
    limit(api, operator_token, tenant, {"features": {"basic_chat": 0}})


def store_an_undecryptable_own_key(api, operator_token, tenant):
    boto3.client("dynamodb").update_item(
        TableName="tessera-local", Key={"pk": {"S": f"TENANT#{tenant.id}"}, "sk": {"S": "AICONFIG"}},
        UpdateExpression="SET api_key_ciphertext = :c", ExpressionAttributeValues={":c": {"B": b"not-kms-output"}})


@pytest.mark.parametrize("refuse,expected", [
    (use_up_the_quota, anthropic.RateLimitError),
    (store_an_undecryptable_own_key, anthropic.InternalServerError),
])
def test_a_default_sdk_client_gets_its_error_at_once_without_retrying(client, api, tenant, operator_token,
                                                                      refuse, expected):
    key = api.api_key(tenant)["key"]
    refuse(api, operator_token, tenant)
    sdk = Counting(sdk_for(client, key, max_retries=2))  # the SDK's default
    started = time.monotonic()
    with pytest.raises(expected):
        sdk.sdk.messages.create(**MESSAGE)
    assert time.monotonic() - started < 2
    assert sdk.requests == 1
