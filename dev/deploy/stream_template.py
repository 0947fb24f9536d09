"""The streaming function in the template (docs/streaming.md): POST /v1/messages and POST /ai/chat answered
as produced, for up to Lambda's 15 minutes.

chalice makes no such function (its handlers return whole responses), so this adds one beside chalice's:

- `StreamHandler`: the same zip and runtime as the API handler, its handler the start-up script
  chalicelib/stream_host/run.sh, run by the Lambda Web Adapter's layer as the exec wrapper with
  AWS_LWA_INVOKE_MODE=response_stream; its own role (dev/deploy/permissions.py `stream_handler`), log group,
  tracing and concurrency cap, as every function gets (template.function_resources); timeout 900 s.
- the two routes' integrations re-pointed at it through Lambda's InvokeWithResponseStream path
  (`2021-11-15/.../response-streaming-invocations`) with `responseTransferMode: STREAM` and a 15-minute
  integration timeout; they keep the REQUEST authorizer (dev/deploy/template.py `request_authorizer`);
- a lambda:InvokeFunction permission for API Gateway on exactly those two methods.

SnapStart (dev/deploy/snapstart.py) runs on it as on the other functions a caller waits on: the published version's
init starts the adapter and run.sh, whose web server imports and primes the SDK before the readiness check
passes, so the snapshot holds it; the integrations and permissions name the alias `live`. The adapter
replaces the managed runtime's loop, so no runtime hook runs: the app makes a restored instance its own on
its first request instead (chalicelib.snapshot.OnFirstRequest).

The adapter's layer is AWS's public one, pinned by version (parameter `WebAdapterLayerVersion`): version 27
is the adapter's 1.0.0, which the adapter's guide lists for the commercial regions
(https://github.com/awslabs/aws-lambda-web-adapter, docs/guide "Zip Packages":
arn:aws:lambda:${AWS::Region}:753240598075:layer:LambdaAdapterLayerX86:27, x86_64 as chalice packages the
functions) and whose changelog has "Disable connection pooling to prevent stale connections after SnapStart"
(#671): each invocation reaches the app on a new local connection, never one kept from the snapshot. China
regions publish it from other accounts and are not covered.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping

from dev.deploy import template as merge

LOGICAL_ID = "StreamHandler"
FUNCTION = "stream_handler"  # its name in dev/deploy/permissions.py and its deployed name's suffix
HANDLER = "chalicelib/stream_host/run.sh"
ROUTES = ("/v1/messages", "/ai/chat")  # chalicelib.ai.calls.STREAMABLE
TIMEOUT_SECONDS = 900  # chalicelib.ai.calls.STREAM_FUNCTION_TIMEOUT_SECONDS
INTEGRATION_TIMEOUT_MS = TIMEOUT_SECONDS * 1000
# The function mostly waits on the model: memory is what each waiting second costs (1 GB: $0.0000166667 per
# second). SnapStart pays the SDK's import before the snapshot, so CPU matters only for the first request
# after a restore: at 384 MB (0.22 vCPU) it reached the upstream in 552 ms, median of 5 (make bench section 7,
# under a CPU quota of 384/1,769 of a core), a 10-second call's duration $62.50 a million (docs/cost.md).
MEMORY_MB = 384
ADAPTER_ACCOUNT = "753240598075"
ADAPTER_LAYER = "LambdaAdapterLayerX86"
ADAPTER_VERSION = 27
ADAPTER_PORT = "8080"
LAYER_PARAMETER = "WebAdapterLayerVersion"
API_FUNCTION = "APIHandler"


def parameters() -> Dict[str, Any]:
    return {LAYER_PARAMETER: {
        "Type": "Number", "Default": ADAPTER_VERSION, "MinValue": 1,
        "Description": f"Version of the Lambda Web Adapter layer ({ADAPTER_ACCOUNT}:{ADAPTER_LAYER}) the "
                       "streaming function runs under.",
    }}


def adapter_environment() -> Dict[str, str]:
    return {
        "AWS_LAMBDA_EXEC_WRAPPER": "/opt/bootstrap",
        "AWS_LWA_INVOKE_MODE": "response_stream",
        "AWS_LWA_PORT": ADAPTER_PORT,
        "AWS_LWA_READINESS_CHECK_PATH": "/health",  # chalicelib.stream_host.web.HEALTH_PATH
    }


def function(plain: Mapping[str, Any]) -> Dict[str, Any]:
    """The function as chalice would have written it: the API handler's code, runtime and stage settings."""
    functions = merge.resources_of(plain, merge.FUNCTION_TYPES)
    if API_FUNCTION not in functions:
        raise merge.TemplateError(f"chalice's template has no {API_FUNCTION}; the streaming function shares its code.")
    api = functions[API_FUNCTION]["Properties"]
    variables = dict((api.get("Environment") or {}).get("Variables") or {})
    return {"Type": "AWS::Serverless::Function", "Properties": {
        "Runtime": api["Runtime"], "CodeUri": api["CodeUri"], "Architectures": api.get("Architectures", ["x86_64"]),
        "Tags": api.get("Tags", {}), "Handler": HANDLER, "Timeout": TIMEOUT_SECONDS, "MemorySize": MEMORY_MB,
        "Layers": [{"Fn::Sub": f"arn:${{AWS::Partition}}:lambda:${{AWS::Region}}:{ADAPTER_ACCOUNT}:layer:"
                               f"{ADAPTER_LAYER}:${{{LAYER_PARAMETER}}}"}],
        "Environment": {"Variables": {**variables, **adapter_environment()}},
    }}


