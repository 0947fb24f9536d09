"""Items that record a process from its start to its end: a Message Batch and its open mark (chalicelib/ai/
batches.py), an administrative change (chalicelib/audit.py), a tenant's export and its deletion
(chalicelib/offboarding.py). Same table and conventions as chalicelib/models.py."""
from __future__ import annotations

from pynamodb.attributes import MapAttribute, NumberAttribute, TTLAttribute, UnicodeAttribute, UTCDateTimeAttribute

from chalicelib.models import _Item, tenant_pk


class MessageBatch(_Item):
    """pk=TENANT#<id> sk=BATCH#<batch_id>: a tenant's Message Batch (chalicelib/ai/batches.py).

    Batch ids start with the creation time in milliseconds, so a query reads newest first. The item holds
    the batch's reservation until it is settled: `reservations` (JSON: custom_id -> [model, worst case
    micros at the batch price]), admitted as one reservation of `request_count` calls in `period`."""

    batch_id = UnicodeAttribute()
    upstream_id = UnicodeAttribute(null=True)
    status = UnicodeAttribute()  # creating, in_progress, canceling, ended
    principal_id = UnicodeAttribute()
    principal_type = UnicodeAttribute()
    key_source = UnicodeAttribute()
    key_fingerprint = UnicodeAttribute()
    period = UnicodeAttribute()
    bucket = NumberAttribute()
    request_count = NumberAttribute()
    worst_case_micros = NumberAttribute()
    reservations = UnicodeAttribute()
    request_counts = MapAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    ends_by = UTCDateTimeAttribute()  # the API's `expires_at`; not the table's TTL attribute
    ended_at = UTCDateTimeAttribute(null=True)
    cancel_initiated_at = UTCDateTimeAttribute(null=True)
    settled_at = UTCDateTimeAttribute(null=True)
    cost_micros = NumberAttribute(null=True)

    @staticmethod
    def sk_for(batch_id: str) -> str:
        return f"BATCH#{batch_id}"


class OpenBatch(_Item):
    """pk=BATCHES#OPEN sk=TENANT#<id>#<batch_id>: a batch not settled yet, so the batch sweep finds it
    without reading any tenant's partition. Written with the batch, deleted when it is settled."""

    tenant_id = UnicodeAttribute()
    batch_id = UnicodeAttribute()

    PARTITION = "BATCHES#OPEN"

    @staticmethod
    def sk_for(tenant_id: str, batch_id: str) -> str:
        return f"{tenant_pk(tenant_id)}#{batch_id}"


class AuditRecord(_Item):
    """pk=AUDIT#<tenant_id> sk=<ISO time, microseconds>#<request_id>#<action>: one administrative change, append-only.

    Outside the tenant's partition so that deleting the tenant leaves its trail; kept until `expires_at`
    (chalicelib/audit.py, RETENTION). `before`/`after` are JSON with secrets removed."""

    tenant_id = UnicodeAttribute()
    action = UnicodeAttribute()
    actor_type = UnicodeAttribute()
    actor_id = UnicodeAttribute()
    request_id = UnicodeAttribute()
    at = UTCDateTimeAttribute()
    before = UnicodeAttribute(null=True)
    after = UnicodeAttribute(null=True)
    expires_at = TTLAttribute()

    @staticmethod
    def pk_for(tenant_id: str) -> str:
        if not tenant_id:
            raise ValueError("tenant_id is required")
        return f"AUDIT#{tenant_id}"


class TenantExport(_Item):
    """pk=TENANT#<id> sk=EXPORT#<export_id>: one export of the tenant's items to S3 (JSON Lines)."""

    export_id = UnicodeAttribute()
    status = UnicodeAttribute()
    items = NumberAttribute(default=0)
    bytes = NumberAttribute(default=0)
    object_key = UnicodeAttribute()
    requested_by = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    expires_at = TTLAttribute()

    @staticmethod
    def sk_for(export_id: str) -> str:
        return f"EXPORT#{export_id}"


class TenantDeletion(_Item):
    """pk=DELETIONS sk=<tenant_id>: an operator's deletion of a tenant and the purge's progress. Outside the
    tenant's partition: it must survive the purge it drives."""

    tenant_id = UnicodeAttribute()
    slug = UnicodeAttribute()
    state = UnicodeAttribute()  # pending, done
    requested_by = UnicodeAttribute()
    requested_at = UTCDateTimeAttribute()
    purge_after = UTCDateTimeAttribute()
    deleted = NumberAttribute(default=0)
    billing_kept = NumberAttribute(default=0)
    completed_at = UTCDateTimeAttribute(null=True)
    expires_at = TTLAttribute(null=True)

    PK = "DELETIONS"
