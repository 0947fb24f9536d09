"""Admission and settlement of AI calls: each is reserved, then settled or released, exactly once.

reserve: one TransactWriteItems that adds 1 to the feature's monthly counter,
         1 to the tenant's current-minute counter and the call's worst-case cost
         to the month's committed spend, each under a condition that keeps it
         within its limit. Either all three move or none does.
settle:  one TransactWriteItems that writes the usage event (only if no event
         with that request id exists) and adds the actual tokens and cost to the
         month's and the feature's totals, giving back the unused part of the
         reservation. A second settle of the same request changes nothing.
release: gives back the feature admission and the reserved cost of a call
         that failed upstream, so failures never consume quota or money.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Optional

from pynamodb.exceptions import TransactWriteError

from chalicelib.errors import PaymentRequired, TooManyRequests
from chalicelib.logs import get_logger
from chalicelib.models import FeatureUsage, RateWindow, UsageEvent, UsagePeriod, tenant_pk
from chalicelib.periods import isoformat, period_end, period_of
from chalicelib.settings import get_settings
from chalicelib.store import cancelled_because, conflicted, retry_conflicts, transaction

log = get_logger("metering")


@dataclass(frozen=True)
class Limits:
    feature_limit: Optional[int]
    requests_per_minute: int
    budget_micros: Optional[int]
    hard_limit: bool


@dataclass(frozen=True)
class Reservation:
    tenant_id: str
    request_id: str
    feature: str
    period: str
    worst_case_micros: int
    started_at: datetime


@dataclass(frozen=True)
class Settlement:
    principal_id: str
    principal_type: str
    model: str
    input_tokens: int
    output_tokens: int
    cache_creation_tokens: int
    cache_read_tokens: int
    cost_micros: int
    latency_ms: int
    own_key: bool
    status: str = "ok"
    upstream_request_id: Optional[str] = None


def _token(step: str, request_id: str) -> str:
    """A ClientRequestToken: an SDK retry of a transaction that did commit is then not applied twice."""
    return f"{step}-{request_id.removeprefix('req_')}"


def reserve(tenant_id: str, request_id: str, feature: str, limits: Limits, worst_case_micros: int,
            now: Optional[datetime] = None) -> Reservation:
    now = now or datetime.now(timezone.utc)
    period = period_of(now)
    pk = tenant_pk(tenant_id)
    if limits.feature_limit is not None and limits.feature_limit <= 0:
        raise _feature_limit_error(feature, period, now)
    if limits.hard_limit and limits.budget_micros is not None and worst_case_micros > limits.budget_micros:
        raise _budget_error()
    minute = now.strftime("%Y%m%d%H%M")
    feature_item = FeatureUsage(pk, FeatureUsage.sk_for(period, feature))
    feature_condition = None
    if limits.feature_limit is not None:
        feature_condition = FeatureUsage.admitted.does_not_exist() | (FeatureUsage.admitted < limits.feature_limit)
    budget_condition = None
    if limits.hard_limit and limits.budget_micros is not None:
        headroom = limits.budget_micros - worst_case_micros
        budget_condition = (UsagePeriod.committed_micros.does_not_exist()
                            | (UsagePeriod.committed_micros <= headroom))
    def write() -> None:
        with transaction(_token("reserve", request_id)) as tx:
            tx.update(feature_item, actions=[FeatureUsage.admitted.add(1), FeatureUsage.feature.set(feature)],
                      condition=feature_condition)
            tx.update(RateWindow(pk, RateWindow.sk_for(minute)),
                      actions=[RateWindow.count.add(1), RateWindow.expires_at.set(now + timedelta(minutes=3))],
                      condition=RateWindow.count.does_not_exist() | (RateWindow.count < limits.requests_per_minute))
            tx.update(UsagePeriod(pk, UsagePeriod.sk_for(period)),
                      actions=[UsagePeriod.committed_micros.add(worst_case_micros), UsagePeriod.period.set(period)],
                      condition=budget_condition)

    try:
        retry_conflicts(write)
    except TransactWriteError as error:
        if cancelled_because(error, 1):
            raise TooManyRequests("Too many requests this minute for this tenant.",
                                  retry_after=60 - now.second, code="rate_limited") from None
        if cancelled_because(error, 0):
            raise _feature_limit_error(feature, period, now) from None
        if cancelled_because(error, 2):
            raise _budget_error() from None
        if conflicted(error):
            raise TooManyRequests("Too many simultaneous requests for this tenant; retry shortly.",
                                  retry_after=1, code="rate_limited") from None
        raise
    return Reservation(tenant_id, request_id, feature, period, worst_case_micros, now)


def _feature_limit_error(feature: str, period: str, now: datetime) -> TooManyRequests:
    resets = period_end(period)
    return TooManyRequests(f"The monthly limit for {feature} is reached. It resets at {isoformat(resets)}.",
                           retry_after=int((resets - now).total_seconds()), code="feature_limit_reached",
                           details={"feature": feature, "resets_at": isoformat(resets)})


def _budget_error() -> PaymentRequired:
    return PaymentRequired("This request could exceed the tenant's monthly budget, which is a hard limit.")


def release(reservation: Reservation) -> None:
    pk = tenant_pk(reservation.tenant_id)

    def write() -> None:
        with transaction(_token("release", reservation.request_id)) as tx:
            tx.update(FeatureUsage(pk, FeatureUsage.sk_for(reservation.period, reservation.feature)),
                      actions=[FeatureUsage.admitted.add(-1)])
            tx.update(UsagePeriod(pk, UsagePeriod.sk_for(reservation.period)),
                      actions=[UsagePeriod.committed_micros.add(-reservation.worst_case_micros)])

    retry_conflicts(write)


def settle(reservation: Reservation, result: Settlement) -> bool:
    """Record the call once. Returns False when this request was already settled."""
    pk = tenant_pk(reservation.tenant_id)
    retention = get_settings().usage_retention_days * 86400
    event = UsageEvent(
        pk, UsageEvent.sk_for(reservation.request_id), request_id=reservation.request_id,
        principal_id=result.principal_id, principal_type=result.principal_type, feature=reservation.feature,
        model=result.model, status=result.status, input_tokens=result.input_tokens,
        output_tokens=result.output_tokens, cache_creation_tokens=result.cache_creation_tokens,
        cache_read_tokens=result.cache_read_tokens, cost_micros=result.cost_micros, latency_ms=result.latency_ms,
        key_source="tenant" if result.own_key else "platform", upstream_request_id=result.upstream_request_id,
        created_at=reservation.started_at, expires_at=timedelta(seconds=retention),
    )
    source_requests = UsagePeriod.own_key_requests if result.own_key else UsagePeriod.pool_requests
    source_cost = UsagePeriod.own_key_cost_micros if result.own_key else UsagePeriod.pool_cost_micros

    def write() -> None:
        with transaction(_token("settle", reservation.request_id)) as tx:
            tx.save(event, condition=UsageEvent.pk.does_not_exist())
            tx.update(UsagePeriod(pk, UsagePeriod.sk_for(reservation.period)), actions=[
                UsagePeriod.requests.add(1),
                UsagePeriod.input_tokens.add(result.input_tokens),
                UsagePeriod.output_tokens.add(result.output_tokens),
                UsagePeriod.cache_creation_tokens.add(result.cache_creation_tokens),
                UsagePeriod.cache_read_tokens.add(result.cache_read_tokens),
                UsagePeriod.cost_micros.add(result.cost_micros),
                UsagePeriod.committed_micros.add(result.cost_micros - reservation.worst_case_micros),
                source_requests.add(1),
                source_cost.add(result.cost_micros),
            ])
            tx.update(FeatureUsage(pk, FeatureUsage.sk_for(reservation.period, reservation.feature)), actions=[
                FeatureUsage.requests.add(1),
                FeatureUsage.input_tokens.add(result.input_tokens),
                FeatureUsage.output_tokens.add(result.output_tokens),
                FeatureUsage.cost_micros.add(result.cost_micros),
            ])

    try:
        retry_conflicts(write)
    except TransactWriteError as error:
        if cancelled_because(error, 0):
            log.info("usage already settled", extra={"fields": {"request_id": reservation.request_id}})
            return False
        raise
    return True
