"""Usage reads (chalicelib/metering/usage.py): the month's figures, the event list and each feature's standing,
in exact micro-dollars.

Every call here goes through the real admission write and ledger event, folded by the real usage aggregator
on moto; costs are worked out in the test from Anthropic's published per-million prices (tests/published.py;
USD per million tokens is micro-dollars per token), so a figure is checked against arithmetic done here, not
against our own pricing code."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from decimal import ROUND_CEILING, Decimal

import pytest

from chalicelib import operators, tenants
from chalicelib.errors import BadRequest
from chalicelib.jobs.budget_check import Report, _check_tenant
from chalicelib.metering import ledger, usage
from chalicelib.models import UsagePeriod, tenant_pk
from chalicelib.notify import Notifier
from conftest import settle_usage
from dynamo_hooks import DynamoCalls
from published import PUBLISHED
from test_metering_concurrency import new_tenant, reserve

SONNET, HAIKU = "claude-sonnet-4-6", "claude-haiku-4-5"


def published_cost(model, input_tokens=0, output_tokens=0, cache_write=0, cache_read=0):
    _, input_, output, write_5m, read, _ = PUBLISHED[model]
    exact = (input_tokens * Decimal(input_) + output_tokens * Decimal(output) + cache_write * Decimal(write_5m)
             + cache_read * Decimal(read))
    return int(exact.to_integral_value(rounding=ROUND_CEILING))


def dollars(micros):
    """Micro-dollars as the API shows dollars: six decimals."""
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def this_month():
    now = datetime.now(timezone.utc)
    following = datetime(now.year + now.month // 12, now.month % 12 + 1, 1)
    return now.strftime("%Y-%m"), following.strftime("%Y-%m-%dT00:00:00Z")


def settled(tenant_id, worst, feature="basic_chat", now=None, model=SONNET, own_key=False, status=ledger.OK,
            **tokens):
    """One call: admitted with `worst`, then its event (ok: charged at the published prices)."""
    reservation = reserve(tenant_id, worst, now=now, feature=feature)
    cost = published_cost(model, **tokens) if status in ledger.CHARGED else 0
    if status == ledger.FAILED:
        ledger.record(reservation, ledger.Settlement("usr_test", "user", model, own_key=own_key, status=ledger.FAILED))
    elif status == ledger.INDETERMINATE:
        ledger.record(reservation, ledger.Settlement("usr_test", "user", model, own_key=own_key, latency_ms=30,
                                                     status=ledger.INDETERMINATE))
    else:
        names = {"input_tokens": "input_tokens", "output_tokens": "output_tokens",
                 "cache_write": "cache_creation_tokens", "cache_read": "cache_read_tokens"}
        ledger.record(reservation, ledger.Settlement(
            principal_id="usr_test", principal_type="user", model=model, cost_micros=cost, latency_ms=12,
            own_key=own_key, status=status, **{names[k]: v for k, v in tokens.items()}))
    return reservation, cost


def profile(tenant_id):
    return tenants.get_tenant(tenant_id, consistent=True)


# --- the month's summary ------------------------------------------------------------------------------------

def test_the_months_figures_are_exact_for_every_kind_of_call():
    tenant_id, _ = new_tenant()
    operators.set_plan(tenant_id, {"plan": "pro"})
    tenants.update_tenant(tenant_id, {"monthly_budget_usd": "10", "budget_hard_limit": True})
    _, chat = settled(tenant_id, 50_000, input_tokens=1000, output_tokens=500, cache_write=200, cache_read=300)
    _, review = settled(tenant_id, 1_000, feature="code_review", model=HAIKU, own_key=True, input_tokens=10,
                        output_tokens=20)
    settled(tenant_id, 7_000, status=ledger.FAILED)
    settled(tenant_id, 9_000, status=ledger.INDETERMINATE)
    reserve(tenant_id, 4_000)  # admitted, not settled yet: in flight
    settle_usage()
    assert chat == 1000 * 3 + 500 * 15 + 200 * 3.75 + 300 * 0.30 == 11_340
    assert review == 10 * 1 + 20 * 5 == 110
    period, resets_at = this_month()
    now = datetime.now(timezone.utc)

    figures = usage.summary(profile(tenant_id), None, now=now)

    spent, reserved = chat + review, 4_000  # the failed and the unsure calls gave their worst case back
    start = datetime(now.year, now.month, 1, tzinfo=timezone.utc)
    end = datetime.strptime(resets_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    month_seconds, elapsed = int((end - start).total_seconds()), int((now - start).total_seconds())
    zero = {"requests": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": "0.000000"}
    today = {"requests": 2, "input_tokens": 1010, "output_tokens": 520, "cost_usd": "0.011450"}
    by_day = [{"day": (start + timedelta(days=d)).date().isoformat(),
               **(today if (start + timedelta(days=d)).date() == now.date() else zero)}
              for d in range((end - start).days)]
    assert figures == {
        "period": period,
        "requests": 2,
        "input_tokens": 1010,
        "output_tokens": 520,
        "cache_creation_tokens": 200,
        "cache_read_tokens": 300,
        "total_tokens": 1530,
        "total_cost_usd": "0.011450",
        "failed_requests": 1,
        "indeterminate_requests": 1,
        "abandoned_requests": 0,
        "unbilled_exposure_usd": "0.009000",
        "by_feature": {
            "basic_chat": {"requests": 1, "input_tokens": 1000, "output_tokens": 500, "cost_usd": "0.011340"},
            "code_review": {"requests": 1, "input_tokens": 10, "output_tokens": 20, "cost_usd": "0.000110"},
        },
        "by_model": {
            HAIKU: {"requests": 1, "input_tokens": 10, "output_tokens": 20, "cost_usd": "0.000110"},
            SONNET: {"requests": 1, "input_tokens": 1000, "output_tokens": 500, "cost_usd": "0.011340"},
        },
        "by_principal": {"usr_test": {"requests": 2, "input_tokens": 1010, "output_tokens": 520,
                                      "cost_usd": "0.011450", "principal_type": "user"}},
        "by_day": by_day,
        "refusals": {"total": 0, "by_reason": {"tenant_suspended": 0, "feature_not_in_plan": 0,
                                               "feature_limit_reached": 0, "rate_limited": 0,
                                               "budget_exceeded": 0, "pool_share_exhausted": 0,
                                               "principal_limit_reached": 0, "principal_budget_exceeded": 0}},
        "by_key_source": {"platform": {"requests": 1, "cost_usd": "0.011340"},
                          "tenant": {"requests": 1, "cost_usd": "0.000110"}},
        "budget": {
            "monthly_budget_usd": "10.000000",
            "spent_usd": dollars(spent),
            "reserved_usd": "0.004000",
            "remaining_usd": dollars(10_000_000 - spent - reserved),
            "hard_limit": True,
            "resets_at": resets_at,
            "alerts_sent": [],
            "alert_thresholds": [50, 80, 100],
            "forecast_usd": dollars(11_450 * month_seconds // elapsed),
        },
    }
    assert dollars(10_000_000 - spent - reserved) == "9.984550"


def test_a_month_without_calls_is_all_zero_and_a_missing_budget_is_null():
    tenant_id, _ = new_tenant()
    figures = usage.summary(profile(tenant_id), "2024-02")
    assert figures == {
        "period": "2024-02", "requests": 0, "input_tokens": 0, "output_tokens": 0, "cache_creation_tokens": 0,
        "cache_read_tokens": 0, "total_tokens": 0, "total_cost_usd": "0.000000", "failed_requests": 0,
        "indeterminate_requests": 0, "abandoned_requests": 0, "unbilled_exposure_usd": "0.000000",
        "by_feature": {}, "by_model": {}, "by_principal": {},
        "by_day": [{"day": f"2024-02-{d:02d}", "requests": 0, "input_tokens": 0, "output_tokens": 0,
                    "cost_usd": "0.000000"} for d in range(1, 30)],  # a leap year's February
        "refusals": {"total": 0, "by_reason": {"tenant_suspended": 0, "feature_not_in_plan": 0,
                                               "feature_limit_reached": 0, "rate_limited": 0,
                                               "budget_exceeded": 0, "pool_share_exhausted": 0,
                                               "principal_limit_reached": 0, "principal_budget_exceeded": 0}},
        "by_key_source": {"platform": {"requests": 0, "cost_usd": "0.000000"},
                          "tenant": {"requests": 0, "cost_usd": "0.000000"}},
        "budget": {"monthly_budget_usd": None, "spent_usd": "0.000000", "reserved_usd": "0.000000",
                   "remaining_usd": None, "hard_limit": False, "resets_at": "2024-03-01T00:00:00Z",
                   "alerts_sent": [], "alert_thresholds": [50, 80, 100], "forecast_usd": "0.000000"},
    }


def test_a_settled_month_reserves_nothing_and_an_overspent_soft_budget_has_nothing_left():
    tenant_id, _ = new_tenant()
    tenants.update_tenant(tenant_id, {"monthly_budget_usd": "0.01", "budget_alert_thresholds": [100, 50]})
    _, cost = settled(tenant_id, 20_000, input_tokens=2000, output_tokens=400)
    settle_usage()
    assert cost == 2000 * 3 + 400 * 15 == 12_000  # over the 10,000 micro-dollar budget (soft: admitted)
    period, _ = this_month()
    budget = usage.summary(profile(tenant_id), period)["budget"]
    assert (budget["spent_usd"], budget["reserved_usd"], budget["remaining_usd"]) == ("0.012000", "0.000000",
                                                                                      "0.000000")


def test_the_alerts_sent_this_month_are_listed_in_order():
    tenant_id, _ = new_tenant()
    tenants.update_tenant(tenant_id, {"monthly_budget_usd": "0.01", "budget_alert_thresholds": [100, 50, 80]})
    settled(tenant_id, 20_000, input_tokens=2000, output_tokens=400)  # 12,000: past every threshold
    settle_usage()
    period, _ = this_month()
    aggregate = UsagePeriod.get(tenant_pk(tenant_id), UsagePeriod.sk_for(period), consistent_read=True)
    _check_tenant(profile(tenant_id), aggregate, period, Notifier(), Report(period))  # the budget job's step
    assert usage.summary(profile(tenant_id), period)["budget"]["alerts_sent"] == [50, 80, 100]


# --- one month against another --------------------------------------------------------------------------------

NOV = "2026-11"
JUST_BEFORE = datetime(2026, 10, 31, 23, 59, 59, 999_000, tzinfo=timezone.utc)
FIRST_INSTANT = datetime(2026, 11, 1, tzinfo=timezone.utc)
LAST_INSTANT = datetime(2026, 11, 30, 23, 59, 59, 999_000, tzinfo=timezone.utc)
NEXT_MONTH = datetime(2026, 12, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def months():
    """A tenant with one call just before November, three in it (its first and last millisecond, one still in
    flight) and one at the first instant of December. Read only by the tests that use it.

    November's calls are admitted last: an admission drops the admission item's counters of earlier months."""
    tenant_id, _ = new_tenant()
    before, _ = settled(tenant_id, 900, now=JUST_BEFORE, input_tokens=1, output_tokens=1)
    after, _ = settled(tenant_id, 800, now=NEXT_MONTH, input_tokens=2, output_tokens=2)
    first, first_cost = settled(tenant_id, 5_000, now=FIRST_INSTANT, input_tokens=100, output_tokens=10)
    last, last_cost = settled(tenant_id, 6_000, now=LAST_INSTANT, model=HAIKU, input_tokens=7, output_tokens=3)
    reserve(tenant_id, 2_500, now=LAST_INSTANT + timedelta(microseconds=500))
    settle_usage()
    return {"tenant_id": tenant_id, "before": before, "first": first, "last": last, "after": after,
            "costs": (first_cost, last_cost)}


def test_a_past_months_summary_counts_only_that_month(months):
    first_cost, last_cost = months["costs"]
    assert (first_cost, last_cost) == (100 * 3 + 10 * 15, 7 * 1 + 3 * 5) == (450, 22)
    figures = usage.summary(profile(months["tenant_id"]), NOV)
    assert (figures["requests"], figures["input_tokens"], figures["output_tokens"]) == (2, 107, 13)
    assert figures["total_cost_usd"] == "0.000472"
    assert figures["by_feature"] == {"basic_chat": {"requests": 2, "input_tokens": 107, "output_tokens": 13,
                                                    "cost_usd": "0.000472"}}
    assert figures["budget"]["reserved_usd"] == "0.002500"  # November's call still in flight
    assert figures["budget"]["resets_at"] == "2026-12-01T00:00:00Z"


def test_a_months_events_are_its_own_newest_first(months):
    listed = usage.events(months["tenant_id"], NOV, None, None)
    assert listed["period"] == NOV and listed["next_cursor"] is None
    assert [e["request_id"] for e in listed["events"]] == [months["last"].request_id, months["first"].request_id]
    assert usage.events(months["tenant_id"], "2026-12", None, None)["events"][-1]["request_id"] == \
        months["after"].request_id
    assert [e["request_id"] for e in usage.events(months["tenant_id"], "2026-10", None, None)["events"]] == [
        months["before"].request_id]


def test_an_event_shows_every_recorded_field(months):
    newest = usage.events(months["tenant_id"], NOV, "1", None)["events"][0]
    assert newest == {
        "request_id": months["last"].request_id, "created_at": "2026-11-30T23:59:59Z", "feature": "basic_chat",
        "model": HAIKU, "status": "ok", "principal_id": "usr_test", "principal_type": "user", "input_tokens": 7,
        "output_tokens": 3, "cache_creation_tokens": 0, "cache_read_tokens": 0, "cost_usd": "0.000022",
        "latency_ms": 12, "key_source": "platform", "cost_bound_usd": None,
        "provider": None, "upstream_attempts": None}  # recorded by the ledger alone: no upstream route named


# --- the event list -----------------------------------------------------------------------------------------

def test_events_page_newest_first_with_a_cursor():
    tenant_id, _ = new_tenant()
    start = datetime.now(timezone.utc).replace(day=1, hour=1, minute=0, second=0, microsecond=0)
    ids = [settled(tenant_id, 1_000, now=start + timedelta(minutes=i), input_tokens=i + 1)[0].request_id
           for i in range(5)]
    period = start.strftime("%Y-%m")
    first = usage.events(tenant_id, period, "2", None)
    second = usage.events(tenant_id, period, "2", first["next_cursor"])
    third = usage.events(tenant_id, period, "2", second["next_cursor"])
    assert [e["request_id"] for e in first["events"] + second["events"] + third["events"]] == ids[::-1]
    assert [e["input_tokens"] for e in first["events"]] == [5, 4]
    assert third["next_cursor"] is None
    assert len(usage.events(tenant_id, period, None, None)["events"]) == 5


def test_an_unsure_calls_event_shows_its_cost_bound_and_no_charge():
    tenant_id, _ = new_tenant()
    settled(tenant_id, 9_001, status=ledger.INDETERMINATE)
    settled(tenant_id, 700, status=ledger.FAILED)
    period, _ = this_month()
    unsure, failed = sorted(usage.events(tenant_id, period, None, None)["events"], key=lambda e: e["status"],
                            reverse=True)
    assert (unsure["status"], unsure["cost_usd"], unsure["cost_bound_usd"], unsure["latency_ms"]) == (
        "indeterminate", "0.000000", "0.009001", 30)
    assert (failed["status"], failed["cost_usd"], failed["cost_bound_usd"]) == ("failed", "0.000000", None)


def test_the_page_size_is_1_to_100():
    tenant_id, _ = new_tenant()
    assert usage.events(tenant_id, None, "100", None)["events"] == []
    for limit in ("0", "101"):
        with pytest.raises(BadRequest) as refused:
            usage.events(tenant_id, None, limit, None)
        assert refused.value.code == "invalid_limit"
        assert "from 1 to 100" in str(refused.value)


def cursor_of(key):
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode().rstrip("=")


def test_a_cursor_must_point_at_an_event_of_the_readers_own_partition():
    tenant_id, _ = new_tenant()
    other_id, _ = new_tenant()
    pk = tenant_pk(tenant_id)
    for key in ({"pk": {"S": pk}, "sk": {"S": "PROFILE"}},
                {"pk": {"S": tenant_pk(other_id)}, "sk": {"S": "EVENT#req_000000000000"}}):
        with pytest.raises(BadRequest) as refused:
            usage.events(tenant_id, None, None, cursor_of(key))
        assert refused.value.code == "invalid_cursor"


# --- features -----------------------------------------------------------------------------------------------

def test_each_features_standing_counts_admissions_less_released_ones():
    tenant_id, _ = new_tenant()
    operators.set_plan(tenant_id, {"plan": "pro"})
    operators.set_limits(tenant_id, {"features": {"code_review": 2}})
    settled(tenant_id, 100, input_tokens=1)
    settled(tenant_id, 100, status=ledger.FAILED)  # gives its admission back
    settled(tenant_id, 100, status=ledger.INDETERMINATE)  # may have been billed: it counts
    settled(tenant_id, 100, feature="code_review", input_tokens=1)
    settled(tenant_id, 100, feature="code_review", input_tokens=1)
    settle_usage()
    period, resets_at = this_month()
    standing = usage.feature_standing(profile(tenant_id), period)
    assert standing == {"plan": "pro", "plan_version": 0, "period": period, "features": {
        "basic_chat": {"enabled": True, "required_plan": "free", "limit": 25_000, "used": 2, "remaining": 24_998,
                       "resets_at": resets_at},
        "code_review": {"enabled": True, "required_plan": "pro", "limit": 2, "used": 2, "remaining": 0,
                        "resets_at": resets_at},
        "document_analysis": {"enabled": True, "required_plan": "pro", "limit": 1_000, "used": 0, "remaining": 1_000,
                              "resets_at": resets_at},
        "custom_prompts": {"enabled": False, "required_plan": "enterprise", "limit": None, "used": 0,
                           "remaining": None, "resets_at": resets_at},
    }}


def test_a_past_months_standing_counts_that_month(months):
    standing = usage.feature_standing(profile(months["tenant_id"]), NOV)["features"]["basic_chat"]
    assert (standing["used"], standing["remaining"], standing["resets_at"]) == (3, 297, "2026-12-01T00:00:00Z")


# --- what a read costs ----------------------------------------------------------------------------------------

def three_calls_on_two_features():
    """A pro tenant's month: two chat calls and a code review, folded; (tenant id, this month)."""
    tenant_id, _ = new_tenant()
    operators.set_plan(tenant_id, {"plan": "pro"})
    for feature in ("basic_chat", "basic_chat", "code_review"):
        settled(tenant_id, 100, feature=feature, input_tokens=1)
    settle_usage()
    return tenant_id, this_month()[0]


