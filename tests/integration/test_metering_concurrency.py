"""Admission and the ledger are exact under concurrency, across warm instances, at window edges and
through crashes: real threads and processes against the moto server, real PynamoDB models."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from chalicelib import operators, pricing, tenants
from chalicelib.ai.gateway import FeatureCall, Gateway
from chalicelib.errors import Forbidden, PaymentRequired, TooManyRequests
from chalicelib.ids import new_request_id
from chalicelib.metering import admission, aggregator, counter_keys, ledger, sweeper, usage
from chalicelib.models import Admission, SweepMark, UsageEvent, UsagePeriod, tenant_pk
from chalicelib.periods import current_period, period_of
from chalicelib.tenancy import TenantContext
from dev.bench.ledger import item_size  # dev/: DynamoDB's item size rules, shared with make bench
from conftest import ROOT, random_slug, settle_usage

pytestmark = pytest.mark.usefixtures("own_table")  # moto's Query reads a whole table: keep it small

THREADS = 50
CALL = FeatureCall(messages=[{"role": "user", "content": "concurrent hello"}], max_tokens=64)
SONNET_INPUT, SONNET_OUTPUT = 3, 15  # USD per million tokens = micro-dollars per token, published prices


def billed(tenant_id, period=None):
    """What the tenant's answered calls cost, from their recorded tokens at Sonnet's published prices
    (independent of pricing.py's arithmetic)."""
    settle_usage()
    events = usage.events(tenant_id, period, "100", None)["events"]
    return sum(e["input_tokens"] * SONNET_INPUT + e["output_tokens"] * SONNET_OUTPUT for e in events
               if e["status"] == "ok")


def new_tenant(name="Meter Co"):
    slug = random_slug("m")
    created = tenants.sign_up({"company_name": name, "slug": slug, "email": f"o@{slug}.example.com",
                               "password": "meter-password-1"})
    tid = created["tenant_id"]
    return tid, TenantContext(tid, created["owner"]["user_id"], "user", "owner", created["owner"]["email"], slug)


def burst(fn, n=THREADS):
    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(fn, i) for i in range(n)]
    outcomes = []
    for future in futures:
        error = future.exception()
        outcomes.append(getattr(error, "code", type(error).__name__) if error else "ok")
    return outcomes


def reserve(tenant_id, worst, now=None, feature="basic_chat", request_id=None):
    reservation, _ = admission.reserve(
        tenant_id, request_id or new_request_id(now.timestamp() if now else None), feature, worst, None,
        admission.Returns(), load_view=lambda: admission.load_view(tenant_id),
        load_returns=lambda: admission.load_returns(tenant_id), now=now)
    return reservation


def settlement(cost, **extra):
    return ledger.Settlement(principal_id="usr_x", principal_type="user", model="claude-sonnet-4-6",
                             input_tokens=10, output_tokens=20, cost_micros=cost, latency_ms=5, **extra)


def standing(tenant_id, period=None, feature="basic_chat"):
    """(admissions used, committed micros, spent micros, requests) once the stream has folded everything."""
    settle_usage()
    period = period or current_period()
    view, returns = usage.admission_state(tenant_id)
    used = view.counters.get(counter_keys.admitted_key(period, feature), 0) - returns.released(period, feature)
    committed = view.counters.get(counter_keys.committed_key(period), 0) - returns.refunded(period)
    try:
        aggregate = UsagePeriod.get(tenant_pk(tenant_id), UsagePeriod.sk_for(period), consistent_read=True)
        spent, requests = int(aggregate.cost_micros), int(aggregate.requests)
    except UsagePeriod.DoesNotExist:
        spent, requests = 0, 0
    return used, committed, spent, requests


def unlimited(tenant_id, **features):
    operators.set_limits(tenant_id, {"features": features, "requests_per_minute": 100_000})


# --- quotas under concurrency ----------------------------------------------------

