"""Tenant API keys for machine clients: create (secret shown once), list, revoke.

A key belongs to the tenant, not to the user who made it: it acts with the member role, names its creator
in `created_by`, and keeps working when that user is removed, unless the removal asks for the keys the user
made to be revoked with it (`DELETE /users/{id}?revoke_keys=true`)."""
from __future__ import annotations

from typing import Any, List, Mapping

from chalicelib import validation
from chalicelib.identity import apikeys
from chalicelib.models import ApiKey, tenant_pk
from chalicelib.periods import isoformat, utcnow
from chalicelib.store import update_existing
from chalicelib.tenancy import TenantContext


def view(key: ApiKey) -> dict:
    return {
        "key_id": key.key_id,
        "name": key.name,
        "last4": key.last4,
        "created_at": isoformat(key.created_at),
        "created_by": key.created_by,
        "revoked_at": isoformat(key.revoked_at) if key.revoked_at else None,
    }


def create_key(tenant_id: str, ctx: TenantContext, body: Mapping[str, Any]) -> dict:
    ctx.require("admin")
    validation.fields(body, {"name"}, required=("name",))
    name = validation.string(body, "name", min_len=1, max_len=100).strip()
    key_id, secret, digest = apikeys.generate(tenant_id)
    key = ApiKey(tenant_pk(tenant_id), ApiKey.sk_for(key_id), key_id=key_id, name=name, secret_hash=digest,
                 last4=secret[-4:], created_at=utcnow(), created_by=ctx.principal_id)
    key.save(condition=ApiKey.pk.does_not_exist())
    return {**view(key), "key": secret}


def list_keys(tenant_id: str, ctx: TenantContext) -> List[dict]:
    ctx.require("admin")
    return [view(k) for k in ApiKey.query(tenant_pk(tenant_id), ApiKey.sk.startswith("APIKEY#"))]


def revoke_key(tenant_id: str, ctx: TenantContext, key_id: str) -> None:
    ctx.require("admin")
    _revoke(tenant_id, key_id)


def revoke_keys_created_by(tenant_id: str, user_id: str) -> int:
    """Revoke every live key `user_id` created (one query of the tenant's keys); returns how many."""
    made = ApiKey.query(tenant_pk(tenant_id), ApiKey.sk.startswith("APIKEY#"),
                        filter_condition=(ApiKey.created_by == user_id) & ApiKey.revoked_at.does_not_exist())
    revoked = 0
    for key in made:
        _revoke(tenant_id, key.key_id)
        revoked += 1
    return revoked


def _revoke(tenant_id: str, key_id: str) -> None:
    """Idempotent: the first revocation time is kept."""
    update_existing(ApiKey(tenant_pk(tenant_id), ApiKey.sk_for(key_id)),
                    [ApiKey.revoked_at.set(ApiKey.revoked_at | utcnow())], "API key")
