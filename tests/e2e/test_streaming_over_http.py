"""`make run` streams as deployed: POST /v1/messages and POST /ai/chat through the local gateway to the streaming
function's app (dev/stack/local_gateway.py, chalicelib/stream_host), each event as upstream produces it, with the
official SDK and raw HTTP."""
from __future__ import annotations

import json
import time

import pytest

from test_local_stack import call, local_stack  # noqa: F401 (local_stack is a fixture)

pytestmark = pytest.mark.e2e

PACING = 0.4


@pytest.fixture(scope="module")
def api_key(local_stack):
    slug = f"stream-{int(time.time() * 1000) % 10**8}"
    email, password = f"o@{slug}.example.com", "correct-horse-battery"
    status, _ = call("POST", local_stack.api_url + "/tenants", {"company_name": "Stream", "slug": slug,
                                                                "email": email, "password": password})
    assert status == 201
    _, login = call("POST", local_stack.api_url + "/auth/login", {"tenant": slug, "email": email, "password": password})
    _, key = call("POST", local_stack.api_url + "/api-keys", {"name": "stream"}, token=login["access_token"])
    return key["key"]


def test_the_sdk_sees_the_first_text_while_upstream_is_still_producing(local_stack, api_key):
    import anthropic

    text = f"[[standin:event_delay={PACING}]] sdk-as-produced " + "words " * 10
    arrivals = []
    with anthropic.Anthropic(base_url=local_stack.api_url, api_key=api_key, max_retries=0) as client:
        started = time.monotonic()
        with client.messages.stream(model="claude-haiku-4-5", max_tokens=200,
                                    messages=[{"role": "user", "content": text}]) as stream:
            for event in stream:
                arrivals.append((time.monotonic() - started, event.type))
            final = stream.get_final_message()
    texts = [at for at, kind in arrivals if kind == "text"]
    assert final.stop_reason == "end_turn" and len(texts) >= 5
    # upstream waits PACING before each event: the last text comes (len(texts) - 1) pacings after the first
    assert texts[-1] - texts[0] > (len(texts) - 2) * PACING
    assert arrivals[0][0] < texts[-1] - 2  # message_start long before the end


def test_a_streamed_chat_over_http_relays_each_event_with_the_request_ids(local_stack, api_key):
    import http.client

    body = json.dumps({"messages": [{"role": "user", "content": f"[[standin:event_delay={PACING}]] chat-stream"}],
                       "stream": True}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", local_stack.api_port, timeout=60)
    started = time.monotonic()
    connection.request("POST", "/ai/chat", body=body, headers={"Content-Type": "application/json",
                                                               "x-api-key": api_key})
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("Content-Type") == "text/event-stream"
    assert response.getheader("X-Request-Id") and response.getheader("x-tessera-request-id")
    chunks = []
    while True:
        chunk = response.read1(65536)
        if not chunk:
            break
        chunks.append((time.monotonic() - started, chunk))
    connection.close()
    assert b"message_start" in chunks[0][1] and b"message_stop" in chunks[-1][1]
    assert chunks[-1][0] - chunks[0][0] > 4 * PACING and len(chunks) > 5


def test_a_streaming_route_without_a_credential_gets_the_gateways_401(local_stack):
    status, body = call("POST", local_stack.api_url + "/v1/messages",
                        {"model": "claude-haiku-4-5", "max_tokens": 10, "stream": True,
                         "messages": [{"role": "user", "content": "hi"}]})
    assert status == 401 and body["error"]["type"] == "authentication_error"
