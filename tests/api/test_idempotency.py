"""Idempotency-Key on the AI routes: a retry after a lost response is admitted and billed once."""
from __future__ import annotations

import json
import secrets
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib.models import IdempotentCall


def standin_texts(url):
    with urllib.request.urlopen(f"{url}/_standin/requests") as response:
        return [r.get("last_user_text") for r in json.loads(response.read())]


@pytest.fixture
def tenant(api):
    return api.signup()


def chat(api, tenant, text, key=None, path="/ai/chat"):
    headers = {"Idempotency-Key": key} if key else {}
    return api.call("POST", path, {"messages": [{"role": "user", "content": text}], "max_tokens": 64},
                    token=tenant.token, headers=headers)


def headers(response):
    return {k.lower(): v for k, v in response.headers.items()}


def usage_requests(api, tenant):
    return api.call("GET", "/usage", token=tenant.token).json["requests"]


def test_a_retry_with_the_same_key_gets_the_first_answer_and_is_billed_once(api, tenant, standin):
    text, key = f"idem-{secrets.token_hex(4)}", secrets.token_hex(8)
    first = chat(api, tenant, text, key)
    again = chat(api, tenant, text, key)
    assert first.status_code == again.status_code == 200
    assert again.json == first.json
    assert headers(again).get("idempotent-replayed") == "true" and "idempotent-replayed" not in headers(first)
    assert standin_texts(standin).count(text) == 1
    assert usage_requests(api, tenant) == 1


def test_without_a_key_each_call_is_its_own(api, tenant, standin):
    text = f"no-key-{secrets.token_hex(4)}"
    assert chat(api, tenant, text).json["id"] != chat(api, tenant, text).json["id"]
    assert standin_texts(standin).count(text) == 2
    assert usage_requests(api, tenant) == 2


def test_the_same_key_with_another_request_is_409_and_calls_nothing(api, tenant, standin):
    key = secrets.token_hex(8)
    assert chat(api, tenant, "first body", key).status_code == 200
    other = chat(api, tenant, f"other body {key}", key)
    assert other.status_code == 409 and other.json["error"]["code"] == "idempotency_key_reused"
    assert f"other body {key}" not in standin_texts(standin)
    assert usage_requests(api, tenant) == 1


def test_concurrent_retries_are_billed_once(api, tenant, standin):
    text, key = f"race-{secrets.token_hex(4)}", secrets.token_hex(8)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: chat(api, tenant, text, key), range(8)))
    codes = sorted(r.status_code for r in results)
    assert set(codes) <= {200, 409} and codes.count(200) >= 1
    answered = {r.json["id"] for r in results if r.status_code == 200}
    assert len(answered) == 1
    assert all(r.json["error"]["code"] == "idempotency_in_progress" and headers(r)["retry-after"] == "1"
               for r in results if r.status_code == 409)
    assert standin_texts(standin).count(text) == 1
    assert usage_requests(api, tenant) == 1


def test_keys_belong_to_their_tenant(api, tenant, standin):
    other = api.signup()
    text, key = f"shared-key-{secrets.token_hex(4)}", secrets.token_hex(8)
    mine, theirs = chat(api, tenant, text, key), chat(api, other, text, key)
    assert mine.status_code == theirs.status_code == 200 and mine.json["id"] != theirs.json["id"]
    assert "idempotent-replayed" not in headers(theirs)
    assert standin_texts(standin).count(text) == 2


def test_a_failed_first_call_stores_nothing_and_its_retry_runs(api, tenant, standin):
    key = secrets.token_hex(8)
    refused = chat(api, tenant, "x" * 10, key, path="/ai/code-review")  # free plan: not in plan, refused
    assert refused.status_code in (400, 403)
    assert not list(IdempotentCall.query(f"TENANT#{tenant.id}", IdempotentCall.sk.startswith("IDEMPOTENCY#")))
    assert chat(api, tenant, "after the refusal", key).status_code == 200


def test_a_malformed_key_is_400_and_writes_nothing(api, tenant, standin):
    r = chat(api, tenant, "bad key", "k" * 201)
    assert r.status_code == 400 and r.json["error"]["code"] == "invalid_idempotency_key"
    assert "bad key" not in standin_texts(standin)
    assert not list(IdempotentCall.query(f"TENANT#{tenant.id}", IdempotentCall.sk.startswith("IDEMPOTENCY#")))


def test_v1_messages_replays_in_anthropics_shape(api, tenant, standin):
    key, text = secrets.token_hex(8), f"v1-idem-{secrets.token_hex(4)}"
    body = {"model": "claude-sonnet-4-6", "max_tokens": 32, "messages": [{"role": "user", "content": text}]}
    first = api.call("POST", "/v1/messages", body, token=tenant.token, headers={"Idempotency-Key": key})
    again = api.call("POST", "/v1/messages", body, token=tenant.token, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 200 and again.json == first.json
    assert headers(again)["x-tessera-request-id"] == headers(first)["x-tessera-request-id"]
    body["max_tokens"] = 33
    reused = api.call("POST", "/v1/messages", body, token=tenant.token, headers={"Idempotency-Key": key})
    assert reused.status_code == 409 and reused.json["type"] == "error"
    assert standin_texts(standin).count(text) == 1
