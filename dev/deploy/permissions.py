"""Least privilege per function: what each Lambda's own code calls, as data, and the IAM it becomes.

`FUNCTION_ACCESS` is the one place to edit. Its keys are chalice's function names (the
handler after `app.`, and `api_handler` for the REST API); each value maps a resource of
the template to the actions that function's code calls on it. Adding a function is adding
its entry; packaging refuses a function that has none, so nothing ships with a guess.

What no code calls but every function needs is added by `policy_document`: writing to
its own log group, X-Ray segments (AWS requires Resource "*" for those two X-Ray
actions), the failure queue for functions invoked asynchronously (schedules), and what
Lambda's poller needs for a DynamoDB stream or SQS queue the function is subscribed to.
Those come from the function's events in the template, not from this table.

tests/integration/test_least_privilege.py records the AWS calls each entry point really
makes on moto and compares them with this table.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence

TABLE_ID = "TesseraTable"
KEY_ID = "TesseraKey"
TOPIC_ID = "TesseraAlertTopic"
FAILURE_QUEUE_ID = "TesseraJobFailures"
EXPORTS_ID = "TesseraExports"

TENANT_CONTEXT_KEY = "tenant_id"

# resource -> actions, per function. Resources: "table", "indexes" (the table's GSIs), "stream" (the
# table's stream), "tenant_keys" (the KMS key, only under the tenant encryption context), "alerts" (the
# SNS topic), "email" (the verified SES sender), "secret:<name>" (tessera/<stage>/<name> in Secrets Manager),
# "exports" (the objects under exports/ in the tenant export bucket), "bedrock_models" (the Bedrock models pool
# calls fail over to, chalicelib/pricing.py BEDROCK: their inference profiles and foundation models only).
FUNCTION_ACCESS: Dict[str, Dict[str, Sequence[str]]] = {
    "tenant_auth": {
        "table": ["dynamodb:BatchGetItem"],
        "secret:jwt": ["secretsmanager:GetSecretValue"],
    },
    "tenant_request_auth": {
        "table": ["dynamodb:BatchGetItem"],
        "secret:jwt": ["secretsmanager:GetSecretValue"],
    },
    "operator_auth": {
        "secret:operator": ["secretsmanager:GetSecretValue"],
    },
    "api_handler": {
        # Transactions are authorised per item: Put/Update/Delete on the table.
        "table": ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:PutItem",
                  "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
        "indexes": ["dynamodb:Query"],
        "tenant_keys": ["kms:Encrypt", "kms:Decrypt"],
        "secret:jwt": ["secretsmanager:GetSecretValue"],
        "secret:anthropic-keys": ["secretsmanager:GetSecretValue"],
        "email": ["ses:SendEmail"],
        # PutObject writes an export; GetObject is what its presigned URL, signed by this role, lets a reader do.
        "exports": ["s3:PutObject", "s3:GetObject"],
        # Whole calls failing over (chalicelib/ai/failover.py); its streamed routes run on stream_handler.
        "bedrock_models": ["bedrock:InvokeModel"],
    },
    # The streaming function (chalicelib/stream_host): the AI calls of api_handler and their Idempotency-Key
    # records; the tenant comes from the authorizer's context, so it reads no signing secret.
    "stream_handler": {
        "table": ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                  "dynamodb:DeleteItem"],
        "tenant_keys": ["kms:Decrypt"],
        "secret:anthropic-keys": ["secretsmanager:GetSecretValue"],
        # It calls upstream streamed only, whole answers included (chalicelib/ai/streaming.run_assembled).
        "bedrock_models": ["bedrock:InvokeModelWithResponseStream"],
    },
    # The usage stream's consumer: reads the reconciliation item, the tenant's plan and the month's
    # aggregates (one batch), creates sweep marks, and folds events in transactions (Update on each item).
    # The stream's own grants come from its event.
    "usage_aggregator": {
        "table": ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
    },
    "reservation_sweeper": {
        "table": ["dynamodb:Query", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                  "dynamodb:DeleteItem"],
    },
    # Observes open Message Batches with the key each was made with (the pool's or the tenant's own,
    # decrypted), and settles ended ones: usage events (PutItem), the batch item, its open mark.
    "batch_sweep": {
        "table": ["dynamodb:Query", "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem",
                  "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
        "tenant_keys": ["kms:Decrypt"],
        "secret:anthropic-keys": ["secretsmanager:GetSecretValue"],
    },
    # Deleted tenants' partitions: reads pages, deletes them (and copies billing aggregates) in batches,
    # releases the slug claim, records the end in the audit trail.
    "tenant_purge": {
        "table": ["dynamodb:Query", "dynamodb:BatchWriteItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                  "dynamodb:DeleteItem"],
    },
    "budget_check": {
        "table": ["dynamodb:Query", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
        "indexes": ["dynamodb:Query"],
        "alerts": ["sns:Publish"],
        "email": ["ses:SendEmail"],
    },
}

XRAY_ACTIONS = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
LOG_ACTIONS = ["logs:CreateLogStream", "logs:PutLogEvents"]
# What Lambda's event source mapping calls with the function's role.
STREAM_POLLER_ACTIONS = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"]
STREAM_LIST_ACTIONS = ["dynamodb:ListStreams"]
QUEUE_POLLER_ACTIONS = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
FAILURE_ACTIONS = ["sqs:SendMessage"]


class UnknownFunction(KeyError):
    pass


def _sub(text: str) -> Dict[str, str]:
    return {"Fn::Sub": text}


def _arn(service: str, resource: str) -> Dict[str, str]:
    return _sub(f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{resource}")


def ses_identities(sender: str) -> List[str]:
    """SES authorises a send against the verified identity: the sender address or its domain."""
    if "@" not in sender:
        raise ValueError(f"TESSERA_EMAIL_SENDER must be an address, not {sender!r}.")
    return [sender, sender.rpartition("@")[2]]


def resources(resource: str, stage: str, sender: str) -> Any:
    """The exact ARNs a resource name of FUNCTION_ACCESS stands for in the template."""
    if resource == "table":
        return {"Fn::GetAtt": [TABLE_ID, "Arn"]}
    if resource == "indexes":
        return _sub(f"${{{TABLE_ID}.Arn}}/index/*")
    if resource == "stream":
        return {"Fn::GetAtt": [TABLE_ID, "StreamArn"]}
    if resource == "tenant_keys":
        return {"Fn::GetAtt": [KEY_ID, "Arn"]}
    if resource == "alerts":
        return {"Ref": TOPIC_ID}
    if resource == "exports":
        return _sub(f"${{{EXPORTS_ID}.Arn}}/exports/*")
    if resource == "email":
        return [_arn("ses", f"identity/{identity}") for identity in ses_identities(sender)]
    if resource == "bedrock_models":
        return bedrock_model_arns()
    if resource.startswith("secret:"):
        # Secrets Manager appends six random characters to a secret's name in its ARN.
        return _arn("secretsmanager", f"secret:tessera/{stage}/{resource.split(':', 1)[1]}-??????")
    raise ValueError(f"Unknown resource {resource!r} in FUNCTION_ACCESS.")


def bedrock_model_arns() -> List[Any]:
    """What invoking a global cross-Region inference profile is authorised against: the profile in the
    function's region, and its foundation model in every destination region (`*`) and as the global
    resource (no region): "Global cross-Region inference", its IAM section
    (https://docs.aws.amazon.com/bedrock/latest/userguide/global-cross-region-inference.html)."""
    from chalicelib.pricing import BEDROCK

    arns: List[Any] = []
    for mapped in sorted(BEDROCK.values(), key=lambda m: m.model_id):
        base = mapped.model_id.split(".", 1)[1]  # the profile id less its `global.` prefix
        arns += [_arn("bedrock", f"inference-profile/{mapped.model_id}"),
                 _sub(f"arn:${{AWS::Partition}}:bedrock:*::foundation-model/{base}"),
                 _sub(f"arn:${{AWS::Partition}}:bedrock:::foundation-model/{base}")]
    return arns


def access_of(function: str) -> Mapping[str, Sequence[str]]:
    try:
        return FUNCTION_ACCESS[function]
    except KeyError:
        raise UnknownFunction(
            f"Function {function!r} has no entry in dev/deploy/permissions.py FUNCTION_ACCESS: add the actions its "
            "code calls, by resource.") from None


def _statement(sid: str, actions: Sequence[str], resource: Any, condition: Any = None) -> Dict[str, Any]:
    statement = {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return statement


def _sid(resource: str) -> str:
    return "".join(part.capitalize() for part in resource.replace(":", "-").replace("_", "-").split("-"))


def policy_document(function: str, stage: str, sender: str, log_group_id: str,
                    events: Mapping[str, Any], asynchronous: bool) -> Dict[str, Any]:
    """The whole identity policy of one function's role."""
    statements = [
        _statement("OwnLogGroup", LOG_ACTIONS, {"Fn::GetAtt": [log_group_id, "Arn"]}),
        # X-Ray's PutTraceSegments and PutTelemetryRecords support no resource-level permissions.
        _statement("Tracing", XRAY_ACTIONS, "*"),
    ]
    for resource, actions in access_of(function).items():
        condition = None
        if resource == "tenant_keys":
            # Tenant keys are only ever encrypted under the tenant's id (chalicelib/ai/tenant_keys.py).
            condition = {"Null": {f"kms:EncryptionContext:{TENANT_CONTEXT_KEY}": "false"}}
        statements.append(_statement(_sid(resource), actions, resources(resource, stage, sender), condition))
    for name, event in sorted(events.items()):
        kind, properties = event.get("Type"), event.get("Properties", {})
        if kind == "DynamoDB":
            statements.append(_statement(f"{name}Stream", STREAM_POLLER_ACTIONS, properties["Stream"]))
            statements.append(_statement(f"{name}ListStreams", STREAM_LIST_ACTIONS,
                                         _sub(f"${{{TABLE_ID}.Arn}}/stream/*")))
        elif kind == "SQS":
            statements.append(_statement(f"{name}Queue", QUEUE_POLLER_ACTIONS, properties["Queue"]))
    if asynchronous:
        statements.append(_statement("FailureDestination", FAILURE_ACTIONS,
                                     {"Fn::GetAtt": [FAILURE_QUEUE_ID, "Arn"]}))
    return {"Version": "2012-10-17", "Statement": statements}
