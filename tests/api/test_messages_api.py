"""The Messages API (`/v1/messages`, `/v1/messages/count_tokens`, `/v1/models`) driven by the official SDK.

The SDK's HTTP transport is the only fake: an httpx2.MockTransport hands each request to chalice's test
client, so the SDK talks to the real routes, the real authorizer and moto's DynamoDB, and the app talks to
the stand-in over HTTP."""
from __future__ import annotations

import json

import anthropic
import httpx2
import pytest

from conftest import WritesNothing
from content_blocks import WEATHER_TOOL, image, png
from test_ai_gateway import forget_standin_requests, last_request_for, standin_requests

SONNET = "claude-sonnet-4-6"


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


@pytest.fixture
def sdk(client, tenant_key):
    return sdk_for(client, tenant_key[1])


def usage_of(api, tenant):
    return api.call("GET", "/usage", token=tenant.token).json


# --- plain messages and the tenant's rules ------------------------------------------------------

def test_official_sdk_gets_a_message_with_a_tenant_api_key(sdk, standin):
    message = sdk.messages.create(model=SONNET, max_tokens=64, system="Be terse.",
                                  messages=[{"role": "user", "content": "sdk-probe"}])
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text" and "sdk-probe" in message.content[0].text
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    seen = last_request_for(standin, "sdk-probe")
    assert seen["system"].startswith("You are assisting the team at Acme Inc.")
    assert seen["system"].endswith("Be terse.")


def test_tenant_instructions_are_prepended_to_the_given_system(api, sdk, tenant_key, standin):
    api.call("PUT", "/tenant/ai-config", {"custom_instructions": "Always cite sources."}, token=tenant_key[0].token)
    sdk.messages.create(model=SONNET, max_tokens=32, system="Client system.",
                        messages=[{"role": "user", "content": "order-probe"}])
    system = last_request_for(standin, "order-probe")["system"]
    assert system.index("Always cite sources.") < system.index("Client system.")


