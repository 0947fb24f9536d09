"""The deployable package (tests/integration/conftest.py builds it once): the zip, the lock, the template."""
from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Dict, List

import pytest

from dev.deploy import gateway_responses
from dev.deploy import package as packaging
from dev.deploy import template as merge

ROOT = Path(__file__).resolve().parents[2]
STAGE = "prod"
FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
MAX_ZIP_BYTES = 20 * 1000 * 1000
CACHE_TAG = "cpython-%d%d" % packaging.PYTHON_VERSION  # the runtime's bytecode, whatever runs the tests
# cfn-lint rules switched off, each with its reason. Keep this empty unless a rule is wrong for this template.
IGNORED_CFN_LINT_RULES: Dict[str, str] = {}


def resources_of(template: Dict[str, Any], *types: str) -> Dict[str, Dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] in types}


def functions(template: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    return resources_of(template, *FUNCTION_TYPES)


def function_named(template: Dict[str, Any], name: str) -> Dict[str, Any]:
    [function] = [f for f in functions(template).values() if merge.function_name_of(f) == name]
    return function["Properties"]


def the_table(template: Dict[str, Any]) -> Dict[str, Any]:
    tables = resources_of(template, "AWS::DynamoDB::Table")
    assert list(tables) == ["TesseraTable"]
    return tables["TesseraTable"]["Properties"]


def zip_names(package_dir: Path) -> List[str]:
    with zipfile.ZipFile(package_dir / "deployment.zip") as archive:
        return archive.namelist()


def lock_pins() -> Dict[str, str]:
    pins = {}
    for line in packaging.LOCK_FILE.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^ \\]+)", line)
        if match:
            pins[canonical(match.group(1))] = match.group(2)
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --- the zip ---------------------------------------------------------------------------------------------

def test_zip_carries_the_code_and_its_dependencies_but_not_the_runtimes_sdk(package_dir):
    top = {name.split("/", 1)[0] for name in zip_names(package_dir)}
    assert {"app.py", "chalicelib", "pynamodb", "anthropic", "jwt", "argon2", "aws_lambda_powertools"} <= top
    assert not {"botocore", "boto3", "s3transfer", "urllib3", "dateutil", "jmespath"} & top


def test_zip_carries_every_file_the_console_serves(package_dir):
    from chalicelib.console import ASSETS

    assert {f"chalicelib/console/{name}" for name in ASSETS} <= set(zip_names(package_dir))


def test_zip_stays_under_twenty_megabytes(package_dir):
    assert (package_dir / "deployment.zip").stat().st_size <= MAX_ZIP_BYTES


def test_every_module_in_the_zip_has_its_bytecode_beside_it(package_dir):
    names = set(zip_names(package_dir))
    sources = [n for n in names if n.endswith(".py")]
    missing = []
    for source in sources:
        folder, _, module = source.rpartition("/")
        pyc = f"{folder}/__pycache__/{module[:-3]}.{CACHE_TAG}.pyc".lstrip("/")
        if pyc not in names:
            missing.append(source)
    assert sources and not missing, missing[:10]


def test_the_zips_bytecode_is_never_revalidated(package_dir):
    """Unchecked-hash .pyc (PEP 552: flags 0b01): a read-only /var/task uses it without touching the source."""
    with zipfile.ZipFile(package_dir / "deployment.zip") as archive:
        header = archive.read(f"chalicelib/__pycache__/web.{CACHE_TAG}.pyc")[:8]
    assert int.from_bytes(header[4:8], "little") == 0b01


def test_the_zip_holds_exactly_the_locked_distributions(package_dir):
    shipped = {}
    for name in zip_names(package_dir):
        match = re.match(r"^([^/]+)-([^-/]+)\.dist-info/METADATA$", name)
        if match:
            shipped[canonical(match.group(1))] = match.group(2)
    assert shipped == lock_pins()


# --- the lock --------------------------------------------------------------------------------------------

def test_every_pin_of_requirements_txt_is_in_the_lock_at_the_same_version():
    pins = lock_pins()
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            assert pins.get(canonical(name.split("[")[0])) == version.strip(), line  # extras name no package


def test_every_locked_package_carries_hashes():
    entries = re.split(r"\n(?=[A-Za-z0-9])", packaging.LOCK_FILE.read_text())
    locked = [e for e in entries if re.match(r"^[A-Za-z0-9_.-]+==", e)]
    assert locked and all("--hash=sha256:" in entry for entry in locked)


def test_the_lock_leaves_out_what_the_lambda_runtime_ships():
    assert not {canonical(n) for n in packaging.RUNTIME_PROVIDED} & set(lock_pins())


def test_the_tests_run_the_locked_versions():
    installed = {name: importlib.metadata.version(name) for name in lock_pins()}
    assert installed == lock_pins()


