"""The usage aggregator to the micro-dollar: what each event adds to the month's and the feature's totals and
what it gives back to admission (docs/data-model.md, chalicelib/metering/aggregator.py's table), exactly once.

Events are written by the real ledger and sweeper on moto. Most tests let the stream's consumer fold them
(`settle_usage`); the ones that check the aggregator's own report, its transactions or its `now` hold the
consumer off (`stream_paused`) and hand the aggregator the records themselves. Expected amounts come from the
published prices (tests/published.py), never from the code under test.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from chalicelib import operators, tenants
from chalicelib.ids import new_request_id
from chalicelib.metering import admission, aggregator, counter_keys, ledger, sweeper
from chalicelib.models import (Admission, FeatureUsage, Reconciliation, SweepMark, UsageEvent, UsagePeriod,
                               tenant_pk)
from conftest import own_bucket_start, random_slug, settle_usage, stream_paused
from dev.bench.probes import DynamoProbe
from published import PUBLISHED

pytestmark = pytest.mark.usefixtures("own_table")  # moto's Query reads a whole table: keep it small

SONNET = "claude-sonnet-4-6"
BUCKET = admission.BUCKET_SECONDS
PERIOD_FIELDS = ("requests", "input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens",
                 "cost_micros", "own_key_requests", "own_key_cost_micros", "pool_requests", "pool_cost_micros",
                 "failed_requests", "indeterminate_requests", "exposure_micros", "abandoned_requests")


def micros(model=SONNET, input_tokens=0, output_tokens=0, cache_write=0, cache_read=0) -> int:
    """A call's cost from the published USD-per-million prices: USD per million tokens is micro-dollars per token."""
    _, i, o, w, r, _ = PUBLISHED[model]
    total = (input_tokens * Decimal(i) + output_tokens * Decimal(o) + cache_write * Decimal(w)
             + cache_read * Decimal(r))
    assert total == total.to_integral_value(), "pick token counts whose cost is whole micro-dollars"
    return int(total)


def new_tenant(plan=None):
    slug = random_slug("ag")
    created = tenants.sign_up({"company_name": "Fold Co", "slug": slug, "email": f"o@{slug}.example.com",
                               "password": "fold-password-1"})
    tenant_id = created["tenant_id"]
    if plan:
        operators.set_plan(tenant_id, {"plan": plan})
    operators.set_limits(tenant_id, {"requests_per_minute": 100_000})
    return tenant_id


def reserve(tenant_id, worst, feature="basic_chat", now=None):
    reservation, _ = admission.reserve(
        tenant_id, new_request_id(now.timestamp() if now else None), feature, worst, None, admission.Returns(),
        load_view=lambda: admission.load_view(tenant_id), load_returns=lambda: admission.load_returns(tenant_id),
        now=now)
    return reservation


def answered(cost, input_tokens=0, output_tokens=0, cache_write=0, cache_read=0, **extra):
    return ledger.Settlement(principal_id="usr_fold", principal_type="user", model=SONNET,
                             input_tokens=input_tokens, output_tokens=output_tokens,
                             cache_creation_tokens=cache_write, cache_read_tokens=cache_read, cost_micros=cost,
                             latency_ms=3, **extra)


def month(tenant_id, period):
    item = UsagePeriod.get(tenant_pk(tenant_id), UsagePeriod.sk_for(period), consistent_read=True)
    assert item.period == period
    return {name: int(getattr(item, name)) for name in PERIOD_FIELDS}


def totals(**given):
    return {name: given.get(name, 0) for name in PERIOD_FIELDS}


def feature_totals(tenant_id, period, feature):
    item = FeatureUsage.get(tenant_pk(tenant_id), FeatureUsage.sk_for(period, feature), consistent_read=True)
    return {"feature": item.feature, "requests": int(item.requests), "input_tokens": int(item.input_tokens),
            "output_tokens": int(item.output_tokens), "cost_micros": int(item.cost_micros)}


