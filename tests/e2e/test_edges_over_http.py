"""What a client meets from outside `make run`'s processes: a burst of connections, repeated headers,
undeclared methods and the official SDK's retries, over real HTTP on loopback."""
from __future__ import annotations

import secrets
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import anthropic
import pytest

from dev.stack import local_stack as stack 
from test_local_stack import call, local_stack  # noqa: F401 (local_stack is a fixture)

pytestmark = pytest.mark.e2e

BURST = 64
ANSWER_WITHIN_SECONDS = 10  # per connection, connect and answer; a dropped connection never answers


@pytest.fixture(scope="module")
def operator(local_stack):
    return stack.operator_token(local_stack.env)


def new_tenant(api_url: str):
    """(tenant id, owner token, API key) for a tenant signed up over HTTP."""
    slug = f"edge-{secrets.token_hex(4)}"
    email, password = f"o@{slug}.example.com", "correct-horse-battery"
    status, created = call("POST", api_url + "/tenants",
                           {"company_name": "Edge Inc", "slug": slug, "email": email, "password": password})
    assert status == 201, created
    _, login = call("POST", api_url + "/auth/login", {"tenant": slug, "email": email, "password": password})
    _, key = call("POST", api_url + "/api-keys", {"name": "edge"}, token=login["access_token"])
    return created["tenant_id"], login["access_token"], key["key"]


@pytest.fixture
def tenant(local_stack):
    return new_tenant(local_stack.api_url)


def raw_request(port: int, request: bytes, timeout: float = ANSWER_WITHIN_SECONDS) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def status_of(answer: bytes) -> str:
    return answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/1.") else "no answer"


def test_every_connection_of_a_64_way_burst_gets_an_http_answer(local_stack):
    request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    all_connected = threading.Barrier(BURST)
    outcomes = [""] * BURST

    def connect(index: int) -> None:
        all_connected.wait()
        try:
            outcomes[index] = status_of(raw_request(local_stack.api_port, request))
        except OSError as error:
            outcomes[index] = type(error).__name__

    threads = [threading.Thread(target=connect, args=(i,)) for i in range(BURST)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=2 * ANSWER_WITHIN_SECONDS)
    print(f"burst of {BURST}: {dict(Counter(outcomes))}")
    assert Counter(outcomes) == {"200": BURST}


def test_repeated_x_tenant_id_whose_copies_disagree_is_refused(local_stack, tenant):
    tenant_id, token, _ = tenant
    head = f"GET /me HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n"
    agreeing = raw_request(local_stack.api_port, f"{head}X-Tenant-ID: {tenant_id}\r\n\r\n".encode())
    disagreeing = raw_request(local_stack.api_port,
                              f"{head}X-Tenant-ID: {tenant_id}\r\nX-Tenant-ID: ten_someone_else\r\n\r\n".encode())
    assert status_of(agreeing) == "200"
    assert status_of(disagreeing) == "403" and b"tenant_mismatch" in disagreeing


def test_an_undeclared_method_is_405_with_the_allowed_ones(local_stack):
    answer = raw_request(local_stack.api_port, b"TRACE /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert status_of(answer) == "405" and b"\r\nAllow: GET" in answer


class CountingSDK:
    """A default SDK client (its own retry policy, max_retries=2) whose requests are counted."""

    def __init__(self, base_url: str, api_key: str, **options):
        self.requests = 0
        http = anthropic.DefaultHttpxClient(event_hooks={"request": [self._count]})
        self.client = anthropic.Anthropic(base_url=base_url, api_key=api_key, http_client=http, **options)

    def _count(self, request) -> None:
        self.requests += 1


MESSAGE = {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "edge"}]}


