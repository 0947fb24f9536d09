"""`POST /v1/messages` driven by the official anthropic SDK.

The SDK's HTTP transport is the only fake: an httpx2.MockTransport hands each
request to chalice's test client, so the SDK talks to the real routes, the
real authorizer and moto's DynamoDB."""
from __future__ import annotations

import anthropic
import httpx2
import pytest

from conftest import WritesNothing
from test_ai_gateway import last_request_for, standin_requests


def sdk_for(client, api_key, max_retries=0):
    def forward(request):
        response = client.http.request(request.method, request.url.raw_path.decode(),
                                       headers=dict(request.headers), body=request.content)
        return httpx2.Response(response.status_code, headers=response.headers, content=response.body)

    return anthropic.Anthropic(api_key=api_key, base_url="http://tessera.test", max_retries=max_retries,
                               http_client=httpx2.Client(transport=httpx2.MockTransport(forward)))


@pytest.fixture
def tenant_key(api):
    tenant = api.signup()
    return tenant, api.api_key(tenant)["key"]


def test_official_sdk_gets_a_message_with_a_tenant_api_key(client, tenant_key, standin):
    tenant, key = tenant_key
    sdk = sdk_for(client, key)
    message = sdk.messages.create(model="claude-sonnet-4-6", max_tokens=64, system="Be terse.",
                                  messages=[{"role": "user", "content": "sdk-probe"}])
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text" and "sdk-probe" in message.content[0].text
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    seen = last_request_for(standin, "sdk-probe")
    assert seen["system"].startswith("You are assisting the team at Acme Inc.")
    assert seen["system"].endswith("Be terse.")


def test_tenant_instructions_are_prepended_to_the_given_system(api, client, tenant_key, standin):
    tenant, key = tenant_key
    api.call("PUT", "/tenant/ai-config", {"custom_instructions": "Always cite sources."}, token=tenant.token)
    sdk_for(client, key).messages.create(model="claude-sonnet-4-6", max_tokens=32, system="Client system.",
                                         messages=[{"role": "user", "content": "order-probe"}])
    system = last_request_for(standin, "order-probe")["system"]
    assert system.index("Always cite sources.") < system.index("Client system.")


def test_max_tokens_is_capped_at_the_tenant_setting(client, tenant_key, standin):
    _, key = tenant_key
    sdk_for(client, key).messages.create(model="claude-sonnet-4-6", max_tokens=8000,
                                         messages=[{"role": "user", "content": "cap-probe"}])
    assert last_request_for(standin, "cap-probe")["max_tokens"] == 1024


def test_streaming_is_refused_in_anthropic_error_shape(client, tenant_key):
    _, key = tenant_key
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk_for(client, key).messages.create(model="claude-sonnet-4-6", max_tokens=10, stream=True,
                                             messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert caught.value.response.json()["error"]["code"] == "streaming_not_supported"


@pytest.mark.parametrize("model", ["claude-2.1", "claude-opus-4-6"])  # unknown; Opus needs the pro plan
def test_model_outside_the_allow_list_is_a_bad_request_that_writes_nothing(client, tenant_key, standin, model):
    tenant, key = tenant_key
    before = len(standin_requests(standin))
    with WritesNothing(tenant.id), pytest.raises(anthropic.BadRequestError) as caught:
        sdk_for(client, key).messages.create(model=model, max_tokens=10,
                                             messages=[{"role": "user", "content": "hi"}])
    assert caught.value.response.json()["error"]["code"] == "invalid_model"
    assert len(standin_requests(standin)) == before


def test_bad_key_raises_the_sdks_auth_error(client):
    with pytest.raises(anthropic.AuthenticationError):
        sdk_for(client, "tsk_ten_nope.key_nope.secret").messages.create(
            model="claude-sonnet-4-6", max_tokens=10, messages=[{"role": "user", "content": "hi"}])


def test_upstream_rate_limit_reaches_the_sdk_as_rate_limit_error(client, tenant_key):
    _, key = tenant_key
    with pytest.raises(anthropic.RateLimitError) as caught:
        sdk_for(client, key).messages.create(model="claude-sonnet-4-6", max_tokens=10,
                                             messages=[{"role": "user", "content": "[[standin:429]]"}])
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.body["error"]["type"] == "rate_limit_error"


def test_messages_count_as_basic_chat_and_cost_header_matches_usage(api, client, tenant_key):
    tenant, key = tenant_key
    raw = sdk_for(client, key).messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=32, messages=[{"role": "user", "content": "metered"}])
    cost = raw.headers["x-tessera-cost-usd"]
    usage = api.call("GET", "/usage", token=tenant.token).json
    assert usage["by_feature"]["basic_chat"]["requests"] == 1
    assert usage["total_cost_usd"] == cost
