"""Audit trail, export and deletion as a client and an operator meet them over `make run`'s real HTTP:
the export's presigned URL is fetched from the stack's own S3 (moto), as a browser would."""
from __future__ import annotations

import json
import secrets
import urllib.request

import pytest

from dev.stack import local_stack as stack 
from test_local_stack import call, local_stack  # noqa: F401 (local_stack is a fixture)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def operator(local_stack):
    return stack.operator_token(local_stack.env)


def test_export_audit_and_deletion_over_http(local_stack, operator):
    api = local_stack.api_url
    slug = f"off-{secrets.token_hex(4)}"
    email, password = f"o@{slug}.example.com", "correct-horse-battery"
    status, created = call("POST", api + "/tenants", {"company_name": "Off Inc", "slug": slug, "email": email,
                                                      "password": password})
    assert status == 201, created
    tenant_id = created["tenant_id"]
    _, login = call("POST", api + "/auth/login", {"tenant": slug, "email": email, "password": password})
    token = login["access_token"]
    status, key = call("POST", api + "/api-keys", {"name": "off"}, token=token)
    assert status == 201

    status, export = call("POST", api + "/tenant/export", token=token)
    assert status == 201, export
    with urllib.request.urlopen(export["url"], timeout=10) as response:
        lines = [json.loads(line) for line in response.read().decode().splitlines()]
    assert len(lines) == export["items"] and {"PROFILE", "AICONFIG"} <= {line["sk"] for line in lines}
    assert key["key"] not in json.dumps(lines) and "secret_hash" not in json.dumps(lines)

    status, trail = call("GET", api + "/audit", token=token)
    assert status == 200 and [r["action"] for r in trail["records"]] == ["tenant.export", "api_key.create"]

    status, deletion = call("DELETE", f"{api}/admin/tenants/{tenant_id}", {"confirm": slug}, token=operator)
    assert status == 202 and deletion["status"] == "deleting", deletion
    assert call("GET", api + "/me", token=token)[0] == 401
    assert call("GET", api + "/me", token=key["key"])[0] == 401
    status, trail = call("GET", f"{api}/admin/tenants/{tenant_id}/audit", token=operator)
    assert status == 200 and trail["records"][0]["action"] == "tenant.delete"
    assert trail["records"][0]["after"]["status"] == "deleting"
