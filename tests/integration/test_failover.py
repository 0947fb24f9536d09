"""Failover over HTTP to the stand-in (Anthropic's API and Bedrock's runtime API, each through the SDK's own
client), the ledger and the breakers on moto: who served, at which prices, and what each tenant may reach.
Each test's breakers live in a partition of their own (BreakerStore), so opening one here routes no other
test's calls."""
from __future__ import annotations

import json
import random
import time
import urllib.request
import uuid

import pytest

from chalicelib.ai import breaker, streaming
from chalicelib.ai.bedrock import BedrockModelClient
from chalicelib.ai.breaker import BreakerState, Breakers, BreakerStore
from chalicelib.ai.client import ModelClient
from chalicelib.ai.failover import Failover
from chalicelib.ai.gateway import FeatureCall, Gateway
from chalicelib.ai.settings import set_own_key
from chalicelib.errors import UpstreamError
from chalicelib import tenants
from chalicelib.metering import usage
from chalicelib.models import UsageEvent, tenant_pk
from conftest import settle_usage
from test_metering_concurrency import new_tenant

MODEL = "claude-sonnet-4-6"  # every tenant's default model; Bedrock's global.anthropic.claude-sonnet-4-6
SONNET_INPUT, SONNET_OUTPUT = 3, 15  # $ per million tokens: Anthropic's list prices and Bedrock's global ones


class Route:
    """A gateway with breakers of its own and the pauses it took between attempts."""

    def __init__(self, attempt_timeout=None, cache_seconds=breaker.CACHE_SECONDS, clock=time.time):
        self.store = BreakerStore(f"UPSTREAM#test-{uuid.uuid4().hex[:8]}")
        self.pauses = []
        anthropic = ModelClient()
        self.breakers = Breakers(self.store, clock=clock, cache_seconds=cache_seconds)
        self.failover = Failover(anthropic, BedrockModelClient(), self.breakers, random.Random(7),
                                 self.pauses.append, attempt_timeout)
        self.gateway = Gateway(anthropic, failover=self.failover)


def heard(standin, marker):
    """What the stand-in was asked carrying `marker`: (Anthropic's requests, Bedrock's)."""
    with urllib.request.urlopen(f"{standin}/_standin/requests") as response:
        found = [r for r in json.loads(response.read()) if marker in r["last_user_text"]]
    return [r for r in found if r.get("provider") != "bedrock"], [r for r in found if r.get("provider") == "bedrock"]


def chat(text, max_tokens=200):
    return FeatureCall(messages=[{"role": "user", "content": text}], max_tokens=max_tokens)


def the_event(tenant_id):
    [event] = usage.events(tenant_id, None, "50", None)["events"]
    return event


def micros(bill, output_tokens=None):
    out = bill["output_tokens"] if output_tokens is None else output_tokens
    return bill["input_tokens"] * SONNET_INPUT + out * SONNET_OUTPUT


def usd(micro_dollars):
    return f"{micro_dollars / 1_000_000:.6f}"


def marked(text=""):
    return f"fo-{uuid.uuid4().hex[:10]} {text}".strip()


def test_a_pool_call_anthropic_overloads_twice_is_answered_by_bedrock_at_its_prices(standin):
    tenant_id, ctx = new_tenant()
    route, text = Route(), marked("[[standin:529]]")
    result = route.gateway.run(ctx, "basic_chat", chat(text))
    to_anthropic, to_bedrock = heard(standin, text)
    assert len(to_anthropic) == 2 and len(to_bedrock) == 1  # the call, one retry, then Bedrock
    bedrock_call = to_bedrock[0]
    assert (bedrock_call["model_id"], bedrock_call["auth_header"]) == ("global.anthropic.claude-sonnet-4-6", "sigv4")
    assert len(route.pauses) == 1 and 0 <= route.pauses[0] < 0.5  # one jittered pause, before the retry
    event = the_event(tenant_id)
    assert (event["provider"], event["upstream_attempts"]) == ("bedrock", "anthropic:529,anthropic:529,bedrock:ok")
    assert event["cost_usd"] == usd(micros(bedrock_call["usage"])) and result.cost_micros == micros(bedrock_call["usage"])
    assert result.reply.text.startswith("[stand-in] model=claude-sonnet-4-6")


