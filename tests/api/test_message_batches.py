"""Message Batches (`/v1/messages/batches*`) and Files (`/v1/files*`) driven by the official SDK.

The SDK's transport hands each request to chalice's test client (test_messages_api.sdk_for); the app
talks to the stand-in over HTTP, whose batches end after STANDIN_BATCH_SECONDS. Money is
checked against the published batch prices (tests/published.py), computed here from each result's
usage, never from our pricing code."""
from __future__ import annotations

import time
from decimal import ROUND_CEILING, Decimal

import anthropic
import pytest

from conftest import WritesNothing, settle_usage, stored_items
from published import PUBLISHED_BATCH
from test_messages_api import sdk, sdk_for, tenant_key  # noqa: F401 (sdk and tenant_key are fixtures)

SONNET = "claude-sonnet-4-6"


@pytest.fixture(autouse=True)
def quick_batches(monkeypatch):
    monkeypatch.setenv("STANDIN_BATCH_SECONDS", "0.3")


def request(custom_id, text, max_tokens=64, model=SONNET):
    return {"custom_id": custom_id, "params": {"model": model, "max_tokens": max_tokens,
                                               "messages": [{"role": "user", "content": text}]}}


def wait_ended(sdk, batch_id, seconds=10):
    deadline = time.monotonic() + seconds
    while True:
        batch = sdk.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended" or time.monotonic() > deadline:
            return batch
        time.sleep(0.1)


def batch_price_micros(model, usage):
    """The published batch prices (USD per million tokens = micro-dollars per token), rounded up once."""
    input_price, output_price = (Decimal(p) for p in PUBLISHED_BATCH[model])
    exact = usage.input_tokens * input_price + usage.output_tokens * output_price
    return int(exact.to_integral_value(rounding=ROUND_CEILING))


def usage_of(api, tenant):
    return api.call("GET", "/usage", token=tenant.token).json


def usd(micros):
    return str((Decimal(micros) / 1_000_000).quantize(Decimal("0.000001")))


def batch_events(api, tenant):
    events = api.call("GET", "/usage/events", token=tenant.token).json["events"]
    return [e for e in events if e.get("batch_id")]


# --- the round trip -------------------------------------------------------------------------------

def test_a_batch_ends_and_is_settled_once_at_the_batch_price(api, sdk, tenant_key):
    tenant, _ = tenant_key
    created = sdk.messages.batches.create(requests=[
        request("first", "batch-probe one"), request("second", "batch-probe two, a little longer"),
        request("broken", "batch-probe [[standin:500]]")])
    assert created.id.startswith("msgbatch_") and created.type == "message_batch"
    assert created.processing_status == "in_progress" and created.request_counts.processing == 3
    assert created.results_url is None

    ended = wait_ended(sdk, created.id)
    assert ended.processing_status == "ended"
    assert (ended.request_counts.succeeded, ended.request_counts.errored) == (2, 1)
    assert ended.results_url.endswith(f"/v1/messages/batches/{created.id}/results")

    results = {r.custom_id: r.result for r in sdk.messages.batches.results(created.id)}
    assert {k: v.type for k, v in results.items()} == {"first": "succeeded", "second": "succeeded",
                                                       "broken": "errored"}
    expected = sum(batch_price_micros(SONNET, results[k].message.usage) for k in ("first", "second"))
    assert expected > 0

    settle_usage()
    usage = usage_of(api, tenant)
    assert usage["total_cost_usd"] == usd(expected) and usage["by_feature"]["basic_chat"]["cost_usd"] == usd(expected)
    assert usage["requests"] == 2 and usage["failed_requests"] == 1
    assert usage["budget"]["reserved_usd"] == "0.000000"  # the unused worst case came back
    events = batch_events(api, tenant)
    assert sorted(e["custom_id"] for e in events) == ["broken", "first", "second"]
    assert {e["status"] for e in events if e["custom_id"] != "broken"} == {"ok"}

    # Reading it again, listing it and the sweep change nothing: settled once.
    sdk.messages.batches.retrieve(created.id)
    list(sdk.messages.batches.results(created.id))
    assert [b.id for b in sdk.messages.batches.list()] == [created.id]
    from chalicelib.jobs.batch_sweep import sweep_batches
    sweep_batches()
    settle_usage()
    assert usage_of(api, tenant)["total_cost_usd"] == usd(expected)
    assert len(batch_events(api, tenant)) == 3


