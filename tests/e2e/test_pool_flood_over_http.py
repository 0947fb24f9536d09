"""`make bench` section 9's flood, short (dev/bench/pool_flood.py): `make run`'s processes with the stand-in enforcing
an organisation limit and the pool's ceiling at it, one free tenant flooding with the official SDK from four
threads, one enterprise tenant at its normal rate, for ten seconds."""
from __future__ import annotations

import pytest

from dev.bench import pool_flood
from dev.bench.pool_flood_report import ANSWERED, POOL_REFUSED

pytestmark = pytest.mark.e2e

# 20,000 output tokens a minute: free may borrow 85 % less enterprise's untouched 20 % reserve, 13,000, six calls
# of 2,048; the flood asks for that in about a second. Enterprise's five or so calls of 512 fit its half.
SHORT = pool_flood.FloodSettings(org_limit=(1_000, 400_000, 20_000), period_seconds=10, pro_tenants=0,
                                 enterprise_tenants=1)


@pytest.fixture(scope="module")
def flooded():
    run = pool_flood.FloodRun(SHORT)
    try:
        run.start()
        yield run, run.run()
    finally:
        run.stop()


def test_the_flood_is_refused_by_the_pool_before_upstream(flooded):
    run, summary = flooded
    free = summary.plans["free"]
    assert free.pool_refused > 0 and free.answered > 0
    assert free.attempted == free.answered + free.pool_refused  # nothing else: no upstream 429, no error
    # each minute the flood asked for more than the organisation's limit, and upstream admitted no more than it
    assert sum(m.flood_asked["output_tokens"] for m in summary.minutes) > SHORT.org_limit[2]
    assert all(m.admitted["output_tokens"] <= SHORT.org_limit[2] for m in summary.minutes)


def test_the_enterprise_tenants_calls_all_pass(flooded):
    run, summary = flooded
    enterprise = [o for o in run.outcomes if o.plan == "enterprise"]
    assert len(enterprise) >= 3 and {o.kind for o in enterprise} == {ANSWERED}


def test_upstream_refused_nothing_and_no_429_of_its_reached_a_tenant(flooded):
    run, summary = flooded
    assert summary.minutes and summary.upstream_429_sent == 0 and summary.upstream_429_to_tenants == 0
    assert {o.kind for o in run.outcomes} <= {ANSWERED, POOL_REFUSED}
