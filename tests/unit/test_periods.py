"""Billing periods are calendar months in UTC: their names, their bounds, and which names a client may send."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.errors import BadRequest
from chalicelib.periods import (current_period, isoformat, parse_period, period_end, period_of, period_start,
                                utcnow)

UTC = timezone.utc


def test_utcnow_is_an_aware_utc_time_close_to_now():
    now = utcnow()
    assert now.tzinfo is UTC
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)


@pytest.mark.parametrize("moment, period", [
    (datetime(2026, 1, 1, 0, 0, tzinfo=UTC), "2026-01"),
    (datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC), "2026-11"),
    (datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC), "2026-12"),
    (datetime(905, 3, 2, tzinfo=UTC), "0905-03"),
])
def test_period_of_names_the_month(moment, period):
    assert period_of(moment) == period


def test_current_period_is_the_month_of_now():
    assert current_period() == datetime.now(UTC).strftime("%Y-%m")


@pytest.mark.parametrize("value", [None, ""])
def test_no_period_means_the_current_one(value):
    assert parse_period(value) == current_period()


@pytest.mark.parametrize("value", ["2000-01", "2026-11", "2999-12", "2024-10"])
def test_a_well_formed_period_is_taken_as_it_is(value):
    assert parse_period(value) == value


@pytest.mark.parametrize("value", ["1999-12", "3000-01", "2026-00", "2026-13", "2026-1", "26-11", "2026-11-01",
                                   "2026/11", " 2026-11", "2026-11\n", "next"])
def test_a_malformed_period_is_400_invalid_period(value):
    with pytest.raises(BadRequest) as caught:
        parse_period(value)
    assert (caught.value.status, caught.value.code) == (400, "invalid_period")
    assert "YYYY-MM" in caught.value.message


@pytest.mark.parametrize("period, start, end", [
    ("2026-01", datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)),
    ("2026-11", datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)),
    ("2026-12", datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
    ("2024-02", datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)),
])
def test_a_period_runs_from_its_first_instant_to_the_next_periods(period, start, end):
    assert period_start(period) == start and period_start(period).tzinfo is UTC
    assert period_end(period) == end and period_end(period).tzinfo is UTC


@pytest.mark.parametrize("moment, text", [
    (datetime(2026, 11, 26, 9, 5, 7, tzinfo=UTC), "2026-11-26T09:05:07Z"),
    (datetime(2026, 11, 26, 9, 5, 7, 999_999, tzinfo=UTC), "2026-11-26T09:05:07Z"),
    (datetime(2026, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-2))), "2027-01-01T01:30:00Z"),
    (datetime(2026, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=3))), "2025-12-31T22:00:00Z"),
])
def test_isoformat_writes_utc_to_the_second_with_a_z(moment, text):
    assert isoformat(moment) == text
