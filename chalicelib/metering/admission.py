"""Admission: one conditional UpdateItem on the tenant's admission item per AI request.

The item (`Admission`, sk=ADMISSION) holds the tenant's current limits (with a
version, written by every change) and a map of counters. One write adds the
call to its feature's monthly admissions, its worst-case cost to the month's
committed spend, one to the per-minute rate counts and the call to its sweep
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

The rate limit. Time is cut into 5-second slots; `s:<minute>:<slot>` counts the calls admitted in
one slot and `m:<minute>` in the whole minute. A call is admitted only if the slot it falls in and the
eleven before it (the last 55 to 60 seconds, `rate_window`) hold fewer calls than the per-minute limit.
Those slots are the previous minute's from this slot on, which are closed, and this whole minute. The
write asserts the previous minute's total as this instance knows it (so the slots it summed are the
item's: counters only grow) and requires this minute's total to stay under the limit less that sum.
A refusal names, as Retry-After, the moment the oldest slots that hold the excess leave the window
(`rate_wait`): then the next call is admitted, unless another took its place first. The window never
counts more than 60 seconds, so that moment is at most 60 seconds away, which the official SDKs honour
(they ignore a Retry-After above 60 s); two calls may be as little as 55 s apart.

Counter keys (short, the item must stay under 1 KB so an admission costs one
write unit): a:<period>:<feature> admissions, w:<period> committed micros,
m:<minute> and s:<minute>:<slot> rate counts, n:<bucket>:<feature> and v:<bucket>:<feature>
reservations and their worst case per 10-minute sweep bucket (the sweeper
compares them with what was settled). Stale keys are removed by later writes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Dict, List, Optional, Tuple

from chalicelib.errors import PaymentRequired, TesseraError, TooManyRequests
from chalicelib.metering import principal_admission
from chalicelib.metering import counter_keys as keys
from chalicelib.metering.counter_keys import (admitted_key, bucket_count_key, bucket_worst_key, committed_key,
                                              minute_key, refunded_key, released_key, slot_key)
from chalicelib.metering.limits import AdmissionLimits, TenantLimits
from chalicelib.models import Admission, Reconciliation, tenant_pk
from chalicelib.periods import isoformat, period_end, period_of
from chalicelib.plans import FEATURES, Plan
from chalicelib.store import RETRY, UpdateText, conflicted, retry_conflicts, update_or_explain

SLOT_SECONDS = 5
SLOTS_PER_MINUTE = 60 // SLOT_SECONDS
BUCKET_SECONDS = 600
KEEP_BUCKETS = 144  # a day of sweep buckets; the sweeper clears resolved ones long before
# Writes, re-reads and re-decisions in all (chalicelib/store.py RETRY): a lost race (the item changed since it
# was read) decides again at once on the item as the failed write returned it; a conflict pauses first.
ATTEMPTS = RETRY.attempts


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
    limits: Optional[TenantLimits]  # the tenant's own numbers; its plan's come from the catalog
    counters: Dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_raw(cls, raw: dict) -> "AdmissionView":
        limits = raw.get("limits", {}).get("S")
        return cls(version=int(raw.get("version", {}).get("N", 0)),
                   limits=TenantLimits.from_json(limits) if limits else None,
                   counters=_numbers(raw.get("counters", {}).get("M")))

    @classmethod
    def from_item(cls, item: Optional[Admission]) -> Optional["AdmissionView"]:
        if item is None:
            return None
        counters = item.counters.as_dict() if item.counters else {}
        return cls(version=int(item.version or 0),
                   limits=TenantLimits.from_json(item.limits) if item.limits else None,
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
    principal_budget: Optional[str] = None  # the principal whose hard budget counted this call


@dataclass(frozen=True)
class Moment:
    epoch: float
    period: str
    minute: int
    slot: int
    bucket: int

    @classmethod
    def of(cls, now: datetime) -> "Moment":
        epoch = now.timestamp()
        whole = int(epoch)
        return cls(epoch, period_of(now), whole // 60, (whole % 60) // SLOT_SECONDS, whole // BUCKET_SECONDS)


# Which fresher read could lift a refusal decided from this instance's knowledge.
VIEW = "view"        # the limits or counters may be stale: read the admission item again
RETURNS = "returns"  # refunds may be stale: read what the aggregator has given back


class Refusal(Exception):
    """A refusal decided from a view; `confirm` names each fresher read (VIEW, RETURNS) that could still
    lift it. A quota or a budget can be lifted by both: its limit raised (the view) or calls given back
    (the returns), so a refusal is returned only once everything it rests on has been read fresh."""

    def __init__(self, error: Exception, *confirm: str) -> None:
        super().__init__(str(error))
        self.error = error
        self.confirm = frozenset(confirm)


def _check(view: AdmissionView, limits: AdmissionLimits, returns: Returns, feature: str, worst: int, at: Moment,
           count: int) -> None:
    """Refuse, from what this instance knows, a call the write's condition would refuse anyway."""
    gated = limits.gate(feature)
    if gated is not None:
        raise Refusal(gated, VIEW)
    limit = limits.features[feature]
    counters = view.counters
    if limit is not None and counters.get(admitted_key(at.period, feature), 0) - returns.released(
            at.period, feature) + count > limit:
        raise Refusal(feature_limit_error(feature, at), VIEW, RETURNS)
    wait = rate_wait(counters, limits.requests_per_minute, at)
    if wait > 0:
        raise Refusal(rate_error(wait), VIEW)
    if limits.hard_limit and limits.budget_micros is not None:
        committed = counters.get(committed_key(at.period), 0) - returns.refunded(at.period)
        if worst > limits.budget_micros:
            raise Refusal(budget_error(), VIEW)
        if committed + worst > limits.budget_micros:
            raise Refusal(budget_error(), VIEW, RETURNS)


