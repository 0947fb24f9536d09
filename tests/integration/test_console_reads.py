"""The reads the console shows, to the micro-dollar: a month by model, principal and day, the last 90 days,
refusals by reason, the operators' tenant list (sorted by spend, searched by slug) and the platform's month by
plan and model. Calls go through the real admission write, ledger event and usage aggregator on moto; expected
amounts come from the published prices (tests/published.py), never from our pricing code."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from chalicelib import operators, tenants
from chalicelib.errors import BadRequest, TooManyRequests
from chalicelib.metering import aggregator, ledger, platform, usage
from chalicelib.metering.refusals import counted
from chalicelib.models import UsageEvent, tenant_pk
from conftest import own_month, random_slug, settle_usage, stream_paused, table_of_its_own
from published import PUBLISHED
from test_metering_concurrency import reserve



@pytest.fixture(autouse=True)
def fresh_table():
    """Each test's items in a table of its own: the operators' indexes and the platform's items start empty."""
    with table_of_its_own():
        yield

SONNET, HAIKU = "claude-sonnet-4-6", "claude-haiku-4-5"


def cost(model, input_tokens, output_tokens):
    _, i, o, _, _, _ = PUBLISHED[model]
    total = input_tokens * Decimal(i) + output_tokens * Decimal(o)
    assert total == total.to_integral_value()
    return int(total)


def dollars(micros):
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def new_tenant(slug_prefix="cr", plan=None):
    slug = random_slug(slug_prefix)
    created = tenants.sign_up({"company_name": f"Console {slug}", "slug": slug, "email": f"o@{slug}.example.com",
                               "password": "console-password-1"})
    if plan:
        operators.set_plan(created["tenant_id"], {"plan": plan})
    operators.set_limits(created["tenant_id"], {"requests_per_minute": 100_000})
    return created["tenant_id"], slug


def call(tenant_id, model, input_tokens, output_tokens, principal="key_a", feature="basic_chat", now=None):
    """One answered call, recorded by the real ledger; returns its cost from the published prices."""
    price = cost(model, input_tokens, output_tokens)
    reservation = reserve(tenant_id, 1_000_000, now=now, feature=feature)
    ledger.record(reservation, ledger.Settlement(
        principal_id=principal, principal_type="api_key", model=model, input_tokens=input_tokens,
        output_tokens=output_tokens, cost_micros=price, latency_ms=5))
    return price


def row(requests, input_tokens, output_tokens, micros):
    return {"requests": requests, "input_tokens": input_tokens, "output_tokens": output_tokens,
            "cost_usd": dollars(micros)}


def test_a_month_by_model_and_by_principal_is_exact_and_adds_up_to_the_month():
    tenant_id, _ = new_tenant(plan="pro")
    a = call(tenant_id, SONNET, 1000, 200, principal="key_a")
    b = call(tenant_id, HAIKU, 3000, 100, principal="key_b")
    c = call(tenant_id, SONNET, 10, 20, principal="key_b", feature="code_review")
    settle_usage()
    assert (a, b, c) == (1000 * 3 + 200 * 15, 3000 * 1 + 100 * 5, 10 * 3 + 20 * 15) == (6000, 3500, 330)

    figures = usage.summary(tenants.get_tenant(tenant_id), None)

    assert figures["by_model"] == {HAIKU: row(1, 3000, 100, b), SONNET: row(2, 1010, 220, a + c)}
    assert figures["by_principal"] == {"key_a": {**row(1, 1000, 200, a), "principal_type": "api_key"},
                                       "key_b": {**row(2, 3010, 120, b + c), "principal_type": "api_key"}}
    today = datetime.now(timezone.utc).date().isoformat()
    assert [d for d in figures["by_day"] if d["requests"]] == [{"day": today, **row(3, 4010, 320, a + b + c)}]
    assert figures["total_cost_usd"] == dollars(9830)


def test_the_last_90_days_put_each_call_on_its_day_across_months():
    tenant_id, _ = new_tenant()
    today = date(2101, 3, 5)
    moments = {date(2101, 1, 2): (SONNET, 100, 10), date(2101, 2, 28): (HAIKU, 50, 50),
               date(2101, 3, 5): (SONNET, 7, 1), date(2100, 12, 1): (SONNET, 1000, 1000)}  # the last: day 95
    costs = {}
    for day, (model, i, o) in moments.items():
        costs[day] = call(tenant_id, model, i, o, now=datetime(day.year, day.month, day.day, 12, 10,
                                                                tzinfo=timezone.utc))
    settle_usage()

    daily = usage.daily(tenant_id, None, today=today)

    assert (daily["from"], daily["to"], len(daily["days"])) == ("2100-12-06", "2101-03-05", 90)
    busy = {d["day"]: d for d in daily["days"] if d["requests"]}
    assert busy == {"2101-01-02": {"day": "2101-01-02", **row(1, 100, 10, 100 * 3 + 10 * 15)},
                    "2101-02-28": {"day": "2101-02-28", **row(1, 50, 50, 50 * 1 + 50 * 5)},
                    "2101-03-05": {"day": "2101-03-05", **row(1, 7, 1, 7 * 3 + 1 * 15)}}
    assert usage.daily(tenant_id, "3", today=today)["days"][0]["day"] == "2101-03-03"


