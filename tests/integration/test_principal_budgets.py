"""Budgets per API key and per user, enforced in admission's one round trip: exact at their edges under
concurrency (real threads against the serialising moto server), given back exactly when calls settle, and
free for principals without one. Money is compared in exact micro-dollars."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib import keys, operators, principal_budgets
from chalicelib.budget_models import PrincipalBudget
from chalicelib.errors import TesseraError
from chalicelib.ids import new_request_id
from chalicelib.metering import admission, ledger
from chalicelib.metering.limits import principal_bit
from chalicelib.metering.principal_admission import PrincipalCharge, load_terms
from chalicelib.tenancy import TenantContext
from chalicelib.models import tenant_pk
from chalicelib.plans import DEFAULT_PLANS
from test_admission_exact import Reads
from test_metering_concurrency import burst, new_tenant
from conftest import tessera_log
from dynamo_hooks import ClientHook, DynamoCalls
from test_streaming import events_of

PERIOD = datetime.now(timezone.utc).strftime("%Y-%m")
CALL = datetime(2026, 11, 17, 9, 41, 23, tzinfo=timezone.utc)  # a fixed moment, for tests that name minutes


def tenant_with_key(**budget):
    tenant_id, ctx = new_tenant()
    operators.set_limits(tenant_id, {"requests_per_minute": 100_000})
    key_id = keys.create_key(tenant_id, ctx, {"name": "ci"})["key_id"]
    if budget:
        principal_budgets.set_budget(tenant_id, "api_key", key_id, budget)
    return tenant_id, key_id


def reserve_warm(tenant_id, key_id, worst, view, now=None, reads=None):
    """A call of the key on an instance that holds `view` of the admission item: (reservation, the view it
    leaves), its consistent reads counted in `reads`."""
    reads = reads or Reads(tenant_id)
    return admission.reserve(tenant_id, new_request_id(), "basic_chat", worst, view, admission.Returns(),
                             load_view=reads.load_view, load_returns=reads.load_returns, now=now,
                             plan_of=DEFAULT_PLANS.__getitem__,
                             principal=PrincipalCharge(key_id, load=lambda: load_terms(tenant_id, key_id)))


def reserve(tenant_id, principal_id, worst):
    """A call of the principal on a cold instance (no view yet): its reservation."""
    return reserve_warm(tenant_id, principal_id, worst, None)[0]


def counters(tenant_id, principal_id):
    item = PrincipalBudget.get(tenant_pk(tenant_id), PrincipalBudget.sk_for(principal_id), consistent_read=True)
    values = item.counters.as_dict()
    return int(values.get(f"a:{PERIOD}", 0)), int(values.get(f"w:{PERIOD}", 0))


def settlement(cost, status=ledger.OK):
    return ledger.Settlement("p", "api_key", "claude-sonnet-4-6", input_tokens=1, cost_micros=cost, status=status)


def test_exactly_a_keys_request_limit_passes_under_concurrent_calls():
    tenant_id, key_id = tenant_with_key(monthly_requests=7, hard_limit=True)
    outcomes = burst(lambda i: reserve(tenant_id, key_id, 10), n=20)
    assert outcomes.count("ok") == 7, outcomes
    assert outcomes.count("principal_limit_reached") == 13, sorted(set(outcomes))
    assert counters(tenant_id, key_id) == (7, 70)


def test_exactly_what_a_keys_dollar_budget_holds_passes_under_concurrent_calls():
    tenant_id, key_id = tenant_with_key(monthly_budget_usd="0.000100", hard_limit=True)  # 100 micro-dollars
    outcomes = burst(lambda i: reserve(tenant_id, key_id, 30), n=12)
    assert outcomes.count("ok") == 3, outcomes  # 3 x 30 = 90 <= 100 < 4 x 30
    assert outcomes.count("principal_budget_exceeded") == 9, outcomes
    assert counters(tenant_id, key_id) == (3, 90)


def test_settling_gives_the_unused_worst_case_back_to_the_keys_budget_exactly():
    tenant_id, key_id = tenant_with_key(monthly_budget_usd="0.000100", hard_limit=True)
    first = reserve(tenant_id, key_id, 60)
    assert first.principal_budget == key_id
    assert ledger.record(first, settlement(13)) is True
    assert counters(tenant_id, key_id) == (1, 13)  # 60 reserved, 47 given back: 13, the call's cost
    reserve(tenant_id, key_id, 87)  # 13 + 87 = 100: at the edge, admitted
    with pytest.raises(TesseraError) as refused:
        reserve(tenant_id, key_id, 1)
    assert (refused.value.status, refused.value.code) == (402, "principal_budget_exceeded")
    assert ledger.record(first, settlement(13)) is False  # a second settle gives nothing back twice
    assert counters(tenant_id, key_id) == (2, 100)


class Conflicted(ClientHook):
    """DynamoDB cancelling this thread's next `times` transactions (a settlement's or an admission's) for a
    transaction in progress on the budget item, as it does: TransactionConflict at the budget's index."""

    event = "before-call.dynamodb.TransactWriteItems"
    own_thread_only = True  # not the usage stream pump's transactions

    def __init__(self, times):
        self.left = times

    def _before(self, **kwargs):
        if self.left:
            self.left -= 1
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "[None, TransactionConflict]"},
                               "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}]},
                              "TransactWriteItems")


