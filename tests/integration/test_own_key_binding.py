"""A tenant's own Anthropic key is bound to the tenant by KMS on every path, the warm cache included."""
from __future__ import annotations

import json
import urllib.request

import boto3
import pytest

from chalicelib.aws import client
from chalicelib.ai import settings as ai_settings
from chalicelib.ai.gateway import FeatureCall, Gateway
from chalicelib.ai.tenant_keys import TenantKeyUnavailable
from chalicelib.settings import reset_settings
from test_metering_concurrency import new_tenant

OWN_KEY = "sk-ant-own-binding-canary-51d0c2a9e7"


def chat(text):
    return FeatureCall(messages=[{"role": "user", "content": text}], max_tokens=16)


def received(standin, text):
    with urllib.request.urlopen(f"{standin}/_standin/requests") as response:
        return [r for r in json.loads(response.read()) if text in (r.get("last_user_text") or "")]


@pytest.fixture
def long_cache(monkeypatch):
    """Caches that outlast any gap between two calls on a slow machine: the test must not pass by timing."""
    monkeypatch.setenv("TESSERA_TENANT_CACHE_SECONDS", "600")
    reset_settings()
    yield
    monkeypatch.undo()
    reset_settings()


def test_copied_ciphertext_is_refused_while_its_owners_decrypted_key_is_cached(long_cache, standin):
    (victim_id, victim), (thief_id, thief) = new_tenant(), new_tenant()
    ai_settings.set_own_key(victim_id, {"api_key": OWN_KEY})
    gateway = Gateway()
    gateway.run(victim, "basic_chat", chat("victim-warms-the-cache"))
    table = boto3.client("dynamodb")
    stolen = table.get_item(TableName="tessera-local",
                            Key={"pk": {"S": f"TENANT#{victim_id}"}, "sk": {"S": "AICONFIG"}})["Item"]
    table.update_item(TableName="tessera-local", Key={"pk": {"S": f"TENANT#{thief_id}"}, "sk": {"S": "AICONFIG"}},
                      UpdateExpression="SET api_key_ciphertext = :c",
                      ExpressionAttributeValues={":c": stolen["api_key_ciphertext"]})
    with pytest.raises(TenantKeyUnavailable):
        gateway.run(thief, "basic_chat", chat("thief-uses-a-copy"))
    assert received(standin, "thief-uses-a-copy") == []


def test_the_owners_second_call_is_served_from_the_cache_without_kms(long_cache, standin):
    tenant_id, ctx = new_tenant()
    ai_settings.set_own_key(tenant_id, {"api_key": OWN_KEY})
    decrypts = []
    kms = client("kms")
    count = lambda **kwargs: decrypts.append(1)  # noqa: E731
    kms.meta.events.register("before-call.kms.Decrypt", count)
    try:
        gateway = Gateway()
        gateway.run(ctx, "basic_chat", chat("first-own-call"))
        gateway.run(ctx, "basic_chat", chat("second-own-call"))
    finally:
        kms.meta.events.unregister("before-call.kms.Decrypt", count)
    assert len(decrypts) == 1
    assert len({r["key_fingerprint"] for r in received(standin, "-own-call")}) == 1
