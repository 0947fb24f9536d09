"""The table `make run` and the tests create on moto (chalicelib.table.create_table) is the one declared in
chalicelib.table.TABLE: its keys, indexes, expiry and stream. tests/unit/test_table_schema.py checks that the
declaration agrees with the models and the CloudFormation resource."""
from __future__ import annotations

import secrets
from typing import Dict, List

from chalicelib.table import TABLE, TTL_ATTRIBUTE, create_table


def by_key_type(key_schema: List[Dict[str, str]]) -> Dict[str, str]:
    return {k["KeyType"]: k["AttributeName"] for k in key_schema}


def table_indexes():
    return {i["IndexName"]: i for i in TABLE["GlobalSecondaryIndexes"]}


def test_locally_created_table_has_the_declared_schema_and_ttl(moto_server):
    import boto3

    endpoint, _ = moto_server
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    name = f"schema-{secrets.token_hex(4)}"
    assert create_table(client, name) is True
    try:
        table = client.describe_table(TableName=name)["Table"]
        assert by_key_type(table["KeySchema"]) == by_key_type(TABLE["KeySchema"])
        assert {i["IndexName"]: by_key_type(i["KeySchema"]) for i in table["GlobalSecondaryIndexes"]} == {
            name_: by_key_type(i["KeySchema"]) for name_, i in table_indexes().items()}
        ttl = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        assert ttl["AttributeName"] == TTL_ATTRIBUTE and ttl["TimeToLiveStatus"] == "ENABLED"
        assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert create_table(client, name) is False
    finally:
        client.delete_table(TableName=name)
