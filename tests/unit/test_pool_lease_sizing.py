"""This instance's lease on the pool, the parts that need no store (chalicelib/metering/pool_leases.py): how much
a renewal asks for, when a lease covers a call, and the ceilings as configured."""
from __future__ import annotations

import pytest

from chalicelib.metering.pool import Amounts
from chalicelib.metering.pool_leases import covers, parse_ceilings, top_up
from chalicelib.settings import DEFAULT_POOL_CEILINGS

CEILING = Amounts(4000, 2_000_000, 400_000)


def test_a_lease_that_covers_the_call_asks_the_item_for_nothing():
    assert top_up(Amounts(5, 5000, 1000), Amounts(1, 5000, 1000), CEILING) == Amounts(0, 0, 0)


def test_a_first_renewal_takes_enough_for_four_calls_like_this_one():
    assert top_up(Amounts(0, 100, 0), Amounts(1, 300, 64), CEILING) == Amounts(4, 1200, 256)


def test_a_busy_instances_slice_doubles_up_to_a_share_of_each_ceiling():
    # 5 % of 4,000 / 2,000,000 / 400,000 caps 1,024 calls' worth
    assert top_up(Amounts(), Amounts(1, 300, 64), CEILING, calls=16) == Amounts(16, 4800, 1024)
    assert top_up(Amounts(), Amounts(1, 300, 64), CEILING, calls=1024) == Amounts(200, 100_000, 20_000)


def test_a_renewal_takes_what_a_large_call_lacks_when_that_passes_the_slice():
    assert top_up(Amounts(0, 0, 1000), Amounts(1, 150_000, 64_000), CEILING, calls=1024) == \
        Amounts(200, 150_000, 63_000)


def test_a_slice_never_exceeds_a_tiny_ceiling():
    assert top_up(Amounts(), Amounts(1, 1, 1), Amounts(10, 10, 10)) == Amounts(1, 1, 1)


def test_covers_needs_every_dimension():
    assert covers(Amounts(1, 10, 10), Amounts(1, 10, 10))
    assert not covers(Amounts(1, 10, 9), Amounts(1, 10, 10))


def test_ceilings_read_per_model_with_a_default_for_the_rest():
    assert parse_ceilings("claude-haiku-4-5=50/40000/8000; *=4000/2000000/400000") == {
        "claude-haiku-4-5": Amounts(50, 40_000, 8_000), "*": Amounts(4000, 2_000_000, 400_000)}
    assert parse_ceilings(DEFAULT_POOL_CEILINGS) == {"*": CEILING}
    assert parse_ceilings("") == {}


def test_a_malformed_ceiling_is_refused_rather_than_read_as_unlimited():
    with pytest.raises(ValueError):
        parse_ceilings("claude-haiku-4-5=fifty/1/1")
