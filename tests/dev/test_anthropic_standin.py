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