# --- the template ------------------------------------------------------------------------------------------

def test_template_passes_cfn_lint(template_path):
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    args = [str(cfn_lint), str(template_path)]
    if IGNORED_CFN_LINT_RULES:
        args += ["--ignore-checks", *IGNORED_CFN_LINT_RULES]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    # Exit code is a bit mask: 2 errors, 4 warnings, 8 informational. Warnings fail too.
    assert result.returncode == 0, result.stdout + result.stderr


def test_table_is_the_stages_with_on_demand_billing_ttl_and_recovery(template, stage_env):
    table = the_table(template)
    assert table["TableName"] == stage_env["TESSERA_TABLE_NAME"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_table_and_key_survive_stack_deletion(template):
    for name in ("TesseraTable", "TesseraKey"):
        resource = template["Resources"][name]
        assert resource["DeletionPolicy"] == "Retain" and resource["UpdateReplacePolicy"] == "Retain", name


def test_kms_key_rotates_and_its_alias_is_the_configured_key_id(template, stage_env):
    key = template["Resources"]["TesseraKey"]
    assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True
    alias = resources_of(template, "AWS::KMS::Alias")
    assert [a["Properties"] for a in alias.values()] == [
        {"AliasName": stage_env["TESSERA_KMS_KEY_ID"], "TargetKeyId": {"Ref": "TesseraKey"}}]


def test_kms_key_policy_grants_only_the_account(template):
    for statement in template["Resources"]["TesseraKey"]["Properties"]["KeyPolicy"]["Statement"]:
        assert statement["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}


def test_budget_alert_topic_is_named_for_the_stage_and_encrypted(template):
    topics = resources_of(template, "AWS::SNS::Topic")
    assert [t["Properties"] for t in topics.values()] == [
        {"TopicName": f"tessera-{STAGE}-budget-alerts", "KmsMasterKeyId": "alias/aws/sns"}]


def test_every_function_runs_python_3_11_with_its_handler(template):
    handlers = {f["Properties"]["Handler"] for f in functions(template).values()}
    assert {"app.tenant_auth", "app.operator_auth", "app.app", "app.budget_check"} <= handlers
    assert {f["Properties"]["Runtime"] for f in functions(template).values()} == {packaging.RUNTIME}


@pytest.mark.parametrize("variable, value", [
    ("TESSERA_TABLE_NAME", {"Ref": "TesseraTable"}),
    ("TESSERA_ALERT_TOPIC_ARN", {"Ref": "TesseraAlertTopic"}),
    ("TESSERA_KMS_KEY_ID", {"Ref": "TesseraKeyAlias"}),
    ("POWERTOOLS_SERVICE_NAME", "tessera"),
])
def test_every_function_is_wired_to_the_created_resources(template, variable, value):
    wired = {name: f["Properties"]["Environment"]["Variables"].get(variable) for name, f in functions(template).items()}
    assert wired and all(v == value for v in wired.values()), wired


def test_every_function_keeps_the_stage_settings(template, stage_env):
    for name, function in functions(template).items():
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables["TESSERA_STAGE"] == STAGE, name
        assert variables["TESSERA_JWT_SECRET_ID"] == stage_env["TESSERA_JWT_SECRET_ID"], name


def test_request_path_functions_get_their_measured_memory_and_the_job_its_own_timeout(template):
    # SnapStart does init before any request: memory is sized by the first request after a restore and by
    # what waiting on the model costs (docs/cost.md, `make bench` section 7). The jobs keep one vCPU.
    sizes = {"api_handler": 384, "tenant_auth": 512, "operator_auth": 512, "tenant_request_auth": 512,
             "budget_check": 1769, "usage_aggregator": 1769, "reservation_sweeper": 1769,
             "batch_sweep": 512}
    for name, size in sizes.items():
        assert function_named(template, name)["MemorySize"] == size, name
    assert function_named(template, "api_handler")["Timeout"] == 28
    assert function_named(template, "tenant_auth")["Timeout"] == 10
    assert function_named(template, "budget_check")["Timeout"] == 900


def test_every_function_has_its_own_log_group_with_the_retention_parameter(template):
    for logical_id, function in functions(template).items():
        name = function["Properties"]["FunctionName"]
        group = template["Resources"][f"{logical_id}LogGroup"]
        assert group["Properties"] == {"LogGroupName": f"/aws/lambda/{name}",
                                       "RetentionInDays": {"Ref": "LogRetentionDays"}}
        assert f"{logical_id}LogGroup" in function["DependsOn"]
    assert template["Parameters"]["LogRetentionDays"]["Default"] == 30


def test_every_function_is_traced(template):
    assert {f["Properties"]["Tracing"] for f in functions(template).values()} == {"Active"}
    assert template["Resources"]["RestAPI"]["Properties"]["TracingEnabled"] is True


def test_the_api_handlers_concurrency_is_capped_by_a_parameter(template):
    capped = function_named(template, "api_handler")["ReservedConcurrentExecutions"]
    assert capped == {"Fn::If": ["ApiConcurrencyCapped", {"Ref": "ApiReservedConcurrency"}, {"Ref": "AWS::NoValue"}]}
    assert template["Parameters"]["ApiReservedConcurrency"]["Default"] == 100


def test_the_budget_job_runs_alone_and_sends_failures_to_an_encrypted_queue(template):
    job = function_named(template, "budget_check")
    assert job["ReservedConcurrentExecutions"] == 1
    failures = {"Type": "SQS", "Destination": {"Fn::GetAtt": ["TesseraJobFailures", "Arn"]}}
    assert job["EventInvokeConfig"] == {"MaximumRetryAttempts": 2, "DestinationConfig": {"OnFailure": failures}}
    assert template["Resources"]["TesseraJobFailures"]["Properties"]["SqsManagedSseEnabled"] is True


def test_every_schedule_of_the_app_runs_in_the_template(template):
    from chalice.app import ScheduledEventConfig

    from app import app

    by_handler = {f["Properties"]["Handler"]: f for f in functions(template).values()}
    schedules = [s for s in app.event_sources if isinstance(s, ScheduledEventConfig)]
    assert schedules
    for source in schedules:
        expression = source.schedule_expression
        expression = expression if isinstance(expression, str) else expression.to_string()
        events = by_handler[source.handler_string]["Properties"]["Events"].values()
        assert expression in [e["Properties"]["Schedule"] for e in events if e["Type"] == "Schedule"], source.name


def test_packaging_leaves_out_the_roles_chalice_deploy_makes_for_the_dev_stage():
    """The packaged template has its own role per function; chalice package would otherwise look for the dev
    stage's policy files, which only `make deploy-dev` writes."""
    config = json.loads((packaging.ROOT / ".chalice" / "config.json").read_text())
    assert config["stages"]["dev"]["manage_iam_role"] is True
    packaged = packaging.packaging_config(config)
    dev = packaged["stages"]["dev"]
    assert not {"manage_iam_role", "autogen_policy"} & set(dev)
    assert all("iam_policy_file" not in f for f in dev["lambda_functions"].values())
    assert dev["environment_variables"] == config["stages"]["dev"]["environment_variables"]
    assert packaged["stages"]["prod"] == config["stages"]["prod"] and not packaged["manage_iam_role"]


def test_the_usage_aggregator_reads_the_stream_of_the_table_the_template_creates(template):
    """app.py's placeholder names the stage's table, so dev/deploy/template.py re-points it at the table's StreamArn;
    the placeholder itself would name a stream that does not exist."""
    by_handler = {f["Properties"]["Handler"]: f for f in functions(template).values()}
    events = by_handler["app.usage_aggregator"]["Properties"]["Events"].values()
    streams = [e["Properties"]["Stream"] for e in events if e["Type"] == "DynamoDB"]
    assert streams == [{"Fn::GetAtt": ["TesseraTable", "StreamArn"]}]


# --- the API's protection ---------------------------------------------------------------------------------

def api_properties(template: Dict[str, Any]) -> Dict[str, Any]:
    return template["Resources"]["RestAPI"]["Properties"]


def test_stage_throttles_everything_and_the_public_routes_far_tighter(template):
    settings = {(s["ResourcePath"], s["HttpMethod"]): (s["ThrottlingRateLimit"], s["ThrottlingBurstLimit"])
                for s in api_properties(template)["MethodSettings"]}
    default = settings[("/*", "*")]
    for route in (("/~1tenants", "POST"), ("/~1auth~1login", "POST")):
        assert settings[route][0] < default[0] / 5 and settings[route][1] < default[1] / 5, route


def test_a_waf_rate_rule_per_ip_is_attached_to_the_stage_by_default_in_prod(template):
    assert template["Parameters"]["EnableWaf"]["Default"] == "true"
    acl = template["Resources"]["TesseraWebAcl"]
    rules = acl["Properties"]["Rules"]
    assert acl["Condition"] == "WafEnabled" and rules
    assert all(r["Statement"]["RateBasedStatement"]["AggregateKeyType"] == "IP" and r["Action"] == {"Block": {}}
               for r in rules)
    association = template["Resources"]["TesseraWebAclAssociation"]["Properties"]
    assert association["ResourceArn"]["Fn::Sub"].endswith("/restapis/${RestAPI}/stages/${RestAPI.Stage}")


def test_waf_is_a_parameter_off_by_default_outside_prod():
    assert merge.parameters("dev")["EnableWaf"]["Default"] == "false"


def test_access_logs_are_json_with_request_and_tenant_ids(template):
    setting = api_properties(template)["AccessLogSetting"]
    fields = json.loads(setting["Format"])
    assert fields["request_id"] == "$context.requestId" and fields["tenant_id"] == "$context.authorizer.tenant_id"
    assert setting["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogs", "Arn"]}


def gateway_response(template: Dict[str, Any], response_type: str) -> Dict[str, Any]:
    return api_properties(template)["DefinitionBody"]["x-amazon-apigateway-gateway-responses"][response_type]


def render(response: Dict[str, Any], message: str) -> Dict[str, Any]:
    body = response["responseTemplates"]["application/json"]
    return json.loads(body.replace("$context.error.messageString", json.dumps(message)))


def test_an_unknown_path_answers_404_not_found_and_echoes_nothing(template):
    response = gateway_response(template, "MISSING_AUTHENTICATION_TOKEN")
    assert response["statusCode"] == "404"
    assert "$context" not in response["responseTemplates"]["application/json"]
    assert render(response, "Authorization=Bearer tsk_secret")["error"]["code"] == "not_found"


ANTHROPIC_ERROR_TYPES = {"MISSING_AUTHENTICATION_TOKEN": "not_found_error", "UNAUTHORIZED": "authentication_error",
                         "ACCESS_DENIED": "permission_error", "THROTTLED": "rate_limit_error",
                         "WAF_FILTERED": "permission_error", "DEFAULT_4XX": "invalid_request_error",
                         "DEFAULT_5XX": "api_error"}


@pytest.mark.parametrize("response_type", sorted(gateway_responses.GATEWAY_RESPONSES))
def test_every_gateway_response_reads_as_both_error_shapes_and_carries_the_request_id(template, response_type):
    response = gateway_response(template, response_type)
    body = render(response, "Unauthorized")
    # the envelope (error.code) and, since a gateway response cannot vary by path, Anthropic's shape for
    # /v1/* clients (type, error.type), whose SDKs also read the request id from `request-id`
    assert body["type"] == "error" and set(body["error"]) == {"code", "message", "type"} and body["error"]["code"]
    assert body["error"]["type"] == ANTHROPIC_ERROR_TYPES[response_type]
    assert response["responseParameters"] == {"gatewayresponse.header.X-Request-Id": "context.requestId",
                                              "gatewayresponse.header.request-id": "context.requestId"}


# --- packaging refuses what it cannot place ------------------------------------------------------------------

def test_packaging_refuses_a_function_without_an_access_entry():
    every_ten_minutes = {"E": {"Type": "Schedule", "Properties": {"Schedule": "rate(10 minutes)"}}}
    plain = {"Resources": {"Sweeper": {"Type": "AWS::Serverless::Function",
                                       "Properties": {"Handler": "app.sweeper", "Events": every_ten_minutes}}}}
    env = {"TESSERA_TABLE_NAME": "t", "TESSERA_KMS_KEY_ID": "alias/k", "TESSERA_EMAIL_SENDER": "a@b.c"}
    with pytest.raises(KeyError, match="sweeper"):
        merge.merge_template("prod", env, plain, {"Type": "AWS::DynamoDB::Table", "Properties": {}})


def test_budget_job_may_use_lambdas_whole_15_minutes(template):
    [job] = [f for f in functions(template).values() if f["Properties"]["Handler"] == "app.budget_check"]
    assert job["Properties"]["Timeout"] == 900


def test_unauthorized_reads_as_the_envelope_and_as_anthropics_error_shape(template):
    body = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    response = body["x-amazon-apigateway-gateway-responses"]["UNAUTHORIZED"]
    rendered = json.loads(response["responseTemplates"]["application/json"].replace(
        "$context.error.messageString", json.dumps("Unauthorized")))
    assert response["statusCode"] == "401"
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
    assert "${TenantRequestAuthAliaslive}" in authorizer["authorizerUri"]["Fn::Sub"]  # SnapStart's alias
    function = template["Resources"]["TenantRequestAuth"]["Properties"]
    assert function["Handler"] == "app.tenant_request_auth" and function["MemorySize"] == 512


def test_api_gateway_may_invoke_the_request_authorizer(template):
    permission = template["Resources"]["TenantRequestAuthInvokePermission"]["Properties"]
    assert permission["FunctionName"] == "tessera-prod-tenant_request_auth:live"  # its SnapStart alias
    assert permission["Principal"] == "apigateway.amazonaws.com"
    assert permission["SourceArn"]["Fn::Sub"][1] == {"RestAPIId": {"Ref": "RestAPI"}}

