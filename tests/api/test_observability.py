"""Tenant-aware observability: EMF metrics by plan and feature with the tenant as a property, refusals by
reason, Powertools JSON logs with the request's keys, and traces annotated with the tenant."""
from __future__ import annotations

import io
import json
import logging
import threading
from decimal import Decimal
from typing import Any, Dict, List, Optional

import pytest

from chalicelib import observability

CHAT = {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 32}


def _parsed_lines(logger: logging.Logger, formatter: Optional[logging.Formatter] = None):
    """Every line `logger` writes while the fixture lives, parsed: yields a function that reads them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    if formatter is not None:
        handler.setFormatter(formatter)
    logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)


@pytest.fixture
def records():
    """The EMF records the app writes, parsed."""
    yield from _parsed_lines(observability.metrics_writer())


@pytest.fixture
def log_lines():
    """The Powertools log lines the app writes, parsed."""
    from chalicelib.logs import JsonFormatter, get_logger

    yield from _parsed_lines(get_logger().logger, JsonFormatter())


def emf(record: Dict[str, Any]) -> Dict[str, Any]:
    [directive] = record["_aws"]["CloudWatchMetrics"]
    return directive


def test_an_ai_call_is_one_record_by_plan_and_feature_with_the_tenant_as_a_property(api, records):
    tenant = api.signup()
    response = api.call("POST", "/ai/chat", CHAT, token=tenant.token)
    assert response.status_code == 200
    [record] = [r for r in records() if "requests" in r]
    directive, pool = record["_aws"]["CloudWatchMetrics"]  # a pool call: its model's pool numbers by model
    assert pool["Dimensions"] == [["model", "service"]] and pool["Namespace"] == "Tessera"
    assert directive["Namespace"] == "Tessera"
    assert directive["Dimensions"] == [["plan", "feature", "service"]]
    assert (record["plan"], record["feature"]) == ("free", "basic_chat")
    assert record["tenant_id"] == tenant.id
    assert "tenant_id" not in directive["Dimensions"][0]
    usage = response.json["usage"]
    # Plain integers, not one-element lists: CloudWatch Logs would flatten a list to `cost_micros.0`.
    assert record["input_tokens"] == usage["input_tokens"] and record["output_tokens"] == usage["output_tokens"]
    assert record["cost_micros"] == int(Decimal(response.json["cost_usd"]) * 1_000_000)
    assert record["requests"] == 1 and isinstance(record["upstream_latency"], int)
    assert {m["Name"] for m in directive["Metrics"]} == {"requests", "input_tokens", "output_tokens", "cost_micros",
                                                        "upstream_latency", "failovers", "upstream_retries",
                                                        "breaker_open"}
    # The route (docs/upstream.md): Anthropic answered at the first attempt, its breaker closed.
    assert (record["provider"], record["breaker"]) == ("anthropic", "closed")
    assert (record["failovers"], record["upstream_retries"], record["breaker_open"]) == (0, 0, 0)
    # The record is also the call's log line: the fields an operator greps for, and no second line.
    assert (record["message"], record["status"], record["key_source"]) == ("model call", "ok", "platform")
    assert record["model"] == response.json["model"] and record["request_id"]


def test_a_settled_call_writes_its_record_and_no_log_line_besides(api, records, log_lines):
    tenant = api.signup()
    assert api.call("POST", "/ai/chat", CHAT, token=tenant.token).status_code == 200
    [record] = [r for r in records() if r.get("tenant_id") == tenant.id]
    assert record["message"] == "model call"
    assert [line["message"] for line in log_lines() if line.get("request_id") == record["request_id"]] == ["request"]


def test_a_call_every_attempt_failed_is_one_record_with_its_retries_and_failover(api, records):
    tenant = api.signup()
    faults = {"messages": [{"role": "user", "content": "fails [[standin:500]] [[bedrock:503]]"}], "max_tokens": 32}
    response = api.call("POST", "/ai/chat", faults, token=tenant.token)
    assert response.status_code == 502
    [record] = [r for r in records() if r.get("message") == "model call failed"]
    assert emf(record)["Dimensions"] == [["plan", "feature", "service"]]
    assert {m["Name"] for m in emf(record)["Metrics"]} == {"failed_calls", "upstream_retries", "failovers"}
    assert (record["plan"], record["feature"], record["tenant_id"]) == ("free", "basic_chat", tenant.id)
    assert (record["status"], record["error"], record["key_source"]) == ("failed", "upstream_error", "platform")
    assert record["upstream_attempts"] == "anthropic:502,anthropic:502,bedrock:503"  # as the caller got each
    assert (record["failed_calls"], record["upstream_retries"], record["failovers"]) == (1, 2, 1)
    assert "requests" not in record  # answered calls only: `requests` / (`requests` + `failed_calls`) is success


def test_a_call_upstream_refused_is_not_a_failed_call(api, records):
    tenant = api.signup()
    refused = {"messages": [{"role": "user", "content": "limited [[standin:429]]"}], "max_tokens": 32}
    assert api.call("POST", "/ai/chat", refused, token=tenant.token).status_code == 429
    assert [r for r in records() if r.get("message") == "model call failed"] == []


def test_a_plan_gate_refusal_is_counted_by_reason_and_plan(api, records):
    tenant = api.signup()
    response = api.call("POST", "/ai/code-review", {"code": "x = 1", "language": "python"}, token=tenant.token)
    assert response.status_code == 403
    [record] = [r for r in records() if "refusals" in r]
    assert emf(record)["Dimensions"] == [["plan", "reason", "service"]]
    assert (record["plan"], record["reason"], record["feature"]) == ("free", "feature_not_in_plan", "code_review")
    assert record["tenant_id"] == tenant.id


def test_an_authorizer_refusal_is_counted_without_a_tenant(api, records):
    response = api.call("GET", "/me", token="not-a-token")
    assert response.status_code == 401
    [record] = [r for r in records() if "refusals" in r]
    assert (record["plan"], record["reason"]) == ("none", "unauthorized")
    assert "tenant_id" not in record


def test_log_lines_carry_the_plan_and_powertools_fields(api, log_lines):
    tenant = api.signup()
    api.call("GET", "/me", token=tenant.token)
    [line] = [line for line in log_lines() if line["message"] == "request" and line.get("tenant_id") == tenant.id]
    assert (line["tenant_id"], line["plan"], line["service"], line["level"]) == (tenant.id, "free", "tessera", "INFO")
    assert line["location"].startswith("envelope_middleware:") and line["timestamp"].endswith("+00:00")


class CapturingEmitter:
    def __init__(self) -> None:
        self.entities: List[Any] = []

    def send_entity(self, entity: Any) -> None:
        self.entities.append(entity)

    def set_daemon_address(self, address: Any) -> None:
        pass


TRACE_ID = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled="


@pytest.fixture
def xray(monkeypatch):
    """As in a Lambda invocation with active tracing: the Tracer's recorder sending to a list, not a daemon.
    Yields a function that sets the invocation's trace header, sampled or not."""
    import aws_xray_sdk
    from aws_xray_sdk.core.lambda_launcher import LambdaContext

    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")
    recorder = observability.tracer().provider
    emitter = CapturingEmitter()
    # The SDK picks Lambda's context when it is first imported inside a Lambda; another test may have
    # imported it outside one, so the context is given here as Lambda's runtime would have chosen it.
    recorder.configure(emitter=emitter, sampling=False, context_missing="LOG_ERROR", context=LambdaContext())
    aws_xray_sdk.global_sdk_config.set_sdk_enabled(True)
    began: List[str] = []
    begin = recorder.begin_subsegment
    this_thread = threading.get_ident()

    def counting(name, *args, **kwargs):
        if threading.get_ident() == this_thread:  # not the usage stream's pump, a thread of the tests' own
            began.append(name)
        return begin(name, *args, **kwargs)

    monkeypatch.setattr(recorder, "begin_subsegment", counting)
    emitter.began = began
    yield lambda sampled: (monkeypatch.setenv("_X_AMZN_TRACE_ID", TRACE_ID + ("1" if sampled else "0")), emitter)[1]
    aws_xray_sdk.global_sdk_config.set_sdk_enabled(False)


