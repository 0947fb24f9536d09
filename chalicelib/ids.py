"""Identifiers. Request ids start with the time in milliseconds so that items keyed by
them sort by time; the rest are random."""
from __future__ import annotations

import secrets
import time


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def new_request_id(now: float | None = None) -> str:
    millis = int((time.time() if now is None else now) * 1000)
    return f"req_{millis:012x}{secrets.token_hex(8)}"
