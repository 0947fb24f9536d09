"""Admission, exactly: what one conditional UpdateItem on the admission item adds, where each limit refuses
(at the limit, one under, one over), with which error, and that a refusal writes nothing, whether the
instance's view is fresh (its own check refuses) or stale (the write's condition refuses). Real PynamoDB
models on the moto server; micro-dollars are computed here from the published prices (tests/published.py)."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from chalicelib import operators, tenants
from chalicelib.errors import Forbidden, PaymentRequired, TooManyRequests
from chalicelib.ids import new_request_id
from chalicelib.metering import admission, ledger
from chalicelib.models import Admission, tenant_pk
from chalicelib.plans import DEFAULT_PLANS
from conftest import WritesNothing, random_slug, settle_usage
from dynamo_hooks import DynamoCalls
from published import PUBLISHED

pytestmark = pytest.mark.usefixtures("own_table")  # moto's Query reads a whole table: keep it small

SONNET = "claude-sonnet-4-6"
RATE_MESSAGE = "Too many requests this minute for this tenant."
BUDGET_MESSAGE = "This request could exceed the tenant's monthly budget, which is a hard limit."


def sonnet_micros(input_tokens, output_tokens):
    """Micro-dollars from the published USD-per-million prices (USD per million = micro-dollars per token)."""
    _, inp, out, _, _, _ = PUBLISHED[SONNET]
    return int(input_tokens * Decimal(inp) + output_tokens * Decimal(out))


def new_tenant(plan=None, rpm=None, **features):
    slug = random_slug("a")
    created = tenants.sign_up({"company_name": "Admit Co", "slug": slug, "email": f"o@{slug}.example.com",
                               "password": "admit-password-1"})
    tenant_id = created["tenant_id"]
    if plan:
        operators.set_plan(tenant_id, {"plan": plan})
    if rpm or features:
        operators.set_limits(tenant_id, {**({"requests_per_minute": rpm} if rpm else {}),
                                         **({"features": features} if features else {})})
    return tenant_id


def hard_budget(tenant_id, usd, hard=True):
    tenants.update_tenant(tenant_id, {"monthly_budget_usd": usd, "budget_hard_limit": hard})


class Reads:
    """The instance's consistent reads, counted (admission asks for them only to load or confirm)."""

    def __init__(self, tenant_id):
        self.tenant_id, self.views, self.returns = tenant_id, 0, 0

    def load_view(self):
        self.views += 1
        return admission.load_view(self.tenant_id)

    def load_returns(self):
        self.returns += 1
        return admission.load_returns(self.tenant_id)


def reserve(tenant_id, worst, now=None, feature="basic_chat", view=None, returns=None, reads=None):
    reads = reads or Reads(tenant_id)
    return admission.reserve(tenant_id, new_request_id(now.timestamp() if now else None), feature, worst, view,
                             returns if returns is not None else admission.Returns(), load_view=reads.load_view,
                             load_returns=reads.load_returns, now=now, plan_of=DEFAULT_PLANS.__getitem__)


def counters(tenant_id):
    item = Admission.get(tenant_pk(tenant_id), Admission.SK, consistent_read=True)
    return {k: int(v) for k, v in item.counters.as_dict().items()}


def stale_view(tenant_id):
    """This instance's view with the current limits but counters from before every admission so far."""
    return dataclasses.replace(admission.load_view(tenant_id), counters={})


def minute_of(moment):
    return int(moment.timestamp()) // 60


def bucket_of(moment):
    return int(moment.timestamp()) // 600


T = datetime(2026, 11, 17, 9, 41, 23, tzinfo=timezone.utc)  # second 23: the minute's fifth 5-second slot


# --- what one admission writes -------------------------------------------------------------------------

