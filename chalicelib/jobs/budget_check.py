"""The scheduled budget check: alert each tenant once per threshold crossed per month.

Reads: the sparse index of tenants with a budget, then one BatchGetItem of
their month aggregates per 100 tenants; nothing here grows with the number of
usage events. Safe under at-least-once delivery: an alert is first claimed with
a conditional write (one claim per tenant, month and threshold), then sent,
then marked sent together with the month's `alerts_sent`. Two concurrent runs
cannot both win a claim. A run that dies after claiming leaves a lease that a
later run may take over once it expires; only a crash between sending and
marking can repeat an alert. In the first hours of a month the run also
checks the month before, so spend settled after that month's last run is
not left unalerted.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Dict, Iterable, List, Optional

from pynamodb.exceptions import PutError

from chalicelib import pricing
from chalicelib.logs import get_logger
from chalicelib.models import BUDGET_PARTITION, AlertClaim, Tenant, UsagePeriod, User, tenant_pk
from chalicelib.notify import Notifier
from chalicelib.periods import period_of
from chalicelib.store import condition_failed, retry_conflicts, transaction
from chalicelib.tenants import DEFAULT_THRESHOLDS

log = get_logger("budget-check")
LEASE_SECONDS = 600
LATE_SPEND_HOURS = 2
BATCH = 100


@dataclass
class Report:
    period: str
    tenants_checked: int = 0
    alerts_sent: List[Dict[str, object]] = field(default_factory=list)
    alerts_skipped: int = 0


def crossed(spent_micros: int, budget_micros: int, thresholds: Iterable[int]) -> List[int]:
    if spent_micros <= 0:
        return []
    return sorted(t for t in thresholds if spent_micros * 100 >= budget_micros * t)


def _aggregates(tenants: List[Tenant], period: str) -> Dict[str, UsagePeriod]:
    found: Dict[str, UsagePeriod] = {}
    for start in range(0, len(tenants), BATCH):
        keys = [(tenant_pk(t.tenant_id), UsagePeriod.sk_for(period)) for t in tenants[start:start + BATCH]]
        for item in UsagePeriod.batch_get(keys):
            found[item.pk] = item
    return found


def _claim(tenant_id: str, period: str, threshold: int, now: float) -> Optional[AlertClaim]:
    claim = AlertClaim(tenant_pk(tenant_id), AlertClaim.sk_for(period, threshold), period=period,
                       threshold=threshold, status="sending", lease_until=int(now) + LEASE_SECONDS,
                       claimed_at=datetime.now(timezone.utc))
    expired_lease = (AlertClaim.status == "sending") & (AlertClaim.lease_until < int(now))
    try:
        claim.save(condition=AlertClaim.pk.does_not_exist() | expired_lease)
    except PutError as error:
        if condition_failed(error):
            return None
        raise
    return claim


def _owners(tenant_id: str) -> List[str]:
    users = User.query(tenant_pk(tenant_id), User.sk.startswith("USER#"), filter_condition=User.role == "owner")
    return [u.email for u in users]


def _send(notifier: Notifier, tenant: Tenant, period: str, threshold: int, spent: int, budget: int) -> None:
    spent_usd, budget_usd = pricing.usd(spent), pricing.usd(budget)
    subject = f"Tessera budget alert: {tenant.name} reached {threshold}% of its monthly budget"
    text = (f"Tenant {tenant.name} ({tenant.slug}) has spent ${spent_usd} of its ${budget_usd} budget for {period} "
            f"({threshold}% threshold).")
    notifier.publish(subject, text, {"tenant_id": tenant.tenant_id, "threshold": str(threshold),
                                     "spent_usd": spent_usd, "budget_usd": budget_usd, "period": period})
    owners = _owners(tenant.tenant_id)
    if owners:
        notifier.email(owners, subject, text)


def _mark_sent(claim: AlertClaim, tenant_id: str, period: str, threshold: int) -> None:
    def write() -> None:
        with transaction() as tx:
            tx.update(claim, actions=[AlertClaim.status.set("sent"),
                                      AlertClaim.sent_at.set(datetime.now(timezone.utc))])
            tx.update(UsagePeriod(tenant_pk(tenant_id), UsagePeriod.sk_for(period)),
                      actions=[UsagePeriod.alerts_sent.add({threshold}), UsagePeriod.period.set(period)])

    retry_conflicts(write)


def periods_to_check(now: datetime) -> List[str]:
    """The current month, and for the first hours of a month also the one before: spend settled after
    last month's final run still gets its alerts."""
    return sorted({period_of(now - timedelta(hours=LATE_SPEND_HOURS)), period_of(now)})


def check_budgets(now: Optional[datetime] = None, notifier: Optional[Notifier] = None) -> Report:
    now = now or datetime.now(timezone.utc)
    notifier = notifier or Notifier()
    report = Report(period=period_of(now))
    tenants = [t for t in Tenant.with_budget.query(BUDGET_PARTITION) if t.monthly_budget_micros is not None]
    report.tenants_checked = len(tenants)
    for period in periods_to_check(now):
        aggregates = _aggregates(tenants, period)
        for tenant in tenants:
            _check_tenant(tenant, aggregates.get(tenant_pk(tenant.tenant_id)), period, notifier, report)
    return report


def _check_tenant(tenant: Tenant, aggregate: Optional[UsagePeriod], period: str, notifier: Notifier,
                  report: Report) -> None:
    spent = int(aggregate.cost_micros) if aggregate else 0
    already = {int(t) for t in (aggregate.alerts_sent or [])} if aggregate else set()
    budget = int(tenant.monthly_budget_micros)
    for threshold in crossed(spent, budget, tenant.budget_alert_thresholds or DEFAULT_THRESHOLDS):
        if threshold in already:
            continue
        claim = _claim(tenant.tenant_id, period, threshold, time.time())
        if claim is None:
            report.alerts_skipped += 1
            continue
        fields = {"tenant_id": tenant.tenant_id, "period": period, "threshold": threshold}
        try:
            _send(notifier, tenant, period, threshold, spent, budget)
        except Exception as error:  # the claim's lease expires and a later run retries
            log.error("budget alert failed", extra={"fields": {**fields, "error": type(error).__name__}})
            continue
        report.alerts_sent.append(fields)
        try:
            _mark_sent(claim, tenant.tenant_id, period, threshold)
        except Exception as error:  # sent but not marked: a run after the lease may send it again
            log.error("budget alert not marked sent", extra={"fields": {**fields, "error": type(error).__name__}})
            continue
        log.info("budget alert sent", extra={"fields": fields})