def test_brand_new_tenant_burst_admits_exactly_the_monthly_limit():
    tenant_id, ctx = new_tenant()
    operators.set_limits(tenant_id, {"features": {"basic_chat": 10}, "requests_per_minute": 1000})
    gateway = Gateway()
    outcomes = burst(lambda i: gateway.run(ctx, "basic_chat", CALL))
    assert outcomes.count("ok") == 10
    assert outcomes.count("feature_limit_reached") == THREADS - 10
    used, committed, spent, requests = standing(tenant_id)
    assert (used, requests) == (10, 10)
    assert spent == committed == billed(tenant_id) > 0


def test_burst_against_ten_remaining_admits_exactly_ten():
    tenant_id, ctx = new_tenant()
    operators.set_limits(tenant_id, {"features": {"basic_chat": 15}, "requests_per_minute": 1000})
    gateway = Gateway()
    for _ in range(5):
        gateway.run(ctx, "basic_chat", CALL)
    outcomes = burst(lambda i: gateway.run(ctx, "basic_chat", CALL))
    assert outcomes.count("ok") == 10
    assert standing(tenant_id)[0] == 15 and standing(tenant_id)[3] == 15


def test_two_warm_instances_together_admit_exactly_the_limit():
    tenant_id, ctx = new_tenant()
    operators.set_limits(tenant_id, {"features": {"basic_chat": 12}, "requests_per_minute": 1000})
    instances = [Gateway(), Gateway()]
    for instance in instances:
        instance.run(ctx, "basic_chat", CALL)
    outcomes = burst(lambda i: instances[i % 2].run(ctx, "basic_chat", CALL), n=40)
    assert outcomes.count("ok") == 10
    assert standing(tenant_id)[0] == 12


# --- the rate limit: any 60-second span ----------------------------------------------

def test_requests_per_minute_admits_exactly_the_limit_within_one_minute():
    tenant_id, _ = new_tenant()
    operators.set_limits(tenant_id, {"requests_per_minute": 10})
    moment = datetime(2026, 11, 26, 12, 30, 5, tzinfo=timezone.utc)
    outcomes = burst(lambda i: reserve(tenant_id, 100, now=moment))
    assert outcomes.count("ok") == 10
    assert outcomes.count("rate_limited") == THREADS - 10


def test_rate_limited_request_is_admitted_after_its_retry_after_and_not_before():
    tenant_id, _ = new_tenant()
    operators.set_limits(tenant_id, {"requests_per_minute": 1})
    moment = datetime(2026, 11, 26, 12, 30, 41, tzinfo=timezone.utc)  # in the slot from 12:30:40
    reserve(tenant_id, 1, now=moment)
    refused_at = moment + timedelta(seconds=1, milliseconds=300)
    with pytest.raises(TooManyRequests) as caught:
        reserve(tenant_id, 1, now=refused_at)
    assert caught.value.code == "rate_limited" and caught.value.headers["Retry-After"] == "58"  # 57.7 s
    with pytest.raises(TooManyRequests):
        reserve(tenant_id, 1, now=refused_at + timedelta(seconds=57, milliseconds=699))
    assert reserve(tenant_id, 1, now=refused_at + timedelta(seconds=58))


def test_a_minute_boundary_does_not_double_the_rate():
    tenant_id, _ = new_tenant()
    operators.set_limits(tenant_id, {"requests_per_minute": 10})
    edge = datetime(2026, 11, 26, 12, 31, 0, tzinfo=timezone.utc)
    before = burst(lambda i: reserve(tenant_id, 1, now=edge - timedelta(milliseconds=100)), n=20)
    after = burst(lambda i: reserve(tenant_id, 1, now=edge + timedelta(milliseconds=100)), n=20)
    assert before.count("ok") == 10
    assert after.count("ok") == 0 and set(after) == {"rate_limited"}
    # The calls at 12:30:59.9 count until their 5-second slot (from 12:30:55) is a minute old.
    with pytest.raises(TooManyRequests):
        reserve(tenant_id, 1, now=edge + timedelta(seconds=54, milliseconds=900))
    assert reserve(tenant_id, 1, now=edge + timedelta(seconds=55))