def test_system_blocks_keep_their_cache_control_after_the_tenants_block(sdk, standin):
    blocks = [{"type": "text", "text": "Cached rules.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    sdk.messages.create(model=SONNET, max_tokens=32, system=blocks,
                        messages=[{"role": "user", "content": "blocks-probe"}])
    seen = last_request_for(standin, "blocks-probe")
    assert seen["system"].startswith("You are assisting the team at Acme Inc.")
    assert seen["system"].endswith("Cached rules.")


def test_max_tokens_is_served_as_asked_up_to_the_plans_cap(sdk, standin):
    # a new tenant's own setting is 1,024: a default for calls that do not say, never a silent ceiling
    sdk.messages.create(model=SONNET, max_tokens=2048, messages=[{"role": "user", "content": "cap-probe"}])
    assert last_request_for(standin, "cap-probe")["max_tokens"] == 2048


def test_max_tokens_above_the_plans_cap_is_refused_naming_the_cap(client, tenant_key, standin):
    tenant, key = tenant_key
    forget_standin_requests(standin)
    with WritesNothing(tenant.id), pytest.raises(anthropic.BadRequestError) as caught:
        sdk_for(client, key).messages.create(model=SONNET, max_tokens=2049,
                                             messages=[{"role": "user", "content": "hi"}])
    error = caught.value.body["error"]
    assert (error["code"], error["max_tokens_cap"]) == ("max_tokens_above_cap", 2048)
    assert error["message"] == "max_tokens: 2049 is above the free plan's cap of 2048. Ask for 2048 or fewer."
    assert standin_requests(standin) == []  # nothing reached upstream


def test_an_omitted_temperature_takes_anthropics_default_not_the_tenants(sdk, standin):
    sdk.messages.create(model=SONNET, max_tokens=16, messages=[{"role": "user", "content": "default-probe"}])
    assert last_request_for(standin, "default-probe")["temperature"] is None  # not sent: upstream's default, 1.0


def test_an_omitted_temperature_takes_the_one_an_admin_chose(api, sdk, tenant_key, standin):
    tenant, _ = tenant_key
    assert api.call("PUT", "/tenant/ai-config", {"temperature": 0.3}, token=tenant.token).status_code == 200
    sdk.messages.create(model=SONNET, max_tokens=16, messages=[{"role": "user", "content": "chosen-probe"}])
    assert last_request_for(standin, "chosen-probe")["temperature"] == 0.3
    sdk.messages.create(model=SONNET, max_tokens=16, extra_body={"temperature": 0.9},
                        messages=[{"role": "user", "content": "given-probe"}])
    assert last_request_for(standin, "given-probe")["temperature"] == 0.9


@pytest.mark.parametrize("model", ["claude-2.1", "claude-opus-4-6"])  # unknown; Opus needs the pro plan
def test_model_outside_the_allow_list_is_a_404_not_found_that_writes_nothing(client, tenant_key, standin, model):
    tenant, key = tenant_key
    forget_standin_requests(standin)
    with WritesNothing(tenant.id), pytest.raises(anthropic.NotFoundError) as caught:
        sdk_for(client, key).messages.create(model=model, max_tokens=10,
                                             messages=[{"role": "user", "content": "hi"}])
    error = caught.value.response.json()["error"]
    assert (error["type"], error["code"]) == ("not_found_error", "model_not_found")
    assert error["message"].startswith(f"model: {model} ")
    assert standin_requests(standin) == []  # nothing reached upstream


def test_bad_key_raises_the_sdks_auth_error_in_anthropics_shape(client):
    with pytest.raises(anthropic.AuthenticationError) as caught:
        sdk_for(client, "tsk_ten_nope.key_nope.secret").messages.create(
            model=SONNET, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "authentication_error"


def test_upstream_rate_limit_reaches_the_sdk_as_rate_limit_error(sdk):
    with pytest.raises(anthropic.RateLimitError) as caught:
        sdk.messages.create(model=SONNET, max_tokens=10, messages=[{"role": "user", "content": "[[standin:429]]"}])
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.body["error"]["type"] == "rate_limit_error"


def test_messages_count_as_basic_chat_and_cost_header_matches_usage(api, sdk, tenant_key):
    raw = sdk.messages.with_raw_response.create(model=SONNET, max_tokens=32,
                                                messages=[{"role": "user", "content": "metered"}])
    usage = usage_of(api, tenant_key[0])
    assert usage["by_feature"]["basic_chat"]["requests"] == 1
    assert usage["total_cost_usd"] == raw.headers["x-tessera-cost-usd"]


# --- everything else passes through -------------------------------------------------------------

def test_sampling_and_output_fields_reach_the_model_unchanged(sdk, standin):
    sdk.messages.create(model=SONNET, max_tokens=64, messages=[{"role": "user", "content": "fields-probe"}],
                        metadata={"user_id": "u-1"}, service_tier="standard_only", stop_sequences=["END"],
                        cache_control={"type": "ephemeral"}, extra_body={"top_p": 0.9, "top_k": 40})
    assert last_request_for(standin, "fields-probe")["params"] == {
        "top_p": 0.9, "top_k": 40, "stop_sequences": ["END"], "metadata": {"user_id": "u-1"},
        "service_tier": "standard_only", "cache_control": {"type": "ephemeral"}}


def test_a_stop_sequence_ends_the_reply_where_it_appears(sdk):
    message = sdk.messages.create(model=SONNET, max_tokens=64, stop_sequences=["HALT"],
                                  messages=[{"role": "user", "content": "say this HALT and not this"}])
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "HALT"
    assert message.content[0].text.endswith("say this ")


def test_a_tool_round_trip_goes_through_unchanged(sdk, standin):
    tools = [WEATHER_TOOL]
    ask = [{"role": "user", "content": "tool-probe: weather in Paris?"}]
    first = sdk.messages.create(model=SONNET, max_tokens=256, tools=tools, tool_choice={"type": "auto"}, messages=ask)
    assert first.stop_reason == "tool_use"
    call = next(block for block in first.content if block.type == "tool_use")
    assert (call.name, call.input) == ("get_weather", {"city": "standin"})
    seen = last_request_for(standin, "tool-probe")
    assert seen["tools"] == ["get_weather"] and seen["params"]["tool_choice"] == {"type": "auto"}

    turns = ask + [{"role": "assistant", "content": [block.to_dict() for block in first.content]},
                   {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                                 "content": "18 degrees and sunny"}]}]
    second = sdk.messages.create(model=SONNET, max_tokens=256, tools=tools, messages=turns)
    assert second.stop_reason == "end_turn"
    assert f"tool_result({call.id}): 18 degrees and sunny" in second.content[0].text
    assert last_request_for(standin, "18 degrees")["block_types"] == ["tool_result", "tool_use"]


