"""Offboarding: a tenant's items exported to S3 as JSON Lines, and a tenant deleted.

Both walk the tenant's partition by query (`pk = TENANT#<id>`), never by a list of item types, so an item
type added later is exported and purged without an edit here.

Export: every item of the partition, secrets removed (chalicelib/audit.py's denylist), one JSON object per
line, written to the export bucket and offered through a presigned GET that expires after
EXPORT_URL_SECONDS. It runs within the request, so it is bounded: a partition of more than
EXPORT_MAX_ITEMS items is refused (docs/data-model.md, "Offboarding", has the measured time per item).

Deletion: an operator asks, repeating the tenant's slug. The tenant's status becomes `deleting` at once,
which the authorizer (every credential: user tokens and API keys) and admission refuse from the next
request; a TenantDeletion item outside the partition records when the purge may start (after the grace
period). The purge job deletes the partition in BatchWriteItem pages of 25 until its time runs out, and
the next run carries on: each run starts again from the partition's first remaining item, so a run cut
short anywhere (a crash, a timeout) loses nothing and repeats nothing harmful. Billing aggregates
(`USAGE#...` items) are copied to `BILLING#<tenant_id>` before they are deleted; the audit trail is in its
own partition and is not touched. Both are kept for their retention (docs/data-model.md).
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from typing import Any, Callable, Dict, List, Mapping, Optional

from chalicelib import audit
from chalicelib.errors import BadRequest, Conflict, NotFound
from chalicelib.ids import new_id
from chalicelib.logs import get_logger
from chalicelib.models import table_connection, tenant_pk
from chalicelib.records import TenantDeletion, TenantExport
from chalicelib.periods import isoformat, utcnow
from chalicelib.settings import get_settings
from chalicelib.store import THROTTLED

log = get_logger("offboarding")

EXPORT_URL_SECONDS = 15 * 60
EXPORT_MAX_ITEMS = 20_000
EXPORT_KEEP_DAYS = 7  # the bucket's lifecycle rule removes exports after this many days (dev/deploy/template.py)
BATCH_WRITE_ITEMS = 25  # DynamoDB's limit per BatchWriteItem
PURGE_PAGE_ITEMS = 500
# A purge run stops starting pages when less than this is left of its invocation.
PURGE_RESERVE_MS = 30_000
BILLING_PREFIX = "USAGE#"


# --- reading a partition ------------------------------------------------------------------------------

def _partition_pages(pk: str, page_items: int) -> Any:
    """Pages of raw items of one partition, in key order (consistent reads)."""
    connection = table_connection()
    start = None
    while True:
        arguments: Dict[str, Any] = dict(TableName=connection.table_name, KeyConditionExpression="pk = :pk",
                                         ExpressionAttributeValues={":pk": {"S": pk}}, ConsistentRead=True,
                                         Limit=page_items)
        if start:
            arguments["ExclusiveStartKey"] = start
        answer = connection.connection.client.query(**arguments)
        yield answer.get("Items", [])
        start = answer.get("LastEvaluatedKey")
        if not start:
            return


def plain_item(raw: Mapping[str, Any]) -> dict:
    """A raw DynamoDB item as JSON-ready values, secrets removed (the key attributes kept as `pk`/`sk`)."""
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    values = {name: deserializer.deserialize(value) for name, value in raw.items()}
    return {"pk": values.get("pk"), "sk": values.get("sk"), **audit.without_secrets(values)}


# --- export ---------------------------------------------------------------------------------------------

def _s3() -> Any:
    from chalicelib.aws import client

    return client("s3")


def export_tenant(tenant_id: str, requested_by: audit.Actor) -> dict:
    """Every item of the tenant as JSON Lines in S3; returns the export with a presigned URL."""
    lines: List[str] = []
    for items in _partition_pages(tenant_pk(tenant_id), 1000):
        lines.extend(json.dumps(plain_item(raw), sort_keys=True, default=str) for raw in items)
        if len(lines) > EXPORT_MAX_ITEMS:
            raise Conflict(f"The tenant holds more than {EXPORT_MAX_ITEMS} items, more than an export made "
                           "within one request may hold.", code="export_too_large")
    if not lines:
        raise NotFound("Tenant not found.")
    export_id = new_id("exp")
    body = ("\n".join(lines) + "\n").encode()
    key = f"exports/{tenant_id}/{export_id}.jsonl"
    _s3().put_object(Bucket=get_settings().export_bucket, Key=key, Body=body, ContentType="application/x-ndjson")
    export = TenantExport(tenant_pk(tenant_id), TenantExport.sk_for(export_id), export_id=export_id,
                          status="ready", items=len(lines), bytes=len(body), object_key=key,
                          requested_by=f"{requested_by.kind}:{requested_by.id}", created_at=utcnow(),
                          expires_at=timedelta(days=EXPORT_KEEP_DAYS))
    export.save()
    return export_view(export)


def get_export(tenant_id: str, export_id: str) -> dict:
    try:
        export = TenantExport.get(tenant_pk(tenant_id), TenantExport.sk_for(export_id))
    except TenantExport.DoesNotExist:
        raise NotFound("Export not found.") from None
    return export_view(export)


def export_view(export: TenantExport) -> dict:
    """The export with a fresh presigned URL (signing makes no AWS call)."""
    url = _s3().generate_presigned_url("get_object", ExpiresIn=EXPORT_URL_SECONDS, Params={
        "Bucket": get_settings().export_bucket, "Key": export.object_key})
    return {"export_id": export.export_id, "status": export.status, "items": int(export.items),
            "bytes": int(export.bytes), "created_at": isoformat(export.created_at), "url": url,
            "url_expires_in_seconds": EXPORT_URL_SECONDS, "format": "jsonl"}


# --- deletion -------------------------------------------------------------------------------------------

def request_deletion(tenant_id: str, body: Mapping[str, Any], requested_by: audit.Actor) -> dict:
    """Mark the tenant `deleting` (its credentials stop working at once) and schedule its purge."""
    from chalicelib import validation
    from chalicelib.tenants import change_tenant, get_tenant

    validation.fields(body, {"confirm"}, required=("confirm",))
    tenant = get_tenant(tenant_id, consistent=True)
    if body["confirm"] != tenant.slug:
        raise BadRequest("confirm must repeat the tenant's slug.", code="confirmation_mismatch")
    now = utcnow()
    deletion = TenantDeletion(TenantDeletion.PK, tenant_id, tenant_id=tenant_id, slug=tenant.slug,
                              state="pending", requested_by=f"{requested_by.kind}:{requested_by.id}",
                              requested_at=now,
                              purge_after=now + timedelta(seconds=get_settings().deletion_grace_seconds))
    from pynamodb.exceptions import PutError

    from chalicelib.store import condition_failed

    try:  # first, so a tenant is never `deleting` without a purge to come; a repeated request keeps the first
        deletion.save(condition=TenantDeletion.pk.does_not_exist())
    except PutError as error:
        if not condition_failed(error):
            raise
        deletion = TenantDeletion.get(TenantDeletion.PK, tenant_id, consistent_read=True)
    if tenant.status != "deleting":
        change_tenant(tenant_id, lambda current: {"status": "deleting"})
    return deletion_view(deletion)


def deletion_view(deletion: TenantDeletion) -> dict:
    return {"tenant_id": deletion.tenant_id, "status": "deleting" if deletion.state == "pending" else "deleted",
            "requested_at": isoformat(deletion.requested_at), "purge_after": isoformat(deletion.purge_after),
            "deleted_items": int(deletion.deleted), "billing_items_kept": int(deletion.billing_kept)}


def purge_due(time_left_ms: Callable[[], int], now: Optional[datetime] = None) -> dict:
    """The purge job: carry every deletion whose grace period has ended as far as the time allows."""
    now = now or utcnow()
    report = {"tenants": 0, "done": 0, "deleted": 0}
    for deletion in TenantDeletion.query(TenantDeletion.PK, filter_condition=TenantDeletion.state == "pending",
                                         consistent_read=True):
        if deletion.purge_after > now or time_left_ms() < PURGE_RESERVE_MS:
            continue
        report["tenants"] += 1
        try:
            deleted, done = purge_tenant(deletion, time_left_ms)
        except Exception as error:  # this tenant only: the others' purges go on, and the next run resumes it
            log.error("tenant purge failed", extra={"fields": {"tenant_id": deletion.tenant_id,
                                                               "error": type(error).__name__}})
            report["failed"] = report.get("failed", 0) + 1
            continue
        report["deleted"] += deleted
        report["done"] += int(done)
    return report


def purge_tenant(deletion: TenantDeletion, time_left_ms: Callable[[], int]) -> tuple:
    """Delete the tenant's partition page by page while time is left; (items deleted, finished)."""
    pk = tenant_pk(deletion.tenant_id)
    deleted = 0
    while time_left_ms() >= PURGE_RESERVE_MS:
        items = next(_partition_pages(pk, PURGE_PAGE_ITEMS))
        if not items:
            _finish(deletion)
            return deleted, True
        billing = [_billing_copy(raw, deletion.tenant_id) for raw in items if raw["sk"]["S"].startswith(BILLING_PREFIX)]
        _batch_write([{"PutRequest": {"Item": item}} for item in billing])  # copies first: a cut run keeps them
        _batch_write([{"DeleteRequest": {"Key": {"pk": raw["pk"], "sk": raw["sk"]}}} for raw in items])
        deleted += len(items)
        deletion.update(actions=[TenantDeletion.deleted.add(len(items)),
                                 TenantDeletion.billing_kept.add(len(billing))])
    return deleted, False


