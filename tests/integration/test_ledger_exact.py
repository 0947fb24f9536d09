"""The usage ledger, exactly: one event per reservation with every attribute as the call left it, the right
status and charge for each outcome, the event's expiry, the cost bound of a call that may have been billed,
and where own-key and platform-pool spend end up. Real PynamoDB models on the moto server; money is computed
here from the published per-million prices (tests/published.py), never by the code under test."""
from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pynamodb.exceptions import PutError

from chalicelib import tenants
from chalicelib.ids import new_request_id
from chalicelib.logs import powertools_logger
from chalicelib.metering import admission, ledger
from chalicelib.models import UsageEvent, UsagePeriod, tenant_pk
from conftest import random_slug, settle_usage
from published import PUBLISHED

SONNET = "claude-sonnet-4-6"
HAIKU = "claude-haiku-4-5"
RETENTION = timedelta(days=400)  # TESSERA_USAGE_RETENTION_DAYS' default, which the tests run with


def published_micros(model, input_tokens=0, output_tokens=0, cache_write=0, cache_read=0):
    """A call's cost in whole micro-dollars, rounded up, from the published USD-per-million prices:
    USD per million tokens is micro-dollars per token."""
    _, inp, out, write, read, _ = PUBLISHED[model]
    exact = (input_tokens * Decimal(inp) + output_tokens * Decimal(out) + cache_write * Decimal(write)
             + cache_read * Decimal(read))
    return int(exact.to_integral_value(rounding="ROUND_CEILING"))


def new_tenant():
    slug = random_slug("l")
    created = tenants.sign_up({"company_name": "Ledger Co", "slug": slug, "email": f"o@{slug}.example.com",
                               "password": "ledger-password-1"})
    return created["tenant_id"]


def reserve(tenant_id, worst, now=None, feature="basic_chat"):
    reservation, _ = admission.reserve(
        tenant_id, new_request_id(now.timestamp() if now else None), feature, worst, None, admission.Returns(),
        load_view=lambda: admission.load_view(tenant_id), load_returns=lambda: admission.load_returns(tenant_id),
        now=now)
    return reservation


def stored(reservation):
    return UsageEvent.get(tenant_pk(reservation.tenant_id), UsageEvent.sk_for(reservation.request_id),
                          consistent_read=True)


def attributes(event):
    return {name: getattr(event, name) for name in (
        "request_id", "principal_id", "principal_type", "feature", "model", "status", "period", "bucket",
        "input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens", "cost_micros",
        "worst_case_micros", "cost_bound_micros", "latency_ms", "key_source", "upstream_request_id",
        "created_at", "expires_at")}


def month(tenant_id, period):
    settle_usage()
    return UsagePeriod.get(tenant_pk(tenant_id), UsagePeriod.sk_for(period), consistent_read=True)


MOMENT = datetime(2026, 11, 17, 9, 41, 23, tzinfo=timezone.utc)
MOMENT_BUCKET = int(MOMENT.timestamp()) // 600


# --- settle: the answered call ------------------------------------------------------------------------------

def test_a_settled_call_is_one_event_with_every_attribute_as_given():
    tenant_id = new_tenant()
    cost = published_micros(SONNET, 1_200, 350, 64, 512)
    assert cost == 3_600 + 5_250 + 240 + 154  # 153.6 micro-dollars of cache reads round up
    reservation = reserve(tenant_id, 40_000, now=MOMENT)
    recorded = ledger.record(reservation, ledger.Settlement(
        "usr_alice", "user", SONNET, input_tokens=1_200, output_tokens=350, cache_creation_tokens=64,
        cache_read_tokens=512, cost_micros=cost, latency_ms=812, upstream_request_id="req_upstream_1"))
    assert recorded is True
    assert attributes(stored(reservation)) == {
        "request_id": reservation.request_id, "principal_id": "usr_alice", "principal_type": "user",
        "feature": "basic_chat", "model": SONNET, "status": "ok", "period": "2026-11", "bucket": MOMENT_BUCKET,
        "input_tokens": 1_200, "output_tokens": 350, "cache_creation_tokens": 64, "cache_read_tokens": 512,
        "cost_micros": 9_244, "worst_case_micros": 40_000, "cost_bound_micros": None, "latency_ms": 812,
        "key_source": "platform", "upstream_request_id": "req_upstream_1", "created_at": MOMENT,
        "expires_at": MOMENT + RETENTION}