def test_an_admission_adds_one_call_its_worst_case_its_rate_counts_and_its_sweep_bucket():
    tenant_id = new_tenant(rpm=10)  # one limits change: version 1
    m, b = minute_of(T), bucket_of(T)
    reads = Reads(tenant_id)
    reservation, view = reserve(tenant_id, 12_345, now=T, reads=reads)
    assert reservation == admission.Reservation(tenant_id, reservation.request_id, "basic_chat", "2026-11", b,
                                                12_345, T)
    first = {"a:2026-11:b": 1, "w:2026-11": 12_345, f"m:{m}": 1, f"s:{m}:4": 1, f"n:{b}:b": 1,
             f"v:{b}:b": 12_345}
    assert counters(tenant_id) == first
    assert view.counters == first and view.version == admission.load_view(tenant_id).version == 1
    assert view.limits == admission.load_view(tenant_id).limits
    # 30 s later, second 53: the minute's count and another slot's
    later = T + timedelta(seconds=30)
    _, view = reserve(tenant_id, 655, now=later, view=view, reads=reads)
    second = {"a:2026-11:b": 2, "w:2026-11": 13_000, f"m:{m}": 2, f"s:{m}:4": 1, f"s:{m}:10": 1,
              f"n:{b}:b": 2, f"v:{b}:b": 13_000}
    assert counters(tenant_id) == second == view.counters
    assert (reads.views, reads.returns) == (1, 0)  # loaded once, then warm


def test_a_cold_instance_reads_the_item_once_and_writes_once():
    tenant_id = new_tenant()
    with DynamoCalls() as calls:
        reserve(tenant_id, 100, now=T)
    assert calls.names == ["GetItem", "UpdateItem"]


def test_a_warm_instance_admits_in_one_update_and_reads_nothing():
    tenant_id = new_tenant()
    _, view = reserve(tenant_id, 100, now=T)
    reads = Reads(tenant_id)
    with DynamoCalls() as calls:
        _, after = reserve(tenant_id, 100, now=T + timedelta(seconds=1), view=view, reads=reads)
    assert calls.names == ["UpdateItem"] and (reads.views, reads.returns) == (0, 0)
    assert after.counters["a:2026-11:b"] == 2


def test_a_new_tenants_view_holds_its_plans_limits_at_version_zero():
    tenant_id = new_tenant()
    view = admission.load_view(tenant_id)
    assert (view.version, view.counters) == (0, {})
    limits = view.limits.under(DEFAULT_PLANS["free"])
    assert (limits.plan, limits.status, limits.features, limits.requests_per_minute) == (
        "free", "active", {"basic_chat": 300}, 10)
    assert (limits.budget_micros, limits.hard_limit) == (None, False)


