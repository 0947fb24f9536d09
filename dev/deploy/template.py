"""The template merged into chalice's own: what chalice does not create, and the least privilege per function.

`merge_template(stage, env, plain)` reads chalice's plain template for the stage (its
functions, their events and the REST API) and returns the template that
`chalice package --merge-template` merges into it. Two rules of that merge shape what is
written here: dicts merge, lists replace. So a role's `Policies` list is replaced whole
(chalice's roles would otherwise carry one shared policy), while environment variables,
events and the API definition are dicts and merge.

Every function gets: its own role (dev/deploy/permissions.py), its own log group with the
retention parameter, an explicit name, X-Ray tracing, and reserved concurrency where it
caps spend. Functions invoked asynchronously (schedules) get a failure destination.
"""
from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

from dev.deploy import gateway_responses
from dev.deploy import permissions
from dev.deploy import snapstart
from dev.deploy import stream_template
from dev.deploy.permissions import EXPORTS_ID, FAILURE_QUEUE_ID, KEY_ID, TABLE_ID, TOPIC_ID

FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
API_TYPE = "AWS::Serverless::Api"
KEY_ALIAS_ID = "TesseraKeyAlias"
ACCESS_LOG_GROUP_ID = "ApiAccessLogs"
API_LOGS_ROLE_ID = "ApiGatewayLogsRole"
API_ACCOUNT_ID = "ApiGatewayAccount"
WEB_ACL_ID = "TesseraWebAcl"
WEB_ACL_ASSOCIATION_ID = "TesseraWebAclAssociation"
WAF_ON = "WafEnabled"
API_CONCURRENCY_SET = "ApiConcurrencyCapped"

# CloudWatch Logs accepts only these retention periods (days).
RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                  3288, 3653]

# Stage throttling (requests per second, burst). The public routes run argon2 on every call (sign-up
# hashes, login verifies), so they are held far below the rest. Paths are API Gateway method-setting
# paths: "/" is written "~1" inside a path.
THROTTLING: Dict[Tuple[str, str], Tuple[int, int]] = {
    ("/*", "*"): (100, 200),
    ("/tenants", "POST"): (2, 5),
    ("/auth/login", "POST"): (10, 20),
}
PUBLIC_PATHS = ("/tenants", "/auth/login")

# WAF rate rules, per source IP over WAF's five-minute window.
WAF_DEFAULT_LIMIT = 2000
WAF_PUBLIC_LIMIT = 100

# The functions a caller waits on, by chalice's name: SnapStart (dev/deploy/snapstart.py) starts a new instance of
# them from a snapshot taken after init, with the anthropic SDK already imported where it is used.
SNAPSTART_FUNCTIONS = ("api_handler", "stream_handler", "tenant_auth", "tenant_request_auth", "operator_auth")

# Schedules are invoked asynchronously: Lambda retries twice, then sends the event to the failure queue.
ASYNC_RETRIES = 2
FAILURE_RETENTION_SECONDS = 14 * 24 * 3600

# Fields of each API access log line (JSON): request and tenant ids first.
ACCESS_LOG_FORMAT = {
    "request_id": "$context.requestId",
    "tenant_id": "$context.authorizer.tenant_id",
    "principal_id": "$context.authorizer.principalId",
    "ip": "$context.identity.sourceIp",
    "method": "$context.httpMethod",
    "path": "$context.path",
    "resource": "$context.resourcePath",
    "status": "$context.status",
    "error": "$context.error.responseType",
    "latency_ms": "$context.responseLatency",
    "integration_ms": "$context.integrationLatency",
    "authorizer_ms": "$context.authorizer.latency",
    "waf": "$context.waf.status",
    "time": "$context.requestTimeEpoch",
}


class TemplateError(RuntimeError):
    pass


def resources_of(template: Mapping[str, Any], types: Any) -> Dict[str, Dict[str, Any]]:
    wanted = {types} if isinstance(types, str) else set(types)
    return {name: r for name, r in template.get("Resources", {}).items() if r.get("Type") in wanted}


def function_name_of(function: Mapping[str, Any]) -> str:
    """chalice's name for a function: its handler after `app.`, `api_handler` for the REST API's."""
    handler = function["Properties"]["Handler"]
    if handler == stream_template.HANDLER:  # not chalice's: the streaming function's start-up script
        return stream_template.FUNCTION
    name = handler.split(".", 1)[1]
    return "api_handler" if name == "app" else name


