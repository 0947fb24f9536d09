"""A deployment rehearsal, offline: the packaged template expanded and created on moto's CloudFormation.

What an AWS reviewer does before a first deploy, with nothing leaving the machine:

1. `expand`: upload the zip as `aws cloudformation package` would (here: moto's S3) and
   expand the SAM template with aws-sam-translator, as CloudFormation's own
   `AWS::Serverless-2016-10-31` transform does (moto's CloudFormation has no transforms).
2. `create_stack`: create the expanded template on moto's CloudFormation and wait for
   CREATE_COMPLETE.

moto's CloudFormation differs from AWS's in the ways listed in `MOTO_GAPS`. They are
worked around here, in the rehearsal only, each by name; the template itself is what
ships. `apply_gaps` returns what it changed, so a test can prove no other change was made.

The dev stage's route, `chalice deploy` (dev/deploy/dev_stage.py), is rehearsed against moto in server mode
instead; what moto lacks for it is added there by dev/stack/moto_gaps.py, each gap by name.
"""
from __future__ import annotations

import copy
import json
import time
from typing import Any, Dict, List, Mapping, Tuple

# Resource types moto 5.2's CloudFormation cannot create: held back from the stack (their properties are
# checked in the expanded template instead, tests/integration/test_package.py), and replayed through the
# service's own API where the rehearsal says so.
UNSUPPORTED_TYPES: Dict[str, str] = {
    "AWS::ApiGateway::Account": "moto has no CloudFormation model for it",
    "AWS::ApiGateway::Stage": "moto has no CloudFormation model for it",
    "AWS::ApiGateway::Deployment": "moto does not import a RestApi's Body, so a deployment finds no methods",
    "AWS::Lambda::EventInvokeConfig": "moto has no CloudFormation model for it; replayed with "
                                      "lambda.put_function_event_invoke_config",
    "AWS::WAFv2::WebACL": "moto has no CloudFormation model for it",
    "AWS::WAFv2::WebACLAssociation": "moto has no CloudFormation model for it",
    "AWS::Lambda::Alias": "moto has no CloudFormation model for it; replayed with lambda.create_alias on the "
                          "version the stack published",
    "AWS::Lambda::EventSourceMapping": "moto's CloudFormation rejects the table's StreamArn as EventSourceArn "
                                       "('Invalid EventSourceArn'); the mapping is checked in the template",
}
MOTO_GAPS = {
    **UNSUPPORTED_TYPES,
    "RestApi Name": "moto requires AWS::ApiGateway::RestApi Name; AWS takes it from the body's info.title",
    "Alias references": "with the aliases held back, what invokes one (API URIs, permissions as "
                        "`<function>:live`) names its function in the stack; the template is checked for the alias",
    "Lambda without Docker": "moto runs Lambda code only in Docker (absent here): handlers are imported from the "
                             "unzipped package instead (tests/integration/test_rehearsal.py)",
}


class _NoManagedPolicies:
    """aws-sam-translator looks up managed policy names only for SAM `Policies`, which the template has none of."""

    def load(self) -> Dict[str, str]:
        return {}


def expand(template: Mapping[str, Any], bucket: str, key: str, parameters: Mapping[str, str] = None) -> Dict[str, Any]:
    """The SAM template with its code at s3://bucket/key, expanded to plain CloudFormation."""
    from samtranslator.translator.transform import transform

    packaged = copy.deepcopy(dict(template))
    for resource in packaged["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = f"s3://{bucket}/{key}"
    return transform(packaged, dict(parameters or {}), _NoManagedPolicies())


def _mentions(value: Any, logical_ids: set) -> bool:
    text = json.dumps(value)
    return any(f'"{name}"' in text or f"${{{name}}}" in text or f'"{name}.' in text for name in logical_ids)


def apply_gaps(expanded: Mapping[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Dict[str, Any]], List[str]]:
    """(what moto can create, the resources left for replay by logical id, what was changed and why)."""
    template = copy.deepcopy(dict(expanded))
    changes = []
    held = {name: r for name, r in template["Resources"].items() if r["Type"] in UNSUPPORTED_TYPES}
    for name, resource in held.items():
        del template["Resources"][name]
        changes.append(f"held back {name} ({resource['Type']}): {UNSUPPORTED_TYPES[resource['Type']]}")
    for name, resource in template["Resources"].items():
        depends = resource.get("DependsOn")
        if depends:
            depends = [depends] if isinstance(depends, str) else depends
            kept = [d for d in depends if d not in held]
            if kept != depends:
                resource["DependsOn"] = kept
                changes.append(f"{name}: DependsOn without the held-back resources")
        if resource["Type"] == "AWS::ApiGateway::RestApi" and "Name" not in resource["Properties"]:
            resource["Properties"]["Name"] = resource["Properties"]["Body"]["info"]["title"]
            changes.append(f"{name}: Name from Body.info.title ({MOTO_GAPS['RestApi Name']})")
    changes += _unalias(template, {name: r for name, r in held.items() if r["Type"] == "AWS::Lambda::Alias"})
    for name in [n for n, output in template.get("Outputs", {}).items() if _mentions(output, set(held))]:
        del template["Outputs"][name]
        changes.append(f"output {name} dropped: it names a held-back resource")
    return template, held, changes


def _unalias(template: Dict[str, Any], aliases: Mapping[str, Mapping[str, Any]]) -> List[str]:
    """Point what invokes a held-back alias at its function (MOTO_GAPS["Alias references"])."""
    changes = []
    for alias_id, alias in aliases.items():
        function_id = alias["Properties"]["FunctionName"]["Ref"]
        function_name = template["Resources"][function_id]["Properties"]["FunctionName"]
        qualified = f"{function_name}:{alias['Properties']['Name']}"
        for name, resource in template["Resources"].items():
            properties = resource.get("Properties", {})
            if resource["Type"] == "AWS::Lambda::Permission" and properties.get("FunctionName") == qualified:
                properties["FunctionName"] = function_name
                changes.append(f"{name}: FunctionName {qualified} as {function_name} (alias references)")
            text = json.dumps(resource)
            if f"${{{alias_id}}}" in text:
                template["Resources"][name] = json.loads(text.replace(f"${{{alias_id}}}", f"${{{function_id}.Arn}}"))
                changes.append(f"{name}: {alias_id} as {function_id}.Arn (alias references)")
    return changes


def create_stack(cloudformation: Any, name: str, template: Mapping[str, Any], parameters: Mapping[str, str] = None,
                 timeout: float = 60) -> Dict[str, Any]:
    cloudformation.create_stack(
        StackName=name, TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"])
    deadline = time.monotonic() + timeout
    while True:
        stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        if not stack["StackStatus"].endswith("_IN_PROGRESS") or time.monotonic() > deadline:
            return stack
        time.sleep(0.2)


def physical_ids(cloudformation: Any, name: str) -> Dict[str, str]:
    pages = cloudformation.get_paginator("list_stack_resources").paginate(StackName=name)
    return {r["LogicalResourceId"]: r["PhysicalResourceId"] for page in pages for r in page["StackResourceSummaries"]}