def test_the_batch_admits_its_requests_and_gives_back_what_did_not_run(api, sdk, tenant_key):
    tenant, _ = tenant_key
    created = sdk.messages.batches.create(requests=[request("ok", "batch-quota"),
                                                    request("bad", "batch-quota [[standin:529]]")])
    used = api.call("GET", "/features", token=tenant.token).json["features"]["basic_chat"]["used"]
    assert used == 2  # both admitted at creation
    item = [i for i in stored_items(tenant.id) if i["sk"]["S"].startswith("BATCH#")][0]
    worst = int(item["worst_case_micros"]["N"])
    assert worst > 0 and usage_of(api, tenant)["budget"]["reserved_usd"] == usd(worst)
    wait_ended(sdk, created.id)
    settle_usage()
    features = api.call("GET", "/features", token=tenant.token).json["features"]["basic_chat"]
    assert features["used"] == 1  # the errored one's admission came back
    assert usage_of(api, tenant)["budget"]["reserved_usd"] == "0.000000"


def test_cancel_makes_it_canceling_then_ended_with_canceled_results_and_no_charge(api, sdk, tenant_key,
                                                                                   monkeypatch):
    tenant, _ = tenant_key
    monkeypatch.setenv("STANDIN_BATCH_SECONDS", "1.0")
    created = sdk.messages.batches.create(requests=[request("a", "batch-cancel"), request("b", "batch-cancel")])
    canceling = sdk.messages.batches.cancel(created.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
    ended = wait_ended(sdk, created.id)
    assert ended.request_counts.canceled == 2
    assert {r.result.type for r in sdk.messages.batches.results(created.id)} == {"canceled"}
    settle_usage()
    assert usage_of(api, tenant)["total_cost_usd"] == "0.000000"
    assert api.call("GET", "/features", token=tenant.token).json["features"]["basic_chat"]["used"] == 0
    deleted = sdk.messages.batches.delete(created.id)
    assert deleted.type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        sdk.messages.batches.retrieve(created.id)


# --- refusals ---------------------------------------------------------------------------------------

def test_another_tenants_batch_id_is_not_found_on_every_route(api, client, sdk):
    created = sdk.messages.batches.create(requests=[request("mine", "batch-isolation")])
    other = api.signup()
    intruder = sdk_for(client, api.api_key(other)["key"])
    for call in (intruder.messages.batches.retrieve, intruder.messages.batches.cancel,
                 intruder.messages.batches.delete):
        with pytest.raises(anthropic.NotFoundError) as raised:
            call(created.id)
        assert raised.value.body["error"]["type"] == "not_found_error"
    wait_ended(sdk, created.id)
    answer = api.call("GET", f"/v1/messages/batches/{created.id}/results",
                      token=api.api_key(other)["key"])
    assert answer.status_code == 404 and answer.json["error"]["type"] == "not_found_error"
    assert intruder.messages.batches.list().data == []


def test_a_bad_request_names_its_index_and_custom_id_and_writes_nothing(api, sdk, tenant_key):
    tenant, _ = tenant_key
    bad = {"custom_id": "second", "params": {"model": SONNET, "max_tokens": 64, "messages": [], "stream": False}}
    with WritesNothing(tenant.id):
        with pytest.raises(anthropic.BadRequestError) as raised:
            sdk.messages.batches.create(requests=[request("first", "fine"), bad])
    error = raised.value.body["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("requests.1 (custom_id 'second'): ")
    assert (error["index"], error["custom_id"]) == (1, "second")


def test_a_model_outside_the_plan_is_refused_for_the_batch(sdk, tenant_key):
    with WritesNothing(tenant_key[0].id):
        with pytest.raises(anthropic.NotFoundError) as raised:  # as /v1/messages answers a model not offered
            sdk.messages.batches.create(requests=[request("opus", "hi", model="claude-opus-5")])
    assert "requests.0 (custom_id 'opus')" in raised.value.body["error"]["message"]
    assert raised.value.body["error"]["type"] == "not_found_error"


def test_a_hard_budget_refuses_the_whole_batchs_worst_case(api, sdk, tenant_key, operator_token):
    tenant, _ = tenant_key
    # The budget holds one request's worst case at the batch price, not two.
    api.call("PATCH", "/tenant", {"monthly_budget_usd": "0.0010", "budget_hard_limit": True}, token=tenant.token)
    one = request("one", "x", max_tokens=100)
    sdk.messages.batches.create(requests=[one])  # within budget: admitted
    with WritesNothing(tenant.id, table=False):
        with pytest.raises(anthropic.APIStatusError) as raised:
            sdk.messages.batches.create(requests=[request("a", "x", max_tokens=100),
                                                  request("b", "x", max_tokens=100)])
    assert raised.value.status_code == 402 and raised.value.body["error"]["type"] == "billing_error"


def test_a_key_with_a_hard_budget_of_its_own_cannot_create_a_batch(api, client, sdk, tenant_key):
    """A batch settles hours later, outside the per-call write a key's hard budget is enforced in: refused,
    named, nothing written; a soft budget (alerts only) does not stop it."""
    tenant, _ = tenant_key
    key = api.api_key(tenant)
    api.call("PUT", f"/api-keys/{key['key_id']}/budget", {"monthly_requests": 50, "hard_limit": True},
             token=tenant.token)
    with WritesNothing(tenant.id, table=False):
        with pytest.raises(anthropic.PermissionDeniedError) as raised:
            sdk_for(client, key["key"]).messages.batches.create(requests=[request("one", "x")])
    assert raised.value.body["error"]["code"] == "batches_with_principal_budget"
    api.call("PUT", f"/api-keys/{key['key_id']}/budget", {"monthly_requests": 50, "hard_limit": False},
             token=tenant.token)
    assert sdk_for(client, key["key"]).messages.batches.create(requests=[request("one", "x")]).id


def test_a_stream_request_in_a_batch_is_refused(sdk):
    streamed = request("s", "hi")
    streamed["params"]["stream"] = True
    with pytest.raises(anthropic.BadRequestError) as raised:
        sdk.messages.batches.create(requests=[streamed])
    assert "stream is not available in a batch" in raised.value.body["error"]["message"]


# --- Files --------------------------------------------------------------------------------------

@pytest.mark.parametrize("method,path", [("GET", "/v1/files"), ("GET", "/v1/files/file_123"),
                                         ("DELETE", "/v1/files/file_123"), ("GET", "/v1/files/file_123/content")])
def test_files_are_refused_in_anthropics_shape_after_the_credential(api, tenant_key, method, path):
    unauthenticated = api.call(method, path, token="tsk_ten_x.key_x.nope")
    assert unauthenticated.status_code == 401
    assert unauthenticated.json["error"]["type"] == "authentication_error"
    answer = api.call(method, path, token=tenant_key[1])
    assert answer.status_code == 404
    assert answer.json["type"] == "error" and answer.json["error"]["type"] == "not_found_error"
    assert "Files API is not offered" in answer.json["error"]["message"]


def test_a_file_upload_with_the_sdk_is_refused_in_anthropics_shape(sdk):
    with pytest.raises(anthropic.NotFoundError) as raised:
        sdk.beta.files.upload(file=("notes.txt", b"hello", "text/plain"))
    assert "Files API is not offered" in raised.value.body["error"]["message"]


# --- what the ledger's readers see, and what it costs to write -------------------------------------

def test_the_budget_job_and_usage_count_a_settled_batch(api, sdk, tenant_key):
    from chalicelib.jobs.budget_check import check_budgets

    tenant, _ = tenant_key
    created = sdk.messages.batches.create(requests=[request("a", "batch-budget"), request("b", "batch-budget 2")])
    wait_ended(sdk, created.id)
    spent = sum(batch_price_micros(SONNET, r.result.message.usage) for r in sdk.messages.batches.results(created.id))
    settle_usage()
    # A budget the batch alone has used up: the job alerts at 100 %, from the month's totals.
    api.call("PATCH", "/tenant", {"monthly_budget_usd": usd(spent), "budget_alert_thresholds": [100]},
             token=tenant.token)
    assert usage_of(api, tenant)["budget"]["spent_usd"] == usd(spent)
    report = check_budgets()
    assert [a["threshold"] for a in report.alerts_sent if a["tenant_id"] == tenant.id] == [100]


WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}


def test_creation_writes_three_times_and_settlement_once_per_request_and_twice_more(sdk):
    from dev.bench.probes import DynamoProbe

    requests = [request(f"r{i}", f"batch-writes {i}") for i in range(4)]
    sdk.messages.batches.list()  # the instance's tenant state and clients are warm
    with DynamoProbe(this_thread=True) as creating:
        created = sdk.messages.batches.create(requests=requests)
    time.sleep(0.4)
    with DynamoProbe(this_thread=True) as settling:
        assert sdk.messages.batches.retrieve(created.id).processing_status == "ended"
    print(f"creation: {dict(creating.calls)}; settlement: {dict(settling.calls)}")
    # Admission (UpdateItem), the batch item and its open mark (one transaction), the upstream id (UpdateItem).
    assert {n: c for n, c in creating.calls.items() if n in WRITES} == {"UpdateItem": 2, "TransactWriteItems": 1}
    # One event per request, the batch item marked settled, its open mark deleted.
    assert {n: c for n, c in settling.calls.items() if n in WRITES} == {"PutItem": 4, "UpdateItem": 1,
                                                                         "DeleteItem": 1}


def test_a_batch_upstream_refused_gives_every_request_back(api, sdk, tenant_key, standin):
    import json
    import urllib.request

    tenant, _ = tenant_key
    fault = urllib.request.Request(standin + "/_standin/faults", data=json.dumps({"status": 401}).encode(),
                                   headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(fault).read()
    try:
        with pytest.raises(anthropic.APIStatusError) as refused:
            sdk.messages.batches.create(requests=[request("a", "refused"), request("b", "refused")])
    finally:
        urllib.request.urlopen(urllib.request.Request(standin + "/_standin/faults", method="DELETE")).read()
    assert refused.value.status_code == 502 and refused.value.body["error"]["type"] == "api_error"
    settle_usage()
    assert api.call("GET", "/features", token=tenant.token).json["features"]["basic_chat"]["used"] == 0
    usage = usage_of(api, tenant)
    assert (usage["failed_requests"], usage["total_cost_usd"], usage["budget"]["reserved_usd"]) == (
        2, "0.000000", "0.000000")
    [batch] = sdk.messages.batches.list().data
    assert batch.processing_status == "ended" and batch.request_counts.errored == 2
    assert {r.result.type for r in sdk.messages.batches.results(batch.id)} == {"errored"}


def test_batches_are_listed_newest_first_and_paged_as_anthropic_pages(sdk):
    ids = [sdk.messages.batches.create(requests=[request("p", f"batch-page {i}")]).id for i in range(3)]
    first = sdk.messages.batches.list(limit=2)
    assert [b.id for b in first.data] == [ids[2], ids[1]] and first.has_more
    assert (first.first_id, first.last_id) == (ids[2], ids[1])
    older = sdk.messages.batches.list(limit=2, after_id=ids[1])
    assert [b.id for b in older.data] == [ids[0]] and not older.has_more
    newer = sdk.messages.batches.list(limit=1, before_id=ids[0])
    assert [b.id for b in newer.data] == [ids[1]] and newer.has_more
    assert [b.id for b in sdk.messages.batches.list()] == ids[::-1]  # the SDK's auto-paging walks them all


def test_a_batch_whose_own_key_was_removed_is_listed_as_last_seen_and_named_when_read(api, sdk, tenant_key):
    tenant, _ = tenant_key
    api.call("PUT", "/tenant/ai-config/api-key", {"api_key": "sk-ant-own-key-for-batches"}, token=tenant.token)
    created = sdk.messages.batches.create(requests=[request("own", "batch-own-key")])
    api.call("DELETE", "/tenant/ai-config/api-key", token=tenant.token)
    with pytest.raises(anthropic.APIStatusError) as unavailable:
        sdk.messages.batches.retrieve(created.id)
    assert unavailable.value.status_code == 409
    assert unavailable.value.body["error"]["code"] == "batch_key_unavailable"
    listed = sdk.messages.batches.list().data
    assert [(b.id, b.processing_status) for b in listed] == [(created.id, "in_progress")]
