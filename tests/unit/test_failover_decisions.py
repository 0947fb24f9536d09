"""The failover route's decisions as pure functions: which attempts a call may make, and when a model's
breaker opens, probes and closes (chalicelib/ai/failover.py, chalicelib/ai/breaker.py). No server."""
from __future__ import annotations

from decimal import Decimal

from chalicelib import pricing
from chalicelib.ai import breaker, failover
from chalicelib.ai.breaker import BreakerState
from chalicelib.ai.client import ModelCall
from chalicelib.ai.failover import ANTHROPIC, BEDROCK, Attempt, plan

A, B = Attempt(ANTHROPIC), Attempt(BEDROCK)
NOW = 1_000_000.0


def providers(attempts):
    return [a.provider for a in attempts]


def test_a_pool_call_retries_anthropic_once_then_fails_over_to_bedrock():
    assert plan(False, breaker.ANTHROPIC_FIRST, bedrock_serves=True) == (A, A, B)


def test_an_own_key_call_never_reaches_bedrock_whatever_the_breaker_says():
    for first in (breaker.ANTHROPIC_FIRST, breaker.PROBE, breaker.BEDROCK_FIRST):
        assert BEDROCK not in providers(plan(True, first, bedrock_serves=True))
    assert plan(True, breaker.BEDROCK_FIRST, bedrock_serves=True) == (A, A)


def test_an_open_breaker_sends_pool_calls_to_bedrock_first_with_anthropic_as_the_last_resort():
    assert plan(False, breaker.BEDROCK_FIRST, bedrock_serves=True) == (B, A)


def test_a_half_open_breaker_probes_anthropic_once_then_bedrock():
    assert plan(False, breaker.PROBE, bedrock_serves=True) == (Attempt(ANTHROPIC, probe=True), B)


def test_a_model_bedrock_does_not_serve_or_failover_switched_off_stays_on_anthropic():
    assert plan(False, breaker.BEDROCK_FIRST, bedrock_serves=False) == (A, A)
    assert plan(False, breaker.ANTHROPIC_FIRST, bedrock_serves=True, failover_on=False) == (A, A)


def test_bedrock_serves_the_mapped_models_but_not_fast_mode_or_the_newer_models():
    def call(model, **params):
        return ModelCall(model, 16, None, [{"role": "user", "content": "x"}], params=params)

    from chalicelib.ai.bedrock import serves

    assert serves(call("claude-sonnet-4-6")) and serves(call("claude-haiku-4-5")) and serves(call("claude-opus-4-6"))
    assert not serves(call("claude-opus-4-6", speed="fast"))
    assert not serves(call("claude-opus-5-5")) and not serves(call("claude-opus-4-7"))


# --- the breaker -----------------------------------------------------------------------------------------

def failures(count, every=1.0):
    return [NOW - every * i for i in range(count)]


def test_the_breaker_opens_at_the_fifth_failure_within_the_window_not_the_fourth():
    closed = BreakerState()
    assert breaker.after_failure(closed, failures(4), NOW, probe=False) is None
    opened = breaker.after_failure(closed, failures(5), NOW, probe=False)
    assert opened == BreakerState(breaker.OPEN, NOW + 30, 30, 1)


def test_failures_older_than_the_window_do_not_count():
    spread = failures(5, every=breaker.FAILURE_WINDOW_SECONDS / 4)  # the oldest is a whole window ago
    assert breaker.after_failure(BreakerState(), spread, NOW, probe=False) is None


def test_an_open_breaker_turns_half_open_when_its_time_is_up_and_allows_one_probe_at_a_time():
    opened = BreakerState(breaker.OPEN, NOW + 30, 30, 1)
    assert breaker.route(opened, NOW + 29.9, probing=False, last_probe_at=0) == breaker.BEDROCK_FIRST
    assert opened.phase(NOW + 30) == breaker.HALF_OPEN
    assert breaker.route(opened, NOW + 30, probing=False, last_probe_at=0) == breaker.PROBE
    assert breaker.route(opened, NOW + 30, probing=True, last_probe_at=NOW + 30) == breaker.BEDROCK_FIRST
    # the next probe of this instance waits PROBE_SECONDS after the last one began
    assert breaker.route(opened, NOW + 34.9, probing=False, last_probe_at=NOW + 30) == breaker.BEDROCK_FIRST
    assert breaker.route(opened, NOW + 35, probing=False, last_probe_at=NOW + 30) == breaker.PROBE


