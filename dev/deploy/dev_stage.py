"""The dev stage through `chalice deploy`: a small stack of its resources, a policy file per function, chalice's CLI.

`make deploy-dev` runs `python -m dev.deploy.dev_stage deploy`:

1. `deploy_resources`: the CloudFormation stack `tessera-<stage>-resources`, built from dev/deploy/template.py's
   own definitions (`data_resources`: the table with its stream, the KMS key and alias, the alert topic,
   the schedules' failure queue; `log_group` per function) plus the two signing keyrings in Secrets
   Manager, random. The platform pool's Anthropic key (tessera/<stage>/anthropic-keys) is yours to put
   there, as for prod. `python -m dev.deploy.dev_stage resources` stops there.
2. `stage_project`: a copy of the project in build/<stage>-deploy/ (kept, with chalice's record of what it
   deployed, .chalice/deployed/<stage>.json, so the next run updates): app.py, chalicelib, the lock's
   packages in vendor/ (dev/deploy/package.py's hash-checked install; no requirements.txt, so chalice installs
   nothing itself). Its .chalice/config.json gets the stack's outputs in the stage's variables (the alert
   topic's ARN, and the stream's, which app.py reads for `@app.on_dynamodb_record`), and .chalice/ gets
   `policy-<stage>-<function>.json` for each function: dev/deploy/permissions.py's `policy_document`, the same
   data the packaged template's roles come from, with the stack's ARNs put in.
3. `chalice deploy --stage <stage>` there: chalice makes one role per function from its policy file
   (`manage_iam_role: true`, `autogen_policy: false`), the functions, the REST API with the two
   authorizers, the schedules and the stream's event source mapping.

What this route leaves out, and the packaged template (`make package`, CloudFormation) has: see README,
"Deploying". With AWS_ENDPOINT_URL it deploys there (tests/integration/test_chalice_deploy.py: moto).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

ROOT = Path(__file__).resolve().parents[2]

from dev.deploy import package as packaging  # noqa: E402  (dev/deploy/package.py)
from dev.deploy import permissions  # noqa: E402
from dev.deploy import template as merge  # noqa: E402  (dev/deploy/template.py)
from chalicelib.table import cloudformation_resource  # noqa: E402

STAGE = "dev"
SIGNING_SECRETS = ("jwt", "operator")
DEFAULT_REGION = "us-east-1"


class DeployError(RuntimeError):
    pass


def stack_name(stage: str) -> str:
    return f"tessera-{stage}-resources"


def log_group_id(function: str) -> str:
    return "".join(part.capitalize() for part in function.split("_")) + "LogGroup"


# --- the app's functions, as chalice deploys them -----------------------------------------------------

def app_functions(stage: str) -> Dict[str, Dict[str, Any]]:
    """Each function chalice deploys for the stage, with its events in the packaged template's shape:
    {"Type": "DynamoDB", "Properties": {"Stream": arn}} or {"Type": "Schedule"}."""
    from chalice.app import DynamoDBEventConfig, ScheduledEventConfig
    from chalice.cli.factory import CLIFactory

    app = CLIFactory(str(ROOT), environ=dict(os.environ)).create_config_obj(chalice_stage_name=stage).chalice_app
    functions: Dict[str, Dict[str, Any]] = {}
    if app.routes:
        functions["api_handler"] = {}
    for authorizer in app.builtin_auth_handlers:
        functions[authorizer.name] = {}
    for function in app.pure_lambda_functions:
        functions[function.name] = {}
    for source in app.event_sources:
        if isinstance(source, DynamoDBEventConfig):
            event = {"Type": "DynamoDB", "Properties": {"Stream": source.stream_arn}}
        elif isinstance(source, ScheduledEventConfig):
            event = {"Type": "Schedule"}
        else:
            raise DeployError(f"{source.name}: no policy rule for {type(source).__name__} events.")
        functions.setdefault(source.name, {})[f"{source.name}Event"] = event
    return functions


# --- 1. the resources stack ---------------------------------------------------------------------------

def resources_template(stage: str, env: Mapping[str, str], functions: List[str]) -> Dict[str, Any]:
    resources = merge.data_resources(stage, env, cloudformation_resource(env["TESSERA_TABLE_NAME"]))
    for function in functions:
        resources[log_group_id(function)] = merge.log_group(
            f"/aws/lambda/{merge.deployed_name(stage, function)}")
    for name in SIGNING_SECRETS:
        resources[f"{name.capitalize()}Secret"] = {"Type": "AWS::SecretsManager::Secret", "Properties": {
            "Name": f"tessera/{stage}/{name}",
            "GenerateSecretString": {"PasswordLength": 64, "ExcludePunctuation": True}}}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"Tessera {stage}: the resources `chalice deploy --stage {stage}` runs against",
        "Parameters": {"LogRetentionDays": merge.parameters(stage)["LogRetentionDays"]},
        "Resources": resources,
        "Outputs": {
            "TableArn": {"Value": {"Fn::GetAtt": [permissions.TABLE_ID, "Arn"]}},
            "TableStreamArn": {"Value": {"Fn::GetAtt": [permissions.TABLE_ID, "StreamArn"]}},
            "KeyArn": {"Value": {"Fn::GetAtt": [permissions.KEY_ID, "Arn"]}},
            "AlertTopicArn": {"Value": {"Ref": permissions.TOPIC_ID}},
            "JobFailureQueueArn": {"Value": {"Fn::GetAtt": [permissions.FAILURE_QUEUE_ID, "Arn"]}},
            "ExportBucket": {"Value": {"Ref": permissions.EXPORTS_ID}},
            "ExportBucketArn": {"Value": {"Fn::GetAtt": [permissions.EXPORTS_ID, "Arn"]}},
        },
    }


def deploy_resources(session: Any, stage: str, env: Mapping[str, str], functions: List[str],
                     timeout: float = 600) -> Dict[str, str]:
    """Create or update the stack and wait for it; returns its outputs."""
    cloudformation = session.client("cloudformation")
    name = stack_name(stage)
    arguments = dict(StackName=name, TemplateBody=json.dumps(resources_template(stage, env, functions)))
    try:
        cloudformation.describe_stacks(StackName=name)
        exists = True
    except cloudformation.exceptions.ClientError:
        exists = False
    try:
        (cloudformation.update_stack if exists else cloudformation.create_stack)(**arguments)
    except cloudformation.exceptions.ClientError as error:
        if "No updates are to be performed" not in str(error):
            raise
    deadline = time.monotonic() + timeout
    while True:
        stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        if not stack["StackStatus"].endswith("_IN_PROGRESS"):
            break
        if time.monotonic() > deadline:
            raise DeployError(f"stack {name} still {stack['StackStatus']} after {timeout:.0f} s")
        time.sleep(1)
    if stack["StackStatus"] not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        raise DeployError(f"stack {name}: {stack['StackStatus']} ({stack.get('StackStatusReason', '')})")
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


# --- 2. the policy files ------------------------------------------------------------------------------

def _resolve(value: Any, refs: Mapping[str, str], attributes: Mapping[Tuple[str, str], str]) -> Any:
    """The CloudFormation references dev/deploy/permissions.py writes (Ref, Fn::GetAtt, Fn::Sub), resolved."""
    if isinstance(value, list):
        return [_resolve(v, refs, attributes) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"}:
        return refs[value["Ref"]]
    if set(value) == {"Fn::GetAtt"}:
        return attributes[tuple(value["Fn::GetAtt"])]
    if set(value) == {"Fn::Sub"}:
        def substitute(match: "re.Match[str]") -> str:
            name = match.group(1)
            return attributes[tuple(name.split(".", 1))] if "." in name else refs[name]
        return re.sub(r"\$\{([^}]+)\}", substitute, value["Fn::Sub"])
    return {k: _resolve(v, refs, attributes) for k, v in value.items()}


def policy_documents(stage: str, env: Mapping[str, str], functions: Mapping[str, Mapping[str, Any]],
                     outputs: Mapping[str, str]) -> Dict[str, Dict[str, Any]]:
    """Each function's policy: dev/deploy/permissions.py's document with the stack's ARNs in it."""
    _, _, _, region, account, _ = outputs["TableArn"].split(":", 5)
    partition = outputs["TableArn"].split(":")[1]
    refs = {"AWS::Partition": partition, "AWS::Region": region, "AWS::AccountId": account,
            permissions.TOPIC_ID: outputs["AlertTopicArn"]}
    attributes = {(permissions.TABLE_ID, "Arn"): outputs["TableArn"],
                  (permissions.TABLE_ID, "StreamArn"): outputs["TableStreamArn"],
                  (permissions.KEY_ID, "Arn"): outputs["KeyArn"],
                  (permissions.FAILURE_QUEUE_ID, "Arn"): outputs["JobFailureQueueArn"],
                  (permissions.EXPORTS_ID, "Arn"): outputs["ExportBucketArn"]}
    for function in functions:
        attributes[(log_group_id(function), "Arn")] = (
            f"arn:{partition}:logs:{region}:{account}:log-group:/aws/lambda/{merge.deployed_name(stage, function)}:*")
    documents = {}
    for function, events in functions.items():
        asynchronous = any(e["Type"] == "Schedule" for e in events.values())
        document = permissions.policy_document(function, stage, env["TESSERA_EMAIL_SENDER"], log_group_id(function),
                                               events, asynchronous)
        documents[function] = _resolve(document, refs, attributes)
    return documents


