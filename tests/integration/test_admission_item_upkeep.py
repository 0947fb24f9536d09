"""The admission item's upkeep, exactly: keys nobody reads again are removed, a missing item is made, a write that
keeps losing gives up with the right answer, and the sweep buckets the sweeper reads."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib import tenants
from chalicelib.errors import PaymentRequired, TooManyRequests
from chalicelib.ids import new_request_id
from chalicelib.metering import admission, sweeper
from chalicelib.models import Admission, Reconciliation, UsageEvent, tenant_pk
from chalicelib.plans import DEFAULT_PLANS
from conftest import settle_usage
from dynamo_hooks import ClientHook, DynamoCalls
from test_admission_exact import (
    BUDGET_MESSAGE, Reads, T, bucket_of, counters, hard_budget, minute_of, new_tenant, reserve)


# --- keys nobody reads again --------------------------------------------------------------------------------

def test_a_new_month_removes_the_last_months_quota_and_spend():
    tenant_id = new_tenant()
    end = datetime(2026, 10, 31, 23, 59, 50, tzinfo=timezone.utc)
    reserve(tenant_id, 70, now=end)
    start = datetime(2026, 11, 1, 0, 0, 10, tzinfo=timezone.utc)
    reserve(tenant_id, 30, now=start)
    m, b = minute_of(start), bucket_of(start)
    assert counters(tenant_id) == {
        "a:2026-11:b": 1, "w:2026-11": 30, f"m:{m - 1}": 1, f"s:{m - 1}:10": 1, f"m:{m}": 1, f"s:{m}:2": 1,
        f"n:{b - 1}:b": 1, f"v:{b - 1}:b": 70, f"n:{b}:b": 1, f"v:{b}:b": 30}


def test_rate_counts_are_kept_for_the_previous_minute_and_removed_before_it():
    tenant_id = new_tenant()
    first = datetime(2026, 11, 17, 12, 0, 50, tzinfo=timezone.utc)
    reserve(tenant_id, 1, now=first)
    reserve(tenant_id, 1, now=first + timedelta(seconds=60))
    m = minute_of(first)
    assert {k for k in counters(tenant_id) if k[0] in "ms"} == {f"m:{m}", f"s:{m}:10", f"m:{m + 1}", f"s:{m + 1}:10"}
    reserve(tenant_id, 1, now=first + timedelta(seconds=75))  # 12:02:05
    assert {k for k in counters(tenant_id) if k[0] in "ms"} == {f"m:{m + 1}", f"s:{m + 1}:10", f"m:{m + 2}",
                                                                 f"s:{m + 2}:1"}


def test_the_fifteen_second_schemes_rate_tails_are_removed():
    tenant_id = new_tenant()
    _, view = reserve(tenant_id, 1, now=T)
    m = minute_of(T)
    old = {f"t:{m}:0": 3, f"t:{m}:1": 2}
    Admission(tenant_pk(tenant_id), Admission.SK).update(
        actions=[Admission.counters[key].set(value) for key, value in old.items()])
    reserve(tenant_id, 1, now=T + timedelta(seconds=1))
    assert not set(old) & set(counters(tenant_id))


def test_sweep_buckets_are_kept_a_day_and_removed_after():
    tenant_id = new_tenant()
    first = datetime(2026, 11, 10, 0, 5, tzinfo=timezone.utc)
    b = bucket_of(first)
    reserve(tenant_id, 11, now=first)
    reserve(tenant_id, 22, now=first + timedelta(seconds=144 * 600))
    assert {k: v for k, v in counters(tenant_id).items() if k[0] in "nv"} == {
        f"n:{b}:b": 1, f"v:{b}:b": 11, f"n:{b + 144}:b": 1, f"v:{b + 144}:b": 22}
    reserve(tenant_id, 33, now=first + timedelta(seconds=145 * 600))
    assert {k: v for k, v in counters(tenant_id).items() if k[0] in "nv"} == {
        f"n:{b + 144}:b": 1, f"v:{b + 144}:b": 22, f"n:{b + 145}:b": 1, f"v:{b + 145}:b": 33}


def test_one_admission_removes_at_most_sixteen_stale_keys():
    tenant_id = new_tenant(rpm=1000)
    late = datetime(2026, 11, 17, 13, 0, 50, tzinfo=timezone.utc)
    for minutes in (12, 14, 16, 18, 20, 22, 24, 26, 28, 30):  # earlier and earlier: none removes another's
        reserve(tenant_id, 1, now=late - timedelta(minutes=minutes))
    old = {k for k in counters(tenant_id) if k[0] in "ms"}
    assert len(old) == 20
    reserve(tenant_id, 1, now=late)
    assert len(old & set(counters(tenant_id))) == 4
    reserve(tenant_id, 1, now=late + timedelta(seconds=1))
    assert not old & set(counters(tenant_id))


# --- a missing item, and giving up -----------------------------------------------------------------------------

def test_a_tenant_without_an_admission_item_gets_one_from_its_profile():
    tenant_id = new_tenant(rpm=7, basic_chat=40)
    Admission(tenant_pk(tenant_id), Admission.SK).delete()
    reads = Reads(tenant_id)
    _, view = reserve(tenant_id, 5, now=T, reads=reads)
    stored = Admission.get(tenant_pk(tenant_id), Admission.SK, consistent_read=True)
    profile = tenants.get_tenant(tenant_id, consistent=True)
    assert int(stored.version) == int(profile.limits_version) == view.version == 1
    limits = view.limits.under(DEFAULT_PLANS["free"])
    assert limits.requests_per_minute == 7 and limits.features["basic_chat"] == 40
    assert view.limits.plan == "free" and stored.limits == view.limits.to_json()
    assert counters(tenant_id)["a:2026-11:b"] == 1 and reads.views == 1


def test_a_tenant_never_changed_gets_an_item_at_version_zero():
    tenant_id = new_tenant()
    Admission(tenant_pk(tenant_id), Admission.SK).delete()
    _, view = reserve(tenant_id, 5, now=T)
    stored = Admission.get(tenant_pk(tenant_id), Admission.SK, consistent_read=True)
    assert int(stored.version) == view.version == 0


def test_an_item_removed_under_a_warm_instance_is_made_again():
    tenant_id = new_tenant()
    _, view = reserve(tenant_id, 5, now=T)
    Admission(tenant_pk(tenant_id), Admission.SK).delete()
    reads = Reads(tenant_id)
    _, after = reserve(tenant_id, 5, now=T, view=view, reads=reads)
    assert reads.views == 1 and after.counters["a:2026-11:b"] == 1


def test_making_the_item_never_overwrites_one_that_exists():
    tenant_id = new_tenant()
    reserve(tenant_id, 5, now=T)
    before = counters(tenant_id)
    with DynamoCalls() as calls:
        view = admission.ensure_admission(tenant_id)
    assert view.counters == before == counters(tenant_id)
    # the profile and the existing item are read consistently
    reads = calls.params_of("GetItem")
    assert len(reads) == 2 and all(p.get("ConsistentRead") is True for p in reads)


def test_the_instances_reads_are_consistent():
    tenant_id = new_tenant()
    with DynamoCalls() as calls:
        admission.load_view(tenant_id)
        admission.load_returns(tenant_id)
    assert calls.names == ["GetItem", "GetItem"]
    assert [p["Key"]["sk"]["S"] for p in calls.params] == ["ADMISSION", "RECONCILE"]
    assert all(p["ConsistentRead"] is True for p in calls.params)


def test_a_tenant_without_returns_yet_has_none():
    tenant_id = new_tenant()
    returns = admission.load_returns(tenant_id)
    assert (returns.refunded("2026-11"), returns.released("2026-11", "basic_chat")) == (0, 0)


def test_admission_gives_up_after_six_attempts_the_item_keeps_refusing():
    tenant_id = new_tenant()
    _, cached = reserve(tenant_id, 5, now=T)
    Admission(tenant_pk(tenant_id), Admission.SK).delete()
    loads = []

    def load_view():  # a cache that keeps answering with the item as it was (the item is gone)
        loads.append(1)
        return cached

    with pytest.raises(TooManyRequests) as caught:
        admission.reserve(tenant_id, new_request_id(), "basic_chat", 5, cached, admission.Returns(),
                          load_view=load_view, load_returns=admission.Returns, now=T)
    error = caught.value
    assert (error.code, error.headers["Retry-After"]) == ("rate_limited", "1")
    assert error.message == "Too many simultaneous requests for this tenant; retry shortly."
    assert len(loads) == 5  # six writes: the first on the cached view, five after reloading it


class Rivals(ClientHook):
    """Other instances winning every race: before each of this instance's admission writes, another one
    changes the item (a new limits version, as an operator's change writes it), so the write's condition
    fails; before the last of them, the rivals also commit `spend_last` micro-dollars."""

    own_thread_only = True  # not the usage stream pump's writes

    def __init__(self, tenant_id, spend_last):
        import boto3

        from chalicelib.settings import get_settings

        self.tenant_id, self.spend_last, self.writes = tenant_id, spend_last, 0
        self.event = "before-call.dynamodb.UpdateItem"
        self.rival, self.table = boto3.client("dynamodb"), get_settings().table_name

    def _before(self, params, **kwargs):
        self.writes += 1
        spend = self.spend_last if self.writes == admission.ATTEMPTS else 0
        self.rival.update_item(
            TableName=self.table, Key={"pk": {"S": tenant_pk(self.tenant_id)}, "sk": {"S": Admission.SK}},
            UpdateExpression="SET #v = #v + :one, #c.#w = if_not_exists(#c.#w, :zero) + :spend",
            ExpressionAttributeNames={"#v": "version", "#c": "counters", "#w": "w:2026-11"},
            ExpressionAttributeValues={":one": {"N": "1"}, ":zero": {"N": "0"}, ":spend": {"N": str(spend)}})


def test_admission_that_loses_every_race_while_the_budget_runs_out_answers_402_not_a_retry():
    tenant_id = new_tenant()
    hard_budget(tenant_id, "0.01")  # 10,000 micro-dollars
    _, view = reserve(tenant_id, 1_000, now=T)  # committed 1,000
    with Rivals(tenant_id, spend_last=8_001) as rivals, pytest.raises(PaymentRequired) as caught:
        reserve(tenant_id, 1_000, now=T, view=view)  # 1,000 + 8,001 + 1,000 > 10,000
    assert rivals.writes == admission.ATTEMPTS
    assert (caught.value.code, caught.value.message) == ("budget_exceeded", BUDGET_MESSAGE)
    assert (counters(tenant_id)["a:2026-11:b"], counters(tenant_id)["w:2026-11"]) == (1, 9_001)


def test_admission_that_loses_every_race_with_room_left_asks_for_a_retry():
    tenant_id = new_tenant()
    hard_budget(tenant_id, "0.01")
    _, view = reserve(tenant_id, 1_000, now=T)
    with Rivals(tenant_id, spend_last=8_000) as rivals, pytest.raises(TooManyRequests) as caught:
        reserve(tenant_id, 1_000, now=T, view=view)  # 1,000 + 8,000 + 1,000 = 10,000: still room
    assert rivals.writes == admission.ATTEMPTS
    assert (caught.value.code, caught.value.headers["Retry-After"]) == ("rate_limited", "1")
    assert (counters(tenant_id)["a:2026-11:b"], counters(tenant_id)["w:2026-11"]) == (1, 9_000)


def test_a_write_dynamodb_refuses_for_another_reason_is_raised_not_retried():
    from botocore.exceptions import ClientError

    tenant_id = new_tenant()
    _, view = reserve(tenant_id, 5, now=T)
    Admission(tenant_pk(tenant_id), Admission.SK).update(actions=[Admission.counters.remove()])  # a damaged item
    with DynamoCalls() as calls, pytest.raises(ClientError) as caught:
        reserve(tenant_id, 5, now=T, view=view)
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert calls.names == ["UpdateItem"]


# --- sweep buckets: what the sweeper reads --------------------------------------------------------------------

def test_a_reservation_never_settled_is_reclaimed_from_its_bucket_once_the_bucket_is_swept():
    tenant_id = new_tenant(plan="pro")
    moment = datetime.now(timezone.utc) - timedelta(hours=2)
    reservation, _ = reserve(tenant_id, 4_321, now=moment, feature="code_review")
    reserve(tenant_id, 1_000, now=moment, feature="document_analysis")
    settle_usage()
    after = datetime.fromtimestamp((reservation.bucket + 1) * 600 + sweeper.GRACE_SECONDS, tz=timezone.utc)
    sweeper.sweep(now=after)
    settle_usage()
    events = [e for e in UsageEvent.query(tenant_pk(tenant_id), UsageEvent.sk.startswith("EVENT#")) if e.status == "abandoned"]
    assert sorted((e.feature, int(e.cost_bound_micros or 0)) for e in events) == [
        ("code_review", 4_321), ("document_analysis", 1_000)]
    returns = Reconciliation.get(tenant_pk(tenant_id), Reconciliation.SK, consistent_read=True).counters.as_dict()
    assert int(returns[f"x:{reservation.bucket}:c"]) == 1 and int(returns[f"x:{reservation.bucket}:d"]) == 1