def reconciliation(tenant_id):
    item = Reconciliation.get(tenant_pk(tenant_id), Reconciliation.SK, consistent_read=True)
    return int(item.version), {k: int(v) for k, v in item.counters.as_dict().items()}


def given_back(tenant_id):
    """The reconciliation item's counters that are not zero (a zero and an absent key mean the same)."""
    return {k: v for k, v in reconciliation(tenant_id)[1].items() if v}


def event_of(tenant_id, request_id):
    return UsageEvent.get(tenant_pk(tenant_id), UsageEvent.sk_for(request_id), consistent_read=True)


def insert_record(item):
    """The stream record DynamoDB sends for a new item."""
    image = item.serialize()
    image.update({"pk": {"S": item.pk}, "sk": {"S": item.sk}})
    return {"eventName": "INSERT", "dynamodb": {"NewImage": image}}


def admission_record(tenant_id, new_counters, old_counters=None, event_name="MODIFY"):
    def image(counters):
        return {"pk": {"S": tenant_pk(tenant_id)}, "sk": {"S": Admission.SK}, "version": {"N": "0"},
                "counters": {"M": {k: {"N": str(v)} for k, v in counters.items()}}}

    data = {"NewImage": image(new_counters)}
    if old_counters is not None:
        data["OldImage"] = image(old_counters)
    return {"eventName": event_name, "dynamodb": data}


def reclaim_time(bucket):
    """The first moment the sweeper may reclaim a bucket."""
    return datetime.fromtimestamp((bucket + 1) * BUCKET + sweeper.GRACE_SECONDS, tz=timezone.utc)


# --- what each status adds and gives back --------------------------------------------------------------------

def test_an_answered_call_adds_its_exact_tokens_and_cost_to_the_month_and_its_feature():
    tenant_id = new_tenant()
    cost = micros(input_tokens=1_200, output_tokens=350, cache_write=40, cache_read=500)
    assert cost == 3_600 + 5_250 + 150 + 150
    reservation = reserve(tenant_id, 20_000)
    ledger.record(reservation, answered(cost, 1_200, 350, 40, 500))
    settle_usage()
    period, bucket = reservation.period, reservation.bucket
    assert month(tenant_id, period) == totals(requests=1, input_tokens=1_200, output_tokens=350,
                                              cache_creation_tokens=40, cache_read_tokens=500, cost_micros=cost,
                                              pool_requests=1, pool_cost_micros=cost)
    assert feature_totals(tenant_id, period, "basic_chat") == {
        "feature": "basic_chat", "requests": 1, "input_tokens": 1_200, "output_tokens": 350, "cost_micros": cost}
    assert reconciliation(tenant_id) == (1, {f"r:{period}": 20_000 - cost, f"n:{bucket}:b": 1,
                                             f"v:{bucket}:b": 20_000})


def test_the_months_spend_index_key_holds_its_total_after_each_fold():
    """The operators' list by spend reads gsi3: `SPEND#<month>`, then the month's cost in micro-dollars as 16
    digits and the tenant id. Each fold adds its cost to what the month held; a failed call adds nothing."""
    tenant_id = new_tenant()
    assert (micros(input_tokens=10), micros(input_tokens=100)) == (30, 300)
    calls = [answered(30, 10), answered(300, 100), ledger.Settlement("usr_fold", "user", SONNET, own_key=False,
                                                                      status=ledger.FAILED)]
    keys = []
    for settlement in calls:
        reservation = reserve(tenant_id, 20_000)
        ledger.record(reservation, settlement)
        settle_usage()
        item = UsagePeriod.get(tenant_pk(tenant_id), UsagePeriod.sk_for(reservation.period), consistent_read=True)
        keys.append((item.gsi3pk, item.gsi3sk))
    spend = f"SPEND#{reservation.period}"
    assert keys == [(spend, f"0000000000000030#{tenant_id}"), (spend, f"0000000000000330#{tenant_id}"),
                    (spend, f"0000000000000330#{tenant_id}")]