def test_no_55_second_span_exceeds_the_rate_limit():
    tenant_id, _ = new_tenant()
    limit = 10
    operators.set_limits(tenant_id, {"requests_per_minute": limit})
    start = datetime(2026, 11, 26, 12, 0, 7, tzinfo=timezone.utc)
    rng = random.Random(20261201)
    moments = sorted(start + timedelta(seconds=rng.uniform(0, 240)) for _ in range(160))
    admitted = []
    for moment in moments:
        try:
            reserve(tenant_id, 1, now=moment)
            admitted.append(moment)
        except TooManyRequests:
            pass
    for i, first in enumerate(admitted):
        in_span = [m for m in admitted[i:] if m < first + timedelta(seconds=55)]
        assert len(in_span) <= limit, (first, len(in_span))
    # and it is never stricter than a sliding minute: in 240 s at least four full minutes' worth get through
    assert len(admitted) >= 4 * limit


# --- budgets ------------------------------------------------------------------------

def test_hard_budget_holds_under_fifty_concurrent_requests():
    tenant_id, ctx = new_tenant()
    unlimited(tenant_id, basic_chat=1000)
    tenants.update_tenant(tenant_id, {"monthly_budget_usd": "0.01", "budget_hard_limit": True})
    gateway = Gateway()
    outcomes = burst(lambda i: gateway.run(ctx, "basic_chat", CALL))
    used, committed, spent, requests = standing(tenant_id)
    assert outcomes.count("ok") >= 1 and outcomes.count("budget_exceeded") >= 1
    assert set(outcomes) <= {"ok", "budget_exceeded"}
    assert spent <= 10_000
    assert committed == spent == billed(tenant_id)
    assert requests == outcomes.count("ok")


def test_hard_budget_refuses_only_when_spend_and_this_worst_case_would_exceed_it():
    tenant_id, ctx = new_tenant()
    unlimited(tenant_id, basic_chat=1000)
    budget = 5_000
    tenants.update_tenant(tenant_id, {"monthly_budget_usd": "0.005", "budget_hard_limit": True})
    gateway = Gateway()
    for _ in range(30):
        try:
            gateway.run(ctx, "basic_chat", CALL)
        except PaymentRequired:
            break
        settle_usage()  # the refund of this call's unused worst case reaches admission
    _, committed, spent, requests = standing(tenant_id)
    assert spent == billed(tenant_id) <= budget
    # refused exactly when one more worst case would not fit: the refunds were counted
    assert spent + worst_case_bound(tenant_id, gateway) > budget >= spent


def worst_case_bound(tenant_id, gateway):
    state = gateway.tenant_state(tenant_id)
    ctx = TenantContext(tenant_id, "usr_x", "user", "owner", "o@example.com", "slug")
    return gateway.prepare(ctx, "basic_chat", CALL).worst_case_micros


def test_request_whose_worst_case_exceeds_the_whole_budget_is_402_without_writing():
    tenant_id, _ = new_tenant()
    tenants.update_tenant(tenant_id, {"monthly_budget_usd": "0.0005", "budget_hard_limit": True})
    before = Admission.get(tenant_pk(tenant_id), Admission.SK, consistent_read=True)
    with pytest.raises(PaymentRequired):
        reserve(tenant_id, 501)
    after = Admission.get(tenant_pk(tenant_id), Admission.SK, consistent_read=True)
    assert after.counters.as_dict() == before.counters.as_dict() == {}


def test_soft_budget_lets_requests_through():
    tenant_id, _ = new_tenant()
    tenants.update_tenant(tenant_id, {"monthly_budget_usd": "0.0005", "budget_hard_limit": False})
    reserve(tenant_id, 5_000)
    assert standing(tenant_id)[1] == 5_000


# --- a change holds for the very next request on every warm instance -------------------------------

def test_a_new_hard_budget_holds_at_once_on_warm_instances():
    tenant_id, ctx = new_tenant()
    unlimited(tenant_id, basic_chat=1000)
    instances = [Gateway(), Gateway()]
    for instance in instances:
        instance.run(ctx, "basic_chat", CALL)  # both warm, both caching the tenant without a budget
    spent_before = standing(tenant_id)[2]
    tenants.update_tenant(tenant_id, {"monthly_budget_usd": "0.006", "budget_hard_limit": True})
    outcomes = burst(lambda i: instances[i % 2].run(ctx, "basic_chat", CALL), n=40)
    _, _, spent, _ = standing(tenant_id)
    assert spent <= 6_000, spent
    assert outcomes.count("budget_exceeded") >= 40 - (6_000 - spent_before) // 400


