"""The sweeper on moto: which buckets it may judge, what it reclaims (exactly once, for exactly what no event
accounted for), how it resolves a bucket, and what its abandoned event says.

Reservations are made by the real admission at moments of the test's own (in a month of its own between 2100 and
2999, conftest.own_month), so no other test's sweep marks share the day of buckets a sweep looks at, and a test run
again gets a new month.
"""
from __future__ import annotations

import os
import secrets
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from pynamodb.exceptions import PutError

from chalicelib import operators, tenants
from chalicelib.ids import new_request_id
from chalicelib.metering import admission, ledger, sweeper
from chalicelib.models import Admission, Reconciliation, SweepMark, UsageEvent, tenant_pk
from chalicelib.settings import get_settings
from conftest import own_bucket_start, own_month, random_slug, settle_usage, stream_paused, tessera_log
from dynamo_hooks import DynamoCalls, DynamoOutage
from dev.bench.probes import DynamoProbe

BUCKET = admission.BUCKET_SECONDS
pytestmark = pytest.mark.usefixtures("own_table")


def new_tenant():
    slug = random_slug("sw")
    created = tenants.sign_up({"company_name": "Sweep Co", "slug": slug, "email": f"o@{slug}.example.com",
                               "password": "sweep-password-1"})
    operators.set_limits(created["tenant_id"], {"requests_per_minute": 100_000})
    return created["tenant_id"]


def reserve(tenant_id, worst, now, feature="basic_chat"):
    reservation, _ = admission.reserve(
        tenant_id, new_request_id(now.timestamp()), feature, worst, None, admission.Returns(),
        load_view=lambda: admission.load_view(tenant_id), load_returns=lambda: admission.load_returns(tenant_id),
        now=now)
    return reservation


def answered(cost):
    return ledger.Settlement(principal_id="usr_sweep", principal_type="user", model="claude-sonnet-4-6",
                             input_tokens=10, output_tokens=2, cost_micros=cost, latency_ms=3)


def reclaim_time(bucket):
    return datetime.fromtimestamp((bucket + 1) * BUCKET + sweeper.GRACE_SECONDS, tz=timezone.utc)


def report(buckets=0, tenants_=0, reclaims=0, resolved=0):
    return sweeper.Report(buckets=buckets, tenants=tenants_, reclaims=reclaims, resolved=resolved)


def abandoned_event(tenant_id, bucket, feature="basic_chat"):
    try:
        return UsageEvent.get(tenant_pk(tenant_id), UsageEvent.sk_for(sweeper.reclaim_request_id(bucket, feature)),
                              consistent_read=True)
    except UsageEvent.DoesNotExist:
        return None


def bucket_keys(tenant_id, bucket):
    counters = Admission.get(tenant_pk(tenant_id), Admission.SK, consistent_read=True).counters.as_dict()
    return {k: int(v) for k, v in counters.items() if k.split(":")[1:2] == [str(bucket)]}


def given_back(tenant_id):
    item = Reconciliation.get(tenant_pk(tenant_id), Reconciliation.SK, consistent_read=True)
    return {k: int(v) for k, v in item.counters.as_dict().items() if int(v)}


def mark_exists(tenant_id, bucket):
    return bool(list(SweepMark.query(f"SWEEP#{bucket}", SweepMark.sk == tenant_pk(tenant_id), consistent_read=True)))


# --- which buckets ---------------------------------------------------------------------------------------------

def test_a_bucket_is_judged_from_grace_seconds_after_its_end_and_for_a_day_after():
    bucket = 4_000_000 + secrets.randbelow(1_000)
    end = (bucket + 1) * BUCKET
    assert sweeper.sweepable(datetime.fromtimestamp(end + 300, tz=timezone.utc)) == list(range(bucket - 143, bucket + 1))
    assert sweeper.sweepable(datetime.fromtimestamp(end + 299.999, tz=timezone.utc))[-1] == bucket - 1
    assert sweeper.sweepable(datetime.fromtimestamp(end + 300 + BUCKET - 1, tz=timezone.utc))[-1] == bucket
    assert len(sweeper.sweepable(datetime.fromtimestamp(end, tz=timezone.utc))) == 144


# --- reclaiming and resolving ------------------------------------------------------------------------------------

def test_a_dead_reservation_is_reclaimed_once_then_its_bucket_resolved_and_its_mark_removed(caplog):
    tenant_id = new_tenant()
    start = own_bucket_start()
    reservation = reserve(tenant_id, 9_000, now=start)
    settle_usage()
    bucket = reservation.bucket
    assert mark_exists(tenant_id, bucket)
    with tessera_log(caplog):
        first = sweeper.sweep(now=reclaim_time(bucket))
    assert first == report(buckets=1, tenants_=1, reclaims=1)
    [line] = [r for r in caplog.records if r.getMessage() == "abandoned reservations reclaimed"]
    assert (line.logger, line.levelname) == ("tessera.sweeper", "WARNING")
    assert (line.tenant_id, line.bucket, line.feature) == (tenant_id, bucket, "basic_chat")
    settle_usage()
    assert given_back(tenant_id) == {f"r:{reservation.period}": 9_000, f"q:{reservation.period}:b": 1,
                                     f"n:{bucket}:b": 1, f"v:{bucket}:b": 9_000, f"x:{bucket}:b": 1}
    assert bucket_keys(tenant_id, bucket) == {f"n:{bucket}:b": 1, f"v:{bucket}:b": 9_000}
    assert sweeper.sweep(now=reclaim_time(bucket)) == report(buckets=1, tenants_=1, resolved=1)
    assert bucket_keys(tenant_id, bucket) == {}
    assert not mark_exists(tenant_id, bucket)
    assert sweeper.sweep(now=reclaim_time(bucket) + timedelta(hours=1)) == report()


