"""Build the deployable package: chalice's template plus what chalice does not create.

`make package` runs `python dev/package.py --stage prod --out build/package`.
Chalice's own template (functions, roles, the REST API) comes from a plain
`chalice package`; from it this script learns the function, role and API
logical ids and generates a merge template (build/merge-template-<stage>.json)
holding the table, the KMS key, the alert topic, the functions' access policy,
their environment and the API's error envelope. A second `chalice package
--merge-template` writes the result. Nothing here talks to AWS: no
credentials are needed.

Lambda's Python runtime already ships boto3 and botocore, and pynamodb's only
heavy dependency is botocore (21 MB, two thirds of the zip). So the package is
built from a staged copy of the project in which pynamodb is vendored without
its dependencies (`pip install --no-deps`, the version pinned in
requirements.txt) instead of resolved from requirements.txt; everything else
comes from requirements.txt as chalice resolves it.

Two rules of `--merge-template` shape what is generated: dicts merge, lists
replace. So the access policy is its own `AWS::IAM::Policy` (extending a
role's `Policies` list would replace it), while environment variables and
the API definition are dicts and merge.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chalicelib.table import cloudformation_resource  # noqa: E402

DEFAULT_REGION = "us-east-1"
FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
API_TYPE = "AWS::Serverless::Api"

TABLE_ID = "TesseraTable"
KEY_ID = "TesseraKey"
KEY_ALIAS_ID = "TesseraKeyAlias"
TOPIC_ID = "TesseraAlertTopic"
POLICY_ID = "TesseraAccessPolicy"

TABLE_ACTIONS = [
    "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
    "dynamodb:Query", "dynamodb:BatchGetItem", "dynamodb:ConditionCheckItem",
]

# Responses API Gateway sends itself (authorizer denials, throttling, its own
# faults) in the same envelope as the app's errors. DEFAULT_4XX/5XX keep the
# status API Gateway chose; only the body changes.
GATEWAY_RESPONSES = {
    "UNAUTHORIZED": (401, "unauthorized"),
    "ACCESS_DENIED": (403, "forbidden"),
    "DEFAULT_4XX": (None, "request_rejected"),
    "DEFAULT_5XX": (None, "internal_error"),
}


class PackagingError(RuntimeError):
    pass


def stage_environment(stage: str) -> Dict[str, str]:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    stages = config.get("stages", {})
    if stage not in stages:
        raise PackagingError(f"Unknown stage {stage!r}; .chalice/config.json defines: {', '.join(sorted(stages))}.")
    return {**config.get("environment_variables", {}), **stages[stage].get("environment_variables", {})}


RUNTIME_PROVIDED_DEPENDENCIES = ("pynamodb",)
PROJECT_FILES = ("app.py", "chalicelib", ".chalice/config.json")


def stage_project(into: Path) -> Path:
    """A copy of the project to package: pynamodb vendored without botocore, the rest from requirements.txt."""
    import shutil

    for name in PROJECT_FILES:
        source, target = ROOT / name, into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, target)
    for policy in (ROOT / ".chalice").glob("policy-*.json"):
        shutil.copy2(policy, into / ".chalice" / policy.name)
    kept, vendored = [], []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        name = line.split("==")[0].strip().lower()
        (vendored if name in RUNTIME_PROVIDED_DEPENDENCIES else kept).append(line)
    (into / "requirements.txt").write_text("\n".join(kept) + "\n")
    if vendored:
        result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                                 "--no-deps", "--no-compile", "--target", str(into / "vendor"), *vendored],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if result.returncode != 0:
            raise PackagingError(f"Could not vendor {', '.join(vendored)}:\n{result.stdout.strip()}")
        for extra in (into / "vendor").glob("*.dist-info"):
            shutil.rmtree(extra)
    return into


def chalice_package(stage: str, out: Path, merge_template: Optional[Path] = None,
                    project: Path = ROOT) -> None:
    chalice = Path(sys.executable).with_name("chalice")
    if not chalice.exists():
        raise PackagingError(f"chalice is not installed next to {sys.executable}; run `make package`.")
    args = [str(chalice), "--project-dir", str(project), "package", "--stage", stage]
    if merge_template is not None:
        args += ["--merge-template", str(merge_template)]
    args.append(str(out))
    env = dict(os.environ)
    env.setdefault("AWS_DEFAULT_REGION", DEFAULT_REGION)
    result = subprocess.run(args, cwd=str(project), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    if result.returncode != 0:
        raise PackagingError(f"`chalice package` failed with exit code {result.returncode}:\n"
                             f"{result.stdout.strip()}")


def _resources_of(template: Dict[str, Any], types: Iterable[str]) -> Dict[str, Dict[str, Any]]:
    wanted = set(types)
    return {name: r for name, r in template.get("Resources", {}).items() if r.get("Type") in wanted}


def _role_of(function_id: str, function: Dict[str, Any], template: Dict[str, Any]) -> str:
    role = function.get("Properties", {}).get("Role")
    if isinstance(role, dict) and "Fn::GetAtt" in role:
        role_id = role["Fn::GetAtt"][0]
        if template["Resources"].get(role_id, {}).get("Type") == "AWS::IAM::Role":
            return role_id
    raise PackagingError(f"Function {function_id} does not use a role chalice creates (Role={role!r}); "
                         "its access policy cannot be attached.")


def _sub(text: str) -> Dict[str, str]:
    return {"Fn::Sub": text}


def _arn(service: str, resource: str) -> Dict[str, str]:
    return _sub(f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{resource}")


def access_policy(stage: str, env: Dict[str, str], roles: List[str]) -> Dict[str, Any]:
    """Exactly what the code calls, on exactly the resources this template creates."""
    sender = env.get("TESSERA_EMAIL_SENDER", "")
    identities = [sender, sender.rpartition("@")[2]] if "@" in sender else ["*"]
    statements = [
        {"Sid": "Table", "Effect": "Allow", "Action": TABLE_ACTIONS,
         "Resource": [{"Fn::GetAtt": [TABLE_ID, "Arn"]}, _sub(f"${{{TABLE_ID}.Arn}}/index/*")]},
        # Tenant keys are always encrypted under the tenant's id as encryption context (ai/tenant_keys.py).
        {"Sid": "TenantKeyEncryption", "Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt"],
         "Resource": {"Fn::GetAtt": [KEY_ID, "Arn"]},
         "Condition": {"Null": {"kms:EncryptionContext:tenant_id": "false"}}},
        {"Sid": "BudgetAlerts", "Effect": "Allow", "Action": "sns:Publish", "Resource": {"Ref": TOPIC_ID}},
        {"Sid": "Secrets", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": _arn("secretsmanager", f"secret:tessera/{stage}/*")},
        # SES authorizes a send against the verified identity: the sender address or its domain.
        {"Sid": "Email", "Effect": "Allow", "Action": "ses:SendEmail",
         "Resource": [_arn("ses", f"identity/{identity}") for identity in identities]},
    ]
    return {
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "PolicyName": f"tessera-{stage}-access",
            "Roles": [{"Ref": role} for role in roles],
            "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
        },
    }


def kms_key(stage: str) -> Dict[str, Any]:
    # Retained: deleting the key would make every stored tenant API key unreadable.
    return {
        "Type": "AWS::KMS::Key",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "Description": f"Tessera {stage}: encrypts tenants' own Anthropic API keys",
            "EnableKeyRotation": True,
            "KeyPolicy": {
                "Version": "2012-10-17",
                "Statement": [{
                    # The account administers the key; use is granted through IAM (TesseraAccessPolicy).
                    "Sid": "AccountAdministersKey",
                    "Effect": "Allow",
                    "Principal": {"AWS": _sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root")},
                    "Action": "kms:*",
                    "Resource": "*",
                }],
            },
        },
    }


def gateway_responses() -> Dict[str, Any]:
    """In the OpenAPI body, not as AWS::ApiGateway::GatewayResponse resources: SAM redeploys the API
    from its body (PutRestApi, mode overwrite), which drops separately created gateway responses
    (aws/serverless-application-model#390, #623); in the body they are part of every deployment."""
    responses = {}
    for response_type, (status, code) in GATEWAY_RESPONSES.items():
        template = '{"error": {"code": "%s", "message": $context.error.messageString}}' % code
        response: Dict[str, Any] = {"responseTemplates": {"application/json": template}}
        if status is not None:
            response["statusCode"] = status
        responses[response_type] = response
    return responses


# --- Anthropic's x-api-key: a REQUEST authorizer for tenant routes ------------------------------

TOKEN_AUTHORIZER = "tenant_auth"
REQUEST_AUTHORIZER = "tenant_request_auth"
REQUEST_AUTHORIZER_FUNCTION = "TenantRequestAuth"
# One body for both clients: Tessera's envelope ({"error": {"code", "message"}}) and Anthropic's error shape
# ({"type": "error", "error": {"type", "message"}}). Gateway responses are not run through VTL, so the
# body cannot depend on the path.
UNAUTHORIZED_TEMPLATE = ('{"type": "error", "error": {"type": "authentication_error", "code": "unauthorized", '
                         '"message": $context.error.messageString}}')


def x_api_key_authorizer(plain: Dict[str, Any]) -> Dict[str, Any]:
    """Merge-template resources so that `x-api-key: tsk_...` works wherever `Authorization: Bearer tsk_...` does.

    A TOKEN authorizer reads one header, and a REQUEST authorizer with API Gateway's cache on refuses a
    request that lacks any of its identity sources, so neither can accept either header. This:
      1. adds a REQUEST authorizer `tenant_request_auth` (no identity sources, API Gateway cache off)
         that invokes the `TenantRequestAuth` function (app.tenant_request_auth, which reads either
         header and keeps its own 30 s cache of decisions);
      2. moves every operation secured by `tenant_auth` to it (operator routes are unchanged);
      3. lets API Gateway invoke the function, as chalice's own permission does for `tenant_auth`;
      4. makes the UNAUTHORIZED gateway response a body both Tessera's and Anthropic's clients read.
    """
    functions = _resources_of(plain, FUNCTION_TYPES)
    if REQUEST_AUTHORIZER_FUNCTION not in functions:
        raise PackagingError(f"chalice's template has no {REQUEST_AUTHORIZER_FUNCTION} function "
                             f"(app.{REQUEST_AUTHORIZER} in app.py).")
    apis = _resources_of(plain, [API_TYPE])
    resources: Dict[str, Any] = {}
    for name, api in apis.items():
        body = api["Properties"]["DefinitionBody"]
        moved = {path: {method: {"security": [{REQUEST_AUTHORIZER: []}]}
                        for method, operation in item.items()
                        if isinstance(operation, dict) and operation.get("security") == [{TOKEN_AUTHORIZER: []}]}
                 for path, item in body.get("paths", {}).items()}
        uri = _sub("arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
                   f"${{{REQUEST_AUTHORIZER_FUNCTION}.Arn}}/invocations")
        resources[name] = {"Properties": {"DefinitionBody": {
            "securityDefinitions": {REQUEST_AUTHORIZER: {
                "type": "apiKey", "name": "x-api-key", "in": "header", "x-amazon-apigateway-authtype": "custom",
                "x-amazon-apigateway-authorizer": {"type": "request", "authorizerUri": uri,
                                                   "authorizerResultTtlInSeconds": 0}}},
            "paths": {path: methods for path, methods in moved.items() if methods},
            "x-amazon-apigateway-gateway-responses": {
                "UNAUTHORIZED": {"responseTemplates": {"application/json": UNAUTHORIZED_TEMPLATE}}},
        }}}
        resources[f"{REQUEST_AUTHORIZER_FUNCTION}InvokePermission"] = {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "FunctionName": {"Fn::GetAtt": [REQUEST_AUTHORIZER_FUNCTION, "Arn"]},
                "Action": "lambda:InvokeFunction", "Principal": "apigateway.amazonaws.com",
                "SourceArn": {"Fn::Sub": ["arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
                                          "${RestAPIId}/*", {"RestAPIId": {"Ref": name}}]},
            },
        }
    return resources