def policy_file(stage: str, function: str) -> str:
    return f"policy-{stage}-{function}.json"


# --- 3. the staged project and chalice deploy ----------------------------------------------------------

def stage_project(into: Path, stage: str, functions: Mapping[str, Mapping[str, Any]], outputs: Mapping[str, str],
                  dependencies: bool = True) -> Path:
    """The project as `chalice deploy` reads it, with the stack's outputs and the policy files. A previous
    run's .chalice/deployed/ is kept: chalice updates what it deployed before."""
    chalice_dir = into / ".chalice"
    for name in ("app.py", "chalicelib", "vendor"):  # what a previous run staged
        path = into / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    for name in ("app.py", "chalicelib"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            into.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    if dependencies:
        packaging.install_locked(into / "vendor")
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    stage_config = config["stages"][stage]
    env = {**config.get("environment_variables", {}), **stage_config.get("environment_variables", {})}
    stage_config["environment_variables"] = {
        **stage_config.get("environment_variables", {}),
        "TESSERA_ALERT_TOPIC_ARN": outputs["AlertTopicArn"],
        "TESSERA_TABLE_STREAM_ARN": outputs["TableStreamArn"],
        "TESSERA_EXPORT_BUCKET": outputs["ExportBucket"],
    }
    configured = set(stage_config.get("lambda_functions", {}))
    if configured != set(functions):
        raise DeployError(f"stage {stage!r} in .chalice/config.json configures the functions {sorted(configured)}; "
                          f"the app has {sorted(functions)}: give each its iam_policy_file.")
    # The stream ARN is the stack's from here on (app.py reads it while chalice loads the app).
    staged_functions = {name: {event: ({**e, "Properties": {"Stream": outputs["TableStreamArn"]}}
                                       if e["Type"] == "DynamoDB" else e) for event, e in events.items()}
                        for name, events in functions.items()}
    chalice_dir.mkdir(parents=True, exist_ok=True)
    for function, document in policy_documents(stage, env, staged_functions, outputs).items():
        expected = policy_file(stage, function)
        if stage_config["lambda_functions"][function].get("iam_policy_file") != expected:
            raise DeployError(f"{function}: .chalice/config.json must name iam_policy_file {expected!r}.")
        (chalice_dir / expected).write_text(json.dumps(document, indent=2) + "\n")
    (chalice_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return into


def chalice_deploy(project: Path, stage: str, env: Optional[Mapping[str, str]] = None) -> str:
    chalice = Path(sys.executable).with_name("chalice")
    result = subprocess.run([str(chalice), "--project-dir", str(project), "deploy", "--stage", stage],
                            cwd=str(project), env=dict(env if env is not None else os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise DeployError(f"`chalice deploy --stage {stage}` failed with exit code {result.returncode}:\n"
                          f"{result.stdout.strip()}")
    return result.stdout


def default_project(stage: str) -> Path:
    return ROOT / "build" / f"{stage}-deploy"


def deploy(session: Any, stage: str = STAGE, project: Optional[Path] = None, dependencies: bool = True,
           resources_only: bool = False) -> Tuple[Dict[str, str], str]:
    """The whole route: (the stack's outputs, what chalice printed)."""
    env = packaging.stage_environment(stage)
    functions = app_functions(stage)
    outputs = deploy_resources(session, stage, env, sorted(functions))
    if resources_only:
        return outputs, ""
    project = stage_project(project or default_project(stage), stage, functions, outputs, dependencies)
    return outputs, chalice_deploy(project, stage)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Deploy a dev stage with `chalice deploy` and its own stack.")
    parser.add_argument("what", choices=["resources", "deploy"])
    parser.add_argument("--stage", default=STAGE)
    parser.add_argument("--project", type=Path, help="where the staged project lives (default build/<stage>-deploy)")
    parser.add_argument("--without-dependencies", action="store_true",
                        help="leave vendor/ empty (the rehearsal's: the functions are created, never run)")
    args = parser.parse_args(argv)
    import boto3

    os.environ.setdefault("AWS_DEFAULT_REGION", DEFAULT_REGION)
    try:
        outputs, printed = deploy(boto3.session.Session(), args.stage, args.project, not args.without_dependencies,
                                  resources_only=args.what == "resources")
    except (DeployError, packaging.PackagingError) as error:
        print(f"dev_stage: {error}", file=sys.stderr)
        return 1
    print(f"Stack {stack_name(args.stage)}:")
    for key, value in sorted(outputs.items()):
        print(f"  {key}: {value}")
    print(printed, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
