"""The platform's month, for operators: settled requests, tokens and spend by plan and by model.

The usage aggregator adds every charged call to two PlatformUsage counters (its tenant's plan, its model)
in the same transaction that folds the call into the tenant's totals, so these sums equal the sum of
every tenant's month to the micro-dollar. A report reads the month's PLATFORM_SHARDS partitions, one
Query each, whatever the number of tenants or calls.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, Optional

from chalicelib import pricing
from chalicelib.models import PlatformUsage
from chalicelib.periods import parse_period

COUNTED = ("requests", "input_tokens", "output_tokens", "cost_micros")


def _view(numbers: Dict[str, int]) -> dict:
    return {"requests": numbers["requests"], "input_tokens": numbers["input_tokens"],
            "output_tokens": numbers["output_tokens"], "cost_usd": pricing.usd(numbers["cost_micros"])}


def totals(period_param: Optional[str]) -> dict:
    period = parse_period(period_param)
    grains: Dict[str, Dict[str, Dict[str, int]]] = {"PLAN": {}, "MODEL": {}}
    for partition in PlatformUsage.partitions(period):
        for item in PlatformUsage.query(partition):
            grain = item.sk.split("#", 1)[0]
            numbers = grains[grain].setdefault(item.name, defaultdict(int))
            for name in COUNTED:
                numbers[name] += int(getattr(item, name))
    whole: Dict[str, int] = defaultdict(int)
    for numbers in grains["PLAN"].values():
        for name in COUNTED:
            whole[name] += numbers[name]
    return {"period": period, "totals": _view(whole),
            "by_plan": {name: _view(n) for name, n in sorted(grains["PLAN"].items())},
            "by_model": {name: _view(n) for name, n in sorted(grains["MODEL"].items())}}