def _write(view: AdmissionView, limits: AdmissionLimits, returns: Returns, feature: str, worst: int, at: Moment,
           count: int, swept: bool, adds: Dict[str, int], removed: List[str]) -> UpdateText:
    """The admission write; `adds` collects what it adds to each counter and `removed` the stale counters it
    removes (the item after a transaction, which returns nothing, is this view with these)."""
    update = UpdateText()

    def counter(key: str) -> str:
        return update.name("counters", key)

    admitted = counter(admitted_key(at.period, feature))
    committed = counter(committed_key(at.period))
    this_minute = counter(minute_key(at.minute))

    update.require(f"{update.name('version')} = {update.number(view.version)}")
    limit = limits.features[feature]
    if limit is not None:
        cap = update.number(limit + returns.released(at.period, feature) - count + 1)
        update.require(f"attribute_not_exists({admitted}) OR {admitted} < {cap}")
    if limits.hard_limit and limits.budget_micros is not None:
        headroom = update.number(limits.budget_micros + returns.refunded(at.period) - worst)
        update.require(f"attribute_not_exists({committed}) OR {committed} <= {headroom}")
    if at.slot < SLOTS_PER_MINUTE - 1:  # the window reaches into the previous minute: prove its slots
        last = counter(minute_key(at.minute - 1))
        known = view.counters.get(minute_key(at.minute - 1), 0)
        update.require(f"attribute_not_exists({last})" if known == 0 else f"{last} = {update.number(known)}")
    rate = update.number(limits.requests_per_minute - _previous_minute_in_window(view.counters, at))
    update.require(f"attribute_not_exists({this_minute}) OR {this_minute} < {rate}")

    def add(key: str, amount: int) -> None:
        update.add(counter(key), amount)
        adds[key] = amount

    add(admitted_key(at.period, feature), count)
    add(committed_key(at.period), worst)
    if swept:
        add(bucket_count_key(at.bucket, feature), 1)
        add(bucket_worst_key(at.bucket, feature), worst)
    add(minute_key(at.minute), 1)
    add(slot_key(at.minute, at.slot), 1)
    for key in stale_keys(view.counters, at):
        update.remove(counter(key))
        removed.append(key)
    return update


def _after(view: AdmissionView, adds: Dict[str, int], removed: List[str]) -> AdmissionView:
    """The item as this instance's transaction left it, as far as it knows (a transaction returns no item;
    the next write's conditions prove what it needs). Without the removed keys: a view that kept them would
    name the same dead keys as stale at every write, and newer ones would never leave the item."""
    counters = {key: value for key, value in view.counters.items() if key not in removed}
    for key, amount in adds.items():
        counters[key] = counters.get(key, 0) + amount
    return AdmissionView(view.version, view.limits, counters)


def stale_keys(counters: Dict[str, int], at: Moment, most: int = 16) -> List[str]:
    """Keys no admission will read again: earlier months, minutes before the last, day-old buckets, and
    the rate tails (`t:`) of the 15-second scheme this one replaced."""
    stale = []
    for key in counters:
        kind, mark, _ = keys.parse(key)
        if (kind in (keys.ADMITTED, keys.COMMITTED) and mark < at.period) or kind == keys.RETIRED_TAIL or (
                kind in (keys.MINUTE, keys.SLOT) and int(mark) < at.minute - 1) or (
                kind in (keys.BUCKET_COUNT, keys.BUCKET_WORST) and int(mark) < at.bucket - KEEP_BUCKETS):
            stale.append(key)
    return stale[:most]


