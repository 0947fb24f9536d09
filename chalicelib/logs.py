"""Structured JSON logs with per-request keys attached once.

`bind(request_id=..., tenant_id=...)` at the start of a request puts the keys on
every line logged until `clear()`. Values that look like credentials are never
bound, and messages are formatted by the caller, who passes no secrets.
"""
from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any, Dict

_keys: contextvars.ContextVar[Dict[str, Any]] = contextvars.ContextVar("log_keys", default={})
_SECRET_WORDS = ("password", "secret", "access_token", "bearer", "api_key", "apikey", "authorization", "ciphertext")


def bind(**keys: Any) -> None:
    safe = {k: v for k, v in keys.items() if v is not None and not any(w in k.lower() for w in _SECRET_WORDS)}
    _keys.set({**_keys.get(), **safe})


def clear() -> None:
    _keys.set({})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_keys.get(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            line.update({k: v for k, v in extra.items() if not any(w in k.lower() for w in _SECRET_WORDS)})
        if record.exc_info and record.exc_info[0] is not None:
            line["exception"] = record.exc_info[0].__name__
        return json.dumps(line, default=str)


_configured = False


def get_logger(name: str = "tessera") -> logging.Logger:
    global _configured
    logger = logging.getLogger("tessera")
    if not _configured:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(logging.INFO)
        _configured = True
    return logger if name == "tessera" else logger.getChild(name)


_level_applied = False


def apply_level(level: str) -> None:
    """Set the configured level once; called on the first request, when settings can be read."""
    global _level_applied
    if not _level_applied:
        get_logger().setLevel(level.upper())
        _level_applied = True
