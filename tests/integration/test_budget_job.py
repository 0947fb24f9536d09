"""The scheduled budget check against moto: one alert per tenant, threshold and month,
however often or concurrently it runs, with reads that do not grow with usage events;
segments checked in parallel, each on its own, retried when it fails, none stopping the others."""
from __future__ import annotations

import json
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import boto3
import pytest

from dev.bench.budget_job import seed_tenants, tenant_ids
from chalicelib import tenants
from chalicelib import operators
from chalicelib.jobs.budget_check import LEASE_SECONDS, check_budgets, crossed
from chalicelib.models import AlertClaim, UsagePeriod, tenant_pk
from chalicelib.notify import Notifier
from chalicelib.periods import current_period
from conftest import random_slug, record_spend, table_of_its_own
from dev.bench.probes import DynamoProbe

READS = {"Query", "GetItem", "BatchGetItem", "Scan"}


def fresh_table():
    return table_of_its_own("tessera-budget")


@pytest.fixture(scope="module", autouse=True)
def module_table(environment):
    """The module's own table: moto's Query walks the whole table and serves one request at a time, and a
    run queries 16 segments on 16 threads, so on the session's big shared table runs would queue past the
    client's 5 s timeout."""
    with fresh_table() as name:
        yield name


@pytest.fixture(scope="module")
def alert_queue(environment):
    """A queue of the module's own on the alert topic, taken off it afterwards: moto delivers a topic's
    messages to its first 100 subscriptions only, so queues left subscribed by earlier modules (or by the
    mutation runner's hundreds of rounds) would leave a later one's empty."""
    sqs, sns = boto3.client("sqs"), boto3.client("sns")
    queue_url = sqs.create_queue(QueueName=f"alerts-{random_slug('q')}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    subscription = sns.subscribe(TopicArn=os.environ["TESSERA_ALERT_TOPIC_ARN"], Protocol="sqs",
                                 Endpoint=queue_arn, ReturnSubscriptionArn=True)["SubscriptionArn"]
    yield queue_url
    sns.unsubscribe(SubscriptionArn=subscription)
    sqs.delete_queue(QueueUrl=queue_url)


def drain(queue_url):
    sqs, messages = boto3.client("sqs"), []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not batch:
            return messages
        for m in batch:
            messages.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])


def alerts_for(messages, tenant_id):
    return sorted(int(m["MessageAttributes"]["threshold"]["Value"]) for m in messages
                  if m["MessageAttributes"]["tenant_id"]["Value"] == tenant_id)


def budgeted_tenant(budget_usd="1.00", thresholds=(50, 80, 100)):
    slug = random_slug("b")
    created = tenants.sign_up({"company_name": "Budget Co", "slug": slug, "email": f"owner@{slug}.example.com",
                               "password": "budget-password-1"})
    tenant_id = created["tenant_id"]
    tenants.update_tenant(tenant_id, {"monthly_budget_usd": budget_usd, "budget_alert_thresholds": list(thresholds)})
    operators.set_limits(tenant_id, {"requests_per_minute": 100_000})
    return tenant_id


spend = record_spend


def test_crossed_thresholds_are_whole_percentages_of_the_budget():
    assert crossed(500_000, 1_000_000, [50, 80, 100]) == [50]
    assert crossed(499_999, 1_000_000, [50, 80, 100]) == []
    assert crossed(1_000_000, 1_000_000, [100, 50]) == [50, 100]
    assert crossed(0, 0, [50]) == []


def test_alerts_once_per_threshold_crossed(alert_queue):
    tenant_id = budgeted_tenant()
    spend(tenant_id, 850_000)
    drain(alert_queue)
    first = check_budgets()
    assert sorted(a["threshold"] for a in first.alerts_sent if a["tenant_id"] == tenant_id) == [50, 80]
    second = check_budgets()
    assert not [a for a in second.alerts_sent if a["tenant_id"] == tenant_id]
    assert alerts_for(drain(alert_queue), tenant_id) == [50, 80]
    aggregate = UsagePeriod.get(tenant_pk(tenant_id), UsagePeriod.sk_for(current_period()))
    assert sorted(int(t) for t in aggregate.alerts_sent) == [50, 80]


