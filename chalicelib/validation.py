"""Request bodies: strict JSON objects with known fields and checked values.

Unknown fields are rejected (a client can never set what it was not offered),
and every failure is a 400 that names the field, raised before anything is written.
"""
from __future__ import annotations

import json
import re
from typing import Any, Iterable, Mapping, Optional

from chalicelib.errors import BadRequest, PayloadTooLarge

DEFAULT_MAX_BODY_BYTES = 256 * 1024
_EMAIL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")


def json_object(raw: Optional[bytes], max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> dict:
    if raw is not None and len(raw) > max_bytes:
        raise PayloadTooLarge(f"The request body is larger than {max_bytes} bytes.")
    if not raw:
        raise BadRequest("The request body must be a JSON object.", code="invalid_json")
    try:
        body = json.loads(raw, parse_constant=_not_json)
        # JSON may carry lone surrogates ("\ud800"), which no UTF-8 string (or DynamoDB item) can hold.
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeError, RecursionError):
        raise BadRequest("The request body is not valid JSON.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_json")
    return body


def _not_json(constant: str) -> None:
    """NaN and Infinity are Python's extensions to JSON, not JSON."""
    raise ValueError(constant)


def fields(body: Mapping[str, Any], allowed: Iterable[str], required: Iterable[str] = ()) -> None:
    allowed = set(allowed)
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"Unknown field(s): {', '.join(unknown)}.", code="unknown_field")
    missing = [name for name in required if body.get(name) is None]
    if missing:
        raise BadRequest(f"Missing required field(s): {', '.join(missing)}.", code="missing_field")


def string(body: Mapping[str, Any], name: str, *, min_len: int = 1, max_len: int = 200,
           pattern: Optional[re.Pattern] = None, hint: str = "") -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string.", code="invalid_field")
    if not (min_len <= len(value) <= max_len):
        raise BadRequest(f"{name} must be {min_len} to {max_len} characters long.", code="invalid_field")
    if pattern is not None and not pattern.fullmatch(value):  # fullmatch: `$` would allow a trailing newline
        raise BadRequest(f"{name} is not valid{': ' + hint if hint else ''}.", code="invalid_field")
    return value


# Control characters (Unicode category Cc), and the line and paragraph separators (Zl, Zp): nothing a name
# shown to people (or placed into a system prompt) should carry. Each run becomes one space. Written out,
# not derived by scanning every code point at import (which cost a cold start 0.15-0.5 s): Cc is fixed by
# Unicode's stability policy, and Zl and Zp hold one character each (tests/unit/test_validation.py checks).
CONTROL_CHARACTERS = "\x00-\x1f\x7f-\x9f\u2028\u2029"
_CONTROL_RUN = re.compile(f"[{CONTROL_CHARACTERS}]+")


def display_name(body: Mapping[str, Any], name: str, max_len: int) -> str:
    """A one-line name: control characters and line breaks become spaces, surrounding whitespace goes,
    and what is left must not be blank."""
    value = _CONTROL_RUN.sub(" ", string(body, name, min_len=1, max_len=max_len)).strip()
    if not value:
        raise BadRequest(f"{name} must not be blank.", code="invalid_field")
    return value


def as_integer(value: Any) -> Optional[int]:
    """`value` as an int if JSON Schema's `integer` accepts it (2709 and 2709.0 alike), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def integer(body: Mapping[str, Any], name: str, *, minimum: int, maximum: int) -> int:
    value = as_integer(body.get(name))
    if value is None:
        raise BadRequest(f"{name} must be an integer.", code="invalid_field")
    if not (minimum <= value <= maximum):
        raise BadRequest(f"{name} must be between {minimum} and {maximum}.", code="invalid_field")
    return value


_ASCII_DIGITS = re.compile(r"[0-9]{1,6}")


def page_size(value: Optional[str], maximum: int, default: int = 50, name: str = "limit") -> int:
    """A `limit` (or other count) query parameter: ASCII digits only (str.isdecimal would take ١٠ too),
    1 to `maximum`."""
    if value in (None, ""):
        return default
    if not _ASCII_DIGITS.fullmatch(value) or not 1 <= int(value) <= maximum:
        raise BadRequest(f"{name} must be a whole number from 1 to {maximum}.", code=f"invalid_{name}")
    return int(value)


def number(body: Mapping[str, Any], name: str, *, minimum: float, maximum: float) -> float:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"{name} must be a number.", code="invalid_field")
    if not (minimum <= value <= maximum):
        raise BadRequest(f"{name} must be between {minimum} and {maximum}.", code="invalid_field")
    return value


def boolean(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name)
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false.", code="invalid_field")
    return value


def query_flag(value: Optional[str], name: str) -> bool:
    """A boolean query parameter: `true` or `false`, absent meaning false."""
    if value in (None, "false"):
        return False
    if value == "true":
        return True
    raise BadRequest(f"{name} must be true or false.", code="invalid_field")


def one_of(body: Mapping[str, Any], name: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    value = body.get(name)
    if value not in choices:
        raise BadRequest(f"{name} must be one of: {', '.join(choices)}.", code="invalid_field")
    return value


def email(body: Mapping[str, Any], name: str = "email") -> str:
    value = string(body, name, min_len=3, max_len=254)
    if not _EMAIL.fullmatch(value):
        raise BadRequest(f"{name} is not a valid email address.", code="invalid_field")
    return value.strip().lower()