def _merged(base: Dict[str, Any], extra: Dict[str, Any]) -> Dict[str, Any]:
    """`extra` merged into a copy of `base` as --merge-template merges: dicts merge, anything else replaces."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def merge_template(stage: str, plain: Dict[str, Any]) -> Dict[str, Any]:
    """The template merged into chalice's, derived from chalice's own output for the stage."""
    env = stage_environment(stage)
    for variable in ("TESSERA_TABLE_NAME", "TESSERA_KMS_KEY_ID"):
        if not env.get(variable):
            raise PackagingError(f"Stage {stage!r} sets no {variable} in .chalice/config.json.")
    functions = _resources_of(plain, FUNCTION_TYPES)
    if not functions:
        raise PackagingError("chalice's template holds no Lambda functions.")
    roles = sorted({_role_of(name, function, plain) for name, function in functions.items()})

    resources: Dict[str, Any] = {
        TABLE_ID: cloudformation_resource(env["TESSERA_TABLE_NAME"]),
        KEY_ID: kms_key(stage),
        KEY_ALIAS_ID: {"Type": "AWS::KMS::Alias",
                       "Properties": {"AliasName": env["TESSERA_KMS_KEY_ID"], "TargetKeyId": {"Ref": KEY_ID}}},
        TOPIC_ID: {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": f"tessera-{stage}-budget-alerts"}},
        POLICY_ID: access_policy(stage, env, roles),
    }
    wiring = {"TESSERA_TABLE_NAME": {"Ref": TABLE_ID}, "TESSERA_ALERT_TOPIC_ARN": {"Ref": TOPIC_ID},
              "TESSERA_KMS_KEY_ID": {"Ref": KEY_ALIAS_ID}}
    for name, function in functions.items():
        # Lists replace on merge, so keep whatever DependsOn chalice wrote. The policy is attached
        # before any function exists, so a first deploy never serves requests without access.
        depends_on = function.get("DependsOn", [])
        depends_on = [depends_on] if isinstance(depends_on, str) else list(depends_on)
        resources[name] = {
            "DependsOn": depends_on + [POLICY_ID],
            "Properties": {"Environment": {"Variables": wiring}},
        }
    for name in _resources_of(plain, [API_TYPE]):
        resources[name] = {"Properties": {"DefinitionBody": {
            "x-amazon-apigateway-gateway-responses": gateway_responses()}}}
    resources = _merged(resources, x_api_key_authorizer(plain))

    return {
        "Resources": resources,
        "Outputs": {
            "TableName": {"Value": {"Ref": TABLE_ID}},
            "AlertTopicArn": {"Value": {"Ref": TOPIC_ID}},
            "KeyArn": {"Value": {"Fn::GetAtt": [KEY_ID, "Arn"]}},
        },
    }


def write_json(path: Path, data: Dict[str, Any]) -> None:
    """Write atomically: a concurrent run never reads half a template."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=path.name, suffix=".tmp", delete=False) as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(f.name, path)


