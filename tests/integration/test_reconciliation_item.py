"""The aggregator's reconciliation item: one version per fold, races with other writers, and what it forgets."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from pynamodb.exceptions import TransactWriteError

from chalicelib.metering import aggregator, ledger
from chalicelib.models import Reconciliation, UsagePeriod, tenant_pk
from chalicelib.store import RETRY
from conftest import own_bucket_start, settle_usage, stream_paused
from dynamo_hooks import DynamoCalls, DynamoOutage
from test_aggregator_exact import (
    BUCKET, PERIOD_FIELDS, SONNET, _died, answered, event_of, insert_record, month, new_tenant,
    reconciliation, reserve)


# --- the reconciliation item: versions, races, what it forgets ------------------------------------------------

class ReconciliationRace(DynamoCalls):
    """At the DynamoDB client's edge: right after the aggregator reads (or fails to find) this tenant's
    reconciliation item, another writer changes it, as a second aggregator would (the first `times` reads).
    Only this thread's reads: the usage stream's pump folds through the same client on a thread of its own."""

    def __init__(self, tenant_id, write, times=1):
        super().__init__()
        self.item, self.write, self.times, self.raced = (tenant_pk(tenant_id), Reconciliation.SK), write, times, 0

    def _of_the_item(self, params):
        key = params.get("Key", {})
        return (key.get("pk", {}).get("S"), key.get("sk", {}).get("S")) == self.item

    @property
    def reads(self):
        return [params for params in self.params_of("GetItem") if self._of_the_item(params)]

    def answered(self, name, params, answer):
        if name == "GetItem" and self._of_the_item(params) and self.raced < self.times:
            self.raced += 1
            self.write(found="Item" in answer)


def _other_writer(tenant_id):
    def write(found):
        item = Reconciliation(tenant_pk(tenant_id), Reconciliation.SK)
        if not found:
            Reconciliation(tenant_pk(tenant_id), Reconciliation.SK, version=1, counters={"r:2039-01": 5}).save()
        else:
            item.update(actions=[Reconciliation.version.add(1),
                                 Reconciliation.counters["r:2039-01"].set((Reconciliation.counters["r:2039-01"] | 0) + 5)])
    return write


def _one_event(tenant_id, worst=2_000, cost=600):
    reservation = reserve(tenant_id, worst)
    ledger.record(reservation, answered(cost, 200))
    return reservation, insert_record(event_of(tenant_id, reservation.request_id))


def test_each_fold_moves_the_reconciliation_version_by_one():
    tenant_id = new_tenant()
    for expected in (1, 2):
        _one_event(tenant_id)
        settle_usage()
        assert reconciliation(tenant_id)[0] == expected


def test_a_fold_that_raced_another_writer_is_written_again_on_the_fresh_item():
    tenant_id = new_tenant()
    _one_event(tenant_id)
    settle_usage()
    with stream_paused():
        reservation, record = _one_event(tenant_id, worst=2_000, cost=600)
        with ReconciliationRace(tenant_id, _other_writer(tenant_id)) as race:
            report = aggregator.handle([record])
    assert report.events == 1 and race.raced == 1 and len(race.reads) == 2
    version, counters = reconciliation(tenant_id)
    assert version == 3  # ours, the other writer's, ours again on top
    assert counters["r:2039-01"] == 5 and counters[f"r:{reservation.period}"] == 2 * 1_400


def test_a_reconciliation_item_created_by_another_aggregator_first_is_read_again_not_overwritten():
    tenant_id = new_tenant()
    with stream_paused():
        reservation, record = _one_event(tenant_id, worst=3_000, cost=600)
        with ReconciliationRace(tenant_id, _other_writer(tenant_id)) as race:
            report = aggregator.handle([record])
    assert report.events == 1 and race.raced == 1
    assert all(read.get("ConsistentRead") is True for read in race.reads) and len(race.reads) == 2
    assert reconciliation(tenant_id) == (2, {"r:2039-01": 5, f"r:{reservation.period}": 2_400,
                                             f"n:{reservation.bucket}:b": 1, f"v:{reservation.bucket}:b": 3_000})


def test_a_fold_that_loses_every_race_gives_up_after_the_retry_policys_attempts_and_leaves_the_batch_to_be_retried():
    tenant_id = new_tenant()
    _one_event(tenant_id)
    settle_usage()
    with stream_paused():
        reservation, record = _one_event(tenant_id)
        started = time.monotonic()
        with ReconciliationRace(tenant_id, _other_writer(tenant_id), times=100) as race:
            with pytest.raises(RuntimeError):
                aggregator.handle([record])
        assert time.monotonic() - started < 8  # short pauses: RETRY's, at most 25, 50, 100, 200, 200 ms
        assert race.raced == aggregator.ATTEMPTS == RETRY.attempts == 6
        assert event_of(tenant_id, reservation.request_id).aggregated_at is None
    settle_usage()  # the stream hands the same record over again: folded then, once
    assert event_of(tenant_id, reservation.request_id).aggregated_at is not None


def test_a_failure_that_is_not_a_race_is_raised_at_once_for_the_stream_to_retry():
    tenant_id = new_tenant()
    with stream_paused():
        reservation, record = _one_event(tenant_id)
        with DynamoOutage("TransactWriteItems") as outage, pytest.raises(TransactWriteError):
            aggregator.handle([record])
        assert outage.refused == 1
    settle_usage()
    assert month(tenant_id, reservation.period)["requests"] == 1


def _settle_at(tenant_id, moment, worst=100, cost=30, drain=True):
    reservation = reserve(tenant_id, worst, now=moment)
    ledger.record(reservation, answered(cost, 10))
    if drain:
        settle_usage()
    return reservation


def test_bucket_accounting_is_kept_two_days_then_forgotten():
    tenant_id = new_tenant()
    start = own_bucket_start()
    old = _settle_at(tenant_id, start)
    keep = timedelta(seconds=aggregator.KEEP_RECONCILED_BUCKETS * BUCKET)
    _settle_at(tenant_id, start + keep)
    counters = reconciliation(tenant_id)[1]
    assert f"n:{old.bucket}:b" in counters and f"v:{old.bucket}:b" in counters
    _settle_at(tenant_id, start + keep + timedelta(seconds=BUCKET))
    counters = reconciliation(tenant_id)[1]
    assert f"n:{old.bucket}:b" not in counters and f"v:{old.bucket}:b" not in counters
    assert f"n:{old.bucket + 288}:b" in counters


def test_refunds_are_kept_for_the_two_months_before_and_forgotten_after():
    tenant_id = new_tenant()
    for moment in (datetime(2043, 10, 31, 23, 0, tzinfo=timezone.utc), datetime(2043, 11, 2, tzinfo=timezone.utc)):
        _settle_at(tenant_id, moment)
    failed = reserve(tenant_id, 100, now=datetime(2043, 11, 3, tzinfo=timezone.utc))
    ledger.record(failed, ledger.Settlement("usr_fold", "user", SONNET, own_key=False, status=ledger.FAILED))
    settle_usage()
    assert {"r:2043-10", "r:2043-11", "q:2043-11:b"} <= set(reconciliation(tenant_id)[1])
    _settle_at(tenant_id, datetime(2044, 1, 5, tzinfo=timezone.utc))
    counters = reconciliation(tenant_id)[1]
    assert "r:2043-10" not in counters
    assert counters["r:2043-11"] == 70 + 100 and counters["q:2043-11:b"] == 1
    _settle_at(tenant_id, datetime(2044, 2, 5, tzinfo=timezone.utc))
    counters = reconciliation(tenant_id)[1]
    assert "r:2043-11" not in counters and "q:2043-11:b" not in counters and counters["r:2044-01"] == 70


def test_month_arithmetic_crosses_years_both_ways():
    assert aggregator._months_before("2044-02", 2) == "2043-12"
    assert aggregator._months_before("2044-01", 1) == "2043-12"
    assert aggregator._months_before("2044-12", 2) == "2044-10"
    assert aggregator._months_before("2044-03", 2) == "2044-01"
    assert aggregator._months_before("0999-11", 0) == "0999-11"


def test_at_most_thirty_two_forgotten_keys_are_removed_by_one_fold():
    tenant_id = new_tenant()
    start = own_bucket_start()
    for i in range(17):  # 34 bucket keys (n and v of 17 buckets)
        _settle_at(tenant_id, start + timedelta(seconds=i * BUCKET), drain=False)
    settle_usage()
    much_later = start + timedelta(days=5)
    _settle_at(tenant_id, much_later)
    left = [k for k in reconciliation(tenant_id)[1] if k[0] in "nv" and int(k.split(":")[1]) < (
        int(much_later.timestamp()) // BUCKET) - 288]
    assert len(left) == 2
    _settle_at(tenant_id, much_later + timedelta(seconds=1))
    left = [k for k in reconciliation(tenant_id)[1] if k[0] in "nv" and int(k.split(":")[1]) < (
        int(much_later.timestamp()) // BUCKET) - 288]
    assert left == []


def test_a_reclaimed_mark_is_forgotten_with_its_bucket():
    tenant_id = new_tenant()
    [reservation] = _died(tenant_id, [500])
    assert f"x:{reservation.bucket}:b" in reconciliation(tenant_id)[1]
    later = datetime.fromtimestamp((reservation.bucket + 289) * BUCKET, tz=timezone.utc)
    _settle_at(tenant_id, later)
    counters = reconciliation(tenant_id)[1]
    assert not [k for k in counters if k.split(":")[1] == str(reservation.bucket)]


def test_the_totals_checked_here_are_every_counter_of_the_month_item():
    from pynamodb.attributes import NumberAttribute

    counters = [name for name, attribute in UsagePeriod.get_attributes().items() if type(attribute) is NumberAttribute]
    assert sorted(counters) == sorted(PERIOD_FIELDS)
