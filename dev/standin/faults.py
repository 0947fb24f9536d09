"""Faults the stand-in injects on request: queued through `/_standin/faults`, or named in the last user turn
(`[[standin:429]]`, `[[standin:slow=N]]`, `[[standin:event_delay=N]]`)."""
from __future__ import annotations

import re

from dev.standin.validation import RequestError, invalid, is_int, is_number

MAX_SLEEP_SECONDS = 60.0
MAX_FAULT_COUNT = 1000
RETRY_AFTER_SECONDS = "7"

FAULT_STATUSES = {
    401: ("authentication_error", "invalid x-api-key (stand-in fault injection)"),
    429: ("rate_limit_error", "rate limit exceeded (stand-in fault injection)"),
    500: ("api_error", "internal server error (stand-in fault injection)"),
    529: ("overloaded_error", "overloaded (stand-in fault injection)"),
}

MAGIC_STATUS_RE = re.compile(r"\[\[standin:(429|529|500)\]\]")
MAGIC_SLOW_RE = re.compile(r"\[\[standin:slow=(\d+(?:\.\d*)?|\.\d+)\]\]")
MAGIC_EVENT_DELAY_RE = re.compile(r"\[\[standin:event_delay=(\d+(?:\.\d*)?|\.\d+)\]\]")


def fault_error(status: int) -> RequestError:
    error_type, message = FAULT_STATUSES[status]
    headers = {"retry-after": RETRY_AFTER_SECONDS} if status == 429 else {}
    return RequestError(status, error_type, message, headers)


def magic_delay(text: str) -> float:
    match = MAGIC_SLOW_RE.search(text)
    return min(float(match.group(1)), MAX_SLEEP_SECONDS) if match else 0.0


def magic_event_delay(text: str) -> float:
    match = MAGIC_EVENT_DELAY_RE.search(text)
    return min(float(match.group(1)), MAX_SLEEP_SECONDS) if match else 0.0


def magic_status(text: str) -> int | None:
    match = MAGIC_STATUS_RE.search(text)
    return int(match.group(1)) if match else None


def parse_fault_spec(body: object) -> tuple[dict, int]:
    if not isinstance(body, dict):
        raise invalid("fault spec must be a JSON object")
    status = body.get("status")
    delay = body.get("delay_seconds")
    count = body.get("count", 1)
    if status is None and delay is None:
        raise invalid('fault spec needs "status" and/or "delay_seconds"')
    if status is not None and (not is_int(status) or status not in FAULT_STATUSES):
        raise invalid(f"status: must be one of {sorted(FAULT_STATUSES)}")
    if delay is not None and (not is_number(delay) or not 0 <= delay <= MAX_SLEEP_SECONDS):
        raise invalid(f"delay_seconds: must be a number between 0 and {MAX_SLEEP_SECONDS:g}")
    if not is_int(count) or not 1 <= count <= MAX_FAULT_COUNT:
        raise invalid(f"count: must be an integer between 1 and {MAX_FAULT_COUNT}")
    return {"status": status, "delay_seconds": float(delay or 0)}, count
