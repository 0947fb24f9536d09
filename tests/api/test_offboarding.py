"""Offboarding: exports as JSON Lines in S3 behind an expiring presigned URL; deletion that stops the
tenant's credentials at once and purges its partition after the grace period, resumably."""
from __future__ import annotations

import json
import urllib.request
from datetime import timedelta

import pytest

from conftest import record_spend, stored_items


@pytest.fixture
def operator(environment):
    from chalicelib.identity.tokens import issue_operator_token

    return issue_operator_token("op-offboard")


def fetch(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def busy_tenant(api):
    """A tenant with users, a key, an own key, a prompt-free AI config and spend (usage items)."""
    acme = api.signup()
    api.add_user(acme, "admin")
    key = api.api_key(acme)
    assert api.call("PUT", "/tenant/ai-config/api-key", {"api_key": "sk-ant-own-key-offboarding-0000"},
                    token=acme.token).status_code == 200
    record_spend(acme.id, 1234, calls=2)
    return acme, key


# --- export -------------------------------------------------------------------------------------------

def test_owner_export_holds_every_item_of_the_partition_as_json_lines(api):
    acme, key = busy_tenant(api)
    _bulk_items(acme.id, 1100)  # more than a page, of a type the export has never heard of
    expected = {(i["pk"]["S"], i["sk"]["S"]) for i in stored_items(acme.id)}
    response = api.call("POST", "/tenant/export", token=acme.token)
    assert response.status_code == 201, response.body
    lines = [json.loads(line) for line in fetch(response.json["url"]).splitlines()]
    assert {(line["pk"], line["sk"]) for line in lines} == expected
    assert response.json["items"] == len(expected) and response.json["url_expires_in_seconds"] == 900
    again = api.call("GET", f"/tenant/exports/{response.json['export_id']}", token=acme.token)
    assert again.status_code == 200 and fetch(again.json["url"]).splitlines()[0] == json.dumps(
        lines[0], sort_keys=True)


def test_no_secret_reaches_an_export(api, operator):
    acme, key = busy_tenant(api)
    secrets = [key["key"], "sk-ant-own-key-offboarding-0000", acme.password]
    hashes = [v for i in stored_items(acme.id) for name, v in i.items()
              if name in ("password_hash", "secret_hash", "api_key_ciphertext")]
    assert len(hashes) == 4
    response = api.call("POST", f"/admin/tenants/{acme.id}/export", token=operator)
    assert response.status_code == 201
    text = fetch(response.json["url"])
    import base64

    for value in secrets + [list(h.values())[0] for h in hashes]:
        value = value if isinstance(value, str) else base64.b64encode(value).decode()
        assert value not in text
    for name in ("password_hash", "secret_hash", "api_key_ciphertext"):
        assert name not in text


def test_only_owners_export(api):
    acme = api.signup()
    _, admin = api.add_user(acme, "admin")
    assert api.call("POST", "/tenant/export", token=admin).status_code == 403


def test_another_tenants_export_is_a_404(api):
    acme, other = api.signup(), api.signup()
    made = api.call("POST", "/tenant/export", token=other.token).json
    assert api.call("GET", f"/tenant/exports/{made['export_id']}", token=acme.token).status_code == 404


def test_exports_are_in_the_audit_trail_without_their_url(api):
    acme = api.signup()
    api.call("POST", "/tenant/export", token=acme.token)
    entry = api.call("GET", "/audit", token=acme.token).json["records"][0]
    assert entry["action"] == "tenant.export" and entry["after"]["items"] >= 4 and "url" not in entry["after"]


# --- deletion -----------------------------------------------------------------------------------------

def test_deletion_needs_the_slug_repeated_and_changes_nothing_otherwise(api, operator):
    acme = api.signup()
    response = api.call("DELETE", f"/admin/tenants/{acme.id}", {"confirm": "not-the-slug"}, token=operator)
    assert response.status_code == 400 and response.json["error"]["code"] == "confirmation_mismatch"
    assert api.call("GET", "/tenant", token=acme.token).status_code == 200


def test_deletion_stops_every_credential_at_once_and_cannot_be_resumed(api, operator):
    acme, key = busy_tenant(api)
    response = api.call("DELETE", f"/admin/tenants/{acme.id}", {"confirm": acme.slug}, token=operator)
    assert response.status_code == 202 and response.json["status"] == "deleting"
    assert api.call("GET", "/tenant", token=acme.token).status_code == 401
    assert api.call("GET", "/me", token=key["key"]).status_code == 401
    assert api.call("POST", "/auth/login", {"tenant": acme.slug, "email": acme.email,
                                            "password": acme.password}).status_code == 401
    resumed = api.call("POST", f"/admin/tenants/{acme.id}/resume", token=operator)
    assert resumed.status_code == 409 and resumed.json["error"]["code"] == "tenant_deleting"


def _purge(now=None):
    """Run the purge job with all the time it wants."""
    from chalicelib import offboarding

    return offboarding.purge_due(lambda: 600_000, now=now)


def _deleted(api, operator, tenant):
    response = api.call("DELETE", f"/admin/tenants/{tenant.id}", {"confirm": tenant.slug}, token=operator)
    assert response.status_code == 202
    return response.json


def test_nothing_is_purged_before_the_grace_period_ends(api, operator):
    from chalicelib.periods import utcnow

    acme, _ = busy_tenant(api)
    before = len(stored_items(acme.id))
    deletion = _deleted(api, operator, acme)
    assert deletion["purge_after"] > deletion["requested_at"]
    _purge(now=utcnow() + timedelta(days=6))
    assert len(stored_items(acme.id)) == before


def test_purge_removes_every_item_keeps_billing_and_the_trail_and_frees_the_slug(api, operator):
    from chalicelib.records import TenantDeletion
    from chalicelib.periods import utcnow

    acme, _ = busy_tenant(api)
    usage = [i for i in stored_items(acme.id) if i["sk"]["S"].startswith("USAGE#")]
    assert usage
    _deleted(api, operator, acme)
    _purge(now=utcnow() + timedelta(days=8))
    assert stored_items(acme.id) == []
    kept = _partition(f"BILLING#{acme.id}")
    assert {i["sk"]["S"] for i in kept} == {i["sk"]["S"] for i in usage}
    assert {i["cost_micros"]["N"] for i in kept} >= {"2468"}
    assert any("gsi3pk" in i for i in usage)  # the month aggregate is in the operators' list by spend...
    assert not any(name.startswith("gsi") for i in kept for name in i)  # ...its billing copy in no index
    by_spend = api.call("GET", "/admin/tenants?sort=spend&limit=100", token=operator)
    assert by_spend.status_code == 200, by_spend.json
    assert acme.id not in {row["tenant_id"] for row in by_spend.json["tenants"]}
    trail = api.call("GET", f"/admin/tenants/{acme.id}/audit", token=operator).json["records"]
    assert [r["action"] for r in trail[:2]] == ["tenant.purged", "tenant.delete"]
    assert trail[0]["after"]["deleted_items"] == TenantDeletion.get(TenantDeletion.PK, acme.id).deleted
    assert api.call("POST", "/tenants", {"company_name": "Again", "slug": acme.slug, "email": "a@b.example.com",
                                         "password": "correct-horse-battery"}).status_code == 201


def test_a_purge_cut_short_resumes_where_it_stopped(api, operator):
    from chalicelib import offboarding
    from chalicelib.records import TenantDeletion
    from chalicelib.periods import utcnow

    acme, _ = busy_tenant(api)
    _bulk_items(acme.id, 1200)
    total = len(stored_items(acme.id))
    _deleted(api, operator, acme)
    later = utcnow() + timedelta(days=8)
    # One page, then its time runs out. The tenant's own purge is run: the job's loop would also carry other
    # tests' deletions that are due by `later`, and spend the page on one of them.
    checks = iter([600_000, 0])
    offboarding.purge_tenant(TenantDeletion.get(TenantDeletion.PK, acme.id), lambda: next(checks))
    assert len(stored_items(acme.id)) == total - offboarding.PURGE_PAGE_ITEMS
    assert TenantDeletion.get(TenantDeletion.PK, acme.id).state == "pending"
    _purge(now=later)
    assert stored_items(acme.id) == []
    deletion = TenantDeletion.get(TenantDeletion.PK, acme.id)
    assert deletion.state == "done" and deletion.deleted == total
    _purge(now=later)  # a run after the end changes nothing
    assert TenantDeletion.get(TenantDeletion.PK, acme.id).deleted == total


def test_a_purge_that_crashes_mid_page_loses_nothing_on_the_next_run(api, operator):
    """The network edge fails the third BatchWriteItem of this tenant's purge: that purge dies; the next run
    finishes the job. (The run also carries other tests' tenants whose grace period has ended: their writes
    are not counted.)"""
    from chalicelib.models import table_connection
    from chalicelib.records import TenantDeletion
    from chalicelib.periods import utcnow

    acme, _ = busy_tenant(api)
    _bulk_items(acme.id, 300)
    _deleted(api, operator, acme)
    client = table_connection().connection.client
    calls = {"n": 0}

    def fail_third(params, **kwargs):
        if acme.id.encode() not in params["body"]:
            return
        calls["n"] += 1
        if calls["n"] == 3:
            raise ConnectionError("connection reset")

    client.meta.events.register("before-call.dynamodb.BatchWriteItem", fail_third)
    try:
        first = _purge(now=utcnow() + timedelta(days=8))  # the tenant's purge fails; the run carries on
    finally:
        client.meta.events.unregister("before-call.dynamodb.BatchWriteItem", fail_third)
    assert first["failed"] >= 1 and 0 < len(stored_items(acme.id))
    assert TenantDeletion.get(TenantDeletion.PK, acme.id).state == "pending"
    _purge(now=utcnow() + timedelta(days=8))
    assert stored_items(acme.id) == []
    assert TenantDeletion.get(TenantDeletion.PK, acme.id).state == "done"
    assert _partition(f"BILLING#{acme.id}")


def test_a_tenant_whose_purge_fails_does_not_stop_the_others_in_the_same_run(api, operator):
    from chalicelib.models import table_connection
    from chalicelib.periods import utcnow
    from chalicelib.records import TenantDeletion

    stuck, _ = busy_tenant(api)
    other, _ = busy_tenant(api)
    _deleted(api, operator, stuck)
    _deleted(api, operator, other)
    client = table_connection().connection.client

    def refuse_stuck(params, **kwargs):  # every write of the stuck tenant's partition fails at the edge
        if f"TENANT#{stuck.id}" in json.dumps(params.get("RequestItems", {})):
            raise ConnectionError("connection reset")

    client.meta.events.register("provide-client-params.dynamodb.BatchWriteItem", refuse_stuck)
    try:
        report = _purge(now=utcnow() + timedelta(days=8))
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb.BatchWriteItem", refuse_stuck)
    assert report["failed"] >= 1
    assert TenantDeletion.get(TenantDeletion.PK, stuck.id).state == "pending" and stored_items(stuck.id)
    assert TenantDeletion.get(TenantDeletion.PK, other.id).state == "done" and stored_items(other.id) == []


def _partition(pk):
    import boto3

    from chalicelib.settings import get_settings

    pages = boto3.client("dynamodb").get_paginator("query").paginate(
        TableName=get_settings().table_name, KeyConditionExpression="pk = :pk", ConsistentRead=True,
        ExpressionAttributeValues={":pk": {"S": pk}})
    return [item for page in pages for item in page["Items"]]


def _bulk_items(tenant_id, count):
    """Items of a type the offboarding code has never heard of: it must cover them by partition."""
    from chalicelib import offboarding

    offboarding._batch_write([{"PutRequest": {"Item": {"pk": {"S": f"TENANT#{tenant_id}"},
                                                       "sk": {"S": f"NEWKIND#{n:06d}"}, "n": {"N": str(n)}}}}
                              for n in range(count)])


def test_items_dynamodb_leaves_unprocessed_are_sent_again(api, operator):
    """The network edge answers the first batch of deletes as a throttled DynamoDB does: nothing processed."""
    from chalicelib.models import table_connection
    from chalicelib.records import TenantDeletion
    from chalicelib.periods import utcnow

    acme, _ = busy_tenant(api)
    total = len(stored_items(acme.id))
    _deleted(api, operator, acme)
    client = table_connection().connection.client
    throttled = {"n": 0}

    def leave_unprocessed(params, **kwargs):
        if throttled["n"] == 0 and b"DeleteRequest" in params["body"]:
            throttled["n"] += 1
            from botocore.awsrequest import AWSResponse

            return (AWSResponse(params["url"], 200, {}, None),
                    {"UnprocessedItems": json.loads(params["body"])["RequestItems"]})
        return None

    client.meta.events.register("before-call.dynamodb.BatchWriteItem", leave_unprocessed)
    try:
        _purge(now=utcnow() + timedelta(days=8))
    finally:
        client.meta.events.unregister("before-call.dynamodb.BatchWriteItem", leave_unprocessed)
    assert throttled["n"] == 1
    deletion = TenantDeletion.get(TenantDeletion.PK, acme.id)
    assert stored_items(acme.id) == [] and deletion.state == "done" and deletion.deleted == total
