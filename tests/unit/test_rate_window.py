"""The per-minute rate's decision as a function of plain values (chalicelib.metering.admission.rate_wait):
which calls the window counts, and that the Retry-After it names is true: a call that waits it is
admitted, a moment earlier it is not. No store: the counters are built here the way an admission
writes them (one to its minute, one to its 5-second slot)."""
from __future__ import annotations

import math
import random
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.metering.admission import Moment, rate_wait

NOON = datetime(2026, 11, 17, 12, 0, 0, tzinfo=timezone.utc)


def at(seconds: float) -> Moment:
    return Moment.of(NOON + timedelta(seconds=seconds))


def counters(*call_seconds: float) -> dict:
    """The admission item's rate counters after calls at these seconds past noon."""
    out = Counter()
    for second in call_seconds:
        moment = at(second)
        out[f"m:{moment.minute}"] += 1
        out[f"s:{moment.minute}:{moment.slot}"] += 1
    return dict(out)


def test_nothing_counted_admits_now():
    assert rate_wait({}, 1, at(0)) == 0


def test_under_the_limit_admits_now():
    assert rate_wait(counters(0, 1), 3, at(2)) == 0


def test_one_call_a_minute_waits_until_its_slot_is_twelve_slots_old():
    # the call at 12:00:03 is in the slot from 12:00:00; it leaves the window at 12:01:00
    assert rate_wait(counters(3), 1, at(3.5)) == pytest.approx(56.5)
    assert rate_wait(counters(3), 1, at(59.5)) == pytest.approx(0.5)
    assert rate_wait(counters(3), 1, at(60)) == 0


def test_the_wait_is_for_the_oldest_slots_that_hold_the_excess():
    calls = counters(1, 1, 12, 31)  # slots from :00 (two), :10 and :30; a limit of 3
    assert rate_wait(calls, 3, at(40)) == pytest.approx(20)   # the two of :00 leave at 12:01:00
    assert rate_wait(calls, 2, at(40)) == pytest.approx(30)   # and the one of :10 at 12:01:10
    assert rate_wait(calls, 1, at(40)) == pytest.approx(50)   # and the one of :30 at 12:01:30


def test_the_previous_minute_counts_from_the_slot_after_nows():
    calls = counters(44, 46)  # slots 8 and 9 of 12:00
    assert rate_wait(calls, 1, at(64)) == pytest.approx(41)     # 12:01:04: both count, until slot 9 leaves
    assert rate_wait(calls, 2, at(64)) == pytest.approx(36)     # a limit of 2: until slot 8 leaves
    assert rate_wait(calls, 1, at(100)) == pytest.approx(5)     # 12:01:40, slot 8: slot 8 is out, 9 is in
    assert rate_wait(calls, 1, at(105)) == 0                    # 12:01:45: both out


def test_calls_older_than_the_previous_minute_are_not_counted():
    assert rate_wait(counters(0, 1, 2), 1, at(125)) == 0


def test_calls_in_a_later_minute_are_not_counted():
    """An instance whose clock runs ahead can write the next minute's first slot before this one ends."""
    assert rate_wait(counters(60), 1, at(59)) == 0


def test_a_limit_of_zero_admits_nothing_and_says_a_minute():
    assert rate_wait({}, 0, at(10)) == 60


def simulate(limit, arrivals):
    """Admit each arrival the decision admits; return the admitted times and every (time, wait) refused."""
    admitted, refused = [], []
    for t in arrivals:
        wait = rate_wait(counters(*admitted), limit, at(t))
        if wait == 0:
            admitted.append(t)
        else:
            refused.append((t, wait, list(admitted)))
    return admitted, refused


@pytest.mark.parametrize("limit", [1, 2, 3, 10])
def test_retry_after_is_true_and_never_above_sixty_seconds(limit):
    rng = random.Random(limit)
    arrivals = sorted(round(rng.uniform(0, 170), 3) for _ in range(40 * limit))
    admitted, refused = simulate(limit, arrivals)
    assert refused, "the arrivals must meet the limit"
    for t, wait, before in refused:
        history = counters(*before)
        retry_after = math.ceil(wait)
        assert 0 < wait <= 60 and retry_after <= 60
        assert rate_wait(history, limit, at(t + wait)) == 0           # admitted when it said
        assert rate_wait(history, limit, at(t + retry_after)) == 0    # and after the whole seconds of the header
        assert rate_wait(history, limit, at(t + wait - 0.001)) > 0    # not a moment before


@pytest.mark.parametrize("limit", [1, 2, 5])
def test_no_55_seconds_hold_more_calls_than_the_limit(limit):
    rng = random.Random(100 + limit)
    admitted, _ = simulate(limit, sorted(round(rng.uniform(0, 300), 3) for _ in range(60 * limit)))
    for index, first in enumerate(admitted):
        assert sum(1 for t in admitted[index:] if t - first < 55) <= limit