def test_a_settlement_that_names_nothing_else_is_an_ok_pool_call_with_zero_tokens_and_cost():
    tenant_id = new_tenant()
    reservation = reserve(tenant_id, 1_000, now=MOMENT)
    assert ledger.record(reservation, ledger.Settlement("key_ci", "api_key", HAIKU)) is True
    event = attributes(stored(reservation))
    assert {k: event[k] for k in ("status", "key_source", "input_tokens", "output_tokens", "cache_creation_tokens",
                                  "cache_read_tokens", "cost_micros", "latency_ms", "upstream_request_id")} == {
        "status": "ok", "key_source": "platform", "input_tokens": 0, "output_tokens": 0,
        "cache_creation_tokens": 0, "cache_read_tokens": 0, "cost_micros": 0, "latency_ms": 0,
        "upstream_request_id": None}


def test_the_event_expires_the_retention_after_the_call_began_not_after_it_was_written():
    tenant_id = new_tenant()
    began = datetime(2026, 10, 3, 8, 15, 0, tzinfo=timezone.utc)  # a reservation settled long after it began
    reservation = reserve(tenant_id, 1_000, now=began)
    ledger.record(reservation, ledger.Settlement("usr_x", "user", SONNET, input_tokens=1, cost_micros=3))
    event = stored(reservation)
    assert event.created_at == began
    assert event.expires_at == datetime(2027, 11, 7, 8, 15, 0, tzinfo=timezone.utc)  # 400 days on