def test_a_failed_probe_opens_the_breaker_for_twice_as_long_up_to_five_minutes():
    half_open = BreakerState(breaker.OPEN, NOW - 1, 30, 1)
    assert breaker.after_failure(half_open, failures(1), NOW, probe=True) == BreakerState(breaker.OPEN, NOW + 60, 60, 2)
    longest = BreakerState(breaker.OPEN, NOW - 1, 240, 7)
    assert breaker.after_failure(longest, failures(1), NOW, probe=True) == BreakerState(breaker.OPEN, NOW + 300, 300, 8)


def test_a_success_closes_an_open_breaker_and_writes_nothing_when_closed():
    assert breaker.after_success(BreakerState(breaker.OPEN, NOW, 60, 4)) == BreakerState(breaker.CLOSED, 0.0, 0, 5)
    assert breaker.after_success(BreakerState()) is None


def test_the_attempts_named_in_the_usage_event():
    served = failover.Served(BEDROCK, ["anthropic:529", "anthropic:529", "bedrock:ok"])
    assert served.failed_over and served.trail() == "anthropic:529,anthropic:529,bedrock:ok"
    assert not failover.Served(BEDROCK, ["bedrock:ok"]).failed_over  # open breaker: Bedrock first, no failover


# --- Bedrock's prices ------------------------------------------------------------------------------------

def test_bedrock_never_costs_more_than_anthropic_so_the_admitted_worst_case_covers_a_failover():
    for model, mapped in pricing.BEDROCK.items():
        ours, theirs = pricing.MODELS[model], mapped.price
        for rate in ("input", "output", "cache_write", "cache_read", "cache_write_1h"):
            assert getattr(theirs, rate) <= getattr(ours, rate), (model, rate)
        assert theirs.long_context == ours.long_context


def test_a_call_bedrock_served_is_priced_from_bedrocks_published_prices_in_micro_dollars():
    # Sonnet 4.6 through the global profile: $3 input, $15 output, $3.75 5-minute cache writes, $0.30 reads
    # per million tokens (the price table's source)
    expected = 1234 * 3 + 567 * 15 + Decimal("100") * Decimal("3.75") + Decimal("1000") * Decimal("0.30")
    assert pricing.cost_micros("claude-sonnet-4-6", 1234, 567, 100, 1000, provider=pricing.BEDROCK_PROVIDER) == int(
        expected)  # 3,702 + 8,505 + 375 + 300 = 12,882 micro-dollars
    assert int(expected) == 12882


def test_the_mapped_ids_are_global_inference_profiles_of_the_published_base_ids():
    assert {model: m.model_id for model, m in pricing.BEDROCK.items()} == {
        "claude-opus-4-6": "global.anthropic.claude-opus-4-6-v1",
        "claude-sonnet-4-6": "global.anthropic.claude-sonnet-4-6",
        "claude-haiku-4-5": "global.anthropic.claude-haiku-4-5-20251001-v1:0",
    }


def test_bedrocks_rows_price_a_call_it_served_and_it_has_no_fast_mode_rates():
    # Opus 4.6 asked for fast mode on Anthropic costs $30/$150 per million; Bedrock has no fast mode, so a
    # call it served is billed at its standard $5/$25 whatever the request said.
    assert pricing.cost_micros("claude-opus-4-6", 1000, 1000, fast=True) == 1000 * 30 + 1000 * 150
    assert pricing.cost_micros("claude-opus-4-6", 1000, 1000, fast=True,
                               provider=pricing.BEDROCK_PROVIDER) == 1000 * 5 + 1000 * 25
