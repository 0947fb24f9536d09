"""dev/stack/moto_server.py: a cancelled transaction undoes exactly its own writes, nothing else."""
import boto3
import pytest

TABLE = "tessera-local"


def key(name):
    return {"pk": {"S": f"MOTOTEST#{name}"}, "sk": {"S": "x"}}


def counter(ddb, name):
    item = ddb.get_item(TableName=TABLE, Key=key(name)).get("Item")
    return int(item["n"]["N"]) if item else None


def add(name, condition=None):
    update = {"TableName": TABLE, "Key": key(name), "UpdateExpression": "ADD n :one",
              "ExpressionAttributeValues": {":one": {"N": "1"}}}
    if condition:
        update["ConditionExpression"] = condition
    return {"Update": update}


def test_cancelled_transaction_restores_only_the_items_it_touched():
    ddb = boto3.client("dynamodb")
    ddb.transact_write_items(TransactItems=[add("a"), add("bystander")])
    with pytest.raises(ddb.exceptions.TransactionCanceledException):
        ddb.transact_write_items(TransactItems=[
            add("a"), {"Put": {"TableName": TABLE, "Item": {**key("new"), "v": {"S": "1"}}}},
            add("a-guard", condition="attribute_exists(pk)")])
    assert counter(ddb, "a") == 1
    assert ddb.get_item(TableName=TABLE, Key=key("new")).get("Item") is None
    assert counter(ddb, "a-guard") is None
    ddb.transact_write_items(TransactItems=[add("bystander")])
    assert counter(ddb, "bystander") == 2


def test_committed_transaction_applies_every_item():
    ddb = boto3.client("dynamodb")
    ddb.transact_write_items(TransactItems=[add("c1"), add("c2")])
    assert (counter(ddb, "c1"), counter(ddb, "c2")) == (1, 1)
