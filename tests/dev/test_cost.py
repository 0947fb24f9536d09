"""docs/cost.md: current with the template's memory sizes, and the AI path within its target."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from dev.bench import cost
from dev.deploy import stream_template

ROOT = Path(__file__).resolve().parents[2]


def configured(function: str) -> int:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return config["lambda_functions"][function]["lambda_memory_size"]


def test_the_document_is_what_the_template_and_prices_give():
    assert cost.DOC.read_text() == cost.document(), "run `python -m dev.bench.cost` after changing memory or a price"


def test_the_ai_path_costs_at_most_100_dollars_per_million_ten_second_calls():
    assert cost.total(10) <= Decimal(100)


def test_lambda_duration_is_memory_times_seconds_at_the_published_price():
    """Independently: GB-seconds of a million 10-second calls at $0.0000166667 per GB-second (AWS's price)."""
    memory = stream_template.MEMORY_MB
    expected = Decimal(memory) / 1024 * 10 * Decimal("0.0000166667") * 1_000_000
    [row] = [dollars for item, _, dollars in cost.items(10) if item.startswith("Lambda duration, AI path")]
    assert row == expected
    assert [dollars for item, _, dollars in cost.items(60) if item.startswith("Lambda duration, AI path")] == [
        expected * 6]


def test_per_call_charges_do_not_depend_on_the_calls_length():
    short, long = cost.items(1), cost.items(60)
    assert [d for i, _, d in short if "AI path" not in i] == [d for i, _, d in long if "AI path" not in i]
    # API Gateway REST $3.50 and three Lambda requests at $0.20, per million calls
    assert {i: d for i, _, d in short}["API Gateway REST"] == Decimal("3.50")
    assert {i: d for i, _, d in short}["Lambda requests (AI path, authorizer, fold)"] == Decimal("0.60")


def test_snapstart_is_charged_for_both_functions_an_ai_call_invokes():
    """The authorizer's and the streaming function's snapshots: a month's cache at $0.0000015046 per GB-second
    over a million calls, and 1,000 restores at $0.0001397998 per GB (AWS's Python SnapStart prices)."""
    snapshot_gb = (Decimal(configured("tenant_request_auth")) + Decimal(stream_template.MEMORY_MB)) / 1024
    rows = {item.split(" (")[0]: dollars for item, _, dollars in cost.items(10)}
    assert rows["SnapStart cache"] == snapshot_gb * 30 * 24 * 3600 * Decimal("0.0000015046")
    assert rows["SnapStart restores"] == 1000 * snapshot_gb * Decimal("0.0001397998")
