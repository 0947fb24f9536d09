"""The deployable package: `dev/package.py` (what `make package` runs) offline, then its template checked.

The package is built once per session into a temporary directory, with no AWS
credentials and every AWS endpoint pointed at a closed port, so a step that
tried to reach AWS would fail here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

ROOT = Path(__file__).resolve().parents[2]
STAGE = "prod"
FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
# cfn-lint rules switched off, each with its reason. Keep this empty unless a rule is wrong for this template.
IGNORED_CFN_LINT_RULES: Dict[str, str] = {}


@pytest.fixture(scope="session")
def package_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("package") / "package"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_CONFIG_FILE": os.devnull})
    result = subprocess.run([sys.executable, str(ROOT / "dev" / "package.py"), "--stage", STAGE, "--out", str(out)],
                            cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"dev/package.py failed:\n{result.stdout}\n{result.stderr}"
    print(result.stdout)
    return out


@pytest.fixture(scope="session")
def template_path(package_dir) -> Path:
    for name in ("sam.json", "sam.yaml"):
        if (package_dir / name).exists():
            return package_dir / name
    raise AssertionError(f"no template in {package_dir}")


@pytest.fixture(scope="session")
def template(template_path) -> Dict[str, Any]:
    if template_path.suffix == ".json":
        return json.loads(template_path.read_text())
    from cfnlint.decode import cfn_yaml

    return cfn_yaml.load(str(template_path))


def resources_of(template: Dict[str, Any], *types: str) -> Dict[str, Dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] in types}


def functions(template: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    return resources_of(template, *FUNCTION_TYPES)


def the_table(template: Dict[str, Any]) -> Dict[str, Any]:
    tables = resources_of(template, "AWS::DynamoDB::Table")
    assert list(tables) == ["TesseraTable"]
    return tables["TesseraTable"]["Properties"]


def stage_env() -> Dict[str, str]:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return {**config["environment_variables"], **config["stages"][STAGE]["environment_variables"]}


# --- the package --------------------------------------------------------------

def test_package_holds_the_deployment_zip(package_dir):
    assert (package_dir / "deployment.zip").stat().st_size > 0


def zip_top_level(package_dir):
    import zipfile

    with zipfile.ZipFile(package_dir / "deployment.zip") as archive:
        return {name.split("/", 1)[0] for name in archive.namelist()}


def test_zip_carries_the_code_and_pynamodb_but_not_botocore(package_dir):
    top = zip_top_level(package_dir)
    assert {"app.py", "chalicelib", "pynamodb", "anthropic", "jwt", "argon2"} <= top
    assert not {"botocore", "boto3", "s3transfer"} & top


def test_zip_stays_under_eight_megabytes(package_dir):
    assert (package_dir / "deployment.zip").stat().st_size <= 8 * 1000 * 1000


def test_template_passes_cfn_lint(template_path):
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    args = [str(cfn_lint), str(template_path)]
    if IGNORED_CFN_LINT_RULES:
        args += ["--ignore-checks", *IGNORED_CFN_LINT_RULES]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    # Exit code is a bit mask: 2 errors, 4 warnings, 8 informational. Warnings fail too.
    assert result.returncode == 0, result.stdout + result.stderr


# --- the table ----------------------------------------------------------------

def test_table_is_named_for_the_stage(template):
    assert the_table(template)["TableName"] == stage_env()["TESSERA_TABLE_NAME"]


def test_table_bills_per_request(template):
    assert the_table(template)["BillingMode"] == "PAY_PER_REQUEST"


def test_table_expires_items_by_expires_at(template):
    assert the_table(template)["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_table_has_point_in_time_recovery(template):
    assert the_table(template)["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_table_survives_stack_deletion(template):
    table = template["Resources"]["TesseraTable"]
    assert table["DeletionPolicy"] == "Retain" and table["UpdateReplacePolicy"] == "Retain"


# --- the other resources ------------------------------------------------------

def test_kms_key_rotates_and_its_alias_is_the_configured_key_id(template):
    key = template["Resources"]["TesseraKey"]
    assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True
    alias = resources_of(template, "AWS::KMS::Alias")
    assert [a["Properties"] for a in alias.values()] == [
        {"AliasName": stage_env()["TESSERA_KMS_KEY_ID"], "TargetKeyId": {"Ref": "TesseraKey"}}]


def test_kms_key_policy_grants_only_the_account(template):
    for statement in template["Resources"]["TesseraKey"]["Properties"]["KeyPolicy"]["Statement"]:
        assert statement["Principal"] != "*" and statement["Principal"].get("AWS") != "*"
        assert statement["Principal"]["AWS"] == {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}


def test_budget_alert_topic_is_named_for_the_stage(template):
    topics = resources_of(template, "AWS::SNS::Topic")
    assert [t["Properties"]["TopicName"] for t in topics.values()] == [f"tessera-{STAGE}-budget-alerts"]


# --- the functions ------------------------------------------------------------

def test_authorizers_are_functions(template):
    handlers = {f["Properties"]["Handler"] for f in functions(template).values()}
    assert {"app.tenant_auth", "app.operator_auth", "app.app"} <= handlers


def test_rest_api_exists_and_uses_both_authorizers(template):
    apis = resources_of(template, "AWS::Serverless::Api")
    assert list(apis) == ["RestAPI"]
    schemes = apis["RestAPI"]["Properties"]["DefinitionBody"]["securityDefinitions"]
    assert {"tenant_auth", "operator_auth"} <= set(schemes)


@pytest.mark.parametrize("variable, value", [
    ("TESSERA_TABLE_NAME", {"Ref": "TesseraTable"}),
    ("TESSERA_ALERT_TOPIC_ARN", {"Ref": "TesseraAlertTopic"}),
    ("TESSERA_KMS_KEY_ID", {"Ref": "TesseraKeyAlias"}),
])
def test_every_function_is_wired_to_the_created_resource(template, variable, value):
    wired = {name: f["Properties"]["Environment"]["Variables"].get(variable) for name, f in functions(template).items()}
    assert wired and all(v == value for v in wired.values()), wired


def test_every_function_keeps_the_stage_settings(template):
    for name, function in functions(template).items():
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables["TESSERA_STAGE"] == STAGE, name
        assert variables["TESSERA_JWT_SECRET_ID"] == stage_env()["TESSERA_JWT_SECRET_ID"], name


def test_every_function_waits_for_its_access_policy(template):
    for name, function in functions(template).items():
        assert "TesseraAccessPolicy" in function.get("DependsOn", []), name


# --- IAM ------------------------------------------------------------------------

def access_policy(template: Dict[str, Any]) -> Dict[str, Any]:
    return template["Resources"]["TesseraAccessPolicy"]["Properties"]


def statement(template: Dict[str, Any], sid: str) -> Dict[str, Any]:
    return next(s for s in access_policy(template)["PolicyDocument"]["Statement"] if s["Sid"] == sid)


def test_access_policy_is_attached_to_every_function_role(template):
    roles = {f["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions(template).values()}
    assert template["Resources"]["TesseraAccessPolicy"]["Type"] == "AWS::IAM::Policy"
    assert {r["Ref"] for r in access_policy(template)["Roles"]} == roles


def test_access_policy_grants_the_table_and_its_indexes_only(template):
    table = statement(template, "Table")
    assert table["Resource"] == [{"Fn::GetAtt": ["TesseraTable", "Arn"]}, {"Fn::Sub": "${TesseraTable.Arn}/index/*"}]
    assert set(table["Action"]) == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                                    "dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:BatchGetItem",
                                    "dynamodb:ConditionCheckItem"}


def test_access_policy_grants_the_key_the_topic_and_the_stage_secrets(template):
    assert statement(template, "TenantKeyEncryption")["Resource"] == {"Fn::GetAtt": ["TesseraKey", "Arn"]}
    assert statement(template, "BudgetAlerts")["Resource"] == {"Ref": "TesseraAlertTopic"}
    assert statement(template, "Secrets")["Resource"]["Fn::Sub"].endswith(f":secret:tessera/{STAGE}/*")


def iam_statements(template: Dict[str, Any]) -> Iterator[tuple]:
    """Every identity-policy statement: role inline policies, IAM policies, SAM function policies.

    The KMS key policy is a resource policy, where Resource "*" means the key itself; it is checked by
    test_kms_key_policy_grants_only_the_account instead."""
    for name, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        documents: List[Any] = []
        if resource["Type"] == "AWS::IAM::Role":
            documents += [p["PolicyDocument"] for p in properties.get("Policies", [])]
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents.append(properties["PolicyDocument"])
        if resource["Type"] == "AWS::Serverless::Function":
            documents += [p for p in properties.get("Policies", []) if isinstance(p, dict) and "Statement" in p]
        for document in documents:
            for item in document["Statement"]:
                yield name, item


def as_list(value: Any) -> List[Any]:
    return value if isinstance(value, list) else [value]


def test_the_template_has_iam_statements_to_check(template):
    assert len(list(iam_statements(template))) >= len(functions(template))


def test_no_iam_statement_allows_every_action(template):
    for name, item in iam_statements(template):
        actions = as_list(item.get("Action", []))
        assert "*" not in actions and "NotAction" not in item, (name, item)
        assert not any(isinstance(a, str) and a.endswith(":*") for a in actions), (name, item)


def test_no_iam_statement_allows_every_resource_beyond_logs_and_email(template):
    for name, item in iam_statements(template):
        if "*" in as_list(item.get("Resource", [])):
            others = [a for a in as_list(item["Action"]) if not a.startswith("logs:") and a != "ses:SendEmail"]
            assert not others, (name, item)


# --- schedules --------------------------------------------------------------------

def schedule_expression(source: Any) -> str:
    expression = source.schedule_expression
    return expression if isinstance(expression, str) else expression.to_string()


def missing_schedules(chalice_app: Any, template: Dict[str, Any]) -> List[str]:
    """Each `@app.schedule` of the app that the template does not run on its schedule."""
    from chalice.app import ScheduledEventConfig

    by_handler = {f["Properties"]["Handler"]: name for name, f in functions(template).items()}
    rules = resources_of(template, "AWS::Events::Rule", "AWS::Scheduler::Schedule")
    missing = []
    for source in chalice_app.event_sources:
        if not isinstance(source, ScheduledEventConfig):
            continue
        expression = schedule_expression(source)
        function = by_handler.get(source.handler_string)
        if function is None or not (
                expression in sam_schedules(template["Resources"][function])
                or any(expression == rule_schedule(rule, function) for rule in rules.values())):
            missing.append(f"{source.name}: {expression}")
    return missing


def sam_schedules(function: Dict[str, Any]) -> List[str]:
    """Schedule expressions of a SAM function's Schedule / ScheduleV2 events."""
    found = []
    for event in function["Properties"].get("Events", {}).values():
        if event["Type"] == "Schedule":
            found.append(event["Properties"]["Schedule"])
        elif event["Type"] == "ScheduleV2":
            found.append(event["Properties"]["ScheduleExpression"])
    return found