def test_a_default_sdk_client_gets_its_rate_limit_error_within_2_s(local_stack, tenant, operator):
    tenant_id, _, key = tenant
    status, _ = call("PUT", f"{local_stack.api_url}/admin/tenants/{tenant_id}/limits",
                     {"features": {"basic_chat": 0}}, token=operator)
    assert status == 200
    sdk = CountingSDK(local_stack.api_url, key)
    started = time.monotonic()
    with pytest.raises(anthropic.RateLimitError) as refused:
        sdk.client.messages.create(**MESSAGE)
    elapsed = time.monotonic() - started
    print(f"RateLimitError after {elapsed:.3f} s and {sdk.requests} request(s)")
    assert elapsed < 2 and sdk.requests == 1
    assert refused.value.body["error"]["code"] == "feature_limit_reached"
    assert refused.value.response.headers["x-should-retry"] == "false"


@pytest.mark.parametrize("fault, error, status, kind", [
    # Bedrock failing too: a pool call that fails over and still finds no answer (docs/upstream.md)
    ("[[standin:500]] [[bedrock:503]]", anthropic.InternalServerError, 502, "api_error"),
    ("[[standin:529]] [[bedrock:503]]", anthropic.OverloadedError, 529, "overloaded_error"),
])
def test_upstream_failures_reach_the_sdk_as_what_they_are(local_stack, tenant, fault, error, status, kind):
    _, _, key = tenant
    sdk = CountingSDK(local_stack.api_url, key, max_retries=0)
    with pytest.raises(error) as failed:
        sdk.client.messages.create(**{**MESSAGE, "messages": [{"role": "user", "content": f"edge {fault}"}]})
    assert failed.value.status_code == status and failed.value.body["error"]["type"] == kind


# --- answers a client can act on (the official SDK over HTTP) -------------------------------------------

class HeardSDK(CountingSDK):
    """A counting SDK that also keeps each response's status, Retry-After and arrival time."""

    def __init__(self, base_url: str, api_key: str, **options):
        self.heard = []
        super().__init__(base_url, api_key, **options)
        self.client._client.event_hooks["response"].append(self._hear)

    def _hear(self, response) -> None:
        self.heard.append((response.status_code, response.headers.get("retry-after"), time.monotonic()))


def retried_after_refusal(api_url: str, operator: str, rpm: int) -> tuple:
    """A new tenant limited to `rpm` calls a minute makes them, then one more with a default SDK client:
    refused once, then admitted on the SDK's own retry. What the SDK heard, and when the last call began."""
    tenant_id, _, key = new_tenant(api_url)
    status, _ = call("PUT", f"{api_url}/admin/tenants/{tenant_id}/limits", {"requests_per_minute": rpm},
                     token=operator)
    assert status == 200
    sdk = HeardSDK(api_url, key)  # max_retries=2, the SDK's default
    for _ in range(rpm):
        sdk.client.messages.create(**MESSAGE)
    sdk.heard.clear()
    started = time.monotonic()
    message = sdk.client.messages.create(**MESSAGE)
    assert message.content and message._request_id
    return list(sdk.heard), started


def test_a_default_sdk_client_waits_the_retry_after_and_is_admitted(local_stack, operator):
    # Both limits at once, each on a tenant of its own: each waits out up to a minute of its rate window.
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = {rpm: pool.submit(retried_after_refusal, local_stack.api_url, operator, rpm) for rpm in (1, 10)}
        heard = {rpm: run.result() for rpm, run in runs.items()}
    for rpm, (answers, started) in heard.items():
        (refused, retry_after, refused_at), (admitted, _, admitted_at) = answers
        print(f"rpm {rpm}: Retry-After {retry_after} s; admitted {admitted_at - refused_at:.2f} s after the "
              f"refusal, {admitted_at - started:.2f} s after the call began")
        assert (refused, admitted) == (429, 200)
        assert 1 <= int(retry_after) <= 60
        assert int(retry_after) <= admitted_at - refused_at < int(retry_after) + 2