def test_views_returns_and_reservations_cannot_be_changed_once_made():
    view = admission.AdmissionView(version=3, limits=None)
    returns = admission.Returns()
    reservation = admission.Reservation("ten_x", "req_x", "basic_chat", "2026-11", 1, 5, T)
    assert view.counters == {} and returns.counters == {}
    for thing, name in ((view, "version"), (returns, "counters"), (reservation, "worst_case_micros")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(thing, name, 0)


def test_a_slot_is_five_seconds_and_a_sweep_bucket_ten_minutes():
    tenant_id = new_tenant()
    moment = datetime(2026, 11, 17, 9, 9, 44, tzinfo=timezone.utc)  # second 44: slot 8, bucket from 9:00
    reservation, view = reserve(tenant_id, 1, now=moment)
    m = minute_of(moment)
    assert reservation.bucket == int(datetime(2026, 11, 17, 9, 0, tzinfo=timezone.utc).timestamp()) // 600
    assert {k for k in view.counters if k[0] in "ms"} == {f"m:{m}", f"s:{m}:8"}
    _, view = reserve(tenant_id, 1, now=moment + timedelta(seconds=1))  # second 45: slot 9
    assert {k: v for k, v in view.counters.items() if k[0] in "ms"} == {f"m:{m}": 2, f"s:{m}:8": 1, f"s:{m}:9": 1}
    assert f"n:{reservation.bucket}:b" in view.counters


def test_an_unlimited_feature_is_admitted_and_counted():
    tenant_id = new_tenant(plan="enterprise")
    for _ in range(3):
        reserve(tenant_id, 10, now=T, feature="custom_prompts")
    assert counters(tenant_id)["a:2026-11:p"] == 3


def test_a_call_without_a_time_is_admitted_now():
    tenant_id = new_tenant()
    before = datetime.now(timezone.utc)
    reservation, _ = reserve(tenant_id, 1)
    assert before <= reservation.started_at <= datetime.now(timezone.utc)
    assert reservation.bucket == int(reservation.started_at.timestamp()) // 600


# --- the monthly quota ---------------------------------------------------------------------------------------

def test_quota_admits_exactly_the_limit_and_refuses_the_next_with_feature_limit_reached():
    tenant_id = new_tenant(basic_chat=3)
    for _ in range(3):
        reserve(tenant_id, 10, now=T)
    assert counters(tenant_id)["a:2026-11:b"] == 3
    with WritesNothing(tenant_id), pytest.raises(TooManyRequests) as caught:
        reserve(tenant_id, 10, now=T + timedelta(seconds=1))
    error = caught.value
    resets = datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert (error.status, error.code) == (429, "feature_limit_reached")
    assert error.message == "The monthly limit for basic_chat is reached. It resets at 2026-12-01T00:00:00Z."
    assert error.details == {"feature": "basic_chat", "resets_at": "2026-12-01T00:00:00Z"}
    assert error.headers["Retry-After"] == str(int((resets - (T + timedelta(seconds=1))).total_seconds()))


def test_quota_one_under_the_limit_admits_one_more():
    tenant_id = new_tenant(basic_chat=3)
    reserve(tenant_id, 10, now=T)
    reserve(tenant_id, 10, now=T)
    _, view = reserve(tenant_id, 10, now=T)
    assert view.counters["a:2026-11:b"] == 3


def test_quota_refuses_from_the_items_own_condition_when_the_view_is_stale():
    tenant_id = new_tenant(basic_chat=2)
    reserve(tenant_id, 10, now=T)
    reserve(tenant_id, 10, now=T)
    reads = Reads(tenant_id)
    with WritesNothing(tenant_id), pytest.raises(TooManyRequests) as caught:
        reserve(tenant_id, 10, now=T, view=stale_view(tenant_id), reads=reads)
    assert caught.value.code == "feature_limit_reached"
    # the failed write returned the item: the refusal needed no second read of it, only of the returns
    assert (reads.views, reads.returns) == (0, 1)


def test_quota_is_per_month_and_per_feature():
    tenant_id = new_tenant(plan="pro", basic_chat=1, code_review=1)
    reserve(tenant_id, 10, now=T)
    reserve(tenant_id, 10, now=T, feature="code_review")
    reserve(tenant_id, 10, now=datetime(2026, 12, 1, 0, 0, 1, tzinfo=timezone.utc))
    assert counters(tenant_id)["a:2026-12:b"] == 1


def test_released_admissions_are_given_back_to_the_quota():
    tenant_id = new_tenant(basic_chat=2)
    failed, _ = reserve(tenant_id, 10, now=T)
    reserve(tenant_id, 10, now=T)
    ledger.record(failed, ledger.Settlement("usr_x", "user", SONNET, own_key=False, status=ledger.FAILED))
    settle_usage()
    assert admission.load_returns(tenant_id).released("2026-11", "basic_chat") == 1
    reads = Reads(tenant_id)
    reserve(tenant_id, 10, now=T, reads=reads)  # 3 admitted, 1 released: 2 of 2; the returns are read first
    assert reads.returns == 1
    assert counters(tenant_id)["a:2026-11:b"] == 3
    with WritesNothing(tenant_id), pytest.raises(TooManyRequests) as caught:
        reserve(tenant_id, 10, now=T)
    assert caught.value.code == "feature_limit_reached"


def test_released_admissions_count_in_the_items_condition_too():
    tenant_id = new_tenant(basic_chat=2)
    failed, _ = reserve(tenant_id, 10, now=T)
    reserve(tenant_id, 10, now=T)
    ledger.record(failed, ledger.Settlement("usr_x", "user", SONNET, own_key=False, status=ledger.FAILED))
    settle_usage()
    returns = admission.load_returns(tenant_id)
    _, view = reserve(tenant_id, 10, now=T, view=stale_view(tenant_id), returns=returns)
    assert view.counters["a:2026-11:b"] == 3
    with pytest.raises(TooManyRequests) as caught:
        reserve(tenant_id, 10, now=T, view=stale_view(tenant_id), returns=returns)
    assert caught.value.code == "feature_limit_reached"


# --- the rate: the slot of now and the eleven before it hold fewer calls than the limit -------------------------

R0 = datetime(2026, 11, 17, 12, 0, 20, tzinfo=timezone.utc)  # second 20: slot 4


def refused_for_rate(tenant_id, moment, retry_after, **kwargs):
    with WritesNothing(tenant_id), pytest.raises(TooManyRequests) as caught:
        reserve(tenant_id, 1, now=moment, **kwargs)
    assert (caught.value.code, caught.value.message) == ("rate_limited", RATE_MESSAGE)
    assert caught.value.headers["Retry-After"] == str(retry_after)


def test_rate_admits_the_limit_and_refuses_until_the_moment_its_retry_after_names():
    tenant_id = new_tenant(rpm=2)
    reserve(tenant_id, 1, now=R0)
    reserve(tenant_id, 1, now=R0)
    refused_for_rate(tenant_id, R0 + timedelta(seconds=39), retry_after=21)   # 12:00:59
    refused_for_rate(tenant_id, R0 + timedelta(seconds=39, milliseconds=500), retry_after=21)  # 20.5 s, rounded up
    refused_for_rate(tenant_id, R0 + timedelta(seconds=59), retry_after=1)    # 12:01:19
    refused_for_rate(tenant_id, R0 + timedelta(seconds=59, milliseconds=999), retry_after=1)
    # 12:01:20, exactly what the last Retry-After said: the slot of 12:00:20 has left the window
    reserve(tenant_id, 1, now=R0 + timedelta(seconds=60))
    reserve(tenant_id, 1, now=R0 + timedelta(seconds=60))
    refused_for_rate(tenant_id, R0 + timedelta(seconds=61), retry_after=59)


def test_rate_window_is_the_slot_of_now_and_the_eleven_before_it():
    tenant_id = new_tenant(rpm=1)
    reserve(tenant_id, 1, now=R0 + timedelta(seconds=4, milliseconds=900))       # 12:00:24.9, slot 4
    refused_for_rate(tenant_id, R0 + timedelta(seconds=59, milliseconds=999), retry_after=1)  # 12:01:19.999
    reserve(tenant_id, 1, now=R0 + timedelta(seconds=60))                        # 12:01:20: 55.1 s later


def test_rate_refuses_from_the_items_condition_when_the_view_is_stale():
    tenant_id = new_tenant(rpm=2)
    reserve(tenant_id, 1, now=R0)
    reserve(tenant_id, 1, now=R0)
    reads = Reads(tenant_id)
    # this minute's count is what refuses: the item's answer is fresh, so it is not read again
    refused_for_rate(tenant_id, R0 + timedelta(seconds=5), retry_after=55, view=stale_view(tenant_id), reads=reads)
    assert reads.views == 0
    # the previous minute's count: the view did not know it, so the write is retried with the item's and the
    # refusal that follows is confirmed with a fresh read
    reads = Reads(tenant_id)
    refused_for_rate(tenant_id, R0 + timedelta(seconds=55), retry_after=5, view=stale_view(tenant_id), reads=reads)
    assert reads.views == 1


def test_at_a_minutes_eleventh_slot_the_write_proves_the_previous_minutes_last_slot():
    """At slot 10 the window still holds the previous minute's last slot: a stale view that does not know its
    calls must not admit over the rate."""
    tenant_id = new_tenant(rpm=2)
    last_slot = datetime(2026, 11, 17, 12, 0, 55, tzinfo=timezone.utc)
    reserve(tenant_id, 1, now=last_slot)
    reserve(tenant_id, 1, now=last_slot)
    refused_for_rate(tenant_id, last_slot + timedelta(seconds=55), retry_after=5, view=stale_view(tenant_id))


def test_rate_condition_counts_this_minute_from_its_first_slot():
    tenant_id = new_tenant(rpm=2)
    start = datetime(2026, 11, 17, 12, 0, 5, tzinfo=timezone.utc)  # slot 1
    reserve(tenant_id, 1, now=start)
    reserve(tenant_id, 1, now=start)
    refused_for_rate(tenant_id, start + timedelta(seconds=5), retry_after=55, view=stale_view(tenant_id))


def test_rate_condition_leaves_this_minute_only_what_the_previous_minutes_slots_in_the_window_did_not_use():
    tenant_id = new_tenant(rpm=3)
    reserve(tenant_id, 1, now=R0)
    reserve(tenant_id, 1, now=R0)
    reserve(tenant_id, 1, now=R0 + timedelta(seconds=50))  # 12:01:10: 2 from 12:00:20, 1 now
    m = minute_of(R0)
    # a view that knows the previous minute but not this minute's call
    view = dataclasses.replace(admission.load_view(tenant_id), counters={f"m:{m}": 2, f"s:{m}:4": 2})
    refused_for_rate(tenant_id, R0 + timedelta(seconds=51), retry_after=9, view=view)


def test_rate_counts_the_previous_minutes_slots_and_this_minutes_calls_together():
    tenant_id = new_tenant(rpm=3)
    reserve(tenant_id, 1, now=R0)
    reserve(tenant_id, 1, now=R0)
    _, view = reserve(tenant_id, 1, now=R0 + timedelta(seconds=50))   # 12:01:10, slot 2: 2 + 0 < 3
    m = minute_of(R0)
    assert view.counters[f"m:{m}"] == 2 and view.counters[f"m:{m + 1}"] == 1
    refused_for_rate(tenant_id, R0 + timedelta(seconds=51), retry_after=9)
    refused_for_rate(tenant_id, R0 + timedelta(seconds=51), retry_after=9, view=stale_view(tenant_id))


def test_this_minutes_first_slot_counts_once_in_the_condition():
    tenant_id = new_tenant(rpm=2)
    first = datetime(2026, 11, 17, 12, 1, 2, tzinfo=timezone.utc)  # slot 0
    _, view = reserve(tenant_id, 1, now=first)
    _, view = reserve(tenant_id, 1, now=first + timedelta(seconds=1), view=view)  # 1 < 2: room for one more
    assert view.counters[f"m:{minute_of(first)}"] == 2


def test_rate_leaves_the_previous_minute_out_in_its_last_slot():
    tenant_id = new_tenant(rpm=1)
    first = datetime(2026, 11, 17, 12, 0, 59, tzinfo=timezone.utc)  # slot 11
    m = minute_of(first)
    _, view = reserve(tenant_id, 1, now=first)
    with DynamoCalls() as calls:  # 12:01:55, slot 11: the window is this minute alone, nothing to prove
        reserve(tenant_id, 1, now=first + timedelta(seconds=56), view=view)
    assert calls.names == ["UpdateItem"]
    assert f"m:{m}" not in calls.params[0]["ExpressionAttributeNames"].values()
    assert f"m:{m + 1}" in calls.params[0]["ExpressionAttributeNames"].values()


def test_a_suspended_tenant_is_refused_without_a_write_and_without_a_second_read():
    tenant_id = new_tenant()
    operators.set_status(tenant_id, "suspended")
    reads = Reads(tenant_id)
    with WritesNothing(tenant_id), pytest.raises(Forbidden) as caught:
        reserve(tenant_id, 1, now=T, reads=reads)
    assert (caught.value.status, caught.value.code, caught.value.message) == (
        403, "tenant_suspended", "This tenant is suspended.")
    assert reads.views == 1


def test_a_tenant_resumed_under_a_warm_instance_is_admitted_on_its_next_request():
    tenant_id = new_tenant()
    operators.set_status(tenant_id, "suspended")
    suspended = admission.load_view(tenant_id)  # what a warm instance last saw
    operators.set_status(tenant_id, "active")
    reads = Reads(tenant_id)
    _, view = reserve(tenant_id, 1, now=T, view=suspended, reads=reads)
    assert (reads.views, reads.returns) == (1, 0) and view.counters["a:2026-11:b"] == 1


def test_a_feature_outside_the_plan_is_refused_naming_the_plan_it_needs():
    tenant_id = new_tenant()
    with WritesNothing(tenant_id), pytest.raises(Forbidden) as caught:
        reserve(tenant_id, 1, now=T, feature="code_review")
    error = caught.value
    assert (error.status, error.code) == (403, "feature_not_in_plan")
    assert error.message == "code_review is not in the free plan; it needs the pro plan."
    assert error.details == {"feature": "code_review", "required_plan": "pro"}


def test_a_refusal_on_stale_limits_is_confirmed_with_a_fresh_read():
    tenant_id = new_tenant()
    _, old = reserve(tenant_id, 1, now=T)  # a warm view of the free plan
    operators.set_plan(tenant_id, {"plan": "pro"})
    reads = Reads(tenant_id)
    _, view = reserve(tenant_id, 1, now=T, feature="code_review", view=old, reads=reads)
    assert reads.views == 1 and view.counters["a:2026-11:c"] == 1


def test_a_raised_quota_holds_on_the_next_request_after_a_refused_burst():
    tenant_id = new_tenant(basic_chat=3)
    view = None
    for _ in range(3):
        _, view = reserve(tenant_id, 1, now=T, view=view)
    with WritesNothing(tenant_id), pytest.raises(TooManyRequests) as caught:
        reserve(tenant_id, 1, now=T, view=view)
    assert caught.value.code == "feature_limit_reached"
    operators.set_limits(tenant_id, {"features": {"basic_chat": 4}})
    reads = Reads(tenant_id)
    _, after = reserve(tenant_id, 1, now=T, view=view, reads=reads)  # the warm view still says 3 of 3
    assert after.counters["a:2026-11:b"] == 4 and reads.views == 1


def test_a_raised_hard_budget_holds_on_the_next_request_after_a_refusal():
    tenant_id = new_tenant()
    hard_budget(tenant_id, "0.01")
    _, view = reserve(tenant_id, 10_000, now=T)
    refused_for_budget(tenant_id, 1, view=view)
    hard_budget(tenant_id, "0.02")
    reads = Reads(tenant_id)
    _, after = reserve(tenant_id, 1, now=T, view=view, reads=reads)
    assert after.counters["w:2026-11"] == 10_001 and reads.views == 1


def test_a_write_on_old_limits_is_retried_with_the_items_and_refused_after_a_fresh_read():
    tenant_id = new_tenant(rpm=1)
    _, old = reserve(tenant_id, 1, now=R0)
    operators.set_limits(tenant_id, {"features": {"basic_chat": 50}})  # a new version; the rate stays 1
    reads = Reads(tenant_id)
    refused_for_rate(tenant_id, R0 + timedelta(seconds=1), retry_after=59,
                     view=dataclasses.replace(old, counters={}), reads=reads)
    assert reads.views == 1


# --- the hard budget ---------------------------------------------------------------------------------------

def refused_for_budget(tenant_id, worst, **kwargs):
    with WritesNothing(tenant_id), pytest.raises(PaymentRequired) as caught:
        reserve(tenant_id, worst, now=T, **kwargs)
    assert (caught.value.status, caught.value.code, caught.value.message) == (402, "budget_exceeded", BUDGET_MESSAGE)


def test_hard_budget_admits_spend_that_reaches_it_exactly_and_refuses_one_micro_dollar_more():
    tenant_id = new_tenant()
    hard_budget(tenant_id, "0.01")  # 10,000 micro-dollars
    reserve(tenant_id, 4_000, now=T)
    _, view = reserve(tenant_id, 6_000, now=T)
    assert view.counters["w:2026-11"] == 10_000
    refused_for_budget(tenant_id, 1)


def test_hard_budget_one_micro_dollar_under_admits_exactly_one_more():
    tenant_id = new_tenant()
    hard_budget(tenant_id, "0.01")
    reserve(tenant_id, 9_999, now=T)
    refused_for_budget(tenant_id, 2)
    _, view = reserve(tenant_id, 1, now=T)
    assert view.counters["w:2026-11"] == 10_000


def test_a_worst_case_of_the_whole_budget_is_admitted_and_one_over_it_is_refused():
    tenant_id = new_tenant()
    hard_budget(tenant_id, "0.01")
    reads = Reads(tenant_id)
    refused_for_budget(tenant_id, 10_001, reads=reads)
    assert reads.returns == 0  # no refund can make room for more than the whole budget
    _, view = reserve(tenant_id, 10_000, now=T)
    assert view.counters["w:2026-11"] == 10_000


def test_a_worst_case_over_a_warm_views_whole_budget_is_admitted_once_a_read_shows_it_raised():
    """The view's budget may be out of date: a worst case over the whole of it is refused only after a fresh
    read confirms that budget, never on the warm instance's word."""
    tenant_id = new_tenant()
    hard_budget(tenant_id, "0.01")
    _, view = reserve(tenant_id, 1, now=T)
    hard_budget(tenant_id, "0.02")
    reads = Reads(tenant_id)
    _, after = reserve(tenant_id, 15_000, now=T, view=view, reads=reads)
    assert after.counters["w:2026-11"] == 15_001 and reads.views == 1


def test_hard_budget_refuses_from_the_items_condition_when_the_view_is_stale():
    tenant_id = new_tenant()
    hard_budget(tenant_id, "0.01")
    reserve(tenant_id, 6_000, now=T)
    refused_for_budget(tenant_id, 4_001, view=stale_view(tenant_id))
    _, view = reserve(tenant_id, 4_000, now=T, view=stale_view(tenant_id))
    assert view.counters["w:2026-11"] == 10_000


def test_hard_budget_headroom_is_the_budget_plus_refunds_minus_the_worst_case():
    tenant_id = new_tenant()
    hard_budget(tenant_id, "0.01")
    reservation, _ = reserve(tenant_id, 8_000, now=T)
    cost = sonnet_micros(500, 100)  # 1,500 + 1,500
    assert cost == 3_000
    ledger.record(reservation, ledger.Settlement("usr_x", "user", SONNET, input_tokens=500, output_tokens=100,
                                                 cost_micros=cost))
    settle_usage()
    assert admission.load_returns(tenant_id).refunded("2026-11") == 8_000 - 3_000
    # committed 8,000, refunded 5,000: 10,000 + 5,000 - 7,000 = 8,000 of headroom, exactly what is committed
    reads = Reads(tenant_id)
    _, view = reserve(tenant_id, 7_000, now=T, reads=reads)  # this instance had not seen the refund yet
    assert reads.returns == 1 and view.counters["w:2026-11"] == 15_000
    refused_for_budget(tenant_id, 1, returns=admission.load_returns(tenant_id))


def test_hard_budget_counts_refunds_in_the_items_condition_too():
    tenant_id = new_tenant()
    hard_budget(tenant_id, "0.01")
    reservation, _ = reserve(tenant_id, 8_000, now=T)
    ledger.record(reservation, ledger.Settlement("usr_x", "user", SONNET, input_tokens=500, output_tokens=100,
                                                 cost_micros=sonnet_micros(500, 100)))
    settle_usage()
    returns = admission.load_returns(tenant_id)
    refused_for_budget(tenant_id, 7_001, view=stale_view(tenant_id), returns=returns)
    _, view = reserve(tenant_id, 7_000, now=T, view=stale_view(tenant_id), returns=returns)
    assert view.counters["w:2026-11"] == 15_000


def test_a_soft_budget_never_refuses():
    tenant_id = new_tenant()
    hard_budget(tenant_id, "0.001", hard=False)
    reserve(tenant_id, 5_000, now=T)
    _, view = reserve(tenant_id, 5_000, now=T)
    assert view.counters["w:2026-11"] == 10_000


def test_a_hard_limit_without_a_budget_never_refuses():
    tenant_id = new_tenant()
    tenants.update_tenant(tenant_id, {"budget_hard_limit": True})
    _, view = reserve(tenant_id, 123_456_789, now=T)
    assert view.counters["w:2026-11"] == 123_456_789