def rule_schedule(rule: Dict[str, Any], function: str) -> Any:
    """An events rule's or scheduler schedule's expression, if it targets `function`."""
    properties = rule["Properties"]
    targets = properties.get("Targets") or [properties.get("Target", {})]
    if {"Fn::GetAtt": [function, "Arn"]} in [t.get("Arn") for t in targets]:
        return properties.get("ScheduleExpression")
    return None


def test_every_schedule_of_the_app_runs_in_the_template(template):
    from app import app

    assert missing_schedules(app, template) == []


def probe_app_and_its_template():
    """A small app with two schedules and chalice's own SAM template for it (no packaging needed)."""
    from chalice import Chalice, Cron, Rate
    from chalice.config import Config
    from chalice.deploy.deployer import ApplicationGraphBuilder, DependencyBuilder
    from chalice.package import PackageOptions, SAMTemplateGenerator

    probe = Chalice(app_name="probe")

    @probe.schedule(Rate(5, unit=Rate.MINUTES))
    def every_five_minutes(event):
        return None

    @probe.schedule(Cron(0, 3, "*", "*", "?", "*"))
    def nightly(event):
        return None

    config = Config.create(chalice_stage="dev", app_name="probe", chalice_app=probe, project_dir=str(ROOT),
                           manage_iam_role=False, iam_role_arn="arn:aws:iam::123456789012:role/probe")
    resources = DependencyBuilder().build_dependencies(ApplicationGraphBuilder().build(config, "dev"))
    return probe, SAMTemplateGenerator(config, PackageOptions(None)).generate(resources)


