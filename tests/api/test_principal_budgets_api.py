"""Budgets per API key and per user over HTTP: set by the tenant's owner or admin, refused to others,
enforced on the key's or user's next call, shown with the month's use, and in the audit trail."""
from __future__ import annotations

import pytest

from conftest import WritesNothing, settle_usage

CHAT = {"messages": [{"role": "user", "content": "budget please"}]}


def chat(api, token):
    return api.call("POST", "/ai/chat", CHAT, token=token)


def test_a_keys_hard_request_limit_holds_from_its_next_call(api):
    tenant = api.signup()
    key = api.api_key(tenant)
    set_ = api.call("PUT", f"/api-keys/{key['key_id']}/budget", {"monthly_requests": 2, "hard_limit": True},
                    token=tenant.token)
    assert set_.status_code == 200, set_.body
    assert (set_.json["monthly_requests"], set_.json["hard_limit"], set_.json["admitted_requests"]) == (2, True, 0)
    assert [chat(api, key["key"]).status_code for _ in range(2)] == [200, 200]
    refused = chat(api, key["key"])
    assert (refused.status_code, refused.json["error"]["code"]) == (429, "principal_limit_reached")
    assert refused.headers["x-should-retry"] == "false" and refused.json["error"]["resets_at"]
    assert chat(api, tenant.token).status_code == 200  # the owner's own calls are not the key's
    settle_usage()  # the settled calls reach the key's month counters through the table's stream
    shown = api.call("GET", f"/api-keys/{key['key_id']}/budget", token=key["key"])  # a key reads its own
    assert (shown.status_code, shown.json["admitted_requests"], shown.json["requests"]) == (200, 2, 2)
    refusals = api.call("GET", "/usage", token=tenant.token).json["refusals"]
    assert (refusals["total"], refusals["by_reason"]["principal_limit_reached"]) == (1, 1)


def test_a_users_hard_dollar_budget_refuses_a_call_that_could_pass_it(api):
    tenant = api.signup()
    user, token = api.add_user(tenant)
    set_ = api.call("PUT", f"/users/{user['user_id']}/budget", {"monthly_budget_usd": "0.000001", "hard_limit": True},
                    token=tenant.token)
    assert set_.status_code == 200, set_.body
    assert set_.json["monthly_budget_usd"] == "0.000001"
    refused = chat(api, token)
    assert (refused.status_code, refused.json["error"]["code"]) == (402, "principal_budget_exceeded")
    refusals = api.call("GET", "/usage", token=tenant.token).json["refusals"]
    assert (refusals["total"], refusals["by_reason"]["principal_budget_exceeded"]) == (1, 1)


def test_a_soft_budget_lets_calls_through(api):
    tenant = api.signup()
    key = api.api_key(tenant)
    api.call("PUT", f"/api-keys/{key['key_id']}/budget", {"monthly_requests": 0}, token=tenant.token)
    assert chat(api, key["key"]).status_code == 200


def test_only_owners_and_admins_set_budgets(api):
    tenant = api.signup()
    key = api.api_key(tenant)
    _, member = api.add_user(tenant)
    with WritesNothing(tenant.id):
        refused = api.call("PUT", f"/api-keys/{key['key_id']}/budget", {"monthly_requests": 5}, token=member)
    assert (refused.status_code, refused.json["error"]["code"]) == (403, "insufficient_role")
    _, admin = api.add_user(tenant, role="admin")
    assert api.call("PUT", f"/api-keys/{key['key_id']}/budget", {"monthly_requests": 5},
                    token=admin).status_code == 200


def test_another_tenants_key_is_a_404(api):
    tenant, other = api.signup(), api.signup()
    key = api.api_key(other)
    with WritesNothing(tenant.id, other.id):
        missing = api.call("PUT", f"/api-keys/{key['key_id']}/budget", {"monthly_requests": 5}, token=tenant.token)
    assert missing.status_code == 404


@pytest.mark.parametrize("body", [{"monthly_requests": -1}, {"monthly_requests": 1.5},
                                  {"monthly_budget_usd": 0.5}, {"hard_limit": "yes"}, {"cap": 1}, {}])
def test_bad_budget_input_is_a_400_and_writes_nothing(api, body):
    tenant = api.signup()
    key = api.api_key(tenant)
    with WritesNothing(tenant.id):
        refused = api.call("PUT", f"/api-keys/{key['key_id']}/budget", body, token=tenant.token)
    assert refused.status_code == 400, refused.body


def test_a_budget_change_is_in_the_audit_trail_with_before_and_after(api):
    tenant = api.signup()
    key = api.api_key(tenant)
    api.call("PUT", f"/api-keys/{key['key_id']}/budget", {"monthly_requests": 5, "hard_limit": True},
             token=tenant.token)
    api.call("PUT", f"/api-keys/{key['key_id']}/budget", {"monthly_requests": 9}, token=tenant.token)
    records = [r for r in api.call("GET", "/audit", token=tenant.token).json["records"]
               if r["action"] == "api_key.budget"]
    assert [(r["before"] or {}).get("requests") for r in records] == [5, None]
    assert [r["after"]["requests"] for r in records] == [9, 5]


def test_the_months_usage_shows_each_principals_budget_beside_its_use(api):
    tenant = api.signup()
    spender, idle = api.api_key(tenant), api.api_key(tenant)
    api.call("PUT", f"/api-keys/{spender['key_id']}/budget", {"monthly_budget_usd": "2.50", "hard_limit": True},
             token=tenant.token)
    api.call("PUT", f"/api-keys/{idle['key_id']}/budget", {"monthly_requests": 40}, token=tenant.token)
    assert chat(api, spender["key"]).status_code == 200
    assert chat(api, tenant.token).status_code == 200  # the owner: used, no budget
    settle_usage()
    usage = api.call("GET", "/usage", token=tenant.token)
    assert usage.status_code == 200, usage.body
    rows = usage.json["by_principal"]
    assert rows[spender["key_id"]]["requests"] == 1
    assert rows[spender["key_id"]]["budget"] == {"monthly_budget_usd": "2.500000", "monthly_requests": None,
                                                 "hard_limit": True}
    assert rows[idle["key_id"]] == {"requests": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": "0.000000",
                                    "principal_type": "api_key",
                                    "budget": {"monthly_budget_usd": None, "monthly_requests": 40,
                                               "hard_limit": False}}
    [owner] = [row for name, row in rows.items() if name not in (spender["key_id"], idle["key_id"])]
    assert owner["requests"] == 1 and "budget" not in owner
