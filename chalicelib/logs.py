"""Structured JSON logs through AWS Lambda Powertools' Logger, with per-request keys attached once.

`bind(request_id=..., tenant_id=...)` at the start of a request puts the keys on every
line logged until `clear()` (Powertools' thread-safe keys: a context variable, so
concurrent requests of `chalice local` never mix). Call sites keep the standard logging
interface: `get_logger("gateway").error("usage not recorded", extra={"fields": {...}})`; the
fields become top-level keys of the line.

Secrets never reach a line: a key that names one (password, secret, token, api key,
authorization, ciphertext) is dropped from bound keys and fields alike, and messages are
formatted by their callers, who pass no secrets.
"""
from __future__ import annotations

import functools
import logging
import sys
from typing import Any, Dict, MutableMapping, Optional, Tuple

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

SERVICE = "tessera"
_SECRET_WORDS = ("password", "secret", "access_token", "bearer", "api_key", "apikey", "authorization", "ciphertext")
# LogRecord attributes: a field of this name would make `logging` refuse the record.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


# Keys are the call sites' field names and Powertools' own: a small set, each checked once per instance
# rather than word by word on every line (a line has about 25 keys).
@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    return any(word in key.lower() for word in _SECRET_WORDS)


def _safe(keys: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in keys.items() if v is not None and not is_secret_key(k)}


class JsonFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON lines (timestamp, level, location, service, X-Ray trace id), never a secret key."""

    def __init__(self, **options: Any) -> None:
        super().__init__(utc=True, use_rfc3339=True, **{"service": SERVICE, **options})

    def serialize(self, log: Dict[str, Any]) -> str:
        return super().serialize({k: v for k, v in log.items() if not is_secret_key(str(k))})


class FieldLogger(logging.LoggerAdapter):
    """The standard logging calls, with `extra={"fields": {...}}` flattened into the line."""

    def __init__(self, logger: logging.Logger, name: str) -> None:
        super().__init__(logger, {})
        self.component = name

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> Tuple[Any, MutableMapping[str, Any]]:
        extra = dict(kwargs.get("extra") or {})
        fields = extra.pop("fields", None)
        line: Dict[str, Any] = {"logger": self.component, **extra}
        if isinstance(fields, dict):
            for key, value in _safe(fields).items():
                line[f"field_{key}" if key in _RECORD_ATTRIBUTES else key] = value
        kwargs["extra"] = line
        return msg, kwargs


_powertools: Optional[Logger] = None


def powertools_logger() -> Logger:
    global _powertools
    if _powertools is None:
        _powertools = Logger(service=SERVICE, level="INFO", stream=sys.stdout, logger_formatter=JsonFormatter())
        logging.getLogger(SERVICE).propagate = False
    return _powertools


def get_logger(name: str = SERVICE) -> FieldLogger:
    logger = powertools_logger()._logger
    return FieldLogger(logger, SERVICE if name == SERVICE else f"{SERVICE}.{name}")


def bind(**keys: Any) -> None:
    powertools_logger().thread_safe_append_keys(**_safe(keys))


def bound() -> Dict[str, Any]:
    """The keys bound to the current request."""
    return dict(powertools_logger().thread_safe_get_current_keys())


def clear() -> None:
    powertools_logger().thread_safe_clear_keys()


_level_applied = False


def apply_level(level: str) -> None:
    """Set the configured level once; called on the first request, when settings can be read."""
    global _level_applied
    if not _level_applied:
        powertools_logger().setLevel(level.upper())
        _level_applied = True