def test_schedule_check_accepts_chalice_schedules():
    probe, probe_template = probe_app_and_its_template()
    assert len(probe.event_sources) == 2
    assert missing_schedules(probe, probe_template) == []


def test_schedule_check_reports_a_schedule_the_template_lacks():
    probe, probe_template = probe_app_and_its_template()
    for function in functions(probe_template).values():
        if function["Properties"]["Handler"] == "app.nightly":
            function["Properties"].pop("Events")
    assert missing_schedules(probe, probe_template) == ["nightly: cron(0 3 * * ? *)"]


# --- the API's own errors ------------------------------------------------------

@pytest.mark.parametrize("response_type", ["ACCESS_DENIED", "DEFAULT_4XX", "DEFAULT_5XX"])
def test_gateway_errors_use_the_error_envelope(template, response_type):
    body = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    response = body["x-amazon-apigateway-gateway-responses"][response_type]
    rendered = response["responseTemplates"]["application/json"].replace(
        "$context.error.messageString", json.dumps("Unauthorized"))
    error = json.loads(rendered)["error"]
    assert set(error) == {"code", "message"} and error["message"] == "Unauthorized" and error["code"]


def test_budget_job_may_use_lambdas_whole_15_minutes(template):
    [job] = [f for f in functions(template).values() if f["Properties"]["Handler"] == "app.budget_check"]
    assert job["Properties"]["Timeout"] == 900


