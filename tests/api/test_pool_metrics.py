"""The platform pool in the metrics and the refusal counters, through the app's own routes: an admitted pool
call's record carries its model's pool standing by model, a refused one is shed by plan, model and the
refusing dimension, and the refusal is counted once with the tenant's other refusals (GET /usage).

The app's warm gateway is given a pool of its own for each test (a real PoolLeases on moto, in a partition
no other test uses, with an output ceiling of 1,000 tokens a minute), so the numbers are this test's alone.
Free is best effort: it may borrow up to 85 % of 1,000 less enterprise's untouched 20 % reserve = 650
output tokens, so a call of max_tokens 300 fits and one of 700 is refused."""
from __future__ import annotations

import secrets
import time

import pytest

from chalicelib.ai import gateway
from chalicelib.metering.pool import DIMENSIONS, Amounts, ask_of
from chalicelib.metering.pool_leases import PoolLeases, PoolStore
from chalicelib.periods import current_period
from chalicelib.pricing import DEFAULT_MODEL
from conftest import settle_usage, stored_items
from dev.bench.probes import DynamoProbe
from test_observability import emf, records  # noqa: F401 - records: the EMF lines the app writes, parsed

CEILING = Amounts(1000, 10_000_000, 1000)
CALL = {"messages": [{"role": "user", "content": "pool metrics"}], "max_tokens": 300}
TOO_LARGE = {**CALL, "max_tokens": 700}
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}


@pytest.fixture
def own_pool(client, monkeypatch):
    """The app's gateway with a pool of its own; every test starts inside a minute with room for it."""
    store = PoolStore(partition=f"POOLTEST{secrets.token_hex(4)}")
    monkeypatch.setattr(gateway.default_gateway(), "_pool_leases", PoolLeases({"*": CEILING}, store))
    if 60 - time.time() % 60 < 10:
        time.sleep(60 - time.time() % 60 + 0.1)
    return store


def pool_records(records, tenant_id):
    return [r for r in records() if r.get("tenant_id") == tenant_id and "pool_use_percent" in r]