@pytest.mark.parametrize("days", ["0", "91", "x", "-1", "٣"])
def test_daily_refuses_a_count_of_days_outside_1_to_90(days):
    with pytest.raises(BadRequest) as refused:
        usage.daily("ten_whoever", days)
    assert refused.value.code == "invalid_days"


def test_the_forecast_extends_the_months_rate_to_its_end():
    start = datetime(2101, 4, 1, tzinfo=timezone.utc)  # a 30-day month
    assert usage.forecast_micros(1_000_000, "2101-04", start + timedelta(days=10)) == 3_000_000
    assert usage.forecast_micros(1_000_000, "2101-04", start + timedelta(days=15)) == 2_000_000
    assert usage.forecast_micros(999, "2101-04", start + timedelta(days=45)) == 999  # the month is over
    assert usage.forecast_micros(999, "2101-04", start - timedelta(days=1)) == 0
    # At the edges: the month's first instant has no rate yet; its first second (and less) counts as one.
    whole = 30 * 86_400
    assert usage.forecast_micros(999, "2101-04", start) == 0
    assert usage.forecast_micros(7, "2101-04", start + timedelta(seconds=1)) == 7 * whole
    assert usage.forecast_micros(7, "2101-04", start + timedelta(milliseconds=500)) == 7 * whole
    assert usage.forecast_micros(999, "2101-04", start + timedelta(days=30)) == 999  # its end


def test_refusals_are_counted_by_reason_and_other_errors_are_not():
    tenant_id, _ = new_tenant()
    counted(tenant_id, TooManyRequests("slow down", retry_after=1, code="rate_limited"))
    counted(tenant_id, TooManyRequests("slow down", retry_after=1, code="rate_limited"))
    counted(tenant_id, TooManyRequests("limit", retry_after=1, code="feature_limit_reached"))
    counted(tenant_id, BadRequest("bad field"))
    refusals = usage.summary(tenants.get_tenant(tenant_id), None)["refusals"]
    assert refusals == {"total": 3, "by_reason": {"tenant_suspended": 0, "feature_not_in_plan": 0,
                                                  "feature_limit_reached": 1, "rate_limited": 2,
                                                  "budget_exceeded": 0, "pool_share_exhausted": 0,
                                               "principal_limit_reached": 0, "principal_budget_exceeded": 0}}


def test_a_chunk_of_events_never_passes_a_transactions_100_items():
    tenant_id, _ = new_tenant()
    now = datetime(2102, 1, 1, 0, 10, tzinfo=timezone.utc)
    events = []
    for n in range(40):  # 40 calls, each on a day and by a principal of its own: 6 counter items each
        reservation = reserve(tenant_id, 1_000_000, now=now + timedelta(days=n))
        ledger.record(reservation, ledger.Settlement(principal_id=f"key_{n}", principal_type="api_key",
                                                     model=SONNET, input_tokens=1, cost_micros=3, latency_ms=1))
        events.append(reservation)
    settle_usage()
    stored = list(UsageEvent.query(tenant_pk(tenant_id), UsageEvent.sk.startswith("EVENT#")))
    chunks = aggregator.chunks(tenant_pk(tenant_id), "free", stored)
    assert sum(len(c) for c in chunks) == 40 and len(chunks) > 1
    for chunk in chunks:
        items = {(pk, sk) for e in chunk for _, pk, sk, _ in aggregator.counter_items(tenant_pk(tenant_id), "free", e)}
        periods = {e.period for e in chunk}
        assert len(chunk) + 1 + len(periods) + len(items) <= 100
    daily = usage.daily(tenant_id, "90", today=date(2102, 2, 15))
    assert sum(d["requests"] for d in daily["days"]) == 40  # every chunk was folded


def test_operators_list_tenants_by_spend_with_the_months_figures():
    small, _ = new_tenant("sp")
    big, _ = new_tenant("sp")
    idle, _ = new_tenant("sp")
    small_cost = call(small, HAIKU, 10, 10)
    big_cost = call(big, SONNET, 1000, 1000) + call(big, SONNET, 1, 1)
    counted(big, TooManyRequests("slow down", retry_after=1, code="rate_limited"))
    settle_usage()

    listed = operators.list_tenants(None, None, "spend", None, None)
    assert [(t["tenant_id"], t["month"]["spend_usd"], t["month"]["requests"], t["month"]["refusals"])
            for t in listed["tenants"]] == [(big, dollars(big_cost), 2, 1), (small, dollars(small_cost), 1, 0)]
    ascending = operators.list_tenants(None, None, "spend", "asc", None)["tenants"]
    assert [t["tenant_id"] for t in ascending] == [small, big]
    assert big_cost == 1000 * 3 + 1000 * 15 + 1 * 3 + 1 * 15 == 18_018 and small_cost == 10 * 1 + 10 * 5

    first = operators.list_tenants("1", None, "spend", None, None)
    second = operators.list_tenants("1", first["next_cursor"], "spend", None, None)
    assert [first["tenants"][0]["tenant_id"], second["tenants"][0]["tenant_id"]] == [big, small]
    newest = operators.list_tenants(None, None, None, None, None)["tenants"]
    assert {t["tenant_id"]: t["month"]["spend_usd"] for t in newest}[idle] == "0.000000"