def deployed_name(stage: str, function: str) -> str:
    """The Lambda function's name, as `chalice deploy` would name it."""
    return f"tessera-{stage}" if function == "api_handler" else f"tessera-{stage}-{function}"


def _sub(text: str) -> Dict[str, str]:
    return {"Fn::Sub": text}


def _escaped(path: str) -> str:
    """A method setting's path: /auth/login is written /~1auth~1login (API Gateway's MethodSetting)."""
    return path if path == "/*" else "/" + path.replace("/", "~1")


def parameters(stage: str) -> Dict[str, Any]:
    return {
        "LogRetentionDays": {
            "Type": "Number", "Default": 30, "AllowedValues": RETENTION_DAYS,
            "Description": "Days CloudWatch keeps the functions' and the API's logs.",
        },
        "EnableWaf": {
            "Type": "String", "Default": "true" if stage == "prod" else "false", "AllowedValues": ["true", "false"],
            "Description": "Attach a WAF web ACL with per-IP rate rules to the API stage.",
        },
        "ApiReservedConcurrency": {
            "Type": "Number", "Default": 100 if stage == "prod" else 10, "MinValue": 0,
            "Description": "Most concurrent API handler instances (caps upstream spend and argon2 CPU); 0: no cap.",
        },
    }


def log_group(name: Any) -> Dict[str, Any]:
    return {"Type": "AWS::Logs::LogGroup",
            "Properties": {"LogGroupName": name, "RetentionInDays": {"Ref": "LogRetentionDays"}}}


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
                    # The account administers the key; use is granted per function through IAM.
                    "Sid": "AccountAdministersKey",
                    "Effect": "Allow",
                    "Principal": {"AWS": _sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root")},
                    "Action": "kms:*",
                    "Resource": "*",
                }],
            },
        },
    }


def role(policy_name: str, document: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
            "Policies": [{"PolicyName": policy_name, "PolicyDocument": document}],
        },
    }


