"""The budget job alerts budgets of API keys and users: each threshold of the dollars and of the requests once
per principal and month, for tenants with no budget of their own too. On a table of the module's own, as
tests/integration/test_budget_job.py (moto's Query walks the whole table)."""
from __future__ import annotations

import pytest

from chalicelib import keys, operators, principal_budgets, tenants
from chalicelib.ids import new_request_id
from chalicelib.jobs.budget_check import check_budgets
from chalicelib.metering import admission, ledger
from chalicelib.tenancy import TenantContext
from conftest import random_slug, settle_usage, table_of_its_own
from test_budget_job import alert_queue, drain  # noqa: F401  (a fixture)


@pytest.fixture(scope="module", autouse=True)
def module_table(environment):
    with table_of_its_own("tessera-palerts") as name:
        yield name


def tenant_and_key(**budget):
    slug = random_slug("pa")
    created = tenants.sign_up({"company_name": "Key Co", "slug": slug, "email": f"o@{slug}.example.com",
                               "password": "alert-password-1"})
    tenant_id = created["tenant_id"]
    operators.set_limits(tenant_id, {"requests_per_minute": 100_000})
    ctx = TenantContext(tenant_id, created["owner"]["user_id"], "user", "owner", "o", slug)
    key_id = keys.create_key(tenant_id, ctx, {"name": "ci"})["key_id"]
    principal_budgets.set_budget(tenant_id, "api_key", key_id, budget)
    return tenant_id, key_id


def key_spend(tenant_id, key_id, micros, calls=1):
    for _ in range(calls):
        reservation, _ = admission.reserve(
            tenant_id, new_request_id(), "basic_chat", micros, None, admission.Returns(),
            load_view=lambda: admission.load_view(tenant_id), load_returns=lambda: admission.load_returns(tenant_id))
        ledger.record(reservation, ledger.Settlement(key_id, "api_key", "claude-sonnet-4-6", input_tokens=1,
                                                     output_tokens=1, cost_micros=micros))
    settle_usage()


def sent_for(report, key_id):
    return sorted((a["measure"], a["threshold"]) for a in report.alerts_sent if a.get("principal_id") == key_id)


def test_a_keys_dollar_thresholds_are_alerted_once_each(alert_queue):  # noqa: F811
    tenant_id, key_id = tenant_and_key(monthly_budget_usd="1")
    key_spend(tenant_id, key_id, 850_000)
    drain(alert_queue)
    assert sent_for(check_budgets(), key_id) == [("usd", 50), ("usd", 80)]
    assert sent_for(check_budgets(), key_id) == []
    messages = [m for m in drain(alert_queue) if m["MessageAttributes"].get("principal_id", {}).get("Value") == key_id]
    attributes = sorted((m["MessageAttributes"]["threshold"]["Value"], m["MessageAttributes"]["used"]["Value"],
                         m["MessageAttributes"]["limit"]["Value"]) for m in messages)
    assert attributes == [("50", "0.850000", "1.000000"), ("80", "0.850000", "1.000000")]


def test_a_keys_request_thresholds_are_alerted_and_the_tenant_without_a_budget_is_listed(alert_queue):  # noqa: F811
    tenant_id, key_id = tenant_and_key(monthly_requests=4, hard_limit=True)
    key_spend(tenant_id, key_id, 10, calls=2)
    report = check_budgets()
    assert sent_for(report, key_id) == [("requests", 50)]
    assert not [a for a in report.alerts_sent if a["tenant_id"] == tenant_id and "principal_id" not in a]


def test_removing_the_budget_unlists_a_tenant_without_one_of_its_own(alert_queue):  # noqa: F811
    tenant_id, key_id = tenant_and_key(monthly_requests=4)
    principal_budgets.set_budget(tenant_id, "api_key", key_id, {"monthly_requests": None})
    assert tenants.get_tenant(tenant_id, consistent=True).gsi2pk is None
