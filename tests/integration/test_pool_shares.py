"""Pool shares as plan data, on moto: the catalog's edits keep every plan's reserves under 100 % even when two
land at once, and a lease renewal decides with the shares the catalog holds (read with the pool's minute).

The module runs in a table of its own: the reserves it gives plans would otherwise hold back capacity from
every other test's pool."""
from __future__ import annotations

import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib import plan_catalog
from chalicelib.audit import Actor
from chalicelib.errors import BadRequest, Conflict, TooManyRequests
from chalicelib.metering.pool import Amounts, ask_of
from chalicelib.metering.pool_leases import PoolLeases, PoolStore
from dynamo_hooks import ClientHook

OPERATOR = Actor("operator", "op-test")
MODEL = "claude-haiku-4-5"
START = float(int(time.time()) // 60 * 60)


@pytest.fixture(autouse=True)
def table(own_table):
    return own_table


def create(**share):
    body = {"plan": f"s-{secrets.token_hex(4)}", "features": {"basic_chat": 10}, "requests_per_minute": 100,
            "max_tokens_cap": 1024, "models": [MODEL], "monthly_price_usd": 0, **share}
    return plan_catalog.create(body, OPERATOR)["plan"]


def test_two_edits_at_once_never_reserve_100_percent_together():
    """Enterprise holds 20 %: each of these asks 45 %, so at most one of each pair may land."""
    def attempt(_):
        try:
            return create(pool_share_percent=45, pool_reserved_percent=45)
        except (BadRequest, Conflict) as refused:
            return refused.code

    landed = []
    for _ in range(3):
        with ThreadPoolExecutor(max_workers=2) as threads:
            results = list(threads.map(attempt, range(2)))
        landed += [r for r in results if r not in ("pool_reserve_too_large", "conflict")]
        assert set(results) - set(landed) <= {"pool_reserve_too_large", "conflict"}
    assert len(landed) == 1
    plans = plan_catalog.all_plans()
    assert sum(p.pool_reserved_percent for p in plans.values()) == 65
    summary = PoolStore().read_with_shares(MODEL, START)[2]
    assert {name: (s.guaranteed, s.reserved) for name, s in summary.items()} == {
        name: (p.pool_share_percent, p.pool_reserved_percent) for name, p in plans.items()}


def test_a_renewal_decides_with_the_catalogs_shares():
    """Output ceiling 1,000: a best-effort plan may borrow 850 less the other plans' unused reserves (enterprise's
    200, and whatever this module's other test reserved), and a plan with a 30 % share is admitted past that."""
    store = PoolStore(partition=f"POOLTEST{secrets.token_hex(4)}")
    leases = PoolLeases({"*": Amounts(1000, 1_000_000, 1000)}, store, clock=lambda: START + 1)
    shared_plan, best_effort = create(pool_share_percent=30), create()
    before = sum(p.pool_reserved_percent for p in plan_catalog.all_plans().values())
    leases.reserve(MODEL, best_effort, ask_of(10, (85 - before) * 10 - 10))  # all a best-effort plan may borrow
    with pytest.raises(TooManyRequests):
        leases.reserve(MODEL, best_effort, ask_of(10, 20))
    leases.reserve(MODEL, shared_plan, ask_of(10, 300))  # inside its 30 %
    with pytest.raises(TooManyRequests):
        leases.reserve(MODEL, create(), ask_of(10, 20))  # another best-effort plan: nothing left to borrow


class AnotherEditFirst(ClientHook):
    """Another operator's edit of another plan lands just before this thread's transaction is sent."""

    event = "before-call.dynamodb.TransactWriteItems"
    own_thread_only = True  # not the usage stream's pump's transactions

    def __init__(self, plan):
        self.plan, self.done = plan, False

    def _before(self, **kwargs):
        if not self.done:
            self.done = True
            plan_catalog.save(self.plan, {"requests_per_minute": 77}, OPERATOR, create=False)


def test_an_edit_that_meets_another_plans_edit_is_told_so_and_the_other_plan_stands():
    mine, theirs = create(), create()
    with AnotherEditFirst(theirs), pytest.raises(Conflict) as refused:
        plan_catalog.save(mine, {"requests_per_minute": 55}, OPERATOR, create=False)
    assert refused.value.message.startswith("Another plan's edit landed while this one ran")
    plans = plan_catalog.all_plans()
    assert (plans[theirs].requests_per_minute, plans[mine].requests_per_minute) == (77, 100)
    assert plan_catalog.save(mine, {"requests_per_minute": 55}, OPERATOR, create=False)["requests_per_minute"] == 55
