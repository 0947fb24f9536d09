"""A call that failed upstream before anything was billed gives back its quota and worst case before its
answer is sent: one UpdateItem on the admission item besides its usage event, exactly once, and the
aggregator, folding that event, gives back nothing more. The model service is the stand-in (its
`[[standin:529]]` fault), reached through the real SDK; the store is moto."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib import operators
from chalicelib.ai.gateway import FeatureCall, Gateway
from chalicelib.errors import TooManyRequests, UpstreamError
from chalicelib.ids import new_request_id
from chalicelib.metering import admission, ledger, sweeper
from chalicelib.metering.counter_keys import admitted_key, bucket_count_key, bucket_worst_key, committed_key
from chalicelib.models import Admission, Reconciliation, UsageEvent, UsagePeriod, tenant_pk
from chalicelib.periods import current_period
from conftest import settle_usage
from dynamo_hooks import DynamoCalls
from test_metering_concurrency import new_tenant

pytestmark = pytest.mark.usefixtures("own_table")

# Anthropic overloaded and Bedrock unavailable: nothing answers (docs/upstream.md)
OVERLOADED = FeatureCall(messages=[{"role": "user", "content": "give-back [[standin:529]] [[bedrock:503]]"}],
                         max_tokens=64)
ANSWERED = FeatureCall(messages=[{"role": "user", "content": "give-back"}], max_tokens=64)
WRITES = ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem")


def admission_counters(tenant_id):
    item = Admission.get(tenant_pk(tenant_id), Admission.SK, consistent_read=True)
    return {k: int(v) for k, v in item.counters.as_dict().items()}


def reservation_keys(tenant_id):
    """The admission item's quota, committed spend and sweep-bucket counters (not the rate's)."""
    return {k: v for k, v in admission_counters(tenant_id).items() if k[0] in "awnv"}


def reconciliation(tenant_id):
    try:
        item = Reconciliation.get(tenant_pk(tenant_id), Reconciliation.SK, consistent_read=True)
    except Reconciliation.DoesNotExist:
        return {}
    return {k: int(v) for k, v in (item.counters.as_dict() if item.counters else {}).items()}


def test_a_529_gives_back_its_quota_and_worst_case_before_the_answer():
    tenant_id, ctx = new_tenant()
    period = current_period()
    gateway = Gateway()
    gateway.run(ctx, "basic_chat", ANSWERED)
    before = reservation_keys(tenant_id)
    with pytest.raises(UpstreamError) as failed:
        gateway.run(ctx, "basic_chat", OVERLOADED)
    assert failed.value.code == "upstream_overloaded"
    # read before the stream is folded: the request itself put everything back
    assert reservation_keys(tenant_id) == before and before[admitted_key(period, "basic_chat")] == 1


def not_the_pools(calls):
    """The calls' names, leaving out the platform pool's minute items: a call renews its lease there when a
    minute has turned since the last, whatever the call (a slow run, under coverage say, meets that)."""
    return [name for name, params, _ in calls.calls if '"POOL#' not in json.dumps(params)]


def test_the_failure_path_makes_exactly_one_write_more_than_an_answer():
    tenant_id, ctx = new_tenant()
    gateway = Gateway()
    gateway.run(ctx, "basic_chat", ANSWERED)  # warm: the tenant's items are cached
    with DynamoCalls() as answered:
        gateway.run(ctx, "basic_chat", ANSWERED)
    with DynamoCalls() as failed, pytest.raises(UpstreamError):
        gateway.run(ctx, "basic_chat", OVERLOADED)
    answer_writes = [name for name in not_the_pools(answered) if name in WRITES]
    failure_writes = [name for name in not_the_pools(failed) if name in WRITES]
    print(f"writes: answered {answer_writes}, failed {failure_writes}")
    assert answer_writes == ["UpdateItem", "PutItem"]
    assert failure_writes == ["UpdateItem", "PutItem", "UpdateItem"]
    assert not_the_pools(failed) == failure_writes  # and no read


def test_at_the_edge_of_the_quota_an_immediate_retry_after_a_529_is_admitted():
    tenant_id, ctx = new_tenant()
    operators.set_limits(tenant_id, {"features": {"basic_chat": 1}})
    gateway = Gateway()
    with pytest.raises(UpstreamError):
        gateway.run(ctx, "basic_chat", OVERLOADED)
    gateway.run(ctx, "basic_chat", ANSWERED)  # no fold has run: the give-back alone makes room
    with pytest.raises(TooManyRequests) as refused:
        gateway.run(ctx, "basic_chat", ANSWERED)
    assert refused.value.code == "feature_limit_reached"


def test_the_fold_gives_back_nothing_more_and_counts_the_failure():
    tenant_id, ctx = new_tenant()
    period = current_period()
    gateway = Gateway()
    with pytest.raises(UpstreamError):
        gateway.run(ctx, "basic_chat", OVERLOADED)
    settle_usage()
    [event] = list(UsageEvent.query(tenant_pk(tenant_id), UsageEvent.sk.startswith("EVENT#"), consistent_read=True))
    assert (event.status, bool(event.given_back), event.aggregated_at is not None) == ("failed", True, True)
    recon = reconciliation(tenant_id)
    assert not {k: v for k, v in recon.items() if v}, recon  # no refund, release or accounted reservation
    totals = UsagePeriod.get(tenant_pk(tenant_id), UsagePeriod.sk_for(period), consistent_read=True)
    assert (int(totals.failed_requests), int(totals.requests or 0)) == (1, 0)
    counters = admission_counters(tenant_id)
    assert counters[admitted_key(period, "basic_chat")] == 0 and counters[committed_key(period)] == 0


def test_the_sweeper_finds_nothing_to_reclaim_after_a_give_back():
    later = datetime.now(timezone.utc) + timedelta(minutes=30)
    # The module's table is shared by its tests, and some leave a reservation open on purpose (a release
    # of one of two, a bare reservation): a first sweep reclaims those, so the one below sees this call's.
    sweeper.sweep(now=later)
    settle_usage()
    tenant_id, ctx = new_tenant()
    with pytest.raises(UpstreamError):
        Gateway().run(ctx, "basic_chat", OVERLOADED)
    settle_usage()
    report = sweeper.sweep(now=later)
    settle_usage()
    assert report.reclaims == 0
    events = UsageEvent.query(tenant_pk(tenant_id), UsageEvent.sk.startswith("EVENT#"), consistent_read=True)
    assert [e.status for e in events] == ["failed"]


def reserved(tenant_id, worst=5_000, now=None):
    reservation, _ = admission.reserve(tenant_id, new_request_id(), "basic_chat", worst, None, admission.Returns(),
                                       load_view=lambda: admission.load_view(tenant_id),
                                       load_returns=lambda: admission.load_returns(tenant_id), now=now)
    return reservation


FAILED = ledger.Settlement("usr_x", "user", "claude-sonnet-4-6", status=ledger.FAILED)


def test_a_release_repeated_for_the_same_request_gives_back_once():
    tenant_id, _ = new_tenant()
    reserved(tenant_id)
    reservation = reserved(tenant_id, worst=7_000)
    view = ledger.release_at_once(reservation, FAILED)
    period, bucket = reservation.period, reservation.bucket
    assert (view.counters[admitted_key(period, "basic_chat")], view.counters[committed_key(period)]) == (1, 5_000)
    assert (view.counters[bucket_count_key(bucket, "basic_chat")],
            view.counters[bucket_worst_key(bucket, "basic_chat")]) == (1, 5_000)
    assert ledger.release_at_once(reservation, FAILED) is None
    assert reservation_keys(tenant_id)[admitted_key(period, "basic_chat")] == 1


def test_a_give_back_of_a_reservation_no_longer_counted_changes_nothing():
    tenant_id, _ = new_tenant()
    reservation = reserved(tenant_id)
    assert admission.give_back(reservation) is not None
    before = admission_counters(tenant_id)
    assert admission.give_back(reservation) is None  # its bucket counts none any more
    assert admission_counters(tenant_id) == before


def test_only_a_young_failure_gives_back_at_once():
    started = datetime(2026, 11, 17, 9, 0, tzinfo=timezone.utc)
    reservation = admission.Reservation("ten_x", "req_x", "basic_chat", "2026-11", 0, 1, started)
    # four minutes: a minute inside the sweeper's grace (the seconds written out, not read from the module,
    # so a changed limit fails here)
    young, old = started + timedelta(seconds=239), started + timedelta(seconds=240)
    assert ledger.gives_back_at_once(reservation, ledger.FAILED, young)
    assert not ledger.gives_back_at_once(reservation, ledger.FAILED, old)
    assert not ledger.gives_back_at_once(reservation, ledger.INDETERMINATE, young)
    assert not ledger.gives_back_at_once(reservation, ledger.OK, young)
    # no sweep can have reclaimed a reservation that young: a bucket is swept GRACE_SECONDS after it ends
    assert ledger.RELEASE_AT_ONCE_SECONDS < sweeper.GRACE_SECONDS
