"""The shared pool's decision as pure functions (chalicelib/metering/pool.py): plan shares, borrowing until
saturation, enterprise's reserve, a true Retry-After, the true-up, and ceilings corrected from upstream's headers."""
from __future__ import annotations

from chalicelib.metering import pool
from chalicelib.metering.pool import Amounts, Window, decide

CEILING = Amounts(requests=100, input_tokens=1_000_000, output_tokens=1_000_000)
START = 1_800_000_000.0  # on a minute
ONE = Amounts(1, 10, 10)


def window(**requests_by_plan):
    return Window(START, {plan: Amounts(n, n * 10, n * 10) for plan, n in requests_by_plan.items()})


def test_an_idle_pool_lends_a_free_call_capacity_it_has_no_share_of():
    decision = decide(CEILING, window(), "free", ONE, START + 1)
    assert decision.admitted and decision.borrowed


def test_borrowing_stops_at_saturation_less_enterprises_unused_reserve_with_a_true_retry_after():
    # 85 % of 100 requests, less enterprise's unused 20 % reserve: free may hold 65
    assert decide(CEILING, window(free=64), "free", ONE, START + 10).admitted
    refused = decide(CEILING, window(free=65), "free", ONE, START + 10)
    assert (refused.admitted, refused.dimension, refused.retry_after) == (False, "requests", 50)


def test_enterprise_gets_its_share_while_free_has_borrowed_all_it_may():
    assert decide(CEILING, window(free=65), "enterprise", ONE, START).admitted
    decision = decide(CEILING, window(free=65, enterprise=34), "enterprise", ONE, START)
    assert decision.admitted and not decision.borrowed  # its 35th of 50 guaranteed


def test_enterprise_reserve_is_lent_once_used():
    # enterprise used its 20 reserved: free may borrow up to 85 in all
    assert decide(CEILING, window(free=64, enterprise=20), "free", ONE, START).admitted
    assert not decide(CEILING, window(free=65, enterprise=20), "free", ONE, START).admitted


def test_past_saturation_a_plan_gets_its_share_and_no_more():
    busy = window(pro=35, free=30, enterprise=20)  # 85 in all
    refused = decide(CEILING, busy, "pro", ONE, START)
    assert not refused.admitted and refused.dimension == "requests"
    # its 35th, though the pool is past saturation (86 after it): a share is kept, not borrowed
    decision = decide(CEILING, window(pro=34, free=31, enterprise=20), "pro", ONE, START)
    assert decision.admitted and not decision.borrowed


def test_nothing_passes_the_ceiling_even_inside_a_share():
    full = window(enterprise=49, pro=35, free=16)  # 100
    assert not decide(CEILING, full, "enterprise", ONE, START).admitted


def test_output_is_reserved_from_max_tokens_and_refuses_on_its_own():
    ask = pool.ask_of(input_bound=100, max_tokens=200_000)
    busy = Window(START, {"free": Amounts(10, 1_000, 500_000)})
    refused = decide(CEILING, busy, "free", ask, START)
    assert (refused.admitted, refused.dimension) == (False, "output_tokens")  # 700k > 850k - 200k reserve


def test_the_true_up_gives_back_the_unused_input_bound_and_max_tokens():
    ask = pool.ask_of(input_bound=1_000, max_tokens=4_000)
    after = Window(START).with_reserved("pro", ask)
    settled = pool.settle(after, "pro", ask, Amounts(1, 700, 250))
    assert settled.of("pro") == Amounts(1, 700, 250)


def test_a_new_minute_starts_an_empty_window():
    old = window(free=65)
    assert pool.current(old, START + 59.9) is old
    assert pool.current(old, START + 60) == Window(START + 60)


def test_upstreams_headers_lower_the_ceiling_and_reveal_use_outside_the_pool():
    headers = {"anthropic-ratelimit-requests-limit": "80", "anthropic-ratelimit-requests-remaining": "50",
               "anthropic-ratelimit-input-tokens-limit": "2000000", "anthropic-ratelimit-output-tokens-limit": "x"}
    ceiling, elsewhere = pool.corrected(CEILING, headers, Amounts(requests=20))
    # requests: min(100, 80) less the 10 used elsewhere (80 - 50 - our 20); input: the configured 1M is lower;
    # output: a malformed header changes nothing
    assert ceiling == Amounts(70, 1_000_000, 1_000_000) and elsewhere == {"requests": 10}


def test_a_plans_share_is_a_value_the_decision_is_given():
    """Shares are plan data: a custom plan with a guarantee gets it where a best-effort plan may not borrow."""
    busy = window(free=65)  # borrowing is over: 85 less enterprise's unused 20
    shares = {**pool.built_in_shares(), "team": pool.Share(guaranteed=30)}
    assert decide(CEILING, busy, "team", ONE, START, shares).admitted
    assert not decide(CEILING, busy, "team", ONE, START).admitted  # unknown to the built-in shares: best effort
    assert decide(CEILING, Window(START, {"team": Amounts(30, 300, 300)}), "team", ONE, START, shares).borrowed


def test_a_custom_plans_reserve_is_held_from_the_others_borrowing():
    shares = {**pool.built_in_shares(), "team": pool.Share(guaranteed=30, reserved=10)}
    assert decide(CEILING, window(free=54), "free", ONE, START, shares).admitted  # 55 = 85 - 20 - 10
    refused = decide(CEILING, window(free=55), "free", ONE, START, shares)
    assert (refused.admitted, refused.dimension) == (False, "requests")
    assert decide(CEILING, window(free=55), "free", ONE, START).admitted  # without team's reserve: 65
