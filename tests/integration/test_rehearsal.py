"""The deployment rehearsal: the packaged template expanded offline, cfn-lint clean, created on moto's
CloudFormation to CREATE_COMPLETE, and the functions checked from the stack (dev/deploy/rehearsal.py).

moto runs in-process here (its own accounts and regions), so the rehearsal's resources never
meet the shared test server's. moto's gaps are worked around in dev/deploy/rehearsal.py, each by name.
"""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Dict

import boto3
import pytest

from dev.deploy import rehearsal
from dev.deploy import snapstart
from dev.deploy import template as merge
from dev.deploy.package import RUNTIME

ROOT = Path(__file__).resolve().parents[2]
STACK = "tessera-prod"
BUCKET, KEY = "tessera-artifacts", "tessera/prod/deployment.zip"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def deployed(package_dir, template, expanded):
    """The stack, created once for the module: (stack, physical ids, boto3 session, what the rehearsal changed)."""
    from moto import mock_aws

    saved = {k: os.environ.get(k) for k in (*CREDENTIALS, "AWS_ENDPOINT_URL")}
    os.environ.update(CREDENTIALS)
    os.environ.pop("AWS_ENDPOINT_URL", None)  # in-process moto, not the shared server
    try:
        with mock_aws():
            session = boto3.session.Session(region_name="us-east-1")
            s3 = session.client("s3")
            s3.create_bucket(Bucket=BUCKET)
            s3.upload_file(str(package_dir / "deployment.zip"), BUCKET, KEY)
            createable, held, changes = rehearsal.apply_gaps(expanded)
            cloudformation = session.client("cloudformation")
            stack = rehearsal.create_stack(cloudformation, STACK, createable)
            ids = rehearsal.physical_ids(cloudformation, STACK)
            yield stack, ids, session, held, changes
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def test_the_expanded_template_passes_cfn_lint(expanded, tmp_path):
    path = tmp_path / "expanded.json"
    path.write_text(json.dumps(expanded))
    result = subprocess.run([str(Path(sys.executable).with_name("cfn-lint")), str(path)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_stack_is_created(deployed):
    stack = deployed[0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")


def test_the_rehearsal_changes_only_what_it_names(deployed, expanded):
    _, ids, _, held, changes = deployed
    assert {r["Type"] for r in held.values()} <= set(rehearsal.UNSUPPORTED_TYPES)
    kinds = ("held back ", "RestAPI: Name from Body.info.title", "RestAPI: DependsOn without the held-back",
             "output WebAclArn dropped")
    aliases = [c for c in changes if c.endswith("(alias references)")
               or re.match(r"^\w+Invoke\w*: DependsOn without the held-back resources$", c)]
    assert changes and all(change.startswith(kinds) for change in set(changes) - set(aliases)), changes
    # Only what invokes an alias of a SnapStart function is re-pointed: the API (URIs) and its permissions.
    assert {c.split(":")[0] for c in aliases} == {"RestAPI", "APIHandlerInvokePermission", "TenantAuthInvokePermission",
                                                  "OperatorAuthInvokePermission", "TenantRequestAuthInvokePermission",
                                                  "StreamHandlerInvokeV1Messages", "StreamHandlerInvokeAiChat"}
    created = set(expanded["Resources"]) - set(held)
    assert created == set(ids), created ^ set(ids)


def stack_functions(deployed, expanded) -> Dict[str, Dict[str, Any]]:
    _, ids, session, _, _ = deployed
    client = session.client("lambda")
    found = {}
    for logical_id, resource in expanded["Resources"].items():
        if resource["Type"] == "AWS::Lambda::Function":
            found[merge.function_name_of(resource)] = client.get_function(FunctionName=ids[logical_id])
    return found


def test_the_functions_run_the_packaged_handlers_with_their_memory_and_timeouts(deployed, expanded):
    functions = stack_functions(deployed, expanded)
    shape = {name: (f["Configuration"]["Handler"], f["Configuration"]["MemorySize"], f["Configuration"]["Timeout"],
                    f["Configuration"]["Runtime"]) for name, f in functions.items()}
    assert shape == {
        "api_handler": ("app.app", 384, 28, RUNTIME),
        "tenant_auth": ("app.tenant_auth", 512, 10, RUNTIME),
        "operator_auth": ("app.operator_auth", 512, 10, RUNTIME),
        "budget_check": ("app.budget_check", 1769, 900, RUNTIME),
        "tenant_request_auth": ("app.tenant_request_auth", 512, 10, RUNTIME),
        "usage_aggregator": ("app.usage_aggregator", 1769, 120, RUNTIME),
        "reservation_sweeper": ("app.reservation_sweeper", 1769, 300, RUNTIME),
        "batch_sweep": ("app.batch_sweep", 512, 300, RUNTIME),
        "tenant_purge": ("app.tenant_purge", 1769, 900, RUNTIME),
        "stream_handler": ("chalicelib/stream_host/run.sh", 384, 900, RUNTIME),
    }


def test_every_handler_exists_in_the_zip_the_stack_points_at(deployed, expanded, tmp_path):
    """moto runs Lambda code only in Docker: the handler is resolved from the code the stack deployed instead."""
    _, _, session, _, _ = deployed
    for name, function in stack_functions(deployed, expanded).items():
        code = session.client("s3").get_object(Bucket=BUCKET, Key=KEY)["Body"].read()
        archive = tmp_path / f"{name}.zip"
        archive.write_bytes(code)
        handler = function["Configuration"]["Handler"]
        if name == "stream_handler":  # a start-up script the Lambda Web Adapter runs: present and executable
            with zipfile.ZipFile(archive) as unzipped:
                script = unzipped.getinfo(handler)
                assert unzipped.read(handler).startswith(b"#!/bin/sh") and (script.external_attr >> 16) & 0o111
                assert "chalicelib/stream_host/__main__.py" in unzipped.namelist()
            continue
        module, _, attribute = handler.partition(".")
        with zipfile.ZipFile(archive) as unzipped:
            source = unzipped.read(f"{module}.py").decode()
            # app.py defines the app and imports the authorizers it re-exports: follow such an import into the zip
            imported = [node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)
                        and any(alias.name == attribute and alias.asname is None for alias in node.names)]
            if imported:
                source = unzipped.read(imported[0].replace(".", "/") + ".py").decode()
        assert f"def {attribute}(" in source or f"{attribute} = Chalice(" in source, name


def test_the_functions_carry_the_stage_environment_wired_to_the_stack(deployed, expanded, stage_env):
    _, ids, _, _, _ = deployed
    for name, function in stack_functions(deployed, expanded).items():
        variables = function["Configuration"]["Environment"]["Variables"]
        assert variables["TESSERA_STAGE"] == "prod" and variables["LOG_LEVEL"] == stage_env["LOG_LEVEL"], name
        assert variables["TESSERA_TABLE_NAME"] == ids["TesseraTable"] == stage_env["TESSERA_TABLE_NAME"], name
        assert variables["TESSERA_ALERT_TOPIC_ARN"] == ids["TesseraAlertTopic"], name
        assert variables["TESSERA_KMS_KEY_ID"] == ids["TesseraKeyAlias"] == stage_env["TESSERA_KMS_KEY_ID"], name
        assert variables["TESSERA_JWT_SECRET_ID"] == stage_env["TESSERA_JWT_SECRET_ID"], name
        assert variables["TESSERA_EXPORT_BUCKET"] == ids["TesseraExports"], name


def test_the_export_bucket_is_private_encrypted_and_expires_exports(deployed, expanded):
    """The stack made the bucket; moto's CloudFormation applies none of these three properties, so they are
    read from the template CloudFormation runs."""
    _, ids, session, _, _ = deployed
    session.client("s3").head_bucket(Bucket=ids["TesseraExports"])
    properties = expanded["Resources"]["TesseraExports"]["Properties"]
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
    [rule] = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    [expiry] = properties["LifecycleConfiguration"]["Rules"]
    assert expiry["Status"] == "Enabled" and expiry["ExpirationInDays"] == 7 and expiry["Prefix"] == "exports/"


def test_each_function_has_its_own_role_from_the_stack(deployed, expanded):
    roles = [f["Configuration"]["Role"] for f in stack_functions(deployed, expanded).values()]
    assert len(set(roles)) == len(roles) == 10


def test_the_concurrency_caps_hold_on_the_stack(deployed, expanded):
    _, ids, session, _, _ = deployed
    client = session.client("lambda")
    caps = {name: client.get_function_concurrency(FunctionName=f["Configuration"]["FunctionName"]).get(
        "ReservedConcurrentExecutions") for name, f in stack_functions(deployed, expanded).items()}
    assert caps == {"api_handler": 100, "budget_check": 1, "reservation_sweeper": 1, "batch_sweep": 1,
                    "tenant_purge": 1, "tenant_auth": None, "tenant_request_auth": None, "operator_auth": None,
                    "usage_aggregator": None, "stream_handler": 100}


def test_the_budget_job_runs_hourly_and_the_sweeper_every_ten_minutes(deployed, expanded):
    _, ids, session, _, _ = deployed
    events = session.client("events")
    schedules = {}
    for rule_id in [k for k, r in expanded["Resources"].items() if r["Type"] == "AWS::Events::Rule"]:
        targets = events.list_targets_by_rule(Rule=ids[rule_id])["Targets"]
        [target] = [t["Arn"].rsplit(":", 1)[1] for t in targets]
        schedules[target] = events.describe_rule(Name=ids[rule_id])["ScheduleExpression"]
    assert schedules == {ids["BudgetCheck"]: "rate(1 hour)", ids["ReservationSweeper"]: "rate(10 minutes)",
                         ids["BatchSweep"]: "rate(10 minutes)", ids["TenantPurge"]: "rate(15 minutes)"}


def test_the_budget_jobs_failure_destination_is_accepted_by_lambda(deployed, expanded):
    """Replayed through Lambda's API: moto's CloudFormation has no EventInvokeConfig."""
    _, ids, session, held, _ = deployed
    [config] = [r["Properties"] for r in held.values() if r["Type"] == "AWS::Lambda::EventInvokeConfig"
                and r["Properties"]["FunctionName"] == {"Ref": "BudgetCheck"}]
    queue = session.client("sqs").get_queue_attributes(QueueUrl=ids["TesseraJobFailures"],
                                                       AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert config["FunctionName"] == {"Ref": "BudgetCheck"}
    client = session.client("lambda")
    client.put_function_event_invoke_config(
        FunctionName=ids["BudgetCheck"], MaximumRetryAttempts=config["MaximumRetryAttempts"],
        DestinationConfig={"OnFailure": {"Destination": queue}})
    stored = client.get_function_event_invoke_config(FunctionName=ids["BudgetCheck"])
    assert stored["MaximumRetryAttempts"] == 2 and stored["DestinationConfig"]["OnFailure"]["Destination"] == queue


def test_the_log_groups_keep_thirty_days(deployed):
    _, ids, session, _, _ = deployed
    groups = {g["logGroupName"]: g.get("retentionInDays")
              for g in session.client("logs").describe_log_groups()["logGroups"]}
    for logical_id in [k for k in ids if k.endswith("LogGroup")] + ["ApiAccessLogs"]:
        assert groups[ids[logical_id]] == 30, logical_id


def test_the_table_and_topic_are_the_stages(deployed):
    _, ids, session, _, _ = deployed
    table = session.client("dynamodb").describe_table(TableName=ids["TesseraTable"])["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    attributes = session.client("sns").get_topic_attributes(TopicArn=ids["TesseraAlertTopic"])["Attributes"]
    assert attributes["KmsMasterKeyId"] == "alias/aws/sns"


SNAPSTART = {"APIHandler", "StreamHandler", "TenantAuth", "OperatorAuth", "TenantRequestAuth"}


def test_the_request_paths_functions_run_snapstart_on_published_versions(expanded):
    snapped = {k for k, r in expanded["Resources"].items() if r["Type"] == "AWS::Lambda::Function"
               and r["Properties"].get("SnapStart") == {"ApplyOn": "PublishedVersions"}}
    assert snapped == SNAPSTART
    aliases = {r["Properties"]["FunctionName"]["Ref"]: (k, r["Properties"]) for k, r in expanded["Resources"].items()
               if r["Type"] == "AWS::Lambda::Alias"}
    assert set(aliases) == SNAPSTART
    for function_id, (alias_id, alias) in aliases.items():
        version_id = alias["FunctionVersion"]["Fn::GetAtt"][0]
        assert alias["Name"] == snapstart.ALIAS and alias_id == snapstart.alias_id(function_id)
        assert expanded["Resources"][version_id]["Properties"]["FunctionName"] == {"Ref": function_id}


def test_api_gateway_invokes_only_the_aliases_of_the_snapstart_functions(expanded):
    """$LATEST never starts from a snapshot: every integration, authorizer and permission names the alias."""
    assert snapstart.unaliased_references(expanded, SNAPSTART) == {}
    api = json.dumps([r for r in expanded["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"])
    for function_id in SNAPSTART - {"StreamHandler"}:
        assert f"functions/${{{snapstart.alias_id(function_id)}}}/invocations" in api, function_id
    assert f"functions/${{{snapstart.alias_id('StreamHandler')}}}/response-streaming-invocations" in api
    permissions = {k: r for k, r in expanded["Resources"].items() if r["Type"] == "AWS::Lambda::Permission"
                   and r["Properties"]["Principal"] == "apigateway.amazonaws.com"}
    # the streaming function has a permission per route (chalice's functions one each), through its alias too
    streaming = {k for k in permissions if k.startswith("StreamHandlerInvoke")}
    assert streaming == {"StreamHandlerInvokeV1Messages", "StreamHandlerInvokeAiChat"}
    for name in streaming:
        assert permissions[name]["Properties"]["FunctionName"] == \
            f"{expanded['Resources']['StreamHandler']['Properties']['FunctionName']}:{snapstart.ALIAS}", name
        assert snapstart.alias_id("StreamHandler") in permissions[name]["DependsOn"], name
    permissions = {k: r for k, r in permissions.items() if k not in streaming}
    assert len(permissions) == len(SNAPSTART) - 1
    for name, permission in permissions.items():
        function_id = name[:-len("InvokePermission")]
        deployed_name = expanded["Resources"][function_id]["Properties"]["FunctionName"]
        assert permission["Properties"]["FunctionName"] == f"{deployed_name}:{snapstart.ALIAS}", name
        assert snapstart.alias_id(function_id) in permission["DependsOn"], name


def test_each_alias_is_accepted_by_lambda_on_the_version_the_stack_published(deployed):
    """Replayed through Lambda's API: moto's CloudFormation has no AWS::Lambda::Alias."""
    _, ids, session, held, _ = deployed
    client = session.client("lambda")
    replayed = 0
    for alias in [r["Properties"] for r in held.values() if r["Type"] == "AWS::Lambda::Alias"]:
        name = ids[alias["FunctionName"]["Ref"]]
        versions = [v["Version"] for v in client.list_versions_by_function(FunctionName=name)["Versions"]
                    if v["Version"] != "$LATEST"]
        assert versions, name
        client.create_alias(FunctionName=name, Name=alias["Name"], FunctionVersion=versions[-1])
        assert client.get_alias(FunctionName=name, Name=snapstart.ALIAS)["FunctionVersion"] == versions[-1]
        replayed += 1
    assert replayed == len(SNAPSTART)


def test_the_streaming_routes_stream_from_the_streaming_function_for_fifteen_minutes(deployed, expanded):
    """The REST API moto created holds the STREAM integrations (its body is checked in the expanded template,
    which is what CloudFormation receives), and Lambda accepted the adapter's layer and environment."""
    body = next(r for r in expanded["Resources"].values()
                if r["Type"] == "AWS::ApiGateway::RestApi")["Properties"]["Body"]
    for path in ("/v1/messages", "/ai/chat"):
        integration = body["paths"][path]["post"]["x-amazon-apigateway-integration"]
        assert integration["responseTransferMode"] == "STREAM" and integration["timeoutInMillis"] == 900000
        assert f"/2021-11-15/functions/${{{snapstart.alias_id('StreamHandler')}}}/response-streaming-invocations" \
            in integration["uri"]["Fn::Sub"]
        assert body["paths"][path]["post"]["security"] == [{"tenant_request_auth": []}]
    other = body["paths"]["/ai/code-review"]["post"]["x-amazon-apigateway-integration"]
    # every other route is the API handler's, through its SnapStart alias
    assert "responseTransferMode" not in other
    assert f"/2015-03-31/functions/${{{snapstart.alias_id('APIHandler')}}}/invocations" in other["uri"]["Fn::Sub"]
    configuration = stack_functions(deployed, expanded)["stream_handler"]["Configuration"]
    variables = configuration["Environment"]["Variables"]
    assert variables["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert variables["AWS_LWA_INVOKE_MODE"] == "response_stream" and variables["AWS_LWA_READINESS_CHECK_PATH"] == "/health"
    # moto's Lambda keeps no layers it does not host: the layer is read from the template, its version the
    # parameter's default (the adapter's README, dev/deploy/stream_template.py)
    function = next(r for r in expanded["Resources"].values() if r["Type"] == "AWS::Lambda::Function"
                    and r["Properties"]["Handler"] == "chalicelib/stream_host/run.sh")
    [layer] = function["Properties"]["Layers"]
    arn = layer["Fn::Sub"].replace("${AWS::Partition}", "aws").replace("${AWS::Region}", "us-east-1").replace(
        "${WebAdapterLayerVersion}", str(expanded["Parameters"]["WebAdapterLayerVersion"]["Default"]))
    assert arn == "arn:aws:lambda:us-east-1:753240598075:layer:LambdaAdapterLayerX86:27"


def test_api_gateway_may_invoke_the_streaming_function_on_its_two_routes_only(expanded):
    name = f"{expanded['Resources']['StreamHandler']['Properties']['FunctionName']}:{snapstart.ALIAS}"
    permissions = [r["Properties"] for r in expanded["Resources"].values() if r["Type"] == "AWS::Lambda::Permission"
                   and r["Properties"]["FunctionName"] == name]
    assert sorted(p["SourceArn"]["Fn::Sub"][0].rsplit("}", 1)[1] for p in permissions) == [
        "/*/POST/ai/chat", "/*/POST/v1/messages"]