def test_a_settlement_that_meets_a_concurrent_admission_is_recorded_and_given_back():
    tenant_id, key_id = tenant_with_key(monthly_budget_usd="0.000100", hard_limit=True)
    call = reserve(tenant_id, key_id, 60)
    with Conflicted(2) as conflicted:
        assert ledger.record(call, settlement(13)) is True
    assert conflicted.left == 0 and counters(tenant_id, key_id) == (1, 13)


def test_an_admission_whose_transaction_meets_a_conflict_tries_again_on_the_view_it_holds():
    """A conflict says another transaction held an item for a moment, not that this view is out of date: the
    retry reads nothing (a lost race, by contrast, comes back with the item as it is)."""
    tenant_id, key_id = tenant_with_key(monthly_requests=100, hard_limit=True)
    reads = Reads(tenant_id)
    with Conflicted(1) as conflicted:
        reserve_warm(tenant_id, key_id, 10, admission.load_view(tenant_id), reads=reads)
    assert conflicted.left == 0 and (reads.views, reads.returns) == (0, 0)
    assert counters(tenant_id, key_id) == (1, 10)


def test_a_budgeted_keys_settlement_recorded_twice_counts_once_and_says_so_the_second_time(caplog):
    tenant_id, key_id = tenant_with_key(monthly_budget_usd="1", hard_limit=True)
    call = reserve(tenant_id, key_id, 60)
    with tessera_log(caplog):
        assert ledger.record(call, settlement(13)) is True
        assert [r for r in caplog.records if r.getMessage() == "usage already recorded"] == []
        assert ledger.record(call, settlement(13)) is False
    [line] = [r for r in caplog.records if r.getMessage() == "usage already recorded"]
    assert (line.logger, line.request_id) == ("tessera.metering", call.request_id)
    assert counters(tenant_id, key_id) == (1, 13)


def test_a_settlement_that_keeps_conflicting_is_still_in_the_ledger():
    """The event is written alone; the give-back is not (the budget errs on the strict side)."""
    tenant_id, key_id = tenant_with_key(monthly_budget_usd="0.000100", hard_limit=True)
    call = reserve(tenant_id, key_id, 60)
    with Conflicted(100):
        assert ledger.record(call, settlement(13)) is True
    [event] = events_of(tenant_id)
    assert (event["request_id"], event["cost_usd"]) == (call.request_id, "0.000013")
    assert counters(tenant_id, key_id) == (1, 60)


def test_a_failed_call_gives_its_worst_case_and_its_request_back_at_once():
    tenant_id, key_id = tenant_with_key(monthly_requests=1, monthly_budget_usd="0.000050", hard_limit=True)
    failed = reserve(tenant_id, key_id, 50)
    ledger.release_at_once(failed, settlement(0, status=ledger.FAILED))
    assert counters(tenant_id, key_id) == (0, 0)
    assert reserve(tenant_id, key_id, 50)  # the one request and the whole budget are there again


def test_a_soft_budget_holds_nothing_back_and_writes_no_transaction():
    tenant_id, key_id = tenant_with_key(monthly_requests=1, hard_limit=False)
    reserve(tenant_id, key_id, 10)
    view = admission.load_view(tenant_id)
    with DynamoCalls() as sent:
        admission.reserve(tenant_id, new_request_id(), "basic_chat", 10, view, admission.Returns(),
                          load_view=lambda: admission.load_view(tenant_id),
                          load_returns=lambda: admission.load_returns(tenant_id), plan_of=DEFAULT_PLANS.__getitem__,
                          principal=PrincipalCharge(key_id, load=lambda: load_terms(tenant_id, key_id)))
    assert sent.names == ["UpdateItem"]