def test_a_fold_reads_the_months_total_consistently():
    """The spend index key is the total read plus the chunk's cost: an eventually consistent read could miss
    the fold before it and write a total too low."""
    from dynamo_hooks import DynamoCalls

    tenant_id = new_tenant()
    reservation = reserve(tenant_id, 20_000)
    with stream_paused():
        ledger.record(reservation, answered(micros(input_tokens=10), 10))
        record = insert_record(event_of(tenant_id, reservation.request_id))
        with DynamoCalls() as calls:
            assert aggregator.handle([record]).events == 1
    month_key = {"pk": {"S": tenant_pk(tenant_id)}, "sk": {"S": UsagePeriod.sk_for(reservation.period)}}
    reads = [asked for params in calls.params_of("BatchGetItem") for asked in params["RequestItems"].values()
             if month_key in asked["Keys"]]
    assert reads and all(asked.get("ConsistentRead") is True for asked in reads)


def test_own_key_calls_are_totalled_apart_from_the_pool_and_each_feature_apart():
    tenant_id = new_tenant(plan="enterprise")
    pool_cost = micros(input_tokens=100, output_tokens=10)
    own_cost = micros(input_tokens=2_000, output_tokens=70)
    pool = reserve(tenant_id, 5_000)
    ledger.record(pool, answered(pool_cost, 100, 10))
    own = reserve(tenant_id, 9_000, feature="code_review")
    ledger.record(own, answered(own_cost, 2_000, 70, own_key=True))
    settle_usage()
    period = pool.period
    assert month(tenant_id, period) == totals(requests=2, input_tokens=2_100, output_tokens=80,
                                              cost_micros=pool_cost + own_cost, own_key_requests=1,
                                              own_key_cost_micros=own_cost, pool_requests=1,
                                              pool_cost_micros=pool_cost)
    assert feature_totals(tenant_id, period, "basic_chat") == {
        "feature": "basic_chat", "requests": 1, "input_tokens": 100, "output_tokens": 10, "cost_micros": pool_cost}
    assert feature_totals(tenant_id, period, "code_review") == {
        "feature": "code_review", "requests": 1, "input_tokens": 2_000, "output_tokens": 70, "cost_micros": own_cost}
    assert given_back(tenant_id)[f"r:{period}"] == (5_000 - pool_cost) + (9_000 - own_cost)


def test_a_stream_cut_off_before_its_end_is_charged_like_an_answer():
    tenant_id = new_tenant()
    cost = micros(input_tokens=300, output_tokens=64)
    reservation = reserve(tenant_id, 4_000)
    ledger.record(reservation, answered(cost, 300, 64, status=ledger.INCOMPLETE))
    settle_usage()
    assert month(tenant_id, reservation.period) == totals(requests=1, input_tokens=300, output_tokens=64,
                                                          cost_micros=cost, pool_requests=1, pool_cost_micros=cost)
    assert given_back(tenant_id) == {f"r:{reservation.period}": 4_000 - cost, f"n:{reservation.bucket}:b": 1,
                                     f"v:{reservation.bucket}:b": 4_000}


def test_a_failed_call_gives_back_its_whole_worst_case_and_its_admission_and_charges_nothing():
    tenant_id = new_tenant()
    reservation = reserve(tenant_id, 7_777)
    ledger.record(reservation, ledger.Settlement("usr_fold", "user", SONNET, own_key=False, status=ledger.FAILED))
    settle_usage()
    period, bucket = reservation.period, reservation.bucket
    assert month(tenant_id, period) == totals(failed_requests=1)
    assert given_back(tenant_id) == {f"r:{period}": 7_777, f"q:{period}:b": 1, f"n:{bucket}:b": 1,
                                     f"v:{bucket}:b": 7_777}
    with pytest.raises(FeatureUsage.DoesNotExist):
        FeatureUsage.get(tenant_pk(tenant_id), FeatureUsage.sk_for(period, "basic_chat"), consistent_read=True)


