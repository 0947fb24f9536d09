"""The streaming function as Lambda runs it: its WSGI app served over real HTTP (chalicelib.stream_host.server),
invoked the way the Lambda Web Adapter invokes it (dev/stack/web_adapter.py: API Gateway's proxy event as an HTTP
request with `x-amzn-request-context`, the response body read as it arrives). Real gateway and ledger on moto,
the stand-in over HTTP pacing its events."""
from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from dev.stack import web_adapter
from chalicelib.stream_host import server
from test_metering_concurrency import new_tenant
from test_streaming import events_of, standin_bill

PACING = 0.4


@pytest.fixture(scope="module")
def app_url():
    running = server.make("127.0.0.1", 0)
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{running.server_port}"
    running.shutdown()
    running.server_close()


def event(path, body, ctx, headers=None, context=True):
    request_context = {"requestId": str(uuid.uuid4()), "resourcePath": path, "httpMethod": "POST", "stage": "api",
                       "identity": {"sourceIp": "198.51.100.7"}}
    if context:
        request_context["authorizer"] = {**ctx.to_authorizer(), "principalId": ctx.principal_id}
    return {"resource": path, "path": path, "httpMethod": "POST",
            "headers": {"Content-Type": "application/json", **(headers or {})},
            "requestContext": request_context, "body": json.dumps(body), "isBase64Encoded": False}


def messages_body(text, stream=True, max_tokens=200):
    return {"model": "claude-sonnet-4-6", "max_tokens": max_tokens, "stream": stream,
            "messages": [{"role": "user", "content": text}]}


def timed_chunks(invocation):
    started, seen = time.monotonic(), []
    for chunk in invocation:
        seen.append((time.monotonic() - started, chunk))
    return seen


def sse_names(data):
    return [line[7:] for line in data.decode().splitlines() if line.startswith("event: ")]


def test_the_first_event_reaches_the_client_while_upstream_is_still_producing(app_url, standin):
    tenant_id, ctx = new_tenant()
    text = f"[[standin:event_delay={PACING}]] as-produced " + "words " * 10
    invocation = web_adapter.invoke(app_url, event("/v1/messages", messages_body(text), ctx))
    assert invocation.status == 200 and dict(invocation.headers)["Content-Type"] == "text/event-stream"
    seen = timed_chunks(invocation)
    names = sse_names(b"".join(chunk for _, chunk in seen))
    assert names[0] == "message_start" and names[-1] == "message_stop"
    # upstream waits PACING before each event after message_start: the stream takes len(names) - 1 pacings
    upstream_seconds = (len(names) - 1) * PACING
    first, last = seen[0][0], seen[-1][0]
    assert b"message_start" in seen[0][1] and first < PACING  # before upstream's second event
    assert last - first > upstream_seconds - 2 * PACING  # the rest arrived as it was produced, not at once
    assert len(seen) >= len(names) - 2


