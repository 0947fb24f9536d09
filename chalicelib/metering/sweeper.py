"""The sweeper: gives back reservations whose handler died before writing their usage event.

Every admission counts its call into a 10-minute sweep bucket on the admission item (reservations
and their worst case, per feature); the aggregator counts into the same bucket, on the
reconciliation item, every event it folds. Once no call of a bucket can still be running (the
handler's timeout) and the stream has had time to deliver (`GRACE_SECONDS`), any difference is a
reservation nobody will settle. For each such bucket and feature the sweeper writes one usage event
(status abandoned, id fixed by tenant, bucket and feature, written only if absent: exactly once) and
the aggregator, folding it, gives back the unaccounted admissions and worst case. A settle that
arrives after that (a handler that was only slow) is counted as a late charge: once.

It reads only the tenants the aggregator marked for a bucket, so its work follows activity, not the
number of tenants; it runs every 10 minutes (app.py), so a reservation comes back within about 25.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Dict, List, Optional

from pynamodb.exceptions import PutError

from chalicelib.logs import get_logger
from chalicelib.metering import counter_keys as keys
from chalicelib.metering.admission import BUCKET_SECONDS, bucket_of
from chalicelib.metering.ledger import ABANDONED
from chalicelib.models import Admission, Reconciliation, SweepMark, UsageEvent
from chalicelib.periods import period_of
from chalicelib.settings import get_settings
from chalicelib.store import condition_failed, get_items

log = get_logger("sweeper")

GRACE_SECONDS = 300  # past the handler timeout (28 s) and the stream's usual delivery, with room
LOOKBACK_BUCKETS = 144  # a day: a sweeper down for hours still finds what it missed


@dataclass
class Report:
    buckets: int = 0
    tenants: int = 0
    reclaims: int = 0
    resolved: int = 0


def sweepable(now: datetime) -> List[int]:
    """Buckets whose every call has ended (newest last)."""
    last = bucket_of(now.timestamp() - GRACE_SECONDS) - 1
    return list(range(last - LOOKBACK_BUCKETS + 1, last + 1))


def sweep(now: Optional[datetime] = None) -> Report:
    now = now or datetime.now(timezone.utc)
    report = Report()
    for bucket in sweepable(now):
        marks = list(SweepMark.query(f"SWEEP#{bucket}", consistent_read=True))
        if not marks:
            continue
        report.buckets += 1
        for start in range(0, len(marks), 50):
            chunk = marks[start:start + 50]
            refs = []
            for mark in chunk:
                refs += [(Admission, mark.sk, Admission.SK), (Reconciliation, mark.sk, Reconciliation.SK)]
            found = get_items(refs, consistent=True)
            for index, mark in enumerate(chunk):
                admitted, reconciled = found[2 * index], found[2 * index + 1]
                report.tenants += 1
                _sweep_tenant(mark, bucket, admitted, reconciled, now, report)
    return report


def _counters(item) -> Dict[str, int]:
    return {k: int(v) for k, v in (item.counters.as_dict() if item is not None and item.counters else {}).items()}


def _sweep_tenant(mark: SweepMark, bucket: int, admitted: Optional[Admission], reconciled: Optional[Reconciliation],
                  now: datetime, report: Report) -> None:
    reserved, accounted = _counters(admitted), _counters(reconciled)
    features = keys.bucket_features(reserved, bucket)
    open_features = [f for f in features
                     if keys.reclaimed_key(bucket, f) not in accounted
                     and (reserved[keys.bucket_count_key(bucket, f)] > accounted.get(keys.bucket_count_key(bucket, f), 0)
                          or reserved.get(keys.bucket_worst_key(bucket, f), 0)
                          > accounted.get(keys.bucket_worst_key(bucket, f), 0))]
    for feature in open_features:
        if _write_reclaim(mark, bucket, feature, reserved, now):
            report.reclaims += 1
    if open_features:
        return  # resolved on a later run, once the aggregator has folded the reclaims
    if admitted is not None and features:
        stale = [Admission.counters[key].remove() for feature in features
                 for key in (keys.bucket_count_key(bucket, feature), keys.bucket_worst_key(bucket, feature))]
        Admission(mark.sk, Admission.SK).update(actions=stale)
    mark.delete()
    report.resolved += 1


def reclaim_request_id(bucket: int, feature: str) -> str:
    """Sorts with the bucket's own requests (the bucket's last millisecond) and is the same on every run."""
    last_ms = (bucket + 1) * BUCKET_SECONDS * 1000 - 1
    return f"req_{last_ms:012x}reclaim{feature}"


def _write_reclaim(mark: SweepMark, bucket: int, feature: str, reserved: Dict[str, int], now: datetime) -> bool:
    request_id = reclaim_request_id(bucket, feature)
    started = datetime.fromtimestamp(bucket * BUCKET_SECONDS, tz=timezone.utc)
    event = UsageEvent(
        mark.sk, UsageEvent.sk_for(request_id), request_id=request_id, principal_id="sweeper",
        principal_type="system", feature=feature, model="unknown", status=ABANDONED, period=period_of(started),
        bucket=bucket, worst_case_micros=0, cost_micros=0, key_source="unknown", created_at=started,
        reclaimed={"count": reserved.get(keys.bucket_count_key(bucket, feature), 0),
                   "worst": reserved.get(keys.bucket_worst_key(bucket, feature), 0)},
        expires_at=started + timedelta(days=get_settings().usage_retention_days))
    try:
        event.save(condition=UsageEvent.pk.does_not_exist())
    except PutError as error:
        if condition_failed(error):
            return False
        raise
    log.warning("abandoned reservations reclaimed", extra={"fields": {
        "tenant_id": mark.tenant_id, "bucket": bucket, "feature": feature}})
    return True
