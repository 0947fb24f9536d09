"""Credential -> TenantContext: the authorizer's whole job, in one read.

A JWT names its tenant and user; an API key names its tenant and key id in the
clear. Either way the tenant profile and the principal's item are fetched in
one BatchGetItem, and the stored state decides: a suspended tenant, a deleted
user or a revoked key is refused, and a user's role is the stored one, not
the one the token was issued with. This module must not import the anthropic SDK.
"""
from __future__ import annotations

import hashlib
import threading
import time
from typing import Callable, Dict, Mapping, Optional, Tuple

from chalicelib.errors import Unauthorized
from chalicelib.identity import apikeys
from chalicelib.identity.tokens import verify_access_token, verify_operator_token
from chalicelib.models import ApiKey, Tenant, User, tenant_pk
from chalicelib.store import get_items
from chalicelib.tenancy import TenantContext


def bearer_token(header: Optional[str]) -> str:
    if not header:
        raise Unauthorized("Send 'Authorization: Bearer <token>' or 'x-api-key: <key>'.")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send 'Authorization: Bearer <token>' or 'x-api-key: <key>'.")
    return token.strip()


def credential_header(headers: Mapping[str, str]) -> Optional[str]:
    """The credential as an `Authorization` value: that header when sent, else Anthropic's `x-api-key`
    (a bare token) as `Bearer <token>`. Header names are matched case-insensitively."""
    lowered = {str(name).lower(): value for name, value in (headers or {}).items()}
    authorization = lowered.get("authorization")
    if authorization:
        return authorization
    api_key = (lowered.get("x-api-key") or "").strip()
    return f"Bearer {api_key}" if api_key else None


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


class ResolvedCache:
    """Decisions kept for `ttl` seconds by credential digest, for an authorizer API Gateway does not cache:
    a revoked key or a suspended tenant then takes effect within `ttl`, as with the gateway's own cache.
    A decision is kept until `ttl` has passed, not at that instant; expired ones are dropped whenever a new
    one is kept, so the cache holds at most the credentials seen in the last `ttl`."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: Dict[str, Tuple[float, TenantContext]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def resolve(self, header: Optional[str]) -> TenantContext:
        digest = hashlib.sha256((header or "").encode()).hexdigest()
        now = self._clock()
        with self._lock:
            hit = self._entries.get(digest)
        if hit and hit[0] > now:
            return hit[1]
        ctx = resolve(header)
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            self._entries[digest] = (now + self.ttl, ctx)
        return ctx


def resolve_operator(header: Optional[str]) -> str:
    """An operator credential -> the operator's id. Tenant tokens and keys never pass."""
    token = bearer_token(header)
    if apikeys.looks_like_key(token):
        raise Unauthorized("Operator routes need an operator credential.")
    return str(verify_operator_token(token)["sub"])