def test_an_overload_that_clears_is_answered_by_anthropics_retry(standin):
    tenant_id, ctx = new_tenant()
    route, text = Route(), marked()
    with urllib.request.urlopen(urllib.request.Request(f"{standin}/_standin/faults", method="POST",
                                                       data=json.dumps({"status": 529, "count": 1}).encode())):
        pass
    route.gateway.run(ctx, "basic_chat", chat(text))
    to_anthropic, to_bedrock = heard(standin, text)
    assert (len(to_anthropic), len(to_bedrock)) == (2, 0)
    event = the_event(tenant_id)
    assert (event["provider"], event["upstream_attempts"]) == ("anthropic", "anthropic:529,anthropic:ok")
    assert event["cost_usd"] == usd(micros(to_anthropic[-1]["usage"]))


def test_an_own_key_tenant_never_fails_over_to_the_platforms_bedrock(standin):
    tenant_id, ctx = new_tenant()
    set_own_key(tenant_id, {"api_key": "sk-ant-own-key-failover-0000"})
    route, text = Route(), marked("[[standin:529]]")
    with pytest.raises(UpstreamError) as failed:
        route.gateway.run(ctx, "basic_chat", chat(text))
    assert (failed.value.status, failed.value.code) == (529, "upstream_overloaded")
    to_anthropic, to_bedrock = heard(standin, text)
    assert (len(to_anthropic), len(to_bedrock)) == (2, 0)
    event = the_event(tenant_id)
    assert (event["status"], event["provider"], event["upstream_attempts"], event["key_source"]) == (
        "failed", None, "anthropic:529,anthropic:529", "tenant")
    assert route.store.read(MODEL) == BreakerState()  # an own key's failures count toward no breaker


def test_a_timeout_before_the_first_byte_fails_over_within_the_calls_deadline(standin):
    tenant_id, ctx = new_tenant()
    route, text = Route(attempt_timeout=0.4), marked("[[standin:slow=6]]")
    started = time.monotonic()
    streamed = streaming.open_stream(route.gateway, ctx, "basic_chat", chat(text), deadline_seconds=10)
    body = b"".join(streamed).decode()
    # two 0.4 s attempts, a pause and Bedrock's answer, not Anthropic's 6 s; run first in a process, the call
    # also builds its clients (about 2 s): a 1.5 s upstream and a 1.5 s bound failed then
    assert time.monotonic() - started < 4.5
    assert "event: message_stop" in body
    event = the_event(tenant_id)
    assert (event["provider"], event["upstream_attempts"]) == ("bedrock", "anthropic:timeout,anthropic:timeout,bedrock:ok")
    # Anthropic may have billed each timed-out attempt: up to the call's worst case each, named as exposure
    stored = UsageEvent.get(tenant_pk(tenant_id), UsageEvent.sk_for(event["request_id"]))
    assert event["cost_bound_usd"] == usd(2 * int(stored.worst_case_micros))
    settle_usage()
    summary = usage.summary(tenants.get_tenant(tenant_id), None)
    assert summary["unbilled_exposure_usd"] == usd(2 * int(stored.worst_case_micros))
    assert summary["total_cost_usd"] == event["cost_usd"]  # the exposure is not charged


def test_a_refusal_after_a_timed_out_attempt_still_counts_the_attempt_that_may_have_been_billed(standin):
    """Anthropic's first attempt times out (it may have run and billed), the retry is refused (429, not retried):
    the call's event is indeterminate and names the first attempt's exposure, not a clean failure."""
    tenant_id, ctx = new_tenant()
    route, text = Route(attempt_timeout=0.4), marked("refused after a timeout")
    faults = [{"delay_seconds": 1.5, "count": 1}, {"status": 429, "count": 1}]
    for fault in faults:
        urllib.request.urlopen(urllib.request.Request(f"{standin}/_standin/faults", json.dumps(fault).encode(),
                                                      {"Content-Type": "application/json"}, method="POST")).close()
    try:
        with pytest.raises(Exception):
            streaming.open_stream(route.gateway, ctx, "basic_chat", chat(text), deadline_seconds=10)
    finally:
        urllib.request.urlopen(urllib.request.Request(f"{standin}/_standin/faults", method="DELETE")).close()
    event = the_event(tenant_id)
    assert event["upstream_attempts"].startswith("anthropic:timeout,anthropic:"), event["upstream_attempts"]
    assert event["status"] == "indeterminate"
    stored = UsageEvent.get(tenant_pk(tenant_id), UsageEvent.sk_for(event["request_id"]))
    assert event["cost_bound_usd"] == usd(int(stored.worst_case_micros))


