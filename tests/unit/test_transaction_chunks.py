"""A tenant's events are folded in transactions of at most DynamoDB's 100 items, each filled as far as they go.

A chunk's items: its events, the reconciliation item, and every item its charged events add to (the month,
and per feature, model, key, day and the platform's totals by plan and by model). Counted here by hand.
"""
from datetime import datetime, timezone

from chalicelib.metering import aggregator
from chalicelib.metering.ledger import FAILED, OK
from chalicelib.models import UsageEvent

PK = "TENANT#t_chunks"
NOON = datetime(2103, 3, 4, 12, tzinfo=timezone.utc)


def event(n: int, principal: str, status: str = OK) -> UsageEvent:
    return UsageEvent(PK, f"EVENT#{n:04d}", request_id=f"r{n}", principal_id=principal, principal_type="api_key",
                      feature="basic_chat", model="claude-haiku-4-5", status=status, period="2103-03",
                      created_at=NOON, key_source="pool")


def test_a_chunk_is_filled_to_exactly_100_items_and_the_next_event_starts_another():
    # The first event: itself, the reconciliation item and 7 items (month, feature, model, key, day, and the
    # platform's plan and model totals): 9. Each of 40 more on a key of its own: itself and its key's item,
    # 2 more (89). Then 12 on the first key, each itself only: the 11th makes 100, the 12th would be the 101st.
    events = [event(0, "key_0")] + [event(n, f"key_{n}") for n in range(1, 41)] + \
             [event(n, "key_0") for n in range(41, 53)]
    chunks = aggregator.chunks(PK, "free", events)
    assert [len(c) for c in chunks] == [52, 1]
    assert chunks[1][0] is events[52]


def test_events_that_charge_nothing_need_only_themselves_and_the_month():
    events = [event(n, f"key_{n}", FAILED) for n in range(100)]  # 80 a transaction: the chunk limit comes first
    assert [len(c) for c in aggregator.chunks(PK, "free", events)] == [80, 20]
