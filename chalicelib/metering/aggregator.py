"""The usage aggregator: folds usage events into the month's totals, exactly once, off the request path.

It runs on the table's stream (app.py's `on_dynamodb_record`; locally dev/stack/stream_worker.py and the
tests feed it the same records). For each tenant in a batch it writes one transaction per chunk of
events: each event stamped `aggregated_at` (only if not stamped yet, so a redelivered batch counts
nothing twice), the month's and each feature's totals, and the reconciliation item (what admission
gets back: the unused worst case, failed calls' admissions, and which reservations of each sweep
bucket are accounted for), guarded by that item's version. Aggregates and events are items no request
writes, so these transactions do not contend with admission.

What each event gives back to admission (r = refunded micros, q = released admissions):

    status          normal              after its bucket was reclaimed by the sweeper
    ok, incomplete  r += worst - cost   r -= cost, q -= 1  (the reclaim had given back all of it)
    failed          r += worst, q += 1  nothing            (the reclaim did)
    failed, given back at once: nothing (the request gave back its admission and worst case itself)
    indeterminate   r += worst          q -= 1             (counts against quota, not charged)
    abandoned       the sweeper's reclaim: r += unaccounted worst, q += unaccounted admissions

A Message Batch request's event (`batch_id` set) folds as its status says, never as late: its
reservation was admitted without a sweep bucket and is held by the batch item until it is settled.

It also marks, from the admission item's stream records, which tenants reserved in which sweep
bucket, so the sweeper reads only those.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Dict, Iterable, List, Optional, Set, Tuple

from pynamodb.exceptions import TransactWriteError

from chalicelib.metering import counter_keys as keys
from chalicelib.metering.ledger import ABANDONED, CHARGED, FAILED, INDETERMINATE
from chalicelib.models import (Admission, DayUsage, FeatureUsage, KeyUsage, ModelUsage, PlatformUsage,
                               Reconciliation, SweepMark, Tenant, UsageEvent, UsagePeriod, spend_partition,
                               spend_sort_key)
from chalicelib.store import RETRY, cancelled_because, conflicted, get_items, transaction

CHUNK = 80  # events per transaction at most; fewer when their counter items would pass DynamoDB's 100
TRANSACTION_ITEMS = 100
# Writes of a chunk in all (chalicelib/store.py RETRY): without the events found already folded it is written
# again at once; after a conflict, or a reconciliation item changed meanwhile, after RETRY's pause. Past the
# last, the stream hands the batch over again.
ATTEMPTS = RETRY.attempts
KEEP_RECONCILED_BUCKETS = 288  # two days of buckets: a settle later than that is not possible


@dataclass
class Totals:
    """Additions to one counter item, in the one shape every grain uses."""

    values: Dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, name: str, amount: int) -> None:
        if amount:
            self.values[name] += amount

    def actions(self, model) -> list:
        return [getattr(model, name).add(amount) for name, amount in sorted(self.values.items()) if amount]


@dataclass
class Report:
    events: int = 0
    duplicates: int = 0
    marks: int = 0


def handle(records: Iterable[dict], now: Optional[datetime] = None) -> Report:
    """Process one batch of stream records (the Lambda event's `Records`, or the stream API's)."""
    now = now or datetime.now(timezone.utc)
    events: Dict[str, List[UsageEvent]] = defaultdict(list)
    marks: Set[Tuple[int, str]] = set()
    for record in records:
        data = record.get("dynamodb", {})
        image = data.get("NewImage")
        if not image or record.get("eventName") not in ("INSERT", "MODIFY"):
            continue
        sk = image.get("sk", {}).get("S", "")
        if sk.startswith("EVENT#") and record["eventName"] == "INSERT":
            event = UsageEvent.from_raw_data(image)
            events[event.pk].append(event)
        elif sk == Admission.SK:
            marks |= _new_buckets(image, data.get("OldImage") or {})
    report = Report()
    for pk, tenant_events in events.items():
        plan = _plan_of(pk)
        for chunk in chunks(pk, plan, tenant_events):
            folded, duplicates = _fold_chunk(pk, plan, chunk, now)
            report.events += folded
            report.duplicates += duplicates
    for bucket, pk in sorted(marks):
        SweepMark(f"SWEEP#{bucket}", pk, tenant_id=pk.removeprefix("TENANT#"),
                  expires_at=timedelta(days=3)).save()
        report.marks += 1
    return report


def _plan_of(pk: str) -> str:
    """The tenant's plan when its calls are folded: the grain of the platform's totals by plan."""
    try:
        return Tenant.get(pk, Tenant.SK).plan
    except Tenant.DoesNotExist:
        return "unknown"


def counter_items(pk: str, plan: str, event: UsageEvent) -> List[Tuple[type, str, str, Dict[str, str]]]:
    """Every counter item a charged event adds its requests, tokens and cost to, besides the month's
    total: (model, pk, sk, the item's naming attributes). One shape at every grain (STYLE 12)."""
    period, tenant_id = event.period, pk.removeprefix("TENANT#")
    day = event.created_at.astimezone(timezone.utc).date().isoformat()
    return [
        (FeatureUsage, pk, FeatureUsage.sk_for(period, event.feature), {"feature": event.feature}),
        (ModelUsage, pk, ModelUsage.sk_for(period, event.model), {"model": event.model}),
        (KeyUsage, pk, KeyUsage.sk_for(period, event.principal_id),
         {"principal_id": event.principal_id, "principal_type": event.principal_type}),
        (DayUsage, pk, DayUsage.sk_for(day), {"day": day}),
        (PlatformUsage, *PlatformUsage.key(period, tenant_id, "PLAN", plan), {"name": plan}),
        (PlatformUsage, *PlatformUsage.key(period, tenant_id, "MODEL", event.model), {"name": event.model}),
    ]


def chunks(pk: str, plan: str, events: List[UsageEvent]) -> List[List[UsageEvent]]:
    """Split a tenant's events so each transaction holds at most TRANSACTION_ITEMS items: the events, the
    reconciliation item, the month aggregates and every counter item the charged ones add to."""
    out: List[List[UsageEvent]] = []
    current: List[UsageEvent] = []
    items: Set[Tuple[str, str]] = set()
    for event in events:
        needed = {(pk, UsagePeriod.sk_for(event.period))}
        if event.status in CHARGED:
            needed |= {(item_pk, sk) for _, item_pk, sk, _ in counter_items(pk, plan, event)}
        grown = items | needed
        if current and (len(current) >= CHUNK or len(current) + 1 + 1 + len(grown) > TRANSACTION_ITEMS):
            out.append(current)
            current, grown = [], needed
        current.append(event)
        items = grown
    if current:
        out.append(current)
    return out


def _new_buckets(new_image: dict, old_image: dict) -> Set[Tuple[int, str]]:
    def buckets(image: dict) -> Set[int]:
        counters = image.get("counters", {}).get("M", {})
        return keys.counted_buckets(counters)

    pk = new_image["pk"]["S"]
    return {(b, pk) for b in buckets(new_image) - buckets(old_image)}


def _reconciliation(pk: str) -> Reconciliation:
    """The tenant's reconciliation item, created empty if it is missing (its counters map must exist
    before a write can add to one of its keys)."""
    from pynamodb.exceptions import PutError

    try:
        return Reconciliation.get(pk, Reconciliation.SK, consistent_read=True)
    except Reconciliation.DoesNotExist:
        pass
    empty = Reconciliation(pk, Reconciliation.SK, version=0, counters={})
    try:
        empty.save(condition=Reconciliation.pk.does_not_exist())
    except PutError:
        return Reconciliation.get(pk, Reconciliation.SK, consistent_read=True)
    return empty


def _stale(known: Dict[str, int], events: List[UsageEvent]) -> List[str]:
    """Bucket keys older than any settle can be, and periods two months back: the item stays small."""
    newest = max(int(e.bucket) for e in events)
    periods = sorted({e.period for e in events})
    stale = []
    for key in known:
        kind, mark, _ = keys.parse(key)
        if kind in (keys.BUCKET_COUNT, keys.BUCKET_WORST, keys.RECLAIMED) and int(
                mark) < newest - KEEP_RECONCILED_BUCKETS:
            stale.append(key)
        elif kind in (keys.REFUNDED, keys.RELEASED) and mark < _months_before(periods[0], 2):
            stale.append(key)
    return stale[:32]


def _months_before(period: str, months: int) -> str:
    year, month = (int(p) for p in period.split("-"))
    index = year * 12 + (month - 1) - months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _fold_chunk(pk: str, plan: str, events: List[UsageEvent], now: datetime) -> Tuple[int, int]:
    pending = list(events)
    duplicates = 0
    for attempt in range(1, ATTEMPTS + 1):
        if not pending:
            return 0, duplicates
        recon = _reconciliation(pk)
        try:
            _write_chunk(pk, plan, pending, recon, now)
            return len(pending), duplicates
        except TransactWriteError as error:
            done = [i for i, _ in enumerate(pending) if cancelled_because(error, i)]
            if done:
                duplicates += len(done)
                pending = [e for i, e in enumerate(pending) if i not in done]
                continue
            if cancelled_because(error, len(pending)) or conflicted(error):
                RETRY.wait(attempt)
                continue
            raise
    raise RuntimeError(f"usage events of {pk} could not be aggregated after {ATTEMPTS} attempts")


def _write_chunk(pk: str, plan: str, events: List[UsageEvent], recon: Reconciliation, now: datetime) -> None:
    known = {k: int(v) for k, v in (recon.counters.as_dict() if recon.counters else {}).items()}
    returns: Dict[str, int] = defaultdict(int)
    reclaimed_now: Set[str] = set()
    periods: Dict[str, Totals] = defaultdict(Totals)
    counters_added: Dict[Tuple[type, str, str], Totals] = defaultdict(Totals)
    names: Dict[Tuple[type, str, str], Dict[str, str]] = {}
    event_updates = []

    def accounted(key: str) -> int:
        return known.get(key, 0) + returns.get(key, 0)

    for event in events:
        period, feature, bucket = event.period, event.feature, int(event.bucket)
        worst, cost = int(event.worst_case_micros), int(event.cost_micros)
        count_key, worst_key = keys.bucket_count_key(bucket, feature), keys.bucket_worst_key(bucket, feature)
        reclaim_key = keys.reclaimed_key(bucket, feature)
        refunded, released = keys.refunded_key(period), keys.released_key(period, feature)
        totals = periods[period]
        actions = [UsageEvent.aggregated_at.set(now)]
        if event.status == ABANDONED:
            reserved = event.reclaimed.as_dict() if event.reclaimed else {}
            leaked = max(0, int(reserved.get("count", 0)) - accounted(count_key))
            leaked_worst = max(0, int(reserved.get("worst", 0)) - accounted(worst_key))
            returns[released] += leaked
            returns[refunded] += leaked_worst
            returns[count_key] += leaked
            returns[worst_key] += leaked_worst
            reclaimed_now.add(reclaim_key)
            totals.add("abandoned_requests", leaked)
            totals.add("exposure_micros", leaked_worst)
            actions += [UsageEvent.cost_bound_micros.set(leaked_worst),
                        UsageEvent.reclaimed.set({"count": leaked, "worst": leaked_worst})]
        elif event.status == FAILED and event.given_back:
            totals.add("failed_requests", 1)  # returned by the request itself, and uncounted in its bucket
        else:
            # A batch request's reservation is held by its batch item, never a sweep bucket's: it is not
            # counted there, and no reclaim can have given it back before.
            batched = event.batch_id is not None
            late = not batched and (reclaim_key in known or reclaim_key in reclaimed_now)
            if not batched:
                returns[count_key] += 1
                returns[worst_key] += worst
            if event.status in CHARGED:
                returns[refunded] += -cost if late else worst - cost
                returns[released] += -1 if late else 0
                own = event.key_source == "tenant"
                grains = counter_items(pk, plan, event)
                for name, amount in (("requests", 1), ("input_tokens", int(event.input_tokens)),
                                     ("output_tokens", int(event.output_tokens)), ("cost_micros", cost)):
                    totals.add(name, amount)
                    for model, item_pk, sk, naming in grains:
                        counters_added[(model, item_pk, sk)].add(name, amount)
                for model, item_pk, sk, naming in grains:
                    names[(model, item_pk, sk)] = naming
                totals.add("cache_creation_tokens", int(event.cache_creation_tokens))
                totals.add("cache_read_tokens", int(event.cache_read_tokens))
                totals.add("own_key_requests" if own else "pool_requests", 1)
                totals.add("own_key_cost_micros" if own else "pool_cost_micros", cost)
                if event.cost_bound_micros:  # attempts before the answer that may have been billed
                    totals.add("exposure_micros", int(event.cost_bound_micros))
            elif event.status == FAILED:
                returns[refunded] += 0 if late else worst
                returns[released] += 0 if late else 1
                totals.add("failed_requests", 1)
            elif event.status == INDETERMINATE:
                returns[refunded] += 0 if late else worst
                returns[released] += -1 if late else 0
                totals.add("indeterminate_requests", 1)
                totals.add("exposure_micros", int(event.cost_bound_micros or worst))
        event_updates.append((event, actions))

    counters = Reconciliation.counters
    recon_actions = [Reconciliation.version.set(int(recon.version or 0) + 1)]
    recon_actions += [counters[key].set((counters[key] | 0) + amount) for key, amount in sorted(returns.items())
                      if amount]
    recon_actions += [counters[key].set(1) for key in sorted(reclaimed_now)]
    recon_actions += [counters[key].remove() for key in _stale(known, events)]
    unchanged = Reconciliation.version == int(recon.version or 0)
    # The month's spend after this chunk, for the operators' list sorted by spend (gsi3). Read after the
    # reconciliation item, whose version guards the transaction: if it commits, no other fold of this
    # tenant committed since, so this read plus this chunk's cost is the month's new total.
    tenant_id = pk.removeprefix("TENANT#")
    before = dict(zip(periods, get_items([(UsagePeriod, pk, UsagePeriod.sk_for(p)) for p in periods],
                                         consistent=True)))
    with transaction() as tx:
        for event, actions in event_updates:
            tx.update(event, actions=actions, condition=UsageEvent.aggregated_at.does_not_exist())
        tx.update(Reconciliation(pk, Reconciliation.SK), actions=recon_actions, condition=unchanged)
        for period, totals in periods.items():
            spent = int(before[period].cost_micros) if before[period] else 0
            spent += totals.values.get("cost_micros", 0)
            period_actions = totals.actions(UsagePeriod) + [
                UsagePeriod.period.set(period), UsagePeriod.gsi3pk.set(spend_partition(period)),
                UsagePeriod.gsi3sk.set(spend_sort_key(spent, tenant_id))]
            tx.update(UsagePeriod(pk, UsagePeriod.sk_for(period)), actions=period_actions)
        for (model, item_pk, sk), totals in counters_added.items():
            naming = [getattr(model, name).set(value) for name, value in sorted(names[(model, item_pk, sk)].items())]
            tx.update(model(item_pk, sk), actions=totals.actions(model) + naming)