def test_alert_carries_tenant_threshold_spent_and_budget(alert_queue):
    tenant_id = budgeted_tenant(budget_usd="2")
    spend(tenant_id, 1_000_000)
    drain(alert_queue)
    check_budgets()
    [message] = [m for m in drain(alert_queue) if m["MessageAttributes"]["tenant_id"]["Value"] == tenant_id]
    attributes = {k: v["Value"] for k, v in message["MessageAttributes"].items()}
    assert attributes["threshold"] == "50"
    assert attributes["spent_usd"] == "1.000000" and attributes["budget_usd"] == "2.000000"


def test_concurrent_runs_send_exactly_one_alert_per_threshold(alert_queue):
    tenant_id = budgeted_tenant()
    spend(tenant_id, 1_000_000)
    drain(alert_queue)
    with ThreadPoolExecutor(max_workers=4) as pool:
        reports = list(pool.map(lambda _: check_budgets(), range(4)))
    sent = [a["threshold"] for r in reports for a in r.alerts_sent if a["tenant_id"] == tenant_id]
    assert sorted(sent) == [50, 80, 100]
    assert alerts_for(drain(alert_queue), tenant_id) == [50, 80, 100]


def test_a_run_that_died_after_claiming_is_completed_once_the_lease_expires(alert_queue):
    tenant_id = budgeted_tenant(thresholds=(50,))
    spend(tenant_id, 600_000)
    period = current_period()
    stale = AlertClaim(tenant_pk(tenant_id), AlertClaim.sk_for(period, 50), period=period, threshold=50,
                       status="sending", lease_until=0, claimed_at=datetime.now(timezone.utc))
    stale.save()
    drain(alert_queue)
    check_budgets()
    assert alerts_for(drain(alert_queue), tenant_id) == [50]


def test_a_live_claim_of_another_run_is_left_alone(alert_queue):
    tenant_id = budgeted_tenant(thresholds=(50,))
    spend(tenant_id, 600_000)
    period = current_period()
    live = AlertClaim(tenant_pk(tenant_id), AlertClaim.sk_for(period, 50), period=period, threshold=50,
                      status="sending", lease_until=int(datetime.now(timezone.utc).timestamp()) + LEASE_SECONDS,
                      claimed_at=datetime.now(timezone.utc))
    live.save()
    drain(alert_queue)
    report = check_budgets()
    assert not [a for a in report.alerts_sent if a["tenant_id"] == tenant_id]
    assert alerts_for(drain(alert_queue), tenant_id) == []


def test_a_new_month_starts_from_zero_without_resetting_the_old_one(alert_queue):
    tenant_id = budgeted_tenant()
    spend(tenant_id, 900_000)
    check_budgets()
    drain(alert_queue)
    next_month = datetime.now(timezone.utc).replace(day=28) + timedelta(days=5)
    report = check_budgets(now=next_month)
    assert not [a for a in report.alerts_sent if a["tenant_id"] == tenant_id]
    old = UsagePeriod.get(tenant_pk(tenant_id), UsagePeriod.sk_for(current_period()))
    assert int(old.cost_micros) == 900_000


def test_job_reads_do_not_grow_with_usage_events():
    tenant_ids = [budgeted_tenant(budget_usd="1000000") for _ in range(3)]
    for tenant_id in tenant_ids:
        spend(tenant_id, 1, calls=2)
    with DynamoProbe(this_thread=True) as probe:
        check_budgets()
    reads_small = sum(n for op, n in probe.calls.items() if op in READS)
    for tenant_id in tenant_ids:
        spend(tenant_id, 1, calls=20)
    with DynamoProbe(this_thread=True) as probe:
        check_budgets()
    reads_large = sum(n for op, n in probe.calls.items() if op in READS)
    assert reads_small == reads_large
    assert "Scan" not in probe.calls


