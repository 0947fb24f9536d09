"""A hard budget stays hard for every input kind: the reservation bounds what the call is billed.

Each request of a mixed suite (text, images, documents, tools, thinking, cache writes and reads) goes through
the real gateway to the stand-in, which bills by Anthropic's documented rules (dev/standin/usage.py, written
apart from chalicelib/ai/bounds.py). For each, the settled cost is at most the reserved worst case, and is
exactly the stand-in's bill priced from the price table. max_tokens is small enough that every reply is cut
at it, so the output part of the bound is exact and leaves no slack to hide an input bound that falls short.
Then concurrent image requests, on real threads, never push recorded spend past a hard budget."""
from __future__ import annotations

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from decimal import ROUND_CEILING, Decimal

import pytest

from chalicelib import operators, pricing, tenants
from chalicelib.ai import settings as ai_settings
from chalicelib.ai.gateway import FeatureCall, Gateway
from chalicelib.metering import usage
from content_blocks import WEATHER_TOOL, image, jpeg, pdf_document, png
from test_metering_concurrency import new_tenant

LONG_RULES = "Follow the house style. " * 200  # about 1,200 tokens: cacheable
TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}


def user(*blocks):
    return {"role": "user", "content": list(blocks)}


def text(value, **extra):
    return {"type": "text", "text": value, **extra}