def test_a_plan_upgrade_admits_the_next_request_on_a_warm_instance():
    tenant_id, ctx = new_tenant()
    gateway = Gateway()
    with pytest.raises(Forbidden) as caught:
        gateway.run(ctx, "code_review", CALL)
    assert caught.value.code == "feature_not_in_plan"
    operators.set_plan(tenant_id, {"plan": "pro"})
    assert gateway.run(ctx, "code_review", CALL).cost_micros > 0


def test_a_downgrade_and_a_suspension_hold_for_the_next_request_on_a_warm_instance():
    tenant_id, ctx = new_tenant()
    operators.set_plan(tenant_id, {"plan": "pro"})
    gateway = Gateway()
    gateway.run(ctx, "code_review", CALL)
    operators.set_plan(tenant_id, {"plan": "free"})
    with pytest.raises(Forbidden) as caught:
        gateway.run(ctx, "code_review", CALL)
    assert caught.value.code == "feature_not_in_plan"
    gateway.run(ctx, "basic_chat", CALL)
    operators.set_status(tenant_id, "suspended")
    with pytest.raises(Forbidden) as caught:
        gateway.run(ctx, "basic_chat", CALL)
    assert caught.value.code == "tenant_suspended"


def test_a_lowered_limit_override_holds_for_the_next_request_on_a_warm_instance():
    tenant_id, ctx = new_tenant()
    gateway = Gateway()
    gateway.run(ctx, "basic_chat", CALL)
    gateway.run(ctx, "basic_chat", CALL)
    operators.set_limits(tenant_id, {"features": {"basic_chat": 2}})
    with pytest.raises(TooManyRequests) as caught:
        gateway.run(ctx, "basic_chat", CALL)
    assert caught.value.code == "feature_limit_reached"


# --- settle, release, indeterminate: once each ---------------------------------------------

def test_settling_the_same_request_twice_counts_once():
    tenant_id, _ = new_tenant()
    reservation = reserve(tenant_id, 1_000)
    outcomes = burst(lambda i: ledger.record(reservation, settlement(330)), n=5)
    assert outcomes.count("ok") == 5
    used, committed, spent, requests = standing(tenant_id)
    assert (used, committed, spent, requests) == (1, 330, 330, 1)


def test_a_redelivered_stream_batch_counts_nothing_twice():
    tenant_id, _ = new_tenant()
    reservation = reserve(tenant_id, 1_000)
    ledger.record(reservation, settlement(330))
    settle_usage()
    event = UsageEvent.get(tenant_pk(tenant_id), UsageEvent.sk_for(reservation.request_id), consistent_read=True)
    image = event.serialize()
    image.update({"pk": {"S": event.pk}, "sk": {"S": event.sk}})
    image.pop("aggregated_at", None)
    report = aggregator.handle([{"eventName": "INSERT", "dynamodb": {"NewImage": image}}])
    assert (report.events, report.duplicates) == (0, 1)
    assert standing(tenant_id) == (1, 330, 330, 1)


def test_release_gives_back_quota_and_reserved_cost():
    tenant_id, _ = new_tenant()
    operators.set_limits(tenant_id, {"features": {"basic_chat": 1}})
    reservation = reserve(tenant_id, 777)
    ledger.record(reservation, ledger.Settlement("usr_x", "user", "claude-sonnet-4-6", own_key=False,
                                                 status=ledger.FAILED))
    assert standing(tenant_id)[:3] == (0, 0, 0)
    reserve(tenant_id, 777)


class _NoAnswer:
    """The network edge: the request is sent, no answer comes back (the SDK's read timeout)."""

    def __init__(self, error):
        self.error = error

    def __call__(self, request):
        raise self.error