# --- the rate window: decisions of plain values ---------------------------------------------------

def rate_slots(counters: Dict[str, int], at: Moment) -> Dict[int, int]:
    """The calls in each slot of the window a call at `at` counts, by global slot number (epoch // 5 s):
    the slot of `at` and the eleven before it, so the previous minute's from the slot after `at`'s on."""
    now = at.minute * SLOTS_PER_MINUTE + at.slot
    first, end = now - (SLOTS_PER_MINUTE - 1), (at.minute + 1) * SLOTS_PER_MINUTE
    slots: Dict[int, int] = {}
    for key, calls in counters.items():
        slot = keys.slot_of(key)
        if slot is not None and calls:
            number = slot[0] * SLOTS_PER_MINUTE + slot[1]
            if first <= number < end:
                slots[number] = calls
    return slots


def rate_wait(counters: Dict[str, int], limit: int, at: Moment) -> float:
    """Seconds until a call would be admitted under a per-minute `limit` (0: now). The window moves one
    slot at a time: the call is admitted once enough of its oldest slots have left it, which is when the
    newest of them is twelve slots old. A limit of 0 admits nothing; its answer is a full minute."""
    slots = rate_slots(counters, at)
    held = sum(slots.values())
    if held < limit:
        return 0.0
    for number in sorted(slots):
        held -= slots[number]
        if held < limit:
            return (number + SLOTS_PER_MINUTE) * SLOT_SECONDS - at.epoch
    return 60.0


def _previous_minute_in_window(counters: Dict[str, int], at: Moment) -> int:
    """What the window counts of the previous minute (closed, so the write asserts its total instead)."""
    return sum(calls for number, calls in rate_slots(counters, at).items()
               if number < at.minute * SLOTS_PER_MINUTE)


def _stale_view(view: AdmissionView, actual: AdmissionView, at: Moment) -> bool:
    """Whether a failed write failed only because this instance's view was out of date."""
    key = minute_key(at.minute - 1)
    return actual.version != view.version or actual.counters.get(key, 0) != view.counters.get(key, 0)


def reserve(tenant_id: str, request_id: str, feature: str, worst_case_micros: int, view: Optional[AdmissionView],
            returns: Returns, load_view: Callable[[], Optional[AdmissionView]],
            load_returns: Callable[[], Returns], now: Optional[datetime] = None, count: int = 1,
            swept: bool = True, plan_of: Optional[Callable[[str], Plan]] = None,
            principal: Optional[principal_admission.PrincipalCharge] = None) -> Tuple[Reservation, AdmissionView]:
    """Admit one call or raise the refusal. Returns the reservation and the item as this write left it.

    `load_view` and `load_returns` are consistent reads, used only when the view is missing or a refusal
    needs confirming: a warm instance admits in one round trip. A Message Batch is admitted as one
    reservation of `count` calls, not `swept`: its batch item holds it (chalicelib/ai/batches.py).
    `plan_of(name)` is the plan as it stands (the gateway's, read with the tenant's items; by default a
    read of the catalog). `principal`, the caller: when the admission item says it has a hard budget of
    its own, the write is a transaction with its budget item (chalicelib/metering/principal_admission.py)."""
    plan_of = plan_of or _catalog_plan
    now = now or datetime.now(timezone.utc)
    at = Moment.of(now)
    confirmed = set()
    for attempt in range(1, ATTEMPTS + 1):
        if view is None or view.limits is None:
            view = load_view() or ensure_admission(tenant_id)
            confirmed.add(VIEW)
        limits = view.limits.under(plan_of(view.limits.plan))
        try:
            _check(view, limits, returns, feature, worst_case_micros, at, count)
        except Refusal as refusal:
            unconfirmed = refusal.confirm - confirmed
            if unconfirmed:
                confirmed |= unconfirmed
                if VIEW in unconfirmed:
                    view = load_view()
                if RETURNS in unconfirmed:
                    returns = load_returns()
                continue
            raise refusal.error from None
        terms = principal.current(view.version) if principal is not None and view.limits.budgets(
            principal.principal_id) else None
        if terms is not None:
            try:
                principal_admission.check(terms, worst_case_micros, count)
            except TesseraError:
                if principal.confirmed:
                    raise
                principal.reload()  # the budget may have been raised since it was read
                continue
        adds: Dict[str, int] = {}
        removed: List[str] = []
        update = _write(view, limits, returns, feature, worst_case_micros, at, count, swept, adds, removed)
        if terms is not None:
            outcome, raw = principal_admission.transact(tenant_id, principal.principal_id, update,
                                                        principal_admission.write(terms, at.period,
                                                                                  worst_case_micros, count))
            if outcome == "conflict":
                RETRY.wait(attempt)
                continue
            if outcome == "principal":
                if principal.confirmed:
                    raise principal_admission.refusal(terms, raw, at.period, worst_case_micros, count)
                principal.reload()
                continue
            ok = outcome == "ok"
        else:
            try:
                ok, raw = update_or_explain(Admission, tenant_pk(tenant_id), Admission.SK, update)
            except Exception as error:
                if not conflicted(error):
                    raise
                RETRY.wait(attempt)  # a limits change's transaction held the item for a moment
                continue
        if ok:
            reservation = Reservation(tenant_id, request_id, feature, at.period, at.bucket, worst_case_micros, now,
                                      principal.principal_id if terms is not None else None)
            return reservation, (AdmissionView.from_raw(raw) if raw is not None else _after(view, adds, removed))
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
            _check(view, view.limits.under(plan_of(view.limits.plan)), load_returns(), feature, worst_case_micros,
                   at, count)
        except Refusal as refusal:
            raise refusal.error from None
    raise TooManyRequests("Too many simultaneous requests for this tenant; retry shortly.", retry_after=1,
                          code="rate_limited")


