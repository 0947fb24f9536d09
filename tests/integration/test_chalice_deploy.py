"""The dev stage's route: `make deploy-dev` (dev/deploy/dev_stage.py) against moto in server mode.

The resources stack is created on moto's CloudFormation, then the real `chalice deploy --stage dev` CLI
runs with AWS_ENDPOINT_URL pointing at that moto, and everything is checked on moto afterwards. moto's
gaps (dev/stack/moto_gaps.py) are named there; dev/stack/moto_server.py --deploy-gaps installs the workarounds. The functions' code
is never run (moto needs Docker for that), so the rehearsal leaves vendor/ empty: the lock's install is
dev/deploy/package.py's, which `make package` and tests/integration/test_package.py exercise.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from dev.deploy import dev_stage 
from dev.deploy import permissions
from dev.stack import local_stack as stack 

ROOT = Path(__file__).resolve().parents[2]
STAGE = "dev"
# chalice's own names: the API handler is tessera-dev, every other function tessera-dev-<name>.
FUNCTIONS = {"api_handler", "tenant_auth", "operator_auth", "tenant_request_auth", "usage_aggregator",
             "reservation_sweeper", "budget_check", "batch_sweep", "tenant_purge"}


@pytest.fixture(scope="module")
def moto_endpoint():
    port = stack.free_port()
    process = stack.start_moto(port, deploy_gaps=True)
    yield f"http://127.0.0.1:{port}"
    stack.terminate(process)


@pytest.fixture(scope="module")
def aws_env(moto_endpoint):
    """A shell whose only AWS is this module's moto (never the test session's, nor a real account)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, **stack.aws_environment(int(moto_endpoint.rsplit(":", 1)[1]))}


@pytest.fixture(scope="module")
def session():
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                 region_name=stack.REGION)


@pytest.fixture(scope="module")
def deployed(moto_endpoint, aws_env, tmp_path_factory):
    """`python -m dev.deploy.dev_stage deploy` as `make deploy-dev` runs it: (what it printed, seconds, project)."""
    project = tmp_path_factory.mktemp("dev-deploy")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "dev.deploy.dev_stage", "deploy", "--project", str(project),
                             "--without-dependencies"], cwd=str(ROOT), env=aws_env, capture_output=True, text=True,
                            timeout=300)
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"dev stage deployed on moto in {seconds:.1f} s")
    return result.stdout, seconds, project


def client(session, moto_endpoint, service):
    return session.client(service, endpoint_url=moto_endpoint)


def outputs(session, moto_endpoint):
    stack_description = client(session, moto_endpoint, "cloudformation").describe_stacks(
        StackName=dev_stage.stack_name(STAGE))["Stacks"][0]
    assert stack_description["StackStatus"] == "CREATE_COMPLETE", stack_description
    return {o["OutputKey"]: o["OutputValue"] for o in stack_description["Outputs"]}


def test_the_resources_stack_holds_the_stages_table_key_topic_queue_secrets_and_log_groups(
        deployed, session, moto_endpoint):
    out = outputs(session, moto_endpoint)
    env = dev_stage.packaging.stage_environment(STAGE)
    table = client(session, moto_endpoint, "dynamodb").describe_table(TableName=env["TESSERA_TABLE_NAME"])["Table"]
    assert table["StreamSpecification"]["StreamEnabled"] and table["LatestStreamArn"] == out["TableStreamArn"]
    key = client(session, moto_endpoint, "kms").describe_key(KeyId=env["TESSERA_KMS_KEY_ID"])["KeyMetadata"]
    assert key["Arn"] == out["KeyArn"]
    assert out["AlertTopicArn"].endswith(":tessera-dev-budget-alerts")
    assert out["JobFailureQueueArn"].endswith(":tessera-dev-job-failures")
    manager = client(session, moto_endpoint, "secretsmanager")
    for variable in ("TESSERA_JWT_SECRET_ID", "TESSERA_OPERATOR_SECRET_ID"):
        assert len(manager.get_secret_value(SecretId=env[variable])["SecretString"]) == 64
    groups = {g["logGroupName"]: g.get("retentionInDays") for g in
              client(session, moto_endpoint, "logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/tessera-dev")[
                  "logGroups"]}
    assert groups == {f"/aws/lambda/{dev_stage.merge.deployed_name(STAGE, f)}": 30 for f in FUNCTIONS}