def _unreachable_upstream(error):
    """A gateway whose every upstream attempt, Anthropic's, its retry and Bedrock's, meets `error`."""
    import httpx2

    from chalicelib.ai.bedrock import BedrockModelClient
    from chalicelib.ai.client import ModelClient
    from chalicelib.ai.failover import Failover

    transport = httpx2.MockTransport(_NoAnswer(error))
    anthropic = ModelClient(transport=transport)
    return Gateway(model_client=anthropic, failover=Failover(anthropic, BedrockModelClient(transport=transport),
                                                             sleep=lambda seconds: None))


def test_a_call_that_may_have_been_billed_is_indeterminate_counts_against_quota_and_is_not_charged():
    import httpx2

    from chalicelib.errors import UpstreamError

    tenant_id, ctx = new_tenant()
    gateway = _unreachable_upstream(httpx2.ReadTimeout("no answer"))
    with pytest.raises(UpstreamError):
        gateway.run(ctx, "basic_chat", CALL)
    used, committed, spent, requests = standing(tenant_id)
    assert (used, committed, spent, requests) == (1, 0, 0, 0)
    [event] = usage.events(tenant_id, None, None, None)["events"]
    assert event["upstream_attempts"] == "anthropic:timeout,anthropic:timeout,bedrock:timeout"
    bound = 3 * worst_case_bound(tenant_id, gateway)  # each of the three attempts may have been billed
    assert event["status"] == "indeterminate" and event["cost_usd"] == "0.000000"
    assert event["cost_bound_usd"] == pricing.usd(bound)
    summary = usage.summary(tenants.get_tenant(tenant_id), None)
    assert summary["indeterminate_requests"] == 1 and summary["unbilled_exposure_usd"] == pricing.usd(bound)


def test_a_call_that_never_left_is_failed_and_gives_its_quota_back():
    import httpx2

    from chalicelib.errors import UpstreamError

    tenant_id, ctx = new_tenant()
    gateway = _unreachable_upstream(httpx2.ConnectError("refused"))
    with pytest.raises(UpstreamError):
        gateway.run(ctx, "basic_chat", CALL)
    assert standing(tenant_id)[:3] == (0, 0, 0)
    [event] = usage.events(tenant_id, None, None, None)["events"]
    assert event["status"] == "failed" and event["cost_bound_usd"] is None


# --- crashes: the sweeper gives back what a dead handler held ------------------------------------

CRASHING_HANDLER = """
import json
from dev.stack import local_stack as stack
stack.run_app_in_process({moto_port}, {standin!r}, "j" * 40, "o" * 40, "sk-test")
import os
os.environ["TESSERA_TABLE_NAME"] = {table!r}  # the test's table, not the stage's
from chalicelib.ai.gateway import Gateway
from chalicelib.ai.client import ModelCall
from chalicelib.metering import admission
tenant_id = {tenant_id!r}
reservation, _ = admission.reserve(tenant_id, {request_id!r}, "basic_chat", 9_000, None, admission.Returns(),
    load_view=lambda: admission.load_view(tenant_id), load_returns=lambda: admission.load_returns(tenant_id))
print(json.dumps({{"bucket": reservation.bucket, "period": reservation.period}}), flush=True)
Gateway().model_client.complete(ModelCall("claude-sonnet-4-6", 64, None,
    [{{"role": "user", "content": "[[standin:slow=30]] hang"}}]), "sk-test", False)
"""


