"""Message Batches over HTTP with the official Python SDK, unchanged, against `make run`'s processes (moto
server, the stand-in, chalice local and the stream worker): create, wait for the end, read the results,
and find the batch settled at the published batch prices in GET /usage and the usage events."""
from __future__ import annotations

import time
from decimal import ROUND_CEILING, Decimal

import anthropic
import pytest

from dev.stack import local_stack as stack
from published import PUBLISHED_BATCH
from test_local_stack import call, developer_shell, free_ports, stop_and_check

pytestmark = pytest.mark.e2e
SONNET = "claude-sonnet-4-6"
BATCH_SECONDS = "1.0"


@pytest.fixture(scope="module")
def batch_stack():
    # The stand-in and the stream worker inherit these: batches end after a second, and the worker sweeps
    # (reservations and batches) every two seconds instead of every minute.
    shell = developer_shell(STANDIN_BATCH_SECONDS=BATCH_SECONDS, TESSERA_SWEEP_SECONDS="2")
    running = stack.LocalStack(*free_ports(3), environ=shell).start()
    try:
        yield running
    finally:
        stop_and_check(running)


def new_tenant(api_url):
    import secrets

    slug = f"batch-{secrets.token_hex(4)}"
    email, password = f"owner@{slug}.example.com", "correct-horse-battery"
    status, created = call("POST", api_url + "/tenants", {"company_name": "Batch Inc", "slug": slug,
                                                          "email": email, "password": password})
    assert status == 201, created
    _, login = call("POST", api_url + "/auth/login", {"tenant": slug, "email": email, "password": password})
    _, key = call("POST", api_url + "/api-keys", {"name": "batch"}, token=login["access_token"])
    return login["access_token"], key["key"]


def published_batch_micros(usage):
    inp, out = (Decimal(p) for p in PUBLISHED_BATCH[SONNET])
    exact = usage.input_tokens * inp + usage.output_tokens * out
    return int(exact.to_integral_value(rounding=ROUND_CEILING))


def test_the_sdk_creates_reads_and_is_billed_for_a_batch_over_http(batch_stack):
    token, key = new_tenant(batch_stack.api_url)
    sdk = anthropic.Anthropic(base_url=batch_stack.api_url, api_key=key, max_retries=0)
    sdk.messages.count_tokens(model=SONNET, messages=[{"role": "user", "content": "warm"}])  # a warm process
    started = time.monotonic()
    created = sdk.messages.batches.create(requests=[
        {"custom_id": f"q{i}", "params": {"model": SONNET, "max_tokens": 32,
                                          "messages": [{"role": "user", "content": f"batch over http {i}"}]}}
        for i in range(3)])
    created_s = time.monotonic() - started
    _, held = call("GET", batch_stack.api_url + "/usage", token=token)
    assert created.processing_status == "in_progress" and created.request_counts.processing == 3
    batch = created
    while batch.processing_status != "ended" and time.monotonic() - started < 30:
        time.sleep(0.2)
        batch = sdk.messages.batches.retrieve(created.id)
    ended_s = time.monotonic() - started
    assert batch.request_counts.succeeded == 3
    assert batch.results_url == f"{batch_stack.api_url}/v1/messages/batches/{created.id}/results"
    results = list(sdk.messages.batches.results(created.id))
    results_s = time.monotonic() - started
    assert sorted(r.custom_id for r in results) == ["q0", "q1", "q2"]
    expected = sum(published_batch_micros(r.result.message.usage) for r in results)
    assert [b.id for b in sdk.messages.batches.list()] == [created.id]

    usage = None
    while time.monotonic() - started < 30:  # the stream worker folds the events within about a second
        _, usage = call("GET", batch_stack.api_url + "/usage", token=token)
        if usage["requests"] == 3:
            break
        time.sleep(0.2)
    settled_s = time.monotonic() - started
    assert usage["total_cost_usd"] == str((Decimal(expected) / 1_000_000).quantize(Decimal("0.000001")))
    assert usage["budget"]["reserved_usd"] == "0.000000"
    _, events = call("GET", batch_stack.api_url + "/usage/events", token=token)
    assert sorted(e["custom_id"] for e in events["events"] if e.get("batch_id") == created.id) == ["q0", "q1", "q2"]
    print(f"batch round trip over HTTP: created {created_s:.2f} s, ended seen {ended_s:.2f} s, results "
          f"{results_s:.2f} s, settled in GET /usage {settled_s:.2f} s (stand-in batch time {BATCH_SECONDS} s); "
          f"{expected} micro-dollars for usage {[(r.result.message.usage.input_tokens, r.result.message.usage.output_tokens) for r in results]}"
          f" (input, output tokens); held at creation {held['budget']['reserved_usd']} USD")

    other_token, other_key = new_tenant(batch_stack.api_url)
    intruder = anthropic.Anthropic(base_url=batch_stack.api_url, api_key=other_key, max_retries=0)
    with pytest.raises(anthropic.NotFoundError):
        intruder.messages.batches.retrieve(created.id)
    with pytest.raises(anthropic.NotFoundError) as refused:
        intruder.beta.files.list()
    assert refused.value.body["error"]["type"] == "not_found_error"


def test_a_batch_nobody_reads_is_settled_by_the_sweep(batch_stack):
    token, key = new_tenant(batch_stack.api_url)
    sdk = anthropic.Anthropic(base_url=batch_stack.api_url, api_key=key, max_retries=0)
    created = sdk.messages.batches.create(requests=[
        {"custom_id": "unread", "params": {"model": SONNET, "max_tokens": 16,
                                           "messages": [{"role": "user", "content": "nobody reads this batch"}]}}])
    started, usage = time.monotonic(), None
    while time.monotonic() - started < 60:
        _, usage = call("GET", batch_stack.api_url + "/usage", token=token)
        if usage["requests"] == 1:
            break
        time.sleep(0.5)
    assert usage["requests"] == 1 and usage["total_cost_usd"] != "0.000000"
    print(f"an unread batch settled by the worker's sweep {time.monotonic() - started:.1f} s after its creation")
    results = list(sdk.messages.batches.results(created.id))
    expected = published_batch_micros(results[0].result.message.usage)
    assert usage["total_cost_usd"] == str((Decimal(expected) / 1_000_000).quantize(Decimal("0.000001")))
