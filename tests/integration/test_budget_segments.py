"""The budget job's segments: every budgeted tenant is listed in one, and a run checks each segment in batches."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone

import boto3
import pytest

from chalicelib import tenants
from chalicelib.jobs.budget_check import (LEASE_SECONDS, SEGMENT_ATTEMPTS, IncompleteRun, Report, check_budgets,
                                          check_segment, crossed)
from chalicelib.models import (BUDGET_SEGMENTS, AlertClaim, Tenant, UsagePeriod, budget_segment, budget_segments,
                               tenant_pk)
from chalicelib.notify import Notifier
from chalicelib.store import THROTTLED
from chalicelib.table import BUDGET_INDEX
from conftest import ROOT, tessera_log
from dynamo_hooks import DynamoOutage
from dev.bench.budget_job import seed_tenants, tenant_ids
from dev.bench.probes import DynamoProbe

# The first module's helpers and fixtures (autouse ones included), imported by name so they apply here too.
from test_budget_job import alert_queue, alerts_for, budgeted_tenant, drain, fresh_table, module_table, sent_to


# --- segments ---------------------------------------------------------------------------------------------

MID_MONTH = datetime(2031, 5, 14, 12, tzinfo=timezone.utc)  # one period to check, not two
PERIOD = "2031-05"


@pytest.fixture
def own_table(module_table):
    """A table of the test's own: the job then sees only the tenants the test seeds."""
    with fresh_table() as name:
        yield name


class IndexOutage(DynamoOutage):
    """DynamoDB answering the budget index Query for some segments with a 500, at the client's edge:
    every time, or only the first `times` times."""

    def __init__(self, segments, times=None):
        super().__init__("Query")
        self.segments, self.times = set(segments), times

    def refuses(self, request):
        values = {v.get("S") for v in request.get("ExpressionAttributeValues", {}).values()}
        return (request.get("IndexName") == BUDGET_INDEX and bool(values & self.segments)
                and (self.times is None or self.refused < self.times))


def in_segments(count_per_segment, segments):
    prefix = f"ten_{secrets.token_hex(4)}"
    return {s: tenant_ids(count_per_segment, prefix=prefix, segment=s) for s in segments}


def test_budget_segment_is_the_same_in_every_process_and_spreads_tenants():
    ids = [f"ten_{n:05d}" for n in range(2_000)]
    counts = Counter(budget_segment(t) for t in ids)
    assert set(counts) == set(budget_segments()) and len(budget_segments()) == BUDGET_SEGMENTS
    assert min(counts.values()) > 2_000 / BUDGET_SEGMENTS / 2
    code = "import sys; from chalicelib.models import budget_segment; print(budget_segment(sys.argv[1]))"
    for seed in ("1", "2"):
        other = subprocess.run([sys.executable, "-c", code, "ten_00042"], cwd=ROOT, capture_output=True, text=True,
                               env={**os.environ, "PYTHONHASHSEED": seed}, check=True)
        assert other.stdout.strip() == budget_segment("ten_00042")


def test_setting_a_budget_lists_the_tenant_in_its_segment_and_removing_it_unlists_it():
    tenant_id = budgeted_tenant()
    segment = budget_segment(tenant_id)
    assert tenant_id in {t.tenant_id for t in Tenant.with_budget.query(segment)}
    tenants.update_tenant(tenant_id, {"monthly_budget_usd": None})
    assert tenant_id not in {t.tenant_id for t in Tenant.with_budget.query(segment)}
    assert Tenant.get(tenant_pk(tenant_id), Tenant.SK).gsi2pk is None


