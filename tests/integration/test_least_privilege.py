"""Least privilege per function, proved twice.

Over the expanded template (what CloudFormation runs, after the SAM transform): every
function found there has its own role, and that role allows exactly the actions
dev/deploy/permissions.py lists for it, on exact resources, plus its own log group and X-Ray.

Against the code: each entry point runs on moto with every AWS call it makes recorded
(botocore's before-parameter-build hook on the clients the app builds), and the IAM actions those
calls need are exactly the ones listed for that function: none missing, none unused.
"""
from __future__ import annotations

import contextlib
import json
import os
import urllib.request
import threading
import uuid
from collections import defaultdict
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

import boto3
import pytest

from chalicelib.ai.gateway import default_gateway
from conftest import settle_usage

from dev.deploy import permissions
from dev.deploy import template as merge

STAGE = "prod"
INFRASTRUCTURE_SIDS = {"OwnLogGroup", "Tracing", "FailureDestination"}


def lambda_functions(expanded: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {k: r for k, r in expanded["Resources"].items() if r["Type"] == "AWS::Lambda::Function"}


def chalice_name(function: Dict[str, Any]) -> str:
    return merge.function_name_of(function)


def role_statements(expanded: Dict[str, Any], role_id: str) -> List[Dict[str, Any]]:
    """Every identity-policy statement that reaches a role: inline, attached policies, managed policies."""
    role = expanded["Resources"][role_id]["Properties"]
    assert not role.get("ManagedPolicyArns"), f"{role_id} carries managed policies: {role['ManagedPolicyArns']}"
    statements = [s for policy in role.get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]
    for resource in expanded["Resources"].values():
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            if {"Ref": role_id} in resource["Properties"].get("Roles", []):
                statements += resource["Properties"]["PolicyDocument"]["Statement"]
    return statements


def as_list(value: Any) -> List[Any]:
    return value if isinstance(value, list) else [value]


@pytest.fixture(scope="module")
def roles(expanded) -> Dict[str, Tuple[str, List[Dict[str, Any]]]]:
    """chalice function name -> (role logical id, its statements)."""
    found = {}
    for function in lambda_functions(expanded).values():
        role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
        found[chalice_name(function)] = (role_id, role_statements(expanded, role_id))
    return found


def test_the_template_has_every_function_of_the_app(roles):
    from app import app

    expected = ({"api_handler"} | {s.name for s in app.event_sources} | {a.name for a in app.builtin_auth_handlers}
                | {f.name for f in app.pure_lambda_functions} | {"stream_handler"})  # dev/deploy/stream_template.py
    assert len(expected) >= 8 and expected == set(roles)


def test_every_function_has_a_role_of_its_own(roles):
    role_ids = [role_id for role_id, _ in roles.values()]
    assert len(set(role_ids)) == len(role_ids)


def test_each_role_allows_exactly_what_its_functions_code_calls(roles):
    for name, (_, statements) in roles.items():
        granted = {(a, json.dumps(s["Resource"], sort_keys=True)) for s in statements
                   if s["Sid"] not in INFRASTRUCTURE_SIDS and not s["Sid"].endswith(("Stream", "ListStreams", "Queue"))
                   for a in as_list(s["Action"])}
        expected = {(a, json.dumps(permissions.resources(resource, STAGE, "no-reply@example.com"), sort_keys=True))
                    for resource, actions in permissions.FUNCTION_ACCESS[name].items() for a in actions}
        assert granted == expected, name


def test_no_statement_allows_every_resource_except_the_xray_calls_aws_requires_it_for(roles):
    for name, (_, statements) in roles.items():
        for statement in statements:
            assert statement["Effect"] == "Allow" and "NotAction" not in statement and "NotResource" not in statement
            assert not any("*" == a or a.endswith(":*") for a in as_list(statement["Action"])), (name, statement)
            if "*" in as_list(statement["Resource"]):
                assert set(as_list(statement["Action"])) <= set(permissions.XRAY_ACTIONS), (name, statement)


def test_each_function_writes_only_to_its_own_log_group(roles, expanded):
    for function_id, function in lambda_functions(expanded).items():
        _, statements = roles[chalice_name(function)]
        logs = [s for s in statements if any(a.startswith("logs:") for a in as_list(s["Action"]))]
        assert [s["Resource"] for s in logs] == [{"Fn::GetAtt": [f"{function_id}LogGroup", "Arn"]}]
        assert set(logs[0]["Action"]) == {"logs:CreateLogStream", "logs:PutLogEvents"}


def test_kms_is_used_only_under_the_tenant_encryption_context(roles):
    kms = [(name, s) for name, (_, statements) in roles.items() for s in statements
           if any(a.startswith("kms:") for a in as_list(s["Action"]))]
    assert kms
    for name, statement in kms:
        assert statement["Condition"] == {"Null": {"kms:EncryptionContext:tenant_id": "false"}}, name


def test_the_authorizers_cannot_write_use_kms_or_read_the_anthropic_keys(roles):
    for name in ("tenant_auth", "operator_auth"):
        actions = {a for s in roles[name][1] for a in as_list(s["Action"])}
        resources = json.dumps([s["Resource"] for s in roles[name][1]])
        dynamodb = {a for a in actions if a.startswith("dynamodb:")}
        assert not {a for a in dynamodb if a.split(":")[1].startswith(("Put", "Update", "Delete", "BatchWrite"))}
        assert not any(a.startswith(("kms:", "sns:", "ses:")) for a in actions), name
        assert "anthropic-keys" not in resources, name


def test_only_the_functions_that_call_the_model_may_invoke_bedrock_and_only_on_the_mapped_models(roles):
    """Failover (chalicelib/ai/failover.py) reaches Bedrock from the API handler (whole calls) and the
    streaming function (streamed calls); each ARN names one model of pricing.BEDROCK, no other."""
    from chalicelib.pricing import BEDROCK

    allowed = {"api_handler": {"bedrock:InvokeModel"}, "stream_handler": {"bedrock:InvokeModelWithResponseStream"}}
    bases = {m.model_id.split(".", 1)[1] for m in BEDROCK.values()}
    for name, (_, statements) in roles.items():
        bedrock = [s for s in statements if any(a.startswith("bedrock:") for a in as_list(s["Action"]))]
        assert {a for s in bedrock for a in as_list(s["Action"])} == allowed.get(name, set()), name
        for statement in bedrock:
            arns = [arn["Fn::Sub"] for arn in as_list(statement["Resource"])]
            assert len(arns) == 3 * len(BEDROCK), name  # a profile and its model, regional and global
            for arn in arns:
                model = arn.rsplit("/", 1)[1]
                assert model in bases or model in {m.model_id for m in BEDROCK.values()}, arn


def test_only_scheduled_functions_may_write_to_the_failure_queue(roles, expanded):
    for function in lambda_functions(expanded).values():
        _, statements = roles[chalice_name(function)]
        writes = any(s["Sid"] == "FailureDestination" for s in statements)
        assert writes == (chalice_name(function) in {"budget_check", "reservation_sweeper", "batch_sweep",
                                                     "tenant_purge"}), chalice_name(function)


@pytest.fixture
def described(monkeypatch):
    """Functions the app may gain, each described by one entry of FUNCTION_ACCESS."""
    monkeypatch.setitem(permissions.FUNCTION_ACCESS, "aggregate_usage", {"table": ["dynamodb:UpdateItem"]})
    monkeypatch.setitem(permissions.FUNCTION_ACCESS, "sweeper", {"table": ["dynamodb:Query", "dynamodb:DeleteItem"]})


def added_function(handler: str, events: Dict[str, Any]) -> Dict[str, Any]:
    return {"Type": "AWS::Serverless::Function", "Properties": {"Handler": handler, "Events": events}}


ENV = {"TESSERA_TABLE_NAME": "tessera-prod", "TESSERA_EMAIL_SENDER": "no-reply@example.com"}


def test_a_stream_consumer_reads_the_stacks_table_stream_with_one_entry(described):
    """chalice writes the stream ARN it was given; the template points it at the table it creates."""
    chalice_arn = "arn:aws:dynamodb:us-east-1:123456789012:table/tessera-prod/stream/2026-01-01T00:00:00.000"
    function = added_function("app.aggregate_usage", {
        "Usage": {"Type": "DynamoDB", "Properties": {"Stream": chalice_arn, "StartingPosition": "TRIM_HORIZON"}}})
    merged = merge.function_resources("prod", ENV, "AggregateUsage", function)
    stream = {"Fn::GetAtt": ["TesseraTable", "StreamArn"]}
    assert merged["AggregateUsage"]["Properties"]["Events"] == {"Usage": {"Properties": {"Stream": stream}}}
    statements = merged["AggregateUsageRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    by_sid = {s["Sid"]: s for s in statements}
    assert by_sid["UsageStream"]["Resource"] == stream
    assert set(by_sid["UsageStream"]["Action"]) == set(permissions.STREAM_POLLER_ACTIONS)
    assert by_sid["Table"]["Action"] == ["dynamodb:UpdateItem"]
    assert "FailureDestination" not in by_sid


def test_a_second_schedule_gets_its_own_role_failure_queue_and_one_run_at_a_time(described):
    function = added_function("app.sweeper", {"Every10": {"Type": "Schedule",
                                                          "Properties": {"Schedule": "rate(10 minutes)"}}})
    merged = merge.function_resources("prod", ENV, "Sweeper", function)
    properties = merged["Sweeper"]["Properties"]
    assert properties["ReservedConcurrentExecutions"] == 1 and "EventInvokeConfig" in properties
    statements = merged["SweeperRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert {s["Sid"] for s in statements} == {"OwnLogGroup", "Tracing", "Table", "FailureDestination"}
    assert merged["SweeperLogGroup"]["Properties"]["LogGroupName"] == "/aws/lambda/tessera-prod-sweeper"


# --- the code's real calls -------------------------------------------------------------------------------

class CallRecorder:
    """The IAM (action, resource) each AWS call needs, from botocore's before-parameter-build event."""

    def __init__(self) -> None:
        self.needed: Set[Tuple[str, str]] = set()
        self.clients: List[Any] = []
        # Calls on other threads are another test's leftovers (a stream settling after its client left, a
        # pump draining), unless the function under test runs on threads of its own (`from_all_threads`).
        self.thread: Optional[int] = threading.get_ident()

    def from_all_threads(self) -> None:
        self.thread = None

    def attach(self, *clients: Any) -> "CallRecorder":
        for client in clients:
            client.meta.events.register("before-parameter-build", self._before)
            self.clients.append(client)
        return self

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Calls made meanwhile belong to another function (an authorizer run to get a route's context)."""
        before = set(self.needed)
        yield
        self.needed = before

    def detach(self) -> None:
        for client in self.clients:
            client.meta.events.unregister("before-parameter-build", self._before)

    def _before(self, model: Any = None, params: Any = None, **kwargs: Any) -> None:
        if self.thread is not None and threading.get_ident() != self.thread:
            return
        service = model.service_model.endpoint_prefix
        self.needed |= set(iam_needs(service, model.name, params or {}))

    def hear_bedrock(self, standin_url: str, marker: str) -> None:
        """Bedrock is called through the anthropic SDK's own HTTP client, not botocore's: its calls are heard
        at the network edge, the stand-in's request log, by a marker in the prompt."""
        with urllib.request.urlopen(f"{standin_url}/_standin/requests") as response:
            heard = [r for r in json.load(response) if r.get("provider") == "bedrock" and marker in r["last_user_text"]]
        assert heard, f"no Bedrock call carried {marker!r}"
        for request in heard:
            self.needed.add(("bedrock:InvokeModelWithResponseStream" if request["stream"] else "bedrock:InvokeModel",
                             "bedrock_models"))


def iam_needs(service: str, operation: str, params: Dict[str, Any]) -> List[Tuple[str, str]]:
    if service == "dynamodb":
        if operation == "TransactWriteItems":
            kinds = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                     "ConditionCheck": "ConditionCheckItem"}
            return [(f"dynamodb:{kinds[k]}", "table") for item in params["TransactItems"] for k in item]
        if operation == "TransactGetItems":
            return [("dynamodb:GetItem", "table")]
        return [(f"dynamodb:{operation}", "indexes" if params.get("IndexName") else "table")]
    if service == "kms":
        assert params["EncryptionContext"] == {"tenant_id": params["EncryptionContext"]["tenant_id"]}
        return [(f"kms:{operation}", "tenant_keys")]
    if service == "secretsmanager":
        return [(f"secretsmanager:{operation}", "secret:" + params["SecretId"].split("/", 2)[2])]
    if service == "sns":
        return [(f"sns:{operation}", "alerts")]
    if service == "email":
        return [(f"ses:{operation}", "email")]
    if service == "s3":  # a presigned URL's signing emits the operation's events as a call does
        assert params["Key"].startswith("exports/")
        return [(f"s3:{operation}", "exports")]
    raise AssertionError(f"unexpected AWS call {service}:{operation}")


def granted_by_data(function: str) -> Set[Tuple[str, str]]:
    return {(a, resource) for resource, actions in permissions.FUNCTION_ACCESS[function].items() for a in actions}


@pytest.fixture
def deployed_secrets(monkeypatch, moto_server):
    """Secrets read from Secrets Manager, as in a deployed stage, instead of the local stage's variables."""
    from chalicelib import secrets as secret_store
    from chalicelib.settings import reset_settings

    client = boto3.client("secretsmanager", endpoint_url=moto_server[0])
    run = uuid.uuid4().hex[:8]
    for variable, name in (("TESSERA_JWT_SECRET", "jwt"), ("TESSERA_OPERATOR_SECRET", "operator"),
                           ("TESSERA_PLATFORM_KEYS", "anthropic-keys")):
        secret_id = f"tessera/{run}/{name}"
        client.create_secret(Name=secret_id, SecretString=os.environ[variable])
        monkeypatch.delenv(variable, raising=False)
        monkeypatch.setenv(f"{variable}_ID" if variable != "TESSERA_PLATFORM_KEYS" else
                           "TESSERA_PLATFORM_KEYS_SECRET_ID", secret_id)
    reset_settings()
    secret_store._cache.clear()
    yield
    secret_store._cache.clear()
    monkeypatch.undo()
    reset_settings()


@pytest.fixture
def recorder():
    from chalicelib.aws import client
    from chalicelib.models import table_connection

    calls = CallRecorder().attach(table_connection().connection.client, client("kms"), client("secretsmanager"),
                                  client("sns"), client("ses"), client("s3"))
    yield calls
    calls.detach()


SCHEDULED_EVENT = {"version": "0", "id": "least-privilege", "detail-type": "Scheduled Event", "source": "aws.events",
                   "account": "123456789012", "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
                   "resources": ["arn:aws:events:us-east-1:123456789012:rule/budget-check"], "detail": {}}


class Context:
    aws_request_id = "least-privilege"
    function_name = "least-privilege"
    memory_limit_in_mb = 1769

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def http_event(method: str, path: str, body: Any = None, authorizer: Dict[str, Any] = None,
               resource: str = None, path_parameters: Dict[str, str] = None) -> Dict[str, Any]:
    context = {"resourcePath": resource or path, "httpMethod": method, "path": f"/api{path}",
               "requestId": str(uuid.uuid4()), "stage": "api", "identity": {"sourceIp": "127.0.0.1"}}
    if authorizer is not None:
        context["authorizer"] = authorizer
    headers = {"content-type": "application/json", "host": "api.example.test"}
    return {"resource": resource or path, "path": path, "httpMethod": method, "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()}, "queryStringParameters": None,
            "multiValueQueryStringParameters": None, "pathParameters": path_parameters, "stageVariables": None,
            "requestContext": context, "body": json.dumps(body) if body is not None else None,
            "isBase64Encoded": False}


def authorize(app_module: Any, token: str) -> Dict[str, Any]:
    result = app_module.tenant_auth({"type": "TOKEN", "authorizationToken": f"Bearer {token}",
                                     "methodArn": "arn:aws:execute-api:us-east-1:123456789012:x/api/GET/me"},
                                    Context())
    assert result["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    return {**result["context"], "principalId": result["principalId"]}


def call(app_module: Any, method: str, path: str, body: Any = None, authorizer: Dict[str, Any] = None,
         resource: str = None, path_parameters: Dict[str, str] = None, status: int = 200) -> Any:
    response = app_module.app(http_event(method, path, body, authorizer, resource, path_parameters), Context())
    assert response["statusCode"] == status, response
    return json.loads(response["body"]) if response.get("body") else None


@pytest.fixture
def signed_up(deployed_secrets):
    """A tenant signed up, its owner logged in, on the pro plan's limits (no recording yet)."""
    import app as app_module

    slug = f"lp-{uuid.uuid4().hex[:8]}"
    email, password = f"owner@{slug}.example.com", "correct-horse-battery"
    created = call(app_module, "POST", "/tenants", {"company_name": "LP", "slug": slug, "email": email,
                                                    "password": password}, status=201)
    token = call(app_module, "POST", "/auth/login", {"tenant": slug, "email": email, "password": password})
    return app_module, created, slug, email, password, token["access_token"]


def test_the_tenant_authorizer_calls_exactly_what_its_entry_lists(signed_up, recorder):
    app_module, created, slug, email, password, token = signed_up
    from chalicelib.secrets import _cache

    _cache.clear()
    authorize(app_module, token)
    assert recorder.needed == granted_by_data("tenant_auth")


def test_the_operator_authorizer_calls_exactly_what_its_entry_lists(deployed_secrets, recorder):
    import app as app_module
    from chalicelib.identity.tokens import issue_operator_token

    token = issue_operator_token("least-privilege")
    recorder.needed.clear()
    from chalicelib.secrets import _cache

    _cache.clear()
    result = app_module.operator_auth({"type": "TOKEN", "authorizationToken": f"Bearer {token}",
                                       "methodArn": "arn:aws:execute-api:us-east-1:123456789012:x/api/GET/admin"},
                                      Context())
    assert result["principalId"] == "least-privilege"
    assert recorder.needed == granted_by_data("operator_auth")


@contextlib.contextmanager
def forgotten_breaker(model: str) -> Iterator[None]:
    """A test that makes a model fail on purpose leaves its breaker as it found it: closed, counting nothing."""
    from chalicelib.ai.breaker import BreakerStore
    from chalicelib.ai.gateway import default_gateway

    try:
        yield
    finally:
        default_gateway().failover.breakers.forget(model)
        BreakerStore().clear(model)


def test_the_api_handler_calls_exactly_what_its_entry_lists(deployed_secrets, recorder, standin):
    import app as app_module

    slug = f"lp-{uuid.uuid4().hex[:8]}"
    email, password = f"owner@{slug}.example.com", "correct-horse-battery"
    created = call(app_module, "POST", "/tenants", {"company_name": "LP", "slug": slug, "email": email,
                                                    "password": password}, status=201)
    token = call(app_module, "POST", "/auth/login", {"tenant": slug, "email": email, "password": password})
    with recorder.paused():
        owner = authorize(app_module, token["access_token"])
    operator = {"operator_id": "least-privilege", "principalId": "least-privilege"}
    tenant_id = created["tenant_id"]
    call(app_module, "GET", "/admin/tenants", authorizer=operator)
    call(app_module, "GET", "/users", authorizer=owner)
    call(app_module, "PUT", f"/admin/tenants/{tenant_id}/plan", {"plan": "enterprise"}, operator,
         "/admin/tenants/{tenant_id}/plan", {"tenant_id": tenant_id})
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
    call(app_module, "POST", "/ai/chat", chat, owner)
    call(app_module, "PUT", "/tenant/ai-config/api-key", {"api_key": "sk-ant-own-key-for-least-privilege"}, owner)
    default_gateway().settings_changed(tenant_id)
    call(app_module, "POST", "/ai/chat", chat, owner)
    prompt = call(app_module, "POST", "/prompts", {"name": "p", "template": "Say {{x}}."}, owner, status=201)
    call(app_module, "DELETE", f"/prompts/{prompt['prompt_id']}", authorizer=owner, resource="/prompts/{prompt_id}",
         path_parameters={"prompt_id": prompt["prompt_id"]}, status=204)
    call(app_module, "POST", "/tenant/export", authorizer=owner, status=201)
    # A pool call Anthropic refuses (529 twice) fails over to Bedrock: a whole call, InvokeModel.
    call(app_module, "DELETE", "/tenant/ai-config/api-key", authorizer=owner)
    marker = f"lp-failover-{uuid.uuid4().hex[:8]}"
    with forgotten_breaker("claude-sonnet-4-6"):
        call(app_module, "POST", "/ai/chat", {**chat, "messages": [
            {"role": "user", "content": f"[[standin:529]] {marker}"}]}, owner)  # the default model
    recorder.hear_bedrock(standin, marker)
    assert recorder.needed == granted_by_data("api_handler")


def test_the_purge_job_calls_exactly_what_its_entry_lists(signed_up, recorder, monkeypatch):
    from chalicelib.settings import reset_settings

    app_module, created, slug, email, password, token = signed_up
    monkeypatch.setenv("TESSERA_DELETION_GRACE_SECONDS", "0")
    reset_settings()
    tenant_id = created["tenant_id"]
    operator = {"operator_id": "least-privilege", "principalId": "least-privilege"}
    try:
        call(app_module, "DELETE", f"/admin/tenants/{tenant_id}", {"confirm": slug}, operator,
             "/admin/tenants/{tenant_id}", {"tenant_id": tenant_id}, status=202)
    finally:
        monkeypatch.delenv("TESSERA_DELETION_GRACE_SECONDS")
        reset_settings()

    class JobContext(Context):
        def get_remaining_time_in_millis(self) -> int:
            return 600_000

    recorder.needed.clear()
    report = app_module.tenant_purge(SCHEDULED_EVENT, JobContext())
    assert report["done"] >= 1
    assert recorder.needed == granted_by_data("tenant_purge")


def test_the_budget_job_calls_exactly_what_its_entry_lists(signed_up, recorder):
    app_module, created, slug, email, password, token = signed_up
    owner = authorize(app_module, token)
    call(app_module, "PATCH", "/tenant", {"monthly_budget_usd": "0.0001", "budget_alert_thresholds": [50],
                                          "budget_hard_limit": False}, owner)
    call(app_module, "POST", "/ai/chat", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}, owner)
    settle_usage()  # the call's spend reaches the month's totals through the usage stream
    recorder.needed.clear()
    recorder.from_all_threads()  # the job reads its segments on threads of its own
    report = app_module.budget_check(SCHEDULED_EVENT, Context())
    assert report["alerts_sent"] >= 1
    assert recorder.needed == granted_by_data("budget_check")


def test_the_batch_sweep_calls_exactly_what_its_entry_lists(signed_up, recorder, monkeypatch):
    """One batch on the platform pool (its key from Secrets Manager), one on the tenant's own key (KMS),
    both ended upstream and settled by the sweep."""
    monkeypatch.setenv("STANDIN_BATCH_SECONDS", "0")
    app_module, created, slug, email, password, token = signed_up
    owner = authorize(app_module, token)
    tenant_id = created["tenant_id"]
    batch = {"requests": [{"custom_id": "a", "params": {"model": "claude-sonnet-4-6", "max_tokens": 16,
                                                        "messages": [{"role": "user", "content": "hi"}]}}]}
    call(app_module, "POST", "/v1/messages/batches", batch, owner)
    call(app_module, "PUT", "/tenant/ai-config/api-key", {"api_key": "sk-ant-own-key-for-least-privilege"}, owner)
    gateway = default_gateway()
    gateway.settings_changed(tenant_id)
    call(app_module, "POST", "/v1/messages/batches", batch, owner)
    from chalicelib.secrets import _cache

    _cache.clear()
    gateway.settings_changed(tenant_id)
    gateway._plain_keys.clear()
    recorder.needed.clear()
    report = app_module.batch_sweep(SCHEDULED_EVENT, Context())
    assert report["settled"] >= 2
    assert recorder.needed == granted_by_data("batch_sweep")


def test_the_streaming_function_calls_exactly_what_its_entry_lists(signed_up, recorder, standin):
    """Its app over HTTP as the Lambda Web Adapter reaches it (dev/stack/web_adapter.py): a whole chat with an
    Idempotency-Key and its replay, a keyed stream the client leaves (its claim released), a call on the
    tenant's own key."""
    import time

    from dev.stack import web_adapter
    from chalicelib.stream_host import server

    app_module, created, slug, email, password, token = signed_up
    with recorder.paused():
        owner = authorize(app_module, token)
    recorder.from_all_threads()  # the function's web server answers on threads of its own
    running = server.make("127.0.0.1", 0)
    threading.Thread(target=running.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{running.server_port}"

    def invoke(path, body, key):
        event = http_event("POST", path, body, owner)
        event["headers"]["idempotency-key"] = key
        event["multiValueHeaders"]["idempotency-key"] = [key]
        return web_adapter.invoke(url, event)

    try:
        chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
        for _ in range(2):  # the second is answered from the stored response
            assert json.loads(b"".join(invoke("/ai/chat", chat, "lp-whole")))["content"]
        streamed = invoke("/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 64, "stream": True,
                                           "messages": [{"role": "user", "content": "[[standin:event_delay=0.05]] "
                                                                                    "lp-leaves words words"}]},
                          "lp-stream")
        assert b"message_start" in next(iter(streamed))
        streamed.close()  # the function drains upstream, settles, then releases the claim: wait for it
        deadline = time.monotonic() + 15
        while ("dynamodb:DeleteItem", "table") not in recorder.needed and time.monotonic() < deadline:
            time.sleep(0.05)
        with recorder.paused():
            call(app_module, "PUT", "/tenant/ai-config/api-key", {"api_key": "sk-ant-own-key-for-least-privilege"},
                 owner)
            default_gateway().settings_changed(created["tenant_id"])
        assert json.loads(b"".join(invoke("/ai/chat", chat, "lp-own-key")))["content"]
        with recorder.paused():
            call(app_module, "DELETE", "/tenant/ai-config/api-key", authorizer=owner)
            default_gateway().settings_changed(created["tenant_id"])
        # A pool call Anthropic refuses fails over to Bedrock: streamed upstream even for a whole answer.
        marker = f"lp-failover-{uuid.uuid4().hex[:8]}"
        with forgotten_breaker("claude-sonnet-4-6"):
            failing = {**chat, "messages": [{"role": "user", "content": f"[[standin:529]] {marker}"}]}
            assert json.loads(b"".join(invoke("/ai/chat", failing, "lp-failover")))["content"]
        recorder.hear_bedrock(standin, marker)
    finally:
        running.shutdown()
        running.server_close()
    assert recorder.needed == granted_by_data("stream_handler")
