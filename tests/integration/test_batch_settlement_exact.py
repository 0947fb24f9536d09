"""A Message Batch's reservation and settlement, exactly, on moto: N admissions and the batch's worst case
in one write, no sweep bucket (the batch item holds it, however long the batch runs), and settlement
folded into the month's totals once, whoever settles and however often."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.ai import batches
from chalicelib.ai.client import Usage
from chalicelib.errors import TooManyRequests
from chalicelib.metering import admission, batch_ledger, counter_keys, sweeper
from chalicelib.models import Reconciliation, UsageEvent, UsagePeriod, tenant_pk
from chalicelib.records import MessageBatch, OpenBatch
from chalicelib.periods import period_of
from conftest import WritesNothing, settle_usage
from test_admission_exact import counters, new_tenant

pytestmark = pytest.mark.usefixtures("own_table")

SONNET = "claude-sonnet-4-6"


def reserve_batch(tenant_id, count, worst, now=None):
    return admission.reserve(tenant_id, "msgbatch_test", "basic_chat", worst, None, admission.Returns(),
                             load_view=lambda: admission.load_view(tenant_id),
                             load_returns=lambda: admission.load_returns(tenant_id), now=now, count=count,
                             swept=False)


def test_a_batch_is_admitted_only_if_all_its_requests_fit_the_monthly_limit():
    tenant_id = new_tenant(basic_chat=5)
    reserve_batch(tenant_id, 3, 30)
    with WritesNothing(tenant_id, table=False):
        with pytest.raises(TooManyRequests) as refused:
            reserve_batch(tenant_id, 3, 30)
    assert refused.value.code == "feature_limit_reached"
    reserve_batch(tenant_id, 2, 20)  # exactly at the limit
    period = period_of(datetime.now(timezone.utc))
    assert counters(tenant_id)[counter_keys.admitted_key(period, "basic_chat")] == 5
    assert counters(tenant_id)[counter_keys.committed_key(period)] == 50


def test_a_batch_reservation_has_no_sweep_bucket_so_the_sweeper_never_reclaims_it():
    tenant_id = new_tenant()
    reserve_batch(tenant_id, 4, 400)
    assert not [k for k in counters(tenant_id) if k.startswith(("n:", "v:"))]
    settle_usage()
    report = sweeper.sweep(datetime.now(timezone.utc) + timedelta(hours=3))
    assert not [e for e in UsageEvent.query(tenant_pk(tenant_id)) if e.status == "abandoned"]
    assert report.reclaims == 0


def batch_item(tenant_id, reserved, now):
    item = MessageBatch(
        tenant_pk(tenant_id), MessageBatch.sk_for("msgbatch_exact"), batch_id="msgbatch_exact", status="in_progress",
        upstream_id="msgbatch_upstream", principal_id="key_x", principal_type="api_key", key_source="platform",
        key_fingerprint="0" * 16, period=period_of(now), bucket=int(now.timestamp()) // 600,
        request_count=len(reserved), worst_case_micros=sum(r.worst_case_micros for r in reserved.values()),
        reservations=batch_ledger.encode_reservations(reserved), created_at=now, ends_by=now + timedelta(hours=24))
    item.save()
    OpenBatch(OpenBatch.PARTITION, OpenBatch.sk_for(tenant_id, "msgbatch_exact"), tenant_id=tenant_id,
              batch_id="msgbatch_exact").save()
    return item


def test_concurrent_settles_write_each_event_once_and_give_back_exactly_the_unused_worst_case():
    tenant_id = new_tenant()
    now = datetime.now(timezone.utc)
    reserved = {"ok": batch_ledger.Reserved(SONNET, 5_000), "gone": batch_ledger.Reserved(SONNET, 3_000)}
    reserve_batch(tenant_id, 2, 8_000, now)
    item = batch_item(tenant_id, reserved, now)
    lines = [{"custom_id": "ok", "result": {"type": "succeeded", "message": {
        "usage": {"input_tokens": 100, "output_tokens": 200}}}},
        {"custom_id": "gone", "result": {"type": "expired"}}]
    cost = 150 + 1500  # 100 x $1.50 + 200 x $7.50 per million tokens (published batch prices), in micros
    assert batch_ledger.batch_cost_micros(SONNET, Usage(100, 200)) == cost

    def settle():
        fresh = MessageBatch.get(item.pk, item.sk, consistent_read=True)
        batches._settle(fresh, lines)

    threads = [threading.Thread(target=settle) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    settle_usage()
    events = [e for e in UsageEvent.query(tenant_pk(tenant_id), UsageEvent.sk.startswith("EVENT#")) if e.batch_id == "msgbatch_exact"]
    assert sorted((e.custom_id, e.status, int(e.cost_micros)) for e in events) == [
        ("gone", "failed", 0), ("ok", "ok", cost)]
    period = period_of(now)
    totals = UsagePeriod.get(tenant_pk(tenant_id), UsagePeriod.sk_for(period))
    assert (int(totals.cost_micros), int(totals.requests), int(totals.failed_requests)) == (cost, 1, 1)
    returned = Reconciliation.get(tenant_pk(tenant_id), Reconciliation.SK).counters.as_dict()
    assert int(returned[counter_keys.refunded_key(period)]) == 8_000 - cost
    assert int(returned[counter_keys.released_key(period, "basic_chat")]) == 1
    assert not [k for k in returned if k.startswith(("n:", "v:"))]
    settled = MessageBatch.get(item.pk, item.sk, consistent_read=True)
    assert (settled.status, int(settled.cost_micros)) == ("ended", cost)
    assert not list(OpenBatch.query(OpenBatch.PARTITION, OpenBatch.sk == OpenBatch.sk_for(tenant_id, "msgbatch_exact")))