def test_more_than_100_tenants_of_a_segment_are_all_checked_100_per_batch(own_table, alert_queue):
    crowded = budget_segments()[3]
    ids = tenant_ids(200, prefix=f"ten_{secrets.token_hex(4)}", segment=crowded)  # exactly two full batches
    ids += [t for t in tenant_ids(80, prefix=f"ten_{secrets.token_hex(4)}") if budget_segment(t) != crowded][:50]
    alerting = set(ids[::5])
    seed_tenants(ids, PERIOD, lambda i: 600_000 if ids[i] in alerting else 300_000, budget_micros=1_000_000,
                 thresholds=(50,), owners=False)
    drain(alert_queue)
    with DynamoProbe() as probe:
        report = check_budgets(now=MID_MONTH)
    assert report.tenants_checked == 250 and report.segments_failed == []
    assert {a["tenant_id"] for a in report.alerts_sent} == alerting and len(report.alerts_sent) == len(alerting)
    per_segment = Counter(budget_segment(t) for t in ids)
    assert probe.calls["BatchGetItem"] == sum(-(-n // 100) for n in per_segment.values())
    assert probe.calls["Query"] == BUDGET_SEGMENTS + len(alerting)  # one index page per segment, owners per alert
    assert "Scan" not in probe.calls
    messages = drain(alert_queue)
    assert sorted(t for t in ids if alerts_for(messages, t) == [50]) == sorted(alerting)


def test_checking_a_segment_again_sends_no_alert_twice(own_table, alert_queue):
    segment = budget_segments()[0]
    ids = tenant_ids(3, prefix=f"ten_{secrets.token_hex(4)}", segment=segment)
    seed_tenants(ids, PERIOD, lambda i: 850_000, budget_micros=1_000_000, owners=False)
    drain(alert_queue)
    first, again = Report(PERIOD), Report(PERIOD)
    assert check_segment(segment, [PERIOD], Notifier(), first) == 3
    assert check_segment(segment, [PERIOD], Notifier(), again) == 3
    assert sorted((a["tenant_id"], a["threshold"]) for a in first.alerts_sent) == sorted(
        (t, threshold) for t in ids for threshold in (50, 80))
    assert again.alerts_sent == []
    messages = drain(alert_queue)
    assert all(alerts_for(messages, t) == [50, 80] for t in ids)


def test_a_failing_segment_does_not_stop_the_others_and_is_checked_by_the_next_run(own_table, alert_queue):
    broken, *healthy = budget_segments()[:3]
    ids = in_segments(2, [broken, *healthy])
    everyone = [t for s in ids for t in ids[s]]
    seed_tenants(everyone, PERIOD, lambda i: 600_000, budget_micros=1_000_000, thresholds=(50,), owners=False)
    drain(alert_queue)
    with IndexOutage([broken]) as outage:
        report = check_budgets(now=MID_MONTH)
    assert outage.refused == SEGMENT_ATTEMPTS
    assert report.segments_failed == [broken]
    assert {a["tenant_id"] for a in report.alerts_sent} == {t for s in healthy for t in ids[s]}
    with pytest.raises(IncompleteRun):
        report.raise_if_incomplete()
    later = check_budgets(now=MID_MONTH)
    assert later.segments_failed == []
    assert {a["tenant_id"] for a in later.alerts_sent} == set(ids[broken])
    messages = drain(alert_queue)
    assert all(alerts_for(messages, t) == [50] for t in everyone)


def test_a_segment_that_fails_once_is_retried_within_the_run(own_table, alert_queue):
    segment = budget_segments()[5]
    ids = tenant_ids(2, prefix=f"ten_{secrets.token_hex(4)}", segment=segment)
    seed_tenants(ids, PERIOD, lambda i: 600_000, budget_micros=1_000_000, thresholds=(50,), owners=False)
    with IndexOutage([segment], times=1) as outage:
        report = check_budgets(now=MID_MONTH)
    assert outage.refused == 1
    assert report.segments_failed == [] and report.tenants_checked == 2
    assert sorted(a["tenant_id"] for a in report.alerts_sent) == sorted(ids)


def test_the_scheduled_run_fails_its_invocation_while_a_segment_fails():
    from chalice.test import Client

    from app import app

    broken = budget_segments()[7]
    with Client(app, stage_name="local") as client:
        event = client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [])
        summary = client.lambda_.invoke("budget_check", event).payload
        assert summary["segments"] == BUDGET_SEGMENTS and summary["segments_failed"] == []
        with IndexOutage([broken]), pytest.raises(IncompleteRun, match=broken):
            client.lambda_.invoke("budget_check", event)


# --- exact counts, claims, leases and what the job logs --------------------------------------------------------

def seeded(segment=None, spent=600_000, budget=1_000_000, thresholds=(50,), owners=False, count=1):
    ids = tenant_ids(count, prefix=f"ten_{secrets.token_hex(4)}", segment=segment)
    seed_tenants(ids, PERIOD, lambda i: spent, budget_micros=budget, thresholds=thresholds, owners=owners)
    return ids


def lines(caplog, message):
    return [r for r in caplog.records if r.getMessage() == message]


def claim_of(tenant_id, threshold, period=PERIOD):
    return AlertClaim.get(tenant_pk(tenant_id), AlertClaim.sk_for(period, threshold), consistent_read=True)


def dead_notifier():
    """SNS and SES behind a port nothing listens on: every publish and email fails at the network edge."""
    from botocore.config import Config
    from conftest import stack

    options = dict(region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{stack.free_port()}",
                   config=Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 1, "mode": "standard"}))
    return Notifier(ses=boto3.client("ses", **options), sns=boto3.client("sns", **options))