def test_unauthorized_reads_as_the_envelope_and_as_anthropics_error_shape(template):
    body = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    response = body["x-amazon-apigateway-gateway-responses"]["UNAUTHORIZED"]
    rendered = json.loads(response["responseTemplates"]["application/json"].replace(
        "$context.error.messageString", json.dumps("Unauthorized")))
    assert response["statusCode"] == 401
    assert rendered == {"type": "error", "error": {"type": "authentication_error", "code": "unauthorized",
                                                   "message": "Unauthorized"}}


# --- x-api-key: tenant routes use a REQUEST authorizer ---------------------------------------------

def test_every_tenant_route_uses_the_request_authorizer_and_operator_routes_keep_theirs(template):
    from app import app

    body = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    for path, methods in app.routes.items():
        for method, entry in methods.items():
            security = body["paths"][path][method.lower()].get("security")
            expected = {"tenant_auth": [{"tenant_request_auth": []}], "operator_auth": [{"operator_auth": []}]}
            assert security == (expected[entry.authorizer.name] if entry.authorizer else None), (method, path)


def test_the_request_authorizer_reads_no_fixed_header_and_is_not_cached_by_the_gateway(template):
    definition = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["securityDefinitions"]
    authorizer = definition["tenant_request_auth"]["x-amazon-apigateway-authorizer"]
    assert authorizer["type"] == "request" and "identitySource" not in authorizer
    assert authorizer["authorizerResultTtlInSeconds"] == 0
    assert "${TenantRequestAuth.Arn}" in authorizer["authorizerUri"]["Fn::Sub"]
    function = template["Resources"]["TenantRequestAuth"]["Properties"]
    assert function["Handler"] == "app.tenant_request_auth" and function["MemorySize"] == 256


def test_api_gateway_may_invoke_the_request_authorizer(template):
    permission = template["Resources"]["TenantRequestAuthInvokePermission"]["Properties"]
    assert permission["FunctionName"] == {"Fn::GetAtt": ["TenantRequestAuth", "Arn"]}
    assert permission["Principal"] == "apigateway.amazonaws.com"
    assert permission["SourceArn"]["Fn::Sub"][1] == {"RestAPIId": {"Ref": "RestAPI"}}

