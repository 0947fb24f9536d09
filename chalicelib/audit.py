"""The audit trail: every administrative change, append-only, with who, when, which request and what changed.

Records live in their own partition per tenant (`AUDIT#<tenant_id>`), not in the tenant's, so deleting
the tenant leaves them; DynamoDB's TTL removes each after the retention (TESSERA_AUDIT_RETENTION_DAYS,
730 days by default). Nothing updates or deletes a record: the only write is a put conditioned on the key
being new.

A record is written right after its change succeeded, not inside the change's transaction: several changes
are not transactions (API keys, AI settings), the tenant changes retry their transaction on conflicts, and
one way for all keeps the trail uniform. Its key carries the request id, so a retried write of the same
record stores it once. The cost: a process that dies between the change and the record loses the record
(docs/data-model.md, "Audit trail").

Secrets never enter a record: every attribute whose name is on the denylist is removed at any depth,
and binary values (ciphertexts) are dropped, before anything is stored or exported.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Callable, Mapping, Optional, Tuple

from chalicelib import logs, validation
from chalicelib.ids import new_id
from chalicelib.records import AuditRecord
from chalicelib.periods import isoformat, utcnow
from chalicelib.settings import get_settings
from chalicelib.store import condition_failed, decode_cursor, encode_cursor

MAX_PAGE = 100
# Attribute names that hold secrets or what a secret can be checked against, wherever they appear. A
# presigned URL (`url`) is a bearer credential for its lifetime.
SECRET_ATTRIBUTES = frozenset({"password", "password_hash", "secret_hash", "api_key_ciphertext", "api_key",
                               "key", "secret", "token", "access_token", "ciphertext", "signing_key", "url"})
# Keys that only index an item; they say nothing about the change.
_INDEX_ATTRIBUTES = frozenset({"pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk"})


@dataclass(frozen=True)
class Actor:
    kind: str  # "user", "api_key", "operator" or "system"
    id: str


def is_secret(name: str) -> bool:
    return name.lower() in SECRET_ATTRIBUTES or logs.is_secret_key(name)


def without_secrets(value: Any) -> Any:
    """A JSON-ready copy of `value` with every secret attribute and binary value removed, at any depth."""
    if isinstance(value, Mapping):
        return {str(k): without_secrets(v) for k, v in value.items()
                if not is_secret(str(k)) and str(k) not in _INDEX_ATTRIBUTES
                and not isinstance(v, (bytes, bytearray))}
    if isinstance(value, (list, tuple)):
        return [without_secrets(v) for v in value if not isinstance(v, (bytes, bytearray))]
    if isinstance(value, (set, frozenset)):
        return sorted(without_secrets(list(value)), key=str)
    if isinstance(value, datetime):
        return isoformat(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if hasattr(value, "as_dict"):  # a PynamoDB map
        return without_secrets(value.as_dict())
    return value


def snapshot(item: Any) -> Optional[dict]:
    """A stored item (a PynamoDB model) as the record's before/after, secrets removed."""
    return None if item is None else without_secrets(item.attribute_values)


def record(tenant_id: str, actor: Actor, action: str, before: Any, after: Any,
           request_id: Optional[str] = None) -> dict:
    """Append one record; the same request's same action is stored once."""
    entry = new_entry(tenant_id, actor, action, before, after, request_id)
    from pynamodb.exceptions import PutError

    try:
        entry.save(condition=AuditRecord.pk.does_not_exist())
    except PutError as error:
        if not condition_failed(error):
            raise
    return view(entry)


def new_entry(tenant_id: str, actor: Actor, action: str, before: Any, after: Any,
              request_id: Optional[str] = None) -> AuditRecord:
    """The record, unsaved: for a change written in a transaction, saved in it (never one without the other)."""
    request_id = request_id or logs.bound().get("request_id") or new_id("req")
    now = utcnow()
    return AuditRecord(AuditRecord.pk_for(tenant_id), f"{now:%Y-%m-%dT%H:%M:%S.%fZ}#{request_id}#{action}",
                        tenant_id=tenant_id, action=action, actor_type=actor.kind, actor_id=actor.id,
                        request_id=request_id, at=now,
                        before=None if before is None else json.dumps(without_secrets(before), sort_keys=True),
                        after=None if after is None else json.dumps(without_secrets(after), sort_keys=True),
                        expires_at=timedelta(days=get_settings().audit_retention_days))