def test_chalice_deploy_creates_every_function_with_its_own_role_and_settings(deployed, session, moto_endpoint):
    lambda_client = client(session, moto_endpoint, "lambda")
    functions = {f["FunctionName"]: f for f in lambda_client.list_functions()["Functions"]}
    assert set(functions) == {dev_stage.merge.deployed_name(STAGE, f) for f in FUNCTIONS}
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    for name in FUNCTIONS:
        function = functions[dev_stage.merge.deployed_name(STAGE, name)]
        assert function["Role"].endswith(f":role/tessera-dev-{name}"), function["Role"]
        settings = {**config["lambda_functions"].get(name, {})}
        assert function["MemorySize"] == settings.get("lambda_memory_size", config["lambda_memory_size"])
        assert function["Timeout"] == settings.get("lambda_timeout", config["lambda_timeout"])
        variables = function["Environment"]["Variables"]
        assert variables["TESSERA_STAGE"] == STAGE and variables["TESSERA_TABLE_NAME"] == "tessera-dev"
        assert variables["TESSERA_ALERT_TOPIC_ARN"] == outputs(session, moto_endpoint)["AlertTopicArn"]


def test_each_role_carries_the_policy_file_made_from_dev_permissions(deployed, session, moto_endpoint):
    _, _, project = deployed
    out = outputs(session, moto_endpoint)
    iam = client(session, moto_endpoint, "iam")
    expected = dev_stage.policy_documents(STAGE, dev_stage.packaging.stage_environment(STAGE),
                                          {name: {} for name in FUNCTIONS}, out)
    for name in FUNCTIONS:
        role = f"tessera-dev-{name}"
        (policy_name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
        document = iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
        written = json.loads((project / ".chalice" / dev_stage.policy_file(STAGE, name)).read_text())
        assert document == written
        # Without the events (stream, failure queue) the documents are the same statements as the file's.
        assert [s for s in written["Statement"] if s in expected[name]["Statement"]] == expected[name]["Statement"]
        assert len(expected[name]["Statement"]) == 2 + len(permissions.FUNCTION_ACCESS[name])  # logs, X-Ray, code
    budget = json.loads((project / ".chalice" / dev_stage.policy_file(STAGE, "budget_check")).read_text())
    assert {"Sid": "Alerts", "Effect": "Allow", "Action": ["sns:Publish"], "Resource": out["AlertTopicArn"]} \
        in budget["Statement"]
    aggregator = json.loads((project / ".chalice" / dev_stage.policy_file(STAGE, "usage_aggregator")).read_text())
    assert any(s["Resource"] == out["TableStreamArn"] and "dynamodb:GetRecords" in s["Action"]
               for s in aggregator["Statement"])


def test_the_api_routes_to_the_handler_behind_both_authorizers(deployed, session, moto_endpoint):
    gateway = client(session, moto_endpoint, "apigateway")
    (api,) = gateway.get_rest_apis()["items"]
    assert api["name"] == "tessera"
    authorizers = {a["name"]: a for a in gateway.get_authorizers(restApiId=api["id"])["items"]}
    assert set(authorizers) == {"tenant_auth", "operator_auth"}
    for name, authorizer in authorizers.items():
        assert authorizer["type"] == "TOKEN"
        assert f":function:tessera-dev-{name}/invocations" in authorizer["authorizerUri"]
    resources = {r["path"]: r for r in gateway.get_resources(restApiId=api["id"], embed=["methods"])["items"]}
    me = resources["/me"]["resourceMethods"]["GET"]
    assert (me["authorizationType"], me["authorizerId"]) == ("CUSTOM", authorizers["tenant_auth"]["id"])
    assert me["methodIntegration"]["uri"].endswith(":function:tessera-dev/invocations")
    plan = resources["/admin/tenants/{tenant_id}/plan"]["resourceMethods"]["PUT"]
    assert plan["authorizerId"] == authorizers["operator_auth"]["id"]
    assert "authorizerId" not in resources["/tenants"]["resourceMethods"]["POST"]
    assert [s["stageName"] for s in gateway.get_stages(restApiId=api["id"])["item"]] == ["api"]


def test_the_schedules_invoke_the_sweeper_and_the_budget_job(deployed, session, moto_endpoint):
    events = client(session, moto_endpoint, "events")
    rules = {r["Name"]: r["ScheduleExpression"] for r in events.list_rules(NamePrefix="tessera-dev-")["Rules"]}
    assert rules == {"tessera-dev-reservation_sweeper-event": "rate(10 minutes)",
                     "tessera-dev-batch_sweep-event": "rate(10 minutes)",
                     "tessera-dev-budget_check-event": "rate(1 hour)",
                     "tessera-dev-tenant_purge-event": "rate(15 minutes)"}
    for rule in rules:
        (target,) = events.list_targets_by_rule(Rule=rule)["Targets"]
        assert target["Arn"].endswith(":function:" + rule[:-len("-event")])


def test_the_usage_aggregator_reads_the_stacks_table_stream(deployed, session, moto_endpoint):
    (mapping,) = client(session, moto_endpoint, "lambda").list_event_source_mappings()["EventSourceMappings"]
    assert mapping["FunctionArn"].endswith(":function:tessera-dev-usage_aggregator")
    assert mapping["EventSourceArn"] == outputs(session, moto_endpoint)["TableStreamArn"]
    assert (mapping["BatchSize"], mapping["StartingPosition"]) == (1000, "TRIM_HORIZON")