def test_no_attempt_starts_past_the_calls_deadline(standin):
    tenant_id, ctx = new_tenant()
    route, text = Route(attempt_timeout=0.6), marked("[[standin:slow=1.5]]")
    with pytest.raises(UpstreamError) as failed:
        streaming.open_stream(route.gateway, ctx, "basic_chat", chat(text), deadline_seconds=1.2)
    assert failed.value.code == "upstream_timeout"
    to_anthropic, to_bedrock = heard(standin, text)
    # 0.6 s timed out, and less than RETRY_FLOOR_SECONDS (1 s) was left of 1.2 s: no retry, no Bedrock
    assert (len(to_anthropic), len(to_bedrock)) == (1, 0)
    assert the_event(tenant_id)["upstream_attempts"] == "anthropic:timeout"


def test_a_failed_over_stream_relays_bedrocks_events_and_settles_at_its_prices(standin):
    tenant_id, ctx = new_tenant()
    route, text = Route(), marked("[[standin:529]]")
    streamed = streaming.open_stream(route.gateway, ctx, "basic_chat", chat(text))
    body = b"".join(streamed).decode()
    names = [line[7:] for line in body.splitlines() if line.startswith("event: ")]
    assert names[0] == "message_start" and names[-1] == "message_stop" and "content_block_delta" in names
    [bedrock_call] = heard(standin, text)[1]
    assert bedrock_call["stream"] is True
    event = the_event(tenant_id)
    assert (event["status"], event["provider"]) == ("ok", "bedrock")
    assert event["cost_usd"] == usd(micros(bedrock_call["usage"])) and streamed.cost_micros == micros(bedrock_call["usage"])


def test_a_bedrock_stream_broken_after_its_first_byte_ends_with_an_error_event_and_is_settled_exactly(standin):
    tenant_id, ctx = new_tenant()
    route, text = Route(), marked("[[standin:529]] [[bedrock:stream_cut]]")
    streamed = streaming.open_stream(route.gateway, ctx, "basic_chat", chat(text, max_tokens=77))
    body = b"".join(streamed).decode()
    assert body.rstrip().splitlines()[-2] == "event: error" and "event: message_stop" not in body
    [bedrock_call] = heard(standin, text)[1]  # not retried: its first bytes were already the caller's
    event = the_event(tenant_id)
    assert (event["status"], event["provider"], event["output_tokens"]) == ("incomplete", "bedrock", 77)
    assert event["cost_usd"] == usd(micros(bedrock_call["usage"], output_tokens=77))


@pytest.mark.parametrize("code, sent_as, message", [
    ("throttlingException", "overloaded_error", "Overloaded"),
    ("modelStreamErrorException", "api_error", "The model service failed while answering."),
    ("someExceptionNotYetKnown", "api_error", "The model service failed while answering."),
])
def test_a_bedrock_exception_mid_stream_reaches_the_caller_as_anthropics_error_and_is_settled_exactly(
        standin, code, sent_as, message):
    tenant_id, ctx = new_tenant()
    route, text = Route(), marked(f"[[standin:529]] [[bedrock:stream_exception={code}]]")
    streamed = streaming.open_stream(route.gateway, ctx, "basic_chat", chat(text, max_tokens=77))
    body = b"".join(streamed).decode()
    lines = body.rstrip().splitlines()
    assert lines[-2] == "event: error" and "event: message_stop" not in body and code not in body
    assert json.loads(lines[-1].removeprefix("data: ")) == {"type": "error",
                                                            "error": {"type": sent_as, "message": message}}
    [bedrock_call] = heard(standin, text)[1]
    event = the_event(tenant_id)
    assert (event["status"], event["provider"], event["output_tokens"]) == ("incomplete", "bedrock", 77)
    assert event["cost_usd"] == usd(micros(bedrock_call["usage"], output_tokens=77))


def test_an_overload_sent_as_a_streams_first_event_is_retried_then_failed_over_like_a_529(standin):
    tenant_id, ctx = new_tenant()
    route, text = Route(), marked("[[standin:stream_overloaded_first]]")
    streamed = streaming.open_stream(route.gateway, ctx, "basic_chat", chat(text, max_tokens=77))
    body = b"".join(streamed).decode()
    assert "event: error" not in body and body.rstrip().splitlines()[-2] == "event: message_stop"
    to_anthropic, [bedrock_call] = heard(standin, text)
    assert len(to_anthropic) == 2 and len(route.pauses) == 1  # the retry, then Bedrock
    event = the_event(tenant_id)
    assert (event["status"], event["provider"], event["upstream_attempts"]) == (
        "ok", "bedrock", "anthropic:529,anthropic:529,bedrock:ok")
    assert event["cost_usd"] == usd(micros(bedrock_call["usage"]))