def web_acl(stage: str) -> Dict[str, Any]:
    def rate_rule(name: str, priority: int, limit: int, scope: Optional[Dict[str, Any]]) -> Dict[str, Any]:
        statement: Dict[str, Any] = {"Limit": limit, "AggregateKeyType": "IP"}
        if scope:
            statement["ScopeDownStatement"] = scope
        return {"Name": name, "Priority": priority, "Action": {"Block": {}},
                "Statement": {"RateBasedStatement": statement},
                "VisibilityConfig": {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True,
                                     "MetricName": f"tessera-{stage}-{name}"}}

    # ENDS_WITH matches with or without the stage in the path (execute-api URL or a custom domain); GET
    # /admin/tenants shares the tighter limit, which operators' listing never comes near.
    public = {"OrStatement": {"Statements": [
        {"ByteMatchStatement": {"FieldToMatch": {"UriPath": {}}, "PositionalConstraint": "ENDS_WITH",
                                "SearchString": path, "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}}
        for path in PUBLIC_PATHS]}}
    return {
        "Type": "AWS::WAFv2::WebACL",
        "Condition": WAF_ON,
        "Properties": {
            "Name": f"tessera-{stage}",
            "Scope": "REGIONAL",
            "DefaultAction": {"Allow": {}},
            "Rules": [rate_rule("public-routes-per-ip", 0, WAF_PUBLIC_LIMIT, public),
                      rate_rule("all-routes-per-ip", 1, WAF_DEFAULT_LIMIT, None)],
            "VisibilityConfig": {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True,
                                 "MetricName": f"tessera-{stage}"},
        },
    }


def method_settings() -> List[Dict[str, Any]]:
    settings = []
    for (path, method), (rate, burst) in THROTTLING.items():
        settings.append({"ResourcePath": _escaped(path), "HttpMethod": method, "ThrottlingRateLimit": rate,
                         "ThrottlingBurstLimit": burst, "MetricsEnabled": True})
    return settings


def api_resources(stage: str, api_id: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(new resources, what merges into the Serverless::Api) for the REST API."""
    stage_arn = _sub(f"arn:${{AWS::Partition}}:apigateway:${{AWS::Region}}::/restapis/${{{api_id}}}/stages/"
                     f"${{{api_id}.Stage}}")
    new = {
        ACCESS_LOG_GROUP_ID: log_group(f"/aws/apigateway/tessera-{stage}-access"),
        # API Gateway writes access logs through the region's account-level CloudWatch role.
        API_LOGS_ROLE_ID: {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"},
                    "Action": "sts:AssumeRole"}]},
                "ManagedPolicyArns": [
                    _sub("arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs")],
            },
        },
        API_ACCOUNT_ID: {"Type": "AWS::ApiGateway::Account",
                         "Properties": {"CloudWatchRoleArn": {"Fn::GetAtt": [API_LOGS_ROLE_ID, "Arn"]}}},
        WEB_ACL_ID: web_acl(stage),
        WEB_ACL_ASSOCIATION_ID: {
            "Type": "AWS::WAFv2::WebACLAssociation",
            "Condition": WAF_ON,
            "Properties": {"ResourceArn": stage_arn, "WebACLArn": {"Fn::GetAtt": [WEB_ACL_ID, "Arn"]}},
        },
    }
    merged = {
        "DependsOn": [API_ACCOUNT_ID],
        "Properties": {
            "TracingEnabled": True,
            "MethodSettings": method_settings(),
            "AccessLogSetting": {"DestinationArn": {"Fn::GetAtt": [ACCESS_LOG_GROUP_ID, "Arn"]},
                                 "Format": json.dumps(ACCESS_LOG_FORMAT, separators=(",", ":"))},
            "DefinitionBody": {"x-amazon-apigateway-gateway-responses": gateway_responses.openapi_gateway_responses()},
        },
    }
    return new, merged


def _events(function: Mapping[str, Any]) -> Dict[str, Any]:
    return dict(function.get("Properties", {}).get("Events") or {})


def is_asynchronous(function: Mapping[str, Any]) -> bool:
    """Invoked by EventBridge (a schedule), SNS or S3: Lambda's async invocation, with retries."""
    return any(e.get("Type") in ("Schedule", "ScheduleV2", "SNS", "S3", "EventBridgeRule", "CloudWatchEvent")
               for e in _events(function).values())


def _table_stream_events(function: Mapping[str, Any], table_name: str) -> Dict[str, Any]:
    """DynamoDB events on this stage's table, re-pointed at the stream of the table the template creates."""
    pattern = re.compile(rf":table/{re.escape(table_name)}/stream/")
    rewired = {}
    for name, event in _events(function).items():
        stream = event.get("Properties", {}).get("Stream")
        if event.get("Type") == "DynamoDB" and isinstance(stream, str) and pattern.search(stream):
            rewired[name] = {"Properties": {"Stream": {"Fn::GetAtt": [TABLE_ID, "StreamArn"]}}}
    return rewired


def function_resources(stage: str, env: Mapping[str, str], logical_id: str,
                       function: Mapping[str, Any], name: Optional[str] = None) -> Dict[str, Any]:
    """The role, log group and merged settings of one function (`name`: its entry in dev/deploy/permissions.py,
    by default chalice's name for it)."""
    name = name or function_name_of(function)
    permissions.access_of(name)  # refuse a function nobody has described
    log_group_id, role_id = f"{logical_id}LogGroup", f"{logical_id}Role"
    rewired = _table_stream_events(function, env["TESSERA_TABLE_NAME"])
    # The events as the merged template will hold them: the poller's grants follow the re-pointed stream.
    events = {event_name: {**event, "Properties": {**event.get("Properties", {}),
                                                   **rewired.get(event_name, {}).get("Properties", {})}}
              for event_name, event in _events(function).items()}
    asynchronous = is_asynchronous(function)
    document = permissions.policy_document(name, stage, env["TESSERA_EMAIL_SENDER"], log_group_id, events,
                                           asynchronous)
    properties: Dict[str, Any] = {
        "FunctionName": deployed_name(stage, name),
        "Role": {"Fn::GetAtt": [role_id, "Arn"]},
        "Tracing": "Active",
        "Environment": {"Variables": {"TESSERA_TABLE_NAME": {"Ref": TABLE_ID},
                                      "TESSERA_ALERT_TOPIC_ARN": {"Ref": TOPIC_ID},
                                      "TESSERA_KMS_KEY_ID": {"Ref": KEY_ALIAS_ID},
                                      "TESSERA_EXPORT_BUCKET": {"Ref": EXPORTS_ID},
                                      "POWERTOOLS_SERVICE_NAME": "tessera",
                                      "POWERTOOLS_METRICS_NAMESPACE": "Tessera"}},
    }
    if rewired:
        properties["Events"] = rewired
    if name == "api_handler":
        properties["ReservedConcurrentExecutions"] = {
            "Fn::If": [API_CONCURRENCY_SET, {"Ref": "ApiReservedConcurrency"}, {"Ref": "AWS::NoValue"}]}
    if asynchronous:
        # One run at a time: a schedule never needs two, and a failing one cannot fan out.
        properties["ReservedConcurrentExecutions"] = 1
        properties["EventInvokeConfig"] = {
            "MaximumRetryAttempts": ASYNC_RETRIES,
            "DestinationConfig": {"OnFailure": {"Type": "SQS",
                                                "Destination": {"Fn::GetAtt": [FAILURE_QUEUE_ID, "Arn"]}}},
        }
    depends_on = function.get("DependsOn", [])
    depends_on = [depends_on] if isinstance(depends_on, str) else list(depends_on)
    return {
        role_id: role(f"tessera-{stage}-{name}", document),
        log_group_id: log_group(f"/aws/lambda/{deployed_name(stage, name)}"),
        # Lists replace on merge, so keep whatever DependsOn chalice wrote. The log group exists before
        # the function, so Lambda never creates one without retention (and the role needs no CreateLogGroup).
        logical_id: {"DependsOn": depends_on + [log_group_id], "Properties": properties},
    }


# --- Anthropic's x-api-key: a REQUEST authorizer for tenant routes ------------------------------

TOKEN_AUTHORIZER = "tenant_auth"
REQUEST_AUTHORIZER = "tenant_request_auth"
REQUEST_AUTHORIZER_FUNCTION = "TenantRequestAuth"


def request_authorizer(plain: Mapping[str, Any]) -> Dict[str, Any]:
    """What merges into the template so that `x-api-key: tsk_...` works wherever `Authorization: Bearer
    tsk_...` does. A TOKEN authorizer reads one header, and a REQUEST authorizer with API Gateway's cache on
    refuses a request that lacks any of its identity sources, so neither can accept either header. This:
      1. adds a REQUEST authorizer `tenant_request_auth` (no identity sources, API Gateway's cache off)
         invoking `TenantRequestAuth` (app.tenant_request_auth, which reads either header and keeps its
         own 30 s cache of decisions);
      2. moves every operation secured by `tenant_auth` to it (operator routes are unchanged);
      3. lets API Gateway invoke the function, as chalice's own permission does for `tenant_auth`.
    Every gateway response reads as both error shapes (dev/deploy/gateway_responses.py)."""
    if REQUEST_AUTHORIZER_FUNCTION not in resources_of(plain, FUNCTION_TYPES):
        raise TemplateError(f"chalice's template has no {REQUEST_AUTHORIZER_FUNCTION} function "
                            f"(app.{REQUEST_AUTHORIZER} in app.py).")
    merged: Dict[str, Any] = {}
    for name, api in resources_of(plain, API_TYPE).items():
        body = api["Properties"]["DefinitionBody"]
        moved = {path: {method: {"security": [{REQUEST_AUTHORIZER: []}]}
                        for method, operation in item.items()
                        if isinstance(operation, dict) and operation.get("security") == [{TOKEN_AUTHORIZER: []}]}
                 for path, item in body.get("paths", {}).items()}
        uri = _sub("arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
                   f"${{{REQUEST_AUTHORIZER_FUNCTION}.Arn}}/invocations")
        merged[name] = {"Properties": {"DefinitionBody": {
            "securityDefinitions": {REQUEST_AUTHORIZER: {
                "type": "apiKey", "name": "x-api-key", "in": "header", "x-amazon-apigateway-authtype": "custom",
                "x-amazon-apigateway-authorizer": {"type": "request", "authorizerUri": uri,
                                                   "authorizerResultTtlInSeconds": 0}}},
            "paths": {path: methods for path, methods in moved.items() if methods},
        }}}
        merged[f"{REQUEST_AUTHORIZER_FUNCTION}InvokePermission"] = {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "FunctionName": {"Fn::GetAtt": [REQUEST_AUTHORIZER_FUNCTION, "Arn"]},
                "Action": "lambda:InvokeFunction", "Principal": "apigateway.amazonaws.com",
                "SourceArn": {"Fn::Sub": ["arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
                                          "${RestAPIId}/*", {"RestAPIId": {"Ref": name}}]},
            },
        }
    return merged


def _deep_merged(base: Dict[str, Any], extra: Mapping[str, Any]) -> Dict[str, Any]:
    """`extra` merged into a copy of `base` as --merge-template merges: dicts merge, anything else replaces."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = _deep_merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else value
    return out


def data_resources(stage: str, env: Mapping[str, str], table_resource: Dict[str, Any]) -> Dict[str, Any]:
    """The stage's data and messaging: table, KMS key and alias, alert topic, the schedules' failure queue.
    The packaged template holds them, and so does the dev stage's own stack (dev/deploy/dev_stage.py)."""
    return {
        TABLE_ID: table_resource,
        KEY_ID: kms_key(stage),
        KEY_ALIAS_ID: {"Type": "AWS::KMS::Alias",
                       "Properties": {"AliasName": env["TESSERA_KMS_KEY_ID"], "TargetKeyId": {"Ref": KEY_ID}}},
        # Encrypted with SNS's AWS managed key, whose key policy lets the account's publishers use it
        # through SNS only: publishing needs no KMS permission of its own.
        TOPIC_ID: {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": f"tessera-{stage}-budget-alerts",
                                                              "KmsMasterKeyId": "alias/aws/sns"}},
        FAILURE_QUEUE_ID: {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": f"tessera-{stage}-job-failures", "SqsManagedSseEnabled": True,
            "MessageRetentionPeriod": FAILURE_RETENTION_SECONDS}},
        EXPORTS_ID: export_bucket(),
    }


