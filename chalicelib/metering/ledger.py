"""The usage ledger: every reservation ends in exactly one usage event, written by one PutItem.

    admit   chalicelib.metering.admission.reserve: one conditional UpdateItem
    settle  the call answered: an event with its tokens and exact cost (status ok; a streamed call
            cut off before its end is charged as incomplete, with max_tokens as its output)
    release the call failed before the model could bill it: an event with no cost (status failed);
            its admission and worst case go back to the admission item before the answer is sent
            (`release_at_once`), so an immediate retry is not refused for a quota the call never used
    unsure  the request reached the model but no answer came back (our timeout, a dropped
            connection): an event with no charge and the call's cost bound (status indeterminate)

The event's key is the request id and it is written only if absent, so a second
settle of the same request changes nothing. Totals, refunds of the unused worst
case and released admissions follow from the events through the table's stream
(chalicelib.metering.aggregator), exactly once, off the request path. A
reservation whose handler died before writing its event is found by the
sweeper (chalicelib.metering.sweeper) and given back.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Optional

from chalicelib.logs import get_logger
from chalicelib.metering import principal_admission
from chalicelib.metering.admission import AdmissionView, Reservation, give_back
from chalicelib.models import UsageEvent, tenant_pk
from chalicelib.settings import get_settings
from chalicelib.store import put_new, raw_item

log = get_logger("metering")

OK, FAILED, INDETERMINATE, ABANDONED = "ok", "failed", "indeterminate", "abandoned"
# A streamed call cut off before its end: charged with max_tokens as output, its real output unknown.
INCOMPLETE = "incomplete"
CHARGED = (OK, INCOMPLETE)
# A failed call gives its admission back at once only while its sweep bucket cannot have been swept
# (chalicelib.metering.sweeper reclaims a bucket GRACE_SECONDS, 300, after it ends): later, the sweeper
# may already have given it back, and the aggregator, which knows, does it instead.
RELEASE_AT_ONCE_SECONDS = 240


@dataclass(frozen=True)
class Settlement:
    principal_id: str
    principal_type: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_read_tokens: int = 0
    cost_micros: int = 0
    latency_ms: int = 0
    own_key: bool = False
    status: str = OK
    upstream_request_id: Optional[str] = None
    given_back: bool = False
    provider: Optional[str] = None  # who answered: anthropic or bedrock
    upstream_attempts: Optional[str] = None  # each attempt's outcome, in order
    # Upstream attempts that may have been billed without answering (chalicelib/ai/failover.py): each may
    # have cost up to the call's worst case, which the event's cost bound then counts.
    unanswered_attempts: int = 0


def record(reservation: Reservation, result: Settlement, batch_id: Optional[str] = None,
           custom_id: Optional[str] = None) -> bool:
    """Write the reservation's one event. Returns False when this request was already recorded.
    A Message Batch request's event names its batch and custom_id (chalicelib/metering/batch_ledger.py)."""
    retention = get_settings().usage_retention_days * 86400
    # What upstream may have billed beyond the charge: an indeterminate call's worst case (once for each attempt
    # that got no answer, when it made several), or, for a call answered after such attempts, theirs.
    if result.status == INDETERMINATE:
        bound: Optional[int] = reservation.worst_case_micros * max(1, result.unanswered_attempts)
    else:
        bound = reservation.worst_case_micros * result.unanswered_attempts or None
    # The event as DynamoDB JSON straight from the model's attributes: a 22-attribute model instance
    # and its PutItem through PynamoDB took about 0.4 ms of a warm request's own 2.7 ms.
    item = raw_item(
        UsageEvent, pk=tenant_pk(reservation.tenant_id), sk=UsageEvent.sk_for(reservation.request_id),
        request_id=reservation.request_id, principal_id=result.principal_id,
        principal_type=result.principal_type, feature=reservation.feature, model=result.model,
        status=result.status, period=reservation.period, bucket=reservation.bucket,
        input_tokens=result.input_tokens, output_tokens=result.output_tokens,
        cache_creation_tokens=result.cache_creation_tokens, cache_read_tokens=result.cache_read_tokens,
        cost_micros=result.cost_micros if result.status in CHARGED else 0,
        worst_case_micros=reservation.worst_case_micros, cost_bound_micros=bound, latency_ms=result.latency_ms,
        key_source="tenant" if result.own_key else "platform", upstream_request_id=result.upstream_request_id,
        provider=result.provider, upstream_attempts=result.upstream_attempts,
        batch_id=batch_id, custom_id=custom_id, given_back=True if result.given_back else None,
        created_at=reservation.started_at, expires_at=reservation.started_at + timedelta(seconds=retention),
    )
    if reservation.principal_budget is not None and batch_id is None:
        refund, released = principal_admission.give_back(result.status in CHARGED, result.status == FAILED,
                                                         reservation.worst_case_micros, result.cost_micros)
        written = principal_admission.record_with_budget(item, reservation.tenant_id, reservation.principal_budget,
                                                         reservation.period, refund, released)
        if written is not None:
            if not written:
                log.info("usage already recorded", extra={"fields": {"request_id": reservation.request_id}})
            return written
    if not put_new(UsageEvent, item):
        log.info("usage already recorded", extra={"fields": {"request_id": reservation.request_id}})
        return False
    return True


def gives_back_at_once(reservation: Reservation, status: str, now: Optional[datetime] = None) -> bool:
    """Whether a call ending with `status` gives its admission back before its answer: a failure that
    was never billed, young enough that no sweep can have reclaimed it."""
    age = ((now or datetime.now(timezone.utc)) - reservation.started_at).total_seconds()
    return status == FAILED and age < RELEASE_AT_ONCE_SECONDS


def release_at_once(reservation: Reservation, result: Settlement) -> Optional[AdmissionView]:
    """Record a failed call and give its admission and worst case back: the event first, marked
    `given_back` and written only if absent, so the give-back happens at most once per request and the
    aggregator, folding the event, returns nothing more; then one UpdateItem on the admission item.
    Returns the admission item as that write left it. Should the second write not happen, the sweeper
    finds the reservation unaccounted and gives it back, once."""
    if not record(reservation, replace(result, status=FAILED, given_back=True)):
        return None
    return give_back(reservation)