def test_image_blocks_reach_the_model_and_are_billed_by_size(api, sdk, tenant_key, standin):
    small = sdk.messages.create(model=SONNET, max_tokens=32, messages=[{"role": "user", "content": [
        image(png(100, 100)), {"type": "text", "text": "image-probe small"}]}])
    large = sdk.messages.create(model=SONNET, max_tokens=32, messages=[{"role": "user", "content": [
        image(png(4000, 3000)), image(url="https://example.com/cat.png"), {"type": "text", "text": "image-probe"}]}])
    assert last_request_for(standin, "image-probe small")["block_types"] == ["image", "text"]
    # 100 x 100 px: 4 x 4 patches + 4; the tenant's system text (39 bytes) 10; "image-probe small" 5
    assert small.usage.input_tokens == 20 + 10 + 5
    # 4000 x 3000 px and the URL image each resize to about their 1,568-patch budget
    assert large.usage.input_tokens > 3000
    assert usage_of(api, tenant_key[0])["by_feature"]["basic_chat"]["requests"] == 2


def test_thinking_blocks_come_back_unchanged(sdk):
    message = sdk.messages.create(model=SONNET, max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 1024},
                                  messages=[{"role": "user", "content": "think-probe"}])
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].signature.startswith("sig_standin_")


def test_extended_thinking_works_on_a_new_tenant(sdk, standin):
    message = sdk.messages.create(model=SONNET, max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024},
                                  messages=[{"role": "user", "content": "think-probe"}])
    assert message.content[0].type == "thinking"
    seen = last_request_for(standin, "think-probe")
    assert (seen["max_tokens"], seen["params"]["thinking"]) == (2048, {"type": "enabled", "budget_tokens": 1024})


def test_a_thinking_budget_at_or_above_max_tokens_is_refused_naming_both(sdk, standin):
    forget_standin_requests(standin)
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.create(model=SONNET, max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 2000},
                            messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["error"]["message"] == (
        "thinking.budget_tokens (2000) must be less than max_tokens (2000).")
    assert standin_requests(standin) == []  # nothing reached upstream