def test_operators_search_tenants_by_the_start_of_their_slug():
    found, slug = new_tenant("findme")
    new_tenant("other")
    result = operators.list_tenants(None, None, None, None, slug[:9].upper())
    assert [t["tenant_id"] for t in result["tenants"]] == [found]
    assert operators.list_tenants(None, None, None, None, "zzzz-nobody")["tenants"] == []


@pytest.mark.parametrize("params,code", [((None, None, "name", None, None), "invalid_sort"),
                                         ((None, None, None, "up", None), "invalid_order"),
                                         ((None, None, None, None, "a b"), "invalid_search")])
def test_operators_list_refuses_an_unknown_sort_order_or_search(params, code):
    with pytest.raises(BadRequest) as refused:
        operators.list_tenants(*params)
    assert refused.value.code == code


def test_the_platforms_month_by_plan_and_model_is_the_sum_of_its_tenants():
    moment = datetime(2103, 5, 7, 9, 10, tzinfo=timezone.utc)
    pro, _ = new_tenant(plan="pro")
    free, _ = new_tenant()
    p1 = call(pro, SONNET, 100, 100, now=moment)
    p2 = call(pro, HAIKU, 100, 100, now=moment)
    f1 = call(free, SONNET, 10, 0, now=moment)
    settle_usage()

    month = platform.totals("2103-05")

    assert month == {
        "period": "2103-05",
        "totals": row(3, 210, 200, p1 + p2 + f1),
        "by_plan": {"free": row(1, 10, 0, f1), "pro": row(2, 200, 200, p1 + p2)},
        "by_model": {HAIKU: row(1, 100, 100, p2), SONNET: row(2, 110, 100, p1 + f1)},
    }
    assert (p1, p2, f1) == (100 * 3 + 100 * 15, 100 * 1 + 100 * 5, 10 * 3)


def test_a_call_whose_tenant_is_gone_when_it_is_folded_counts_under_an_unknown_plan():
    """Purged between its call and the fold: its spend still reaches the platform's month, under "unknown"."""
    from chalicelib.models import Tenant

    moment = own_month() + timedelta(days=3)
    tenant_id, _ = new_tenant(plan="pro")
    with stream_paused():  # the stream waits until the tenant is gone
        price = call(tenant_id, SONNET, 100, 10, now=moment)
        Tenant.get(tenant_pk(tenant_id), Tenant.SK).delete()
    settle_usage()

    month = platform.totals(moment.strftime("%Y-%m"))
    assert month["by_plan"] == {"unknown": row(1, 100, 10, price)}
    assert month["by_model"] == {SONNET: row(1, 100, 10, price)} and price == 100 * 3 + 10 * 15


def test_a_page_of_tenants_by_spend_reads_that_page_only_whatever_the_number_of_tenants():
    """150 tenants with spend this month (profiles and aggregates written directly: the read is under test);
    a page of 50 is one index Query returning 50 items and one BatchGetItem of 100 keys."""
    from dynamo_hooks import DynamoCalls

    from chalicelib.models import Tenant, UsagePeriod, spend_partition, spend_sort_key
    from chalicelib.periods import current_period, utcnow

    period = current_period()
    spends = {}
    for n in range(150):
        tenant_id = f"ten_{n:020x}"
        pk = tenant_pk(tenant_id)
        Tenant(pk, Tenant.SK, tenant_id=tenant_id, name=f"Scale {n}", slug=f"scale-{n}", plan="free",
               status="active", created_at=utcnow()).save()
        spends[tenant_id] = (n * 7919) % 1000 * 1000 + n  # distinct, in no creation order
        UsagePeriod(pk, UsagePeriod.sk_for(period), period=period, requests=n, cost_micros=spends[tenant_id],
                    gsi3pk=spend_partition(period), gsi3sk=spend_sort_key(spends[tenant_id], tenant_id)).save()

    with DynamoCalls() as sent:
        page = operators.list_tenants("50", None, "spend", None, None)

    assert sent.names == ["Query", "BatchGetItem"]
    assert sent.answers[0]["Count"] == 50
    [batch] = sent.params[1]["RequestItems"].values()
    assert len(batch["Keys"]) == 100
    biggest = sorted(spends, key=spends.get, reverse=True)[:50]
    assert [t["tenant_id"] for t in page["tenants"]] == biggest
    assert [t["month"]["spend_usd"] for t in page["tenants"]] == [dollars(spends[t]) for t in biggest]
