"""Failover as a user meets it with `make run`'s processes: the official SDK against Tessera over HTTP,
Anthropic overloaded at the stand-in, Bedrock answering there through the SDK's own AnthropicBedrock client
(signed requests, AWS event-stream framing), the usage events over HTTP, the breaker in the stack's table."""
from __future__ import annotations

import json
import secrets
import time
import urllib.request

import anthropic
import boto3
import pytest

from test_edges_over_http import new_tenant
from test_local_stack import call, started_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def local_stack():
    """A stack of this module's own: opening the pool's breakers in the table changes what every tenant of
    a stack meets."""
    with started_stack() as running:
        yield running


MODEL = "claude-haiku-4-5"  # Bedrock: global.anthropic.claude-haiku-4-5-20251001-v1:0
HAIKU_INPUT, HAIKU_OUTPUT = 1, 5  # $ per million tokens, Anthropic's and Bedrock's global profile alike


def signed_up(api_url):
    """(owner token, API key) of a tenant signed up over HTTP."""
    _, token, key = new_tenant(api_url)
    return token, key


@pytest.fixture(scope="module")
def pool_tenant(local_stack):
    return signed_up(local_stack.api_url)


def sdk(local_stack, key):
    return anthropic.Anthropic(base_url=local_stack.api_url, api_key=key, max_retries=0)


def heard(local_stack, marker):
    with urllib.request.urlopen(f"http://127.0.0.1:{local_stack.standin_port}/_standin/requests") as response:
        found = [r for r in json.load(response) if marker in r["last_user_text"]]
    return [r for r in found if r.get("provider") != "bedrock"], [r for r in found if r.get("provider") == "bedrock"]


def event_of(local_stack, token, request_id):
    _, page = call("GET", local_stack.api_url + "/usage/events", token=token)
    [event] = [e for e in page["events"] if e["request_id"] == request_id]
    return event


def usd(bill):
    return f"{(bill['input_tokens'] * HAIKU_INPUT + bill['output_tokens'] * HAIKU_OUTPUT) / 1e6:.6f}"


def ask(text):
    return {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": text}]}


def test_an_overloaded_anthropic_is_invisible_to_a_pool_tenant_and_bedrock_is_billed_at_its_prices(
        local_stack, pool_tenant):
    token, key = pool_tenant
    marker = f"fo-whole-{secrets.token_hex(4)}"
    with sdk(local_stack, key) as client:
        raw = client.messages.with_raw_response.create(**ask(f"[[standin:529]] {marker}"))
    message = raw.parse()
    assert message.content[0].text.startswith("[stand-in] model=claude-haiku-4-5")
    to_anthropic, [bedrock_call] = heard(local_stack, marker)
    assert len(to_anthropic) == 2 and bedrock_call["auth_header"] == "sigv4"
    assert bedrock_call["model_id"] == "global.anthropic.claude-haiku-4-5-20251001-v1:0"
    event = event_of(local_stack, token, raw.headers["x-tessera-request-id"])
    assert (event["provider"], event["upstream_attempts"]) == ("bedrock", "anthropic:529,anthropic:529,bedrock:ok")
    assert event["cost_usd"] == usd(bedrock_call["usage"])


def test_a_stream_fails_over_before_its_first_byte_and_the_sdk_reads_bedrocks_events(local_stack, pool_tenant):
    token, key = pool_tenant
    marker = f"fo-stream-{secrets.token_hex(4)}"
    with sdk(local_stack, key) as client:
        with client.messages.stream(**ask(f"[[standin:529]] {marker}")) as stream:
            request_id = stream.response.headers["x-tessera-request-id"]
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
    assert text.startswith("[stand-in]") and final.stop_reason == "end_turn"
    _, [bedrock_call] = heard(local_stack, marker)
    assert bedrock_call["stream"] is True
    event = event_of(local_stack, token, request_id)
    assert (event["status"], event["provider"]) == ("ok", "bedrock")
    assert event["cost_usd"] == usd(bedrock_call["usage"])


def test_an_own_key_tenant_gets_anthropics_529_and_never_reaches_bedrock(local_stack):
    token, key = signed_up(local_stack.api_url)
    status, _ = call("PUT", local_stack.api_url + "/tenant/ai-config/api-key",
                     {"api_key": "sk-ant-own-key-failover-http-0"}, token=token)
    assert status == 200
    marker = f"fo-own-{secrets.token_hex(4)}"
    with sdk(local_stack, key) as client, pytest.raises(anthropic.OverloadedError) as failed:
        client.messages.create(**ask(f"[[standin:529]] {marker}"))
    assert failed.value.status_code == 529
    to_anthropic, to_bedrock = heard(local_stack, marker)
    assert (len(to_anthropic), len(to_bedrock)) == (2, 0)


def test_repeated_overloads_open_the_breaker_in_the_table_and_calls_go_straight_to_bedrock(local_stack, pool_tenant):
    _, key = pool_tenant
    env = local_stack.env
    table = boto3.resource("dynamodb", endpoint_url=local_stack.aws_url, region_name=env["AWS_DEFAULT_REGION"],
                           aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                           aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"]).Table(env["TESSERA_TABLE_NAME"])
    item_key = {"pk": "UPSTREAM", "sk": f"BREAKER#{MODEL}"}
    try:
        with sdk(local_stack, key) as client:
            for _ in range(3):  # two failures each: the fifth opens the breaker
                client.messages.create(**ask(f"[[standin:529]] fo-breaker-{secrets.token_hex(4)}"))
            stored = table.get_item(Key=item_key, ConsistentRead=True)["Item"]
            assert (stored["status"], int(stored["open_seconds"]), int(stored["version"])) == ("open", 30, 1)
            marker = f"fo-open-{secrets.token_hex(4)}"
            client.messages.create(**ask(marker))  # Anthropic answers now, but nothing asks it
            assert [len(found) for found in heard(local_stack, marker)] == [0, 1]
    finally:  # the breaker closed again, and this process's failures forgotten by an answered call
        table.delete_item(Key=item_key)
        time.sleep(2.1)  # breaker.CACHE_SECONDS
        with sdk(local_stack, key) as client:
            client.messages.create(**ask("fo-closed"))
