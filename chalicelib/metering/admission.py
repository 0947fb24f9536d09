"""Admission: one conditional UpdateItem on the tenant's admission item per AI request.

The item (`Admission`, sk=ADMISSION) holds the tenant's current limits (with a
version, written by every change) and a map of counters. One write adds the
call to its feature's monthly admissions, its worst-case cost to the month's
committed spend, one to the per-minute rate tails and the call to its sweep
bucket, under a condition that

- the limits this instance used are the current ones (`version`),
- the feature's admissions stay within its limit,
- committed spend plus this call's worst case stays within a hard budget,
- no 60-second span holds more than the per-minute limit (below).

DynamoDB serialises single-item conditional writes, so admissions never
conflict with each other the way transactions do. On a failed condition the
write returns the item as it was (ReturnValuesOnConditionCheckFailure), so the
instance learns the current limits and counters without another read and
either retries with them or refuses with the right error.

What settled calls give back (refunds of unused worst case, released
admissions of failed calls) is written by the usage aggregator to the
tenant's reconciliation item, never to this one: admission subtracts what it
last read there. A stale read of it is a lower bound (refunds only grow), so it
can make admission stricter, never looser; a refusal is confirmed against a
consistent read before it is returned.

The rate limit. Each minute is four 15-second slots; `t:<minute>:<slot>` is
the number admitted in that minute at or after that slot (a tail count). A
call in minute m, slot j is admitted only if tail(m-1, j) + tail(m, 0) is under
the limit: that counts every admission from 45 - 15j seconds before this
minute began until now, a span that contains the 60 seconds before the call,
so no 60-second span exceeds the limit (at most 15 s stricter than an exact
sliding window). tail(m-1, j) is closed once minute m began; the write asserts
the value this instance knows, and learns the true one if it was out of date.

Counter keys (short, the item must stay under 1 KB so an admission costs one
write unit): a:<period>:<feature> admissions, w:<period> committed micros,
t:<minute>:<slot> rate tails, n:<bucket>:<feature> and v:<bucket>:<feature>
reservations and their worst case per 10-minute sweep bucket (the sweeper
compares them with what was settled). Stale keys are removed by later writes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Dict, List, Optional, Tuple

from chalicelib.errors import Forbidden, PaymentRequired, TooManyRequests
from chalicelib.metering.limits import AdmissionLimits
from chalicelib.models import Admission, Reconciliation, tenant_pk
from chalicelib.periods import isoformat, period_end, period_of
from chalicelib.plans import FEATURE_BY_CODE, FEATURES
from chalicelib.store import UpdateText, update_or_explain, write_conflicted

SLOT_SECONDS = 15
BUCKET_SECONDS = 600
KEEP_BUCKETS = 144  # a day of sweep buckets; the sweeper clears resolved ones long before
ATTEMPTS = 6


def admitted_key(period: str, feature: str) -> str:
    return f"a:{period}:{FEATURES[feature].code}"


def committed_key(period: str) -> str:
    return f"w:{period}"


def tail_key(minute: int, slot: int) -> str:
    return f"t:{minute}:{slot}"


def bucket_count_key(bucket: int, feature: str) -> str:
    return f"n:{bucket}:{FEATURES[feature].code}"


def bucket_worst_key(bucket: int, feature: str) -> str:
    return f"v:{bucket}:{FEATURES[feature].code}"


# On the reconciliation item:
def refunded_key(period: str) -> str:
    return f"r:{period}"


def released_key(period: str, feature: str) -> str:
    return f"q:{period}:{FEATURES[feature].code}"


def reclaimed_key(bucket: int, feature: str) -> str:
    return f"x:{bucket}:{FEATURES[feature].code}"


def bucket_features(counters: Dict[str, int], bucket: int) -> List[str]:
    """The features with reservations counted in a sweep bucket."""
    prefix = f"n:{bucket}:"
    return sorted(FEATURE_BY_CODE[k[len(prefix):]] for k in counters if k.startswith(prefix))


def bucket_of(epoch: float) -> int:
    return int(epoch) // BUCKET_SECONDS


def _numbers(raw_map: Optional[dict]) -> Dict[str, int]:
    """A DynamoDB-JSON map of numbers ({"k": {"N": "1"}}) or a PynamoDB map as plain ints."""
    out: Dict[str, int] = {}
    for key, value in (raw_map or {}).items():
        if isinstance(value, dict):
            value = value.get("N")
        if value is not None:
            out[key] = int(value)
    return out


@dataclass(frozen=True)
class AdmissionView:
    """What this instance last saw of a tenant's admission item."""

    version: int
    limits: Optional[AdmissionLimits]
    counters: Dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_raw(cls, raw: dict) -> "AdmissionView":
        limits = raw.get("limits", {}).get("S")
        return cls(version=int(raw.get("version", {}).get("N", 0)),
                   limits=AdmissionLimits.from_json(limits) if limits else None,
                   counters=_numbers(raw.get("counters", {}).get("M")))

    @classmethod
    def from_item(cls, item: Optional[Admission]) -> Optional["AdmissionView"]:
        if item is None:
            return None
        counters = item.counters.as_dict() if item.counters else {}
        return cls(version=int(item.version or 0),
                   limits=AdmissionLimits.from_json(item.limits) if item.limits else None,
                   counters={k: int(v) for k, v in counters.items()})