def test_the_abandoned_event_is_the_sweepers_at_the_buckets_start_with_what_was_reserved():
    tenant_id = new_tenant()
    start = own_bucket_start()
    reservations = [reserve(tenant_id, worst, now=start + timedelta(seconds=i)) for i, worst in
                    enumerate((1_000, 2_500))]
    settle_usage()
    bucket = reservations[0].bucket
    with stream_paused():
        sweeper.sweep(now=reclaim_time(bucket))
        event = abandoned_event(tenant_id, bucket)
    assert (event.principal_id, event.principal_type, event.model, event.key_source) == (
        "sweeper", "system", "unknown", "unknown")
    assert (event.status, event.feature, event.period, int(event.bucket)) == (
        ledger.ABANDONED, "basic_chat", reservations[0].period, bucket)
    assert event.created_at == start
    assert (int(event.worst_case_micros), int(event.cost_micros)) == (0, 0)
    assert {k: int(v) for k, v in event.reclaimed.as_dict().items()} == {"count": 2, "worst": 3_500}
    # Kept for the retention from the reservations' bucket, as every usage event is from its call's start.
    assert event.expires_at == start + timedelta(days=get_settings().usage_retention_days)
    last_ms = (bucket + 1) * BUCKET * 1000 - 1  # the bucket's last millisecond: sorts with its own requests
    assert event.request_id == f"req_{last_ms:012x}reclaimbasic_chat"
    settle_usage()


def test_the_abandoned_event_is_dated_in_utc_whatever_the_machines_time_zone():
    tenant_id = new_tenant()
    month = own_month()
    month_end = (month + timedelta(days=32)).replace(day=1) - timedelta(minutes=10)  # in Tokyo, the next month
    reservation = reserve(tenant_id, 100, now=month_end)
    settle_usage()
    zone = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Tokyo"
    time.tzset()
    try:
        with stream_paused():
            sweeper.sweep(now=reclaim_time(reservation.bucket))
            event = abandoned_event(tenant_id, reservation.bucket)
    finally:
        if zone is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = zone
        time.tzset()
    assert event.created_at == month_end and event.period == f"{month.year:04d}-{month.month:02d}"
    settle_usage()


def test_a_second_sweep_before_the_reclaim_is_folded_writes_no_second_event():
    tenant_id = new_tenant()
    reservation = reserve(tenant_id, 4_000, now=own_bucket_start())
    settle_usage()
    at = reclaim_time(reservation.bucket)
    with stream_paused():
        assert sweeper.sweep(now=at) == report(buckets=1, tenants_=1, reclaims=1)
        assert sweeper.sweep(now=at) == report(buckets=1, tenants_=1)
    settle_usage()
    assert given_back(tenant_id)[f"r:{reservation.period}"] == 4_000


def test_a_bucket_whose_every_reservation_was_settled_is_resolved_without_a_reclaim():
    tenant_id = new_tenant()
    reservation = reserve(tenant_id, 2_000, now=own_bucket_start())
    ledger.record(reservation, answered(700))
    settle_usage()
    assert sweeper.sweep(now=reclaim_time(reservation.bucket)) == report(buckets=1, tenants_=1, resolved=1)
    assert abandoned_event(tenant_id, reservation.bucket) is None
    assert bucket_keys(tenant_id, reservation.bucket) == {} and not mark_exists(tenant_id, reservation.bucket)


@pytest.mark.parametrize("settled_first", [True, False], ids=["settled-tenant-first", "dead-tenant-first"])
def test_tenants_sharing_a_bucket_are_each_judged_on_their_own_items(settled_first):
    start = own_bucket_start()
    # The sweeper reads a bucket's marks in the order of their tenants' ids, and each tenant's items by its
    # place in that order: both orders, so neither tenant is read at a place the other's items also fit.
    first, second = sorted([new_tenant(), new_tenant()])
    settled, dead = (first, second) if settled_first else (second, first)
    kept = reserve(settled, 1_500, now=start)
    ledger.record(kept, answered(400))
    # Worst cases that differ, so judging either tenant on the other's items would show.
    lost = reserve(dead, 2_000, now=start + timedelta(seconds=1))
    settle_usage()
    assert kept.bucket == lost.bucket
    assert sweeper.sweep(now=reclaim_time(kept.bucket)) == report(buckets=1, tenants_=2, reclaims=1, resolved=1)
    assert abandoned_event(settled, kept.bucket) is None
    assert abandoned_event(dead, lost.bucket) is not None
    assert not mark_exists(settled, kept.bucket) and mark_exists(dead, lost.bucket)
    settle_usage()
    assert given_back(settled)[f"r:{kept.period}"] == 1_100
    assert given_back(dead)[f"r:{lost.period}"] == 2_000