def _billing_copy(raw: Mapping[str, Any], tenant_id: str) -> dict:
    """The aggregate kept for billing, out of every index: a month aggregate is in gsi3 under `SPEND#<period>`
    (the operators' list by spend), where a copy of a deleted tenant must not appear."""
    expires = int(time.time()) + get_settings().billing_retention_days * 86400
    kept = {name: value for name, value in raw.items() if not name.startswith("gsi")}
    return {**kept, "pk": {"S": f"BILLING#{tenant_id}"}, "expires_at": {"N": str(expires)}}


def _batch_write(requests: List[dict]) -> None:
    """BatchWriteItem in pages of 25, sending back what DynamoDB left unprocessed (throttled) after the retry
    policy's pause for throttling (chalicelib/store.py THROTTLED). Still unprocessed after its attempts: this
    tenant's purge stops there, and the next run carries on (every write here can be made again)."""
    connection = table_connection()
    table = connection.table_name
    for start in range(0, len(requests), BATCH_WRITE_ITEMS):
        pending = requests[start:start + BATCH_WRITE_ITEMS]
        for attempt in range(1, THROTTLED.attempts + 1):
            answer = connection.connection.client.batch_write_item(RequestItems={table: pending})
            pending = answer.get("UnprocessedItems", {}).get(table, [])
            if not pending:
                break
            THROTTLED.wait(attempt)
        else:
            raise RuntimeError(f"DynamoDB left {len(pending)} writes unprocessed after {THROTTLED.attempts} attempts")


def _finish(deletion: TenantDeletion) -> None:
    """The partition is empty: release the slug, close the deletion and say so in the audit trail."""
    from chalicelib.models import SlugClaim

    from pynamodb.exceptions import DeleteError

    from chalicelib.store import condition_failed

    try:
        SlugClaim(*SlugClaim.key(deletion.slug)).delete(condition=SlugClaim.tenant_id == deletion.tenant_id)
    except DeleteError as error:
        if not condition_failed(error):  # already released, or claimed since by another tenant
            raise
    deletion.update(actions=[TenantDeletion.state.set("done"), TenantDeletion.completed_at.set(utcnow()),
                             TenantDeletion.expires_at.set(
                                 timedelta(days=get_settings().audit_retention_days))])
    audit.record(deletion.tenant_id, audit.Actor("system", "tenant_purge"), "tenant.purged", None,
                 {"deleted_items": int(deletion.deleted), "billing_items_kept": int(deletion.billing_kept)},
                 request_id=f"purge-{deletion.tenant_id}")
    log.info("tenant purged", extra={"fields": {"tenant_id": deletion.tenant_id, "items": int(deletion.deleted)}})