def test_a_summary_is_a_query_of_the_months_counters_one_of_its_days_and_one_consistent_batch_read():
    tenant_id, period = three_calls_on_two_features()
    with DynamoCalls() as sent:
        usage.summary(profile(tenant_id), period)
    assert sent.names == ["GetItem", "Query", "BatchGetItem", "Query"]
    query = sent.answers[1]
    # The month's item, its two features', its one model's and its one principal's items; none of the events.
    assert query["Count"] == 5
    [batch] = sent.params[2]["RequestItems"].values()
    assert batch["ConsistentRead"] is True and len(batch["Keys"]) == 2
    assert sent.answers[3]["Count"] == 1  # today's counter, the only day with calls


def test_a_months_items_past_the_first_page_are_read(monkeypatch):
    """Past 1 MB DynamoDB answers a query in pages; here the month's query comes back two items a page, and
    the summary reads every page: the same figures as in one."""
    tenant_id, period = three_calls_on_two_features()
    now = datetime.now(timezone.utc)
    in_one_page = usage.summary(profile(tenant_id), period, now=now)
    connection, pages = UsagePeriod._get_connection(), []
    query = connection.query

    def two_items_a_page(*args, **kwargs):
        pages.append(query(*args, **{"limit": 2, **kwargs}))
        return pages[-1]

    monkeypatch.setattr(connection, "query", two_items_a_page)
    assert usage.summary(profile(tenant_id), period, now=now) == in_one_page
    assert [page["Count"] for page in pages[:3]] == [2, 2, 1]  # the month's item and four counters
    assert in_one_page["by_feature"]["code_review"]["requests"] == 1


def test_a_features_standing_reads_admission_consistently():
    tenant_id, _ = new_tenant()
    period, _ = this_month()
    with DynamoCalls() as sent:
        usage.feature_standing(profile(tenant_id), period)
    assert sent.names == ["GetItem", "BatchGetItem"]  # the plan in the same batch
    [batch] = sent.params[1]["RequestItems"].values()
    assert batch["ConsistentRead"] is True and len(batch["Keys"]) == 3


def test_a_tenant_without_an_admission_item_reads_nothing_reserved_or_used():
    """Tenants made before admission items existed have none until their first AI call creates it."""
    from chalicelib.models import Admission

    tenant_id, _ = new_tenant()
    Admission.get(tenant_pk(tenant_id), Admission.SK, consistent_read=True).delete()
    period, _ = this_month()
    assert usage.summary(profile(tenant_id), period)["budget"]["reserved_usd"] == "0.000000"
    assert usage.feature_standing(profile(tenant_id), period)["features"]["basic_chat"]["used"] == 0
