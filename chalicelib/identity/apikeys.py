"""Tenant API keys: `tsk_<tenant_id>.<key_id>.<secret>`.

The tenant and key ids in the clear let the authorizer fetch the tenant and
the key in one read; only a SHA-256 digest of the random secret is stored
(the secret has 256 bits of entropy, so a slow hash adds nothing).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Optional

from chalicelib.ids import new_id

PREFIX = "tsk_"


@dataclass(frozen=True)
class ParsedKey:
    tenant_id: str
    key_id: str
    secret: str


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate(tenant_id: str) -> tuple[str, str, str]:
    """Returns (key_id, full key to show once, digest to store)."""
    key_id = new_id("key")
    secret = secrets.token_urlsafe(32)
    return key_id, f"{PREFIX}{tenant_id}.{key_id}.{secret}", digest(secret)


def looks_like_key(token: str) -> bool:
    return token.startswith(PREFIX)


def parse(token: str) -> Optional[ParsedKey]:
    if not looks_like_key(token):
        return None
    parts = token[len(PREFIX):].split(".")
    if len(parts) != 3 or not all(parts):
        return None
    return ParsedKey(*parts)


def matches(stored_digest: str, secret: str) -> bool:
    return hmac.compare_digest(stored_digest, digest(secret))