def test_a_client_leaving_mid_stream_is_settled_at_what_upstream_billed(app_url, standin):
    tenant_id, ctx = new_tenant()
    text = "[[standin:event_delay=0.1]] host-leaves " + "words " * 30
    chat = {"messages": [{"role": "user", "content": text}], "stream": True}
    invocation = web_adapter.invoke(app_url, event("/ai/chat", chat, ctx, {"Idempotency-Key": "leaves"}))
    first = next(iter(invocation))
    assert b"message_start" in first
    invocation.close()  # the client is gone after the first event
    deadline = time.monotonic() + 20
    while not events_of(tenant_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    billed = standin_bill(standin, "host-leaves")
    [recorded] = events_of(tenant_id)
    assert (recorded["status"], recorded["input_tokens"], recorded["output_tokens"]) == (
        "ok", billed["input_tokens"], billed["output_tokens"])
    assert recorded["cost_usd"] == f"{(billed['input_tokens'] * 3 + billed['output_tokens'] * 15) / 1e6:.6f}"
    # The function saw the client go: its answer was never sent whole, so the key's claim was released and
    # the retry runs anew (a kept claim would replay, or answer 409 while running).
    time.sleep(0.5)
    retry = web_adapter.invoke(app_url, event("/ai/chat", chat, ctx, {"Idempotency-Key": "leaves"}))
    assert retry.status == 200 and "Idempotent-Replayed" not in dict(retry.headers)
    assert sse_names(b"".join(retry))[-1] == "message_stop"
    assert len(events_of(tenant_id)) == 2


def test_what_a_streamed_call_meters_after_its_headers_names_its_request_and_tenant(app_url, standin):
    """The call settles while its body streams, after the handler returned: its EMF record (and anything logged
    then) keeps the request's keys, which CloudWatch's queries by tenant and request depend on."""
    import io
    import logging

    from chalicelib import observability

    tenant_id, ctx = new_tenant()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    observability.metrics_writer().addHandler(handler)
    try:
        sent = event("/v1/messages", messages_body("[[standin:event_delay=0.05]] keyed " + "words " * 5), ctx)
        assert sse_names(b"".join(web_adapter.invoke(app_url, sent)))[-1] == "message_stop"
        deadline = time.monotonic() + 10
        while not events_of(tenant_id) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        observability.metrics_writer().removeHandler(handler)
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    [record] = [r for r in records if r.get("requests") and r.get("request_id") == sent["requestContext"]["requestId"]]
    assert record["tenant_id"] == tenant_id and record["status"] == "ok"


def test_a_whole_call_is_assembled_from_the_upstream_stream_and_settled_exactly(app_url, standin):
    tenant_id, ctx = new_tenant()
    invocation = web_adapter.invoke(app_url, event("/v1/messages", messages_body("whole-host", stream=False), ctx))
    body = json.loads(b"".join(invocation))
    headers = dict(invocation.headers)
    assert invocation.status == 200 and body["type"] == "message" and "whole-host" in body["content"][0]["text"]
    billed = standin_bill(standin, "whole-host")
    assert body["usage"]["output_tokens"] == billed["output_tokens"]
    [recorded] = events_of(tenant_id)
    assert recorded["output_tokens"] == billed["output_tokens"] and recorded["status"] == "ok"
    assert headers["x-tessera-cost-usd"] == recorded["cost_usd"]
    assert headers["x-tessera-request-id"] == recorded["request_id"]


def test_a_request_without_api_gateways_context_is_refused_and_runs_nothing(app_url, standin):
    tenant_id, ctx = new_tenant()
    invocation = web_adapter.invoke(app_url, event("/v1/messages", messages_body("no-context"), ctx, context=False))
    assert invocation.status == 403 and json.loads(b"".join(invocation))["error"]["code"] == "forbidden"
    assert events_of(tenant_id) == []


def test_a_tenant_hint_naming_another_tenant_is_refused_as_app_py_refuses_it(app_url, standin):
    tenant_id, ctx = new_tenant()
    invocation = web_adapter.invoke(app_url, event("/v1/messages", messages_body("hint"), ctx,
                                                   headers={"X-Tenant-ID": "ten_someone_else"}))
    body = json.loads(b"".join(invocation))
    assert invocation.status == 403 and body["type"] == "error"  # Anthropic's shape on /v1
    assert events_of(tenant_id) == []


@pytest.mark.long  # 32 to 45 s of upstream pacing
def test_calls_longer_than_the_buffered_limit_complete_and_settle_exactly(app_url, standin):
    """Upstream takes over 30 s (the buffered handler read for 24 s at most, API Gateway's limit was 29 s): a
    streamed and a whole call, side by side, both end and both are billed what upstream billed."""
    tenant_id, ctx = new_tenant()
    pacing = 2.5  # the stand-in's reply here has 14 to 19 events: upstream takes 32 to 45 s
    results = {}

    def run(name, stream):
        text = f"[[standin:event_delay={pacing}]] long-{name} " + "words " * 10
        started = time.monotonic()
        invocation = web_adapter.invoke(app_url, event("/v1/messages", messages_body(text, stream=stream), ctx))
        results[name] = (invocation.status, b"".join(invocation), time.monotonic() - started,
                         dict(invocation.headers)["x-tessera-request-id"])

    threads = [threading.Thread(target=run, args=(name, name == "streamed")) for name in ("streamed", "whole")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    streamed_status, streamed_body, streamed_seconds, _ = results["streamed"]
    whole_status, whole_body, whole_seconds, _ = results["whole"]
    assert streamed_status == whole_status == 200
    assert min(streamed_seconds, whole_seconds) > 30
    assert sse_names(streamed_body)[-1] == "message_stop" and json.loads(whole_body)["stop_reason"] == "end_turn"
    recorded = {e["request_id"]: e for e in events_of(tenant_id)}
    for name in ("streamed", "whole"):
        billed = standin_bill(standin, f"long-{name}")
        match = recorded[results[name][3]]
        assert (match["status"], match["input_tokens"], match["output_tokens"]) == (
            "ok", billed["input_tokens"], billed["output_tokens"])
        assert match["cost_usd"] == f"{(billed['input_tokens'] * 3 + billed['output_tokens'] * 15) / 1e6:.6f}"


def test_a_whole_call_on_the_streaming_function_is_bounded_per_upstream_read_not_as_a_whole(standin, monkeypatch):
    """Upstream takes longer than the upstream timeout to finish, with each event well within it: the whole
    answer is assembled from the upstream stream, so it completes (a non-streamed upstream call would wait
    on one read for the whole answer and time out)."""
    from chalice.app import Request

    from chalicelib.ai import calls
    from chalicelib.ai.gateway import Gateway
    from chalicelib.settings import reset_settings

    monkeypatch.setenv("TESSERA_ANTHROPIC_TIMEOUT_SECONDS", "1.5")
    reset_settings()
    try:
        tenant_id, ctx = new_tenant()
        started = time.monotonic()
        request = Request({"multiValueQueryStringParameters": None, "pathParameters": None, "stageVariables": None,
                           **event("/v1/messages",
                                   messages_body("[[standin:event_delay=0.4]] per-read " + "words " * 10,
                                                 stream=False), ctx)})
        response = calls.answer(calls.MESSAGES, Gateway(), ctx, request, calls.STREAMING)
        assert time.monotonic() - started > 3 * 1.5
    finally:
        monkeypatch.undo()
        reset_settings()
    assert response.status_code == 200 and response.body["stop_reason"] == "end_turn"
    billed = standin_bill(standin, "per-read")
    [recorded] = events_of(tenant_id)
    assert (recorded["status"], recorded["output_tokens"]) == ("ok", billed["output_tokens"])