def test_an_unanswered_call_is_not_charged_keeps_its_admission_and_shows_its_bound_as_exposure():
    tenant_id = new_tenant()
    reservation = reserve(tenant_id, 6_500)
    ledger.record(reservation, ledger.Settlement("usr_fold", "user", SONNET, own_key=False,
                                                 status=ledger.INDETERMINATE))
    settle_usage()
    period, bucket = reservation.period, reservation.bucket
    assert month(tenant_id, period) == totals(indeterminate_requests=1, exposure_micros=6_500)
    assert given_back(tenant_id) == {f"r:{period}": 6_500, f"n:{bucket}:b": 1, f"v:{bucket}:b": 6_500}


def _stored_unanswered_event(tenant_id, reservation, bound):
    UsageEvent(tenant_pk(tenant_id), UsageEvent.sk_for(reservation.request_id), request_id=reservation.request_id,
               principal_id="usr_fold", principal_type="user", feature=reservation.feature, model=SONNET,
               status=ledger.INDETERMINATE, period=reservation.period, bucket=reservation.bucket,
               worst_case_micros=reservation.worst_case_micros, cost_bound_micros=bound, key_source="platform",
               created_at=reservation.started_at, expires_at=timedelta(days=400)).save()


def test_the_exposure_of_an_unanswered_call_is_its_recorded_bound_not_its_worst_case():
    tenant_id = new_tenant()
    reservation = reserve(tenant_id, 1_000)
    _stored_unanswered_event(tenant_id, reservation, bound=700)
    settle_usage()
    assert month(tenant_id, reservation.period) == totals(indeterminate_requests=1, exposure_micros=700)


def test_an_unanswered_call_stored_without_a_bound_counts_its_worst_case_as_exposure():
    tenant_id = new_tenant()
    reservation = reserve(tenant_id, 1_300)
    _stored_unanswered_event(tenant_id, reservation, bound=None)
    settle_usage()
    assert month(tenant_id, reservation.period) == totals(indeterminate_requests=1, exposure_micros=1_300)


# --- after the sweeper: abandoned reservations and late settles ----------------------------------------------

def _died(tenant_id, worsts, settled=()):
    """Reservations in one sweep bucket whose handlers died, except those in `settled` (index -> cost); then
    the sweeper reclaims the bucket and the stream folds everything."""
    start = own_bucket_start()
    reservations = [reserve(tenant_id, worst, now=start + timedelta(seconds=i)) for i, worst in enumerate(worsts)]
    for index, cost in dict(settled).items():
        ledger.record(reservations[index], answered(cost, 10, 2))
    settle_usage()
    bucket = reservations[0].bucket
    assert {r.bucket for r in reservations} == {bucket}
    assert sweeper.sweep(now=reclaim_time(bucket)).reclaims == 1
    settle_usage()
    return reservations


def test_abandoned_reservations_are_given_back_for_only_what_no_event_accounted_for():
    tenant_id = new_tenant()
    settled_cost = micros(input_tokens=10, output_tokens=2)
    reservations = _died(tenant_id, [3_000, 4_100, 5_200], settled={0: settled_cost})
    period, bucket = reservations[0].period, reservations[0].bucket
    assert month(tenant_id, period) == totals(requests=1, input_tokens=10, output_tokens=2, cost_micros=settled_cost,
                                              pool_requests=1, pool_cost_micros=settled_cost, abandoned_requests=2,
                                              exposure_micros=4_100 + 5_200)
    assert given_back(tenant_id) == {
        f"r:{period}": (3_000 - settled_cost) + 4_100 + 5_200, f"q:{period}:b": 2,
        f"n:{bucket}:b": 3, f"v:{bucket}:b": 3_000 + 4_100 + 5_200, f"x:{bucket}:b": 1}
    abandoned = event_of(tenant_id, sweeper.reclaim_request_id(bucket, "basic_chat"))
    assert abandoned.status == ledger.ABANDONED
    assert int(abandoned.cost_bound_micros) == 4_100 + 5_200
    assert {k: int(v) for k, v in abandoned.reclaimed.as_dict().items()} == {"count": 2, "worst": 9_300}