def view(entry: AuditRecord) -> dict:
    return {"action": entry.action, "at": isoformat(entry.at),
            "actor": {"type": entry.actor_type, "id": entry.actor_id}, "request_id": entry.request_id,
            "before": json.loads(entry.before) if entry.before else None,
            "after": json.loads(entry.after) if entry.after else None}


def page(tenant_id: str, limit: Optional[str], cursor: Optional[str]) -> dict:
    """The tenant's records, newest first."""
    size = validation.page_size(limit, MAX_PAGE)
    partition = AuditRecord.pk_for(tenant_id)
    result = AuditRecord.query(partition, limit=size, scan_index_forward=False,
                               last_evaluated_key=decode_cursor(cursor, partition))
    records = [view(entry) for entry in result]
    return {"records": records, "next_cursor": encode_cursor(result.last_evaluated_key)}


Subject = Callable[[str, Mapping[str, Any], Any], Any]


def audited(action: str, subject: Subject, who: Callable[[Mapping[str, Any]], Tuple[str, Actor]]):
    """Wrap a route: read `subject` before and after the view; record the change if the view succeeded.
    `who(path parameters)` names the tenant and the actor; `subject(tenant_id, path parameters, result)`
    reads what the change touches (None where it does not exist)."""
    def wrap(view_function):
        @functools.wraps(view_function)
        def run(*args, **kwargs):
            tenant_id, actor = who(kwargs)
            before = subject(tenant_id, kwargs, None)
            result = view_function(*args, **kwargs)
            status = getattr(result, "status_code", 200)
            if status < 400:
                record(tenant_id, actor, action, before, subject(tenant_id, kwargs, getattr(result, "body", result)))
            return result
        return run
    return wrap


# --- what each kind of change touches ---------------------------------------------------------------

def tenant_profile(tenant_id: str, params: Mapping[str, Any], result: Any) -> Optional[dict]:
    from chalicelib.models import Tenant, tenant_pk

    try:
        return snapshot(Tenant.get(tenant_pk(tenant_id), Tenant.SK, consistent_read=True))
    except Tenant.DoesNotExist:
        return None


def ai_settings(tenant_id: str, params: Mapping[str, Any], result: Any) -> Optional[dict]:
    from chalicelib.models import AIConfig, tenant_pk

    try:
        return snapshot(AIConfig.get(tenant_pk(tenant_id), AIConfig.SK, consistent_read=True))
    except AIConfig.DoesNotExist:
        return None


def _item(model: Any, id_name: str) -> Subject:
    def read(tenant_id: str, params: Mapping[str, Any], result: Any) -> Optional[dict]:
        from chalicelib.models import tenant_pk

        item_id = params.get(id_name) or (result.get(id_name) if isinstance(result, Mapping) else None)
        if not item_id:
            return None
        try:
            return snapshot(model.get(tenant_pk(tenant_id), model.sk_for(item_id), consistent_read=True))
        except model.DoesNotExist:
            return None
    return read


def user(tenant_id: str, params: Mapping[str, Any], result: Any) -> Optional[dict]:
    from chalicelib.models import User

    return _item(User, "user_id")(tenant_id, params, result)


def api_key(tenant_id: str, params: Mapping[str, Any], result: Any) -> Optional[dict]:
    from chalicelib.models import ApiKey

    return _item(ApiKey, "key_id")(tenant_id, params, result)


def outcome(tenant_id: str, params: Mapping[str, Any], result: Any) -> Optional[dict]:
    """For actions whose result is the record (an export, a deletion request): none before, the result after."""
    return result if isinstance(result, Mapping) else None