def test_a_traced_request_is_annotated_with_its_tenant_and_plan(xray):
    emitter = xray(True)
    with observability.traced("/ai/chat", tenant_id="ten_1", plan="pro"):
        pass
    [subsegment] = [e for e in emitter.entities if getattr(e, "name", "") == "## /ai/chat"]
    assert subsegment.annotations == {"tenant_id": "ten_1", "plan": "pro"}


def test_a_sampled_request_s_dynamodb_calls_are_subsegments_of_it(xray):
    from chalicelib.models import Tenant, tenant_pk
    from chalicelib.store import get_items

    emitter = xray(True)
    with observability.traced("/ai/chat", tenant_id="ten_1"):
        assert get_items([(Tenant, tenant_pk("ten_missing"), Tenant.SK)]) == [None]
    [request] = [e for e in emitter.entities if getattr(e, "name", "") == "## /ai/chat"]
    [call] = [e for e in emitter.entities if getattr(e, "parent_id", None) == request.id]
    assert (call.name, call.namespace, call.aws["operation"], call.http["response"]["status"]) == (
        "dynamodb", "aws", "BatchGetItem", 200)
    assert call.aws["request_id"] and call.aws["region"]
    assert not getattr(call, "error", False) and not getattr(call, "fault", False)


def test_a_refused_call_s_subsegment_carries_its_error(xray):
    from pynamodb.exceptions import PutError

    from chalicelib.models import Tenant, tenant_pk

    emitter = xray(True)
    from datetime import datetime, timezone

    tenant = Tenant(tenant_pk("ten_traced"), Tenant.SK, tenant_id="ten_traced", slug="traced", name="Traced",
                    plan="free", status="active", created_at=datetime.now(timezone.utc))
    with observability.traced("/tenants"):
        with pytest.raises(PutError):
            tenant.save(condition=Tenant.pk.exists())  # no such item: DynamoDB answers 400
    [request] = [e for e in emitter.entities if getattr(e, "name", "") == "## /tenants"]
    [call] = [e for e in emitter.entities if getattr(e, "parent_id", None) == request.id]
    assert (call.aws["operation"], call.http["response"]["status"], getattr(call, "error", False),
            getattr(call, "fault", False)) == ("PutItem", 400, True, False)