def integration() -> Dict[str, Any]:
    return {
        "uri": {"Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2021-11-15/functions/"
                           f"${{{LOGICAL_ID}.Arn}}/response-streaming-invocations"},
        "responseTransferMode": "STREAM",
        "timeoutInMillis": INTEGRATION_TIMEOUT_MS,
    }


def resources(stage: str, env: Mapping[str, str], plain: Mapping[str, Any]) -> Dict[str, Any]:
    """What merges into the template for the streaming function (deep-merged by dev/deploy/template.py)."""
    defined = function(plain)
    out = merge.function_resources(stage, env, LOGICAL_ID, defined, name=FUNCTION)
    out[LOGICAL_ID] = merge._deep_merged(defined, out[LOGICAL_ID])
    out[LOGICAL_ID]["Properties"]["ReservedConcurrentExecutions"] = {
        "Fn::If": [merge.API_CONCURRENCY_SET, {"Ref": "ApiReservedConcurrency"}, {"Ref": "AWS::NoValue"}]}
    for api_id, api in merge.resources_of(plain, merge.API_TYPE).items():
        paths = api["Properties"]["DefinitionBody"].get("paths", {})
        missing = [path for path in ROUTES if "post" not in paths.get(path, {})]
        if missing:
            raise merge.TemplateError(f"chalice's API has no POST {', '.join(missing)} for the streaming function.")
        out[api_id] = {"Properties": {"DefinitionBody": {"paths": {
            path: {"post": {"x-amazon-apigateway-integration": integration()}} for path in ROUTES}}}}
        for path in ROUTES:
            permission_id = f"{LOGICAL_ID}Invoke{''.join(part.capitalize() for part in path.strip('/').split('/'))}"
            out[permission_id] = {
                "Type": "AWS::Lambda::Permission",
                "Properties": {
                    "FunctionName": {"Fn::GetAtt": [LOGICAL_ID, "Arn"]},
                    "Action": "lambda:InvokeFunction", "Principal": "apigateway.amazonaws.com",
                    "SourceArn": {"Fn::Sub": ["arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
                                              f"${{RestAPIId}}/*/POST{path}", {"RestAPIId": {"Ref": api_id}}]},
                },
            }
    return out