def test_a_late_answer_after_the_reclaim_is_charged_once_and_takes_its_admission_again():
    tenant_id = new_tenant()
    [reservation] = _died(tenant_id, [9_000])
    period = reservation.period
    assert given_back(tenant_id)[f"r:{period}"] == 9_000 and given_back(tenant_id)[f"q:{period}:b"] == 1
    cost = micros(input_tokens=400, output_tokens=20)
    assert ledger.record(reservation, answered(cost, 400, 20)) is True
    assert ledger.record(reservation, answered(cost, 400, 20)) is False
    settle_usage()
    back = given_back(tenant_id)
    assert back[f"r:{period}"] == 9_000 - cost and f"q:{period}:b" not in back
    assert month(tenant_id, period) == totals(requests=1, input_tokens=400, output_tokens=20, cost_micros=cost,
                                              pool_requests=1, pool_cost_micros=cost, abandoned_requests=1,
                                              exposure_micros=9_000)
    view, returns = admission.load_view(tenant_id), admission.load_returns(tenant_id)
    assert view.counters[counter_keys.committed_key(period)] - returns.refunded(period) == cost
    assert view.counters[counter_keys.admitted_key(period, "basic_chat")] - returns.released(period, "basic_chat") == 1


def test_a_late_failure_after_the_reclaim_gives_back_nothing_more():
    tenant_id = new_tenant()
    [reservation] = _died(tenant_id, [2_500])
    ledger.record(reservation, ledger.Settlement("usr_fold", "user", SONNET, own_key=False, status=ledger.FAILED))
    settle_usage()
    back = given_back(tenant_id)
    assert (back[f"r:{reservation.period}"], back[f"q:{reservation.period}:b"]) == (2_500, 1)
    assert month(tenant_id, reservation.period) == totals(failed_requests=1, abandoned_requests=1,
                                                          exposure_micros=2_500)


def test_a_late_unanswered_call_after_the_reclaim_takes_its_admission_again_and_is_not_charged():
    tenant_id = new_tenant()
    [reservation] = _died(tenant_id, [3_300])
    ledger.record(reservation, ledger.Settlement("usr_fold", "user", SONNET, own_key=False,
                                                 status=ledger.INDETERMINATE))
    settle_usage()
    back = given_back(tenant_id)
    assert back[f"r:{reservation.period}"] == 3_300 and f"q:{reservation.period}:b" not in back
    assert month(tenant_id, reservation.period) == totals(indeterminate_requests=1, abandoned_requests=1,
                                                          exposure_micros=3_300 + 3_300)


def test_a_late_settle_folded_in_the_same_batch_as_the_reclaim_is_late_too():
    tenant_id = new_tenant()
    start = own_bucket_start()
    reservation = reserve(tenant_id, 8_000, now=start)
    settle_usage()
    cost = micros(input_tokens=1_000)
    with stream_paused():
        sweeper.sweep(now=reclaim_time(reservation.bucket))
        ledger.record(reservation, answered(cost, 1_000))
        abandoned = event_of(tenant_id, sweeper.reclaim_request_id(reservation.bucket, "basic_chat"))
        late = event_of(tenant_id, reservation.request_id)
        report = aggregator.handle([insert_record(abandoned), insert_record(late)])
    assert (report.events, report.duplicates) == (2, 0)
    back = given_back(tenant_id)
    assert back[f"r:{reservation.period}"] == 8_000 - cost and f"q:{reservation.period}:b" not in back