@pytest.mark.parametrize("extra,code", [
    ({"inference_geo": "us"}, "unsupported_field"),
    ({"speed": "ludicrous"}, "unsupported_field"),
    ({"container": "container_1"}, "unsupported_field"),
    ({"mcp_servers": [{"type": "url", "url": "https://mcp.example.com", "name": "x"}]}, "unsupported_field"),
    ({"context_management": {"edits": [{"type": "compact_20260112"}]}}, "unsupported_field"),
    ({"a_field_from_next_year": True}, "unknown_field"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "unsupported_tool"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]},
     "unsupported_block"),
    ({"messages": [{"role": "user", "content": [{"type": "container_upload", "file_id": "f"}]}]},
     "unsupported_block"),
    ({"stream": 0}, "invalid_field"),
])
def test_what_a_budget_cannot_bound_is_refused_before_anything_is_sent(client, tenant_key, standin, extra, code):
    forget_standin_requests(standin)
    body = {"model": SONNET, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}], **extra}
    response = client.http.request("POST", "/v1/messages", body=json.dumps(body).encode(),
                                   headers={"Authorization": f"Bearer {tenant_key[1]}",
                                            "Content-Type": "application/json"})
    assert response.status_code == 400
    error = json.loads(response.body)["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", code)
    named = next(iter(extra))
    assert named in error["message"] or code in ("unsupported_tool", "unsupported_block", "invalid_field")
    assert standin_requests(standin) == []  # nothing reached upstream


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
@pytest.mark.parametrize("extra,code", [
    ({"tool_choice": {"type": {}}}, "invalid_field"),
    ({"tool_choice": {}}, "invalid_field"),
    ({"thinking": {"type": ["enabled"]}}, "invalid_field"),
    ({"messages": [{"role": "user", "content": [{"type": {"text": "hi"}, "text": "hi"}]}]}, "unsupported_block"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": ["base64"]}}]}]},
     "invalid_field"),
])
def test_a_type_that_is_not_a_string_is_a_400_not_a_500(client, tenant_key, standin, path, extra, code):
    forget_standin_requests(standin)
    body = {"model": SONNET, "messages": [{"role": "user", "content": "hi"}], **extra}
    if path == "/v1/messages":
        body["max_tokens"] = 16
    response = client.http.request("POST", path, body=json.dumps(body).encode(),
                                   headers={"Authorization": f"Bearer {tenant_key[1]}",
                                            "Content-Type": "application/json"})
    assert response.status_code == 400, response.body
    error = json.loads(response.body)["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", code)
    assert standin_requests(standin) == []  # nothing reached upstream


# --- streaming ----------------------------------------------------------------------------------

