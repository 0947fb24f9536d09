"""The routes the console reads, over chalice's test client: who may read them, what they count, and that
nothing of another tenant shows."""
from __future__ import annotations

from decimal import Decimal

import pytest

CHAT = {"messages": [{"role": "user", "content": "console please"}]}
CODE = {"code": "print(1)", "language": "python"}


def test_a_refused_call_is_counted_by_its_reason(api):
    tenant = api.signup()  # free: code review needs the pro plan
    refused = api.call("POST", "/ai/code-review", CODE, token=tenant.token)
    assert refused.status_code == 403 and refused.json["error"]["code"] == "feature_not_in_plan"
    refusals = api.call("GET", "/usage", token=tenant.token).json["refusals"]
    assert refusals["total"] == 1 and refusals["by_reason"]["feature_not_in_plan"] == 1


def test_a_rate_limited_call_is_counted(api, operator_token):
    tenant = api.signup()
    assert api.call("PUT", f"/admin/tenants/{tenant.id}/limits", {"requests_per_minute": 1},
                    token=operator_token).status_code == 200
    statuses = [api.call("POST", "/ai/chat", CHAT, token=tenant.token).status_code for _ in range(3)]
    assert statuses == [200, 429, 429]
    refusals = api.call("GET", "/usage", token=tenant.token).json["refusals"]
    assert refusals["by_reason"]["rate_limited"] == 2 and refusals["total"] == 2


def test_a_member_reads_the_days_and_sees_only_its_own_tenants_calls(api):
    tenant, other = api.signup(), api.signup()
    _, member_token = api.add_user(tenant, role="member")
    answer = api.call("POST", "/ai/chat", CHAT, token=tenant.token)
    assert answer.status_code == 200
    api.call("GET", "/usage", token=tenant.token)  # folds the call
    days = api.call("GET", "/usage/daily?days=7", token=member_token)
    assert days.status_code == 200 and len(days.json["days"]) == 7
    assert days.json["days"][-1]["requests"] == 1
    assert Decimal(days.json["days"][-1]["cost_usd"]) == Decimal(answer.json["cost_usd"])
    others = api.call("GET", "/usage/daily", token=other.token).json["days"]
    assert len(others) == 90 and sum(d["requests"] for d in others) == 0


def test_an_operator_reads_one_tenants_page(api, operator_token):
    tenant = api.signup()
    api.call("POST", "/ai/chat", CHAT, token=tenant.token)
    api.call("GET", "/usage", token=tenant.token)
    page = api.call("GET", f"/admin/tenants/{tenant.id}", token=operator_token)
    assert page.status_code == 200, page.body
    assert page.json["tenant"]["tenant_id"] == tenant.id and page.json["limits"]["plan"] == "free"
    assert page.json["usage"]["requests"] == 1
    assert page.json["usage"] == api.call("GET", "/usage", token=tenant.token).json


def test_an_unknown_tenants_page_is_404(api, operator_token):
    assert api.call("GET", "/admin/tenants/ten_00000000000000000000", token=operator_token).status_code == 404


@pytest.mark.parametrize("path", ["/admin/usage", "/admin/tenants/{id}", "/admin/tenants?sort=spend"])
def test_a_tenant_credential_cannot_read_operator_pages(api, path):
    tenant = api.signup()
    response = api.call("GET", path.replace("{id}", tenant.id), token=tenant.token)
    assert response.status_code == 401


def test_the_platforms_month_answers_for_an_operator(api, operator_token):
    response = api.call("GET", "/admin/usage?period=2024-01", token=operator_token)
    assert response.status_code == 200
    assert response.json["period"] == "2024-01" and set(response.json) == {"period", "totals", "by_plan", "by_model"}
    assert api.call("GET", "/admin/usage?period=24-1", token=operator_token).status_code == 400


def test_the_console_is_served_with_its_policy_and_nothing_else_is(api):
    page = api.call("GET", "/console")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    script = api.call("GET", "/console/app.js")
    assert script.status_code == 200 and script.headers["Content-Type"].startswith("text/javascript")
    missing = api.call("GET", "/console/secrets.txt")
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"
