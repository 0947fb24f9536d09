"""Billing periods: calendar months in UTC."""
from __future__ import annotations

import re
from datetime import datetime, timezone

from chalicelib.errors import BadRequest

_PERIOD = re.compile(r"(2[0-9]{3})-(0[1-9]|1[0-2])")  # ASCII digits: \d would take ٢٠٢٦ too


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def period_of(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def current_period() -> str:
    return period_of(utcnow())


def parse_period(value: str | None) -> str:
    if value is None or value == "":
        return current_period()
    if not _PERIOD.fullmatch(value):
        raise BadRequest("period must look like YYYY-MM (years 2000 to 2999).", code="invalid_period")
    return value


def period_start(period: str) -> datetime:
    year, month = (int(p) for p in period.split("-"))
    return datetime(year, month, 1, tzinfo=timezone.utc)


def period_end(period: str) -> datetime:
    """The first instant of the next period: when this one's counters stop applying."""
    start = period_start(period)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


def isoformat(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
