"""The one table is described three times: by the PynamoDB models, by `chalicelib.table.TABLE` (which local
creation uses) and by the CloudFormation resource. These tests fail as soon as one of them drifts."""
from __future__ import annotations

from typing import Any, Dict, List, Type

import pytest
from pynamodb.attributes import TTLAttribute

from chalicelib import models, records  # noqa: F401  (records' items are the table's too)
from chalicelib.table import TABLE, TTL_ATTRIBUTE, cloudformation_resource, create_table_request


def item_models() -> List[Type[models._Item]]:
    found, pending = [], list(models._Item.__subclasses__())
    while pending:
        model = pending.pop()
        found.append(model)
        pending.extend(model.__subclasses__())
    return sorted(found, key=lambda m: m.__name__)


def by_key_type(key_schema: List[Dict[str, str]]) -> Dict[str, str]:
    return {k["KeyType"]: k["AttributeName"] for k in key_schema}


def table_types() -> Dict[str, str]:
    return {a["AttributeName"]: a["AttributeType"] for a in TABLE["AttributeDefinitions"]}


def table_indexes() -> Dict[str, Dict[str, Any]]:
    return {i["IndexName"]: i for i in TABLE["GlobalSecondaryIndexes"]}


MODELS = item_models()


def test_every_item_type_is_checked():
    assert len(MODELS) >= 14 and models.Tenant in MODELS and models.UsageEvent in MODELS


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_model_keys_are_the_table_keys(model):
    schema = model._get_schema()
    assert by_key_type(schema["key_schema"]) == by_key_type(TABLE["KeySchema"])
    assert {a["AttributeName"]: a["AttributeType"] for a in schema["attribute_definitions"]
            if a["AttributeName"] in ("pk", "sk")} == {"pk": "S", "sk": "S"}
    assert schema["local_secondary_indexes"] == []


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_model_indexes_are_table_indexes(model):
    for index in model._get_schema()["global_secondary_indexes"]:
        declared = table_indexes().get(index["index_name"])
        assert declared is not None, f"{model.__name__} queries {index['index_name']}, which the table lacks"
        assert by_key_type(index["key_schema"]) == by_key_type(declared["KeySchema"])
        assert index["projection"] == declared["Projection"]
        for attribute in index["attribute_definitions"]:
            assert table_types()[attribute["AttributeName"]] == attribute["AttributeType"]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_model_attributes_named_like_table_keys_have_the_key_type(model):
    # An item whose gsi1pk were a number would be rejected by DynamoDB, or silently left out of the index.
    for attribute in model.get_attributes().values():
        if attribute.attr_name in table_types():
            assert attribute.attr_type == table_types()[attribute.attr_name], (model.__name__, attribute.attr_name)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_model_expiry_uses_the_table_ttl_attribute(model):
    for attribute in model.get_attributes().values():
        if isinstance(attribute, TTLAttribute):
            assert attribute.attr_name == TTL_ATTRIBUTE, model.__name__


def test_models_together_use_every_table_index_and_key_attribute():
    used_indexes, used_attributes = set(), set()
    for model in MODELS:
        schema = model._get_schema()
        used_indexes |= {i["index_name"] for i in schema["global_secondary_indexes"]}
        used_attributes |= {a["AttributeName"] for a in schema["attribute_definitions"]}
    assert used_indexes == set(table_indexes())
    assert used_attributes == set(table_types())


def test_all_models_share_one_table():
    assert {model.Meta.table_name for model in MODELS} == {models._Item.Meta.table_name}


def test_local_creation_and_cloudformation_agree_on_every_shared_property():
    local = create_table_request("tessera-test")
    cloudformation = cloudformation_resource("tessera-test")["Properties"]
    shared = set(local) & set(cloudformation) - {"StreamSpecification"}
    assert {"TableName", "KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes", "BillingMode"} <= shared
    assert {key: local[key] for key in shared} == {key: cloudformation[key] for key in shared}
    # CloudFormation's StreamSpecification has no StreamEnabled: the view type is the stream.
    assert cloudformation["StreamSpecification"] == {"StreamViewType": local["StreamSpecification"]["StreamViewType"]}
    assert local["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


def test_cloudformation_adds_only_durability_and_expiry():
    extra = set(cloudformation_resource("t")["Properties"]) - set(create_table_request("t"))
    assert extra == {"TimeToLiveSpecification", "PointInTimeRecoverySpecification", "SSESpecification"}
    assert cloudformation_resource("t")["Properties"]["TimeToLiveSpecification"] == {
        "AttributeName": TTL_ATTRIBUTE, "Enabled": True}