def test_the_sdks_request_id_is_the_answers_own_on_success_and_on_refusal(local_stack, tenant, operator):
    tenant_id, _, key = tenant
    sdk = CountingSDK(local_stack.api_url, key, max_retries=0)
    message = sdk.client.messages.create(**MESSAGE)
    assert message._request_id
    with pytest.raises(anthropic.NotFoundError) as unknown:
        sdk.client.messages.create(**{**MESSAGE, "model": "claude-nonexistent-9"})
    assert unknown.value.request_id and unknown.value.request_id != message._request_id
    assert unknown.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.AuthenticationError) as refused:
        CountingSDK(local_stack.api_url, "tsk_ten_nope.key_nope.secret", max_retries=0).client.messages.create(
            **MESSAGE)
    assert refused.value.request_id


def test_an_unknown_v1_path_answers_in_anthropics_error_shape(local_stack, tenant):
    _, _, key = tenant
    for token in (None, key):
        # a path no route declares (/v1/messages/batches/{id}/results is a route now, GET only)
        status, body = call("POST", f"{local_stack.api_url}/v1/messages/batches/nope/unknown", {}, token=token)
        assert status == 404 and body["type"] == "error"
        assert (body["error"]["type"], body["error"]["code"]) == ("not_found_error", "not_found")


def test_extended_thinking_works_on_a_new_tenant(local_stack, tenant):
    _, _, key = tenant
    sdk = CountingSDK(local_stack.api_url, key, max_retries=0)
    message = sdk.client.messages.create(**{**MESSAGE, "max_tokens": 2048,
                                            "thinking": {"type": "enabled", "budget_tokens": 1024}})
    assert [block.type for block in message.content][0] == "thinking"


def test_a_raised_limit_admits_the_very_next_call_after_a_refused_burst_of_50(local_stack, tenant, operator):
    tenant_id, _, key = tenant
    limits = f"{local_stack.api_url}/admin/tenants/{tenant_id}/limits"
    assert call("PUT", limits, {"features": {"basic_chat": 10}, "requests_per_minute": 1000}, token=operator)[0] == 200
    body = {"messages": [{"role": "user", "content": "burst"}], "max_tokens": 16}
    start = threading.Barrier(50)

    def one(_):
        start.wait()
        return call("POST", f"{local_stack.api_url}/ai/chat", body, token=key)[0]

    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = Counter(pool.map(one, range(50)))
    assert statuses == {200: 10, 429: 40}
    assert call("PUT", limits, {"features": {"basic_chat": 12}}, token=operator)[0] == 200
    raised = time.monotonic()
    first = call("POST", f"{local_stack.api_url}/ai/chat", body, token=key)
    elapsed = time.monotonic() - raised
    print(f"first call after the raise: {first[0]} in {elapsed:.3f} s")
    assert first[0] == 200, first
    assert call("POST", f"{local_stack.api_url}/ai/chat", body, token=key)[0] == 200
    assert call("POST", f"{local_stack.api_url}/ai/chat", body, token=key)[0] == 429


def test_at_the_edge_of_the_quota_the_sdk_retries_a_529_and_is_admitted(local_stack, tenant, operator):
    tenant_id, _, key = tenant
    assert call("PUT", f"{local_stack.api_url}/admin/tenants/{tenant_id}/limits",
                {"features": {"basic_chat": 1}}, token=operator)[0] == 200
    standin = f"http://127.0.0.1:{local_stack.standin_port}/_standin"
    # Anthropic overloaded for the call and its retry, Bedrock unavailable: Tessera answers 529
    assert call("POST", f"{standin}/faults", {"status": 529, "count": 2})[0] == 200
    assert call("POST", f"{standin}/bedrock/faults", {"status": 503, "count": 1})[0] == 200
    sdk = HeardSDK(local_stack.api_url, key)  # the SDK retries a 529 by itself
    message = sdk.client.messages.create(**MESSAGE)
    assert message.content and [status for status, _, _ in sdk.heard] == [529, 200]
    with pytest.raises(anthropic.RateLimitError):  # and the quota of one is now used
        sdk.client.messages.create(**MESSAGE)