def test_a_stream_that_ends_before_its_first_event_is_an_unanswered_attempt_and_fails_over(standin):
    tenant_id, ctx = new_tenant()
    route, text = Route(), marked("[[standin:stream_empty]]")
    body = b"".join(streaming.open_stream(route.gateway, ctx, "basic_chat", chat(text, max_tokens=77))).decode()
    assert body.rstrip().splitlines()[-2] == "event: message_stop"
    to_anthropic, [bedrock_call] = heard(standin, text)
    assert len(to_anthropic) == 2
    event = the_event(tenant_id)
    assert (event["status"], event["provider"], event["upstream_attempts"]) == (
        "ok", "bedrock", "anthropic:no_answer,anthropic:no_answer,bedrock:ok")
    assert event["cost_usd"] == usd(micros(bedrock_call["usage"]))  # charged: what served; the two unanswered
    assert event["cost_bound_usd"] != event["cost_usd"]               # attempts' worst case is its exposure


def test_an_own_key_stream_whose_first_event_is_an_overload_is_retried_once_and_ends_with_it(standin):
    tenant_id, ctx = new_tenant()
    set_own_key(tenant_id, {"api_key": "sk-ant-own-key-failover-0001"})
    route, text = Route(), marked("[[standin:stream_overloaded_first]]")
    with pytest.raises(UpstreamError) as refused:
        streaming.open_stream(route.gateway, ctx, "basic_chat", chat(text, max_tokens=77))
    assert (refused.value.status, refused.value.code) == (529, "upstream_overloaded")
    to_anthropic, to_bedrock = heard(standin, text)
    assert (len(to_anthropic), len(to_bedrock)) == (2, 0)


def test_an_anthropic_stream_broken_after_its_first_byte_is_not_failed_over_and_is_settled_exactly(standin):
    tenant_id, ctx = new_tenant()
    route, text = Route(), marked("[[standin:stream_cut]]")
    streamed = streaming.open_stream(route.gateway, ctx, "basic_chat", chat(text, max_tokens=77))
    body = b"".join(streamed).decode()
    assert body.rstrip().splitlines()[-2] == "event: error"
    to_anthropic, to_bedrock = heard(standin, text)
    assert (len(to_anthropic), len(to_bedrock)) == (1, 0)
    event = the_event(tenant_id)
    assert (event["status"], event["provider"], event["output_tokens"]) == ("incomplete", "anthropic", 77)
    assert event["cost_usd"] == usd(micros(to_anthropic[0]["usage"], output_tokens=77))


# --- the breaker, shared through the table ---------------------------------------------------------------

def test_repeated_failures_open_the_breaker_once_and_another_instance_sees_it_within_its_cache_time(standin):
    _, ctx = new_tenant()
    route = Route()
    for _ in range(2):  # two failures each: four, still closed
        route.gateway.run(ctx, "basic_chat", chat(marked("[[standin:529]]")))
    assert route.store.read(MODEL) == BreakerState()
    other = Breakers(route.store, cache_seconds=3.0)  # another warm instance of the same function
    assert other.route(MODEL)[0] == breaker.ANTHROPIC_FIRST
    read_at = time.monotonic()
    route.gateway.run(ctx, "basic_chat", chat(marked("[[standin:529]]")))  # the fifth failure opens it
    stored = route.store.read(MODEL)
    assert (stored.status, stored.open_seconds, stored.version) == (breaker.OPEN, 30, 1)  # written once
    assert time.monotonic() - read_at < 3.0
    assert other.route(MODEL)[0] == breaker.ANTHROPIC_FIRST  # still its cached state...
    time.sleep(max(0.0, read_at + 3.05 - time.monotonic()))
    assert other.route(MODEL) == (breaker.BEDROCK_FIRST, breaker.OPEN)  # ...for at most its cache time


def test_an_open_breaker_sends_pool_calls_straight_to_bedrock(standin):
    tenant_id, ctx = new_tenant()
    route, text = Route(), marked()
    assert route.store.write(MODEL, BreakerState(breaker.OPEN, time.time() + 30, 30, 1))
    route.gateway.run(ctx, "basic_chat", chat(text))
    to_anthropic, to_bedrock = heard(standin, text)
    assert (len(to_anthropic), len(to_bedrock)) == (0, 1)
    assert the_event(tenant_id)["upstream_attempts"] == "bedrock:ok"