def test_messages_stream_yields_text_events_and_settles_the_final_usage(api, sdk, tenant_key):
    with sdk.messages.stream(model=SONNET, max_tokens=64,
                             messages=[{"role": "user", "content": "stream-probe"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "stream-probe" in text and final.content[0].text == text
    usage = usage_of(api, tenant_key[0])
    assert usage["by_feature"]["basic_chat"]["requests"] == 1
    events = api.call("GET", "/usage/events", token=tenant_key[0].token).json["events"]
    assert (events[0]["input_tokens"], events[0]["output_tokens"]) == (final.usage.input_tokens,
                                                                       final.usage.output_tokens)


def test_raw_stream_carries_ping_and_every_event_type(sdk):
    with sdk.messages.with_streaming_response.create(model=SONNET, max_tokens=64, stream=True,
                                                     messages=[{"role": "user", "content": "raw-probe"}]) as raw:
        body = raw.read().decode()
    names = [line.split(": ", 1)[1] for line in body.splitlines() if line.startswith("event: ")]
    assert names[:2] == ["message_start", "ping"] and names[-2:] == ["message_delta", "message_stop"]
    assert {"content_block_start", "content_block_delta", "content_block_stop"} <= set(names)
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.headers["x-tessera-cost-usd"]


def test_a_streamed_tool_call_arrives_as_input_json_deltas(sdk):
    events = list(sdk.messages.create(model=SONNET, max_tokens=256, stream=True, tools=[WEATHER_TOOL],
                                      tool_choice={"type": "tool", "name": "get_weather"},
                                      messages=[{"role": "user", "content": "streamed-tool-probe"}]))
    partial = "".join(e.delta.partial_json for e in events
                      if e.type == "content_block_delta" and e.delta.type == "input_json_delta")
    assert json.loads(partial) == {"city": "standin"}
    assert [e.delta.stop_reason for e in events if e.type == "message_delta"] == ["tool_use"]


def test_a_streamed_thinking_block_arrives_as_thinking_and_signature_deltas(sdk):
    with sdk.messages.stream(model=SONNET, max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 1024},
                             messages=[{"role": "user", "content": "stream-think"}]) as stream:
        kinds = {event.delta.type for event in stream if event.type == "content_block_delta"}
        final = stream.get_final_message()
    assert {"thinking_delta", "signature_delta", "text_delta"} <= kinds
    assert final.content[0].type == "thinking" and final.content[0].signature.startswith("sig_standin_")


def test_an_upstream_error_mid_stream_reaches_the_client_and_the_call_is_settled_at_its_bound(api, sdk, tenant_key):
    with pytest.raises(anthropic.APIStatusError) as caught:
        with sdk.messages.stream(model=SONNET, max_tokens=64,
                                 messages=[{"role": "user", "content": "[[standin:stream_error]]"}]) as stream:
            for _ in stream:
                pass
    assert caught.value.body["error"]["type"] == "overloaded_error"
    event = api.call("GET", "/usage/events", token=tenant_key[0].token).json["events"][0]
    assert event["status"] == "incomplete" and event["output_tokens"] == 64


def test_ai_chat_streams_when_asked(api, tenant_key):
    response = api.call("POST", "/ai/chat", {"messages": [{"role": "user", "content": "chat-stream"}], "stream": True},
                        token=tenant_key[0].token)
    assert response.status_code == 200 and response.headers["Content-Type"] == "text/event-stream"
    body = response.body.decode()
    data = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]
    assert body.startswith("event: message_start") and data[-1] == {"type": "message_stop"}
    assert "chat-stream" in "".join(d["delta"].get("text", "") for d in data if d["type"] == "content_block_delta")
    assert usage_of(api, tenant_key[0])["total_cost_usd"] == response.headers["x-tessera-cost-usd"]


# --- token counting and models ------------------------------------------------------------------

def test_count_tokens_includes_the_tenants_system_text(api, sdk, tenant_key):
    api.call("PUT", "/tenant/ai-config", {"inject_context": False}, token=tenant_key[0].token)
    bare = sdk.messages.count_tokens(model=SONNET, messages=[{"role": "user", "content": "count me"}]).input_tokens
    api.call("PUT", "/tenant/ai-config", {"inject_context": True, "custom_instructions": "x" * 40},
             token=tenant_key[0].token)
    with_tenant = sdk.messages.count_tokens(model=SONNET, messages=[{"role": "user", "content": "count me"}])
    # "count me" is 2 tokens; the tenant's text is "You are assisting the team at Acme Inc.\n\n" + 40 x "x"
    assert bare == 2
    assert with_tenant.input_tokens == 2 + -(-len("You are assisting the team at Acme Inc.\n\n" + "x" * 40) // 4)


def test_count_tokens_is_not_billed_and_needs_no_quota(api, sdk, tenant_key, operator_token):
    tenant = tenant_key[0]
    api.call("PUT", f"/admin/tenants/{tenant.id}/limits", {"features": {"basic_chat": 0}}, token=operator_token)
    with pytest.raises(anthropic.RateLimitError):
        sdk.messages.create(model=SONNET, max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    counted = sdk.messages.count_tokens(model=SONNET, messages=[{"role": "user", "content": "hi"}])
    assert counted.input_tokens > 0
    assert usage_of(api, tenant)["total_cost_usd"] == "0.000000"
    assert api.call("GET", "/usage/events", token=tenant.token).json["events"] == []


def test_models_lists_the_plans_models_in_anthropics_shape_with_pages(sdk):
    listed = sdk.models.list()
    assert [m.id for m in listed.data] == ["claude-sonnet-4-6", "claude-haiku-4-5"]
    assert listed.has_more is False and listed.first_id == "claude-sonnet-4-6"
    first = sdk.models.list(limit=1)
    assert [m.id for m in first.data] == ["claude-sonnet-4-6"] and first.has_more is True
    assert [m.id for m in first.get_next_page().data] == ["claude-haiku-4-5"]
    assert [m.id for m in sdk.models.list()] == ["claude-sonnet-4-6", "claude-haiku-4-5"]  # auto-paging


def test_a_model_is_retrieved_only_if_the_plan_has_it(sdk):
    model = sdk.models.retrieve("claude-haiku-4-5")
    assert (model.type, model.id, model.display_name) == ("model", "claude-haiku-4-5", "Claude Haiku 4.5")
    with pytest.raises(anthropic.NotFoundError) as caught:
        sdk.models.retrieve("claude-opus-4-8")
    assert caught.value.body["error"]["type"] == "not_found_error"


# --- Claude Code's requests and the contract table (docs/api-contract.md) ---------------------------

CLAUDE_CODE_BETAS = "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,effort-2025-11-24"


@pytest.fixture
def pro_sdk(api, client, operator_token):
    tenant = api.signup()
    assert api.call("PUT", f"/admin/tenants/{tenant.id}/plan", {"plan": "pro"}, token=operator_token).status_code == 200
    return tenant, sdk_for(client, api.api_key(tenant)["key"])


def test_a_claude_code_shaped_request_passes_with_its_betas_forwarded(sdk, standin):
    """What Claude Code 2.1.332 sends (docs/api-contract.md): a system-role message with its own
    output_config, context_management, output_config, adaptive thinking, deferred tools, the betas header."""
    sdk.messages.create(
        model=SONNET, max_tokens=64, extra_headers={"anthropic-beta": CLAUDE_CODE_BETAS},
        messages=[{"role": "user", "content": [{"type": "text", "text": "cc-probe"}]},
                  {"role": "system", "content": [{"type": "text", "text": "# Environment"}],
                   "output_config": {"effort": "medium"}}],
        thinking={"type": "adaptive", "display": "omitted"},
        tools=[{**WEATHER_TOOL, "defer_loading": True}],
        extra_body={"context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
                    "output_config": {"effort": "medium"}, "metadata": {"user_id": "{\"session_id\":\"s\"}"}})
    seen = last_request_for(standin, "cc-probe")
    assert seen["betas"] == CLAUDE_CODE_BETAS.split(",")
    assert seen["roles"] == ["user", "system"]
    assert seen["params"]["context_management"] == {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}
    assert seen["params"]["output_config"] == {"effort": "medium"}


@pytest.mark.parametrize("beta", ["files-api-2025-04-14", "mcp-client-2025-11-20", "code-execution-2025-08-25"])
def test_a_beta_the_table_refuses_is_refused_by_name_before_anything_is_sent(sdk, standin, beta):
    forget_standin_requests(standin)
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.create(model=SONNET, max_tokens=16, extra_headers={"anthropic-beta": f"effort-2025-11-24,{beta}"},
                            messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["error"]["code"] == "unsupported_beta" and beta in caught.value.body["error"]["message"]
    assert standin_requests(standin) == []  # nothing reached upstream


def test_an_unknown_beta_is_forwarded(sdk, standin):
    sdk.messages.create(model=SONNET, max_tokens=16, extra_headers={"anthropic-beta": "a-beta-from-2027-01-01"},
                        messages=[{"role": "user", "content": "new-beta-probe"}])
    assert last_request_for(standin, "new-beta-probe")["betas"] == ["a-beta-from-2027-01-01"]


def test_fast_mode_is_reserved_and_billed_at_the_fast_rates(api, pro_sdk, standin):
    """Published fast-mode rates (tests/published.py): $30 input, $150 output per million tokens."""
    tenant, sdk = pro_sdk
    raw = sdk.messages.with_raw_response.create(model="claude-opus-5-5", max_tokens=32, extra_body={"speed": "fast"},
                                                messages=[{"role": "user", "content": "fast-probe"}])
    usage = last_request_for(standin, "fast-probe")["usage"]
    assert usage["speed"] == "fast"
    expected = usage["input_tokens"] * 30 + usage["output_tokens"] * 150
    assert raw.headers["x-tessera-cost-usd"] == f"{expected / 1_000_000:.6f}"
    assert usage_of(api, tenant)["total_cost_usd"] == f"{expected / 1_000_000:.6f}"
