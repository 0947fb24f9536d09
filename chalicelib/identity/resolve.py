"""Credential -> TenantContext: the authorizer's whole job, in one read.

A JWT names its tenant and user; an API key names its tenant and key id in the
clear. Either way the tenant profile and the principal's item are fetched in
one BatchGetItem, and the stored state decides: a suspended tenant, a deleted
user or a revoked key is refused, and a user's role is the stored one, not
the one the token was issued with. This module must not import the anthropic SDK.
"""
from __future__ import annotations

from typing import Optional

from chalicelib.errors import Unauthorized
from chalicelib.identity import apikeys
from chalicelib.identity.tokens import verify_access_token, verify_operator_token
from chalicelib.models import ApiKey, Tenant, User, tenant_pk
from chalicelib.store import get_items
from chalicelib.tenancy import TenantContext


def bearer_token(header: Optional[str]) -> str:
    if not header:
        raise Unauthorized("Send 'Authorization: Bearer <token>'.")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send 'Authorization: Bearer <token>'.")
    return token.strip()


def resolve(header: Optional[str]) -> TenantContext:
    token = bearer_token(header)
    if apikeys.looks_like_key(token):
        return _resolve_key(token)
    return _resolve_jwt(token)


def _resolve_key(token: str) -> TenantContext:
    parsed = apikeys.parse(token)
    if parsed is None:
        raise Unauthorized("The API key is not valid.")
    pk = tenant_pk(parsed.tenant_id)
    tenant, key = get_items([(Tenant, pk, Tenant.SK), (ApiKey, pk, ApiKey.sk_for(parsed.key_id))], consistent=True)
    if (tenant is None or key is None or key.revoked_at is not None or tenant.status != "active"
            or not apikeys.matches(key.secret_hash, parsed.secret)):
        raise Unauthorized("The API key is not valid.")
    return TenantContext(tenant_id=tenant.tenant_id, principal_id=key.key_id, principal_type="api_key",
                         role="member", display=key.name, slug=tenant.slug, plan=tenant.plan)


def _resolve_jwt(token: str) -> TenantContext:
    claims = verify_access_token(token)
    tenant_id, user_id = str(claims["tid"]), str(claims["sub"])
    pk = tenant_pk(tenant_id)
    tenant, user = get_items([(Tenant, pk, Tenant.SK), (User, pk, User.sk_for(user_id))], consistent=True)
    if tenant is None or user is None or tenant.status != "active" or user.status != "active":
        raise Unauthorized("The token is not valid.")
    return TenantContext(tenant_id=tenant_id, principal_id=user_id, principal_type="user",
                         role=user.role, display=user.email, slug=tenant.slug, plan=tenant.plan)


def resolve_operator(header: Optional[str]) -> str:
    """An operator credential -> the operator's id. Tenant tokens and keys never pass."""
    token = bearer_token(header)
    if apikeys.looks_like_key(token):
        raise Unauthorized("Operator routes need an operator credential.")
    return str(verify_operator_token(token)["sub"])
