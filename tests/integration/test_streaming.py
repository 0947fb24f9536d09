"""Streamed calls settle exactly what upstream billed: a client leaving mid-stream, a broken upstream stream, a
host deadline, and a refusal before the first byte. Real gateway, real ledger on moto, the stand-in over HTTP."""
from __future__ import annotations

import json
import urllib.request

import pytest

from chalicelib import operators
from chalicelib.ai import streaming
from chalicelib.ai.gateway import FeatureCall, Gateway
from chalicelib.errors import TooManyRequests
from chalicelib.metering import usage
from conftest import settle_usage
from test_metering_concurrency import new_tenant


def standin_bill(standin, text):
    with urllib.request.urlopen(f"{standin}/_standin/requests") as response:
        records = [r for r in json.loads(response.read()) if text in r["last_user_text"]]
    return records[-1]["usage"]


def events_of(tenant_id):
    return usage.events(tenant_id, None, "50", None)["events"]


def chat(text, max_tokens=200):
    return FeatureCall(messages=[{"role": "user", "content": text}], max_tokens=max_tokens)


def test_a_client_leaving_mid_stream_still_gets_the_full_upstream_bill_recorded(standin):
    tenant_id, ctx = new_tenant()
    text = "[[standin:event_delay=0.01]] leave-early " + "words " * 40
    streamed = streaming.open_stream(Gateway(), ctx, "basic_chat", chat(text))
    events = iter(streamed)
    assert next(events).startswith(b"event: message_start")
    events.close()  # the client is gone after the first event
    assert streamed.tally.stopped
    billed = standin_bill(standin, "leave-early")
    [event] = events_of(tenant_id)
    assert (event["status"], event["input_tokens"], event["output_tokens"]) == (
        "ok", billed["input_tokens"], billed["output_tokens"])
    assert event["cost_usd"] == f"{(billed['input_tokens'] * 3 + billed['output_tokens'] * 15) / 1e6:.6f}"


def test_a_whole_stream_is_relayed_as_received_and_settled_once(standin):
    tenant_id, ctx = new_tenant()
    streamed = streaming.open_stream(Gateway(), ctx, "basic_chat", chat("relay-probe"))
    body = b"".join(streamed).decode()
    streamed.close()  # a second close changes nothing
    names = [line[7:] for line in body.splitlines() if line.startswith("event: ")]
    assert names[0] == "message_start" and names[1] == "ping" and names[-1] == "message_stop"
    assert len(events_of(tenant_id)) == 1 and streamed.cost_micros is not None


def test_a_broken_upstream_stream_ends_with_an_error_event_and_settles_at_the_output_bound(standin):
    tenant_id, ctx = new_tenant()
    streamed = streaming.open_stream(Gateway(), ctx, "basic_chat", chat("[[standin:stream_cut]]", max_tokens=77))
    body = b"".join(streamed).decode()
    assert body.rstrip().splitlines()[-2] == "event: error"
    [event] = events_of(tenant_id)
    assert (event["status"], event["output_tokens"]) == ("incomplete", 77)


def test_a_stream_past_the_hosts_deadline_is_cut_and_settled_at_the_output_bound(standin):
    tenant_id, ctx = new_tenant()
    # The deadline bounds each read too (an attempt's timeout is what is left of it): events 0.3 s apart against
    # 1.5 s leave every read five times its wait, so only the deadline, never a read's timeout, ends the stream.
    text = "[[standin:event_delay=0.3]] deadline " + "words " * 20
    streamed = streaming.open_stream(Gateway(), ctx, "basic_chat", chat(text, max_tokens=300), deadline_seconds=1.5)
    body = b"".join(streamed).decode()
    assert "event: message_stop" not in body and "longer than this endpoint allows" in body
    [event] = events_of(tenant_id)
    assert (event["status"], event["output_tokens"]) == ("incomplete", 300)


def test_a_stream_refused_upstream_before_its_first_event_costs_no_quota(standin):
    tenant_id, ctx = new_tenant()
    operators.set_limits(tenant_id, {"features": {"basic_chat": 1}, "requests_per_minute": 100})
    gateway = Gateway()
    with pytest.raises(TooManyRequests) as caught:
        streaming.open_stream(gateway, ctx, "basic_chat", chat("[[standin:429]]"))
    assert caught.value.code == "upstream_rate_limited"
    settle_usage()  # the failed call's admission comes back through the usage stream
    b"".join(streaming.open_stream(gateway, ctx, "basic_chat", chat("the one allowed")))
    assert [e["status"] for e in events_of(tenant_id)] == ["ok", "failed"]
    assert [e["cost_usd"] for e in events_of(tenant_id)][1] == "0.000000"