EXPORT_EXPIRY_DAYS = 7  # chalicelib/offboarding.py, EXPORT_KEEP_DAYS


def export_bucket() -> Dict[str, Any]:
    """Tenant exports: private (public access blocked, no ACLs), encrypted at rest, TLS only, and removed by
    a lifecycle rule after EXPORT_EXPIRY_DAYS; readers get a presigned URL that expires sooner."""
    return {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Delete", "Properties": {
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
        "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                           "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
        "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
        "LifecycleConfiguration": {"Rules": [{"Id": "ExpireExports", "Status": "Enabled", "Prefix": "exports/",
                                              "ExpirationInDays": EXPORT_EXPIRY_DAYS}]}}}


def merge_template(stage: str, env: Mapping[str, str], plain: Mapping[str, Any],
                   table_resource: Dict[str, Any]) -> Dict[str, Any]:
    for variable in ("TESSERA_TABLE_NAME", "TESSERA_KMS_KEY_ID", "TESSERA_EMAIL_SENDER"):
        if not env.get(variable):
            raise TemplateError(f"Stage {stage!r} sets no {variable} in .chalice/config.json.")
    functions = resources_of(plain, FUNCTION_TYPES)
    if not functions:
        raise TemplateError("chalice's template holds no Lambda functions.")
    resources = data_resources(stage, env, table_resource)
    for logical_id, function in sorted(functions.items()):
        resources.update(function_resources(stage, env, logical_id, function))
    apis = resources_of(plain, API_TYPE)
    for api_id in apis:
        new, merged = api_resources(stage, api_id)
        resources.update(new)
        resources[api_id] = merged
    resources = _deep_merged(resources, request_authorizer(plain))
    resources = _deep_merged(resources, stream_template.resources(stage, env, plain))
    snapstart_ids = [logical_id for logical_id, function in functions.items()
                     if function_name_of(function) in SNAPSTART_FUNCTIONS]
    if stream_template.FUNCTION in SNAPSTART_FUNCTIONS:  # added above, beside chalice's functions
        snapstart_ids.append(stream_template.LOGICAL_ID)
    combined = _deep_merged(dict(plain), {"Resources": resources})
    try:
        resources = _deep_merged(resources, snapstart.snapstart_template(combined, snapstart_ids))
    except snapstart.SnapStartError as error:
        raise TemplateError(str(error)) from None
    outputs = {
        "TableName": {"Value": {"Ref": TABLE_ID}},
        "AlertTopicArn": {"Value": {"Ref": TOPIC_ID}},
        "KeyArn": {"Value": {"Fn::GetAtt": [KEY_ID, "Arn"]}},
        "JobFailureQueueUrl": {"Value": {"Ref": FAILURE_QUEUE_ID}},
        "ExportBucket": {"Value": {"Ref": EXPORTS_ID}},
    }
    if apis:
        outputs["WebAclArn"] = {"Condition": WAF_ON, "Value": {"Fn::GetAtt": [WEB_ACL_ID, "Arn"]}}
    return {
        "Parameters": {**parameters(stage), **stream_template.parameters()},
        "Conditions": {
            WAF_ON: {"Fn::Equals": [{"Ref": "EnableWaf"}, "true"]},
            API_CONCURRENCY_SET: {"Fn::Not": [{"Fn::Equals": [{"Ref": "ApiReservedConcurrency"}, "0"]}]},
        },
        "Resources": resources,
        "Outputs": outputs,
    }
