"""The stand-in's content and features, through the real anthropic SDK: stop sequences, tools, thinking, images,
documents, the prompt cache, streaming, counting, models and Message Batches."""
from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request

import anthropic
import httpx2
import pytest

# The first module's helpers and fixtures (autouse ones included), imported by name so they apply here too.
from test_anthropic_standin import (API_KEY, MODEL, ask, clean_state, client, http, server_url, standin, tokens,
                                    valid_body)


# --- stop sequences, tools, thinking ------------------------------------------------------------

def test_stop_sequences_cut_the_reply_at_the_first_one_it_contains(client):
    message = ask(client, "one two three four", stop_sequences=["four", "two"])

    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "two"
    assert message.content[0].text.endswith("reply to: one ")
    assert message.usage.output_tokens == tokens(message.content[0].text)


def test_a_stop_sequence_the_reply_lacks_changes_nothing(client):
    message = ask(client, "hello", stop_sequences=["absent"])

    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)


def test_given_tools_it_calls_one_until_a_tool_result_comes_back(client):
    tool = {"name": "lookup", "input_schema": {"type": "object", "required": ["q", "n"],
                                               "properties": {"q": {"type": "string"}, "n": {"type": "integer"}}}}
    first = ask(client, "find it", tools=[tool])
    call = first.content[0]

    assert first.stop_reason == "tool_use" and (call.type, call.name, call.input) == ("tool_use", "lookup",
                                                                                        {"q": "standin", "n": 1})
    second = ask(client, "x", tools=[tool], messages=[
        {"role": "user", "content": "find it"},
        {"role": "assistant", "content": [call.to_dict()]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "found"}]}])
    assert second.stop_reason == "end_turn" and f"tool_result({call.id}): found" in second.content[0].text


def test_tool_choice_none_answers_in_text(client):
    message = ask(client, "hi", tools=[{"name": "t", "input_schema": {}}], tool_choice={"type": "none"})

    assert message.stop_reason == "end_turn"


def test_tool_definitions_bill_their_tokens_and_the_tool_prompt(client):
    tool = {"name": "t", "input_schema": {}}
    plain = ask(client, "hi").usage.input_tokens
    auto = ask(client, "hi", tools=[tool]).usage.input_tokens
    forced = ask(client, "hi", tools=[tool], tool_choice={"type": "any"}).usage.input_tokens

    tool_tokens = tokens('{"name":"t","input_schema":{}}')
    assert (auto - plain, forced - plain) == (346 + tool_tokens, 313 + tool_tokens)


def test_thinking_comes_first_and_counts_as_output(client):
    message = ask(client, "ponder", max_tokens=3000, thinking={"type": "enabled", "budget_tokens": 1024})

    thinking, text = message.content
    assert thinking.type == "thinking" and thinking.signature.startswith("sig_standin_")
    assert message.usage.output_tokens == tokens(thinking.thinking) + tokens(text.text)


# --- images, documents, the prompt cache ----------------------------------------------------------

def image_cost(client, data=None, url=None, model=MODEL):
    from content_blocks import image

    with_image = ask(client, messages=[{"role": "user", "content": [image(data, url), {"type": "text", "text": "a"}]}],
                     model=model)
    return with_image.usage.input_tokens - tokens("a")


def test_images_bill_their_patches_after_the_documented_resize(client):
    from content_blocks import jpeg, png

    assert image_cost(client, png(100, 100)) == 4 * 4 + 4
    assert image_cost(client, jpeg(560, 280)) == 20 * 10 + 4
    large = image_cost(client, png(6000, 4000))  # resized within 1,568 px and 1,568 patches
    assert 1500 <= large - 4 <= 1568
    assert image_cost(client, url="https://example.com/a.png") - 4 <= 1568
    assert image_cost(client, png(6000, 4000), model="claude-opus-4-7") - 4 <= 4784


def test_pdfs_bill_per_page_and_one_percent_above_their_count(client):
    from content_blocks import pdf_document

    messages = [{"role": "user", "content": [pdf_document(3), {"type": "text", "text": "a"}]}]
    counted = client.messages.count_tokens(model=MODEL, messages=messages).input_tokens
    billed = ask(client, messages=messages).usage.input_tokens

    assert counted == 3 * 1868 + tokens("a")
    assert billed == counted + math.ceil(3 * 1868 / 100)