def test_a_budgeted_keys_warm_call_is_one_transaction_and_another_keys_one_update():
    tenant_id, key_id = tenant_with_key(monthly_requests=100, hard_limit=True)
    ctx = TenantContext(tenant_id, "u", "user", "owner", "o", "s")
    other = key_id
    while principal_bit(other) == principal_bit(key_id):  # a key whose bit no budgeted key shares
        other = keys.create_key(tenant_id, ctx, {"name": "other"})["key_id"]
    view = admission.load_view(tenant_id)
    terms = load_terms(tenant_id, key_id)
    cases = ((key_id, terms, ["TransactWriteItems"]), (other, None, ["UpdateItem"]))
    for principal_id, charge_terms, expected in cases:
        charge = PrincipalCharge(principal_id, load=lambda: load_terms(tenant_id, principal_id), terms=charge_terms,
                                 loaded=True)
        with DynamoCalls() as sent:
            _, view = admission.reserve(tenant_id, new_request_id(), "basic_chat", 10, view, admission.Returns(),
                                        load_view=lambda: admission.load_view(tenant_id),
                                        load_returns=lambda: admission.load_returns(tenant_id),
                                        plan_of=DEFAULT_PLANS.__getitem__, principal=charge)
        assert sent.names == expected


def test_a_budgeted_keys_transaction_leaves_its_instance_the_item_as_it_was_written():
    """A transaction returns no item, so the instance applies what it wrote to its own view: what it added,
    and the stale counters it removed (two minutes on, the first call's minute and slot). The next call's
    checks and stale keys read that view."""
    tenant_id, key_id = tenant_with_key(monthly_requests=100, hard_limit=True)
    view = admission.load_view(tenant_id)
    for now in (CALL, CALL + timedelta(minutes=2)):
        with DynamoCalls() as sent:
            _, view = reserve_warm(tenant_id, key_id, 10, view, now=now)
        assert "TransactWriteItems" in sent.names
        stored = admission.load_view(tenant_id)
        assert (view.version, view.counters) == (stored.version, stored.counters)
    first_minute = int(CALL.timestamp()) // 60
    assert not [key for key in view.counters if key == f"m:{first_minute}" or key.startswith(f"s:{first_minute}:")]


def test_a_worst_case_over_a_keys_whole_budget_is_refused_without_a_transaction():
    """What no counter can lift is refused after one fresh read of the key's terms: no transaction is tried."""
    tenant_id, key_id = tenant_with_key(monthly_budget_usd="0.000100", hard_limit=True)  # 100 micro-dollars
    with DynamoCalls() as sent, pytest.raises(TesseraError) as refused:
        reserve_warm(tenant_id, key_id, 101, admission.load_view(tenant_id))
    assert refused.value.code == "principal_budget_exceeded"
    assert "TransactWriteItems" not in sent.names and "UpdateItem" not in sent.names


def test_a_budget_set_holds_for_the_next_call_of_an_instance_that_read_none():
    tenant_id, key_id = tenant_with_key()
    view = admission.load_view(tenant_id)  # this instance's view: no budgets
    principal_budgets.set_budget(tenant_id, "api_key", key_id, {"monthly_requests": 0, "hard_limit": True})
    charge = PrincipalCharge(key_id, load=lambda: load_terms(tenant_id, key_id), terms=None, loaded=True)
    with pytest.raises(TesseraError) as refused:
        admission.reserve(tenant_id, new_request_id(), "basic_chat", 10, view, admission.Returns(),
                          load_view=lambda: admission.load_view(tenant_id),
                          load_returns=lambda: admission.load_returns(tenant_id), plan_of=DEFAULT_PLANS.__getitem__,
                          principal=charge)
    assert refused.value.code == "principal_limit_reached"


class AnotherEditFirst(ClientHook):
    """Another edit of the same budget lands between this edit's read and its transaction."""

    event = "before-call.dynamodb.TransactWriteItems"
    own_thread_only = True  # not the usage stream pump's transactions

    def __init__(self, tenant_id, key_id):
        self.key, self.done = (tenant_pk(tenant_id), PrincipalBudget.sk_for(key_id)), False

    def _before(self, **kwargs):
        if not self.done:
            self.done = True
            PrincipalBudget(*self.key).update(actions=[PrincipalBudget.version.add(1)])


def test_two_edits_of_one_budget_at_once_give_the_later_a_409():
    tenant_id, key_id = tenant_with_key(monthly_requests=5, hard_limit=True)
    with AnotherEditFirst(tenant_id, key_id):
        with pytest.raises(TesseraError) as refused:
            principal_budgets.set_budget(tenant_id, "api_key", key_id, {"monthly_requests": 9})
    assert (refused.value.status, refused.value.code) == (409, "conflict")
    assert principal_budgets.view(tenant_id, "api_key", key_id)["monthly_requests"] == 5