def test_a_settlement_cannot_be_changed_once_made():
    settlement = ledger.Settlement("usr_x", "user", SONNET, cost_micros=5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settlement.cost_micros = 0


# --- once only --------------------------------------------------------------------------------------------

class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


def test_a_second_settle_of_the_same_request_changes_nothing_returns_false_and_logs_the_request():
    tenant_id = new_tenant()
    reservation = reserve(tenant_id, 9_000, now=MOMENT)
    first = published_micros(SONNET, 100, 10)
    assert first == 450
    assert ledger.record(reservation, ledger.Settlement("usr_a", "user", SONNET, input_tokens=100, output_tokens=10,
                                                        cost_micros=first)) is True
    before = attributes(stored(reservation))
    lines = _Lines()
    logger = powertools_logger()._logger
    logger.addHandler(lines)
    try:
        again = ledger.record(reservation, ledger.Settlement("usr_b", "user", HAIKU, input_tokens=999,
                                                             output_tokens=999, cost_micros=5_994, own_key=True))
    finally:
        logger.removeHandler(lines)
    assert again is False
    assert attributes(stored(reservation)) == before
    [line] = [r for r in lines.records if r.getMessage() == "usage already recorded"]
    assert line.logger == "tessera.metering" and line.request_id == reservation.request_id
    assert month(tenant_id, "2026-11").cost_micros == 450


def test_a_write_dynamodb_refuses_for_another_reason_is_raised_not_taken_for_a_duplicate():
    tenant_id = new_tenant()
    reservation = reserve(tenant_id, 1_000)
    too_large = "x" * 410_000  # over DynamoDB's 400 KB item limit
    with pytest.raises(PutError):
        ledger.record(reservation, ledger.Settlement("usr_x", "user", SONNET, upstream_request_id=too_large))
    with pytest.raises(UsageEvent.DoesNotExist):
        stored(reservation)


# --- the statuses -------------------------------------------------------------------------------------------

def test_a_stream_cut_off_is_incomplete_and_charged_with_max_tokens_as_output():
    tenant_id = new_tenant()
    reservation = reserve(tenant_id, 60_000, now=MOMENT)
    cost = published_micros(SONNET, 2_000, 2_048)  # max_tokens 2,048 charged as the output
    assert cost == 6_000 + 30_720
    ledger.record(reservation, ledger.Settlement("usr_x", "user", SONNET, input_tokens=2_000, output_tokens=2_048,
                                                 cost_micros=cost, status="incomplete"))
    event = stored(reservation)
    assert (event.status, event.cost_micros, event.cost_bound_micros) == ("incomplete", 36_720, None)
    totals = month(tenant_id, "2026-11")
    assert (totals.requests, totals.cost_micros, totals.output_tokens) == (1, 36_720, 2_048)


def test_a_release_is_a_failed_event_with_nothing_charged_and_no_cost_bound():
    tenant_id = new_tenant()
    reservation = reserve(tenant_id, 7_500, now=MOMENT)
    assert ledger.record(reservation, ledger.Settlement("usr_x", "user", SONNET, own_key=False,
                                                        status=ledger.FAILED)) is True
    event = attributes(stored(reservation))
    assert event == {
        "request_id": reservation.request_id, "principal_id": "usr_x", "principal_type": "user",
        "feature": "basic_chat", "model": SONNET, "status": "failed", "period": "2026-11", "bucket": MOMENT_BUCKET,
        "input_tokens": 0, "output_tokens": 0, "cache_creation_tokens": 0, "cache_read_tokens": 0,
        "cost_micros": 0, "worst_case_micros": 7_500, "cost_bound_micros": None, "latency_ms": 0,
        "key_source": "platform", "upstream_request_id": None, "created_at": MOMENT,
        "expires_at": MOMENT + RETENTION}
    totals = month(tenant_id, "2026-11")
    assert (totals.failed_requests, totals.requests, totals.cost_micros) == (1, 0, 0)


def test_a_release_of_an_own_key_call_keeps_its_key_source():
    tenant_id = new_tenant()
    reservation = reserve(tenant_id, 7_500)
    assert ledger.record(reservation, ledger.Settlement("usr_x", "user", SONNET, own_key=True,
                                                        status=ledger.FAILED)) is True
    assert stored(reservation).key_source == "tenant"


def test_an_unsure_call_is_indeterminate_uncharged_with_its_worst_case_as_the_cost_bound():
    tenant_id = new_tenant()
    worst = published_micros(SONNET, 3_000, 2_048)  # what the call could have cost at most
    assert worst == 9_000 + 30_720
    reservation = reserve(tenant_id, worst, now=MOMENT)
    assert ledger.record(reservation, ledger.Settlement("key_ci", "api_key", SONNET, own_key=True, latency_ms=30_001,
                                                        status=ledger.INDETERMINATE)) is True
    event = stored(reservation)
    assert (event.status, event.cost_micros, event.cost_bound_micros, event.worst_case_micros) == (
        "indeterminate", 0, 39_720, 39_720)
    assert (event.latency_ms, event.key_source, event.principal_type) == (30_001, "tenant", "api_key")
    totals = month(tenant_id, "2026-11")
    assert (totals.indeterminate_requests, totals.exposure_micros, totals.cost_micros) == (1, 39_720, 0)


def test_an_unsure_call_without_a_latency_records_zero():
    tenant_id = new_tenant()
    reservation = reserve(tenant_id, 2_000)
    ledger.record(reservation, ledger.Settlement("usr_x", "user", SONNET, own_key=False, status=ledger.INDETERMINATE))
    event = stored(reservation)
    assert (event.status, event.latency_ms, event.key_source) == ("indeterminate", 0, "platform")


@pytest.mark.parametrize("status", ["failed", "indeterminate"])
def test_only_ok_and_incomplete_calls_are_charged(status):
    tenant_id = new_tenant()
    reservation = reserve(tenant_id, 5_000)
    ledger.record(reservation, ledger.Settlement("usr_x", "user", SONNET, input_tokens=10, output_tokens=10,
                                                 cost_micros=180, status=status))
    event = stored(reservation)
    assert (event.status, event.cost_micros) == (status, 0)
    assert event.cost_bound_micros == (5_000 if status == "indeterminate" else None)


def test_the_ledger_names_its_statuses_as_the_data_model_does():
    assert (ledger.OK, ledger.INCOMPLETE, ledger.FAILED, ledger.INDETERMINATE, ledger.ABANDONED) == (
        "ok", "incomplete", "failed", "indeterminate", "abandoned")
    assert ledger.CHARGED == ("ok", "incomplete")


# --- own key and platform pool ------------------------------------------------------------------------------

def test_own_key_and_platform_pool_spend_are_recorded_and_totalled_apart():
    tenant_id = new_tenant()
    own = published_micros(SONNET, 4_000, 1_000)           # 12,000 + 15,000
    pool = published_micros(HAIKU, 10_000, 2_000, 0, 3_333)  # 10,000 + 10,000 + 333.3 -> 334
    assert (own, pool) == (27_000, 20_334)
    own_call, pool_call = reserve(tenant_id, 50_000, now=MOMENT), reserve(tenant_id, 50_000, now=MOMENT)
    ledger.record(own_call, ledger.Settlement("usr_x", "user", SONNET, input_tokens=4_000, output_tokens=1_000,
                                              cost_micros=own, own_key=True))
    ledger.record(pool_call, ledger.Settlement("usr_x", "user", HAIKU, input_tokens=10_000, output_tokens=2_000,
                                               cache_read_tokens=3_333, cost_micros=pool))
    assert (stored(own_call).key_source, stored(pool_call).key_source) == ("tenant", "platform")
    totals = month(tenant_id, "2026-11")
    assert (totals.own_key_requests, totals.own_key_cost_micros) == (1, 27_000)
    assert (totals.pool_requests, totals.pool_cost_micros) == (1, 20_334)
    assert totals.cost_micros == 47_334