def test_a_cached_prefix_is_written_once_then_read(client):
    system = [{"type": "text", "text": "r" * 4400, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    first = ask(client, "q1", system=system).usage
    second = ask(client, "q2", system=system).usage

    assert (first.cache_creation_input_tokens, first.cache_read_input_tokens) == (1100, 0)
    assert first.cache_creation.ephemeral_1h_input_tokens == 1100
    assert (second.cache_creation_input_tokens, second.cache_read_input_tokens) == (0, 1100)
    assert first.input_tokens == second.input_tokens == tokens("q1")


def test_a_prefix_below_the_minimum_is_not_cached(client):
    usage = ask(client, "q", system=[{"type": "text", "text": "short", "cache_control": {"type": "ephemeral"}}]).usage

    assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (0, 0)


# --- streaming, counting, models ----------------------------------------------------------------

def test_a_stream_carries_the_same_message_as_events(client):
    with client.messages.stream(model=MODEL, max_tokens=256, messages=[{"role": "user", "content": "flow"}]) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_message()

    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert final.content[0].text.endswith("reply to: flow") and final.usage.output_tokens == tokens(
        final.content[0].text)


def test_a_stream_sends_ping_and_waits_between_events_when_asked(server_url):
    body = valid_body(stream=True, messages=[{"role": "user", "content": "[[standin:event_delay=0.02]] slow"}])
    request = urllib.request.Request(server_url + "/v1/messages", data=json.dumps(body).encode(), method="POST",
                                     headers={"x-api-key": API_KEY, "Content-Type": "application/json"})
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=5) as response:
        first_line = response.readline()
        first_at = time.monotonic() - started
        rest = response.read().decode()

    assert first_line == b"event: message_start\n" and "event: ping" in rest
    assert time.monotonic() - started >= 0.02 * rest.count("event: ") > first_at


def test_stream_faults_send_an_error_event_or_cut_the_connection(client):
    with pytest.raises(anthropic.APIStatusError) as excinfo:
        for _ in ask(client, "[[standin:stream_error]]", stream=True):
            pass
    assert excinfo.value.body["error"]["type"] == "overloaded_error"

    events = []
    with pytest.raises(httpx2.RemoteProtocolError):
        with client.messages.stream(model=MODEL, max_tokens=64,
                                    messages=[{"role": "user", "content": "[[standin:stream_cut]]"}]) as stream:
            for event in stream:
                events.append(event.type)
            stream.get_final_message()
    assert "message_stop" not in events


def test_count_tokens_counts_what_a_message_bills(client):
    counted = client.messages.count_tokens(model=MODEL, system="sys", messages=[{"role": "user", "content": "hello"}])

    assert counted.input_tokens == ask(client, "hello", system="sys").usage.input_tokens == 1 + 2


def test_models_list_and_retrieve(client):
    listed = client.models.list()

    assert listed.data[0].id == "claude-opus-5-5" and listed.has_more is False
    assert client.models.retrieve("claude-haiku-4-5").id == "claude-haiku-4-5"
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("claude-nope")


# --- Message Batches (dev/standin/batches.py) ---------------------------------------------------------

def batch_request(custom_id, text):
    return {"custom_id": custom_id, "params": {"model": "claude-haiku-4-5", "max_tokens": 16,
                                               "messages": [{"role": "user", "content": text}]}}


def test_a_batch_is_in_progress_then_ended_with_results_carrying_usage(client, monkeypatch):
    monkeypatch.setenv("STANDIN_BATCH_SECONDS", "0.3")
    created = client.messages.batches.create(requests=[batch_request("a", "hello"),
                                                       batch_request("b", "[[standin:529]]")])
    assert created.processing_status == "in_progress" and created.request_counts.processing == 2
    time.sleep(0.35)
    ended = client.messages.batches.retrieve(created.id)
    assert ended.processing_status == "ended" and ended.ended_at is not None
    assert (ended.request_counts.succeeded, ended.request_counts.errored) == (1, 1)
    results = {r.custom_id: r.result for r in client.messages.batches.results(created.id)}
    assert results["a"].message.usage.input_tokens == tokens("hello")
    assert results["b"].error.error.type == "overloaded_error"


def test_a_canceled_batch_is_canceling_then_ended_with_every_request_canceled(client, monkeypatch):
    monkeypatch.setenv("STANDIN_BATCH_SECONDS", "0.3")
    created = client.messages.batches.create(requests=[batch_request("a", "x"), batch_request("b", "y")])
    canceling = client.messages.batches.cancel(created.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
    time.sleep(0.35)
    assert client.messages.batches.retrieve(created.id).request_counts.canceled == 2
    assert {r.result.type for r in client.messages.batches.results(created.id)} == {"canceled"}
    assert client.messages.batches.delete(created.id).type == "message_batch_deleted"


def test_a_batch_belongs_to_the_key_that_created_it(client, server_url):
    created = client.messages.batches.create(requests=[batch_request("a", "mine")])
    with anthropic.Anthropic(base_url=server_url, api_key="sk-another-key", max_retries=0, timeout=5) as other:
        with pytest.raises(anthropic.NotFoundError):
            other.messages.batches.retrieve(created.id)
        assert other.messages.batches.list().data == []


CLAUDE_CODE_TOOLS = [{"name": "Agent", "input_schema": {"type": "object", "required": ["prompt"],
                                                        "properties": {"prompt": {"type": "string"}}}},
                     {"name": "Read", "input_schema": {"type": "object", "required": ["file_path"],
                                                       "properties": {"file_path": {"type": "string"}}}}]


def test_claude_codes_requests_get_text_unless_a_directive_names_a_tool(client, server_url):
    """Claude Code offers its tools on every request: the stand-in calls one only when told which."""
    beta = {"anthropic-beta": "claude-code-20250219,context-management-2025-06-27"}
    system_turn = {"role": "system", "content": [{"type": "text", "text": "# Environment"}],
                   "output_config": {"effort": "medium"}}
    hello = client.messages.create(model=MODEL, max_tokens=256, tools=CLAUDE_CODE_TOOLS, extra_headers=beta,
                                   messages=[{"role": "user", "content": "say hello"}, system_turn],
                                   extra_body={"context_management": {"edits": [{"type": "clear_thinking_20251015"}]}})
    assert hello.stop_reason == "end_turn" and hello.content[0].type == "text"

    directed = client.messages.create(
        model=MODEL, max_tokens=256, tools=CLAUDE_CODE_TOOLS, extra_headers=beta,
        messages=[{"role": "user", "content": 'read it [[standin:tool=Read {"file_path": "/tmp/x"}]]'}])
    assert directed.stop_reason == "tool_use"
    assert (directed.content[0].name, directed.content[0].input) == ("Read", {"file_path": "/tmp/x"})

    plain = client.messages.create(model=MODEL, max_tokens=256, tools=CLAUDE_CODE_TOOLS,
                                   messages=[{"role": "user", "content": "say hello"}])
    assert plain.stop_reason == "tool_use" and plain.content[0].name == "Agent"  # without the beta, as before
    records = http(server_url, "GET", "/_standin/requests")[2][-3:]
    assert records[0]["betas"] == ["claude-code-20250219", "context-management-2025-06-27"]
    assert records[0]["roles"] == ["user", "system"] and records[2]["betas"] == []


def test_fast_mode_is_echoed_in_the_usage(client):
    message = client.messages.create(model="claude-opus-5-5", max_tokens=16, extra_body={"speed": "fast"},
                                     messages=[{"role": "user", "content": "quick"}])
    assert message.usage.to_dict()["speed"] == "fast"


# --- answers as long as max_tokens, and the organisation's minute trued up to them ----------------

def test_fill_makes_the_answer_as_long_as_max_tokens_allows(client):
    message = ask(client, "write at length [[standin:fill]]", max_tokens=700)
    assert (message.stop_reason, message.usage.output_tokens) == ("max_tokens", 700)
    assert tokens(message.content[0].text) == 700
    assert ask(client, "short", max_tokens=700).usage.output_tokens < 100


def test_the_organisation_minute_counts_each_answer_at_its_output():
    """GET /_standin/org-limits: what a minute admitted, output trued up from max_tokens to what each answer wrote."""
    from dev.standin.org_limits import OrgLimits

    server, url = standin.serve_in_thread()
    server.standin_state.org_limits = OrgLimits({MODEL: (10, 100_000, 5_000)})
    try:
        with anthropic.Anthropic(base_url=url, api_key=API_KEY, max_retries=0, timeout=5) as sdk:
            short = ask(sdk, "short", max_tokens=1_000).usage.output_tokens
            ask(sdk, "long [[standin:fill]]", max_tokens=300)
        status, _, counted, _ = http(url, "GET", "/_standin/org-limits")
    finally:
        server.shutdown()
        server.server_close()
    assert status == 200 and counted["limits"] == {MODEL: {"requests": 10, "input_tokens": 100_000,
                                                           "output_tokens": 5_000}}
    minute = counted["minutes"][-1]
    assert (minute["model"], minute["refused_requests"]) == (MODEL, 0)
    assert (minute["admitted"]["requests"], minute["admitted"]["output_tokens"]) == (2, short + 300)
