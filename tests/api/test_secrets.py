"""Secrets never leak: a canary tenant key, passwords, API keys and tokens are absent from every
log line, every response but the one that hands them out, and every stored item."""
from __future__ import annotations

import io
import json
import logging
import urllib.request

import boto3
import pytest

from chalicelib.logs import JsonFormatter, get_logger

CANARY = "sk-ant-CANARY-4f9d2c7e1b3a5d6f8e0c"
PASSWORD = "canary-password-Zq8!"


@pytest.fixture
def captured_logs():
    """Every line the app writes: its logs and its metric records (both land in CloudWatch Logs)."""
    from chalicelib.observability import metrics_writer

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    metrics = logging.StreamHandler(stream)
    logger = get_logger().logger
    logger.addHandler(handler)
    metrics_writer().addHandler(metrics)
    yield stream
    logger.removeHandler(handler)
    metrics_writer().removeHandler(metrics)


def test_no_secret_reaches_logs_responses_or_stored_items(api, captured_logs, standin):
    tenant = api.signup(password=PASSWORD)
    key = api.api_key(tenant)
    bodies = []
    set_key = api.call("PUT", "/tenant/ai-config/api-key", {"api_key": CANARY}, token=tenant.token)
    bodies.append(set_key.body.decode())
    for token in (tenant.token, key["key"]):
        for method, path, body in [("GET", "/me", None), ("GET", "/tenant/ai-config", None),
                                   ("POST", "/ai/chat", {"messages": [{"role": "user", "content": "hi"}]}),
                                   ("GET", "/usage/events", None), ("GET", "/api-keys", None),
                                   ("GET", "/users", None)]:
            bodies.append(api.call(method, path, body, token=token).body.decode())
    bodies.append(api.call("POST", "/auth/login", {"tenant": tenant.slug, "email": tenant.email,
                                                   "password": "wrong-password-x"}).body.decode())
    logs = captured_logs.getvalue()
    assert "model call" in logs and "request" in logs and '"CloudWatchMetrics"' in logs
    items = boto3.client("dynamodb").query(
        TableName="tessera-local", KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"TENANT#{tenant.id}"}})["Items"]
    stored = json.dumps([{k: v for k, v in item.items() if k != "api_key_ciphertext"} for item in items],
                        default=str)
    secret_part = key["key"].split(".")[-1]
    for secret in (CANARY, PASSWORD, secret_part, tenant.token):
        assert secret not in logs
        assert secret not in stored
        assert all(secret not in body for body in bodies)
    with urllib.request.urlopen(f"{standin}/_standin/requests") as response:
        assert CANARY not in response.read().decode()


def test_log_lines_are_json_with_request_and_tenant_ids(api, captured_logs):
    tenant = api.signup()
    captured_logs.truncate(0)
    captured_logs.seek(0)
    response = api.call("GET", "/me", token=tenant.token)
    lines = [json.loads(line) for line in captured_logs.getvalue().splitlines()]
    [request_line] = [line for line in lines if line.get("message") == "request"]
    assert request_line["tenant_id"] == tenant.id
    assert request_line["request_id"] == response.headers["X-Request-Id"]
    assert request_line["status"] == 200 and request_line["path"] == "/me"
