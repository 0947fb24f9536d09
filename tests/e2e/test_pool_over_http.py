"""The platform pool as users meet it with `make run`'s processes: the official SDK against Tessera over HTTP,
the pool's ceilings set low for two models in this module's own stack, the stand-in recording what reached it.
Haiku's minute is flooded by a free tenant; Sonnet's shows the true-up. Each test starts inside a minute with
room for it (the pool's window is the wall-clock minute)."""
from __future__ import annotations

import json
import math
import secrets
import time
import urllib.request

import anthropic
import pytest

from dev.stack import local_stack as stack
from test_edges_over_http import new_tenant
from test_local_stack import call, developer_shell, free_ports, stop_and_check

pytestmark = pytest.mark.e2e

FLOODED, TRUED_UP = "claude-haiku-4-5", "claude-sonnet-4-6"
# requests / input tokens / output tokens a minute. Haiku: free may borrow up to 85 % of 250 output tokens
# (212) less enterprise's untouched 20 % reserve (50) = 162, so three calls of max_tokens 50 (each answer cut
# at 50: the stand-in's echo is longer) and no fourth; enterprise's guaranteed half (125) still holds two.
# Sonnet: free may borrow 85 % of 1,000 less 200 = 650, where eight calls of max_tokens 200 (1,600) fit only
# if each gives back what its short answer left unused.
# Opus: configured far above the organisation's real limit, which the stand-in enforces (600 output tokens a
# minute) and reports in its rate-limit headers; corrected to 600, pro may borrow 85 % less enterprise's 20 %
# = 510 - 120 = 390: seven calls of 50. Uncorrected, the twelfth would pass and the thirteenth meet upstream's 429.
CORRECTED = "claude-opus-4-8"
CEILINGS = f"{FLOODED}=1000/1000000/250;{TRUED_UP}=1000/1000000/1000;{CORRECTED}=1000/1000000/100000"
ORG_LIMITS = f"{CORRECTED}=1000/1000000/600"
FLOOD_MAX_TOKENS, MAX_TOKENS = 50, 200


@pytest.fixture(scope="module")
def pool_stack():
    # the app and the stand-in inherit these, as from a developer's shell
    shell = developer_shell(TESSERA_POOL_CEILINGS=CEILINGS, STANDIN_ORG_LIMITS=ORG_LIMITS)
    running = stack.LocalStack(*free_ports(3), environ=shell).start()
    try:
        yield running
    finally:
        stop_and_check(running)


def on_plan(pool_stack, plan):
    tenant_id, token, key = new_tenant(pool_stack.api_url)
    if plan != "free":
        status, body = call("PUT", f"{pool_stack.api_url}/admin/tenants/{tenant_id}/plan", {"plan": plan},
                            token=stack.operator_token(pool_stack.env))
        assert status == 200, body
    return token, key


def fresh_minute(seconds_needed=20):
    """Wait for a minute with room for the test: the pool's window is the wall-clock minute."""
    left = 60 - time.time() % 60
    if left < seconds_needed:
        time.sleep(left + 0.5)


def heard(pool_stack, marker):
    with urllib.request.urlopen(f"http://127.0.0.1:{pool_stack.standin_port}/_standin/requests") as response:
        return [r for r in json.load(response) if marker in r["last_user_text"]]


def ask(client, model, text, max_tokens=MAX_TOKENS):
    return client.messages.with_raw_response.create(model=model, max_tokens=max_tokens,
                                                    messages=[{"role": "user", "content": text}])


def sdk(pool_stack, key):
    return anthropic.Anthropic(base_url=pool_stack.api_url, api_key=key, max_retries=0)


def test_a_flooding_free_tenant_is_refused_before_upstream_while_enterprise_calls_pass(pool_stack):
    free, enterprise = on_plan(pool_stack, "free"), on_plan(pool_stack, "enterprise")
    marker = f"flood-{secrets.token_hex(4)}"
    long_text = f"{marker} " + "x" * 300  # echoed past max_tokens: each answer uses all its 50
    fresh_minute()
    passed, refused = 0, []
    with sdk(pool_stack, free[1]) as client:
        for _ in range(6):
            sent_at = time.time()
            try:
                assert ask(client, FLOODED, long_text, FLOOD_MAX_TOKENS).parse().usage.output_tokens == 50
                passed += 1
            except anthropic.RateLimitError as error:
                refused.append((error, sent_at, time.time()))
    assert passed == 3 and len(refused) == 3
    first, sent_at, answered_at = refused[0]
    assert first.body["error"]["type"] == "rate_limit_error"
    assert "pool" in first.body["error"]["message"] or "capacity" in first.body["error"]["message"]
    # True: the seconds from the decision (between sending and the answer) to the end of its minute
    minute_end = (sent_at // 60 + 1) * 60
    assert minute_end - answered_at <= int(first.response.headers["retry-after"]) <= math.ceil(minute_end - sent_at)
    assert first.response.headers["x-should-retry"] == "true"
    assert len(heard(pool_stack, marker)) == 3  # the refused calls never went upstream
    status, usage = call("GET", f"{pool_stack.api_url}/usage", token=free[0])  # counted with its refusals
    assert status == 200 and usage["refusals"]["by_reason"]["pool_share_exhausted"] == 3
    assert usage["refusals"]["total"] == 3
    with sdk(pool_stack, enterprise[1]) as client:
        for _ in range(2):
            assert ask(client, FLOODED, f"ent-{marker}", FLOOD_MAX_TOKENS).parse().usage.output_tokens > 0


def test_an_own_key_tenant_is_never_refused_by_the_pool(pool_stack):
    token, key = on_plan(pool_stack, "free")
    status, _ = call("PUT", pool_stack.api_url + "/tenant/ai-config/api-key",
                     {"api_key": "sk-ant-own-key-pool-http-0"}, token=token)
    assert status == 200
    marker = f"own-{secrets.token_hex(4)}"
    fresh_minute()
    with sdk(pool_stack, key) as client:
        for _ in range(6):  # twice what the pool lets a free tenant reserve this minute
            ask(client, FLOODED, f"{marker} " + "x" * 300, FLOOD_MAX_TOKENS)
    assert len(heard(pool_stack, marker)) == 6


def test_true_up_gives_back_the_unused_output_reservation(pool_stack):
    _, key = on_plan(pool_stack, "free")
    marker = f"trued-{secrets.token_hex(4)}"
    fresh_minute(30)
    with sdk(pool_stack, key) as client:
        answers = [ask(client, TRUED_UP, f"{marker} short").parse() for _ in range(8)]
    assert all(a.usage.output_tokens < 50 for a in answers)  # 8 x 200 reserved would be 1,600 > 650
    assert len(heard(pool_stack, marker)) == 8


def test_the_ceiling_is_corrected_from_upstreams_headers_so_no_upstream_429_reaches_a_tenant(pool_stack):
    _, key = on_plan(pool_stack, "pro")
    marker = f"org-{secrets.token_hex(4)}"
    fresh_minute(40)
    passed, refused = 0, []
    with sdk(pool_stack, key) as client:
        for _ in range(14):
            try:
                raw = ask(client, CORRECTED, f"{marker} " + "x" * 300, FLOOD_MAX_TOKENS)
                assert raw.headers.get("anthropic-ratelimit-output-tokens-limit") is None  # not passed on
                passed += 1
            except anthropic.RateLimitError as error:
                refused.append(error.body["error"]["code"])
    assert (passed, set(refused)) == (7, {"pool_share_exhausted"})
    assert len(heard(pool_stack, marker)) == 7
