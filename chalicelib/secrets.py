"""Secrets: the JWT keyrings and the platform's Anthropic key pool.

Locally they come from environment variables; in deployed stages from Secrets
Manager, fetched on first use and cached for a few minutes so a rotation is
picked up without a deploy. Values are never logged or put in exceptions.
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from chalicelib.aws import client
from chalicelib.errors import ConfigurationError
from chalicelib.settings import get_settings

CACHE_SECONDS = 300
_cache: Dict[str, Tuple[float, str]] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Keyring:
    """Signing keys by kid; `active` signs, every key verifies (for rotation)."""

    active: str
    keys: Dict[str, str]

    @classmethod
    def parse(cls, raw: str) -> "Keyring":
        text = raw.strip()
        if text.startswith("{"):
            data = json.loads(text)
            keys = {str(k): str(v) for k, v in data["keys"].items()}
            if data["active"] not in keys:
                raise ConfigurationError("The signing keyring names an active key it does not hold.")
            return cls(active=str(data["active"]), keys=keys)
        kid = hashlib.sha256(text.encode()).hexdigest()[:8]
        return cls(active=kid, keys={kid: text})

    @property
    def signing_secret(self) -> str:
        return self.keys[self.active]


def _fetch_secret(secret_id: str) -> str:
    now = time.monotonic()
    with _lock:
        hit = _cache.get(secret_id)
        if hit and hit[0] > now:
            return hit[1]
    value = client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
    with _lock:
        _cache[secret_id] = (now + CACHE_SECONDS, value)
    return value


def forget() -> None:
    """Drop every cached secret value (after a SnapStart restore: chalicelib/snapshot.py)."""
    with _lock:
        _cache.clear()


def _resolve(direct: Optional[str], secret_id: Optional[str], what: str,
             fetch: Callable[[str], str] = _fetch_secret) -> str:
    if direct:
        return direct
    if secret_id:
        return fetch(secret_id)
    raise ConfigurationError(f"No {what} is configured for this stage.")


def jwt_keyring() -> Keyring:
    s = get_settings()
    return Keyring.parse(_resolve(s.jwt_secret, s.jwt_secret_id, "JWT signing secret"))


def operator_keyring() -> Keyring:
    s = get_settings()
    return Keyring.parse(_resolve(s.operator_secret, s.operator_secret_id, "operator signing secret"))


def platform_api_keys() -> List[str]:
    """The platform's Anthropic key pool: a JSON list, or one key, or comma-separated keys."""
    s = get_settings()
    raw = _resolve(s.platform_keys, s.platform_keys_secret_id, "platform Anthropic key")
    text = raw.strip()
    keys = json.loads(text) if text.startswith("[") else [k.strip() for k in text.split(",")]
    keys = [k for k in keys if k]
    if not keys:
        raise ConfigurationError("The platform Anthropic key pool is empty.")
    return keys