def test_an_empty_report_summarises_to_zeros_and_an_incomplete_one_names_its_failed_segments():
    assert Report("2031-05").summary() == {"period": "2031-05", "segments": 0, "tenants_checked": 0,
                                           "alerts_sent": 0, "alerts_skipped": 0, "segments_failed": []}
    assert Report("2031-05").raise_if_incomplete() is None
    with pytest.raises(IncompleteRun) as caught:
        Report("2031-05", segments_failed=["BUDGETED#1", "BUDGETED#4"]).raise_if_incomplete()
    assert str(caught.value) == "Budget segments failed after 8 attempts: BUDGETED#1, BUDGETED#4."


def test_the_run_summary_counts_segments_tenants_alerts_and_skips(own_table, alert_queue):
    alerting = seeded(count=2)
    quiet = seeded(spent=100_000)
    held = seeded()
    live = AlertClaim(tenant_pk(held[0]), AlertClaim.sk_for(PERIOD, 50), period=PERIOD, threshold=50,
                      status="sending", lease_until=int(time.time()) + LEASE_SECONDS, claimed_at=datetime.now(timezone.utc))
    live.save()
    report = check_budgets(now=MID_MONTH)
    assert report.summary() == {"period": PERIOD, "segments": BUDGET_SEGMENTS, "tenants_checked": 4,
                                "alerts_sent": 2, "alerts_skipped": 1, "segments_failed": []}
    assert sorted(a["tenant_id"] for a in report.alerts_sent) == sorted(alerting) and quiet[0] not in str(report.alerts_sent)
    again = check_budgets(now=MID_MONTH)
    assert (again.tenants_checked, again.alerts_sent, again.alerts_skipped) == (4, [], 1)


def test_a_threshold_already_marked_sent_costs_no_write_and_no_skip(own_table, alert_queue):
    [tenant_id] = seeded(spent=900_000, thresholds=(50, 80))
    first = check_budgets(now=MID_MONTH)
    assert sent_to(first, tenant_id) == [50, 80] and first.alerts_skipped == 0
    for threshold in (50, 80):
        claim = claim_of(tenant_id, threshold)
        assert claim.status == "sent" and claim.sent_at is not None
    assert sorted(int(t) for t in UsagePeriod.get(tenant_pk(tenant_id), UsagePeriod.sk_for(PERIOD)).alerts_sent) == [
        50, 80]
    with DynamoProbe() as probe:
        again = check_budgets(now=MID_MONTH)
    assert (again.alerts_sent, again.alerts_skipped) == ([], 0)
    assert not {"PutItem", "TransactWriteItems", "UpdateItem"} & set(probe.calls)


def test_a_tenant_without_spend_this_month_is_not_alerted_however_small_its_budget(own_table, alert_queue):
    [tenant_id] = seeded(spent=0, budget=1, thresholds=(100,))
    assert crossed(1, 1, [100]) == [100] and crossed(1, 100, [1]) == [1]
    report = check_budgets(now=MID_MONTH)
    assert report.tenants_checked == 1 and report.alerts_sent == []


def test_a_tenant_without_thresholds_of_its_own_is_alerted_at_50_80_and_100(own_table, alert_queue):
    [tenant_id] = seeded(spent=1_000_000, thresholds=())
    assert Tenant.get(tenant_pk(tenant_id), Tenant.SK).budget_alert_thresholds is None
    assert sent_to(check_budgets(now=MID_MONTH), tenant_id) == [50, 80, 100]


