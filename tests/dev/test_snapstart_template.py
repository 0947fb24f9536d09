"""dev/deploy/snapstart.py on a small template: any function listed gets SnapStart behind its alias, and nothing
invokes it unqualified afterwards. (The packaged template: tests/integration/test_rehearsal.py.)"""
from __future__ import annotations

import copy

import pytest

from dev.deploy import snapstart
from dev.deploy import template as merge

INVOKE = "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${%s}/invocations"


def small_template():
    def function(name):
        return {"Type": "AWS::Serverless::Function", "Properties": {"FunctionName": name, "Handler": "app.x"}}

    def permission(reference):
        return {"Type": "AWS::Lambda::Permission", "Properties": {"FunctionName": reference,
                                                                  "Principal": "apigateway.amazonaws.com"}}

    return {"Resources": {
        "Handler": function("tessera-x"), "Stream": function("tessera-x-stream"), "Job": function("tessera-x-job"),
        "Api": {"Type": "AWS::Serverless::Api", "Properties": {"DefinitionBody": {
            "paths": {"/a": {"post": {"x-amazon-apigateway-integration": {"uri": {"Fn::Sub": INVOKE % "Handler.Arn"}}}},
                      "/s": {"post": {"x-amazon-apigateway-integration": {"uri": {"Fn::Sub": INVOKE % "Stream.Arn"}}}},
                      "/j": {"post": {"x-amazon-apigateway-integration": {"uri": {"Fn::Sub": INVOKE % "Job.Arn"}}}}},
            "securityDefinitions": {"auth": {"x-amazon-apigateway-authorizer": {
                "authorizerUri": {"Fn::Sub": INVOKE % "Stream.Arn"}}}}}}},
        "HandlerInvokePermission": permission({"Ref": "Handler"}),
        "StreamInvokePermission": permission({"Fn::GetAtt": ["Stream", "Arn"]}),
        "JobInvokePermission": permission({"Fn::GetAtt": ["Job", "Arn"]}),
    }}


def test_every_listed_function_is_invoked_through_its_alias_and_no_other_is():
    plain = small_template()
    merged = merge._deep_merged(plain, {"Resources": snapstart.snapstart_template(plain, ["Handler", "Stream"])})
    assert snapstart.unaliased_references(plain, ["Handler", "Stream"]) != {}
    assert snapstart.unaliased_references(merged, ["Handler", "Stream"]) == {}
    resources = merged["Resources"]
    for name in ("Handler", "Stream"):
        assert resources[name]["Properties"]["SnapStart"] == {"ApplyOn": "PublishedVersions"}
        assert resources[name]["Properties"]["AutoPublishAlias"] == "live"
        permission = resources[f"{name}InvokePermission"]
        assert permission["Properties"]["FunctionName"] == f"{resources[name]['Properties']['FunctionName']}:live"
        assert permission["DependsOn"] == [f"{name}Aliaslive"]
    body = resources["Api"]["Properties"]["DefinitionBody"]
    stream_uri = body["paths"]["/s"]["post"]["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
    assert stream_uri == INVOKE % "StreamAliaslive"
    assert body["securityDefinitions"]["auth"]["x-amazon-apigateway-authorizer"]["authorizerUri"]["Fn::Sub"] == \
        INVOKE % "StreamAliaslive"
    # What was not listed stays as it was.
    assert resources["Job"] == plain["Resources"]["Job"]
    assert resources["JobInvokePermission"] == plain["Resources"]["JobInvokePermission"]
    assert body["paths"]["/j"] == plain["Resources"]["Api"]["Properties"]["DefinitionBody"]["paths"]["/j"]


def test_a_function_the_template_lacks_or_without_a_name_is_refused():
    plain = small_template()
    with pytest.raises(snapstart.SnapStartError, match="Missing"):
        snapstart.snapstart_template(plain, ["Missing"])
    unnamed = copy.deepcopy(plain)
    del unnamed["Resources"]["Handler"]["Properties"]["FunctionName"]
    with pytest.raises(snapstart.SnapStartError, match="FunctionName"):
        snapstart.snapstart_template(unnamed, ["Handler"])
