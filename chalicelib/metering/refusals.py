"""Counting the calls admission refuses, by reason, so a tenant's console and the operators' list can show
them. No usage event is kept for a refusal: the refused request adds one to its month's counter item.

The count is best effort by design: a refusal is answered whatever happens to this write (a throttled
counter must not turn a 429 into a 500), and a failed count is logged. Only the reasons in
REFUSAL_REASONS are counted; every other 4xx is the caller's mistake, not a limit.
"""
from __future__ import annotations

from chalicelib.errors import TesseraError
from chalicelib.logs import get_logger
from chalicelib.models import REFUSAL_REASONS, RefusalCount, tenant_pk
from chalicelib.periods import current_period

log = get_logger("metering")


def counted(tenant_id: str, error: TesseraError) -> TesseraError:
    """Add the refusal to the month's counters; returns the error for the caller to raise."""
    if error.code in REFUSAL_REASONS:
        item = RefusalCount(tenant_pk(tenant_id), RefusalCount.sk_for(current_period()))
        try:
            item.update(actions=[RefusalCount.requests.add(1), getattr(RefusalCount, error.code).add(1)])
        except Exception as failure:  # noqa: BLE001 - the refusal is answered either way
            log.warning("refusal not counted", extra={"fields": {"code": error.code,
                                                                 "error": type(failure).__name__}})
    return error


def view(item) -> dict:
    """A month's refusals as the API shows them: the total and every reason (0 when none)."""
    return {"total": int(item.requests) if item else 0,
            "by_reason": {reason: int(getattr(item, reason) or 0) if item else 0 for reason in REFUSAL_REASONS}}
