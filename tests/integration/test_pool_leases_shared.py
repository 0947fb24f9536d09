"""Leases on the pool against moto's table: most calls add no round trip, two warm instances renewing at
once never grant past the ceiling (real threads against the serialising moto server), and a refusal writes
nothing. Each test's pool lives in a partition of its own."""
from __future__ import annotations

import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib.errors import TooManyRequests
from chalicelib.metering.pool import Amounts, ask_of
from chalicelib.metering.pool_leases import PoolLeases, PoolStore

MODEL = "claude-haiku-4-5"
START = float(int(time.time()) // 60 * 60)


def store():
    return PoolStore(partition=f"POOLTEST{secrets.token_hex(4)}")


def at_start():
    return START + 1


def test_calls_inside_a_lease_touch_no_item(environment):
    shared = store()
    leases = PoolLeases({"*": Amounts(4000, 2_000_000, 400_000)}, shared, clock=at_start)
    for _ in range(20):
        leases.reserve(MODEL, "pro", ask_of(300, 100))
    window, version = shared.read(MODEL, START)
    assert version == 3  # renewals for 4, 8 and 16 calls: the twenty calls wrote the item three times
    assert window.of("pro") == Amounts(28, 8400, 2800)


def test_two_instances_renewing_at_once_never_grant_past_the_free_plans_borrowable_share(environment):
    shared = store()
    ceiling = Amounts(1000, 1_000_000, 1000)  # free may borrow 850 - 200 = 650 output tokens
    instances = [PoolLeases({"*": ceiling}, shared, clock=at_start) for _ in range(4)]

    def call(i):
        try:
            instances[i % 4].reserve(MODEL, "free", ask_of(10, 100))
            return True
        except TooManyRequests as refused:
            assert refused.code == "pool_share_exhausted" and refused.retry_after == 59
            return False

    with ThreadPoolExecutor(max_workers=8) as threads:
        admitted = sum(threads.map(call, range(12)))
    window, _ = shared.read(MODEL, START)
    assert admitted * 100 <= window.of("free").output_tokens <= 650
    assert admitted >= 3  # the slack is at most one slice per instance (4 x 50)


def test_a_renewal_decided_on_a_stale_read_is_not_written(environment):
    shared = store()
    _, seen = shared.read(MODEL, START)
    assert shared.take(MODEL, START, "free", Amounts(1, 10, 600), seen)  # another instance's renewal
    assert not shared.take(MODEL, START, "free", Amounts(1, 10, 600), seen)  # decided before it: refused
    window, version = shared.read(MODEL, START)
    assert (window.of("free"), version) == (Amounts(1, 10, 600), 1)


def test_a_refused_call_writes_nothing(environment):
    shared = store()
    leases = PoolLeases({"*": Amounts(1000, 1_000_000, 1000)}, shared, clock=at_start)
    leases.reserve(MODEL, "free", ask_of(10, 600))
    before = shared.read(MODEL, START)
    with pytest.raises(TooManyRequests):
        leases.reserve(MODEL, "free", ask_of(10, 100))
    assert shared.read(MODEL, START) == before


def test_true_up_gives_a_calls_unused_output_back_to_the_lease(environment):
    shared = store()
    leases = PoolLeases({"*": Amounts(1000, 1_000_000, 1000)}, shared, clock=at_start)
    for _ in range(20):  # 20 x 100 reserved (2,000 > free's 650), each answer using 20 of its 100
        ticket = leases.reserve(MODEL, "free", ask_of(10, 100))
        leases.settle(ticket, Amounts(1, 10, 20))
    window, _ = shared.read(MODEL, START)
    assert window.of("free").output_tokens <= 650


def upstream_reports(limit, remaining):
    return {"anthropic-ratelimit-output-tokens-limit": str(limit),
            "anthropic-ratelimit-output-tokens-remaining": str(remaining)}


def test_a_ceiling_upstream_reports_lower_takes_back_the_lease_sized_against_the_configured_one(environment):
    shared = store()
    leases = PoolLeases({"*": Amounts(1000, 1_000_000, 100_000)}, shared, clock=at_start)
    leases.reserve(MODEL, "pro", ask_of(10, 50))  # a lease of 5 % of 100,000 output tokens
    leases.observe(MODEL, upstream_reports(600, 550))
    assert leases.ceiling(MODEL) == Amounts(1000, 1_000_000, 600)
    assert shared.read(MODEL, START)[0].of("pro").output_tokens == 50  # the unused 4,950 given back
    admitted = 0
    for _ in range(10):  # pro may borrow to 85 % of 600 less enterprise's 120 = 390 in all
        try:
            leases.reserve(MODEL, "pro", ask_of(10, 50))
            admitted += 1
        except TooManyRequests:
            break
    assert admitted == 6


def test_output_used_elsewhere_in_the_organisation_lowers_the_ceiling(environment):
    shared = store()
    leases = PoolLeases({"*": Amounts(1000, 1_000_000, 1000)}, shared, clock=at_start)
    leases.reserve(MODEL, "pro", ask_of(10, 50))  # a lease of 50 output tokens
    leases.observe(MODEL, upstream_reports(1000, 700))  # 300 used, 50 of them by this pool
    assert leases.ceiling(MODEL).output_tokens == 750


def test_a_calls_ticket_carries_the_minute_as_read_against_the_ceiling_upstream_corrected(environment):
    """What a pool call's metrics report (chalicelib/observability.PoolStanding): the minute item's total, with
    another instance's lease in it, against the ceiling in force after upstream's headers lowered it."""
    shared = store()
    PoolLeases({"*": Amounts(1000, 1_000_000, 1000)}, shared, clock=at_start).reserve(MODEL, "free", ask_of(10, 30))
    leases = PoolLeases({"*": Amounts(1000, 1_000_000, 1000)}, shared, clock=at_start)
    leases.observe(MODEL, {"anthropic-ratelimit-output-tokens-limit": "800",
                           "anthropic-ratelimit-output-tokens-remaining": "800"})
    ticket = leases.reserve(MODEL, "pro", ask_of(10, 100))
    window, _ = shared.read(MODEL, START)
    # free's lease: a slice of 4 calls (4, 40, 120 capped at 5 % = 50); pro's: its 100 (more than 5 % of 800)
    assert ticket.reserved == window.total() == Amounts(8, 80, 150)
    assert ticket.ceiling == Amounts(1000, 1_000_000, 800)
    metrics = ticket.standing().metrics()
    assert (metrics["pool_headroom_output_tokens"][1], metrics["pool_use_percent"][1]) == (650, 18)  # 150 of 800
