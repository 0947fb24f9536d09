"""The two writes every AI request makes are built by hand (chalicelib.store's `raw_item` and `UpdateText`)
rather than through PynamoDB model instances and update actions. These tests hold them to what PynamoDB
itself would send: the same item, the same defaults and refusals, and well-formed expressions."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.models import UsageEvent
from chalicelib.store import UpdateText, raw_item

STARTED = datetime(2026, 11, 17, 9, 41, 23, 123456, tzinfo=timezone.utc)


def event_values(**changes):
    values = dict(pk="TENANT#ten_a", sk="EVENT#req_1", request_id="req_1", principal_id="usr_a",
                  principal_type="user", feature="basic_chat", model="claude-sonnet-4-6", status="ok",
                  period="2026-11", bucket=2_993_552, input_tokens=20, output_tokens=10, cache_creation_tokens=3,
                  cache_read_tokens=4, cost_micros=210, worst_case_micros=1_383, cost_bound_micros=None,
                  latency_ms=7, key_source="platform", upstream_request_id="msg_01",
                  created_at=STARTED, expires_at=STARTED + timedelta(days=400))
    values.update(changes)
    return values


def pynamodb_item(**values):
    """What PynamoDB's own save would write for the same values."""
    pk, sk = values.pop("pk"), values.pop("sk")
    return {"pk": {"S": pk}, "sk": {"S": sk}, **UsageEvent(pk, sk, **values).serialize()}


@pytest.mark.parametrize("changes", [
    {},
    {"status": "indeterminate", "cost_micros": 0, "cost_bound_micros": 1_383, "upstream_request_id": None},
    {"key_source": "tenant", "latency_ms": 0, "period": None, "bucket": None},
])
def test_a_usage_event_is_the_item_pynamodb_would_write(changes):
    values = event_values(**changes)
    assert raw_item(UsageEvent, **values) == pynamodb_item(**values)


def test_left_out_attributes_take_the_models_defaults_and_none_is_not_written():
    values = event_values()
    for name in ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens", "latency_ms"):
        del values[name]
    item = raw_item(UsageEvent, **values)
    assert item == pynamodb_item(**values)
    assert item["input_tokens"] == {"N": "0"} and "cost_bound_micros" not in item and "aggregated_at" not in item


def test_an_event_without_a_required_attribute_or_with_an_unknown_one_is_refused():
    values = event_values()
    del values["request_id"]
    with pytest.raises(ValueError, match="UsageEvent.request_id cannot be None"):
        raw_item(UsageEvent, **values)
    with pytest.raises(ValueError, match="UsageEvent.status cannot be None"):
        raw_item(UsageEvent, **event_values(status=None))
    with pytest.raises(TypeError, match="UsageEvent has no attribute colour"):
        raw_item(UsageEvent, **event_values(colour="blue"))


def test_update_text_gives_each_name_and_number_one_placeholder():
    update = UpdateText()
    hits = update.name("counters", "a:2026-11:b")
    update.require(f"attribute_not_exists({hits}) OR {hits} < {update.number(10)}")
    update.add(hits, 1)
    update.add(update.name("counters", "w:2026-11"), 10)
    update.remove(update.name("counters", "t:1:0"))
    assert update.request() == {
        "UpdateExpression": "SET #0.#1 = if_not_exists(#0.#1, :1) + :2, #0.#2 = if_not_exists(#0.#2, :1) + :0 "
                            "REMOVE #0.#3",
        "ConditionExpression": "(attribute_not_exists(#0.#1) OR #0.#1 < :0)",
        "ExpressionAttributeNames": {"#0": "counters", "#1": "a:2026-11:b", "#2": "w:2026-11", "#3": "t:1:0"},
        "ExpressionAttributeValues": {":0": {"N": "10"}, ":1": {"N": "0"}, ":2": {"N": "1"}}}


def test_update_text_joins_conditions_with_and_and_leaves_out_what_is_empty():
    update = UpdateText()
    update.require(f"{update.name('version')} = {update.number(3)}")
    update.require("attribute_not_exists(#x)")
    update.add(update.name("n"), 1)
    request = update.request()
    assert request["ConditionExpression"] == "(#0 = :0) AND (attribute_not_exists(#x))"
    assert request["UpdateExpression"] == "SET #1 = if_not_exists(#1, :1) + :2"
    bare = UpdateText()
    bare.remove(bare.name("old"))
    assert bare.request() == {"UpdateExpression": "REMOVE #0", "ExpressionAttributeNames": {"#0": "old"}}