CASES = {
    "plain text": dict(messages=[{"role": "user", "content": "Hello there"}]),
    "unicode system and text": dict(system="Réponds en français, s'il te plaît. 日本語も可。",
                                    messages=[{"role": "user", "content": "Grüße 👋 " * 50}]),
    "small png": dict(messages=[user(image(png(120, 80)), text("what is it"))]),
    "large png": dict(messages=[user(image(png(5000, 3000)), text("what is it"))]),
    "tall jpeg": dict(messages=[user(image(jpeg(800, 6000), media_type="image/jpeg"), text("describe"))]),
    "url image": dict(messages=[user(image(url="https://example.com/photo.jpg"), text("describe"))]),
    "five images": dict(messages=[user(*[image(png(1000 + 300 * i, 900)) for i in range(5)], text("compare"))]),
    "text document": dict(messages=[user({"type": "document", "title": "Notes",
                                          "source": {"type": "text", "media_type": "text/plain",
                                                     "data": "Q3 revenue grew 12%. " * 80}}, text("summarise"))]),
    "content document": dict(messages=[user({"type": "document", "source": {"type": "content", "content": [
        text("Chapter one. " * 40), image(png(600, 400))]}}, text("summarise"))]),
    "pdf of four pages": dict(messages=[user(pdf_document(4), text("summarise"))]),
    "url pdf": dict(messages=[user({"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
                                   text("summarise"))]),
    "tool definitions, forced": dict(messages=[{"role": "user", "content": "weather in Oslo?"}],
                                     params={"tools": [WEATHER_TOOL], "tool_choice": {"type": "any"}}),
    "tool result with an image": dict(messages=[
        {"role": "user", "content": "weather in Oslo?"}, {"role": "assistant", "content": [TOOL_USE]},
        user({"type": "tool_result", "tool_use_id": "toolu_1",
              "content": [text("Cloudy, 4 degrees."), image(png(640, 480))]})],
        params={"tools": [WEATHER_TOOL]}),
    "thinking": dict(messages=[{"role": "user", "content": "think about it"}], max_tokens=2000,
                     params={"thinking": {"type": "enabled", "budget_tokens": 1024}}),
    "5-minute cache write": dict(system=[text(LONG_RULES, cache_control={"type": "ephemeral"})],
                                 messages=[{"role": "user", "content": "first question"}]),
    "1-hour cache write": dict(system=[text(LONG_RULES + " (1h)", cache_control={"type": "ephemeral", "ttl": "1h"})],
                               messages=[{"role": "user", "content": "first question"}]),
    "top-level cache control": dict(messages=[{"role": "user", "content": LONG_RULES + " top"}],
                                    params={"cache_control": {"type": "ephemeral", "ttl": "1h"}}),
}


@pytest.fixture(scope="module")
def pro_tenant():
    tenant_id, ctx = new_tenant()
    operators.set_plan(tenant_id, {"plan": "pro"})
    operators.set_limits(tenant_id, {"features": {"basic_chat": 10_000}, "requests_per_minute": 10_000})
    ai_settings.update_config(tenant_id, "pro", {"max_tokens": 4000})
    return tenant_id, ctx


def standin_bill(standin):
    with urllib.request.urlopen(f"{standin}/_standin/requests") as response:
        return json.loads(response.read())[-1]["usage"]


def priced(model, bill):
    """The stand-in's bill priced from the table by hand: writes split by TTL, reads at the read rate."""
    price = pricing.MODELS[model]
    one_hour = bill["cache_creation"]["ephemeral_1h_input_tokens"]
    exact = (bill["input_tokens"] * price.input + bill["output_tokens"] * price.output
             + (bill["cache_creation_input_tokens"] - one_hour) * price.cache_write + one_hour * price.input * 2
             + bill["cache_read_input_tokens"] * price.cache_read)
    return int(Decimal(exact).to_integral_value(rounding=ROUND_CEILING))


def run_case(tenant, case, model, standin):
    _, ctx = tenant
    spec = dict(case)
    call = FeatureCall(messages=spec["messages"], system=spec.get("system"), model=model,
                       max_tokens=spec.get("max_tokens", 8), params=spec.get("params", {}))
    gateway = Gateway()
    worst = gateway.prepare(ctx, "basic_chat", call).worst_case_micros
    result = gateway.run(ctx, "basic_chat", call)
    return worst, result.cost_micros, standin_bill(standin)


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "claude-opus-4-7"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_actual_cost_never_exceeds_the_reserved_worst_case(pro_tenant, standin, name, model):
    worst, cost, bill = run_case(pro_tenant, CASES[name], model, standin)
    assert cost == priced(model, bill)
    assert 0 < cost <= worst, f"{name} on {model}: cost {cost} > reserved {worst}"


def test_a_cache_read_after_its_write_stays_within_its_reservation(pro_tenant, standin):
    case = dict(system=[text(LONG_RULES + " (read)", cache_control={"type": "ephemeral"})],
                messages=[{"role": "user", "content": "again"}])
    written = run_case(pro_tenant, case, "claude-sonnet-4-6", standin)
    read = run_case(pro_tenant, case, "claude-sonnet-4-6", standin)
    assert written[2]["cache_creation_input_tokens"] > 1024 and read[2]["cache_read_input_tokens"] > 1024
    assert read[1] < written[1] <= written[0]


def test_the_suite_exercises_what_it_names(pro_tenant, standin):
    """Guards the suite itself: cache and image cases really bill cache writes and resized images."""
    _, _, one_hour = run_case(pro_tenant, CASES["1-hour cache write"] | {"system": [text(
        LONG_RULES + " (guard)", cache_control={"type": "ephemeral", "ttl": "1h"})]}, "claude-sonnet-4-6", standin)
    assert one_hour["cache_creation"]["ephemeral_1h_input_tokens"] > 1024
    _, _, large = run_case(pro_tenant, CASES["large png"], "claude-sonnet-4-6", standin)
    assert 1400 < large["input_tokens"] < 1700


# --- concurrent image requests against a hard budget -------------------------------------------

THREADS = 16
IMAGE_CALL = FeatureCall(messages=[user(image(png(4000, 3000)), text("describe this photo"))], max_tokens=200)


def test_concurrent_image_requests_never_push_spend_past_a_hard_budget(standin):
    tenant_id, ctx = new_tenant()
    operators.set_limits(tenant_id, {"features": {"basic_chat": 1000}, "requests_per_minute": 1000})
    worst = Gateway().prepare(ctx, "basic_chat", IMAGE_CALL).worst_case_micros
    budget_micros = worst * 7 // 2  # room for three reservations at once, never four
    tenants.update_tenant(tenant_id, {"monthly_budget_usd": pricing.usd(budget_micros), "budget_hard_limit": True})
    gateway = Gateway()  # a fresh tenant cache: it reads the budget just set

    def attempt(_):
        try:
            return gateway.run(ctx, "basic_chat", IMAGE_CALL).cost_micros
        except Exception as error:  # noqa: BLE001 - the outcome is what the test counts
            return getattr(error, "code", type(error).__name__)

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        outcomes = list(pool.map(attempt, range(THREADS)))
    costs = [o for o in outcomes if isinstance(o, int)]
    assert set(outcomes) - set(costs) == {"budget_exceeded"}
    assert len(costs) >= 3
    recorded = sum(int(Decimal(e["cost_usd"]) * 1_000_000)
                   for e in usage.events(tenant_id, None, "100", None)["events"])
    assert recorded == sum(costs) <= budget_micros