def test_a_call_that_got_no_answer_ends_its_subsegment_with_the_exception(xray):
    import boto3
    from botocore.config import Config
    from botocore.exceptions import EndpointConnectionError

    from dev.stack import local_stack as stack

    emitter = xray(True)
    unreachable = observability.trace_aws_calls(boto3.session.Session().client(
        "dynamodb", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{stack.free_port()}",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1)))
    with observability.traced("/ai/chat"):
        with pytest.raises(EndpointConnectionError):
            unreachable.list_tables()
    [request] = [e for e in emitter.entities if getattr(e, "name", "") == "## /ai/chat"]
    [call] = [e for e in emitter.entities if getattr(e, "parent_id", None) == request.id]
    assert (call.name, call.aws["operation"], getattr(call, "fault", False)) == ("dynamodb", "ListTables", True)
    assert [e.type for e in call.cause["exceptions"]] == ["EndpointConnectionError"]


def test_an_unsampled_request_never_reaches_the_xray_sdk(xray):
    """X-Ray records nothing of an unsampled invocation, so neither its request nor its AWS calls open a
    subsegment (the SDK's botocore patch did, for about 0.2 ms a call)."""
    from chalicelib.models import Tenant, tenant_pk
    from chalicelib.store import get_items

    emitter = xray(False)
    with observability.traced("/ai/chat", tenant_id="ten_1"):
        get_items([(Tenant, tenant_pk("ten_missing"), Tenant.SK)])
    assert emitter.began == [] and emitter.entities == []
    xray(True)
    with observability.traced("/ai/chat", tenant_id="ten_1"):
        get_items([(Tenant, tenant_pk("ten_missing"), Tenant.SK)])
    assert emitter.began == ["## /ai/chat", "dynamodb"]


def test_the_tracer_patches_no_library(xray):
    """botocore's calls are traced through its events on our clients, not by wrapping it process-wide."""
    import inspect

    import botocore.client
    import wrapt

    xray(True)  # the Tracer is built, as in a Lambda
    assert not isinstance(inspect.getattr_static(botocore.client.BaseClient, "_make_api_call"), wrapt.ObjectProxy)


def test_tracing_stays_off_outside_lambda(monkeypatch):
    monkeypatch.delenv("LAMBDA_TASK_ROOT", raising=False)
    assert not observability.tracing_enabled()
    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    assert not observability.tracing_enabled()
