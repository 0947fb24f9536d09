"""The audit trail: each administrative change recorded with actor, time, request id and before/after,
secrets never; read newest first by the tenant's owners and admins, and by operators for any tenant."""
from __future__ import annotations

import json

import pytest

from conftest import stored_items


@pytest.fixture
def operator(environment):
    from chalicelib.identity.tokens import issue_operator_token

    return issue_operator_token("op-audit")


def records(api, token, path="/audit", **query):
    suffix = "&".join(f"{k}={v}" for k, v in query.items())
    response = api.call("GET", f"{path}{'?' + suffix if suffix else ''}", token=token)
    assert response.status_code == 200, response.body
    return response.json


def test_plan_change_is_recorded_with_operator_request_id_and_before_after(api, operator):
    acme = api.signup()
    changed = api.call("PUT", f"/admin/tenants/{acme.id}/plan", {"plan": "enterprise"}, token=operator)
    assert changed.status_code == 200
    [entry] = records(api, acme.token)["records"]
    assert entry["action"] == "tenant.plan"
    assert entry["actor"] == {"type": "operator", "id": "op-audit"}
    assert entry["request_id"] == changed.headers["X-Request-Id"]
    assert entry["before"]["plan"] == "free" and entry["after"]["plan"] == "enterprise"


def test_every_kind_of_change_is_recorded_newest_first(api, operator):
    acme = api.signup()
    api.call("PATCH", "/tenant", {"monthly_budget_usd": 50}, token=acme.token)
    user, _ = api.add_user(acme, "member")
    api.call("PATCH", f"/users/{user['user_id']}", {"role": "admin"}, token=acme.token)
    key = api.api_key(acme)
    api.call("DELETE", f"/api-keys/{key['key_id']}", token=acme.token)
    api.call("PUT", "/tenant/ai-config", {"temperature": 0.2}, token=acme.token)
    api.call("PUT", "/tenant/ai-config/api-key", {"api_key": "sk-ant-own-key-audited-000000"}, token=acme.token)
    api.call("DELETE", "/tenant/ai-config/api-key", token=acme.token)
    api.call("DELETE", f"/users/{user['user_id']}", token=acme.token)
    api.call("PUT", f"/admin/tenants/{acme.id}/limits", {"requests_per_minute": 7}, token=operator)
    api.call("POST", f"/admin/tenants/{acme.id}/suspend", token=operator)
    api.call("POST", f"/admin/tenants/{acme.id}/resume", token=operator)
    actions = [r["action"] for r in records(api, operator, f"/admin/tenants/{acme.id}/audit")["records"]]
    assert actions == ["tenant.resume", "tenant.suspend", "tenant.limits", "user.delete", "own_key.remove",
                       "own_key.set", "ai_settings.update", "api_key.revoke", "api_key.create", "user.role",
                       "user.create", "tenant.update"]


def test_a_refused_change_records_nothing(api):
    acme = api.signup()
    _, member = api.add_user(acme, "member")
    assert api.call("PATCH", "/tenant", {"name": "Nope"}, token=member).status_code == 403
    assert api.call("PUT", "/tenant/ai-config", {"temperature": 9}, token=acme.token).status_code == 400
    assert [r["action"] for r in records(api, acme.token)["records"]] == ["user.create"]


def test_members_cannot_read_the_trail_and_admins_can(api):
    acme = api.signup()
    _, member = api.add_user(acme, "member")
    _, admin = api.add_user(acme, "admin")
    assert api.call("GET", "/audit", token=member).status_code == 403
    assert len(records(api, admin)["records"]) == 2


def test_a_tenant_reads_only_its_own_trail(api, operator):
    acme, other = api.signup(), api.signup()
    api.call("PUT", f"/admin/tenants/{other.id}/plan", {"plan": "pro"}, token=operator)
    assert records(api, acme.token)["records"] == []


def test_pages_follow_each_other_without_gaps(api):
    acme = api.signup()
    for n in range(5):
        api.call("PATCH", "/tenant", {"name": f"Acme {n}"}, token=acme.token)
    seen, cursor = [], None
    while True:
        page = records(api, acme.token, limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [r["after"]["name"] for r in page["records"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"Acme {n}" for n in range(4, -1, -1)]


def test_another_tenants_cursor_is_refused(api):
    acme, other = api.signup(), api.signup()
    for n in range(3):
        api.call("PATCH", "/tenant", {"name": f"Other {n}"}, token=other.token)
    cursor = records(api, other.token, limit=1)["next_cursor"]
    assert api.call("GET", f"/audit?cursor={cursor}", token=acme.token).status_code == 400


def test_no_secret_reaches_an_audit_record(api, operator):
    acme = api.signup()
    own_key = "sk-ant-own-key-never-in-the-trail-1234"
    api.call("PUT", "/tenant/ai-config/api-key", {"api_key": own_key}, token=acme.token)
    key = api.api_key(acme)
    user, _ = api.add_user(acme, "member")
    stored = {json.dumps(i, default=str) for i in stored_items(acme.id)}
    secrets = [key["key"], own_key, acme.password, "member-password-1"]
    hashes = [i[name] for i in stored_items(acme.id) for name in ("password_hash", "secret_hash",
                                                                   "api_key_ciphertext") if name in i]
    assert len(hashes) >= 4 and stored
    trail = json.dumps(records(api, operator, f"/admin/tenants/{acme.id}/audit"))
    for value in secrets + [list(h.values())[0] if isinstance(h, dict) else h for h in hashes]:
        text = value if isinstance(value, str) else __import__("base64").b64encode(value).decode()
        assert text not in trail
    for name in ("password_hash", "secret_hash", "api_key_ciphertext", '"key"'):
        assert name not in trail


def test_without_secrets_strips_denylisted_names_at_any_depth():
    from chalicelib.audit import without_secrets

    cleaned = without_secrets({"name": "n", "password_hash": "h", "nested": {"secret_hash": "s", "key": "k",
                                                                            "ok": [{"api_key_ciphertext": b"c"}]},
                               "blob": b"raw", "url": "https://signed"})
    assert cleaned == {"name": "n", "nested": {"ok": [{}]}}
