"""Where the AI path reads a tenant's plan: in the BatchGetItem it already makes for the tenant's items, never a
round trip of its own; a refusal is confirmed against the plan read afresh in the same read as the admission
item. In process, on moto, with the real gateway and the stand-in model."""
from __future__ import annotations

import pytest

from chalicelib import plan_catalog
from chalicelib.ai.features import chat
from chalicelib.ai.gateway import Gateway, TenantCache
from chalicelib.audit import Actor
from chalicelib.errors import TooManyRequests
from chalicelib.operators import set_plan
from chalicelib.tenancy import TenantContext
from test_metering_concurrency import new_tenant
from dynamo_hooks import DynamoCalls

OPERATOR = Actor("operator", "op-test")


def a_plan(basic_chat):
    import secrets

    body = {"plan": f"r-{secrets.token_hex(4)}", "features": {"basic_chat": basic_chat}, "requests_per_minute": 100,
            "max_tokens_cap": 1024, "models": ["claude-sonnet-4-6"], "monthly_price_usd": 0}
    return plan_catalog.create(body, OPERATOR)["plan"]


def call():
    return chat({"messages": [{"role": "user", "content": "plan reads"}]})[0]


def test_a_cold_call_reads_the_plan_in_the_tenants_batch_and_makes_no_other_read(standin):
    plan = a_plan(5)
    tenant_id, ctx = new_tenant()
    set_plan(tenant_id, {"plan": plan})
    ctx = TenantContext(**{**ctx.__dict__, "plan": plan})  # as the authorizer hands it over
    gateway = Gateway(cache=TenantCache())
    with DynamoCalls() as sent:
        gateway.run(ctx, "basic_chat", call())
    names = sent.names
    # A new instance also takes a lease of the model's pool minute (a read of the minute with the plans'
    # pool shares and a conditional write, then none while the lease lasts: chalicelib/metering/
    # pool_leases.py) and reads the model's breaker once (then at most every 2 s: chalicelib/ai/breaker.py).
    assert names == ["BatchGetItem", "BatchGetItem", "UpdateItem", "UpdateItem", "GetItem", "PutItem"], names
    [lease_read] = sent.params[1]["RequestItems"].values()
    assert [key["pk"]["S"] for key in lease_read["Keys"]] == ["POOL#claude-sonnet-4-6", "PLANS"]
    assert sent.params[2]["Key"]["pk"]["S"] == "POOL#claude-sonnet-4-6"
    assert sent.params[4]["Key"]["sk"] == {"S": "BREAKER#claude-sonnet-4-6"}
    [batch] = sent.params[0]["RequestItems"].values()
    assert {"pk": {"S": "PLANS"}, "sk": {"S": f"CURRENT#{plan}"}} in batch["Keys"]


def test_a_refusal_is_confirmed_against_the_plan_and_the_admission_item_in_one_read(standin):
    plan = a_plan(1)
    tenant_id, ctx = new_tenant()
    set_plan(tenant_id, {"plan": plan})
    ctx = TenantContext(**{**ctx.__dict__, "plan": plan})
    gateway = Gateway(cache=TenantCache())
    gateway.run(ctx, "basic_chat", call())
    with DynamoCalls() as sent, pytest.raises(TooManyRequests):
        gateway.run(ctx, "basic_chat", call())
    names = sent.names
    # the plan read afresh together with the admission item; the returns; the refusal counted
    assert names[:2] == ["BatchGetItem", "GetItem"], names
    [batch] = sent.params[0]["RequestItems"].values()
    assert batch["ConsistentRead"] is True and len(batch["Keys"]) == 2