def test_a_settle_folded_in_the_same_batch_just_before_the_reclaim_is_not_reclaimed_again():
    """The sweeper judged the bucket before the settle was folded, so its reclaim names both reservations; the
    fold, which meets the settle first in the same batch, gives back only the one no event accounted for."""
    tenant_id = new_tenant()
    start = own_bucket_start()
    kept, lost = reserve(tenant_id, 6_000, now=start), reserve(tenant_id, 7_000, now=start + timedelta(seconds=1))
    settle_usage()
    cost = micros(input_tokens=1_000)
    period, bucket = kept.period, kept.bucket
    with stream_paused():
        ledger.record(kept, answered(cost, 1_000))
        assert sweeper.sweep(now=reclaim_time(bucket)).reclaims == 1
        settled = event_of(tenant_id, kept.request_id)
        abandoned = event_of(tenant_id, sweeper.reclaim_request_id(bucket, "basic_chat"))
        assert {k: int(v) for k, v in abandoned.reclaimed.as_dict().items()} == {"count": 2, "worst": 13_000}
        report = aggregator.handle([insert_record(settled), insert_record(abandoned)])
    assert (report.events, report.duplicates) == (2, 0)
    assert given_back(tenant_id) == {f"r:{period}": (6_000 - cost) + 7_000, f"q:{period}:b": 1,
                                     f"n:{bucket}:b": 2, f"v:{bucket}:b": 13_000, f"x:{bucket}:b": 1}
    assert month(tenant_id, period) == totals(requests=1, input_tokens=1_000, cost_micros=cost, pool_requests=1,
                                              pool_cost_micros=cost, abandoned_requests=1, exposure_micros=7_000)
    folded = event_of(tenant_id, abandoned.request_id)
    assert {k: int(v) for k, v in folded.reclaimed.as_dict().items()} == {"count": 1, "worst": 7_000}


def test_a_redelivered_reclaim_gives_nothing_back_twice():
    tenant_id = new_tenant()
    [reservation] = _died(tenant_id, [4_400])
    before = (month(tenant_id, reservation.period), reconciliation(tenant_id))
    abandoned = event_of(tenant_id, sweeper.reclaim_request_id(reservation.bucket, "basic_chat"))
    record = insert_record(abandoned)
    record["dynamodb"]["NewImage"].pop("aggregated_at")
    with stream_paused():
        report = aggregator.handle([record])
    assert (report.events, report.duplicates) == (0, 1)
    assert (month(tenant_id, reservation.period), reconciliation(tenant_id)) == before


# --- batches, chunks, the report and the stamp ---------------------------------------------------------------

def test_a_batch_folds_each_new_event_once_and_reports_the_ones_already_folded():
    tenant_id = new_tenant()
    first = reserve(tenant_id, 1_000)
    ledger.record(first, answered(micros(input_tokens=100), 100))
    settle_usage()
    with stream_paused():
        later = [reserve(tenant_id, 2_000) for _ in range(2)]
        for reservation in later:
            ledger.record(reservation, answered(micros(output_tokens=10), 0, 10))
        records = [insert_record(event_of(tenant_id, r.request_id)) for r in (later[0], first, later[1])]
        records[1]["dynamodb"]["NewImage"].pop("aggregated_at")
        report = aggregator.handle(records)
    assert (report.events, report.duplicates, report.marks) == (2, 1, 0)
    assert month(tenant_id, first.period) == totals(
        requests=3, input_tokens=100, output_tokens=20, cost_micros=300 + 2 * 150, pool_requests=3,
        pool_cost_micros=300 + 2 * 150)