def test_more_than_fifty_tenants_of_a_bucket_are_read_fifty_at_a_time():
    start = own_bucket_start()
    bucket = int(start.timestamp()) // BUCKET
    prefix = f"ten_{secrets.token_hex(6)}"
    ids = [f"{prefix}{n:08d}" for n in range(51)]
    # Admission items as admission leaves them for a tenant with one reservation in the bucket; the stream
    # marks each tenant for the bucket.
    with Admission.batch_write() as batch:
        for tenant_id in ids:
            batch.save(Admission(tenant_pk(tenant_id), Admission.SK, version=0,
                                 counters={f"n:{bucket}:b": 1, f"v:{bucket}:b": 300}))
    settle_usage()
    with DynamoProbe(this_thread=True) as probe:
        first = sweeper.sweep(now=reclaim_time(bucket))
    assert first == report(buckets=1, tenants_=51, reclaims=51)
    assert probe.calls["BatchGetItem"] == 2
    assert all(abandoned_event(t, bucket) is not None for t in ids)
    settle_usage()
    assert sweeper.sweep(now=reclaim_time(bucket)) == report(buckets=1, tenants_=51, resolved=51)
    assert not list(SweepMark.query(f"SWEEP#{bucket}", consistent_read=True))


def test_a_dead_reservation_with_no_worst_case_still_gives_its_admission_back():
    tenant_id = new_tenant()
    reservation = reserve(tenant_id, 0, now=own_bucket_start())
    settle_usage()
    assert sweeper.sweep(now=reclaim_time(reservation.bucket)).reclaims == 1
    settle_usage()
    assert given_back(tenant_id) == {f"q:{reservation.period}:b": 1, f"n:{reservation.bucket}:b": 1,
                                     f"x:{reservation.bucket}:b": 1}


def test_a_bucket_whose_worst_case_is_not_all_accounted_for_is_reclaimed_for_the_difference():
    tenant_id = new_tenant()
    reservation = reserve(tenant_id, 1, now=own_bucket_start())
    ledger.record(replace(reservation, worst_case_micros=0), answered(0))  # recorded for less than was reserved
    settle_usage()
    assert sweeper.sweep(now=reclaim_time(reservation.bucket)).reclaims == 1
    settle_usage()
    back = given_back(tenant_id)
    assert back[f"r:{reservation.period}"] == 1 and f"q:{reservation.period}:b" not in back


def test_a_mark_delivered_again_after_its_bucket_was_resolved_is_removed_without_a_write():
    tenant_id = new_tenant()
    reservation = reserve(tenant_id, 600, now=own_bucket_start())
    ledger.record(reservation, answered(100))
    settle_usage()
    at = reclaim_time(reservation.bucket)
    assert sweeper.sweep(now=at).resolved == 1
    SweepMark(f"SWEEP#{reservation.bucket}", tenant_pk(tenant_id), tenant_id=tenant_id,
              expires_at=timedelta(days=3)).save()  # the stream delivers a batch twice: the mark comes back
    with DynamoProbe(this_thread=True) as probe:
        assert sweeper.sweep(now=at) == report(buckets=1, tenants_=1, resolved=1)
    assert "UpdateItem" not in probe.calls and "PutItem" not in probe.calls
    assert not mark_exists(tenant_id, reservation.bucket)


def test_the_sweeper_reads_marks_and_tenants_consistently():
    tenant_id = new_tenant()
    reservation = reserve(tenant_id, 600, now=own_bucket_start())
    settle_usage()
    with stream_paused(), DynamoCalls() as calls:
        sweeper.sweep(now=reclaim_time(reservation.bucket))
    queries, batches = calls.params_of("Query"), calls.params_of("BatchGetItem")
    assert len(queries) == 144 and all(q.get("ConsistentRead") is True for q in queries)
    assert batches and all(table.get("ConsistentRead") is True for b in batches for table in b["RequestItems"].values())
    settle_usage()


def test_a_reclaim_that_fails_to_be_written_fails_the_sweep_and_counts_nothing():
    tenant_id = new_tenant()
    reservation = reserve(tenant_id, 800, now=own_bucket_start())
    settle_usage()
    with DynamoOutage("PutItem"), pytest.raises(PutError):
        sweeper.sweep(now=reclaim_time(reservation.bucket))
    assert abandoned_event(tenant_id, reservation.bucket) is None and mark_exists(tenant_id, reservation.bucket)
    assert sweeper.sweep(now=reclaim_time(reservation.bucket)).reclaims == 1
    settle_usage()


def test_a_sweep_given_no_time_judges_the_buckets_that_ended_by_the_clock():
    tenant_id = new_tenant()
    an_hour_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    reservation = reserve(tenant_id, 700, now=an_hour_ago)
    settle_usage()
    assert sweeper.sweep().reclaims >= 1
    assert abandoned_event(tenant_id, reservation.bucket) is not None
    settle_usage()