def test_a_pool_calls_record_carries_its_models_pool_standing_by_model(api, own_pool, records):
    tenant = api.signup()
    # Another instance holds a lease of the minute for pro: this instance sees it when it renews
    PoolLeases({"*": CEILING}, own_pool).reserve(DEFAULT_MODEL, "pro", ask_of(100, 100))
    for call in range(2):
        answer = api.call("POST", "/ai/chat", CALL, token=tenant.token)
        assert answer.status_code == 200, answer.body
        record = pool_records(records, tenant.id)[-1]
        # One instance: what it knew at admission is the minute item as it stands after the call's renewal
        window, _ = own_pool.read(record["model"], time.time() // 60 * 60)
        total = window.total()
        for dimension in DIMENSIONS:
            assert record[f"pool_reserved_{dimension}"] == total.get(dimension)
            assert record[f"pool_headroom_{dimension}"] == CEILING.get(dimension) - total.get(dimension)
        if call == 0:  # pro's 100 and the first renewal's 300 (the call's ask: more than a slice, 5 % = 50)
            assert record["model"] == DEFAULT_MODEL
            assert record["pool_reserved_output_tokens"] == 400 and record["pool_headroom_output_tokens"] == 600
            assert record["pool_use_percent"] == 40  # output, the fullest dimension: 400 of 1,000
    assert record["breaker_state"] == 0 and record["breaker"] == "closed"
    by_plan, by_model = record["_aws"]["CloudWatchMetrics"]
    assert by_plan["Dimensions"] == [["plan", "feature", "service"]]
    assert by_model["Dimensions"] == [["model", "service"]]
    assert {m["Name"] for m in by_model["Metrics"]} == {
        "pool_reserved_requests", "pool_reserved_input_tokens", "pool_reserved_output_tokens",
        "pool_headroom_requests", "pool_headroom_input_tokens", "pool_headroom_output_tokens",
        "pool_use_percent", "breaker_state"}
    assert "pool_use_percent" not in {m["Name"] for m in by_plan["Metrics"]}


def test_an_own_key_call_has_no_pool_numbers(api, own_pool, records):
    tenant = api.signup()
    assert api.call("PUT", "/tenant/ai-config/api-key", {"api_key": "sk-ant-own-key-pool-metrics-0"},
                    token=tenant.token).status_code == 200
    assert api.call("POST", "/ai/chat", CALL, token=tenant.token).status_code == 200
    [record] = [r for r in records() if r.get("tenant_id") == tenant.id and r.get("message") == "model call"]
    assert record["key_source"] == "tenant" and "pool_use_percent" not in record
    emf(record)  # one directive: by plan and feature only


def test_a_pool_refusal_is_shed_by_plan_and_dimension_and_counted_once_with_the_refusals(api, own_pool, records):
    tenant = api.signup()  # free: best effort
    assert api.call("POST", "/ai/chat", CALL, token=tenant.token).status_code == 200
    settle_usage()  # the calls' own aggregates are folded before the refusal
    before = {(i["pk"]["S"], i["sk"]["S"]): i for i in stored_items(tenant.id)}
    with DynamoProbe(this_thread=True) as probe:
        refused = api.call("POST", "/ai/chat", TOO_LARGE, token=tenant.token)
    assert refused.status_code == 429 and refused.json["error"]["code"] == "pool_share_exhausted"
    # The refusal writes its counter (one ADD) and nothing else: not the tenant's admission item, not the pool
    assert {op: n for op, n in probe.calls.items() if op in WRITES} == {"UpdateItem": 1}
    settle_usage()
    after = {(i["pk"]["S"], i["sk"]["S"]): i for i in stored_items(tenant.id)}
    changed = {key for key in after if before.get(key) != after[key]}
    assert {sk for _, sk in changed} == {f"USAGE#{current_period()}#REFUSALS"}

    [record] = [r for r in records() if r.get("tenant_id") == tenant.id and "refusals" in r]
    by_reason, shed = record["_aws"]["CloudWatchMetrics"]
    assert by_reason["Dimensions"] == [["plan", "reason", "service"]]
    assert shed["Dimensions"] == [["plan", "service"], ["model", "limit", "service"]]
    assert [m["Name"] for m in shed["Metrics"]] == ["pool_shed"]
    assert (record["plan"], record["reason"], record["refusals"], record["pool_shed"]) == (
        "free", "pool_share_exhausted", 1, 1)
    assert (record["model"], record["limit"]) == (refused.json["error"]["model"], "output_tokens")

    refusals = api.call("GET", "/usage", token=tenant.token).json["refusals"]
    assert refusals["total"] == 1 and refusals["by_reason"]["pool_share_exhausted"] == 1


def test_a_custom_plan_with_a_pool_share_is_admitted_where_a_best_effort_plan_is_refused(api, own_pool,
                                                                                        operator_token):
    """700 output tokens of 1,000: past what a best-effort plan may borrow (650), inside a 70 % share."""
    def tenant_on_a_plan(**share):
        created = api.call("POST", "/admin/plans", {
            "plan": f"pool-{secrets.token_hex(4)}", "features": {"basic_chat": 10}, "requests_per_minute": 100,
            "max_tokens_cap": 1024, "models": [DEFAULT_MODEL], "monthly_price_usd": 0, **share}, token=operator_token)
        assert created.status_code == 201, created.body
        tenant = api.signup()
        assert api.call("PUT", f"/admin/tenants/{tenant.id}/plan", {"plan": created.json["plan"]},
                        token=operator_token).status_code == 200
        return tenant

    shared, best_effort = tenant_on_a_plan(pool_share_percent=70), tenant_on_a_plan()
    refused = api.call("POST", "/ai/chat", TOO_LARGE, token=best_effort.token)
    assert (refused.status_code, refused.json["error"]["code"]) == (429, "pool_share_exhausted")
    admitted = api.call("POST", "/ai/chat", TOO_LARGE, token=shared.token)
    assert admitted.status_code == 200, admitted.body
