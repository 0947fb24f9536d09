"""The deployment rehearsal: the packaged template expanded offline, cfn-lint clean, created on moto's
CloudFormation to CREATE_COMPLETE, and the functions checked from the stack (dev/rehearsal.py).

moto runs in-process here (its own accounts and regions), so the rehearsal's resources never
meet the shared test server's. moto's gaps are worked around in dev/rehearsal.py, each by name.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Dict

import boto3
import pytest

import rehearsal
import template as merge

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
    assert changes and all(change.startswith(kinds) for change in changes), changes
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
        "api_handler": ("app.app", 1769, 28, "python3.11"),
        "tenant_auth": ("app.tenant_auth", 1769, 10, "python3.11"),
        "operator_auth": ("app.operator_auth", 1769, 10, "python3.11"),
        "budget_check": ("app.budget_check", 1769, 900, "python3.11"),
        "tenant_request_auth": ("app.tenant_request_auth", 1769, 10, "python3.11"),
        "usage_aggregator": ("app.usage_aggregator", 1769, 120, "python3.11"),
        "reservation_sweeper": ("app.reservation_sweeper", 1769, 300, "python3.11"),
        "tenant_purge": ("app.tenant_purge", 1769, 900, "python3.11"),
    }


def test_every_handler_exists_in_the_zip_the_stack_points_at(deployed, expanded, tmp_path):
    """moto runs Lambda code only in Docker: the handler is resolved from the code the stack deployed instead."""
    _, _, session, _, _ = deployed
    for name, function in stack_functions(deployed, expanded).items():
        code = session.client("s3").get_object(Bucket=BUCKET, Key=KEY)["Body"].read()
        archive = tmp_path / f"{name}.zip"
        archive.write_bytes(code)
        module, _, attribute = function["Configuration"]["Handler"].partition(".")
        with zipfile.ZipFile(archive) as unzipped:
            source = unzipped.read(f"{module}.py").decode()
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
    assert len(set(roles)) == len(roles) == 8


def test_the_concurrency_caps_hold_on_the_stack(deployed, expanded):
    _, ids, session, _, _ = deployed
    client = session.client("lambda")
    caps = {name: client.get_function_concurrency(FunctionName=f["Configuration"]["FunctionName"]).get(
        "ReservedConcurrentExecutions") for name, f in stack_functions(deployed, expanded).items()}
    assert caps == {"api_handler": 100, "budget_check": 1, "reservation_sweeper": 1, "tenant_purge": 1,
                    "tenant_auth": None,
                    "tenant_request_auth": None, "operator_auth": None, "usage_aggregator": None}


def test_the_budget_job_runs_hourly_and_the_sweeper_every_ten_minutes(deployed, expanded):
    _, ids, session, _, _ = deployed
    events = session.client("events")
    schedules = {}
    for rule_id in [k for k, r in expanded["Resources"].items() if r["Type"] == "AWS::Events::Rule"]:
        targets = events.list_targets_by_rule(Rule=ids[rule_id])["Targets"]
        [target] = [t["Arn"].rsplit(":", 1)[1] for t in targets]
        schedules[target] = events.describe_rule(Name=ids[rule_id])["ScheduleExpression"]
    assert schedules == {ids["BudgetCheck"]: "rate(1 hour)", ids["ReservationSweeper"]: "rate(10 minutes)",
                         ids["TenantPurge"]: "rate(15 minutes)"}


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