def test_an_own_key_call_goes_to_anthropic_whatever_the_breaker_says(standin):
    tenant_id, ctx = new_tenant()
    set_own_key(tenant_id, {"api_key": "sk-ant-own-key-failover-0001"})
    route, text = Route(), marked()
    assert route.store.write(MODEL, BreakerState(breaker.OPEN, time.time() + 30, 30, 1))
    route.gateway.run(ctx, "basic_chat", chat(text))
    assert [len(found) for found in heard(standin, text)] == [1, 0]


def test_a_half_open_probe_that_succeeds_closes_the_breaker_for_every_instance(standin):
    tenant_id, ctx = new_tenant()
    route, text = Route(), marked()
    assert route.store.write(MODEL, BreakerState(breaker.OPEN, time.time() - 1, 30, 1))  # its time is up
    route.gateway.run(ctx, "basic_chat", chat(text))
    assert [len(found) for found in heard(standin, text)] == [1, 0]
    assert the_event(tenant_id)["upstream_attempts"] == "anthropic:ok"
    assert route.store.read(MODEL) == BreakerState(breaker.CLOSED, 0.0, 0, 2)


def test_a_half_open_probe_that_fails_reopens_the_breaker_for_twice_as_long(standin):
    tenant_id, ctx = new_tenant()
    route, text = Route(), marked("[[standin:529]]")
    assert route.store.write(MODEL, BreakerState(breaker.OPEN, time.time() - 1, 30, 1))
    before = time.time()
    route.gateway.run(ctx, "basic_chat", chat(text))
    assert [len(found) for found in heard(standin, text)] == [1, 1]  # one probe, no retry, then Bedrock
    assert the_event(tenant_id)["upstream_attempts"] == "anthropic:529,bedrock:ok"
    stored = route.store.read(MODEL)
    assert (stored.status, stored.open_seconds, stored.version) == (breaker.OPEN, 60, 2)
    assert before + 60 <= stored.open_until <= time.time() + 60


# --- metrics ---------------------------------------------------------------------------------------------

@pytest.fixture
def records():
    """The EMF records the app writes meanwhile, parsed."""
    import io
    import logging

    from chalicelib import observability

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    observability.metrics_writer().addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    observability.metrics_writer().removeHandler(handler)


def test_a_failed_over_call_is_counted_in_its_emf_record_with_the_provider_and_the_breaker(standin, records):
    _, ctx = new_tenant()
    route = Route()
    route.gateway.run(ctx, "basic_chat", chat(marked("[[standin:529]]")))
    [record] = [r for r in records() if "requests" in r]  # this test's one call
    assert (record["failovers"], record["upstream_retries"], record["breaker_open"]) == (1, 2, 0)
    assert (record["provider"], record["breaker"]) == ("bedrock", "closed")
    assert {m["Name"] for m in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]} >= {
        "failovers", "upstream_retries", "breaker_open"}


def test_a_call_meeting_an_open_breaker_says_so_in_its_emf_record(standin, records):
    _, ctx = new_tenant()
    route = Route()
    assert route.store.write(MODEL, BreakerState(breaker.OPEN, time.time() + 30, 30, 1))
    route.gateway.run(ctx, "basic_chat", chat(marked()))
    [record] = [r for r in records() if "requests" in r]  # this test's one call
    # Bedrock first by the breaker: not a failover (nothing failed), no retry
    assert (record["failovers"], record["upstream_retries"], record["breaker_open"]) == (0, 0, 1)
    assert (record["provider"], record["breaker"]) == ("bedrock", breaker.OPEN)
    # The breaker's state by model, in the directive with the pool's numbers: 2 is open
    _, by_model = record["_aws"]["CloudWatchMetrics"]
    assert by_model["Dimensions"] == [["model", "service"]] and record["breaker_state"] == 2


def test_a_half_open_breakers_probe_is_state_1_by_model(standin, records):
    _, ctx = new_tenant()
    route = Route()
    assert route.store.write(MODEL, BreakerState(breaker.OPEN, time.time() - 1, 30, 1))  # its time is up
    route.gateway.run(ctx, "basic_chat", chat(marked()))
    [record] = [r for r in records() if "requests" in r]
    assert (record["provider"], record["breaker"], record["breaker_state"]) == ("anthropic", breaker.HALF_OPEN, 1)
    assert (record["breaker_open"], record["model"]) == (1, MODEL)
