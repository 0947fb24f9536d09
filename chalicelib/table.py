"""The one DynamoDB table, defined once.

Local creation (dev tooling, tests) and the CloudFormation resource in the
packaged template are both generated from `TABLE`, and a test checks that the
PynamoDB models declare exactly these keys and indexes, so the three cannot
drift. See docs/data-model.md for the access patterns.
"""
from __future__ import annotations

import copy
from typing import Any, Dict

TTL_ATTRIBUTE = "expires_at"
TENANT_LIST_INDEX = "gsi1"
BUDGET_INDEX = "gsi2"
SPEND_INDEX = "gsi3"

TABLE: Dict[str, Any] = {
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
        {"AttributeName": "gsi1pk", "AttributeType": "S"},
        {"AttributeName": "gsi1sk", "AttributeType": "S"},
        {"AttributeName": "gsi2pk", "AttributeType": "S"},
        {"AttributeName": "gsi2sk", "AttributeType": "S"},
        {"AttributeName": "gsi3pk", "AttributeType": "S"},
        {"AttributeName": "gsi3sk", "AttributeType": "S"},
    ],
    "KeySchema": [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": TENANT_LIST_INDEX,
            "KeySchema": [
                {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        },
        {
            "IndexName": BUDGET_INDEX,
            "KeySchema": [
                {"AttributeName": "gsi2pk", "KeyType": "HASH"},
                {"AttributeName": "gsi2sk", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        },
        {
            "IndexName": SPEND_INDEX,
            "KeySchema": [
                {"AttributeName": "gsi3pk", "KeyType": "HASH"},
                {"AttributeName": "gsi3sk", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        },
    ],
    "BillingMode": "PAY_PER_REQUEST",
    # The usage aggregator reads settled calls (and admissions, for the sweeper's marks) from the stream.
    "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
}


def create_table_request(table_name: str) -> Dict[str, Any]:
    """Arguments for boto3's `create_table`."""
    return {"TableName": table_name, **copy.deepcopy(TABLE)}


def cloudformation_resource(table_name: Any) -> Dict[str, Any]:
    """The `AWS::DynamoDB::Table` resource for the packaged template."""
    properties = copy.deepcopy(TABLE)
    properties["TableName"] = table_name
    properties["StreamSpecification"] = {"StreamViewType": TABLE["StreamSpecification"]["StreamViewType"]}
    properties["TimeToLiveSpecification"] = {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    properties["PointInTimeRecoverySpecification"] = {"PointInTimeRecoveryEnabled": True}
    properties["SSESpecification"] = {"SSEEnabled": True}
    return {
        "Type": "AWS::DynamoDB::Table",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": properties,
    }


def create_table(dynamodb_client: Any, table_name: str) -> bool:
    """Create the table (and enable TTL) unless it exists. Returns True when created."""
    existing = dynamodb_client.list_tables().get("TableNames", [])
    if table_name in existing:
        return False
    dynamodb_client.create_table(**create_table_request(table_name))
    dynamodb_client.get_waiter("table_exists").wait(TableName=table_name)
    dynamodb_client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
    )
    return True