def test_the_aggregator_stamps_each_event_with_the_moment_it_folded_it():
    tenant_id = new_tenant()
    moment = datetime(2039, 6, 1, 8, 30, 15, tzinfo=timezone.utc)
    with stream_paused():
        reservation = reserve(tenant_id, 500)
        ledger.record(reservation, answered(300, 100))
        aggregator.handle([insert_record(event_of(tenant_id, reservation.request_id))], now=moment)
    assert event_of(tenant_id, reservation.request_id).aggregated_at == moment


def test_a_tenants_events_are_folded_at_most_eighty_to_a_transaction():
    tenant_id = new_tenant()
    cost = micros(input_tokens=1, output_tokens=1)
    with stream_paused():
        reservations = [reserve(tenant_id, 50) for _ in range(81)]
        for reservation in reservations:
            ledger.record(reservation, answered(cost, 1, 1))
        records = [insert_record(event_of(tenant_id, r.request_id)) for r in reservations]
        with DynamoProbe(this_thread=True) as probe:
            report = aggregator.handle(records)
    assert (report.events, report.duplicates) == (81, 0)
    assert probe.calls["TransactWriteItems"] == 2
    period = reservations[0].period
    assert month(tenant_id, period) == totals(requests=81, input_tokens=81, output_tokens=81, cost_micros=81 * cost,
                                              pool_requests=81, pool_cost_micros=81 * cost)
    assert reconciliation(tenant_id)[0] == 2
    assert given_back(tenant_id)[f"r:{period}"] == 81 * (50 - cost)


def test_only_new_events_are_folded_not_changes_to_them_or_other_records():
    tenant_id = new_tenant()
    reservation = reserve(tenant_id, 900)
    ledger.record(reservation, answered(micros(input_tokens=10), 10))
    settle_usage()
    record = insert_record(event_of(tenant_id, reservation.request_id))
    record["dynamodb"]["NewImage"].pop("aggregated_at")
    changed = {**record, "eventName": "MODIFY"}
    removed = {"eventName": "REMOVE", "dynamodb": {"OldImage": record["dynamodb"]["NewImage"]}}
    odd = {"eventName": "INSERT", "dynamodb": {"NewImage": {**record["dynamodb"]["NewImage"], "sk": {"S": "PROFILE"}}}}
    with stream_paused():
        report = aggregator.handle([changed, removed, odd, {"eventName": "INSERT"}])
    assert (report.events, report.duplicates, report.marks) == (0, 0, 0)


# --- sweep marks ---------------------------------------------------------------------------------------------

def test_a_reservation_in_a_new_bucket_marks_the_tenant_for_that_bucket_for_three_days():
    tenant_id = new_tenant()
    bucket = 7_000 + secrets.randbelow(1_000_000)  # a bucket of 1970: no sweep ever looks there
    counters = {"a:2040-01:b": 3, "w:2040-01": 90, f"t:{bucket * 10}:0": 1}
    with stream_paused():
        first = aggregator.handle([admission_record(tenant_id, {**counters, f"n:{bucket}:b": 1, f"v:{bucket}:b": 9},
                                                    event_name="INSERT")])
        again = aggregator.handle([admission_record(tenant_id, {**counters, f"n:{bucket}:b": 2, f"v:{bucket}:b": 19},
                                                    old_counters={f"n:{bucket}:b": 1, f"v:{bucket}:b": 9})])
        two = aggregator.handle([admission_record(
            tenant_id, {f"n:{bucket}:b": 2, f"n:{bucket + 1}:b": 1, f"n:{bucket + 2}:c": 1},
            old_counters={f"n:{bucket}:b": 2})])
    assert (first.marks, again.marks, two.marks) == (1, 0, 2)
    for b in (bucket, bucket + 1, bucket + 2):
        mark = SweepMark.get(f"SWEEP#{b}", tenant_pk(tenant_id), consistent_read=True)
        assert mark.tenant_id == tenant_id
        left = mark.expires_at - datetime.now(timezone.utc)
        assert timedelta(days=3) - timedelta(minutes=5) < left <= timedelta(days=3)
        mark.delete()