def test_the_month_before_is_checked_for_two_hours_into_a_month_and_no_longer():
    from chalicelib.jobs.budget_check import periods_to_check

    assert periods_to_check(datetime(2031, 2, 1, 1, 59, 59, tzinfo=timezone.utc)) == ["2031-01", "2031-02"]
    assert periods_to_check(datetime(2031, 2, 1, 2, 0, 0, tzinfo=timezone.utc)) == ["2031-02"]
    assert periods_to_check(datetime(2031, 2, 2, 1, 0, 0, tzinfo=timezone.utc)) == ["2031-02"]
    assert periods_to_check(datetime(2031, 1, 31, 23, 0, 0, tzinfo=timezone.utc)) == ["2031-01"]


def test_a_claim_holds_its_lease_for_ten_minutes_then_may_be_taken_over(own_table):
    from chalicelib.jobs.budget_check import _claim, _mark_sent

    [tenant_id] = seeded()
    claim = _claim(tenant_id, PERIOD, 50, 1_000_000.7)
    stored = claim_of(tenant_id, 50)
    assert (stored.status, int(stored.lease_until), stored.period, int(stored.threshold)) == (
        "sending", 1_000_600, PERIOD, 50)
    assert _claim(tenant_id, PERIOD, 50, 1_000_600.9) is None  # held through its last second
    taken = _claim(tenant_id, PERIOD, 50, 1_000_601.0)
    assert taken is not None and int(claim_of(tenant_id, 50).lease_until) == 1_001_201
    _mark_sent(taken, tenant_id, PERIOD, 50)
    assert claim_of(tenant_id, 50).status == "sent"
    assert _claim(tenant_id, PERIOD, 50, 9_000_000_000.0) is None  # a sent alert is never claimed again
    assert claim is not None


def test_an_alert_that_fails_to_send_is_logged_and_left_to_a_later_run(own_table, caplog):
    [tenant_id] = seeded()
    with tessera_log(caplog):
        report = check_budgets(now=MID_MONTH, notifier=dead_notifier())
    assert report.alerts_sent == [] and report.alerts_skipped == 0
    [line] = lines(caplog, "budget alert failed")
    assert (line.logger, line.levelname) == ("tessera.budget-check", "ERROR")
    assert (line.tenant_id, line.period, line.threshold) == (tenant_id, PERIOD, 50) and line.error
    assert claim_of(tenant_id, 50).status == "sending"
    assert UsagePeriod.get(tenant_pk(tenant_id), UsagePeriod.sk_for(PERIOD)).alerts_sent is None


def test_an_alert_sent_but_not_marked_is_reported_as_sent_and_logged(own_table, alert_queue, caplog):
    [tenant_id] = seeded()
    drain(alert_queue)
    with tessera_log(caplog), DynamoOutage("TransactWriteItems"):
        report = check_budgets(now=MID_MONTH)
    assert report.alerts_sent == [{"tenant_id": tenant_id, "period": PERIOD, "threshold": 50}]
    assert alerts_for(drain(alert_queue), tenant_id) == [50]
    [line] = lines(caplog, "budget alert not marked sent")
    assert (line.logger, line.levelname) == ("tessera.budget-check", "ERROR")
    assert (line.tenant_id, line.period, line.threshold) == (tenant_id, PERIOD, 50) and line.error
    assert lines(caplog, "budget alert sent") == []
    assert claim_of(tenant_id, 50).status == "sending"


def test_a_sent_alert_is_logged_once_with_its_tenant_period_and_threshold(own_table, alert_queue, caplog):
    [tenant_id] = seeded()
    drain(alert_queue)
    with tessera_log(caplog):
        check_budgets(now=MID_MONTH)
    [line] = lines(caplog, "budget alert sent")
    assert (line.logger, line.levelname) == ("tessera.budget-check", "INFO")
    assert (line.tenant_id, line.period, line.threshold) == (tenant_id, PERIOD, 50)
    [message] = drain(alert_queue)
    attributes = {k: v["Value"] for k, v in message["MessageAttributes"].items()}
    assert attributes == {"tenant_id": tenant_id, "threshold": "50", "spent_usd": "0.600000",
                          "budget_usd": "1.000000", "period": PERIOD}


