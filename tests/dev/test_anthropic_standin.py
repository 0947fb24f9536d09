"""Tests for dev/standin/server.py, driven through the real anthropic SDK."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import math
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import anthropic
import httpx2
import pytest

from dev.stack import local_stack as stack 

REPO_ROOT = Path(__file__).resolve().parents[2]
API_KEY = "sk-test-123"
MODEL = "claude-standin-test"


standin = stack.load_standin()


def tokens(text: str) -> int:
    size = len(text.encode("utf-8"))
    return max(1, math.ceil(size / 4)) if size else 0


@pytest.fixture(scope="module")
def server_url():
    server, url = standin.serve_in_thread()
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def clean_state(server_url):
    http(server_url, "DELETE", "/_standin/faults")
    http(server_url, "DELETE", "/_standin/requests")
    yield


@pytest.fixture
def client(server_url):
    with anthropic.Anthropic(base_url=server_url, api_key=API_KEY, max_retries=0, timeout=5) as sdk:
        yield sdk


def http(base_url, method, path, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(base_url + path, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            raw = response.read()
            return response.status, response.headers, json.loads(raw), raw
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, error.headers, json.loads(raw), raw


def valid_body(**overrides):
    body = {"model": MODEL, "max_tokens": 256, "messages": [{"role": "user", "content": "hello"}]}
    body.update(overrides)
    return body


def ask(client, text="hello", **kwargs):
    params = {"model": MODEL, "max_tokens": 256, "messages": [{"role": "user", "content": text}]}
    params.update(kwargs)
    return client.messages.create(**params)


def test_normal_message_echoes_model_and_system(client):
    message = ask(client, "What is the refund policy?", system="You are Acme support.")

    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == MODEL
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    assert len(message.content) == 1 and message.content[0].type == "text"
    assert message.content[0].text == (
        f"[stand-in] model={MODEL}; system=You are Acme support.; reply to: What is the refund policy?"
    )
    assert message.id.startswith("msg_standin_")
    assert len(message.id.removeprefix("msg_standin_")) == 24
    int(message.id.removeprefix("msg_standin_"), 16)
    assert message._request_id.startswith("req_standin_")


def test_reply_without_system_and_long_texts_are_cut_to_200_chars(client):
    long_text = "x" * 300
    message = ask(client, long_text)

    assert "system=(none);" in message.content[0].text
    assert message.content[0].text.endswith("reply to: " + "x" * 200)


def test_every_message_gets_its_own_id_even_for_identical_requests(client):
    ids = {ask(client, "same question").id for _ in range(5)}

    assert len(ids) == 5
    assert all(len(i.removeprefix("msg_standin_")) == 24 for i in ids)


def test_usage_follows_token_rule(client):
    system_blocks = [
        {"type": "text", "text": "Tenant: Ünïcode GmbH. "},
        {"type": "text", "text": "Be brief €."},
    ]
    messages = [
        {"role": "user", "content": "Grüße! 👋"},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": " there"}],
        },
        {"role": "user", "content": "a"},
    ]
    message = client.messages.create(model=MODEL, max_tokens=1000, system=system_blocks, messages=messages)

    system_text = "Tenant: Ünïcode GmbH. Be brief €."
    block_texts = ["Tenant: Ünïcode GmbH. ", "Be brief €.", "Grüße! 👋", "Hi", " there", "a"]
    message_texts = ["Grüße! 👋", "Hi there", "a"]
    expected_input = sum(tokens(text) for text in block_texts)
    assert message.usage.input_tokens == expected_input
    assert message.usage.output_tokens == tokens(message.content[0].text)
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.cache_read_input_tokens == 0
    total_bytes = sum(len(text.encode("utf-8")) for text in [system_text, *message_texts])
    assert message.usage.input_tokens <= total_bytes
    assert f"system={system_text};" in message.content[0].text


def test_input_tokens_never_exceed_byte_count_for_tiny_texts(client):
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    message = client.messages.create(model=MODEL, max_tokens=100, system="s", messages=messages)

    assert message.usage.input_tokens == 4
    assert message.usage.input_tokens <= 4


def test_max_tokens_truncates_on_character_boundary(client):
    model = "ab€x"
    message = client.messages.create(model=model, max_tokens=5, messages=[{"role": "user", "content": "hi"}])

    full_reply = f"[stand-in] model={model}; system=(none); reply to: hi"
    assert tokens(full_reply) > 5
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 5
    assert message.content[0].text == "[stand-in] model=ab"
    assert len(message.content[0].text.encode("utf-8")) <= 20


def test_magic_429_raises_rate_limit_error_with_retry_after(client):
    with pytest.raises(anthropic.RateLimitError) as excinfo:
        ask(client, "please fail [[standin:429]] now")

    error = excinfo.value
    assert error.status_code == 429
    assert error.response.headers["retry-after"] == "7"
    assert error.body["error"]["type"] == "rate_limit_error"
    assert error.response.headers["request-id"].startswith("req_standin_")


def test_magic_529_raises_overloaded_error(client):
    with pytest.raises(anthropic.APIStatusError) as excinfo:
        ask(client, "[[standin:529]]")

    assert excinfo.value.status_code == 529
    assert isinstance(excinfo.value, anthropic.OverloadedError)
    assert isinstance(excinfo.value, anthropic.InternalServerError)
    assert excinfo.value.body["error"]["type"] == "overloaded_error"


def test_magic_500_raises_internal_server_error(client):
    with pytest.raises(anthropic.InternalServerError) as excinfo:
        ask(client, "[[standin:500]]")

    assert type(excinfo.value) is anthropic.InternalServerError
    assert excinfo.value.status_code == 500
    assert excinfo.value.body["error"]["type"] == "api_error"


def test_magic_slow_answers_after_the_delay(client):
    started = time.monotonic()
    message = ask(client, "[[standin:slow=0.1]] take your time")

    assert time.monotonic() - started >= 0.1
    assert message.stop_reason == "end_turn"


def test_magic_slow_beyond_client_timeout_raises_timeout(server_url):
    with anthropic.Anthropic(base_url=server_url, api_key=API_KEY, max_retries=0, timeout=0.5) as slow_client:
        with pytest.raises(anthropic.APITimeoutError):
            ask(slow_client, "[[standin:slow=1]]")


def test_missing_key_returns_401(server_url):
    status, _, body, _ = http(server_url, "POST", "/v1/messages", valid_body())

    assert status == 401
    assert body["type"] == "error"
    assert body["error"]["type"] == "authentication_error"
    assert body["error"]["message"]


def test_x_api_key_header_is_accepted(server_url):
    status, headers, body, _ = http(server_url, "POST", "/v1/messages", valid_body(), {"x-api-key": API_KEY})

    assert status == 200
    assert body["content"][0]["text"].startswith(f"[stand-in] model={MODEL};")
    assert headers["request-id"].startswith("req_standin_")


def test_rejected_key_raises_authentication_error(server_url):
    with anthropic.Anthropic(base_url=server_url, api_key="sk-invalid-abc", max_retries=0) as bad_client:
        with pytest.raises(anthropic.AuthenticationError) as excinfo:
            ask(bad_client)

    assert excinfo.value.status_code == 401
    assert excinfo.value.body["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"model": ""}, "model"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "role"),
        ({"messages": [{"role": "user", "content": [{"type": "image"}]}]}, "source"),
        ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, "type"),
        ({"stop_sequences": [""]}, "stop_sequences"),
        ({"thinking": {"type": "enabled", "budget_tokens": 10}}, "budget_tokens"),
        ({"tools": [{"name": "t"}]}, "input_schema"),
        ({"system": 5}, "system"),
        ({"temperature": 1.5}, "temperature"),
    ],
)
def test_invalid_bodies_return_400(server_url, overrides, fragment):
    headers = {"Authorization": f"Bearer {API_KEY}"}
    status, _, body, _ = http(server_url, "POST", "/v1/messages", valid_body(**overrides), headers)

    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"
    assert fragment in body["error"]["message"]


def test_non_object_body_returns_400(server_url):
    headers = {"Authorization": f"Bearer {API_KEY}"}
    status, _, body, _ = http(server_url, "POST", "/v1/messages", ["not", "an", "object"], headers)

    assert status == 400
    assert "JSON object" in body["error"]["message"]


def test_unknown_path_returns_404(server_url):
    status, _, body, _ = http(server_url, "GET", "/v1/nothing-here")

    assert status == 404
    assert body["error"]["type"] == "not_found_error"


def test_health(server_url):
    assert http(server_url, "GET", "/health")[:3:2] == (200, {"status": "ok"})


def test_recorded_requests_hold_fingerprint_not_key(client, server_url):
    ask(client, "first", system="Tenant A prompt", extra_body={"temperature": 0.3})
    ask(client, "second")

    status, _, records, raw = http(server_url, "GET", "/_standin/requests")

    assert status == 200
    assert API_KEY.encode() not in raw
    assert [record["last_user_text"] for record in records] == ["first", "second"]
    fingerprint = hashlib.sha256(API_KEY.encode("utf-8")).hexdigest()[:12]
    assert records[0] == {
        "model": MODEL,
        "system": "Tenant A prompt",
        "max_tokens": 256,
        "temperature": 0.3,
        "messages_count": 1,
        "last_user_text": "first",
        "block_types": [],
        "params": {},
        "roles": ["user"],
        "betas": [],
        "tools": [],
        "stream": False,
        "auth_header": "authorization",
        "key_fingerprint": fingerprint,
        "usage": {"input_tokens": 6, "output_tokens": records[0]["usage"]["output_tokens"],
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                  "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}},
    }
    assert records[1]["system"] is None and records[1]["temperature"] is None


def test_recorded_requests_keep_last_100_and_clear(server_url):
    headers = {"x-api-key": API_KEY}
    for index in range(105):
        body = valid_body(messages=[{"role": "user", "content": f"m{index}"}])
        assert http(server_url, "POST", "/v1/messages", body, headers)[0] == 200

    records = http(server_url, "GET", "/_standin/requests")[2]
    assert len(records) == 100
    assert records[0]["last_user_text"] == "m5"
    assert records[-1]["last_user_text"] == "m104"

    assert http(server_url, "DELETE", "/_standin/requests")[2] == {"cleared": 100}
    assert http(server_url, "GET", "/_standin/requests")[2] == []


def test_queued_status_faults_apply_to_next_n_requests(client, server_url):
    status, _, body, _ = http(server_url, "POST", "/_standin/faults", {"status": 429, "count": 2})
    assert (status, body) == (200, {"queued": 2})

    for _ in range(2):
        with pytest.raises(anthropic.RateLimitError) as excinfo:
            ask(client)
        assert excinfo.value.response.headers["retry-after"] == "7"
    assert ask(client).stop_reason == "end_turn"


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (401, anthropic.AuthenticationError),
        (500, anthropic.InternalServerError),
        (529, anthropic.OverloadedError),
    ],
)
def test_queued_fault_statuses_map_to_sdk_errors(client, server_url, status, error_class):
    http(server_url, "POST", "/_standin/faults", {"status": status})

    with pytest.raises(error_class) as excinfo:
        ask(client)
    assert excinfo.value.status_code == status


def test_queued_delay_and_clear(client, server_url):
    http(server_url, "POST", "/_standin/faults", {"delay_seconds": 0.1, "count": 1})
    started = time.monotonic()
    ask(client)
    assert time.monotonic() - started >= 0.1

    http(server_url, "POST", "/_standin/faults", {"status": 500, "count": 3})
    assert len(http(server_url, "GET", "/_standin/faults")[2]) == 3
    assert http(server_url, "DELETE", "/_standin/faults")[2] == {"cleared": 3}
    assert ask(client).stop_reason == "end_turn"


def test_invalid_fault_spec_returns_400(server_url):
    status, _, body, _ = http(server_url, "POST", "/_standin/faults", {"status": 418})

    assert status == 400
    assert "status" in body["error"]["message"]
    assert http(server_url, "GET", "/_standin/faults")[2] == []


def test_concurrent_requests_are_all_answered_and_recorded(client, server_url):
    def call(index):
        return ask(client, f"parallel {index}").content[0].text

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(call, range(16)))

    assert all(reply.endswith(f"reply to: parallel {i}") for i, reply in enumerate(replies))
    assert len(http(server_url, "GET", "/_standin/requests")[2]) == 16


def run_main(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "dev.standin", *args], cwd=str(REPO_ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_main_reports_taken_port_and_exits_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_main("--port", str(port))
        stdout, stderr = proc.communicate(timeout=10)

    assert proc.returncode == 2
    assert str(port) in stderr and "ANTHROPIC_STANDIN_PORT" in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert "listening" not in stdout


def test_main_announces_and_exits_cleanly_on_sigterm():
    proc = run_main("--port", "0")
    try:
        first_line = proc.stdout.readline().strip()
        assert first_line.startswith("anthropic stand-in listening on http://127.0.0.1:")
        port = int(first_line.rsplit(":", 1)[1])
        status, _, body, _ = http(f"http://127.0.0.1:{port}", "GET", "/health")
        assert (status, body) == (200, {"status": "ok"})
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0


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