def test_a_reservation_whose_handler_died_is_given_back_once_and_a_late_settle_counts_once(moto_server, standin,
                                                                                         own_table):
    tenant_id, _ = new_tenant()
    tenants.update_tenant(tenant_id, {"monthly_budget_usd": "0.01", "budget_hard_limit": True})
    request_id = new_request_id()
    script = CRASHING_HANDLER.format(moto_port=moto_server[1],
                                     standin=standin, tenant_id=tenant_id, request_id=request_id, table=own_table)
    handler = subprocess.Popen([sys.executable, "-c", script], cwd=str(ROOT), stdout=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        reserved = json.loads(handler.stdout.readline())
    finally:
        os.killpg(handler.pid, signal.SIGKILL)  # between reserve and settle: the model has not answered
        handler.wait()
    assert standing(tenant_id)[:2] == (1, 9_000)
    with pytest.raises(PaymentRequired):  # 9,000 held of 10,000: a 2,000 worst case does not fit
        reserve(tenant_id, 2_000)

    after = datetime.fromtimestamp((reserved["bucket"] + 1) * admission.BUCKET_SECONDS + sweeper.GRACE_SECONDS,
                                   tz=timezone.utc)
    assert sweeper.sweep(now=after).reclaims >= 1
    assert standing(tenant_id, reserved["period"])[:3] == (0, 0, 0)
    sweeper.sweep(now=after)  # resolves the bucket: nothing more is reclaimed, the mark goes
    sweeper.sweep(now=after)
    events = usage.events(tenant_id, reserved["period"], None, None)["events"]
    assert [e["status"] for e in events] == ["abandoned"] and events[0]["cost_bound_usd"] == "0.009000"
    assert standing(tenant_id, reserved["period"])[:3] == (0, 0, 0)
    assert not list(SweepMark.query(f"SWEEP#{reserved['bucket']}", SweepMark.sk == tenant_pk(tenant_id)))

    # The handler was only slow after all: its settle arrives now and is charged once.
    late = admission.Reservation(tenant_id, request_id, "basic_chat", reserved["period"], reserved["bucket"], 9_000,
                                 datetime.now(timezone.utc))
    assert ledger.record(late, settlement(1_234)) is True
    assert ledger.record(late, settlement(1_234)) is False
    assert standing(tenant_id, reserved["period"]) == (1, 1_234, 1_234, 1)


# --- the admission item stays one write unit ------------------------------------------------

@pytest.mark.long  # about 30 s of concurrent admissions
def test_the_admission_item_stays_under_one_kilobyte_at_its_busiest():
    from chalicelib import keys, principal_budgets

    tenant_id, ctx = new_tenant()
    operators.set_plan(tenant_id, {"plan": "enterprise"})
    operators.set_limits(tenant_id, {"requests_per_minute": 100_000, "features": {
        "basic_chat": 99_999_999, "code_review": 99_999_999, "document_analysis": 99_999_999}})
    tenants.update_tenant(tenant_id, {"monthly_budget_usd": "9999999", "budget_hard_limit": True})
    while admission.load_view(tenant_id).limits.principals.bit_length() <= 124:  # hard budgets on keys until
        key_id = keys.create_key(tenant_id, ctx, {"name": "k"})["key_id"]  # their 128-bit mark is at its longest
        principal_budgets.set_budget(tenant_id, "api_key", key_id, {"monthly_requests": 10, "hard_limit": True})
    start = datetime(2026, 12, 31, 23, 39, 50, tzinfo=timezone.utc)  # a month's end: two periods live
    swept = start
    for step in range(0, 40 * 60, 47):  # 40 minutes: sweep buckets and every rate slot in use
        moment = start + timedelta(seconds=step)
        for feature in ("basic_chat", "code_review", "document_analysis", "custom_prompts"):
            ledger.record(reserve(tenant_id, 123_456_789, now=moment, feature=feature), settlement(1))
        if moment - swept >= timedelta(minutes=10):  # the sweeper's schedule
            settle_usage()
            sweeper.sweep(now=moment)
            swept = moment
    last = (start + timedelta(seconds=step + 60)).replace(second=0)
    for slot in range(24):  # and one call in each 5-second rate slot of the last two minutes
        ledger.record(reserve(tenant_id, 123_456_789, now=last + timedelta(seconds=5 * slot)), settlement(1))
    assert len([k for k in admission.load_view(tenant_id).counters if k.startswith("s:")]) == 24
    raw = Admission.get(tenant_pk(tenant_id), Admission.SK, consistent_read=True).serialize()
    raw.update({"pk": {"S": tenant_pk(tenant_id)}, "sk": {"S": Admission.SK}})
    print(f"admission item at its busiest: {item_size(raw)} bytes")
    assert item_size(raw) <= 1024, item_size(raw)
    assert period_of(start) != period_of(start + timedelta(minutes=40))
