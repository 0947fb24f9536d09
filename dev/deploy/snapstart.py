"""Lambda SnapStart on the request path's functions, in the merged template (dev/deploy/template.py).

SnapStart runs a function's init once per published version and starts each new execution environment
from a snapshot of it (the hooks: chalicelib/snapshot.py). It applies to published versions only, never
to $LATEST, which is what an unqualified ARN invokes; chalice's template invokes every function by its
unqualified ARN. So for each function given, `snapstart_template` returns what merges into the template:

1. `SnapStart: {ApplyOn: PublishedVersions}` and `AutoPublishAlias: live`: SAM publishes a version when
   the code or configuration changes and points the alias `live` at it (AWS::Lambda::Version and
   AWS::Lambda::Alias `<LogicalId>Aliaslive`);
2. every API Gateway integration URI and authorizer URI naming the function's ARN names the alias
   (`Ref` of an alias is its ARN);
3. every permission letting API Gateway invoke the function grants it on the alias instead (a
   permission on the unqualified function does not cover an alias), as `<function name>:live`, once the
   alias exists.

`chalice package --merge-template` merges dicts and replaces anything else, which is why a permission's
FunctionName becomes a string (a merged `{"Ref": ...}` would sit beside chalice's `Fn::GetAtt`).
"""
from __future__ import annotations

import re
from typing import Any, Dict, Iterable, Mapping

ALIAS = "live"
LAMBDA_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
PERMISSION_TYPE = "AWS::Lambda::Permission"
API_TYPE = "AWS::Serverless::Api"


class SnapStartError(RuntimeError):
    pass


def alias_id(logical_id: str) -> str:
    """The logical id SAM gives the alias of a function with AutoPublishAlias."""
    return f"{logical_id}Alias{ALIAS}"


def _retargeted(node: Any, arns: Mapping[str, str]) -> Dict[str, Any]:
    """The Fn::Sub strings under `node` that name one of `arns`' keys, with the replacement, as a patch
    of the same shape (dicts only: the URIs never sit in lists)."""
    patch: Dict[str, Any] = {}
    if not isinstance(node, dict):
        return patch
    for key, value in node.items():
        if key == "Fn::Sub" and isinstance(value, str):
            new = value
            for old, replacement in arns.items():
                new = new.replace(old, replacement)
            if new != value:
                patch[key] = new
        else:
            inner = _retargeted(value, arns)
            if inner:
                patch[key] = inner
    return patch


def _names(function_name: Any, logical_id: str) -> bool:
    """Whether a permission's FunctionName is the unqualified function `logical_id`."""
    return function_name in ({"Ref": logical_id}, {"Fn::GetAtt": [logical_id, "Arn"]},
                             {"Fn::GetAtt": f"{logical_id}.Arn"})


def snapstart_template(template: Mapping[str, Any], logical_ids: Iterable[str]) -> Dict[str, Any]:
    """What merges into `template` (chalice's, with whatever else is merged) for SnapStart on `logical_ids`."""
    resources = template.get("Resources", {})
    merged: Dict[str, Any] = {}
    arns: Dict[str, str] = {}
    for logical_id in logical_ids:
        function = resources.get(logical_id)
        if function is None or function.get("Type") not in LAMBDA_TYPES:
            raise SnapStartError(f"SnapStart names {logical_id}, which is not a function of the template.")
        if function["Type"] != "AWS::Serverless::Function":
            raise SnapStartError(f"{logical_id} is not a SAM function: AutoPublishAlias needs one.")
        merged[logical_id] = {"Properties": {"AutoPublishAlias": ALIAS,
                                             "SnapStart": {"ApplyOn": "PublishedVersions"}}}
        arns[f"${{{logical_id}.Arn}}"] = f"${{{alias_id(logical_id)}}}"
        name = function["Properties"].get("FunctionName")
        if not isinstance(name, str):
            raise SnapStartError(f"{logical_id} has no explicit FunctionName to qualify with its alias.")
        for permission_id, permission in resources.items():
            if permission.get("Type") == PERMISSION_TYPE and _names(permission["Properties"]["FunctionName"],
                                                                     logical_id):
                depends = permission.get("DependsOn", [])
                depends = [depends] if isinstance(depends, str) else list(depends)
                merged[permission_id] = {"DependsOn": depends + [alias_id(logical_id)],
                                         "Properties": {"FunctionName": f"{name}:{ALIAS}"}}
    for api_id, api in resources.items():
        if api.get("Type") == API_TYPE:
            patch = _retargeted(api, arns)
            if patch:
                merged[api_id] = patch
    return merged


def unaliased_references(template: Mapping[str, Any], logical_ids: Iterable[str]) -> Dict[str, str]:
    """Where a merged template still invokes one of `logical_ids` unqualified: {resource: what it names}.
    Empty when every API integration, authorizer and permission goes through the alias."""
    found = {}
    ids = list(logical_ids)
    for resource_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") == PERMISSION_TYPE:
            name = resource["Properties"]["FunctionName"]
            if any(_names(name, logical_id) for logical_id in ids):
                found[resource_id] = str(name)
        if resource.get("Type") in (API_TYPE, "AWS::ApiGateway::RestApi"):  # before and after SAM's transform
            for logical_id in ids:
                if re.search(rf"\$\{{{re.escape(logical_id)}\.Arn\}}", repr(resource)):
                    found[resource_id] = logical_id
    return found