class TimedOutage(IndexOutage):
    """The index outage, noting when each refused attempt came."""

    def __init__(self, segments):
        super().__init__(segments)
        self.at = []

    def _before(self, params, **kwargs):
        answer = super()._before(params, **kwargs)
        if answer is not None:
            self.at.append(time.monotonic())
        return answer


def test_a_failing_segment_is_retried_with_the_throttling_backoff_and_logged_each_time(own_table, caplog):
    broken, healthy = budget_segments()[9], budget_segments()[10]
    seeded(segment=broken)
    seeded(segment=healthy, count=2)
    with tessera_log(caplog), TimedOutage([broken]) as outage:
        report = check_budgets(now=MID_MONTH)
        ended = time.monotonic()
    assert report.segments_failed == [broken] and report.tenants_checked == 2 and len(report.alerts_sent) == 2
    assert len(outage.at) == SEGMENT_ATTEMPTS == THROTTLED.attempts == 8
    gaps = [b - a for a, b in zip(outage.at, outage.at[1:])]
    # each pause under THROTTLED's bound (50 ms doubling to 3.2 s), plus the refused Query itself
    assert all(gap < bound + 0.5 for gap, bound in zip(gaps, (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2))), gaps
    assert ended - outage.at[-1] < 1.0  # no pause after the last attempt
    failed = lines(caplog, "budget segment failed")
    assert [(r.segment, r.attempt) for r in failed] == [(broken, n) for n in range(1, 9)]
    assert all(r.logger == "tessera.budget-check" and r.levelname == "ERROR" and r.error for r in failed)


def test_segments_are_checked_on_the_jobs_own_threads_as_many_at_once_as_asked(own_table):
    import threading

    for segment in budget_segments()[:8]:
        seeded(segment=segment)
    names = []
    sns = boto3.client("sns")
    sns.meta.events.register("before-call.sns.Publish", lambda **kwargs: names.append(threading.current_thread().name))
    report = check_budgets(now=MID_MONTH, notifier=Notifier(sns=sns), workers=1)
    assert len(report.alerts_sent) == 8 and len(names) == 8
    assert set(names) == {"budget-segment_0"}


def test_owners_and_only_owners_are_emailed_the_alert(own_table):
    import urllib.request

    from chalicelib.models import User

    [tenant_id] = seeded(owners=True)
    pk, now = tenant_pk(tenant_id), datetime.now(timezone.utc)
    owners = [f"owner@{tenant_id[-12:]}.example.com", f"second-owner@{tenant_id[-12:]}.example.com"]
    for role, email in (("owner", owners[1]), ("member", f"member@{tenant_id[-12:]}.example.com"),
                        ("admin", f"admin@{tenant_id[-12:]}.example.com")):
        User(pk, User.sk_for(f"usr_{role}{tenant_id[-8:]}"), user_id=f"usr_{role}{tenant_id[-8:]}", email=email,
             password_hash="not-a-login", role=role, created_at=now).save()
    check_budgets(now=MID_MONTH)
    with urllib.request.urlopen(os.environ["AWS_ENDPOINT_URL"] + "/moto-api/data.json") as response:
        messages = json.load(response)["ses"]["Message"]
    mine = [m for m in messages if any(tenant_id[-12:] in a for a in m["destinations"]["ToAddresses"])]
    assert len(mine) == 1 and sorted(mine[0]["destinations"]["ToAddresses"]) == sorted(owners)
    assert "50%" in mine[0]["subject"]


def test_a_claim_that_fails_for_another_reason_than_its_condition_is_raised_not_skipped(own_table):
    from pynamodb.exceptions import PutError

    from chalicelib.jobs.budget_check import _claim

    [tenant_id] = seeded()
    with DynamoOutage("PutItem"), pytest.raises(PutError):
        _claim(tenant_id, PERIOD, 50, time.time())
    with pytest.raises(AlertClaim.DoesNotExist):
        claim_of(tenant_id, 50)
