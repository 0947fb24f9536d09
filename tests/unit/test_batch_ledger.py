"""The batch settlement's decisions, without a store: what each result settles as, at the batch price."""
from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

import pytest

from chalicelib.ai.client import Usage
from chalicelib.metering import batch_ledger, ledger
from published import PUBLISHED, PUBLISHED_BATCH

RESERVED = {"a": batch_ledger.Reserved("claude-sonnet-4-6", 900), "b": batch_ledger.Reserved("claude-haiku-4-5", 80)}


def published_batch_micros(model, input_tokens, output_tokens, cache_write=0, cache_read=0):
    """From the published batch table; caching multipliers on the batch input price (1.25x write, 0.1x read)."""
    inp, out = (Decimal(p) for p in PUBLISHED_BATCH[model])
    exact = (input_tokens * inp + output_tokens * out + cache_write * inp * Decimal("1.25")
             + cache_read * inp * Decimal("0.1"))
    return int(exact.to_integral_value(rounding=ROUND_CEILING))


@pytest.mark.parametrize("model", sorted(PUBLISHED_BATCH))
def test_the_batch_price_is_half_the_published_standard_price(model):
    _, inp, out, _, _, _ = PUBLISHED[model]
    assert (Decimal(inp) / 2, Decimal(out) / 2) == tuple(Decimal(p) for p in PUBLISHED_BATCH[model])


@pytest.mark.parametrize("usage", [(1, 1, 0, 0), (7, 3, 0, 0), (1234, 567, 0, 0), (11, 16, 200, 3000), (1, 0, 0, 1)])
@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-5"])
def test_a_result_costs_exactly_the_published_batch_price(model, usage):
    input_tokens, output_tokens, cache_write, cache_read = usage
    charged = batch_ledger.batch_cost_micros(model, Usage(input_tokens, output_tokens, cache_write, cache_read))
    assert charged == published_batch_micros(model, input_tokens, output_tokens, cache_write, cache_read)


def test_a_worst_case_at_the_batch_price_is_half_rounded_up():
    assert [batch_ledger.batch_worst_case_micros(n) for n in (0, 1, 2, 3, 1001)] == [0, 1, 1, 2, 501]


def success(input_tokens, output_tokens):
    return {"type": "succeeded", "message": {"usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}}}


def test_each_result_type_settles_as_the_table_says():
    lines = [{"custom_id": "a", "result": success(10, 20)}, {"custom_id": "b", "result": {"type": "expired"}}]
    by_id = {o.custom_id: o for o in batch_ledger.outcomes(RESERVED, lines)}
    assert (by_id["a"].status, by_id["a"].cost_micros) == (ledger.OK, published_batch_micros("claude-sonnet-4-6", 10, 20))
    assert (by_id["b"].status, by_id["b"].cost_micros) == (ledger.FAILED, 0)


@pytest.mark.parametrize("kind", ["errored", "canceled", "expired"])
def test_unbilled_results_are_failed_and_charge_nothing(kind):
    outcome = batch_ledger.outcomes({"a": RESERVED["a"]}, [{"custom_id": "a", "result": {"type": kind}}])[0]
    assert (outcome.status, outcome.cost_micros, outcome.kind) == (ledger.FAILED, 0, kind)


def test_an_unknown_result_type_or_a_missing_result_is_indeterminate():
    lines = [{"custom_id": "a", "result": {"type": "deferred", "message": {"usage": {"input_tokens": 5}}}},
             {"custom_id": "stranger", "result": success(1, 1)}]
    by_id = {o.custom_id: o for o in batch_ledger.outcomes(RESERVED, lines)}
    assert set(by_id) == {"a", "b"}  # a line for a custom_id never reserved is ignored
    assert by_id["a"].status == by_id["b"].status == ledger.INDETERMINATE
    assert by_id["a"].cost_micros == by_id["b"].cost_micros == 0


def test_without_results_every_request_settles_as_the_given_kind():
    assert {o.status for o in batch_ledger.outcomes(RESERVED, None, "errored")} == {ledger.FAILED}
    assert {o.status for o in batch_ledger.outcomes(RESERVED, None)} == {ledger.INDETERMINATE}


def test_counts_follow_the_outcomes():
    lines = [{"custom_id": "a", "result": success(1, 1)}, {"custom_id": "b", "result": {"type": "canceled"}}]
    assert batch_ledger.counts(batch_ledger.outcomes(RESERVED, lines)) == {
        "processing": 0, "succeeded": 1, "errored": 0, "canceled": 1, "expired": 0}


def test_a_requests_event_id_is_fixed_by_batch_and_custom_id_and_sorts_by_the_batchs_creation():
    first = batch_ledger.request_id(0x18c0000000a, "msgbatch_x", "a")
    assert first == batch_ledger.request_id(0x18c0000000a, "msgbatch_x", "a")
    assert first != batch_ledger.request_id(0x18c0000000a, "msgbatch_x", "b")
    assert first != batch_ledger.request_id(0x18c0000000a, "msgbatch_y", "a")
    assert first.startswith("req_018c0000000a") and len(first) == len("req_") + 12 + 16


def test_reservations_survive_their_encoding():
    assert batch_ledger.decode_reservations(batch_ledger.encode_reservations(RESERVED)) == RESERVED