@dataclass(frozen=True)
class Returns:
    """What settled calls gave back, as last read from the reconciliation item (a lower bound)."""

    counters: Dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_item(cls, item: Optional[Reconciliation]) -> "Returns":
        counters = item.counters.as_dict() if item is not None and item.counters else {}
        return cls({k: int(v) for k, v in counters.items()})

    def refunded(self, period: str) -> int:
        return self.counters.get(refunded_key(period), 0)

    def released(self, period: str, feature: str) -> int:
        return self.counters.get(released_key(period, feature), 0)


@dataclass(frozen=True)
class Reservation:
    tenant_id: str
    request_id: str
    feature: str
    period: str
    bucket: int
    worst_case_micros: int
    started_at: datetime


@dataclass(frozen=True)
class _Moment:
    epoch: float
    period: str
    minute: int
    slot: int
    bucket: int

    @classmethod
    def of(cls, now: datetime) -> "_Moment":
        epoch = now.timestamp()
        whole = int(epoch)
        return cls(epoch, period_of(now), whole // 60, (whole % 60) // SLOT_SECONDS, whole // BUCKET_SECONDS)


# Which fresher read could lift a refusal decided from this instance's knowledge.
VIEW = "view"        # the limits or counters may be stale: read the admission item again
RETURNS = "returns"  # refunds may be stale: read what the aggregator has given back


class Refusal(Exception):
    """A refusal decided from a view; `confirm` (VIEW or RETURNS) says which fresher read could still lift it."""

    def __init__(self, error: Exception, confirm: str) -> None:
        super().__init__(str(error))
        self.error = error
        self.confirm = confirm


def _check(view: AdmissionView, returns: Returns, feature: str, worst: int, at: _Moment, count: int = 1) -> None:
    """Refuse, from what this instance knows, a call the write's condition would refuse anyway."""
    limits = view.limits
    if limits.status != "active":
        raise Refusal(Forbidden("This tenant is suspended.", code="tenant_suspended"), VIEW)
    if feature not in limits.features:
        needed = limits.required_plan(feature)
        raise Refusal(Forbidden(f"{feature} is not in the {limits.plan} plan; it needs the {needed} plan.",
                                code="feature_not_in_plan", details={"feature": feature, "required_plan": needed}),
                      VIEW)
    limit = limits.features[feature]
    counters = view.counters
    if limit is not None and counters.get(admitted_key(at.period, feature), 0) - returns.released(
            at.period, feature) + count > limit:
        raise Refusal(feature_limit_error(feature, at), RETURNS)
    previous = counters.get(tail_key(at.minute - 1, at.slot), 0)
    if previous + counters.get(tail_key(at.minute, 0), 0) >= limits.requests_per_minute:
        raise Refusal(rate_error(at), VIEW)
    if limits.hard_limit and limits.budget_micros is not None:
        committed = counters.get(committed_key(at.period), 0) - returns.refunded(at.period)
        if worst > limits.budget_micros:
            raise Refusal(budget_error(), VIEW)
        if committed + worst > limits.budget_micros:
            raise Refusal(budget_error(), RETURNS)


def _write(view: AdmissionView, returns: Returns, feature: str, worst: int, at: _Moment, count: int = 1,
           swept: bool = True) -> UpdateText:
    update = UpdateText()
    limits = view.limits

    def counter(key: str) -> str:
        return update.name("counters", key)

    admitted = counter(admitted_key(at.period, feature))
    committed = counter(committed_key(at.period))
    previous_key = tail_key(at.minute - 1, at.slot)
    previous = view.counters.get(previous_key, 0)
    this_minute = counter(tail_key(at.minute, 0))

    update.require(f"{update.name('version')} = {update.number(view.version)}")
    limit = limits.features[feature]
    if limit is not None:
        cap = update.number(limit + returns.released(at.period, feature) - count + 1)
        update.require(f"attribute_not_exists({admitted}) OR {admitted} < {cap}")
    if limits.hard_limit and limits.budget_micros is not None:
        headroom = update.number(limits.budget_micros + returns.refunded(at.period) - worst)
        update.require(f"attribute_not_exists({committed}) OR {committed} <= {headroom}")
    last = counter(previous_key)
    update.require(f"attribute_not_exists({last})" if previous == 0 else f"{last} = {update.number(previous)}")
    rate = update.number(limits.requests_per_minute - previous)
    update.require(f"attribute_not_exists({this_minute}) OR {this_minute} < {rate}")

    update.add(admitted, count)
    update.add(committed, worst)
    if swept:
        update.add(counter(bucket_count_key(at.bucket, feature)), 1)
        update.add(counter(bucket_worst_key(at.bucket, feature)), worst)
    for slot in range(at.slot + 1):
        update.add(counter(tail_key(at.minute, slot)), 1)
    for key in stale_keys(view.counters, at):
        update.remove(counter(key))
    return update


def stale_keys(counters: Dict[str, int], at: _Moment, most: int = 16) -> List[str]:
    """Keys no admission will read again: earlier months, minutes before the last, day-old buckets."""
    stale = []
    for key in counters:
        kind, _, rest = key.partition(":")
        mark = rest.split(":", 1)[0]
        if (kind in ("a", "w") and mark < at.period) or (kind == "t" and int(mark) < at.minute - 1) or (
                kind in ("n", "v") and int(mark) < at.bucket - KEEP_BUCKETS):
            stale.append(key)
    return stale[:most]


def _stale_view(view: AdmissionView, actual: AdmissionView, at: _Moment) -> bool:
    """Whether a failed write failed only because this instance's view was out of date."""
    key = tail_key(at.minute - 1, at.slot)
    return actual.version != view.version or actual.counters.get(key, 0) != view.counters.get(key, 0)


def reserve(tenant_id: str, request_id: str, feature: str, worst_case_micros: int, view: Optional[AdmissionView],
            returns: Returns, load_view: Callable[[], Optional[AdmissionView]],
            load_returns: Callable[[], Returns], now: Optional[datetime] = None, count: int = 1,
            swept: bool = True) -> Tuple[Reservation, AdmissionView]:
    """Admit one call or raise the refusal. Returns the reservation and the item as this write left it.

    `load_view` and `load_returns` are consistent reads, used only when the view is missing or a refusal
    needs confirming: a warm instance admits in one round trip. A Message Batch is admitted as one
    reservation of `count` calls, not `swept`: its batch item holds it (chalicelib/ai/batches.py)."""
    now = now or datetime.now(timezone.utc)
    at = _Moment.of(now)
    confirmed = set()
    for _ in range(ATTEMPTS):
        if view is None or view.limits is None:
            view = load_view() or ensure_admission(tenant_id)
            confirmed.add(VIEW)
        try:
            _check(view, returns, feature, worst_case_micros, at, count)
        except Refusal as refusal:
            if refusal.confirm not in confirmed:
                confirmed.add(refusal.confirm)
                if refusal.confirm == VIEW:
                    view = load_view()
                else:
                    returns = load_returns()
                continue
            raise refusal.error from None
        update = _write(view, returns, feature, worst_case_micros, at, count, swept)
        try:
            ok, raw = update_or_explain(Admission, tenant_pk(tenant_id), Admission.SK, update)
        except Exception as error:
            if not write_conflicted(error):
                raise
            time.sleep(0.005)  # a limits change's transaction held the item for a moment
            continue
        if ok:
            reservation = Reservation(tenant_id, request_id, feature, at.period, at.bucket, worst_case_micros, now)
            return reservation, AdmissionView.from_raw(raw)
        if raw is None:
            view = None
            continue
        actual = AdmissionView.from_raw(raw)
        if not _stale_view(view, actual, at):
            confirmed.add(VIEW)  # the item itself refused: the next check names the limit
        view = actual
    # Every write lost a race to other admissions. The last one returned the item as it was: if that
    # already refuses the call (a budget or limit reached meanwhile), the client gets that refusal, not a
    # retry that cannot succeed.
    if view is not None and view.limits is not None:
        try:
            _check(view, load_returns(), feature, worst_case_micros, at, count)
        except Refusal as refusal:
            raise refusal.error from None
    raise TooManyRequests("Too many simultaneous requests for this tenant; retry shortly.", retry_after=1,
                          code="rate_limited")


def ensure_admission(tenant_id: str) -> AdmissionView:
    """Create a tenant's admission item from its profile if it has none (tenants made before it existed)."""
    from pynamodb.exceptions import PutError

    from chalicelib.tenants import get_tenant

    tenant = get_tenant(tenant_id, consistent=True)
    item = Admission(tenant_pk(tenant_id), Admission.SK, version=int(tenant.limits_version or 0),
                     limits=AdmissionLimits.of(tenant).to_json(), counters={})
    try:
        item.save(condition=Admission.pk.does_not_exist())
    except PutError:
        return load_view(tenant_id)
    return AdmissionView.from_item(item)


def load_view(tenant_id: str) -> Optional[AdmissionView]:
    try:
        return AdmissionView.from_item(Admission.get(tenant_pk(tenant_id), Admission.SK, consistent_read=True))
    except Admission.DoesNotExist:
        return None


def load_returns(tenant_id: str) -> Returns:
    try:
        return Returns.from_item(Reconciliation.get(tenant_pk(tenant_id), Reconciliation.SK, consistent_read=True))
    except Reconciliation.DoesNotExist:
        return Returns()


def feature_limit_error(feature: str, at: "_Moment") -> TooManyRequests:
    resets = period_end(at.period)
    return TooManyRequests(f"The monthly limit for {feature} is reached. It resets at {isoformat(resets)}.",
                           retry_after=int(resets.timestamp() - at.epoch), code="feature_limit_reached",
                           details={"feature": feature, "resets_at": isoformat(resets)})


def rate_error(at: "_Moment") -> TooManyRequests:
    return TooManyRequests("Too many requests this minute for this tenant.",
                           retry_after=SLOT_SECONDS - int(at.epoch) % SLOT_SECONDS, code="rate_limited")


def budget_error() -> PaymentRequired:
    return PaymentRequired("This request could exceed the tenant's monthly budget, which is a hard limit.")