def zip_report(zip_path: Path, top: int = 10) -> Tuple[float, List[Tuple[str, int, int]]]:
    """The zip's size in MB and its largest top-level entries: (name, bytes, compressed bytes)."""
    sizes: Dict[str, int] = collections.Counter()
    compressed: Dict[str, int] = collections.Counter()
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            name = info.filename.split("/", 1)[0]
            sizes[name] += info.file_size
            compressed[name] += info.compress_size
    largest = sorted(sizes, key=lambda name: (-sizes[name], name))[:top]
    return zip_path.stat().st_size / 1e6, [(name, sizes[name], compressed[name]) for name in largest]


def package(stage: str, out: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="tessera-package-") as work:
        project = stage_project(Path(work) / "project")
        chalice_package(stage, Path(work) / "plain", project=project)
        plain = json.loads((Path(work) / "plain" / "sam.json").read_text())
        merge_path = ROOT / "build" / f"merge-template-{stage}.json"
        write_json(merge_path, merge_template(stage, plain))
        for stale in ("sam.json", "sam.yaml", "deployment.zip"):
            (out / stale).unlink(missing_ok=True)
        chalice_package(stage, out, merge_path, project=project)
    return merge_path


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Package Tessera for deployment (offline).")
    parser.add_argument("--stage", default="prod")
    parser.add_argument("--out", default="build/package", type=Path)
    args = parser.parse_args(argv)
    out = args.out.resolve()
    os.environ.setdefault("AWS_DEFAULT_REGION", DEFAULT_REGION)
    try:
        merge_path = package(args.stage, out)
    except PackagingError as error:
        print(f"make package: {error}", file=sys.stderr)
        return 1
    zip_path = out / "deployment.zip"
    size_mb, largest = zip_report(zip_path)
    print(f"Packaged stage {args.stage!r}")
    print(f"  template:       {out / 'sam.json'}")
    print(f"  merge template: {merge_path}")
    print(f"  deployment:     {zip_path} ({size_mb:.1f} MB)")
    print("  largest top-level packages (unzipped / zipped MB):")
    for name, size, zipped in largest:
        print(f"    {size / 1e6:7.2f} {zipped / 1e6:7.2f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