def give_back(reservation: Reservation) -> Optional[AdmissionView]:
    """Return a failed call's admission and worst case to the admission item at once, in one
    conditional UpdateItem (the failure path's one extra write): the quota, the committed spend and the
    sweep bucket's count, as if the call had never been admitted. Its rate slot stays used: it was a
    request. Returns the item as the write left it, or None when the reservation is no longer counted
    there (the write then changes nothing). Whoever calls this marks the call's usage event so that the
    aggregator gives back nothing more (chalicelib.metering.ledger)."""
    update = UpdateText()

    def counter(key: str) -> str:
        return update.name("counters", key)

    count = counter(bucket_count_key(reservation.bucket, reservation.feature))
    update.require(f"{count} >= {update.number(1)}")
    update.add(counter(admitted_key(reservation.period, reservation.feature)), -1)
    update.add(counter(committed_key(reservation.period)), -reservation.worst_case_micros)
    update.add(count, -1)
    update.add(counter(bucket_worst_key(reservation.bucket, reservation.feature)), -reservation.worst_case_micros)
    ok, raw = retry_conflicts(lambda: update_or_explain(Admission, tenant_pk(reservation.tenant_id), Admission.SK,
                                                        update))
    return AdmissionView.from_raw(raw) if ok else None


def ensure_admission(tenant_id: str) -> AdmissionView:
    """Create a tenant's admission item from its profile if it has none (tenants made before it existed)."""
    from pynamodb.exceptions import PutError

    from chalicelib.tenants import get_tenant

    tenant = get_tenant(tenant_id, consistent=True)
    item = Admission(tenant_pk(tenant_id), Admission.SK, version=int(tenant.limits_version or 0),
                     limits=TenantLimits.of(tenant).to_json(), counters={})
    try:
        item.save(condition=Admission.pk.does_not_exist())
    except PutError:
        return load_view(tenant_id)
    return AdmissionView.from_item(item)


def _catalog_plan(name: str) -> Plan:
    from chalicelib import plan_catalog

    return plan_catalog.require(name)


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


def feature_limit_error(feature: str, at: "Moment") -> TooManyRequests:
    resets = period_end(at.period)
    return TooManyRequests(f"The monthly limit for {feature} is reached. It resets at {isoformat(resets)}.",
                           retry_after=int(resets.timestamp() - at.epoch), code="feature_limit_reached",
                           details={"feature": feature, "resets_at": isoformat(resets)})


def rate_error(wait_seconds: float) -> TooManyRequests:
    """Retry-After in whole seconds, rounded up: a client that waits it is past the moment `rate_wait` named."""
    return TooManyRequests("Too many requests this minute for this tenant.",
                           retry_after=math.ceil(wait_seconds), code="rate_limited")


def budget_error() -> PaymentRequired:
    return PaymentRequired("This request could exceed the tenant's monthly budget, which is a hard limit.")