def test_owners_are_emailed_through_ses(alert_queue):
    ses = boto3.client("ses")
    before = ses.get_send_quota()["SentLast24Hours"]
    tenant_id = budgeted_tenant(thresholds=(50,))
    after_signup = ses.get_send_quota()["SentLast24Hours"]
    spend(tenant_id, 600_000)
    check_budgets()
    assert after_signup == before + 1
    assert ses.get_send_quota()["SentLast24Hours"] == after_signup + 1


def test_spend_after_a_months_last_run_is_alerted_by_the_first_run_of_the_next(alert_queue):
    tenant_id = budgeted_tenant(thresholds=(50,))
    last_run = datetime(2031, 1, 31, 23, 5, tzinfo=timezone.utc)
    check_budgets(now=last_run)
    spend(tenant_id, 600_000, now=datetime(2031, 1, 31, 23, 40, tzinfo=timezone.utc))
    drain(alert_queue)
    report = check_budgets(now=datetime(2031, 2, 1, 0, 5, tzinfo=timezone.utc))
    assert [a for a in report.alerts_sent if a["tenant_id"] == tenant_id] == [
        {"tenant_id": tenant_id, "period": "2031-01", "threshold": 50}]
    assert alerts_for(drain(alert_queue), tenant_id) == [50]
    later = check_budgets(now=datetime(2031, 2, 1, 1, 5, tzinfo=timezone.utc))
    assert not [a for a in later.alerts_sent if a["tenant_id"] == tenant_id]


# --- a tenant's own thresholds and what the alert says ------------------------------------------------------

def set_spend(tenant_id, micros, period=None):
    """The month's spend as the ledger leaves it in the aggregate (the job only reads it)."""
    period = period or current_period()
    UsagePeriod(tenant_pk(tenant_id), UsagePeriod.sk_for(period)).update(
        actions=[UsagePeriod.cost_micros.set(micros), UsagePeriod.period.set(period)])


def sent_to(report, tenant_id):
    return sorted(a["threshold"] for a in report.alerts_sent if a["tenant_id"] == tenant_id)


def test_a_tenants_own_thresholds_decide_its_alerts(alert_queue):
    tenant_id = budgeted_tenant(budget_usd="1", thresholds=(10, 90))
    drain(alert_queue)
    set_spend(tenant_id, 500_000)
    assert sent_to(check_budgets(), tenant_id) == [10]
    set_spend(tenant_id, 899_999)
    assert sent_to(check_budgets(), tenant_id) == []
    set_spend(tenant_id, 1_000_000)
    assert sent_to(check_budgets(), tenant_id) == [90]
    assert alerts_for(drain(alert_queue), tenant_id) == [10, 90]


def test_alert_subject_is_one_ascii_line_and_the_message_names_the_tenant(alert_queue):
    name = "Café Ünïcode GmbH\nZweite Zeile 東京 " + "x" * 90
    [tenant_id] = tenant_ids(1, prefix=f"ten_{secrets.token_hex(4)}")
    seed_tenants([tenant_id], current_period(), lambda i: 800_000, budget_micros=1_000_000, thresholds=(80,),
                 name=lambda i: name)
    drain(alert_queue)
    check_budgets()
    [message] = [m for m in drain(alert_queue) if m["MessageAttributes"]["tenant_id"]["Value"] == tenant_id]
    subject = message["Subject"]
    assert subject.isascii() and subject.isprintable() and len(subject) <= 99
    assert "80%" in subject and "Caf" not in subject
    assert name in message["Message"]


def test_publishing_refuses_a_subject_sns_would_reject():
    for subject in ("Budget for Café", "two\nlines", "x" * 100):
        with pytest.raises(ValueError):
            Notifier().publish(subject, "body", {})
