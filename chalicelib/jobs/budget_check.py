"""The scheduled budget check: alert each tenant once per threshold crossed per month.

Fan-out: the sparse index gsi2 lists budgeted tenants in `BUDGET_SEGMENTS`
partitions (`BUDGETED#<n>`, see `models.budget_segment`), and one run checks
the segments on parallel threads. A segment is read page by page; each chunk
of up to 100 tenants (BatchGetItem's limit) costs one BatchGetItem of their
month aggregates per period checked, so nothing here grows with the number of
usage events. A segment that fails is retried within the run, and one that
still fails is reported without stopping the others; the scheduled handler
then fails the invocation so Lambda runs the job again (docs/scaling.md,
"Budget job").

Every part is idempotent and safe under at-least-once delivery: an alert is
first claimed with a conditional write (one claim per tenant, month and
threshold), then sent, then marked sent together with the month's
`alerts_sent`. Two concurrent runs, or a segment checked twice, cannot both
win a claim. A run that dies after claiming leaves a lease that a later run
may take over once it expires; only a crash between sending and marking can
repeat an alert. In the first hours of a month the run also checks the month
before, so spend settled after that month's last run is not left unalerted.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from itertools import islice
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

from pynamodb.exceptions import PutError

from chalicelib import pricing
from chalicelib.jobs import principal_alerts
from chalicelib.logs import get_logger
from chalicelib.models import AlertClaim, Tenant, UsagePeriod, User, budget_segments, tenant_pk
from chalicelib.notify import Notifier
from chalicelib.periods import period_of
from chalicelib.store import THROTTLED, condition_failed, retry_conflicts, transaction
from chalicelib.tenants import DEFAULT_THRESHOLDS

log = get_logger("budget-check")
LEASE_SECONDS = 600
LATE_SPEND_HOURS = 2
BATCH = 100  # BatchGetItem reads at most 100 keys per call
WORKERS = len(budget_segments())
# A segment that fails for any reason (after botocore's own retries: throttling that outlasts them, mostly)
# is checked again with the backoff for throttling (chalicelib/store.py THROTTLED); the others go on meanwhile.
SEGMENT_ATTEMPTS = THROTTLED.attempts


class IncompleteRun(RuntimeError):
    """Some segments failed every attempt; running the job again checks them (and repeats no alert)."""


@dataclass
class Report:
    period: str
    segments: int = 0
    tenants_checked: int = 0
    alerts_sent: List[Dict[str, object]] = field(default_factory=list)
    alerts_skipped: int = 0
    segments_failed: List[str] = field(default_factory=list)

    def add(self, part: "Report") -> None:
        self.tenants_checked += part.tenants_checked
        self.alerts_sent += part.alerts_sent
        self.alerts_skipped += part.alerts_skipped

    def summary(self) -> Dict[str, object]:
        return {"period": self.period, "segments": self.segments, "tenants_checked": self.tenants_checked,
                "alerts_sent": len(self.alerts_sent), "alerts_skipped": self.alerts_skipped,
                "segments_failed": list(self.segments_failed)}

    def raise_if_incomplete(self) -> None:
        if self.segments_failed:
            raise IncompleteRun(f"Budget segments failed after {SEGMENT_ATTEMPTS} attempts: "
                                f"{', '.join(self.segments_failed)}.")


def crossed(spent_micros: int, budget_micros: int, thresholds: Iterable[int]) -> List[int]:
    if spent_micros <= 0:
        return []
    return sorted(t for t in thresholds if spent_micros * 100 >= budget_micros * t)


def periods_to_check(now: datetime) -> List[str]:
    """The current month, and for the first hours of a month also the one before: spend settled after
    last month's final run still gets its alerts."""
    return sorted({period_of(now - timedelta(hours=LATE_SPEND_HOURS)), period_of(now)})


def check_budgets(now: Optional[datetime] = None, notifier: Optional[Notifier] = None,
                  workers: int = WORKERS) -> Report:
    """One run over every segment, `workers` segments at a time."""
    now = now or datetime.now(timezone.utc)
    notifier = notifier or Notifier()
    periods = periods_to_check(now)
    segments = budget_segments()
    report = Report(period=period_of(now), segments=len(segments))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="budget-segment") as pool:
        outcomes = list(pool.map(lambda segment: _check_with_retries(segment, periods, notifier), segments))
    for segment, (part, done) in zip(segments, outcomes):
        report.add(part)
        if not done:
            report.segments_failed.append(segment)
    return report


def _check_with_retries(segment: str, periods: List[str], notifier: Notifier) -> Tuple[Report, bool]:
    part = Report(period=periods[-1])
    for attempt in range(1, SEGMENT_ATTEMPTS + 1):
        try:
            part.tenants_checked = check_segment(segment, periods, notifier, part)
            return part, True
        except Exception as error:  # this segment only: the others go on
            log.error("budget segment failed", extra={"fields": {"segment": segment, "attempt": attempt,
                                                                 "error": type(error).__name__}})
            THROTTLED.wait(attempt)
    return part, False


def check_segment(segment: str, periods: List[str], notifier: Notifier, report: Report) -> int:
    """Check every tenant listed in one segment for each period; returns how many were listed. Safe to run
    again or concurrently: alerts already sent or claimed by a live run are skipped."""
    checked = 0
    for tenants in _chunks(_budgeted(segment), BATCH):
        checked += len(tenants)
        for period in periods:
            aggregates = _aggregates(tenants, period)
            for tenant in tenants:
                if tenant.monthly_budget_micros is not None:
                    _check_tenant(tenant, aggregates.get(tenant_pk(tenant.tenant_id)), period, notifier, report)
                principal_alerts.check(tenant, period, notifier, report, _claim, _owners, crossed)
    return checked


def _budgeted(segment: str) -> Iterator[Tenant]:
    return (t for t in Tenant.with_budget.query(segment)
            if t.monthly_budget_micros is not None or t.budgeted_principals)


def _chunks(items: Iterator[Tenant], size: int) -> Iterator[List[Tenant]]:
    while chunk := list(islice(items, size)):
        yield chunk


def _aggregates(tenants: List[Tenant], period: str) -> Dict[str, UsagePeriod]:
    keys = [(tenant_pk(t.tenant_id), UsagePeriod.sk_for(period)) for t in tenants]
    return {item.pk: item for item in UsagePeriod.batch_get(keys)}


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


def _claim(tenant_id: str, period: str, threshold: int, now: float, sk: Optional[str] = None) -> Optional[AlertClaim]:
    """`sk`: a principal budget's own claim (chalicelib/jobs/principal_alerts.py)."""
    claim = AlertClaim(tenant_pk(tenant_id), sk or AlertClaim.sk_for(period, threshold), period=period,
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
    # SNS takes one line of printable ASCII under 100 characters as a subject; a tenant's name may hold
    # anything, so it goes in the message only.
    subject = f"Tessera budget alert: {threshold}% of monthly budget"
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
